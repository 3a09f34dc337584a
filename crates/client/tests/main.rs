//! Integration tests for the client: one binary (habit 29), one module per layer.
//!
//! - `core`: the core and the connection task against a real palaver server and
//!   against scripted servers (reconnect, keepalive, local port).
//! - `binary`: the `chat-client` executable in line mode against a real server.
//! - `tui`: the full-screen UI rendered at 80x24 into a `TestBackend`, snapshotted.
//! - `tls`: TLS and trust on first use, the binary against a server with TLS.
//! - `pty`: the `chat-client` executable full screen in a pseudo-terminal.

mod binary;
mod core;
mod pty;
mod tls;
mod tui;
