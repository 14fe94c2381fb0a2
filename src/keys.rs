//! Typed keys for the broker's tables, and where a routed message goes.
//!
//! Sessions, connections, host subscriptions and shared subscription groups
//! each live in a slab and are
//! named by their slot. The slots are all small integers, so a bare `usize`
//! would let one be used for another; these newtypes make that a compile
//! error. Each is a `u32`: every entry costs memory, so no table comes near
//! 4 billion entries, and the router keeps one key per subscription.

use std::fmt;

macro_rules! key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u32);

        impl $name {
            /// The key of slab slot `index`; `None` past `u32::MAX`
            /// (unreachable: see the module documentation).
            pub fn new(index: usize) -> Option<$name> {
                u32::try_from(index).ok().map($name)
            }

            /// The key of slab slot `index`, or `u32::MAX` past it: such a
            /// key packs to no [`Destination`], so the router ignores it.
            pub fn saturating(index: usize) -> $name {
                $name(u32::try_from(index).unwrap_or(u32::MAX))
            }

            /// The slab slot.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

key!(
    /// A session (online or offline) in the broker's session table.
    SessionKey
);
key!(
    /// A client connection in the loop's connection table (also its poll
    /// token).
    ConnKey
);
key!(
    /// A subscription made by the embedding program
    /// ([`crate::Broker::subscribe`]).
    HostKey
);
key!(
    /// A shared subscription group (`$share/GROUP/FILTER`) in
    /// [`crate::shared::Groups`].
    GroupKey
);

/// Who a routed message is for. A session holds it for a client (online or
/// not); a host subscription hands it to the embedding program's callback;
/// a shared subscription group hands it to one of its members. Bridges
/// will be a fourth kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    Session(SessionKey),
    Host(HostKey),
    Group(GroupKey),
}

/// Where a routed message came from. No Local, the pausing of a publisher
/// whose subscriber's queue is full, and the publisher named to host
/// callbacks ask it; a bridge will be another kind, so that a message is
/// not sent back where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client's PUBLISH, on this connection.
    Client(ConnKey),
    /// The host program ([`crate::Broker::publish`]).
    Host,
    /// The broker itself: a Will, `$SYS`.
    Broker,
}

/// The top two bits of a packed [`Destination`] say its kind (the
/// `KIND_*` values), the other 30 its key.
const KIND_SHIFT: u32 = 30;
const KEY_MASK: u32 = (1 << KIND_SHIFT) - 1;
/// The kinds of packed destinations.
const KIND_SESSION: u32 = 0;
const KIND_GROUP: u32 = 1;
const KIND_HOST: u32 = 2;

impl Destination {
    /// How many kinds [`Destination::packed_slot`] can report (one value
    /// of the two bits is unused).
    pub const KINDS: usize = 4;

    /// Packs into 32 bits, for the router's per-subscription entries.
    /// `None` for a key too large to pack (2^30 sessions, host
    /// subscriptions or groups: unreachable in memory).
    pub fn pack(self) -> Option<u32> {
        let (raw, kind) = match self {
            Destination::Session(k) => (k.0, KIND_SESSION),
            Destination::Host(k) => (k.0, KIND_HOST),
            Destination::Group(k) => (k.0, KIND_GROUP),
        };
        (raw & !KEY_MASK == 0).then_some(raw | kind << KIND_SHIFT)
    }

    /// Which table a packed destination indexes (below
    /// [`Destination::KINDS`]) and its slot there, without building the
    /// enum: the router asks this for every match.
    #[inline]
    pub fn packed_slot(packed: u32) -> (usize, usize) {
        (
            (packed >> KIND_SHIFT) as usize,
            (packed & KEY_MASK) as usize,
        )
    }

    /// The inverse of [`Destination::pack`].
    pub fn unpack(packed: u32) -> Destination {
        let raw = packed & KEY_MASK;
        match packed >> KIND_SHIFT {
            KIND_SESSION => Destination::Session(SessionKey(raw)),
            KIND_GROUP => Destination::Group(GroupKey(raw)),
            _ => Destination::Host(HostKey(raw)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_pack_into_32_bits_and_back() {
        for d in [
            Destination::Session(SessionKey(0)),
            Destination::Session(SessionKey(KEY_MASK)),
            Destination::Host(HostKey(0)),
            Destination::Host(HostKey(KEY_MASK)),
            Destination::Group(GroupKey(0)),
            Destination::Group(GroupKey(KEY_MASK)),
        ] {
            let packed = d.pack().expect("packs");
            assert_eq!(Destination::unpack(packed), d);
            assert!(Destination::packed_slot(packed).0 < Destination::KINDS);
        }
        assert_eq!(Destination::Session(SessionKey(KEY_MASK + 1)).pack(), None);
        assert_eq!(Destination::Group(GroupKey(u32::MAX)).pack(), None);
        let seven = [
            Destination::Session(SessionKey(7)).pack(),
            Destination::Host(HostKey(7)).pack(),
            Destination::Group(GroupKey(7)).pack(),
        ];
        assert!(seven[0] != seven[1] && seven[1] != seven[2] && seven[0] != seven[2]);
    }
}
