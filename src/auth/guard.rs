//! Keeps password checks from starving the broker's loop (issue 14): a
//! hardened password file (`$7$` with many PBKDF2 iterations) makes each
//! check cost milliseconds, and the loop serves every client.
//!
//! - Work per loop iteration is bounded: once [`WORK_PER_ITERATION`] of
//!   hashing is spent, further CONNECTs wait for the next iteration (at
//!   least one check runs per iteration, however costly). And after a
//!   check the loop rests from hashing as long as the check took, so
//!   checks take at most half of its time even when one alone outlasts an
//!   iteration's budget. Measured in time, not rounds: a round costs 20
//!   times more on a Pi than on a PC.
//! - Credentials are remembered once checked, right or wrong (a keyed
//!   hash of user name and password, never the password; at most
//!   [`CACHE_SIZE`] of each, least recently used go first): a client
//!   reconnecting, or a flood repeating a wrong password, costs no
//!   hashing. A right password is always checked, so no one is locked out
//!   by the failures of others at the same address.

use super::PasswordFile;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Password hashing per loop iteration.
pub const WORK_PER_ITERATION: Duration = Duration::from_millis(5);
/// Credentials remembered as right, and as wrong.
pub const CACHE_SIZE: usize = 1024;

#[derive(Debug)]
pub struct PasswordGuard {
    /// Hashing done in this loop iteration.
    spent: Duration,
    budget: Duration,
    /// No hashing before then: as long as the last check took.
    rest_until: Option<Instant>,
    /// This iteration began before `rest_until`.
    resting: bool,
    /// Makes the cache's keys useless outside this process.
    secret: [u8; 32],
    /// Credentials checked, by keyed hash: right, and wrong.
    right: Lru,
    wrong: Lru,
}

/// Keyed hashes of credentials, with when each was last used; the least
/// recently used goes when it is full.
#[derive(Debug, Default)]
struct Lru {
    entries: HashMap<[u8; 32], u64>,
    uses: u64,
}

impl Lru {
    /// True (and marked used) if `key` is here.
    fn touch(&mut self, key: &[u8; 32]) -> bool {
        self.uses += 1;
        match self.entries.get_mut(key) {
            Some(used) => {
                *used = self.uses;
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, key: [u8; 32]) {
        if self.entries.len() >= CACHE_SIZE {
            let oldest = self.entries.iter().min_by_key(|(_, &used)| used);
            if let Some((&old, _)) = oldest {
                self.entries.remove(&old);
            }
        }
        self.entries.insert(key, self.uses);
    }
}

impl Default for PasswordGuard {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        // Without randomness the keys are still hashes, only predictable.
        let _ = getrandom::fill(&mut secret);
        PasswordGuard {
            spent: Duration::ZERO,
            budget: WORK_PER_ITERATION,
            rest_until: None,
            resting: false,
            secret,
            right: Lru::default(),
            wrong: Lru::default(),
        }
    }
}

impl PasswordGuard {
    /// A new loop iteration, at `now`: its hashing budget is whole again,
    /// unless the loop rests from hashing.
    pub fn begin_iteration(&mut self, now: Instant) {
        self.spent = Duration::ZERO;
        self.resting = self.rest_until.is_some_and(|t| now < t);
    }

    /// True once this iteration's hashing work is spent: CONNECTs wait.
    pub fn exhausted(&self) -> bool {
        self.resting || self.spent >= self.budget
    }

    /// Forgets the credentials checked (the password file changed).
    pub fn forget(&mut self) {
        self.right = Lru::default();
        self.wrong = Lru::default();
    }

    /// Checks `user`'s `password`: from the cache, or hashed.
    pub fn check(&mut self, file: &PasswordFile, user: &str, password: &[u8]) -> bool {
        let key = self.key(user, password);
        if self.right.touch(&key) {
            return true;
        }
        if self.wrong.touch(&key) {
            return false;
        }
        let start = Instant::now();
        let ok = file.check(user, password);
        let took = start.elapsed();
        self.spent += took;
        self.rest_until = Some(start + took + took);
        if ok {
            self.right.insert(key);
        } else {
            self.wrong.insert(key);
        }
        ok
    }

    fn key(&self, user: &str, password: &[u8]) -> [u8; 32] {
        let mut h = Sha512::new();
        h.update(self.secret);
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update(password);
        let mut key = [0u8; 32];
        key.copy_from_slice(&h.finalize()[..32]);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::hash_password_with_salt;

    /// A guard whose hashing budget is spent by any check.
    fn strict() -> PasswordGuard {
        PasswordGuard {
            budget: Duration::from_nanos(1),
            ..PasswordGuard::default()
        }
    }

    fn file(iterations: u32) -> PasswordFile {
        let line = hash_password_with_salt(b"right", iterations, b"salt-salt-12");
        PasswordFile::parse(&format!("u:{line}\n")).unwrap()
    }

    #[test]
    fn work_is_counted_and_checked_credentials_are_cached() {
        let f = file(10);
        let mut g = strict();
        assert!(g.check(&f, "u", b"right"));
        assert!(g.exhausted());
        g.begin_iteration(Instant::now() + Duration::from_secs(1));
        assert!(g.check(&f, "u", b"right")); // cached: no work
        assert!(!g.check(&f, "u", b"wrong"));
        assert!(g.exhausted());
        g.begin_iteration(Instant::now() + Duration::from_secs(1));
        assert!(!g.check(&f, "u", b"wrong")); // cached too
        assert!(!g.exhausted());
        g.forget();
        assert!(g.check(&f, "u", b"right"));
        assert!(g.exhausted());
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used() {
        let f = file(1);
        let mut g = PasswordGuard::default();
        for i in 0..=CACHE_SIZE {
            assert!(!g.check(&f, "u", format!("w{i}").as_bytes()));
            assert!(g.check(&f, "u", b"right"));
        }
        assert_eq!(g.wrong.entries.len(), CACHE_SIZE);
        assert_eq!(g.right.entries.len(), 1);
    }
}
