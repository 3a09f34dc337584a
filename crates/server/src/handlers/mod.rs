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
pub(crate) mod channel;
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
pub(crate) mod sa;
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

use crate::metrics::{OTHER_COMMAND, known_command_slot};
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
    /// Where it is counted (`metrics::COMMANDS`).
    slot: usize,
    handler: Handler,
    before_registration: bool,
}

/// A command's `metrics::COMMANDS` slot, found when the crate is built (a name
/// missing from that table fails the build).
macro_rules! slot {
    ($name:literal) => {
        const { known_command_slot($name) }
    };
}

/// The one table of commands we understand.
fn lookup(name: &str) -> Option<Command> {
    let (slot, handler, before_registration): (usize, Handler, bool) = match name {
        "CAP" => (slot!("CAP"), cap::cap, true),
        "PASS" => (slot!("PASS"), registration::pass, true),
        "NICK" => (slot!("NICK"), registration::nick, true),
        "USER" => (slot!("USER"), registration::user, true),
        "PING" => (slot!("PING"), server_info::ping, true),
        "PONG" => (slot!("PONG"), |_, _| {}, true),
        "QUIT" => (slot!("QUIT"), registration::quit, true),
        "JOIN" => (slot!("JOIN"), channel::join, false),
        "PART" => (slot!("PART"), channel::part, false),
        "TOPIC" => (slot!("TOPIC"), channel::topic, false),
        "NAMES" => (slot!("NAMES"), channel::names, false),
        "LIST" => (slot!("LIST"), channel::list, false),
        "KICK" => (slot!("KICK"), channel::kick, false),
        "INVITE" => (slot!("INVITE"), channel::invite, false),
        "PRIVMSG" => (
            slot!("PRIVMSG"),
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
        "NOTICE" => (
            slot!("NOTICE"),
            |ctx, msg| messaging::relay(ctx, msg, Kind::Notice),
            false,
        ),
        "TAGMSG" => (
            slot!("TAGMSG"),
            |ctx, msg| messaging::relay(ctx, msg, Kind::Tagmsg),
            false,
        ),
        "MODE" => (slot!("MODE"), mode::mode, false),
        "WHO" => (slot!("WHO"), query::who, false),
        "WHOIS" => (slot!("WHOIS"), query::whois, false),
        "WHOWAS" => (slot!("WHOWAS"), query::whowas, false),
        "AWAY" => (slot!("AWAY"), query::away, false),
        "ISON" => (slot!("ISON"), query::ison, false),
        "USERHOST" => (slot!("USERHOST"), query::userhost, false),
        "MOTD" => (slot!("MOTD"), server_info::motd, false),
        "LUSERS" => (slot!("LUSERS"), server_info::lusers, false),
        "VERSION" => (slot!("VERSION"), server_info::version, false),
        "TIME" => (slot!("TIME"), server_info::time, false),
        "MONITOR" => (slot!("MONITOR"), monitor::monitor, false),
        "OPER" => (slot!("OPER"), oper::oper, false),
        "KILL" => (slot!("KILL"), oper::kill, false),
        "WALLOPS" => (slot!("WALLOPS"), oper::wallops, false),
        "REHASH" => (slot!("REHASH"), oper::rehash, false),
        "KLINE" => (slot!("KLINE"), bans::kline, false),
        "UNKLINE" => (slot!("UNKLINE"), bans::unkline, false),
        "DLINE" => (slot!("DLINE"), bans::dline, false),
        "UNDLINE" => (slot!("UNDLINE"), bans::undline, false),
        "STATS" => (slot!("STATS"), stats::stats, false),
        "SAJOIN" => (slot!("SAJOIN"), sa::sajoin, false),
        "SAPART" => (slot!("SAPART"), sa::sapart, false),
        "SANICK" => (slot!("SANICK"), sa::sanick, false),
        "DIE" => (slot!("DIE"), oper::die, false),
        "RESTART" => (slot!("RESTART"), oper::restart, false),
        "BATCH" => (slot!("BATCH"), multiline::batch, false),
        "INFO" => (slot!("INFO"), server_info::info, false),
        "LINKS" => (slot!("LINKS"), server_info::links, false),
        "HELP" | "HELPOP" => (slot!("HELP"), help::help, false),
        "SETNAME" => (slot!("SETNAME"), setname::setname, false),
        // `before-connect`: usable during registration (on `*` only).
        "METADATA" => (slot!("METADATA"), metadata::metadata, true),
        "MARKREAD" => (slot!("MARKREAD"), read_marker::markread, false),
        "REDACT" => (slot!("REDACT"), redact::redact, false),
        "RENAME" => (slot!("RENAME"), rename::rename, false),
        "AUTHENTICATE" => (slot!("AUTHENTICATE"), sasl::authenticate, true),
        "REGISTER" => (slot!("REGISTER"), account::register, true),
        "VERIFY" => (slot!("VERIFY"), account::verify, true),
        "NS" | "NICKSERV" => (slot!("NICKSERV"), nickserv::alias, false),
        "CS" | "CHANSERV" => (slot!("CHANSERV"), chanserv::alias, false),
        "CHATHISTORY" => (slot!("CHATHISTORY"), chathistory::chathistory, false),
        _ => return None,
    };
    Some(Command {
        slot,
        handler,
        before_registration,
    })
}

/// Runs one command for the client `ctx.id`.
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let mut upper = [0u8; 16];
    let command = msg.command();
    let found = ascii_upper(command, &mut upper).and_then(lookup);
    let slot = found.as_ref().map_or(OTHER_COMMAND, |found| found.slot);
    ctx.world.counters.commands[slot] += 1;
    let Some(found) = found else {
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
