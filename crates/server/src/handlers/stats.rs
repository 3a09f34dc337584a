//! `STATS <letter>`: the server's figures. `u` (uptime) for everyone; `l`
//! (connections), `k` (K-lines) and `d` (D-lines) for operators only (`481`
//! otherwise); `m` (command counts) and every other letter answer just
//! `219 RPL_ENDOFSTATS`.
//!
//! Lists stop at [`MAX_LINES`] entries with a notice saying how many were left
//! out: a reply must fit in the caller's sendq, or asking would disconnect them.

use palaver_proto::Message;
use palaver_proto::numeric::*;
use palaver_store::{ServerBanKind, Timestamp};

use super::Ctx;
use super::oper::is_oper;
use crate::world::unix_now;

/// Most entries one `STATS` list sends.
const MAX_LINES: usize = 1000;

/// `STATS <letter> [<server>]`.
pub(super) fn stats(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(query) = msg.param(0).filter(|q| !q.is_empty()) else {
        ctx.need_more_params("STATS");
        return;
    };
    // Only the first character counts, as on other servers (`STATS uptime`).
    let letter = query.chars().next().unwrap_or('*');
    match letter {
        'u' | 'U' => uptime(ctx),
        'l' | 'L' if is_oper(ctx) => links(ctx),
        'k' | 'K' if is_oper(ctx) => bans(ctx, ServerBanKind::KLine),
        'd' | 'D' if is_oper(ctx) => bans(ctx, ServerBanKind::DLine),
        'm' | 'M' if is_oper(ctx) => commands(ctx),
        _ => {}
    }
    let letter = letter.to_string();
    ctx.numeric(RPL_ENDOFSTATS)
        .param(&letter)
        .trailing("End of /STATS report")
        .send();
}

/// `212 RPL_STATSCOMMANDS`: how often each command was received since the start
/// (the same counts as `/metrics`' `palaver_commands_total`), operators only as
/// `/metrics` is loopback only: which commands are used is the operators' business.
fn commands(ctx: &mut Ctx<'_>) {
    for (command, count) in ctx.world.counters.command_counts() {
        ctx.numeric(RPL_STATSCOMMANDS)
            .param(command)
            .param(&count.to_string())
            .send();
    }
}

/// `242 RPL_STATSUPTIME`.
fn uptime(ctx: &Ctx<'_>) {
    let up = ctx.world.started.elapsed().unwrap_or_default().as_secs();
    let (days, rest) = (up / 86_400, up % 86_400);
    let text = format!(
        "Server Up {days} days {}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    ctx.numeric(RPL_STATSUPTIME).trailing(&text).send();
}

/// `211 RPL_STATSLINKINFO`, one per connection: `<nick>[<user>@<host>] <sendq>
/// <sent messages> <sent KiB> <received messages> <received KiB> :<seconds open>`;
/// the message counts and received bytes are not kept (`*`).
fn links(ctx: &Ctx<'_>) {
    let now = unix_now();
    let mut left_out = 0;
    for (listed, client) in ctx.world.clients.values().enumerate() {
        if listed >= MAX_LINES {
            left_out += 1;
            continue;
        }
        let name = format!("{}[{}@{}]", client.nick(), client.user(), client.host);
        let sendq = client.outbox.pending_bytes().to_string();
        let sent = (client.outbox.sent_bytes() / 1024).to_string();
        let open = now.saturating_sub(client.signon).to_string();
        ctx.numeric(RPL_STATSLINKINFO)
            .param(&name)
            .param(&sendq)
            .param("*")
            .param(&sent)
            .param("*")
            .param("*")
            .trailing(&open)
            .send();
    }
    not_listed(ctx, left_out);
}

/// `216 RPL_STATSKLINE` (`K <host> * <user> :<reason>`) or `225 RPL_STATSDLINE`
/// (`D <mask> :<reason>`), one per ban in force; the reason ends with who set it
/// and, for a temporary ban, how long it has left.
fn bans(ctx: &Ctx<'_>, kind: ServerBanKind) {
    let now = Timestamp::now();
    let lines: Vec<(String, String)> = {
        let held = crate::lock(&ctx.world.bans);
        held.list(kind, now)
            .map(|ban| {
                let left = ban.expires_at.map_or_else(String::new, |at| {
                    let millis = u64::try_from(at.0.saturating_sub(now.0)).unwrap_or(0);
                    format!(
                        ", {} left",
                        crate::bans::describe_duration(std::time::Duration::from_secs(
                            millis.div_ceil(1000)
                        ))
                    )
                });
                (
                    ban.mask.clone(),
                    format!("{} (set by {}{left})", ban.reason, ban.set_by),
                )
            })
            .collect()
    };
    let left_out = lines.len().saturating_sub(MAX_LINES);
    for (mask, text) in lines.iter().take(MAX_LINES) {
        match kind {
            ServerBanKind::KLine => {
                let (user, host) = mask.rsplit_once('@').unwrap_or(("*", mask));
                ctx.numeric(RPL_STATSKLINE)
                    .param("K")
                    .param(host)
                    .param("*")
                    .param(user)
                    .trailing(text)
                    .send();
            }
            ServerBanKind::DLine => {
                ctx.numeric(RPL_STATSDLINE)
                    .param("D")
                    .param(mask)
                    .trailing(text)
                    .send();
            }
        }
    }
    not_listed(ctx, left_out);
}

/// Says how many entries a list left out, if any.
fn not_listed(ctx: &Ctx<'_>, count: usize) {
    if count > 0 {
        let nick = ctx.me().nick().to_owned();
        ctx.world
            .server_line(ctx.id, "NOTICE")
            .param(&nick)
            .trailing(&format!("*** STATS: {count} more not listed"))
            .send();
    }
}
