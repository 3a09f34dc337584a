//! Command handlers: one file per family, each a plain function of the world, the
//! client and the parsed message.
//!
//! [`line::process_line`] is the only entry point: for one received line it locks the
//! world and calls [`dispatch`], and every handler finishes without awaiting. Protocol errors are
//! replies (numerics), never panics or disconnects; a handler that must end the
//! connection (QUIT, a wrong password) sets [`Ctx::quit`].

mod account;
mod cap;
mod certfp;
mod channel;
pub(crate) mod chathistory;
mod elist;
mod help;
pub(crate) mod line;
mod messaging;
mod metadata;
mod mode;
pub(crate) mod multiline;
pub(crate) mod paged;
mod query;
mod registration;
mod server_info;
// Monitor, operators, bot mode, SETNAME, WHOX.
pub(crate) mod deferred;
pub(crate) mod monitor;
mod oper;
mod setname;
// Operating the server: server bans, STATS, SAJOIN/SAPART/SANICK, DIE/RESTART.
mod bans;
mod sa;
mod stats;
mod whox;
// draft/read-marker, draft/message-redaction.
mod read_marker;
mod redact;
// draft/channel-rename.
mod rename;
// Accounts: SASL, REGISTER/VERIFY, NickServ; ChanServ.
mod chanserv;
pub(crate) mod nickserv;
pub(crate) mod sasl;

use palaver_proto::Message;
use palaver_proto::numeric::*;

use crate::relay::Kind;
use crate::world::{ClientId, World};

/// What a handler works with.
pub(crate) struct Ctx<'a> {
    pub(crate) world: &'a mut World,
    pub(crate) id: ClientId,
    /// Set when the connection must close after this command, with the reason.
    pub(crate) quit: Option<String>,
    /// Slow work to run once the world lock is released (see [`deferred`]).
    pub(crate) deferred: Option<deferred::Deferred>,
    /// The command's `label` (labeled-response). A handler whose replies come later
    /// (a multiline batch, answered when it closes) takes it to label them itself.
    pub(crate) label: Option<String>,
    /// A reply too large to send at once, for the connection to send a page at a
    /// time (see [`paged`]).
    pub(crate) paged: Option<Box<paged::Paged>>,
}

impl<'a> Ctx<'a> {
    /// A context for one command of client `id`.
    pub(crate) fn new(world: &'a mut World, id: ClientId) -> Self {
        Self {
            world,
            id,
            quit: None,
            deferred: None,
            label: None,
            paged: None,
        }
    }
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

    /// `403 ERR_NOSUCHCHANNEL` for `name`.
    fn no_such_channel(&self, name: &str) {
        self.numeric(ERR_NOSUCHCHANNEL)
            .param(name)
            .trailing("No such channel")
            .send();
    }

    /// `401 ERR_NOSUCHNICK` for `target` (a nick, or a channel that does not exist).
    fn no_such_nick(&self, target: &str) {
        self.numeric(ERR_NOSUCHNICK)
            .param(target)
            .trailing("No such nick/channel")
            .send();
    }
}

/// A command handler.
type Handler = fn(&mut Ctx<'_>, &Message<'_>);

/// A command: its handler, and whether it may be sent before registration.
struct Command {
    handler: Handler,
    before_registration: bool,
}

/// The one table of commands we understand.
fn lookup(name: &str) -> Option<Command> {
    let (handler, before_registration): (Handler, bool) = match name {
        "CAP" => (cap::cap, true),
        "PASS" => (registration::pass, true),
        "NICK" => (registration::nick, true),
        "USER" => (registration::user, true),
        "PING" => (server_info::ping, true),
        "PONG" => (|_, _| {}, true),
        "QUIT" => (registration::quit, true),
        "JOIN" => (channel::join, false),
        "PART" => (channel::part, false),
        "TOPIC" => (channel::topic, false),
        "NAMES" => (channel::names, false),
        "LIST" => (channel::list, false),
        "KICK" => (channel::kick, false),
        "INVITE" => (channel::invite, false),
        "PRIVMSG" => (
            |ctx, msg| {
                // NickServ is a service, not a client: its messages are commands.
                if msg.param(0).is_some_and(nickserv::addressed) {
                    nickserv::privmsg(ctx, msg);
                } else if msg.param(0).is_some_and(chanserv::addressed) {
                    chanserv::privmsg(ctx, msg);
                } else {
                    messaging::relay(ctx, msg, Kind::Privmsg);
                }
            },
            false,
        ),
        "NOTICE" => (|ctx, msg| messaging::relay(ctx, msg, Kind::Notice), false),
        "TAGMSG" => (|ctx, msg| messaging::relay(ctx, msg, Kind::Tagmsg), false),
        "MODE" => (mode::mode, false),
        "WHO" => (query::who, false),
        "WHOIS" => (query::whois, false),
        "WHOWAS" => (query::whowas, false),
        "AWAY" => (query::away, false),
        "ISON" => (query::ison, false),
        "USERHOST" => (query::userhost, false),
        "MOTD" => (server_info::motd, false),
        "LUSERS" => (server_info::lusers, false),
        "VERSION" => (server_info::version, false),
        "TIME" => (server_info::time, false),
        "MONITOR" => (monitor::monitor, false),
        "OPER" => (oper::oper, false),
        "KILL" => (oper::kill, false),
        "WALLOPS" => (oper::wallops, false),
        "REHASH" => (oper::rehash, false),
        "KLINE" => (bans::kline, false),
        "UNKLINE" => (bans::unkline, false),
        "DLINE" => (bans::dline, false),
        "UNDLINE" => (bans::undline, false),
        "STATS" => (stats::stats, false),
        "SAJOIN" => (sa::sajoin, false),
        "SAPART" => (sa::sapart, false),
        "SANICK" => (sa::sanick, false),
        "DIE" => (oper::die, false),
        "RESTART" => (oper::restart, false),
        "BATCH" => (multiline::batch, false),
        "INFO" => (server_info::info, false),
        "LINKS" => (server_info::links, false),
        "HELP" | "HELPOP" => (help::help, false),
        "SETNAME" => (setname::setname, false),
        // `before-connect`: usable during registration (on `*` only).
        "METADATA" => (metadata::metadata, true),
        "MARKREAD" => (read_marker::markread, false),
        "REDACT" => (redact::redact, false),
        "RENAME" => (rename::rename, false),
        "AUTHENTICATE" => (sasl::authenticate, true),
        "REGISTER" => (account::register, true),
        "VERIFY" => (account::verify, true),
        "NS" | "NICKSERV" => (nickserv::alias, false),
        "CS" | "CHANSERV" => (chanserv::alias, false),
        "CHATHISTORY" => (chathistory::chathistory, false),
        _ => return None,
    };
    Some(Command {
        handler,
        before_registration,
    })
}

/// Runs one command for the client `ctx.id`.
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let mut upper = [0u8; 16];
    let command = msg.command();
    let Some(found) = ascii_upper(command, &mut upper).and_then(lookup) else {
        // Before registration an unknown command is most likely text typed into a
        // raw connection (the seed apps' habit): say what is missing rather than
        // nothing. Flood pacing bounds how often.
        if ctx.me().is_registered() {
            unknown_command(ctx, command);
        } else {
            not_registered(ctx);
        }
        return;
    };
    if !found.before_registration && !ctx.me().is_registered() {
        not_registered(ctx);
        return;
    }
    (found.handler)(ctx, msg);
}

fn not_registered(ctx: &Ctx<'_>) {
    ctx.numeric(ERR_NOTREGISTERED)
        .trailing("You have not registered")
        .send();
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
/// They are the caller's own commands, so `account-tag` peers see its account.
fn notify_peers(ctx: &Ctx<'_>, cap: crate::caps::Cap, line: &bytes::Bytes) {
    let event = crate::relay::EventLine::new(line.clone(), ctx.me().account.as_deref());
    for peer in ctx.world.peers_of(ctx.id) {
        let caps = peer.caps();
        if caps.has(cap) {
            peer.push(event.line_for(caps));
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
