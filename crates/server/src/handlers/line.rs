//! One received line, from bytes to a handler: decoded, logged without its secrets,
//! parsed and dispatched with the world locked, its labeled replies gathered.
//!
//! [`process_line`] is what a connection calls for each line it frames; it is the
//! handlers' entry point (it calls [`dispatch`]) and returns an [`Outcome`] telling
//! the connection what is left to do outside the lock (a deferred job, a paged
//! reply, the end of the connection). It lives with the handlers because it knows
//! commands (which carry secrets, how labels apply), which the connection does not.

use std::borrow::Cow;
use std::sync::Arc;

use palaver_proto::Message;
use palaver_proto::numeric::ERR_INPUTTOOLONG;

use super::deferred::Deferred;
use super::paged::Paged;
use super::{Ctx, dispatch};
use crate::secret::REDACTED;
use crate::world::ClientId;
use crate::{Shared, labeled};

/// What handling one line left for the connection to do.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The client is registered (after this line or before it).
    pub(crate) registered: bool,
    /// The connection ends, with this reason.
    pub(crate) quit: Option<String>,
    /// Slow work the command left to run outside the world lock.
    pub(crate) deferred: Option<Deferred>,
    /// The label of a labeled command whose replies are not complete until its
    /// deferred work is done.
    pub(crate) labeled: Option<labeled::Pending>,
    /// A reply to send a page at a time.
    pub(crate) paged: Option<Box<Paged>>,
}

/// Decodes, parses and dispatches one line with the world locked.
pub(crate) fn process_line(shared: &Shared, id: ClientId, raw: &[u8]) -> Outcome {
    let (text, valid_utf8) = decode(raw);
    let Ok(message) = Message::parse(&text) else {
        // Only whitespace, or tags/source without a command: nothing to answer.
        return Outcome::default();
    };
    tracing::trace!(client = id.0, line = %loggable_line(&message, &text), "received");
    let mut world = shared.lock_world();
    // The tag section, with its '@' and the space after it, is bounded for clients.
    if message.raw_tags().map_or(0, |tags| tags.len() + 2) > palaver_proto::MAX_CLIENT_TAGS_LEN {
        world
            .numeric(id, ERR_INPUTTOOLONG)
            .trailing("Input line was too long")
            .send();
        return Outcome::default();
    }
    let Some(me) = world.clients.get(&id) else {
        return Outcome::default();
    };
    let label = labeled::label_of(&message, me.caps);
    let outbox = Arc::clone(&me.outbox);
    if label.is_some() {
        outbox.begin_capture();
    }
    let mut ctx = Ctx::new(&mut world, id);
    ctx.label = label.as_ref().map(|l| l.to_string());
    if valid_utf8 {
        dispatch(&mut ctx, &message);
    } else {
        ctx.world.standard_reply(
            id,
            "FAIL",
            message.command(),
            "INVALID_UTF8",
            &[],
            "Message refused: your client must send UTF-8",
        );
    }
    let quit = ctx.quit.take();
    let deferred = ctx.deferred.take();
    let paged = ctx.paged.take();
    let label_taken = ctx.label.is_none();
    let mut pending_label = None;
    if let Some(label) = label {
        let replies = outbox.end_capture();
        if label_taken {
            // The handler answers later and labels that answer itself.
            for reply in replies {
                outbox.push(reply);
            }
        } else if deferred.is_some() {
            pending_label = Some(labeled::Pending {
                label: label.into_owned(),
                replies,
            });
        } else {
            labeled::deliver(&mut world, id, &label, replies);
        }
    }
    let registered = world.clients.get(&id).is_some_and(|c| c.is_registered());
    Outcome {
        registered,
        quit,
        deferred,
        labeled: pending_label,
        paged,
    }
}

/// Turns received bytes into text, and says whether they were valid UTF-8.
///
/// Lines that are not UTF-8 are refused (we announce `UTF8ONLY`): they are decoded
/// lossily only so the refusal can name the command. NUL bytes, valid UTF-8 but
/// meaningless in IRC, become U+FFFD. Valid lines (the common case) are borrowed.
fn decode(raw: &[u8]) -> (Cow<'_, str>, bool) {
    let text = String::from_utf8_lossy(raw);
    let valid = matches!(text, Cow::Borrowed(_));
    let text = if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        text
    };
    (text, valid)
}

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
        && message.param(0).is_some_and(super::nickserv::addressed);
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
    }

    #[test]
    fn invalid_utf8_is_flagged_and_nul_is_replaced() {
        assert_eq!(
            decode(b"PRIVMSG #a :caf\xe9"),
            ("PRIVMSG #a :caf\u{FFFD}".into(), false)
        );
        assert_eq!(
            decode(b"PRIVMSG #a :a\0b"),
            ("PRIVMSG #a :a\u{FFFD}b".into(), true)
        );
        assert!(matches!(
            decode(b"PING x"),
            (std::borrow::Cow::Borrowed(_), true)
        ));
    }
}
