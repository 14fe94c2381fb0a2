//! A session's outbound in-flight window: its size and growth, what is
//! resent (or held back) at a reconnect, packet identifiers, the
//! acknowledgements that complete or advance a message (MQTT 3.1.1 §4.3,
//! §4.6), and the same transitions replayed from the store.

use super::{Delivery, Inflight, Session, Stage, START_WINDOW};
use crate::protocol::{AckKind, QoS};

/// A window of `n` messages within 1 ..= `cap` (and 65,535, the number of
/// packet ids); `cap` 0 is no maximum (mosquitto's `max_inflight_messages
/// 0`).
fn clamp_window(n: usize, cap: usize) -> u16 {
    let cap = if cap == 0 { usize::MAX } else { cap };
    u16::try_from(n.min(cap)).unwrap_or(u16::MAX).max(1)
}

impl Session {
    /// How many QoS 1/2 messages may be unacknowledged at once.
    pub fn window(&self) -> usize {
        usize::from(self.window)
    }

    /// Starts the in-flight window of a new connection: [`START_WINDOW`],
    /// or `cap` (`max_inflight_messages`; later also an MQTT 5 client's
    /// Receive Maximum) if that is lower.
    pub fn start_window(&mut self, cap: usize) {
        self.window = clamp_window(START_WINDOW, cap);
        self.ack_while_full = false;
    }

    /// Grows the window by one, up to `cap`, if an acknowledgement arrived
    /// while it was full and messages waited behind it: the client keeps
    /// up, and the window is what holds it back. One more per such
    /// acknowledgement doubles the window every round trip, like TCP's slow
    /// start, so a fast subscriber soon has enough in flight to cover the
    /// time an acknowledgement takes to come back. There is no shrinking:
    /// over TCP nothing is lost to signal congestion, and a client that
    /// reads slowly is already held back by `max_outgoing_bytes` (its
    /// window only bounds what is resent if it reconnects).
    pub fn grow_window(&mut self, cap: usize) {
        if std::mem::take(&mut self.ack_while_full) {
            self.window = clamp_window(self.window() + 1, cap);
        }
    }

    /// True if the in-flight window has room for one more message: fewer
    /// than the window's messages, and fewer than `max_bytes` payload bytes
    /// (0: no byte limit) in flight.
    pub fn window_open(&self, max_bytes: usize) -> bool {
        let flow = self.flow();
        let sent = flow.inflight.len() - flow.held;
        sent < self.window() && (max_bytes == 0 || flow.inflight_bytes < max_bytes)
    }

    /// At a reconnect: the in-flight messages to resend now, at most
    /// `cap` (the client's Receive Maximum), oldest first; the others are
    /// held until acknowledgements make room (see [`Session::unhold`]).
    pub fn resend_at_most(&mut self, cap: usize) -> impl Iterator<Item = &Inflight> {
        let flow = self.flow_mut();
        flow.held = 0;
        for (i, f) in flow.inflight.iter_mut().enumerate() {
            f.held = i >= cap;
            flow.held += f.held as usize;
        }
        flow.inflight.iter().filter(|f| !f.held)
    }

    /// The oldest held in-flight message, released for resending if the
    /// window has room for it.
    pub fn unhold(&mut self) -> Option<&Inflight> {
        if self.flow().held == 0 || self.flow().inflight.len() - self.flow().held >= self.window() {
            return None;
        }
        let flow = self.flow_mut();
        let f = flow.inflight.iter_mut().find(|f| f.held)?;
        f.held = false;
        flow.held -= 1;
        Some(f)
    }

    /// A packet identifier not in flight in this session [MQTT-2.3.1-4].
    /// Ids are given in increasing order and wrap around to 1: an id given
    /// since the last wrap is below every id still to come in this lap, so
    /// only the messages in flight at the wrap (usually none or the last
    /// few of the previous lap: a narrow range) can hold a coming id, and
    /// only ids in their range need the scan of the window. At most 65,535
    /// are in flight ([`Session::start_window`]), so a free id exists.
    pub fn alloc_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1);
            if self.next_pkid == 0 {
                continue;
            }
            let id = self.next_pkid;
            if id == 1 {
                self.note_old_pkids();
            }
            let (first, last) = self.flow().old_pkids;
            if !(first..=last).contains(&id) || !self.flow().inflight.iter().any(|f| f.pkid == id) {
                return id;
            }
        }
    }

    /// At a wrap of the packet ids: the range of those in flight now.
    fn note_old_pkids(&mut self) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        let ids = flow.inflight.iter().map(|f| f.pkid);
        flow.old_pkids = match (ids.clone().min(), ids.max()) {
            (Some(first), Some(last)) => (first, last),
            _ => (0, 0),
        };
    }

    fn find(&self, pkid: u16, qos: QoS, stage: Stage) -> Option<usize> {
        // Acks usually arrive in order: the front is the likely hit.
        self.flow()
            .inflight
            .iter()
            .position(|f| f.pkid == pkid && f.delivery.qos == qos && f.stage == stage)
    }

    /// Whether an acknowledgement fits the message in flight under `pkid`
    /// (true if there is none: an ack for an unknown id is ignored). PUBACK
    /// fits a QoS 1 message, PUBREC a QoS 2 one (again after PUBREC: a
    /// resent PUBREC), PUBCOMP a QoS 2 one past PUBREC; as in mosquitto.
    pub fn ack_fits(&self, pkid: u16, ack: AckKind) -> bool {
        let Some(f) = self.flow().inflight.iter().find(|f| f.pkid == pkid) else {
            return true;
        };
        matches!(
            (ack, f.delivery.qos, f.stage),
            (AckKind::PubAck, QoS::AtLeastOnce, _)
                | (AckKind::PubRec, QoS::ExactlyOnce, _)
                | (AckKind::PubComp, QoS::ExactlyOnce, Stage::Released)
        )
    }

    /// PUBACK from the client: the completed QoS 1 delivery, if any.
    pub fn puback(&mut self, pkid: u16) -> Option<Inflight> {
        let i = self.find(pkid, QoS::AtLeastOnce, Stage::Sent)?;
        self.complete(i)
    }

    fn complete(&mut self, i: usize) -> Option<Inflight> {
        let flow = self.flow();
        let waiting = !flow.queue.is_empty() || !flow.owed.is_empty() || !flow.scans.is_empty();
        if flow.inflight.len() >= self.window() && waiting {
            self.ack_while_full = true;
        }
        let flow = self.flow_mut();
        let done = flow.inflight.remove(i)?;
        flow.inflight_bytes -= done.delivery.msg.payload.len();
        flow.held -= done.held as usize;
        Some(done)
    }

    /// PUBREC from the client: the message is now released. It moves to the
    /// back so PUBRELs are resent in PUBREC order [MQTT-4.6.0-4]. Returns
    /// whether the id was known (a PUBREL is sent either way) and the
    /// sequence of a message released just now.
    pub fn pubrec(&mut self, pkid: u16) -> (bool, Option<u64>) {
        if let Some(i) = self.find(pkid, QoS::ExactlyOnce, Stage::Sent) {
            let inflight = &mut self.flow_mut().inflight;
            if let Some(mut f) = inflight.remove(i) {
                f.stage = Stage::Released;
                let seq = f.delivery.seq;
                inflight.push_back(f);
                return (true, Some(seq));
            }
        }
        (
            self.find(pkid, QoS::ExactlyOnce, Stage::Released).is_some(),
            None,
        )
    }

    /// PUBREC with an error code (MQTT 5): the client refused the QoS 2
    /// message, which is done with; no PUBREL follows.
    pub fn pubrec_refused(&mut self, pkid: u16) -> Option<Inflight> {
        let i = self.find(pkid, QoS::ExactlyOnce, Stage::Sent)?;
        self.complete(i)
    }

    /// PUBCOMP from the client: the completed QoS 2 delivery, if any.
    pub fn pubcomp(&mut self, pkid: u16) -> Option<Inflight> {
        let i = self.find(pkid, QoS::ExactlyOnce, Stage::Released)?;
        self.complete(i)
    }

    /// A PUBLISH in flight under `pkid` that cannot be sent again (larger
    /// than the client now takes): done with, if it was there.
    pub fn drop_unsent(&mut self, pkid: u16) -> Option<Inflight> {
        let flow = self.flow();
        let i = flow
            .inflight
            .iter()
            .position(|f| f.pkid == pkid && f.stage == Stage::Sent)?;
        self.complete(i)
    }

    /// Puts a delivery in flight under `pkid`.
    pub fn send(&mut self, pkid: u16, delivery: Delivery) {
        let flow = self.flow_mut();
        flow.inflight_bytes += delivery.msg.payload.len();
        flow.inflight.push_back(Inflight {
            pkid,
            delivery,
            stage: Stage::Sent,
            held: false,
        });
    }

    /// Removes the queued message `seq`, if it is there.
    fn unqueue(&mut self, seq: u64) -> Option<Delivery> {
        let flow = self.flow.as_mut()?;
        let i = flow.queue.iter().position(|d| d.seq == seq)?;
        let d = flow.queue.remove(i)?;
        flow.queued_bytes -= d.msg.payload.len();
        Some(d)
    }

    // Replaying the store (see `engine::persist`): the same transitions as
    // live traffic, by sequence number instead of packet id.

    /// The stored message `seq` was sent under `pkid`.
    pub fn replay_sent(&mut self, seq: u64, pkid: u16) {
        if let Some(d) = self.unqueue(seq) {
            self.send(pkid, d);
        }
    }

    /// The stored QoS 2 message `seq` was released (PUBREC arrived).
    pub fn replay_released(&mut self, seq: u64) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        if let Some(i) = flow.inflight.iter().position(|f| f.delivery.seq == seq) {
            if let Some(mut f) = flow.inflight.remove(i) {
                f.stage = Stage::Released;
                flow.inflight.push_back(f);
            }
        }
    }

    /// The stored message `seq` is done with (acknowledged or dropped).
    pub fn replay_done(&mut self, seq: u64) {
        if let Some(flow) = self.flow.as_mut() {
            if let Some(i) = flow.inflight.iter().position(|f| f.delivery.seq == seq) {
                if let Some(done) = flow.inflight.remove(i) {
                    flow.inflight_bytes -= done.delivery.msg.payload.len();
                    flow.held -= done.held as usize;
                }
            }
        }
        self.unqueue(seq);
    }
}
