//! One connected client, as the rest of the server sees it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use palaver_proto::{CaseKey, LineWriter};

use crate::caps::CapSet;
use crate::outbox::Outbox;
use crate::relay::Kind;
use crate::scram::Exchange;

/// A client's identity within this process; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClientId(pub(crate) u64);

/// What [`Client::metadata`] shows for a client that never used metadata.
static NO_METADATA: super::metadata::ClientMetadata = super::metadata::ClientMetadata::EMPTY;

/// The wall-clock time in whole seconds since the Unix epoch (0 if the clock is
/// set before it), for the few times a client record keeps. `u32` keeps the record
/// small and lasts until 2106; later times saturate.
pub(crate) fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u32::try_from(since.as_secs()).unwrap_or(u32::MAX)
        })
}

/// Credentials a client is in the middle of presenting.
#[derive(Debug, Default)]
pub(crate) struct Login {
    /// The connection password the client sent with PASS.
    pub(crate) password: Option<crate::secret::Secret>,
    /// A SASL exchange in progress (see `handlers::sasl`).
    pub(crate) sasl: Option<Box<Sasl>>,
    /// The nickname a NICK before registration asked for and found taken: a
    /// `REGISTER * …` from a client without a nick means that name, and is refused
    /// as taken rather than for the missing nick (no land grabs).
    pub(crate) refused_nick: Option<Box<str>>,
}

/// A SASL mechanism we understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    /// RFC 4616: the password in the clear (inside the connection).
    Plain,
    /// RFC 7677: the password never crosses the wire.
    ScramSha256,
}

/// A SASL exchange in progress (see `handlers::sasl`).
#[derive(Debug)]
pub(crate) struct Sasl {
    /// What the client asked for with `AUTHENTICATE <mechanism>`.
    pub(crate) mechanism: Mechanism,
    /// Base64 received so far of the message being sent in chunks.
    pub(crate) buffer: String,
    /// Where the exchange is.
    pub(crate) step: Step,
}

/// Where an exchange is.
#[derive(Debug)]
pub(crate) enum Step {
    /// Waiting for the client's first message.
    Start,
    /// A deferred check runs; the client's lines wait for it anyway.
    Checking,
    /// SCRAM: server-first sent, waiting for the client-final message. `account` is
    /// the registered name, `None` for an unknown name (the exchange fails at the end).
    ScramFinal {
        exchange: Box<Exchange>,
        account: Option<String>,
    },
    /// SCRAM: server-final sent, waiting for the client's empty response.
    ScramAck { account: String },
}

/// A batch a client has opened and not closed yet.
#[derive(Debug)]
pub(crate) struct OpenBatch {
    /// The client's reference for it.
    pub(crate) reference: String,
    pub(crate) target: String,
    /// PRIVMSG or NOTICE, fixed by the first line.
    pub(crate) kind: Option<Kind>,
    /// Client-only tags from the opening line (they apply to the whole message).
    pub(crate) client_tags: String,
    /// The opening line's label, answered when the batch closes.
    pub(crate) label: Option<String>,
    /// Each line's text and whether it joins the previous one.
    pub(crate) lines: Vec<(String, bool)>,
    pub(crate) bytes: usize,
}

/// Where a client is in the registration handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registration {
    /// NICK/USER not both seen yet, or CAP negotiation still open.
    Pending,
    /// Welcome sent: the client is a full member of the network.
    Done,
}

/// A connected client: identity, state, and its outbound queue.
#[derive(Debug)]
///
/// Every connection has one, so its strings are `Box<str>` (16 bytes, not 24):
/// the record then fits the allocator's 320-byte class.
pub(crate) struct Client {
    pub(crate) id: ClientId,
    /// Current nickname; `None` before the first valid NICK.
    pub(crate) nick: Option<Box<str>>,
    /// Username from USER, with `~` prepended (we run no ident lookup).
    pub(crate) user: Option<Box<str>>,
    pub(crate) realname: Box<str>,
    /// Hostname shown to others: the IP address (IPv6 prefixed so it never starts with ':').
    pub(crate) host: Box<str>,
    pub(crate) registration: Registration,
    /// A CAP LS/REQ started negotiation; registration waits for CAP END.
    pub(crate) cap_negotiating: bool,
    /// CAP LS version the client announced (302 enables values and cap-notify).
    pub(crate) cap_version: u32,
    /// Capabilities the client enabled.
    pub(crate) caps: CapSet,
    /// The account the client is logged in to (its name as registered), `None`
    /// when not logged in. Private history is keyed by it (see `handlers::history`).
    pub(crate) account: Option<Box<str>>,
    /// Credentials in flight (the PASS password until registration, a SASL
    /// exchange), boxed: most clients never have any, or only briefly.
    pub(crate) login: Option<Box<Login>>,
    pub(crate) invisible: bool,
    pub(crate) oper: bool,
    /// Bot mode (`+B`): marked in WHO/WHOIS and tagged `bot` on its messages.
    pub(crate) bot: bool,
    /// Wallops (`+w`): receives WALLOPS.
    pub(crate) wallops: bool,
    /// The connection is encrypted (TLS, or WebSocket over TLS): WHOIS says so
    /// (671) and `+z` channels let it in. (A client certificate's fingerprint is
    /// kept in `World::certfps`: few clients present one.)
    pub(crate) tls: bool,
    /// A draft/multiline batch the client opened and has not closed yet.
    pub(crate) multiline: Option<Box<OpenBatch>>,
    pub(crate) away: Option<Box<str>>,
    /// Folded names of the channels the client is in.
    pub(crate) channels: super::Set<CaseKey>,
    /// Folded names of channels the client was invited to (bounded).
    pub(crate) invites: Vec<CaseKey>,
    /// Registration time in Unix seconds, for WHOIS signon.
    pub(crate) signon: u32,
    /// Last PRIVMSG/NOTICE in Unix seconds, for WHOIS idle time.
    pub(crate) last_spoke: u32,
    pub(crate) outbox: Arc<Outbox>,
    /// IRCv3 metadata set on this client, and its key subscriptions.
    /// Allocated on first use: most clients never set or subscribe to metadata.
    metadata: Option<Box<super::metadata::ClientMetadata>>,
}

impl Client {
    /// The client's metadata and key subscriptions (empty if it never used any).
    pub(crate) fn metadata(&self) -> &super::metadata::ClientMetadata {
        self.metadata.as_deref().unwrap_or(&NO_METADATA)
    }

    /// Metadata keys the client holds (for the server-wide count).
    pub(crate) fn metadata_len(&self) -> usize {
        self.metadata.as_ref().map_or(0, |m| m.values.len())
    }

    /// The client's metadata, to change it.
    pub(crate) fn metadata_mut(&mut self) -> &mut super::metadata::ClientMetadata {
        self.metadata.get_or_insert_with(Box::default)
    }

    /// Forgets the client's metadata key subscriptions (without allocating if it
    /// has none).
    pub(crate) fn drop_metadata_subscriptions(&mut self) {
        if let Some(metadata) = self.metadata.as_mut() {
            metadata.subs.clear();
        }
    }

    /// The address the client connected from (its host is that address as text).
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// This client's share of the LUSERS counts.
    pub(crate) fn census(&self) -> super::Census {
        let registered = self.is_registered();
        super::Census {
            registered: usize::from(registered),
            invisible: usize::from(registered && self.invisible),
            opers: usize::from(self.oper),
        }
    }

    pub(crate) fn new(id: ClientId, ip: IpAddr, outbox: Arc<Outbox>) -> Self {
        let host = match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => v6
                .to_ipv4_mapped()
                .map(|v4| v4.to_string())
                .unwrap_or_default(),
            IpAddr::V6(v6) => {
                let text = v6.to_string();
                if text.starts_with(':') {
                    format!("0{text}")
                } else {
                    text
                }
            }
            IpAddr::V4(v4) => v4.to_string(),
        };
        Self {
            id,
            nick: None,
            user: None,
            realname: Box::default(),
            host: host.into_boxed_str(),
            registration: Registration::Pending,
            cap_negotiating: false,
            cap_version: 0,
            caps: CapSet::default(),
            account: None,
            login: None,
            invisible: false,
            oper: false,
            bot: false,
            wallops: false,
            tls: false,
            multiline: None,
            away: None,
            channels: super::Set::default(),
            invites: Vec::new(),
            signon: unix_now(),
            last_spoke: unix_now(),
            outbox,
            metadata: None,
        }
    }

    /// The nickname, or `*` before one is set (as numerics address such clients).
    pub(crate) fn nick(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }

    /// The username, or `*` before USER.
    pub(crate) fn user(&self) -> &str {
        self.user.as_deref().unwrap_or("*")
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.registration == Registration::Done
    }

    /// `nick!user@host`, for ban matching and WHOWAS.
    pub(crate) fn mask(&self) -> String {
        format!("{}!{}@{}", self.nick(), self.user(), self.host)
    }

    /// Starts a line whose source is this client.
    pub(crate) fn line_from(&self) -> LineWriter {
        let mut line = LineWriter::new();
        line.source_parts(self.nick(), self.user(), &self.host);
        line
    }

    /// Queues a line for this client.
    pub(crate) fn send(&self, line: Bytes) {
        self.outbox.push(line);
    }

    /// The user modes as a `+...` string (`RPL_UMODEIS`).
    pub(crate) fn mode_string(&self) -> String {
        let mut modes = String::from("+");
        if self.bot {
            modes.push('B');
        }
        if self.invisible {
            modes.push('i');
        }
        if self.oper {
            modes.push('o');
        }
        if self.wallops {
            modes.push('w');
        }
        modes
    }
}
