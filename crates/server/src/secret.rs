//! Keeping secrets out of logs.
//!
//! Passwords reach the server in `PASS`, `OPER`, `AUTHENTICATE` (SASL), `REGISTER`
//! and NickServ lines (`NS`, `NICKSERV`, `PRIVMSG NickServ`), and sit in its configuration and client records. Logs are shared far more
//! widely than the passwords should be (pasted in bug reports, shipped to log
//! stores), so nothing that may hold one is logged as it is, at any level: received
//! lines go through `handlers::line::loggable_line`, and the records holding passwords print
//! `<redacted>` in their `Debug` output ([`Secret`], `Config`'s own impl).

use std::fmt;

/// What a redacted value is logged as.
pub(crate) const REDACTED: &str = "<redacted>";

/// A string that must never be logged, such as the password a client sent with
/// `PASS`: its `Debug` output is `<redacted>`, and it has no `Display`, so only an
/// explicit [`Secret::expose`] reads it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Box<str>);

impl Secret {
    /// The secret itself, for comparing it; never for logging.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Self(text.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_redacted() {
        assert_eq!(format!("{:?}", Secret::from("hunter2")), "<redacted>");
        assert_eq!(Secret::from("hunter2").expose(), "hunter2");
    }
}
