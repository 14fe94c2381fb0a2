//! Typed keys for the broker's tables, and where a routed message goes.
//!
//! Sessions, connections and host subscriptions each live in a slab and are
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

/// Who a routed message is for. A session holds it for a client (online or
/// not); a host subscription hands it to the embedding program's callback.
/// Bridges will be a third kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    Session(SessionKey),
    Host(HostKey),
}

/// The top bit of a packed [`Destination`] marks a host subscription.
const HOST_BIT: u32 = 1 << 31;

impl Destination {
    /// Packs into 32 bits, for the router's per-subscription entries.
    /// `None` for a key too large to pack (2^31 sessions or host
    /// subscriptions: unreachable in memory).
    pub fn pack(self) -> Option<u32> {
        let (raw, tag) = match self {
            Destination::Session(k) => (k.0, 0),
            Destination::Host(k) => (k.0, HOST_BIT),
        };
        (raw & HOST_BIT == 0).then_some(raw | tag)
    }

    /// Which table a packed destination indexes (false: sessions, true:
    /// host subscriptions) and its slot there, without building the enum:
    /// the router asks this for every match.
    #[inline]
    pub fn packed_slot(packed: u32) -> (bool, usize) {
        (packed & HOST_BIT != 0, (packed & !HOST_BIT) as usize)
    }

    /// The inverse of [`Destination::pack`].
    pub fn unpack(packed: u32) -> Destination {
        let raw = packed & !HOST_BIT;
        if packed & HOST_BIT == 0 {
            Destination::Session(SessionKey(raw))
        } else {
            Destination::Host(HostKey(raw))
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
            Destination::Session(SessionKey(HOST_BIT - 1)),
            Destination::Host(HostKey(0)),
            Destination::Host(HostKey(7)),
        ] {
            assert_eq!(d.pack().map(Destination::unpack), Some(d));
        }
        assert_eq!(Destination::Session(SessionKey(HOST_BIT)).pack(), None);
        assert_ne!(
            Destination::Session(SessionKey(7)).pack(),
            Destination::Host(HostKey(7)).pack()
        );
    }
}
