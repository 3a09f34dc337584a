//! `RPL_ISUPPORT` (005) tokens, derived from the configuration so that every value we
//! announce is the limit we enforce.

use crate::config::Config;
use crate::world::CASEMAPPING;

/// Most tokens in one 005 line (modern.ircdocs.horse recommends at most 13).
pub(crate) const TOKENS_PER_LINE: usize = 13;

/// The tokens, in the order we announce them.
pub(crate) fn tokens(config: &Config) -> Vec<String> {
    let l = &config.limits;
    let mut tokens = vec![
        // IRCv3 account-extban: `a:<account mask>` (EXTBAN's prefix is empty).
        "ACCOUNTEXTBAN=a".to_owned(),
        format!("AWAYLEN={}", l.away_len),
        "BOT=B".to_owned(),
        format!("CASEMAPPING={}", CASEMAPPING.name()),
        format!("CHANLIMIT=#:{}", l.max_channels_per_client),
        "CHANMODES=beI,k,l,CERimnpstz".to_owned(),
        format!("CHANNELLEN={}", l.channel_len),
        // Extended bans: no prefix; `a:` (account), `m:` (mute).
        "EXTBAN=,am".to_owned(),
        "CHANTYPES=#".to_owned(),
        // LIST filters: creation time, mask, negated mask, topic time, user count.
        "ELIST=CMNTU".to_owned(),
        "EXCEPTS=e".to_owned(),
        format!("HOSTLEN={}", 64),
        "INVEX=I".to_owned(),
        format!("KICKLEN={}", l.kick_len),
        // One bound for the three mask lists together.
        format!("MAXLIST=beI:{}", l.max_bans),
        format!("MAXTARGETS={}", l.max_targets),
        format!("MODES={}", l.max_modes),
        format!("MONITOR={}", l.max_monitor),
        format!("NETWORK={}", config.network_name),
        format!("NICKLEN={}", l.nick_len),
        "PREFIX=(ov)@+".to_owned(),
        "STATUSMSG=@+".to_owned(),
        format!(
            "TARGMAX=JOIN:,KICK:{t},LIST:,NAMES:,NOTICE:{t},PART:,PRIVMSG:{t},WHOIS:1",
            t = l.max_targets
        ),
        format!("TOPICLEN={}", l.topic_len),
        format!("USERLEN={}", l.user_len + 1),
        "UTF8ONLY".to_owned(),
        "WHOX".to_owned(),
    ];
    if config.history.enabled {
        // draft/chathistory: the most messages one request returns, and the two
        // kinds of reference it takes.
        tokens.push(format!("CHATHISTORY={}", config.history.max_per_request));
        tokens.push("MSGREFTYPES=timestamp,msgid".to_owned());
    }
    tokens
}

/// The tokens grouped into 005 lines.
pub(crate) fn lines(config: &Config) -> Vec<Vec<String>> {
    tokens(config)
        .chunks(TOKENS_PER_LINE)
        .map(<[String]>::to_vec)
        .collect()
}

/// What changed between two configurations' tokens, as 005 tokens: new or changed
/// ones as they are now, removed ones as `-NAME` (the ISUPPORT rule for withdrawing
/// a token). Sent to registered clients after a reload.
pub(crate) fn changes(before: &Config, after: &Config) -> Vec<String> {
    let name = |token: &str| token.split('=').next().unwrap_or(token).to_owned();
    let (old, new) = (tokens(before), tokens(after));
    let mut changed: Vec<String> = new.iter().filter(|t| !old.contains(t)).cloned().collect();
    for gone in &old {
        let key = name(gone);
        if !new.iter().any(|t| name(t) == key) {
            changed.push(format!("-{key}"));
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_new_values_and_withdrawn_tokens() {
        let before = Config::default();
        let mut after = Config::default();
        after.limits.max_channels_per_client = 7;
        after.history.enabled = false;
        assert_eq!(
            changes(&before, &after),
            ["CHANLIMIT=#:7", "-CHATHISTORY", "-MSGREFTYPES"]
        );
        assert!(changes(&before, &before).is_empty());
    }
}
