//! `HELP [<subject>]` (and its alias `HELPOP`): one short entry per command.

use palaver_proto::Message;
use palaver_proto::numeric::*;

use super::Ctx;

/// Help entries: subject, then its lines (the first is the summary).
const TOPICS: &[(&str, &[&str])] = &[
    (
        "*",
        &[
            "palaver speaks IRC. Commands (HELP <command> for details):",
            "AWAY CAP HELP INFO INVITE ISON JOIN KICK LINKS LIST LUSERS MODE MONITOR",
            "MOTD NAMES NICK NOTICE OPER PART PING PRIVMSG QUIT RENAME SETNAME STATS TAGMSG",
            "TIME TOPIC USERHOST VERSION WHO WHOIS WHOWAS",
            "IRC operators: DIE DLINE KILL KLINE RESTART SAJOIN SANICK SAPART UNDLINE",
            "UNKLINE WALLOPS",
        ],
    ),
    (
        "AWAY",
        &[
            "AWAY [:<message>]",
            "Marks you away with a message, or back without one.",
        ],
    ),
    (
        "CAP",
        &[
            "CAP LS [302] | REQ :<caps> | LIST | END",
            "Negotiates IRCv3 capabilities.",
        ],
    ),
    (
        "DIE",
        &[
            "DIE <server name>",
            "Stops the server gracefully (IRC operators); naming the server confirms it.",
        ],
    ),
    (
        "DLINE",
        &[
            "DLINE [<duration>] <ip|cidr> [:<reason>]",
            "Bans an address or block from connecting, at once and after restarts (IRC operators).",
            "Duration: 30 (minutes), 45s, 30m, 12h, 7d, 2w; none is permanent.",
        ],
    ),
    ("HELP", &["HELP [<command>]", "Shows help about a command."]),
    ("INFO", &["INFO", "Shows what this server is."]),
    (
        "INVITE",
        &[
            "INVITE <nick> <#channel>",
            "Invites someone to a channel (INVITE alone lists your invitations).",
        ],
    ),
    (
        "ISON",
        &[
            "ISON <nick> [<nick> ...]",
            "Tells which of these nicknames are online.",
        ],
    ),
    (
        "JOIN",
        &[
            "JOIN <#channel>[,<#channel>] [<key>[,<key>]]",
            "Joins channels; JOIN 0 leaves them all.",
        ],
    ),
    (
        "KICK",
        &[
            "KICK <#channel> <nick>[,<nick>] [:<reason>]",
            "Removes someone from a channel (operators).",
        ],
    ),
    (
        "KILL",
        &[
            "KILL <nick> [:<reason>]",
            "Disconnects someone (IRC operators).",
        ],
    ),
    (
        "KLINE",
        &[
            "KLINE [<duration>] <user@host> [:<reason>]",
            "Bans matching users from the server, at once and after restarts (IRC operators).",
            "Duration: 30 (minutes), 45s, 30m, 12h, 7d, 2w; none is permanent.",
        ],
    ),
    ("LINKS", &["LINKS", "Lists the servers of this network."]),
    (
        "LIST",
        &[
            "LIST [<#channel|mask>[,...]]",
            "Lists channels with their member count and topic.",
        ],
    ),
    (
        "LUSERS",
        &["LUSERS", "Shows how many users and channels there are."],
    ),
    (
        "MODE",
        &[
            "MODE <nick> [+|-iwB] | MODE <#channel> [+|-<modes> [<params>]]",
            "Shows or changes user or channel modes.",
        ],
    ),
    (
        "MONITOR",
        &[
            "MONITOR +|- <nick>[,<nick>] | C | L | S",
            "Tells you when nicknames come online or leave.",
        ],
    ),
    ("MOTD", &["MOTD", "Shows the message of the day."]),
    (
        "NAMES",
        &[
            "NAMES [<#channel>[,<#channel>]]",
            "Lists the members of channels.",
        ],
    ),
    ("NICK", &["NICK <nick>", "Sets or changes your nickname."]),
    (
        "NOTICE",
        &[
            "NOTICE <target>[,<target>] :<text>",
            "Like PRIVMSG, but never answered automatically.",
        ],
    ),
    (
        "OPER",
        &["OPER <name> <password>", "Makes you an IRC operator."],
    ),
    (
        "PART",
        &[
            "PART <#channel>[,<#channel>] [:<reason>]",
            "Leaves channels.",
        ],
    ),
    (
        "PING",
        &[
            "PING <token>",
            "Asks the server to answer PONG with the token.",
        ],
    ),
    (
        "PRIVMSG",
        &[
            "PRIVMSG <target>[,<target>] :<text>",
            "Sends a message to channels or people.",
        ],
    ),
    (
        "QUIT",
        &[
            "QUIT [:<reason>]",
            "Disconnects, telling your channels why.",
        ],
    ),
    (
        "REHASH",
        &[
            "REHASH",
            "Reads the server's configuration again (IRC operators).",
        ],
    ),
    (
        "RENAME",
        &[
            "RENAME <#channel> <#new-name> [:<reason>]",
            "Renames a channel you operate (IRCv3 draft/channel-rename).",
        ],
    ),
    (
        "RESTART",
        &[
            "RESTART <server name>",
            "Restarts the server with the same options (IRC operators); naming the server confirms it.",
        ],
    ),
    (
        "SAJOIN",
        &[
            "SAJOIN <nick> <#channel>",
            "Makes someone join a channel, past its bans, key and limits (IRC operators).",
        ],
    ),
    (
        "SANICK",
        &[
            "SANICK <nick> <new nick>",
            "Changes someone's nickname (IRC operators).",
        ],
    ),
    (
        "SAPART",
        &[
            "SAPART <nick> <#channel> [:<reason>]",
            "Makes someone leave a channel (IRC operators).",
        ],
    ),
    (
        "SETNAME",
        &["SETNAME :<real name>", "Changes your real name."],
    ),
    (
        "STATS",
        &[
            "STATS <letter>",
            "Server figures: u uptime; for IRC operators l connections, k K-lines, d D-lines.",
        ],
    ),
    (
        "TAGMSG",
        &[
            "TAGMSG <target>",
            "Sends only message tags (IRCv3 message-tags).",
        ],
    ),
    ("TIME", &["TIME", "Shows the server's time."]),
    (
        "TOPIC",
        &[
            "TOPIC <#channel> [:<topic>]",
            "Shows or sets a channel's topic; an empty topic clears it.",
        ],
    ),
    (
        "UNDLINE",
        &["UNDLINE <ip|cidr>", "Lifts a D-line (IRC operators)."],
    ),
    (
        "UNKLINE",
        &["UNKLINE <user@host>", "Lifts a K-line (IRC operators)."],
    ),
    (
        "USERHOST",
        &[
            "USERHOST <nick> [<nick> ...]",
            "Shows the user@host of up to five people.",
        ],
    ),
    (
        "VERSION",
        &["VERSION", "Shows the server's version and features."],
    ),
    (
        "WALLOPS",
        &[
            "WALLOPS :<text>",
            "Sends a message to users with +w (IRC operators).",
        ],
    ),
    (
        "WHO",
        &[
            "WHO <#channel|mask> [o] | WHO <mask> %<fields>[,<token>]",
            "Lists matching users.",
        ],
    ),
    ("WHOIS", &["WHOIS <nick>", "Shows who someone is."]),
    (
        "WHOWAS",
        &[
            "WHOWAS <nick> [<count>]",
            "Shows who used a nickname that has left.",
        ],
    ),
];

/// `HELP [<subject>]`: 704, 705..., 706, or 524 for an unknown subject.
pub(super) fn help(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let subject = msg.param(0).filter(|s| !s.is_empty());
    let wanted = subject.unwrap_or("*");
    let Some((_, lines)) = TOPICS
        .iter()
        .find(|(topic, _)| topic.eq_ignore_ascii_case(wanted))
    else {
        ctx.numeric(ERR_HELPNOTFOUND)
            .param(wanted)
            .trailing("No help available on this topic")
            .send();
        return;
    };
    let Some((summary, rest)) = lines.split_first() else {
        return;
    };
    ctx.numeric(RPL_HELPSTART)
        .param(wanted)
        .trailing(summary)
        .send();
    for line in rest {
        ctx.numeric(RPL_HELPTXT).param(wanted).trailing(line).send();
    }
    ctx.numeric(RPL_ENDOFHELP)
        .param(wanted)
        .trailing("End of /HELP")
        .send();
}

#[cfg(test)]
mod tests {
    use super::TOPICS;

    #[test]
    fn every_topic_has_a_summary() {
        assert!(TOPICS.iter().all(|(_, lines)| !lines.is_empty()));
    }
}
