//! The palaver terminal client.
//!
//! Layers, bottom up (each knows only the ones below it):
//! - [`state`]: buffers, scrollback, nick lists, connection health; plain data.
//! - [`commands`]: what the user typed, parsed into a [`commands::Command`] or a hint.
//! - [`client`]: the UI-free core; applies server lines and input to the state and
//!   queues lines to send. Synchronous and clock-free, so it is unit-tested with
//!   scripted server lines.
//! - [`trust`]: TLS and trust on first use (the known-servers file of pinned
//!   certificate fingerprints).
//! - [`connection`]: the tokio task that owns the socket: connect (TCP or TLS), keepalive, pacing,
//!   reconnect with backoff. Talks to the core over two bounded channels.
//! - [`line_mode`] and [`tui`]: the two front ends, thin loops that feed the core
//!   and show its state; neither touches a socket.

pub mod client;
pub mod commands;
pub mod connection;
pub mod line_mode;
pub mod logfile;
pub mod state;
pub mod trust;
pub mod tui;

pub use client::{CONVERSATION_LOG, Change, Client, ClientConfig};
pub use connection::{ConnEvent, ConnectConfig, ToConn};
pub use state::{Stamp, State};

/// The current local time of day, given the UTC offset found at start-up.
///
/// The offset is looked up once, in `main`, before any thread starts: reading it later
/// is unsound on some platforms, and `time` refuses to.
pub fn now(offset: time::UtcOffset) -> Stamp {
    let utc = time::OffsetDateTime::now_utc();
    let now = utc.to_offset(offset);
    Stamp {
        utc: Some(utc),
        ..Stamp::new(now.hour(), now.minute()).on(now.date())
    }
}
