//! `chat-bench`, a load generator for IRC servers (palaver's, or any other).
//!
//! Five scenarios, each a module with an options struct (`clap::Args`), a `run`
//! function and a serialisable report:
//!
//! - [`connect`]: register many clients at once and hold them (registration latency,
//!   failures by kind, server memory per connection).
//! - [`fanout`]: channels with members and senders; every delivery is checked for
//!   loss, duplication and per-sender order and its latency goes into an HDR histogram.
//! - [`latency`]: private-message round trips between two clients.
//! - [`abuse`]: attackers from one address send an abusive command mix at the
//!   server's allowed pace while a canary from another address times PING round
//!   trips (can one address freeze the server for everyone?).
//!
//! The supporting modules: [`addr`] refuses targets that are not loopback unless asked,
//! [`conn`] is the IRC client connection (registration with PING answers and nick
//! retries) over the [`transport`] chosen (plain TCP, TLS, WebSocket), [`procstat`] reads a local server's CPU time and RSS from `/proc`, and
//! [`report`] holds the shared report pieces and the progress bar.
//!
//! All parsing goes through [`palaver_proto::Message`] and [`palaver_proto::LineFramer`],
//! all writing through [`palaver_proto::LineWriter`]. Every loop is bounded in count
//! and in time. The tool lifts no server limits: start the server under test with its
//! flood limits lifted (palaver: `--no-flood-limit`), or senders will be paced.

pub mod abuse;
pub mod addr;
pub mod conn;
pub mod connect;
pub mod failover;
pub mod fanout;
pub mod history_check;
pub mod latency;
pub mod procstat;
pub mod report;
pub mod rxtime;
pub mod transport;

/// Why a scenario could not produce a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--server-pid` was given but its `/proc` entry could not be read.
    #[error("reading /proc/{pid} (--server-pid): {source}")]
    Proc {
        /// The process asked for.
        pid: u32,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The options do not describe a possible run.
    #[error("invalid options: {0}")]
    Options(String),
    /// Setting the scenario up failed (a client could not register or join, or the
    /// setup did not finish in time).
    #[error("setup failed: {0}")]
    Setup(String),
    /// The measured phase failed.
    #[error("run failed: {0}")]
    Run(String),
}

/// Reads the counters of every `--server-pid` (the nodes of a cluster and its bus),
/// or `None` when none was given.
pub(crate) fn server_samples(pids: &[u32]) -> Result<Option<procstat::Samples>, Error> {
    if pids.is_empty() {
        return Ok(None);
    }
    procstat::Samples::read(pids)
        .map(Some)
        .map_err(|(pid, source)| Error::Proc { pid, source })
}

/// Reads the server's counters if `--server-pid` was given.
pub(crate) fn server_sample(pid: Option<u32>) -> Result<Option<procstat::ProcSample>, Error> {
    pid.map(|pid| procstat::sample(pid).map_err(|source| Error::Proc { pid, source }))
        .transpose()
}
