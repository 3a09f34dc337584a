//! Scale-out: several palaver processes ("nodes") act as one server, on NATS.
//!
//! No server-to-server protocol of our own: the nodes share a NATS server (core
//! pub/sub for events and deliveries, JetStream KV for nick claims) and, for
//! accounts and history, a PostgreSQL store. The design:
//!
//! - **Each node is the authority for its own users.** What a user does is decided
//!   on its home node against that node's view of the network, which sends the
//!   resulting lines to every recipient (local ones directly, remote ones through
//!   the link), and announces the *outcome* as a `bus::Event` that other
//!   nodes apply to their replica without sending anything (see `world::remote`).
//! - **A channel message travels once per node.** It goes, in parts, to each node
//!   with members of the channel, which formats it for its own members as the
//!   sender formats it for its own (`world::forward`): a member on another node
//!   costs its node about what a local member costs the sender, and the bus one
//!   entry per node, never one per recipient.
//! - **Other lines are routed, not recomputed.** A remote user is a client record
//!   whose outbox the link drains (a private message, a JOIN, a MODE); each
//!   distinct line goes to a node once per pass, with the list of its recipients
//!   there ([`link`]).
//! - **Nicks are claimed cluster-wide** with a JetStream KV create-if-absent
//!   (`bus::Bus::claim_nick`) before a NICK takes effect: of two nodes racing for the
//!   same nick exactly one wins. A node's claims and releases run one at a time,
//!   in the order its nicks changed ([`claims`]).
//! - **Facts that change too often to announce are asked for.** WHOIS of another
//!   node's user asks that node for the user's idle time (NATS request-reply,
//!   [`ask`]) and answers without it if none comes within a second.
//! - **Liveness** is a heartbeat per node on the broadcast subject; a node silent
//!   for the node timeout is lost: its users quit everywhere else (`QUIT :node a
//!   lost`) and their nick claims are released. A node that comes back is a new
//!   incarnation (its `boot`), introduced by the burst every node sends it.
//!
//! # Ordering
//! Everything one node sends another goes through NATS from one connection, which
//! keeps it in order, and leaves the node through one queue (`world::forward`),
//! so a user's lines and events reach every node in the order its home node
//! produced them (per sender order), channel messages and lines for single users
//! alike: a private message sent before a channel message arrives first. A
//! message that history keeps waits in that queue for its commit, with everything
//! behind it, as it waits in a local user's outbox. Between senders on different nodes
//! there is no global order: two nodes' messages to a channel may interleave
//! differently on different nodes, as on any IRC network of linked servers.

pub(crate) mod apply;
pub(crate) mod ask;
pub(crate) mod claims;
pub(crate) mod link;
