//! A list of items with distinct keys: a plain vector while short, plus a
//! hash index once long.
//!
//! Most lists in the broker are tiny (a client's few subscriptions, the one
//! or two sessions on a filter), so they stay a bare `Vec`, as small and as
//! fast to scan as before. But a client may hold 100,000 subscriptions, and
//! 100,000 clients may share one filter: past [`FEW`] items an index by key
//! makes finding, adding and removing an item cost the same at any length.
//! Items are never reordered except by removal (the last one takes the
//! removed one's place), so the slice stays dense for scanning.

use foldhash::fast::{FoldHasher, SeedableRandomState};
use foldhash::SharedSeed;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Items kept without an index: scanning this many is as cheap as hashing.
const FEW: usize = 8;

/// The hasher of maps keyed by what clients choose (topics, filters,
/// destinations), hashed once per message: foldhash, about a tenth of
/// SipHash's cost on a short topic, keyed by a secret drawn from the OS
/// once per process (foldhash's own seed is only address-space layout and
/// the time), so that colliding keys cannot be prepared in advance.
#[derive(Clone, Debug)]
pub struct RandomState(SeedableRandomState);

impl Default for RandomState {
    fn default() -> Self {
        static SECRET: OnceLock<(SharedSeed, u64)> = OnceLock::new();
        // Each map starts from its own point of the same keyed stream.
        static MAPS: AtomicU64 = AtomicU64::new(0);
        let (seed, start) = SECRET.get_or_init(|| {
            // Without the OS's generator (never on the supported systems),
            // foldhash's own per-process seed.
            let secret = |fallback: u64| getrandom::u64().unwrap_or(fallback);
            let fallback = SharedSeed::global_random();
            let fallback = SeedableRandomState::with_seed(0, fallback).hash_one(0u64);
            (SharedSeed::from_u64(secret(fallback)), secret(!fallback))
        });
        let map = MAPS.fetch_add(1, Ordering::Relaxed);
        RandomState(SeedableRandomState::with_seed(start ^ map, seed))
    }
}

impl BuildHasher for RandomState {
    type Hasher = FoldHasher<'static>;
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// An item of a [`KeyedList`]: its key is unique within the list.
pub trait Keyed {
    type Key: Hash + Eq + Clone + std::fmt::Debug;
    fn key(&self) -> &Self::Key;
}

/// See the module documentation. 24 bytes, like the `Vec` it replaces.
#[derive(Debug)]
pub enum KeyedList<T: Keyed> {
    Few(Vec<T>),
    Many(Box<Indexed<T>>),
}

#[derive(Debug)]
pub struct Indexed<T: Keyed> {
    items: Vec<T>,
    /// Key -> position in `items`.
    index: HashMap<T::Key, usize, RandomState>,
}

impl<T: Keyed> Default for KeyedList<T> {
    fn default() -> Self {
        KeyedList::Few(Vec::new())
    }
}

impl<T: Keyed> KeyedList<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            KeyedList::Few(v) => v,
            KeyedList::Many(m) => &m.items,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Where the item with `key` is.
    fn position<Q>(&self, key: &Q) -> Option<usize>
    where
        T::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            KeyedList::Few(v) => v.iter().position(|t| t.key().borrow() == key),
            KeyedList::Many(m) => m.index.get(key).copied(),
        }
    }

    /// The item with `key`, for changing anything but its key.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut T>
    where
        T::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.position(key)?;
        match self {
            KeyedList::Few(v) => v.get_mut(i),
            KeyedList::Many(m) => m.items.get_mut(i),
        }
    }

    /// Adds an item whose key is not in the list yet (the caller checked
    /// with [`KeyedList::get_mut`]).
    pub fn push(&mut self, item: T) {
        match self {
            KeyedList::Few(v) if v.len() < FEW => {
                // Short lists grow one slot at a time: most hold one or two
                // items, and the reallocations are bounded by FEW.
                v.reserve_exact(1);
                v.push(item);
            }
            KeyedList::Few(v) => {
                let mut items = std::mem::take(v);
                items.push(item);
                let index = items
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.key().clone(), i))
                    .collect();
                *self = KeyedList::Many(Box::new(Indexed { items, index }));
            }
            KeyedList::Many(m) => {
                m.index.insert(item.key().clone(), m.items.len());
                m.items.push(item);
            }
        }
    }

    /// Removes and returns the item with `key`; the last item takes its
    /// place.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<T>
    where
        T::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.position(key)?;
        match self {
            KeyedList::Few(v) => {
                let item = v.swap_remove(i);
                if v.is_empty() {
                    *v = Vec::new(); // an emptied list holds no memory
                }
                Some(item)
            }
            KeyedList::Many(m) => {
                m.index.remove(key);
                let item = m.items.swap_remove(i);
                if let Some(moved) = m.items.get(i) {
                    m.index.insert(moved.key().clone(), i);
                }
                // Back to a bare vector well below FEW, so that a list
                // hovering around FEW does not rebuild its index each time.
                if m.items.len() <= FEW / 2 {
                    let mut items = std::mem::take(&mut m.items);
                    items.shrink_to_fit();
                    *self = KeyedList::Few(items);
                }
                Some(item)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Keyed for (u32, char) {
        type Key = u32;
        fn key(&self) -> &u32 {
            &self.0
        }
    }

    #[test]
    fn stays_a_vector_when_short_and_indexes_when_long() {
        assert_eq!(std::mem::size_of::<KeyedList<(u32, char)>>(), 24);
        let mut l = KeyedList::default();
        for k in 0..1000u32 {
            assert!(l.get_mut(&k).is_none());
            l.push((k, 'a'));
            assert_eq!(matches!(l, KeyedList::Many(_)), l.as_slice().len() > FEW);
        }
        if let Some(item) = l.get_mut(&500) {
            item.1 = 'b';
        }
        assert_eq!(l.remove(&500), Some((500, 'b')));
        assert_eq!(l.remove(&500), None);
        for k in (0..1000u32).filter(|&k| k != 500) {
            assert_eq!(l.remove(&k), Some((k, 'a')), "index follows moved items");
        }
        assert!(l.is_empty() && matches!(&l, KeyedList::Few(v) if v.capacity() == 0));
    }
}
