//! IRCv3 capabilities we offer, in one table (CAP LS answers from it).

/// One capability: its name on the wire and its bit in a [`CapSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cap {
    pub(crate) name: &'static str,
    bit: u32,
}

/// `cap-notify`: CAP NEW/DEL are sent (always on for CAP LS 302 clients).
pub(crate) const CAP_NOTIFY: Cap = Cap {
    name: "cap-notify",
    bit: 1 << 0,
};
/// `multi-prefix`: every status prefix in NAMES and WHO, not just the highest.
pub(crate) const MULTI_PREFIX: Cap = Cap {
    name: "multi-prefix",
    bit: 1 << 1,
};
/// `userhost-in-names`: NAMES shows `nick!user@host`.
pub(crate) const USERHOST_IN_NAMES: Cap = Cap {
    name: "userhost-in-names",
    bit: 1 << 2,
};

/// Everything CAP LS offers, in the order it lists them.
pub(crate) const SUPPORTED: &[Cap] = &[CAP_NOTIFY, MULTI_PREFIX, USERHOST_IN_NAMES];

/// Looks up a capability by name.
pub(crate) fn by_name(name: &str) -> Option<Cap> {
    SUPPORTED.iter().copied().find(|cap| cap.name == name)
}

/// A set of enabled capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct CapSet(u32);

impl CapSet {
    pub(crate) fn has(self, cap: Cap) -> bool {
        self.0 & cap.bit != 0
    }

    pub(crate) fn set(&mut self, cap: Cap, on: bool) {
        if on {
            self.0 |= cap.bit;
        } else {
            self.0 &= !cap.bit;
        }
    }

    /// The enabled capabilities, in table order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Cap> {
        SUPPORTED.iter().copied().filter(move |cap| self.has(*cap))
    }
}
