//! midge: a small, fast MQTT 3.1.1 broker (MQTT 3.1 clients welcome) on a
//! single-threaded `mio` event loop.
//!
//! The broker is a library first: [`Broker`] is what the `midge` binary
//! runs, and what a host program embeds.
//!
//! ```no_run
//! let mut config = midge::Config::default();
//! config.listen_on(["127.0.0.1:1883".parse().unwrap()]);
//! let mut broker = midge::Broker::new(config)?;
//! broker.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Modules, one concern each: [`protocol`] (wire format: 3.1, 3.1.1 and 5,
//! both directions), [`topic`] (names, filters, matching), [`router`]
//! (subscription table), [`shared`] (shared subscription groups),
//! [`session`] (per-client state), [`retained`],
//! [`config`], [`engine`] (everything the broker does, without I/O) and
//! [`broker`] (the event loop around it) over the transport (sockets and
//! listeners).

pub mod auth;
pub mod broker;
pub mod capi;
pub mod conffile;
pub mod config;
mod conn;
pub mod engine;
pub mod host;
mod keyed_list;
pub mod keys;
pub mod logging;
pub mod protocol;
pub mod retained;
pub mod router;
pub mod session;
pub mod shared;
mod stamp;
pub mod store;
pub mod syslog;
mod timer;
pub mod topic;
mod transport;

pub use broker::{Broker, Published, Remote, ShutdownHandle, Stats};
pub use config::Config;
pub use host::{Access, AuthDecision, AuthRequest, AuthStep, Credentials, Event, HostMessage};
