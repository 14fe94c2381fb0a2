//! Keeps password checks from starving the broker's loop (issue 14): a
//! hardened password file (`$7$` with many PBKDF2 iterations) makes each
//! check cost milliseconds, and the loop serves every client.
//!
//! - Work per loop iteration is bounded: once [`WORK_PER_ITERATION`] of
//!   hashing is spent, further CONNECTs wait for the next iteration (at
//!   least one check runs per iteration, however costly). Measured in
//!   time, not rounds: a round costs 20 times more on a Pi than on a PC.
//! - Repeat failures from one address back off: from the
//!   [`FREE_FAILURES`]th on, that address's checks are refused without
//!   hashing for a time that doubles with each failure (up to
//!   [`MAX_BACKOFF_MS`]).
//! - Verified credentials are remembered (a keyed hash of user name and
//!   password, never the password; at most [`CACHE_SIZE`], least recently
//!   used go first), so a known client reconnecting costs no hashing and
//!   is not refused by a back-off caused by others at its address.

use super::PasswordFile;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Password hashing per loop iteration.
pub const WORK_PER_ITERATION: Duration = Duration::from_millis(5);
/// Failures from one address before its checks back off.
pub const FREE_FAILURES: u32 = 3;
/// The first back-off, doubled with each further failure.
pub const FIRST_BACKOFF_MS: u64 = 100;
/// The longest back-off.
pub const MAX_BACKOFF_MS: u64 = 10_000;
/// Credentials remembered as verified.
pub const CACHE_SIZE: usize = 1024;
/// Addresses whose failures are remembered; beyond, the oldest go.
pub const MAX_ADDRESSES: usize = 4096;

/// Failures of one address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// Checks from the address are refused until then (ms, broker clock).
    until: u64,
}

#[derive(Debug)]
pub struct PasswordGuard {
    /// Hashing done in this loop iteration.
    spent: Duration,
    budget: Duration,
    /// Makes the cache's keys useless outside this process.
    secret: [u8; 32],
    /// Verified credentials by keyed hash, with when they were last used.
    verified: HashMap<[u8; 32], u64>,
    /// Counts uses, to find the least recently used entry.
    uses: u64,
    failures: HashMap<IpAddr, Failures>,
}

impl Default for PasswordGuard {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        // Without randomness the keys are still hashes, only predictable.
        let _ = getrandom::fill(&mut secret);
        PasswordGuard {
            spent: Duration::ZERO,
            budget: WORK_PER_ITERATION,
            secret,
            verified: HashMap::new(),
            uses: 0,
            failures: HashMap::new(),
        }
    }
}

impl PasswordGuard {
    /// A new loop iteration: its hashing budget is whole again.
    pub fn begin_iteration(&mut self) {
        self.spent = Duration::ZERO;
    }

    /// True once this iteration's hashing work is spent: CONNECTs wait.
    pub fn exhausted(&self) -> bool {
        self.spent >= self.budget
    }

    /// Forgets the verified credentials (the password file changed).
    pub fn forget(&mut self) {
        self.verified.clear();
    }

    /// Checks `user`'s `password` from `addr` at `now` (ms): from the
    /// cache, refused while the address backs off, or hashed.
    pub fn check(
        &mut self,
        file: &PasswordFile,
        addr: IpAddr,
        user: &str,
        password: &[u8],
        now: u64,
    ) -> bool {
        let key = self.key(user, password);
        self.uses += 1;
        if let Some(used) = self.verified.get_mut(&key) {
            *used = self.uses;
            return true;
        }
        if self.failures.get(&addr).is_some_and(|f| now < f.until) {
            return false;
        }
        let start = Instant::now();
        let ok = file.check(user, password);
        self.spent += start.elapsed();
        if ok {
            self.remember(key);
            self.failures.remove(&addr);
        } else {
            self.failed(addr, now);
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

    fn remember(&mut self, key: [u8; 32]) {
        if self.verified.len() >= CACHE_SIZE {
            let oldest = self.verified.iter().min_by_key(|(_, &used)| used);
            if let Some((&old, _)) = oldest {
                self.verified.remove(&old);
            }
        }
        self.verified.insert(key, self.uses);
    }

    fn failed(&mut self, addr: IpAddr, now: u64) {
        if self.failures.len() >= MAX_ADDRESSES && !self.failures.contains_key(&addr) {
            self.failures.retain(|_, f| now < f.until);
            if self.failures.len() >= MAX_ADDRESSES {
                self.failures.clear();
            }
        }
        let f = self
            .failures
            .entry(addr)
            .or_insert(Failures { count: 0, until: 0 });
        f.count = f.count.saturating_add(1);
        if f.count >= FREE_FAILURES {
            let doublings = (f.count - FREE_FAILURES).min(16);
            let backoff = (FIRST_BACKOFF_MS << doublings).min(MAX_BACKOFF_MS);
            f.until = now.saturating_add(backoff);
        }
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
    fn work_is_counted_and_verified_credentials_are_cached() {
        let f = file(10);
        let mut g = strict();
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(g.check(&f, ip, "u", b"right", 0));
        assert!(g.exhausted());
        g.begin_iteration();
        assert!(g.check(&f, ip, "u", b"right", 0)); // cached: no work
        assert!(!g.exhausted());
        assert!(!g.check(&f, ip, "u", b"wrong", 0));
        assert!(g.exhausted());
        g.begin_iteration();
        assert!(!g.exhausted());
    }

    #[test]
    fn repeat_failures_back_off_but_known_credentials_pass() {
        let f = file(1);
        let mut g = PasswordGuard::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(g.check(&f, ip, "u", b"right", 0));
        for _ in 0..FREE_FAILURES {
            assert!(!g.check(&f, ip, "u", b"wrong", 0));
        }
        // Backing off: even the right password is not hashed...
        assert!(!g.check(&f, ip, "x", b"right", 50));
        // ...but credentials verified before still pass.
        assert!(g.check(&f, ip, "u", b"right", 50));
        g.begin_iteration();
        assert!(!g.check(&f, ip, "u", b"wrong", FIRST_BACKOFF_MS));
        let other: IpAddr = [10, 0, 0, 2].into();
        g.forget();
        assert!(g.check(&f, other, "u", b"right", FIRST_BACKOFF_MS));
    }
}
