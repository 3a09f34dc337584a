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
//! - **Deliveries are routed, not recomputed.** A remote user is a client record
//!   whose outbox the link drains; each distinct line goes to a node once per pass,
//!   with the list of its recipients there ([`link`]). So a channel message costs
//!   one bus message per node with members, never one per recipient.
//! - **Nicks are claimed cluster-wide** with a JetStream KV create-if-absent
//!   (`bus::Bus::claim_nick`) before a NICK takes effect: of two nodes racing for the
//!   same nick exactly one wins.
//! - **Liveness** is a heartbeat per node on the broadcast subject; a node silent
//!   for the node timeout is lost: its users quit everywhere else (`QUIT :node a
//!   lost`) and their nick claims are released. A node that comes back is a new
//!   incarnation (its `boot`), introduced by the burst every node sends it.
//!
//! # Ordering
//! Everything one node sends another goes through NATS from one connection, which
//! keeps it in order: a user's lines and events reach every node in the order its
//! home node produced them (per sender order). Between senders on different nodes
//! there is no global order: two nodes' messages to a channel may interleave
//! differently on different nodes, as on any IRC network of linked servers.

pub(crate) mod apply;
pub(crate) mod link;
