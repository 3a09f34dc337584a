//! `MODE` for users (`+i`, `+B`, `-o`) and channels
//! (`+o +v +b +e +I +i +k +l +m +n +p +t +s`).
//!
//! Channel changes are applied one by one, in order; the ones that took effect are
//! announced to every member in one MODE line, as the server normalised them (ban,
//! exception and invite-exception masks filled out to `nick!user@host`). At most `MODES` parameterised changes are
//! taken from one command; the rest are ignored, as `RPL_ISUPPORT MODES=` announces.

use std::fmt::Write as _;
use std::time::SystemTime;

use palaver_proto::numeric::*;
use palaver_proto::{CaseKey, Message};

use super::{Ctx, unix_seconds};
use crate::world::{Ban, CASEMAPPING, ListMode, World};

/// Longest channel key we accept (`+k`).
const MAX_KEY_LEN: usize = 32;

pub(super) fn mode(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(target) = msg.param(0) else {
        ctx.need_more_params("MODE");
        return;
    };
    if target.starts_with('#') {
        channel_mode(ctx, target, msg);
    } else {
        user_mode(ctx, target, msg.param(1));
    }
}

fn user_mode(ctx: &mut Ctx<'_>, target: &str, changes: Option<&str>) {
    if !CASEMAPPING.eq(target, ctx.me().nick()) {
        let (code, text) = if ctx.world.find_nick(target).is_some() {
            (ERR_USERSDONTMATCH, "Can't change mode for other users")
        } else {
            (ERR_NOSUCHNICK, "No such nick/channel")
        };
        let mut reply = ctx.numeric(code);
        if code == ERR_NOSUCHNICK {
            reply = reply.param(target);
        }
        reply.trailing(text).send();
        return;
    }
    let Some(changes) = changes else {
        let modes = ctx.me().mode_string();
        ctx.numeric(RPL_UMODEIS).param(&modes).send();
        return;
    };
    let mut adding = true;
    let mut applied = Applied::default();
    let mut unknown = false;
    let before = ctx.me().census();
    let me = ctx.me_mut();
    for letter in changes.chars() {
        match letter {
            '+' => adding = true,
            '-' => adding = false,
            'i' if me.invisible != adding => {
                me.invisible = adding;
                applied.push(adding, 'i', None);
            }
            // Bot mode (IRCv3 bot-mode, `BOT=B`): the user's own choice.
            'B' if me.bot != adding => {
                me.bot = adding;
                applied.push(adding, 'B', None);
            }
            // Operator status is granted by OPER only; users may drop it.
            'o' if !adding && me.oper => {
                me.oper = false;
                applied.push(false, 'o', None);
            }
            // Wallops (`+w`): receive WALLOPS from operators.
            'w' if me.wallops != adding => {
                me.wallops = adding;
                applied.push(adding, 'w', None);
            }
            'i' | 'o' | 'B' | 'w' => {}
            _ => unknown = true,
        }
    }
    let after = me.census();
    ctx.world.recount(before, after);
    if !applied.is_empty() {
        ctx.world.announce_user_state(ctx.id);
    }
    if unknown {
        ctx.numeric(ERR_UMODEUNKNOWNFLAG)
            .trailing("Unknown MODE flag")
            .send();
    }
    if !applied.is_empty() {
        let nick = ctx.me().nick().to_owned();
        let mut line = palaver_proto::LineWriter::new();
        line.source(&nick)
            .command("MODE")
            .param(&nick)
            .trailing(&applied.letters);
        ctx.me().send(line.finish());
    }
}

/// Mode changes that took effect, in wire form.
#[derive(Default)]
struct Applied {
    letters: String,
    params: Vec<String>,
    sign: Option<bool>,
}

impl Applied {
    fn push(&mut self, adding: bool, letter: char, param: Option<String>) {
        if self.sign != Some(adding) {
            self.letters.push(if adding { '+' } else { '-' });
            self.sign = Some(adding);
        }
        self.letters.push(letter);
        self.params.extend(param);
    }

    fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }
}

fn channel_mode(ctx: &mut Ctx<'_>, name: &str, msg: &Message<'_>) {
    let key = World::key(name);
    // A secret channel answers outsiders as a missing one would, for queries (modes,
    // mask lists) and changes alike.
    let Some(channel) = ctx.world.channel_known_to(&key, ctx.id) else {
        ctx.no_such_channel(name);
        return;
    };
    let Some(changes) = msg.param(1) else {
        let is_member = channel.members.contains_key(&ctx.id);
        let (letters, params) = channel.mode_string(is_member);
        let mut reply = ctx
            .numeric(RPL_CHANNELMODEIS)
            .param(&channel.name)
            .param(&letters);
        for param in &params {
            reply = reply.param(param);
        }
        reply.send();
        ctx.numeric(RPL_CREATIONTIME)
            .param(&channel.name)
            .param(&unix_seconds(channel.created_at))
            .send();
        return;
    };
    let is_op = channel.is_op(ctx.id);
    let channel_name = channel.name.clone();
    let mut args = msg.params().iter().skip(2).copied();
    let mut adding = true;
    let mut applied = Applied::default();
    let mut param_modes = 0;
    let mut refused = false;
    // Each list is sent once per command, however often it is asked for: `MODE #c
    // bbbb…` must not multiply a 100-entry list by the length of the line.
    let mut listed: Vec<ListMode> = Vec::new();
    let max_modes = ctx.world.config.limits.max_modes;
    for letter in changes.chars() {
        let takes_param = match letter {
            '+' => {
                adding = true;
                continue;
            }
            '-' => {
                adding = false;
                continue;
            }
            'o' | 'v' | 'b' | 'e' | 'I' => true,
            // CHANMODES type B (`k`) always takes a parameter, type C (`l`) only when set.
            'k' => true,
            'l' => adding,
            'C' | 'E' | 'R' | 'i' | 'm' | 'n' | 'p' | 's' | 't' | 'z' => false,
            other => {
                ctx.numeric(ERR_UNKNOWNMODE)
                    .param(&other.to_string())
                    .trailing("is unknown mode char to me")
                    .send();
                continue;
            }
        };
        let arg = if takes_param { args.next() } else { None };
        if let Some(list) = ListMode::from_letter(letter)
            && arg.is_none()
        {
            // Anyone may see the bans; the exception lists (which masks get past
            // the channel's defences) only the operators, as on charybdis/solanum.
            if list == ListMode::Ban || is_op {
                if !listed.contains(&list) {
                    listed.push(list);
                    send_list(ctx, &key, list);
                }
            } else {
                refused = true;
            }
            continue;
        }
        // A missing parameter skips the change, except `-k`, which needs none to work.
        if takes_param && arg.is_none() && (letter != 'k' || adding) {
            continue;
        }
        if !is_op {
            refused = true;
            continue;
        }
        if takes_param && arg.is_some() {
            param_modes += 1;
            if param_modes > max_modes {
                continue;
            }
        }
        apply_one(ctx, &key, adding, letter, arg, &mut applied);
    }
    if refused {
        ctx.numeric(ERR_CHANOPRIVSNEEDED)
            .param(&channel_name)
            .trailing("You're not channel operator")
            .send();
    }
    if applied.is_empty() {
        return;
    }
    let mut line = ctx.me().line_from();
    line.command("MODE")
        .param(&channel_name)
        .param(&applied.letters);
    for param in &applied.params {
        line.param(param);
    }
    let mut event = applied.letters.clone();
    for param in &applied.params {
        event.push(' ');
        event.push_str(param);
    }
    let stamp = crate::history::record_event(
        ctx.world,
        ctx.id,
        palaver_store::MessageKind::Mode,
        &key,
        &event,
    );
    let event = crate::relay::EventLine::stamped(line.finish(), ctx.me().account.as_deref(), stamp);
    if let Some(channel) = ctx.world.channels.get(&key) {
        channel.broadcast_event(&event);
    }
    crate::world::registry::channel_changed(ctx.world, &key);
}

/// Applies one channel mode change, recording it in `applied` if it changed anything.
fn apply_one(
    ctx: &mut Ctx<'_>,
    key: &CaseKey,
    adding: bool,
    letter: char,
    arg: Option<&str>,
    applied: &mut Applied,
) {
    let set_by = ctx.me().mask();
    let max_bans = ctx.world.config.limits.max_bans;
    match (letter, arg) {
        ('o' | 'v', Some(nick)) => {
            let target = ctx
                .world
                .find_nick(nick)
                .map(|c| (c.id, c.nick().to_owned()));
            let Some((target_id, target_nick)) = target else {
                ctx.no_such_nick(nick);
                return;
            };
            let Some(channel) = ctx.world.channels.get_mut(key) else {
                return;
            };
            let channel_name = channel.name.clone();
            let Some(member) = channel.members.get_mut(&target_id) else {
                ctx.numeric(ERR_USERNOTINCHANNEL)
                    .param(&target_nick)
                    .param(&channel_name)
                    .trailing("They aren't on that channel")
                    .send();
                return;
            };
            let flag = if letter == 'o' {
                &mut member.status.op
            } else {
                &mut member.status.voice
            };
            if *flag != adding {
                *flag = adding;
                applied.push(adding, letter, Some(target_nick));
                ctx.world.announce_status(target_id, key);
            }
        }
        ('b' | 'e' | 'I', Some(raw_mask)) => {
            let Some(list) = ListMode::from_letter(letter) else {
                return;
            };
            let mask = normalise_mask(raw_mask);
            let list_entries_total = ctx.world.list_entries_total;
            let max_list_total = ctx.world.config.limits.max_list_entries_total;
            let Some(channel) = ctx.world.channels.get_mut(key) else {
                return;
            };
            let existing = channel
                .list(list)
                .iter()
                .position(|b| CASEMAPPING.eq(&b.mask, &mask));
            match (adding, existing) {
                // One bound for the three lists together (`MAXLIST=beI:`).
                (true, None) if channel.list_entries() >= max_bans => {
                    let channel_name = channel.name.clone();
                    let text = match list {
                        ListMode::Ban => "Channel ban list is full",
                        ListMode::Except => "Channel exception list is full",
                        ListMode::InviteExcept => "Channel invite-exception list is full",
                    };
                    ctx.numeric(ERR_BANLISTFULL)
                        .param(&channel_name)
                        .param(&mask)
                        .trailing(text)
                        .send();
                }
                (true, None) if list_entries_total >= max_list_total => {
                    let channel_name = channel.name.clone();
                    ctx.numeric(ERR_BANLISTFULL)
                        .param(&channel_name)
                        .param(&mask)
                        .trailing("The server holds as many list entries as it allows")
                        .send();
                }
                (true, None) => {
                    ctx.world.list_entries_total += 1;
                    let Some(channel) = ctx.world.channels.get_mut(key) else {
                        return;
                    };
                    channel.list_mut(list).push(Ban {
                        mask: mask.clone(),
                        set_by,
                        set_at: SystemTime::now(),
                    });
                    applied.push(true, letter, Some(mask));
                }
                (false, Some(index)) => {
                    let removed = channel.list_mut(list).remove(index);
                    ctx.world.list_entries_total = ctx.world.list_entries_total.saturating_sub(1);
                    applied.push(false, letter, Some(removed.mask));
                }
                _ => {}
            }
        }
        ('k', _) if adding => {
            let key_value = arg.unwrap_or_default();
            if key_value.is_empty()
                || key_value.len() > MAX_KEY_LEN
                || key_value.contains([',', ' ', ':'])
            {
                let channel_name = ctx.world.channels.get(key).map(|c| c.name.clone());
                ctx.numeric(ERR_INVALIDKEY)
                    .param(&channel_name.unwrap_or_default())
                    .trailing("Key is not well-formed")
                    .send();
                return;
            }
            if let Some(channel) = ctx.world.channels.get_mut(key) {
                channel.modes.key = Some(key_value.to_owned());
                applied.push(true, 'k', Some(key_value.to_owned()));
            }
        }
        ('l', _) if adding => {
            let Some(limit) = arg.and_then(|a| a.parse::<usize>().ok()).filter(|l| *l > 0) else {
                let channel_name = ctx.world.channels.get(key).map(|c| c.name.clone());
                ctx.numeric(ERR_INVALIDMODEPARAM)
                    .param(&channel_name.unwrap_or_default())
                    .param("l")
                    .param(arg.unwrap_or("*"))
                    .trailing("Invalid limit")
                    .send();
                return;
            };
            if let Some(channel) = ctx.world.channels.get_mut(key)
                && channel.modes.limit != Some(limit)
            {
                channel.modes.limit = Some(limit);
                applied.push(true, 'l', Some(limit.to_string()));
            }
        }
        _ => {
            let Some(channel) = ctx.world.channels.get_mut(key) else {
                return;
            };
            let modes = &mut channel.modes;
            let changed = match letter {
                'k' => modes.key.take().is_some(),
                'l' => modes.limit.take().is_some(),
                'i' => std::mem::replace(&mut modes.invite_only, adding) != adding,
                'm' => std::mem::replace(&mut modes.moderated, adding) != adding,
                'n' => std::mem::replace(&mut modes.no_external, adding) != adding,
                'p' => std::mem::replace(&mut modes.private, adding) != adding,
                's' => std::mem::replace(&mut modes.secret, adding) != adding,
                't' => std::mem::replace(&mut modes.topic_ops_only, adding) != adding,
                'C' => std::mem::replace(&mut modes.no_ctcp, adding) != adding,
                'R' => std::mem::replace(&mut modes.registered_only, adding) != adding,
                'E' => std::mem::replace(&mut modes.no_history, adding) != adding,
                'z' => std::mem::replace(&mut modes.tls_only, adding) != adding,
                _ => false,
            };
            if changed {
                // `-k` is announced with `*` so the old key is not revealed.
                let param = (letter == 'k').then(|| "*".to_owned());
                applied.push(adding, letter, param);
            }
        }
    }
}

/// One mask list (`367`/`368`, `348`/`349`, `346`/`347`), each entry with who set it
/// and when.
fn send_list(ctx: &Ctx<'_>, key: &CaseKey, list: ListMode) {
    let Some(channel) = ctx.world.channels.get(key) else {
        return;
    };
    let (entry_code, end_code, end_text) = match list {
        ListMode::Ban => (RPL_BANLIST, RPL_ENDOFBANLIST, "End of channel ban list"),
        ListMode::Except => (
            RPL_EXCEPTLIST,
            RPL_ENDOFEXCEPTLIST,
            "End of channel exception list",
        ),
        ListMode::InviteExcept => (
            RPL_INVEXLIST,
            RPL_ENDOFINVEXLIST,
            "End of Channel Invite Exception List",
        ),
    };
    for entry in channel.list(list) {
        ctx.numeric(entry_code)
            .param(&channel.name)
            .param(&entry.mask)
            .param(&entry.set_by)
            .param(&unix_seconds(entry.set_at))
            .send();
    }
    ctx.numeric(end_code)
        .param(&channel.name)
        .trailing(end_text)
        .send();
}

/// Fills out a ban mask to `nick!user@host`: `bob` → `bob!*@*`, `*@host` → `*!*@host`;
/// a mute (`m:` extban) keeps its prefix: `m:bob` → `m:bob!*@*`.
fn normalise_mask(raw: &str) -> String {
    // The account extban (`a:<account mask>`, `$a`, `$a:<mask>`) is not a hostmask.
    if crate::world::is_account_extban(raw) {
        return raw.to_owned();
    }
    if let Some(muted) = raw.strip_prefix(crate::world::MUTE_PREFIX) {
        return format!("{}{}", crate::world::MUTE_PREFIX, normalise_mask(muted));
    }
    let mut out = String::with_capacity(raw.len() + 4);
    let (nick_user, host) = match raw.split_once('@') {
        Some((nick_user, host)) => (nick_user, if host.is_empty() { "*" } else { host }),
        None => (raw, "*"),
    };
    let (nick, user) = match nick_user.split_once('!') {
        Some((nick, user)) => (nick, if user.is_empty() { "*" } else { user }),
        None if raw.contains('@') => ("*", nick_user),
        None => (nick_user, "*"),
    };
    let nick = if nick.is_empty() { "*" } else { nick };
    let _ = write!(out, "{nick}!{user}@{host}");
    out
}

#[cfg(test)]
mod tests {
    use super::normalise_mask;

    #[test]
    fn masks_are_filled_out() {
        assert_eq!(normalise_mask("bob"), "bob!*@*");
        assert_eq!(normalise_mask("*@host"), "*!*@host");
        assert_eq!(normalise_mask("bob!~u"), "bob!~u@*");
        assert_eq!(normalise_mask("a!b@c"), "a!b@c");
        assert_eq!(normalise_mask("m:bob"), "m:bob!*@*");
    }
}
