//! The global memory budget (mosquitto's `memory_limit`): the bytes held
//! for connections (the frame each is reading, its output, its parked
//! PUBLISHes, its Will), brought up to date once per read and per write of a
//! connection, never per message, and the reads that wait for room.
//!
//! A frame is charged in full from its header on, so frames that would
//! not fit together are never buffered together: the connection that
//! starts one waits (its socket is not read, TCP pushes back on the
//! client) until enough is released. A frame larger than the whole budget
//! can never fit and is refused from its header (`Config::max_remaining_length`);
//! so is one that cannot fit beside the connection's own Will, which is
//! released only with the connection ([`Engine::never_fits`]).

use super::*;
use crate::conn::MAX_CHARGE;

/// Frames up to this size are read whatever the budget: acknowledgements,
/// pings and small messages keep flowing, so what holds the budget (a
/// subscriber's output, waiting for its PUBACKs) can drain.
pub(super) const SMALL_FRAME: usize = 16 * 1024;

/// Bytes counted against the budget, and the connections waiting for room.
#[derive(Debug, Default)]
pub(super) struct Memory {
    used: usize,
    waiting: Vec<ConnKey>,
}

impl Memory {
    /// Bytes held for connections (the whole of every frame started).
    pub(super) fn used(&self) -> usize {
        self.used
    }

    /// [`Engine::recount`] for a connection at hand (no second lookup on
    /// the paths every message takes).
    pub(super) fn recount(&mut self, limit: usize, key: ConnKey, conn: &mut Conn) -> bool {
        let others = self.used.saturating_sub(conn.charged());
        let wanted = match conn.input() {
            [] => 0,
            input => protocol::bytes_wanted(input),
        };
        let full = charge(conn, wanted);
        let waiting = conn.mem_waiting();
        let fits = !waiting
            && (limit == 0
                || conn.input().len() + wanted <= SMALL_FRAME
                || full as usize <= conn.charged()
                || others + full as usize <= limit);
        let now = if fits { full } else { charge(conn, 0) };
        if !fits && !waiting {
            self.waiting.push(key);
        }
        conn.set_charge(now, !fits);
        self.used = others + now as usize;
        fits
    }
}

/// What `conn` holds against the budget: the whole frame it is reading
/// (as declared by its header), its output, its parked PUBLISHes and its
/// Will. Saturates at [`MAX_CHARGE`] (2 GiB), the most [`Conn`] records.
fn charge(conn: &Conn, wanted: usize) -> u32 {
    let will = conn
        .will
        .as_ref()
        .map_or(0, |w| w.topic.len() + w.payload.len());
    let held = conn.input().len() + wanted + conn.out_len() + conn.parked_bytes() + will;
    u32::try_from(held).map_or(MAX_CHARGE, |n| n.min(MAX_CHARGE))
}

impl Engine {
    /// Brings the budget up to date with what `key` holds now, and says
    /// whether it may read on: the frame it has started fits beside what
    /// the others hold, or is small, or was admitted already. Otherwise
    /// only the bytes it has are charged and it waits for room (see
    /// [`Engine::resume_waiting`]).
    pub(super) fn recount(&mut self, key: ConnKey) -> bool {
        let limit = self.config.memory_limit;
        match self.conns.get_mut(key) {
            Some(conn) => self.memory.recount(limit, key, conn),
            None => false,
        }
    }

    /// The size of the frame `key` has started if it can never be read:
    /// with the connection's own Will (held until it ends) it is larger
    /// than the whole budget, so no room made by others would do.
    pub(super) fn never_fits(&self, key: ConnKey) -> Option<usize> {
        let limit = self.config.memory_limit;
        let conn = self.conns.get(key)?;
        let will = conn.will.as_ref()?;
        let frame = conn.input().len() + protocol::bytes_wanted(conn.input());
        let held = frame.saturating_add(will.topic.len() + will.payload.len());
        (limit > 0 && frame > SMALL_FRAME && held > limit).then_some(frame)
    }

    /// Releases what a closed connection held.
    pub(super) fn release(&mut self, conn: &Conn) {
        self.memory.used = self.memory.used.saturating_sub(conn.charged());
    }

    /// Reads again the waiting connections whose frame fits now. Called
    /// once per loop iteration; costs nothing while none waits.
    pub(super) fn resume_waiting(&mut self) {
        if self.memory.waiting.is_empty() {
            return;
        }
        let limit = self.config.memory_limit;
        let mut waiting = std::mem::take(&mut self.memory.waiting);
        waiting.retain(|&key| {
            let Some(conn) = self.conns.get_mut(key) else {
                return false;
            };
            let wanted = protocol::bytes_wanted(conn.input());
            let others = self.memory.used.saturating_sub(conn.charged());
            if limit > 0 && others + charge(conn, wanted) as usize > limit {
                return true;
            }
            conn.set_charge(conn.charged() as u32, false);
            if !conn.read_pending {
                conn.read_pending = true;
                self.pending_reads.push(key);
            }
            false
        });
        self.memory.waiting = waiting;
    }
}
