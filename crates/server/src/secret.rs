//! Keeping secrets out of logs.
//!
//! Passwords reach the server in `PASS`, `OPER`, `AUTHENTICATE` (SASL), `REGISTER`
//! and NickServ lines (`NS`, `NICKSERV`, `PRIVMSG NickServ`), and sit in its configuration and client records. Logs are shared far more
//! widely than the passwords should be (pasted in bug reports, shipped to log
//! stores), so nothing that may hold one is logged as it is, at any level: received
//! lines go through [`loggable_line`], and the records holding passwords print
//! `<redacted>` in their `Debug` output ([`Secret`], `Config`'s own impl).

use std::borrow::Cow;
use std::fmt;

use palaver_proto::Message;

/// What a redacted value is logged as.
pub(crate) const REDACTED: &str = "<redacted>";

/// Commands whose parameters are, or may be, secrets: connection and operator
/// passwords, SASL payloads, account passwords. (`OPER`'s name is redacted too:
/// clients that swap the two parameters send the password first.)
const SECRET_COMMANDS: [&str; 6] = ["PASS", "OPER", "AUTHENTICATE", "REGISTER", "NS", "NICKSERV"];

/// The received line `text` (parsed as `message`) as it may be logged: itself, or
/// for the commands that carry secrets, the command with `<redacted>` in place of
/// its parameters (and of any tags and source, which are not worth the risk).
pub(crate) fn loggable_line<'a>(message: &Message<'_>, text: &'a str) -> Cow<'a, str> {
    let command = message.command();
    let to_service = command.eq_ignore_ascii_case("PRIVMSG")
        && message
            .param(0)
            .is_some_and(crate::handlers::nickserv::addressed);
    if to_service
        || SECRET_COMMANDS
            .iter()
            .any(|secret| command.eq_ignore_ascii_case(secret))
    {
        Cow::Owned(format!("{} {REDACTED}", command.to_ascii_uppercase()))
    } else {
        Cow::Borrowed(text)
    }
}

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

    fn loggable(text: &str) -> String {
        let message = Message::parse(text).expect("a valid line");
        loggable_line(&message, text).into_owned()
    }

    #[test]
    fn secret_commands_are_redacted_and_others_kept() {
        assert_eq!(loggable("PASS hunter2"), "PASS <redacted>");
        assert_eq!(loggable("pass :hunter2 x"), "PASS <redacted>");
        assert_eq!(loggable("OPER hunter2 root"), "OPER <redacted>");
        assert_eq!(
            loggable("@label=a :me AUTHENTICATE aHVudGVyMg=="),
            "AUTHENTICATE <redacted>"
        );
        assert_eq!(loggable("PRIVMSG #a :pass"), "PRIVMSG #a :pass");
        assert_eq!(
            loggable("PRIVMSG NickServ :IDENTIFY hunter2"),
            "PRIVMSG <redacted>"
        );
        assert_eq!(loggable("NS IDENTIFY hunter2"), "NS <redacted>");
        assert_eq!(loggable("REGISTER * * hunter2"), "REGISTER <redacted>");
        assert_eq!(loggable("PASSWORD x"), "PASSWORD x");
        assert_eq!(format!("{:?}", Secret::from("hunter2")), "<redacted>");
        assert_eq!(Secret::from("hunter2").expose(), "hunter2");
    }
}
