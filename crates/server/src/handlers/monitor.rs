//! `MONITOR` (IRCv3): a client's list of nicknames whose sign-on and sign-off it is
//! told about (`730 RPL_MONONLINE`, `731 RPL_MONOFFLINE`).
//!
//! The lists and their reverse index live in `world::Monitors`; notifications go out
//! from registration ([`World::notify_monitors_online`]), nick changes
//! ([`nick_changed`]) and `World::remove_client` (every way a client leaves).
//! Invalid nicknames and nicknames already on the list are skipped silently, as in
//! the reference implementation; past `MONITOR=` the rest of the request is refused
//! with `734 ERR_MONLISTFULL`.

use palaver_proto::Message;
use palaver_proto::numeric::*;
use palaver_proto::validate::is_valid_nick;

use super::{Ctx, split_list};
use crate::world::World;

/// `MONITOR + targets`, `- targets`, `C`, `L`, `S`.
pub(super) fn monitor(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(modifier) = msg.param(0) else {
        ctx.need_more_params("MONITOR");
        return;
    };
    let targets = msg.param(1).filter(|t| !t.is_empty());
    match (modifier, targets) {
        ("+", Some(targets)) => add(ctx, targets),
        ("-", Some(targets)) => {
            for target in split_list(targets) {
                ctx.world.monitors.remove(ctx.id, &World::key(target));
            }
        }
        ("+" | "-", None) => ctx.need_more_params("MONITOR"),
        ("C" | "c", _) => ctx.world.monitors.clear(ctx.id),
        ("L" | "l", _) => {
            let list: Vec<String> = ctx
                .world
                .monitors
                .list(ctx.id)
                .iter()
                .map(|(_, nick)| nick.clone())
                .collect();
            send_lists(ctx, RPL_MONLIST, &list);
            ctx.numeric(RPL_ENDOFMONLIST)
                .trailing("End of MONITOR list")
                .send();
        }
        ("S" | "s", _) => {
            let (online, offline) = status(
                ctx,
                ctx.world
                    .monitors
                    .list(ctx.id)
                    .iter()
                    .map(|(_, n)| n.as_str()),
            );
            send_lists(ctx, RPL_MONONLINE, &online);
            send_lists(ctx, RPL_MONOFFLINE, &offline);
        }
        _ => ctx
            .numeric(ERR_UNKNOWNERROR)
            .param("MONITOR")
            .param(modifier)
            .trailing("Unknown MONITOR modifier (use +, -, C, L or S)")
            .send(),
    }
}

/// `MONITOR + targets`: adds what fits, reports the status of what was added.
fn add(ctx: &mut Ctx<'_>, targets: &str) {
    let limits = &ctx.world.config.limits;
    let (limit, nick_len) = (limits.max_monitor, limits.nick_len);
    let total_limit = limits.max_monitor_total;
    let targets: Vec<&str> = split_list(targets).collect();
    let mut added = Vec::new();
    let mut refused: &[&str] = &[];
    for (index, target) in targets.iter().enumerate() {
        if !is_valid_nick(target, nick_len) {
            continue;
        }
        let key = World::key(target);
        if ctx.world.monitors.contains(ctx.id, &key) {
            continue;
        }
        if ctx.world.monitors.list(ctx.id).len() >= limit
            || ctx.world.monitors.total() >= total_limit
        {
            refused = &targets[index..];
            break;
        }
        ctx.world.monitors.add(ctx.id, key, target);
        added.push(*target);
    }
    let (online, offline) = status(ctx, added.into_iter());
    send_lists(ctx, RPL_MONONLINE, &online);
    send_lists(ctx, RPL_MONOFFLINE, &offline);
    if !refused.is_empty() {
        let refused = refused.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        let refused = chunks(&refused, budget(ctx, ERR_MONLISTFULL) - 40);
        ctx.numeric(ERR_MONLISTFULL)
            .param(&limit.to_string())
            .param(refused.first().map_or("*", String::as_str))
            .trailing("Monitor list is full.")
            .send();
    }
}

/// Splits nicknames into those online (as `nick!user@host`) and offline (as given).
fn status<'n>(ctx: &Ctx<'_>, nicks: impl Iterator<Item = &'n str>) -> (Vec<String>, Vec<String>) {
    let mut online = Vec::new();
    let mut offline = Vec::new();
    for nick in nicks {
        match ctx.world.find_nick(nick).filter(|c| c.is_registered()) {
            Some(client) => online.push(client.mask()),
            None => offline.push(nick.to_owned()),
        }
    }
    (online, offline)
}

/// Sends `items` comma-separated under `code`, as many lines as the length limit needs.
fn send_lists(ctx: &Ctx<'_>, code: &str, items: &[String]) {
    for chunk in chunks(items, budget(ctx, code)) {
        ctx.numeric(code).trailing(&chunk).send();
    }
    if code == RPL_MONONLINE {
        // Metadata-aware watchers are told to sync each online target's metadata.
        for mask in items {
            let nick = mask.split('!').next().unwrap_or(mask);
            ctx.world.metadata_sync_later(ctx.id, nick);
        }
    }
}

/// Bytes left for the trailing parameter of `:server CODE nick :...` in 510.
fn budget(ctx: &Ctx<'_>, code: &str) -> usize {
    let used =
        1 + ctx.world.config.server_name.len() + 1 + code.len() + 1 + ctx.me().nick().len() + 2;
    510usize.saturating_sub(used).max(64)
}

/// Joins `items` with commas into strings of at most `max` bytes (an item longer
/// than `max` gets a string of its own).
fn chunks(items: &[String], max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for item in items {
        if !current.is_empty() && current.len() + 1 + item.len() > max {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// After a registered client changed nickname from `old`: the old one went offline
/// and the new one came online (a change of case alone changes nothing).
pub(super) fn nick_changed(ctx: &Ctx<'_>, old: &str) {
    if World::key(old) == World::key(ctx.me().nick()) {
        return;
    }
    ctx.world.notify_monitors_offline(old);
    ctx.world.notify_monitors_online(ctx.id);
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn chunks_respect_the_budget() {
        let items: Vec<String> = ["aaaa", "bb", "cccc", "d"].map(str::to_owned).to_vec();
        assert_eq!(chunks(&items, 7), ["aaaa,bb", "cccc,d"]);
        assert_eq!(chunks(&items, 3), ["aaaa", "bb", "cccc", "d"]);
        assert_eq!(chunks(&[], 10), Vec::<String>::new());
    }
}
