//! Integration tests: a real server on 127.0.0.1:0, real sockets, exact replies.
//!
//! One test binary for the crate (faster links on small CI machines); each module
//! covers one area of the protocol.

mod abuse;
mod accounts;
mod bans;
mod binary;
mod cap;
mod channels;
// Scale-out over NATS (ignored without nats-server: scripts/test-cluster.sh).
mod chanserv;
mod cluster;
mod durability;
// The PostgreSQL store (`#[ignore]`d: scripts/test-cluster.sh runs it).
mod elist;
mod hardening;
mod history;
mod ircv3;
mod lifecycle;
mod limits;
mod listmodes;
mod messaging;
mod metadata;
mod postgres_store;
// /metrics, /readyz, the Grafana dashboard, --log-format json.
mod metrics;
mod modes;
mod privacy;
mod queries;
mod registration;
mod scale;
mod server_info;
// Monitor, WHOX, operators, bot mode, SETNAME.
mod bot;
mod monitor;
mod oper;
mod operations;
mod setname;
mod whox;
// TLS, HTTP and WebSocket on the IRC port.
mod transports;
// TLS records split, large, closed, re-keyed and garbled.
mod tls_records;
// The browser client's files on that port.
mod web;
// draft/read-marker, draft/message-redaction.
mod read_marker;
mod redaction;
// draft/channel-rename.
mod rename;
