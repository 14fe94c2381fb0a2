//! Password files in mosquitto's format, as `mosquitto_passwd` writes them.
//!
//! One `user:hash` per line; blank lines and lines starting with `#` are
//! ignored. Two hash formats:
//!
//! - `$7$<iterations>$<base64 salt>$<base64 hash>`: PBKDF2-HMAC-SHA512 with a
//!   64-byte output (mosquitto 2.0's default, 101 iterations, 12-byte salt);
//! - `$6$<base64 salt>$<base64 hash>`: SHA-512 of the password bytes followed
//!   by the salt bytes (mosquitto 1.6 and earlier).
//!
//! Hashes are compared in constant time, and a user who is not in the file
//! costs a hash computation too, so that the answer's timing does not tell
//! whether a user name exists.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::path::Path;
use subtle::ConstantTimeEq;

/// mosquitto_passwd's default iteration count for `$7$`.
pub const DEFAULT_ITERATIONS: u32 = 101;
/// Iteration counts above this are refused when a file is loaded (and by
/// `midge-passwd -I`): verifying a password runs on the broker's loop.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Salt length `hash_password` uses (as mosquitto_passwd).
pub const SALT_LEN: usize = 12;
const HASH_LEN: usize = 64;
const MAX_SALT_LEN: usize = 1024;

/// Standard alphabet; padding optional on input, written on output.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Clone)]
enum Hash {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: [u8; HASH_LEN],
    },
    /// `$6$`: SHA-512(password || salt).
    Sha512 { salt: Vec<u8>, hash: [u8; HASH_LEN] },
}

impl Hash {
    fn parse(text: &str) -> Result<Hash, String> {
        let fields: Vec<&str> = text.split('$').collect();
        match fields.as_slice() {
            ["", "7", iterations, salt, hash] => {
                let iterations: u32 = iterations
                    .parse()
                    .map_err(|_| format!("bad iteration count {iterations:?}"))?;
                if iterations == 0 || iterations > MAX_ITERATIONS {
                    return Err(format!(
                        "iteration count {iterations} out of range (1..={MAX_ITERATIONS})"
                    ));
                }
                Ok(Hash::Pbkdf2 {
                    iterations,
                    salt: decode_salt(salt)?,
                    hash: decode_hash(hash)?,
                })
            }
            ["", "6", salt, hash] => Ok(Hash::Sha512 {
                salt: decode_salt(salt)?,
                hash: decode_hash(hash)?,
            }),
            ["", "7", ..] => Err("malformed $7$ hash (want $7$iterations$salt$hash)".into()),
            ["", "6", ..] => Err("malformed $6$ hash (want $6$salt$hash)".into()),
            _ => Err("unsupported password hash (want $7$... or $6$...)".into()),
        }
    }

    fn compute(&self, password: &[u8]) -> [u8; HASH_LEN] {
        let mut out = [0u8; HASH_LEN];
        match self {
            Hash::Pbkdf2 {
                iterations, salt, ..
            } => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out),
            Hash::Sha512 { salt, .. } => {
                let mut h = Sha512::new();
                h.update(password);
                h.update(salt);
                out.copy_from_slice(&h.finalize());
            }
        }
        out
    }

    fn verify(&self, password: &[u8]) -> bool {
        let expected = match self {
            Hash::Pbkdf2 { hash, .. } | Hash::Sha512 { hash, .. } => hash,
        };
        bool::from(self.compute(password).ct_eq(expected))
    }
}

fn decode_salt(text: &str) -> Result<Vec<u8>, String> {
    let salt = B64
        .decode(text)
        .map_err(|e| format!("bad base64 in salt: {e}"))?;
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return Err(format!("salt length {} out of range", salt.len()));
    }
    Ok(salt)
}

fn decode_hash(text: &str) -> Result<[u8; HASH_LEN], String> {
    let hash = B64
        .decode(text)
        .map_err(|e| format!("bad base64 in hash: {e}"))?;
    hash.as_slice()
        .try_into()
        .map_err(|_| format!("hash is {} bytes, want {HASH_LEN}", hash.len()))
}

/// The users of a password file and their hashes.
#[derive(Clone)]
pub struct PasswordFile {
    users: HashMap<String, Hash>,
    /// Checked against for a user who is not in the file.
    dummy: Hash,
}

impl std::fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordFile")
            .field("users", &self.users.len())
            .finish()
    }
}

impl PasswordFile {
    /// Reads and parses a password file. Errors name the file and the line.
    pub fn load(path: impl AsRef<Path>) -> Result<PasswordFile, String> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("password file {}: {e}", path.display()))?;
        PasswordFile::parse(&text).map_err(|e| format!("password file {}: {e}", path.display()))
    }

    /// Parses a password file's text. Errors start with `line N: `.
    pub fn parse(text: &str) -> Result<PasswordFile, String> {
        let mut users = HashMap::new();
        let mut dummy_iterations = None;
        for (index, line) in text.lines().enumerate() {
            let n = index + 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {n}: expected user:hash"));
            };
            if user.is_empty() {
                return Err(format!("line {n}: empty user name"));
            }
            let hash = Hash::parse(hash.trim_end())
                .map_err(|e| format!("line {n}: user {user:?}: {e}"))?;
            if let Hash::Pbkdf2 { iterations, .. } = hash {
                dummy_iterations.get_or_insert(iterations);
            }
            if users.insert(user.to_string(), hash).is_some() {
                return Err(format!("line {n}: user {user:?} appears twice"));
            }
        }
        let dummy = Hash::Pbkdf2 {
            iterations: dummy_iterations.unwrap_or(DEFAULT_ITERATIONS),
            salt: vec![0x5a; SALT_LEN],
            hash: [0; HASH_LEN],
        };
        Ok(PasswordFile { users, dummy })
    }

    /// True if `user` is in the file and `password` is theirs. A user who is
    /// not in the file costs a hash computation too, and the comparison is
    /// in constant time.
    pub fn check(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(hash) => hash.verify(password),
            None => {
                // Same work as a real user; the result is thrown away.
                let _ = self.dummy.verify(password);
                false
            }
        }
    }

    /// True if the file has an entry for `user`.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// A `$7$` hash of `password` (PBKDF2-HMAC-SHA512, `iterations` rounds, a
/// random 12-byte salt), as `mosquitto_passwd` writes it. Panics if the
/// operating system's random number generator fails or `iterations` is 0.
pub fn hash_password(password: &[u8], iterations: u32) -> String {
    assert!(iterations > 0, "iterations must be > 0");
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).expect("the OS random number generator failed");
    hash_password_with_salt(password, iterations, &salt)
}

/// `hash_password` with a given salt (for tests and known vectors).
pub fn hash_password_with_salt(password: &[u8], iterations: u32, salt: &[u8]) -> String {
    let mut out = [0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
    format!("$7${iterations}${}${}", B64.encode(salt), B64.encode(out))
}

/// Which hash `midge-passwd -H` writes (mosquitto_passwd's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// `sha512-pbkdf2`, `$7$` (the default).
    Pbkdf2 { iterations: u32 },
    /// `sha512`, `$6$`: what mosquitto 1.6 and earlier wrote.
    Sha512,
}

impl HashKind {
    /// A hash of `password` of this kind with a fresh random salt. Panics
    /// as [`hash_password`] does.
    pub fn hash(self, password: &[u8]) -> String {
        match self {
            HashKind::Pbkdf2 { iterations } => hash_password(password, iterations),
            HashKind::Sha512 => {
                let mut salt = [0u8; SALT_LEN];
                getrandom::fill(&mut salt).expect("the OS random number generator failed");
                hash_sha512_with_salt(password, &salt)
            }
        }
    }
}

/// A `$6$` hash: SHA-512 of the password then the salt.
pub fn hash_sha512_with_salt(password: &[u8], salt: &[u8]) -> String {
    let mut h = Sha512::new();
    h.update(password);
    h.update(salt);
    format!("$6${}${}", B64.encode(salt), B64.encode(h.finalize()))
}

/// Replaces the plain-text password of every `user:password` line with
/// `hash(password)` (`midge-passwd -U`, mosquitto_passwd's conversion of
/// a plain file). Comments, blank lines and lines that already hold a
/// valid hash are kept as they are, so converting twice does no harm
/// (mosquitto_passwd would hash the hashes). The password ends at the next
/// `:`, as mosquitto_passwd and mosquitto 1.x's plain files read it.
/// Returns the text and the number of lines hashed.
pub fn hash_plain_lines(text: &str, mut hash: impl FnMut(&[u8]) -> String) -> (String, usize) {
    let mut out = String::with_capacity(text.len() * 2);
    let mut hashed = 0;
    for line in text.lines() {
        let bare = line.strip_suffix('\r').unwrap_or(line);
        match bare.split_once(':') {
            Some((user, rest))
                if !bare.trim_start().starts_with('#') && Hash::parse(rest).is_err() =>
            {
                let password = rest.split(':').next().unwrap_or(rest);
                out.push_str(user);
                out.push(':');
                out.push_str(&hash(password.as_bytes()));
                hashed += 1;
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    (out, hashed)
}

/// Checks a user name as mosquitto_passwd does: not empty, no `:`, and no
/// line breaks (which would corrupt the file).
pub fn valid_username(user: &str) -> Result<(), String> {
    if user.is_empty() {
        Err("user name must not be empty".into())
    } else if user.contains(':') {
        Err("user name must not contain the ':' character".into())
    } else if user.contains(['\n', '\r']) {
        Err("user name must not contain a line break".into())
    } else {
        Ok(())
    }
}

/// Sets (`Some(hash)`) or deletes (`None`) `user`'s line in a password
/// file's text, keeping every other line (comments included) as it was. A
/// new user is appended at the end; an existing one is replaced in place
/// (later duplicates are removed). Returns the new text and whether the user
/// was there before.
pub fn set_user_line(text: &str, user: &str, hash: Option<&str>) -> (String, bool) {
    let mut out = String::with_capacity(text.len() + user.len() + 128);
    let mut found = false;
    for line in text.lines() {
        let bare = line.strip_suffix('\r').unwrap_or(line);
        let is_user = !bare.trim_start().starts_with('#')
            && bare.split_once(':').is_some_and(|(u, _)| u == user);
        if is_user {
            if let (Some(hash), false) = (hash, found) {
                out.push_str(user);
                out.push(':');
                out.push_str(hash);
                out.push('\n');
            }
            found = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let (Some(hash), false) = (hash, found) {
        out.push_str(user);
        out.push(':');
        out.push_str(hash);
        out.push('\n');
    }
    (out, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trip() {
        let line = hash_password(b"pw", 7);
        assert!(line.starts_with("$7$7$"));
        let h = Hash::parse(&line).unwrap();
        assert!(h.verify(b"pw"));
        assert!(!h.verify(b"pw "));
    }

    #[test]
    fn sha512_hashes_verify_and_plain_lines_are_hashed_once() {
        let line = hash_sha512_with_salt(b"pw", b"salt");
        assert!(line.starts_with("$6$c2FsdA==$"), "{line}");
        assert!(Hash::parse(&line).unwrap().verify(b"pw"));
        let kind = HashKind::Pbkdf2 { iterations: 3 };
        let text = "# users\r\na:pw1\r\n\nb:pw:2\n";
        let (once, n) = hash_plain_lines(text, |p| kind.hash(p));
        assert_eq!(n, 2);
        let file = PasswordFile::parse(&once).unwrap();
        assert!(file.check("a", b"pw1") && file.check("b", b"pw"));
        assert!(once.starts_with("# users\n"), "{once}");
        let (twice, n) = hash_plain_lines(&once, |p| kind.hash(p));
        assert_eq!((twice, n), (once, 0), "hashes are not hashed again");
    }

    #[test]
    fn set_user_line_keeps_other_lines() {
        let text = "# c\na:$7$x\n\nb:$6$y\n";
        let (t, found) = set_user_line(text, "b", Some("$7$z"));
        assert!(found);
        assert_eq!(t, "# c\na:$7$x\n\nb:$7$z\n");
        let (t, found) = set_user_line(&t, "a", None);
        assert!(found);
        assert_eq!(t, "# c\n\nb:$7$z\n");
        let (t, found) = set_user_line(&t, "c", Some("h"));
        assert!(!found);
        assert_eq!(t, "# c\n\nb:$7$z\nc:h\n");
    }
}
