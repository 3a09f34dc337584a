//! WHOX (IRCv3 `whox`, ISUPPORT `WHOX`): `WHO <mask> [<flags>]%<fields>[,<token>]`
//! answers with `354 RPL_WHOSPCRPL` lines carrying exactly the requested fields, in
//! the fixed order `t c u i h s n f d l a o r`.
//!
//! Our values: `i` is the client's IP address (which is also its hostname here),
//! `d` (hop count) is `0`, `l` is the seconds since the user last spoke, `a` is the
//! account name (`0` when not logged in), `o` (op level) is `n/a`. A token that is not one to three
//! digits, or a `t` without a token, is answered as the token `0`. Unknown field
//! letters are ignored.

use palaver_proto::numeric::RPL_WHOSPCRPL;

use super::Ctx;
use crate::world::Client;

/// The standard fields, in the order they are sent.
const FIELD_ORDER: &[u8] = b"tcuihsnfdlaor";

/// A parsed `%fields,token` request.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Whox {
    /// Requested standard fields, in [`FIELD_ORDER`].
    fields: Vec<u8>,
    token: Box<str>,
}

/// Splits WHO's second parameter into the `o` (operators only) flag and an optional
/// WHOX request.
pub(super) fn parse(param: Option<&str>) -> (bool, Option<Whox>) {
    let Some(param) = param else {
        return (false, None);
    };
    let (flags, request) = match param.split_once('%') {
        Some((flags, request)) => (flags, Some(request)),
        None => (param, None),
    };
    let opers_only = flags.contains('o');
    let whox = request.map(|request| {
        let (letters, token) = request.split_once(',').unwrap_or((request, ""));
        let letters = letters.to_ascii_lowercase();
        let fields = FIELD_ORDER
            .iter()
            .copied()
            .filter(|field| letters.as_bytes().contains(field))
            .collect();
        let token_ok = (1..=3).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_digit());
        Whox {
            fields,
            token: if token_ok { token } else { "0" }.into(),
        }
    });
    (opers_only, whox)
}

/// Sends one `354` line for `client`, seen in `channel` (or `*`), with its WHO `flags`.
pub(super) fn reply(ctx: &Ctx<'_>, whox: &Whox, client: &Client, channel: &str, flags: &str) {
    if whox.fields.is_empty() {
        return;
    }
    let server_name = &ctx.world.config.server_name;
    let idle = crate::world::unix_now()
        .saturating_sub(client.last_spoke)
        .to_string();
    let mut reply = ctx.numeric(RPL_WHOSPCRPL);
    for field in &whox.fields {
        reply = match field {
            b't' => reply.param(&whox.token),
            b'c' => reply.param(channel),
            b'u' => reply.param(client.user()),
            b'i' | b'h' => reply.param(&client.host),
            b's' => reply.param(server_name),
            b'n' => reply.param(client.nick()),
            b'f' => reply.param(flags),
            b'd' => reply.param("0"),
            b'l' => reply.param(&idle),
            b'a' => reply.param(client.account.as_deref().unwrap_or("0")),
            b'o' => reply.param("n/a"),
            b'r' => reply.trailing(&client.realname),
            _ => reply,
        };
    }
    reply.send();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_fields_and_token() {
        assert_eq!(parse(None), (false, None));
        assert_eq!(parse(Some("o")), (true, None));
        let (opers, whox) = parse(Some("%rnt,42"));
        assert!(!opers);
        assert_eq!(
            whox,
            Some(Whox {
                fields: b"tnr".to_vec(),
                token: "42".into()
            })
        );
        // The `o` after `%` is the op-level field, not the operators-only flag.
        let (opers, whox) = parse(Some("%o"));
        assert!(!opers);
        assert_eq!(whox.map(|w| w.fields), Some(b"o".to_vec()));
        let (opers, whox) = parse(Some("o%NT,1234"));
        assert!(opers);
        assert_eq!(
            whox,
            Some(Whox {
                fields: b"tn".to_vec(),
                token: "0".into()
            })
        );
        assert_eq!(parse(Some("%xyz")).1.map(|w| w.fields), Some(Vec::new()));
    }
}
