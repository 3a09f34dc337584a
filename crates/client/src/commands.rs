//! Parsing what the user types into a [`Command`].
//!
//! Parsing is separate from executing ([`crate::client::Client::input`]) so it can be
//! tested as plain text in, value out, and so both front ends accept exactly the same
//! commands. Anything that is not a known command becomes a [`Hint`] for the user,
//! never a line on the wire: `/quote` is the one deliberate way to send raw IRC.

/// Something the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Plain text for the active buffer (also `//text`, which sends `/text`).
    Say(String),
    /// `/join #chan [key]`
    Join {
        /// The channel (a missing `#` is added by the client).
        channel: String,
        /// The channel key, if any.
        key: Option<String>,
    },
    /// `/part [#chan] [reason]`
    Part {
        /// The channel; the active one if absent.
        channel: Option<String>,
        /// The part message.
        reason: Option<String>,
    },
    /// `/msg target text`
    Msg {
        /// A nick or channel.
        target: String,
        /// The message.
        text: String,
    },
    /// `/query nick [text]`: open (and focus) a private buffer.
    Query {
        /// Who to talk to.
        nick: String,
        /// A first message to send.
        text: Option<String>,
    },
    /// `/me text`
    Me(String),
    /// `/nick newnick`
    Nick(String),
    /// `/topic [#chan] [text]`: show or set a topic.
    Topic {
        /// The channel; the active one if absent.
        channel: Option<String>,
        /// The new topic; absent to ask for it.
        text: Option<String>,
    },
    /// `/names [#chan]`
    Names(Option<String>),
    /// `/whois nick`
    Whois(String),
    /// `/away [message]`: without a message, come back.
    Away(Option<String>),
    /// `/close`: leave (if a channel) and close the active buffer.
    Close,
    /// `/quit [message]`
    Quit(Option<String>),
    /// `/help [command]`: every command, or one in detail.
    Help(Option<String>),
    /// `/quote RAW`: send a raw IRC line (checked by the parser first).
    Quote(String),
    /// `/buffer N`: switch to buffer number N (as the tab shows it, from 1).
    Buffer(usize),
    /// `/reconnect` (or `/connect`): connect again now.
    Reconnect,
    /// `/password [SECRET]`: the server password for the next connection; without
    /// one, none is sent.
    Password(Option<String>),
    /// `/mode [target] [changes [args]]`: without changes, show the modes; without
    /// a target, the active channel's.
    Mode {
        /// A channel or our nick; the active channel if absent.
        target: Option<String>,
        /// The mode changes and their arguments (`+o bob`), empty to ask.
        changes: Vec<String>,
    },
    /// `/kick [#chan] nick [reason]`
    Kick {
        /// The channel; the active one if absent.
        channel: Option<String>,
        /// Who.
        nick: String,
        /// Why, shown to everyone.
        reason: Option<String>,
    },
    /// `/ban`, `/unban`, `/op`, `/deop`, `/voice`, `/devoice` with nicks or masks:
    /// one membership or list mode given to (or taken from) each, in the active
    /// channel (or the one named first).
    MemberMode {
        /// The channel; the active one if absent.
        channel: Option<String>,
        /// `true` to give, `false` to take.
        give: bool,
        /// The mode letter (`o`, `v`, `b`).
        mode: char,
        /// Nicks (or ban masks); for `b` without any, the ban list is shown.
        targets: Vec<String>,
    },
    /// `/invite nick [#chan]`
    Invite {
        /// Who.
        nick: String,
        /// Where to; the active channel if absent.
        channel: Option<String>,
    },
    /// `/list [mask]`: channels on the server, into the channel-list buffer.
    List(Option<String>),
    /// `/search [text]`: find text in the active buffer's scrollback (the
    /// full-screen UI then steps through matches; line mode prints them).
    Search(String),
}

/// Why an input line does nothing: shown to the user, never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint(pub String);

/// Every command with its usage and a one-line description, for `/help` and Tab
/// completion.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("/join", "/join #channel [key]", "join a channel"),
    ("/part", "/part [#channel] [reason]", "leave a channel"),
    ("/msg", "/msg nick|#channel text", "send a message"),
    (
        "/query",
        "/query nick [text]",
        "open a private conversation",
    ),
    ("/me", "/me text", "describe an action"),
    ("/nick", "/nick newnick", "change your nick"),
    (
        "/topic",
        "/topic [#channel] [text]",
        "show or set the topic",
    ),
    ("/names", "/names [#channel]", "list who is in a channel"),
    ("/whois", "/whois nick", "show who someone is"),
    (
        "/away",
        "/away [message]",
        "mark yourself away (no message: back)",
    ),
    ("/close", "/close", "leave and close the current buffer"),
    ("/quit", "/quit [message]", "disconnect and exit"),
    (
        "/help",
        "/help [command]",
        "this list, or one command in detail",
    ),
    ("/quote", "/quote RAW IRC LINE", "send a raw IRC line"),
    ("/buffer", "/buffer N", "switch to buffer N (also Alt+J N)"),
    ("/reconnect", "/reconnect", "connect again now"),
    (
        "/password",
        "/password [SECRET]",
        "server password for the next connection",
    ),
    (
        "/mode",
        "/mode [#channel|nick] [+-modes [args]]",
        "show or change modes",
    ),
    (
        "/kick",
        "/kick [#channel] nick [reason]",
        "remove someone from the channel",
    ),
    (
        "/ban",
        "/ban [#channel] [nick|mask...]",
        "ban (no argument: show the ban list)",
    ),
    ("/unban", "/unban [#channel] nick|mask...", "lift a ban"),
    ("/op", "/op nick...", "make channel operator"),
    ("/deop", "/deop nick...", "take channel operator away"),
    (
        "/voice",
        "/voice nick...",
        "let speak in a moderated channel",
    ),
    ("/devoice", "/devoice nick...", "take the voice away"),
    (
        "/invite",
        "/invite nick [#channel]",
        "invite someone to a channel",
    ),
    (
        "/list",
        "/list [mask]",
        "list channels (into their own buffer)",
    ),
];

/// Whether a typed line carries a secret (`/password SECRET`, or a raw `PASS`,
/// `OPER` or `AUTHENTICATE`), so that it is kept out of the input history.
pub fn carries_secret(input: &str) -> bool {
    secret_start(input).is_some_and(|at| !input[at..].trim().is_empty())
}

/// Where the secret in a line being typed starts (a byte offset), so the input
/// line can show it masked while it is typed: after `/password ` (or `/pass `),
/// after `/quote PASS ` and `/quote AUTHENTICATE `, and after the operator name in
/// `/quote OPER name `. `None` for every other line.
pub fn secret_start(input: &str) -> Option<usize> {
    // (start, end) of each space-separated word, in bytes.
    let words: Vec<(usize, usize)> = input
        .split(' ')
        .scan(0, |at, word| {
            let start = *at;
            *at += word.len() + 1;
            Some((start, start + word.len()))
        })
        .filter(|(start, end)| end > start)
        .collect();
    let word = |i: usize| words.get(i).map(|&(s, e)| &input[s..e]);
    // The secret starts after the first `skip` words and the space after them.
    let after = |skip: usize| {
        let end = words.get(skip - 1).map_or(input.len(), |&(_, e)| e);
        (end < input.len()).then_some(end + 1)
    };
    let first = word(0)?.to_ascii_lowercase();
    match first.as_str() {
        "/password" | "/pass" => after(1),
        "/quote" | "/raw" => match word(1)?.to_ascii_uppercase().as_str() {
            "PASS" | "AUTHENTICATE" => after(2),
            "OPER" => after(3),
            _ => None,
        },
        _ => None,
    }
}

/// Parses one input line. `Ok(None)` for a blank line.
pub fn parse(input: &str) -> Result<Option<Command>, Hint> {
    let input = input.trim_end_matches(['\r', '\n']);
    if input.trim().is_empty() {
        return Ok(None);
    }
    let Some(body) = input.strip_prefix('/') else {
        return Ok(Some(Command::Say(input.to_owned())));
    };
    if body.starts_with('/') {
        return Ok(Some(Command::Say(body.to_owned())));
    }
    let (name, rest) = split_word(body);
    let rest = rest.trim();
    let arg = |usage: &str| -> Result<String, Hint> {
        if rest.is_empty() {
            Err(Hint(format!("usage: {usage}")))
        } else {
            Ok(rest.to_owned())
        }
    };
    let optional = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let command = match name.to_ascii_lowercase().as_str() {
        "join" | "j" => {
            let args = arg("/join #channel [key]")?;
            let (channel, key) = split_word(&args);
            Command::Join {
                channel: channel.to_owned(),
                key: optional(key.trim()),
            }
        }
        "part" | "leave" => {
            let (first, tail) = split_word(rest);
            if first.starts_with(['#', '&']) {
                Command::Part {
                    channel: Some(first.to_owned()),
                    reason: optional(tail.trim()),
                }
            } else {
                Command::Part {
                    channel: None,
                    reason: optional(rest),
                }
            }
        }
        "msg" | "m" => {
            let (target, text) = split_word(rest);
            if target.is_empty() || text.trim().is_empty() {
                return Err(Hint("usage: /msg nick|#channel text".to_owned()));
            }
            Command::Msg {
                target: target.to_owned(),
                text: text.to_owned(),
            }
        }
        "query" | "q" => {
            let args = arg("/query nick [text]")?;
            let (nick, text) = split_word(&args);
            Command::Query {
                nick: nick.to_owned(),
                text: optional(text),
            }
        }
        "me" => Command::Me(arg("/me text")?),
        "nick" => Command::Nick(split_word(&arg("/nick newnick")?).0.to_owned()),
        "topic" | "t" => {
            let (first, tail) = split_word(rest);
            if first.starts_with(['#', '&']) {
                Command::Topic {
                    channel: Some(first.to_owned()),
                    text: optional(tail),
                }
            } else {
                Command::Topic {
                    channel: None,
                    text: optional(rest),
                }
            }
        }
        "names" => Command::Names(optional(split_word(rest).0)),
        "whois" | "wi" => Command::Whois(split_word(&arg("/whois nick")?).0.to_owned()),
        "away" => Command::Away(optional(rest)),
        "close" | "wc" => Command::Close,
        "quit" | "exit" => Command::Quit(optional(rest)),
        "help" | "h" | "?" => Command::Help(optional(split_word(rest).0)),
        "quote" | "raw" => Command::Quote(arg("/quote RAW IRC LINE")?),
        "reconnect" | "connect" | "server" => Command::Reconnect,
        "buffer" | "b" | "window" | "win" => {
            let number = arg("/buffer N")?;
            match number.parse::<usize>() {
                Ok(n) if n > 0 => Command::Buffer(n),
                _ => return Err(Hint(format!("/buffer takes a tab number, not {number:?}"))),
            }
        }
        "password" | "pass" => Command::Password(optional(rest)),
        "mode" => {
            let mut words = rest.split_whitespace().map(str::to_owned);
            let mut changes: Vec<String> = words.by_ref().collect();
            let target = match changes.first() {
                Some(first) if !first.starts_with(['+', '-']) => Some(changes.remove(0)),
                _ => None,
            };
            Command::Mode { target, changes }
        }
        "kick" | "k" => {
            let (channel, rest) = channel_first(rest);
            let (nick, reason) = split_word(rest);
            if nick.is_empty() {
                return Err(Hint("usage: /kick [#channel] nick [reason]".to_owned()));
            }
            Command::Kick {
                channel,
                nick: nick.to_owned(),
                reason: optional(reason.trim()),
            }
        }
        "ban" | "unban" | "op" | "deop" | "voice" | "devoice" => {
            let lower = name.to_ascii_lowercase();
            let (channel, rest) = channel_first(rest);
            let targets: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
            let (give, mode) = match lower.as_str() {
                "ban" => (true, 'b'),
                "unban" => (false, 'b'),
                "op" => (true, 'o'),
                "deop" => (false, 'o'),
                "voice" => (true, 'v'),
                _ => (false, 'v'),
            };
            if targets.is_empty() && lower != "ban" {
                return Err(Hint(format!("usage: /{lower} [#channel] nick...")));
            }
            Command::MemberMode {
                channel,
                give,
                mode,
                targets,
            }
        }
        "invite" => {
            let (nick, channel) = split_word(rest);
            if nick.is_empty() {
                return Err(Hint("usage: /invite nick [#channel]".to_owned()));
            }
            Command::Invite {
                nick: nick.to_owned(),
                channel: optional(split_word(channel).0),
            }
        }
        "list" => Command::List(optional(split_word(rest).0)),
        "search" | "find" | "grep" => Command::Search(rest.to_owned()),
        _ => {
            return Err(Hint(format!(
                "unknown command /{name}: /help lists the commands, /quote sends raw IRC"
            )));
        }
    };
    Ok(Some(command))
}

/// The nick length assumed until the server announces its own (ISUPPORT `NICKLEN`):
/// what most networks allow, and palaver's default.
pub const DEFAULT_NICKLEN: usize = 30;

/// Why `nick` cannot be a nickname on a server allowing `max_len` bytes, as a
/// sentence for the user; `None` when it can. Checked before sending, so a nick the
/// server would refuse is refused here with a reason instead.
pub fn nick_problem(nick: &str, max_len: usize) -> Option<String> {
    if palaver_proto::validate::is_valid_nick(nick, usize::MAX) {
        (nick.len() > max_len).then(|| {
            format!(
                "{nick:?} is too long for a nickname: at most {max_len} characters here (it has {})",
                nick.len()
            )
        })
    } else {
        Some(format!(
            "{nick:?} cannot be a nickname: use letters, digits and -[]\\`^{{}}|_, not starting with a digit or -"
        ))
    }
}

/// The keys of the full-screen UI, for `/help`.
pub const KEYS: &[&str] = &[
    "Keys: Alt+1..9 or Alt+J NN (or a click on a tab) switch buffers, Ctrl+N/P the next/previous",
    "PageUp/PageDown or the mouse wheel scroll, Ctrl+R searches, Ctrl+L redraws the screen",
    "Tab completes nicks, channels and commands, Up/Down recall input, Ctrl+C quits",
];

/// Other names the parser accepts for a command.
const ALIASES: &[(&str, &str)] = &[
    ("j", "join"),
    ("leave", "part"),
    ("m", "msg"),
    ("q", "query"),
    ("t", "topic"),
    ("wi", "whois"),
    ("wc", "close"),
    ("exit", "quit"),
    ("h", "help"),
    ("?", "help"),
    ("raw", "quote"),
    ("connect", "reconnect"),
    ("server", "reconnect"),
    ("b", "buffer"),
    ("window", "buffer"),
    ("win", "buffer"),
    ("pass", "password"),
    ("k", "kick"),
    ("find", "search"),
    ("grep", "search"),
];

/// What `/help COMMAND` adds to the usage line: what the command does in more
/// words, and the details a user needs.
const DETAILS: &[(&str, &str)] = &[
    (
        "join",
        "Joins the channel and shows it (a missing # is added). Give the key of a +k channel after the name.",
    ),
    (
        "part",
        "Leaves the channel (the current one without a name); the buffer stays open, greyed, until /close.",
    ),
    (
        "msg",
        "Sends to a nick (in a private buffer) or a channel, without switching to it.",
    ),
    (
        "query",
        "Opens a private buffer with the nick and switches to it; text after the nick is sent there.",
    ),
    ("me", "Sends an action, shown as `* yournick text`."),
    (
        "nick",
        "Changes your nick; it must fit the server's rules (letters, digits, -[]\\`^{}|_, not starting with a digit or -) and its length limit.",
    ),
    (
        "topic",
        "Without text, shows the topic; with text, sets it (operators only in a +t channel).",
    ),
    (
        "names",
        "Lists who is in the channel, operators (@) and voiced (+) first.",
    ),
    (
        "whois",
        "Shows who the nick is: user and host, server, channels, idle time, away message.",
    ),
    (
        "away",
        "With a message, marks you away (others see it when they message you); without, marks you back.",
    ),
    (
        "close",
        "Leaves the channel if you are in it and closes its buffer; the server buffer stays.",
    ),
    (
        "quit",
        "Says goodbye to the server (with the message, if any) and exits.",
    ),
    (
        "help",
        "Without a command, lists them all with the keys; with one (such as /help kick), explains it.",
    ),
    (
        "quote",
        "Sends the text as a raw IRC line, checked to be one line; for what has no command here.",
    ),
    (
        "buffer",
        "Switches to the buffer with that number, as its tab shows it (also Alt+J then the number).",
    ),
    (
        "reconnect",
        "Connects again now: after a refusal (a wrong password, a full server) or to skip the wait.",
    ),
    (
        "password",
        "Sets the server password sent on the next connection (then /reconnect); without one, clears it. It is masked while typed and kept out of the input history.",
    ),
    (
        "mode",
        "Without changes, shows the channel's modes. Changes are letters after + or -, with their arguments in order: /mode +l 50, /mode -k secret, /mode +o bob.",
    ),
    (
        "kick",
        "Removes the nick from the channel (operators only); the reason is shown to everyone.",
    ),
    (
        "ban",
        "Bans each nick (as nick!*@*) or mask (such as *!*@host) from the channel; without one, shows the ban list. Bans do not remove: /kick does.",
    ),
    (
        "unban",
        "Lifts the bans on each nick or mask, written as /ban set them.",
    ),
    (
        "op",
        "Makes each nick a channel operator (@), able to kick, ban and change modes.",
    ),
    (
        "deop",
        "Takes the channel-operator status (@) from each nick.",
    ),
    (
        "voice",
        "Gives each nick voice (+): they may speak in a moderated (+m) channel.",
    ),
    ("devoice", "Takes voice (+) from each nick."),
    (
        "invite",
        "Invites the nick to the channel (the current one without a name); needed to enter an invite-only (+i) channel.",
    ),
    (
        "list",
        "Lists the server's channels, the largest first, in a buffer of its own; a mask such as #rust* narrows it.",
    ),
    (
        "search",
        "Finds the text (ignoring case) in this buffer's scrollback and shows the newest match; Ctrl+R then goes to older ones, Enter stays there, Esc goes back. Line mode prints the matching lines.",
    ),
];

/// `/help COMMAND`: the usage, what the command does, and its other names.
/// `None` when there is no such command.
pub fn help_for(name: &str) -> Option<Vec<String>> {
    let name = name.trim_start_matches('/').to_ascii_lowercase();
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name.as_str(), |(_, full)| full);
    let slash = format!("/{name}");
    let (_, usage, what) = COMMANDS.iter().find(|(n, _, _)| *n == slash)?;
    let mut lines = vec![format!("{usage}: {what}")];
    if let Some((_, details)) = DETAILS.iter().find(|(n, _)| *n == name) {
        lines.push((*details).to_owned());
    }
    let aliases: Vec<String> = ALIASES
        .iter()
        .filter(|(_, full)| *full == name)
        .map(|(alias, _)| format!("/{alias}"))
        .collect();
    if !aliases.is_empty() {
        lines.push(format!("Also: {}", aliases.join(", ")));
    }
    Some(lines)
}

/// The help text, one line per command.
pub fn help_lines() -> Vec<String> {
    COMMANDS
        .iter()
        .map(|(_, usage, what)| format!("{usage:<28} {what}"))
        .collect()
}

/// A leading channel name, if the arguments start with one, and the rest.
fn channel_first(rest: &str) -> (Option<String>, &str) {
    let (first, tail) = split_word(rest);
    if first.starts_with(['#', '&']) {
        (Some(first.to_owned()), tail)
    } else {
        (None, rest)
    }
}

/// Splits off the first space-separated word; the rest keeps its inner spacing.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(' ') {
        Some(end) => (&s[..end], &s[end + 1..]),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Command {
        match parse(input) {
            Ok(Some(command)) => command,
            other => panic!("{input:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn text_and_escaped_slashes_are_said() {
        assert_eq!(ok("hello  there"), Command::Say("hello  there".into()));
        assert_eq!(ok("//not a command"), Command::Say("/not a command".into()));
        assert_eq!(parse("   "), Ok(None));
    }

    #[test]
    fn commands_take_their_arguments() {
        assert_eq!(
            ok("/join #rust secret"),
            Command::Join {
                channel: "#rust".into(),
                key: Some("secret".into())
            }
        );
        assert_eq!(
            ok("/MSG bob hi  you"),
            Command::Msg {
                target: "bob".into(),
                text: "hi  you".into()
            }
        );
        assert_eq!(
            ok("/part bye all"),
            Command::Part {
                channel: None,
                reason: Some("bye all".into())
            }
        );
        assert_eq!(
            ok("/topic #c new topic"),
            Command::Topic {
                channel: Some("#c".into()),
                text: Some("new topic".into())
            }
        );
        assert_eq!(ok("/away"), Command::Away(None));
        assert_eq!(ok("/quit"), Command::Quit(None));
        assert_eq!(ok("/quote MODE #c +m"), Command::Quote("MODE #c +m".into()));
    }

    #[test]
    fn operator_commands_take_a_channel_first_or_use_the_active_one() {
        assert_eq!(
            ok("/kick bob spamming again"),
            Command::Kick {
                channel: None,
                nick: "bob".into(),
                reason: Some("spamming again".into())
            }
        );
        assert_eq!(
            ok("/kick #rust bob"),
            Command::Kick {
                channel: Some("#rust".into()),
                nick: "bob".into(),
                reason: None
            }
        );
        assert_eq!(
            ok("/op bob carol"),
            Command::MemberMode {
                channel: None,
                give: true,
                mode: 'o',
                targets: vec!["bob".into(), "carol".into()]
            }
        );
        assert_eq!(
            ok("/unban #c *!*@spam"),
            Command::MemberMode {
                channel: Some("#c".into()),
                give: false,
                mode: 'b',
                targets: vec!["*!*@spam".into()]
            }
        );
        assert!(
            matches!(ok("/ban"), Command::MemberMode { mode: 'b', ref targets, .. } if targets.is_empty())
        );
        assert!(parse("/devoice").is_err());
        assert_eq!(
            ok("/mode +m"),
            Command::Mode {
                target: None,
                changes: vec!["+m".into()]
            }
        );
        assert_eq!(
            ok("/mode #c +l 10"),
            Command::Mode {
                target: Some("#c".into()),
                changes: vec!["+l".into(), "10".into()]
            }
        );
        assert_eq!(
            ok("/invite bob"),
            Command::Invite {
                nick: "bob".into(),
                channel: None
            }
        );
        assert_eq!(ok("/list"), Command::List(None));
        assert!(COMMANDS.iter().any(|(name, _, _)| *name == "/devoice"));
    }

    #[test]
    fn every_command_has_help_and_every_alias_parses_as_its_command() {
        for (name, usage, _) in COMMANDS {
            let lines = help_for(name).unwrap_or_else(|| panic!("no help for {name}"));
            assert!(lines[0].starts_with(usage), "{lines:?}");
            assert!(lines.len() >= 2, "{name} has no details");
        }
        assert_eq!(help_for("kick"), help_for("/K"));
        assert_eq!(help_for("frob"), None);
        // An alias parses exactly as the command it names.
        for (alias, full) in ALIASES {
            let args = " #c bob x";
            assert_eq!(
                parse(&format!("/{alias}{args}")),
                parse(&format!("/{full}{args}")),
                "/{alias}"
            );
        }
    }

    #[test]
    fn secrets_are_found_while_typed() {
        let masked = |input: &str| {
            secret_start(input)
                .map(|at| format!("{}{}", &input[..at], "*".repeat(input.len() - at)))
        };
        assert_eq!(
            masked("/password hunter2").as_deref(),
            Some("/password *******")
        );
        assert_eq!(masked("/PASS  hunter2").as_deref(), Some("/PASS ********"));
        assert_eq!(masked("/password").as_deref(), None);
        assert_eq!(masked("/password ").as_deref(), Some("/password "));
        assert_eq!(
            masked("/quote OPER admin pw").as_deref(),
            Some("/quote OPER admin **")
        );
        assert_eq!(masked("/quote OPER admin").as_deref(), None);
        assert_eq!(masked("/quote PASS pw").as_deref(), Some("/quote PASS **"));
        assert_eq!(masked("/quote MODE #a +k key"), None);
        assert_eq!(masked("hello /password x"), None);
        assert!(carries_secret("/password x") && !carries_secret("/password "));
    }

    #[test]
    fn unknown_commands_and_missing_arguments_are_hints() {
        let Err(Hint(hint)) = parse("/frobnicate now") else {
            panic!("unknown command accepted");
        };
        assert!(
            hint.contains("/frobnicate") && hint.contains("/help"),
            "{hint}"
        );
        assert_eq!(
            parse("/msg bob"),
            Err(Hint("usage: /msg nick|#channel text".into()))
        );
        assert!(parse("/join").is_err());
        assert!(parse("/quote").is_err());
    }
}
