//! Every session, by key and by client id.

use super::Session;
use crate::keys::SessionKey;
use hashbrown::HashTable;
use slab::Slab;
use std::hash::{BuildHasher, RandomState};

/// Every session, by key and by client id. The id index holds only keys
/// (4 bytes each) and compares against the id stored in the session, so
/// each client id is kept once.
#[derive(Debug, Default)]
pub struct Sessions {
    slab: Slab<Session>,
    by_id: HashTable<SessionKey>,
    hasher: RandomState,
}

impl Sessions {
    pub fn get(&self, sid: SessionKey) -> Option<&Session> {
        self.slab.get(sid.index())
    }

    pub fn get_mut(&mut self, sid: SessionKey) -> Option<&mut Session> {
        self.slab.get_mut(sid.index())
    }

    /// The session of `client_id`, if there is one.
    pub fn find(&self, client_id: &str) -> Option<SessionKey> {
        let hash = self.hasher.hash_one(client_id);
        let slab = &self.slab;
        let found = self.by_id.find(hash, |&sid| {
            slab.get(sid.index())
                .is_some_and(|s| *s.client_id == *client_id)
        });
        found.copied()
    }

    /// Adds a session; it replaces any other of the same client id in the
    /// index (the caller has dropped that one already).
    pub fn insert(&mut self, session: Session) -> SessionKey {
        let hash = self.hasher.hash_one(&*session.client_id);
        if let Some(old) = self.find(&session.client_id) {
            self.unindex(old);
        }
        let sid = SessionKey::saturating(self.slab.insert(session));
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.by_id.insert_unique(hash, sid, |&k| {
            slab.get(k.index())
                .map_or(0, |s| hasher.hash_one(&*s.client_id))
        });
        sid
    }

    /// Removes a session and its index entry.
    pub fn remove(&mut self, sid: SessionKey) -> Option<Session> {
        self.unindex(sid);
        self.slab.try_remove(sid.index())
    }

    fn unindex(&mut self, sid: SessionKey) {
        let Some(sess) = self.slab.get(sid.index()) else {
            return;
        };
        let hash = self.hasher.hash_one(&*sess.client_id);
        if let Ok(entry) = self.by_id.find_entry(hash, |&k| k == sid) {
            entry.remove();
        }
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (SessionKey, &Session)> {
        self.slab
            .iter()
            .map(|(k, s)| (SessionKey::saturating(k), s))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (SessionKey, &mut Session)> {
        self.slab
            .iter_mut()
            .map(|(k, s)| (SessionKey::saturating(k), s))
    }
}
