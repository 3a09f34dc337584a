//! What makes a nickname, channel name, username or hostname acceptable.
//!
//! The rules follow modern.ircdocs.horse ("Clients", "Channels"): they are strict enough
//! that every name can be written as a middle parameter and inside a `nick!user@host`
//! source without ambiguity, and loose enough for every client in use.

/// Whether `nick` is a valid nickname of at most `max_len` bytes.
///
/// A nickname starts with a letter or one of `` []\`_^{|} `` and continues with letters,
/// digits, those specials and `-`. This excludes everything that would be ambiguous on
/// the wire: spaces, `,` `*` `?` `!` `@` `.`, a leading `#`, `:` or digit.
pub fn is_valid_nick(nick: &str, max_len: usize) -> bool {
    let bytes = nick.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    bytes.len() <= max_len
        && (first.is_ascii_alphabetic() || is_nick_special(first))
        && rest
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || is_nick_special(b) || b == b'-')
}

fn is_nick_special(byte: u8) -> bool {
    matches!(
        byte,
        b'[' | b']' | b'\\' | b'`' | b'_' | b'^' | b'{' | b'|' | b'}'
    )
}

/// Whether `name` is a valid channel name of at most `max_len` bytes.
///
/// Channels start with `#` (the only `CHANTYPES` we offer) and may contain anything
/// but space, comma, BEL (`^G`) and the line-breaking bytes; UTF-8 is allowed.
pub fn is_valid_channel(name: &str, max_len: usize) -> bool {
    name.len() >= 2
        && name.len() <= max_len
        && name.starts_with('#')
        && !name
            .bytes()
            .any(|b| matches!(b, b' ' | b',' | 0x07 | 0 | b'\r' | b'\n'))
}

/// Whether `user` can be a username (the `user` in `nick!user@host`).
pub fn is_valid_username(user: &str, max_len: usize) -> bool {
    !user.is_empty()
        && user.len() <= max_len
        && !user
            .bytes()
            .any(|b| matches!(b, b' ' | b'@' | b'!' | 0 | b'\r' | b'\n' | b':'))
}

/// Whether `host` is a DNS hostname (RFC 1123 labels; a trailing dot is allowed).
pub fn is_valid_hostname(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks() {
        for good in ["a", "Alice", "[bot]", "x-1", "_under", "`tick", "a|b{c}^"] {
            assert!(is_valid_nick(good, 30), "{good}");
        }
        for bad in [
            "", "1abc", "-a", "a b", "a!b", "a@b", "a,b", "#chan", ":x", "a*", "a.b",
        ] {
            assert!(!is_valid_nick(bad, 30), "{bad}");
        }
        assert!(!is_valid_nick(&"a".repeat(31), 30));
    }

    #[test]
    fn channels() {
        for good in ["#a", "#lobby", "#ünïcode", "#a:b"] {
            assert!(is_valid_channel(good, 64), "{good}");
        }
        for bad in ["#", "lobby", "&local", "#a b", "#a,b", "#a\x07"] {
            assert!(!is_valid_channel(bad, 64), "{bad}");
        }
    }

    #[test]
    fn usernames() {
        assert!(is_valid_username("~alice", 10));
        assert!(!is_valid_username("a@b", 10));
        assert!(!is_valid_username("", 10));
    }
}
