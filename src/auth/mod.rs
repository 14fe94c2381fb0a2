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
