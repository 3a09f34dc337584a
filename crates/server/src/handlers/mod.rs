//! Command handlers: one file per family, each a plain function of the world, the
//! client and the parsed message.
//!
//! [`dispatch`] is the only entry point: it is called with the world locked, for one
//! parsed line, and every handler finishes without awaiting. Protocol errors are
//! replies (numerics), never panics or disconnects; a handler that must end the
//! connection (QUIT, a wrong password) sets [`Ctx::quit`].

mod cap;
mod channel;
mod messaging;
mod mode;
mod query;
mod registration;
mod server_info;
// Monitor, operators, bot mode, SETNAME, WHOX.
pub(crate) mod deferred;
pub(crate) mod monitor;
mod oper;
mod setname;
mod whox;

use palaver_proto::Message;
use palaver_proto::numeric::*;

use crate::world::{ClientId, World};

/// What a handler works with.
pub(crate) struct Ctx<'a> {
    pub(crate) world: &'a mut World,
    pub(crate) id: ClientId,
    /// Set when the connection must close after this command, with the reason.
    pub(crate) quit: Option<String>,
    /// Slow work to run once the world lock is released (see [`deferred`]).
    pub(crate) deferred: Option<deferred::Deferred>,
}

impl Ctx<'_> {
    /// The calling client. Handlers run only for clients that are in the world.
    fn me(&self) -> &crate::world::Client {
        self.world
            .clients
            .get(&self.id)
            .unwrap_or_else(|| unreachable!("handler called for a removed client"))
    }

    fn me_mut(&mut self) -> &mut crate::world::Client {
        self.world
            .clients
            .get_mut(&self.id)
            .unwrap_or_else(|| unreachable!("handler called for a removed client"))
    }

    fn numeric(&self, code: &str) -> crate::world::Reply {
        self.world.numeric(self.id, code)
    }

    /// `461 ERR_NEEDMOREPARAMS` for `command`.
    fn need_more_params(&self, command: &str) {
        self.numeric(ERR_NEEDMOREPARAMS)
            .param(command)
            .trailing("Not enough parameters")
            .send();
    }
}

/// Commands a client may send before it has registered.
const BEFORE_REGISTRATION: &[&str] = &["CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT"];

/// Runs one command for the client `ctx.id`.
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let mut upper = [0u8; 16];
    let command = msg.command();
    let Some(name) = ascii_upper(command, &mut upper) else {
        unknown_command(ctx, command);
        return;
    };
    if !ctx.me().is_registered() && !BEFORE_REGISTRATION.contains(&name) {
        if is_known(name) {
            ctx.numeric(ERR_NOTREGISTERED)
                .trailing("You have not registered")
                .send();
        }
        // Unknown commands before registration are ignored, as most servers do,
        // so clients probing with non-standard commands are not confused.
        return;
    }
    match name {
        "CAP" => cap::cap(ctx, msg),
        "PASS" => registration::pass(ctx, msg),
        "NICK" => registration::nick(ctx, msg),
        "USER" => registration::user(ctx, msg),
        "PING" => server_info::ping(ctx, msg),
        "PONG" => {}
        "QUIT" => registration::quit(ctx, msg),
        "JOIN" => channel::join(ctx, msg),
        "PART" => channel::part(ctx, msg),
        "TOPIC" => channel::topic(ctx, msg),
        "NAMES" => channel::names(ctx, msg),
        "LIST" => channel::list(ctx, msg),
        "KICK" => channel::kick(ctx, msg),
        "INVITE" => channel::invite(ctx, msg),
        "PRIVMSG" => messaging::relay(ctx, msg, messaging::Kind::Privmsg),
        "NOTICE" => messaging::relay(ctx, msg, messaging::Kind::Notice),
        "TAGMSG" => messaging::relay(ctx, msg, messaging::Kind::Tagmsg),
        "MODE" => mode::mode(ctx, msg),
        "WHO" => query::who(ctx, msg),
        "WHOIS" => query::whois(ctx, msg),
        "WHOWAS" => query::whowas(ctx, msg),
        "AWAY" => query::away(ctx, msg),
        "ISON" => query::ison(ctx, msg),
        "USERHOST" => query::userhost(ctx, msg),
        "MOTD" => server_info::motd(ctx, msg),
        "LUSERS" => server_info::lusers(ctx),
        "VERSION" => server_info::version(ctx, msg),
        "TIME" => server_info::time(ctx, msg),
        "MONITOR" => monitor::monitor(ctx, msg),
        "OPER" => oper::oper(ctx, msg),
        "KILL" => oper::kill(ctx, msg),
        "SETNAME" => setname::setname(ctx, msg),
        _ => unknown_command(ctx, command),
    }
}

/// Every command [`dispatch`] knows, for the pre-registration check.
fn is_known(name: &str) -> bool {
    matches!(
        name,
        "JOIN"
            | "PART"
            | "TOPIC"
            | "NAMES"
            | "LIST"
            | "KICK"
            | "INVITE"
            | "PRIVMSG"
            | "NOTICE"
            | "TAGMSG"
            | "MODE"
            | "WHO"
            | "WHOIS"
            | "WHOWAS"
            | "AWAY"
            | "ISON"
            | "USERHOST"
            | "MOTD"
            | "LUSERS"
            | "VERSION"
            | "TIME"
            | "MONITOR"
            | "OPER"
            | "KILL"
            | "SETNAME"
    )
}

fn unknown_command(ctx: &Ctx<'_>, command: &str) {
    ctx.numeric(ERR_UNKNOWNCOMMAND)
        .param(command)
        .trailing("Unknown command")
        .send();
}

/// Upper-cases a short ASCII command into `buf`; `None` if it is too long or not ASCII.
fn ascii_upper<'b>(command: &str, buf: &'b mut [u8; 16]) -> Option<&'b str> {
    let bytes = command.as_bytes();
    if bytes.len() > buf.len() || !bytes.is_ascii() {
        return None;
    }
    let out = &mut buf[..bytes.len()];
    out.copy_from_slice(bytes);
    out.make_ascii_uppercase();
    std::str::from_utf8(out).ok()
}

/// Queues `line` for every client sharing a channel with the caller that has `cap`
/// (away-notify, setname and friends).
fn notify_peers(ctx: &Ctx<'_>, cap: crate::caps::Cap, line: &bytes::Bytes) {
    for peer in ctx.world.peers_of(ctx.id) {
        if peer.caps().has(cap) {
            peer.push(line.clone());
        }
    }
}

/// Splits a comma-separated list parameter, skipping empty items.
fn split_list(param: &str) -> impl Iterator<Item = &str> {
    param.split(',').filter(|item| !item.is_empty())
}

/// Seconds since the Unix epoch, for `RPL_TOPICWHOTIME` and friends.
fn unix_seconds(time: std::time::SystemTime) -> String {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string()
}
