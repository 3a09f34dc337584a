//! Case-insensitive comparison of nicknames and channel names.
//!
//! IRC compares names under a *casemapping* that the server announces in
//! `RPL_ISUPPORT CASEMAPPING=`. Under `rfc1459`, the historical default most clients
//! expect, `[]\~` are the upper-case forms of `{}|^`; under `ascii` only `A-Z` fold.
//! Maps keyed by names use [`CaseKey`], the folded form, so lookups never fold twice.

use std::borrow::Borrow;
use std::fmt;

/// A casemapping a server can announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaseMapping {
    /// `A-Z` fold to `a-z`.
    Ascii,
    /// `A-Z[]\~` fold to `a-z{}|^` (RFC 1459 §2.2).
    #[default]
    Rfc1459,
}

impl CaseMapping {
    /// The token for `RPL_ISUPPORT CASEMAPPING=`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ascii => "ascii",
            Self::Rfc1459 => "rfc1459",
        }
    }

    /// Folds one byte; bytes outside ASCII are left alone (UTF-8 safe).
    pub fn fold_byte(self, byte: u8) -> u8 {
        match (self, byte) {
            (_, b'A'..=b'Z') => byte + 32,
            (Self::Rfc1459, b'[') => b'{',
            (Self::Rfc1459, b']') => b'}',
            (Self::Rfc1459, b'\\') => b'|',
            (Self::Rfc1459, b'~') => b'^',
            _ => byte,
        }
    }

    /// The folded form of `name`.
    pub fn fold(self, name: &str) -> String {
        let mut bytes = name.as_bytes().to_vec();
        for byte in &mut bytes {
            *byte = self.fold_byte(*byte);
        }
        // Only ASCII bytes change, and only into other ASCII bytes: still UTF-8.
        String::from_utf8(bytes).unwrap_or_else(|_| name.to_owned())
    }

    /// Whether two names are equal under this casemapping.
    pub fn eq(self, a: &str, b: &str) -> bool {
        a.len() == b.len()
            && a.bytes()
                .zip(b.bytes())
                .all(|(x, y)| self.fold_byte(x) == self.fold_byte(y))
    }
}

/// A name in folded form, for use as a map key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseKey(Box<str>);

impl CaseKey {
    /// Folds `name` under `mapping`.
    pub fn new(mapping: CaseMapping, name: &str) -> Self {
        Self(mapping.fold(name).into_boxed_str())
    }

    /// The folded name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for CaseKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1459_folds_brackets_and_tilde() {
        let m = CaseMapping::Rfc1459;
        assert_eq!(m.fold("Nick[A]\\~"), "nick{a}|^");
        assert!(m.eq("FOO[]", "foo{}"));
        assert!(!CaseMapping::Ascii.eq("FOO[]", "foo{}"));
        // Non-ASCII letters are not folded: only ASCII has a casemapping.
        assert_eq!(CaseKey::new(m, "ÉcoLE").as_str(), "École");
    }
}
