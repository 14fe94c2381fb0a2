//! The host program's side of the loop, beyond publish and subscribe: flow
//! control for its publishes (held back by a full queue like a client's,
//! never dropped), the thread-safe [`Remote`] handle that queues publishes
//! and a shutdown from other threads, and disconnecting a client by id.

use super::*;
use crate::broker::ShutdownHandle;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

/// Publishes a [`Remote`] may have queued before the loop takes them.
const REMOTE_LIMIT: usize = 4096;

/// What a host publish became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Written to online subscribers, queued for the others.
    Done,
    /// Also delivered or queued, but it filled an online subscriber's
    /// queue: further QoS 1/2 publishes are refused until the queue drains
    /// and the ready callback runs (QoS 0 ones still go).
    Paused,
}

/// The key a session's list of paused publishers holds for the host
/// program: no connection has it.
pub(super) fn host_publisher() -> ConnKey {
    ConnKey::saturating(usize::MAX)
}

/// A publish handed over by another thread.
struct Queued {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
}

#[derive(Default)]
struct RemoteQueue {
    publishes: VecDeque<Queued>,
    /// The broker has shut down: nothing more is taken.
    closed: bool,
}

type Shared = Arc<Mutex<RemoteQueue>>;

/// A poisoned lock only means another thread panicked while holding it;
/// the queue itself is always consistent.
fn lock(queue: &Shared) -> MutexGuard<'_, RemoteQueue> {
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// The host program as a publisher.
#[derive(Default)]
pub(super) struct HostState {
    /// A host publish filled an online subscriber's queue: QoS 1/2
    /// publishes wait until it drains.
    pub paused: bool,
    /// The host was resumed; the ready callback is owed.
    pub ready_pending: bool,
    on_ready: Option<Box<dyn FnMut() + Send>>,
    remote: Shared,
}

impl HostState {
    pub(super) fn resume(&mut self) {
        if self.paused {
            self.paused = false;
            self.ready_pending = true;
        }
    }

    pub(super) fn close_remote(&mut self) {
        let mut queue = lock(&self.remote);
        queue.closed = true;
        queue.publishes.clear();
    }
}

/// A handle on a broker for other threads: it queues publishes and a
/// shutdown and wakes the loop, which carries them out in its next
/// iteration. Cloneable; the broker's own methods stay single-threaded.
#[derive(Clone)]
pub struct Remote {
    queue: Shared,
    stop: ShutdownHandle,
}

impl Remote {
    /// Queues a publish for the loop (payload copied). Fails with
    /// [`io::ErrorKind::WouldBlock`] when 4,096 publishes are
    /// already waiting (the loop is behind or the host is paused: try
    /// again later), and with [`io::ErrorKind::NotConnected`] once the
    /// broker has shut down.
    pub fn publish(&self, topic: &str, payload: &[u8], qos: QoS, retain: bool) -> io::Result<()> {
        if !topic::valid_name(topic) || topic.contains('\0') || topic.len() > 65_535 {
            return Err(invalid("invalid topic name"));
        }
        let was_empty = {
            let mut queue = lock(&self.queue);
            if queue.closed {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the broker has shut down",
                ));
            }
            if queue.publishes.len() >= REMOTE_LIMIT {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "too many publishes waiting for the broker's loop",
                ));
            }
            queue.publishes.push_back(Queued {
                topic: topic.into(),
                payload: payload.into(),
                qos,
                retain,
            });
            queue.publishes.len() == 1
        };
        // A queue that was not empty has a wake-up (or a resume) coming.
        if was_empty {
            self.stop.wake();
        }
        Ok(())
    }

    /// Asks the loop to shut down (see [`crate::Broker::is_shutting_down`]).
    pub fn shutdown(&self) {
        self.stop.shutdown();
    }
}

impl Engine {
    /// A handle for other threads (see [`Remote`]) that stops the loop
    /// with `stop`.
    pub(crate) fn remote(&self, stop: ShutdownHandle) -> Remote {
        Remote {
            queue: self.host.remote.clone(),
            stop,
        }
    }

    /// See [`crate::Broker::host_paused`].
    pub fn host_paused(&self) -> bool {
        self.host.paused
    }

    /// See [`crate::Broker::set_ready_callback`].
    pub fn set_ready_callback(&mut self, callback: impl FnMut() + Send + 'static) {
        self.host.on_ready = Some(Box::new(callback));
    }

    /// See [`crate::Broker::disconnect_client`].
    pub fn disconnect_client(&mut self, client_id: &str) -> bool {
        let key = self
            .sessions
            .find(client_id)
            .and_then(|sid| self.sessions.get(sid))
            .and_then(Session::conn);
        let Some(key) = key else {
            return false;
        };
        self.set_now(Instant::now());
        self.close(key, Reason::Kicked);
        true
    }

    /// The loop could not watch connection `key`'s socket: it ends.
    pub fn conn_failed(&mut self, key: ConnKey, e: io::Error) {
        self.close(key, Reason::Io(e));
    }

    /// A session's queue is full while the host publishes: the message is
    /// queued anyway (overshooting by one, as for a client) and the host
    /// waits for the queue to drain.
    pub(super) fn pause_host(&mut self, sid: SessionKey) -> bool {
        let Some(sess) = self.sessions.get_mut(sid) else {
            return false;
        };
        let waiters = &mut sess.flow_mut().waiters;
        if !waiters.iter().any(|&(k, _)| k == host_publisher()) {
            waiters.push((host_publisher(), 0));
        }
        if !self.host.paused {
            self.host.paused = true;
            self.stats.publishers_paused += 1;
            debug!("host publisher paused: queue of {} is full", sess.client_id);
        }
        true
    }

    /// The end of an iteration: the ready callback if the host was resumed,
    /// then what other threads queued and could not go before.
    pub(super) fn host_turn(&mut self) {
        if std::mem::take(&mut self.host.ready_pending) {
            if let Some(cb) = self.host.on_ready.as_mut() {
                cb();
            }
            self.drain_remote();
        }
    }

    /// Publishes what [`Remote`]s queued, in order, until the host is
    /// paused (a QoS 0 publish at the front still goes).
    pub fn drain_remote(&mut self) {
        loop {
            let next = {
                let mut queue = lock(&self.host.remote);
                let blocked = queue
                    .publishes
                    .front()
                    .is_some_and(|p| self.host.paused && p.qos != QoS::AtMostOnce);
                if blocked {
                    None
                } else {
                    queue.publishes.pop_front()
                }
            };
            let Some(p) = next else {
                return;
            };
            let none = Properties::NONE;
            if let Err(e) =
                self.publish_with_properties(&p.topic, &p.payload, p.qos, p.retain, none)
            {
                warn!("a publish queued from another thread failed: {e}");
            }
        }
    }
}
