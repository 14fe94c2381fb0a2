//! Users and access control from mosquitto-format files.
//!
//! - [`password`]: `password_file` (`user:$7$...` / `user:$6$...` lines, as
//!   `mosquitto_passwd` writes them) and the hashing `midge-passwd` uses;
//! - [`acl`]: `acl_file` (`user`, `topic`, `pattern` lines);
//! - [`guard`]: keeps password checks from starving the loop.

pub mod acl;
pub mod guard;
pub mod password;

pub use acl::{filter_covers, filters_overlap, Acl, Permission, Verdict};
pub use guard::PasswordGuard;
pub use password::{hash_password, PasswordFile};

/// The warning mosquitto 2 gives for a password or ACL file that every
/// user may read or write (`mosquitto_passwd` keeps a file's mode, so the
/// mode is the administrator's choice): `None` for a private file.
pub fn open_to_others(path: &std::path::Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        (mode & 0o007 != 0).then(|| {
            format!(
                "{} is open to every user (mode {:04o}): use `chmod 0600` \
                 (or 0640 with the broker's group)",
                path.display(),
                mode & 0o7777
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}
