//! The `chat-server` executable itself: startup line, signals, exit statuses and the
//! messages a user sees when something is wrong.
//!
//! The server runs in its own process, so the test's runtime only drives the test
//! client; blocking waits on the process (bounded by timeouts) stall nothing else.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use palaver_test_support::TestClient;

/// How long the process gets to start, or to exit once asked to.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(5);

/// A running `chat-server`, killed (SIGKILL) on drop if it is still running, so a
/// failing test leaves no process behind.
pub(crate) struct ServerProcess {
    pid: u32,
    stdout: Receiver<String>,
    /// Everything written to stderr so far, and a signal for each new piece.
    stderr: Arc<(Mutex<String>, Condvar)>,
    stderr_reader: Option<JoinHandle<()>>,
    exited: Receiver<ExitStatus>,
    status: Option<ExitStatus>,
}

impl ServerProcess {
    pub(crate) fn spawn(args: &[&str]) -> Self {
        let mut command = Self::command();
        command.args(args);
        Self::spawn_command(command)
    }

    /// `chat-server` with a predictable environment and its data in memory, for
    /// [`ServerProcess::spawn_command`]: tests run in parallel, and none may take
    /// the default data directory.
    pub(crate) fn command() -> Command {
        let mut command = Self::command_with_data();
        command.arg("--ephemeral");
        command
    }

    /// [`ServerProcess::command`] without `--ephemeral`: the caller names a
    /// `--data-dir` of its own.
    pub(crate) fn command_with_data() -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
        command
            .env_remove("RUST_LOG")
            .env_remove("PALAVER_SERVER_NAME")
            .env_remove("PALAVER_PASSWORD")
            // Backtraces would be captured if the binary ever printed one: make sure
            // the error messages stay free of them even with this set.
            .env("RUST_BACKTRACE", "1")
            .env_remove("PALAVER_DATA_DIR")
            .env_remove("PALAVER_STORE");
        command
    }

    /// Runs `command` (e.g. from [`ServerProcess::command`]) with its output captured.
    pub(crate) fn spawn_command(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chat-server");
        let pid = child.id();

        let out = child.stdout.take().expect("piped stdout");
        let (line_tx, stdout) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let sink = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut chunk) {
                let text = String::from_utf8_lossy(&chunk[..n]);
                let (text_so_far, grew) = &*sink;
                text_so_far
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_str(&text);
                grew.notify_all();
            }
        });
        let (exit_tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_tx.send(status);
            }
        });
        Self {
            pid,
            stdout,
            stderr,
            stderr_reader: Some(stderr_reader),
            exited,
            status: None,
        }
    }

    /// The process id, to read its memory from `/proc`.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for a stdout line containing `needle`; returns it.
    pub(crate) fn expect_stdout(&self, needle: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.stdout.recv_timeout(PROCESS_TIMEOUT) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "no stdout line containing {needle:?}; stdout: {seen:#?}; stderr: {}",
                    self.stderr()
                ),
            }
        }
    }

    /// Starts on 127.0.0.1 port 0 and returns the address it reports.
    pub(crate) fn start_listening(extra: &[&str]) -> (Self, SocketAddr) {
        let mut args = vec!["127.0.0.1", "0"];
        args.extend_from_slice(extra);
        Self::listening(Self::spawn(&args))
    }

    /// Waits for `server` to report its address; returns it.
    pub(crate) fn listening(server: Self) -> (Self, SocketAddr) {
        let line = server.expect_stdout("listening on ");
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        assert!(line.contains("listening on 127.0.0.1:"), "{line:?}");
        assert_ne!(addr.port(), 0, "{line:?}");
        (server, addr)
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid);
    }

    /// Waits for the process to exit (within [`PROCESS_TIMEOUT`]); returns its status
    /// and everything it wrote to stderr.
    pub(crate) fn wait_exit(&mut self) -> (ExitStatus, String) {
        self.wait_exit_within(PROCESS_TIMEOUT)
    }

    /// [`ServerProcess::wait_exit`], waiting up to `timeout`.
    pub(crate) fn wait_exit_within(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let status = match self.exited.recv_timeout(timeout) {
            Ok(status) => status,
            Err(RecvTimeoutError::Timeout) => panic!(
                "chat-server still running after {timeout:?}; stderr: {}",
                self.stderr()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!("lost track of chat-server"),
        };
        self.status = Some(status);
        // The process is gone, so stderr reaches EOF: collect all of it.
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        (status, self.stderr())
    }

    /// Everything the process wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits (within [`PROCESS_TIMEOUT`]) until stderr contains `needle`: a log line
    /// can reach the pipe after the client already saw what it logs.
    pub(crate) fn expect_stderr(&self, needle: &str) -> String {
        let (text, grew) = &*self.stderr;
        let guard = text.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = grew
            .wait_timeout_while(guard, PROCESS_TIMEOUT, |text| !text.contains(needle))
            .unwrap_or_else(|p| p.into_inner());
        assert!(
            guard.contains(needle),
            "no {needle:?} on stderr: {}",
            *guard
        );
        guard.clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.status.is_none() && self.exited.try_recv().is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
            let _ = self.exited.recv_timeout(PROCESS_TIMEOUT);
        }
    }
}

pub(crate) fn assert_no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
}

/// A client connected to the process, registered and in a channel.
pub(crate) async fn connected_client(addr: SocketAddr, nick: &str) -> TestClient {
    let mut client = TestClient::connect(addr).await;
    client.register(nick).await;
    client.send("JOIN #lobby").await;
    client.expect_command("366").await;
    client
}

async fn stops_cleanly_on(signal: &str) {
    let (mut server, addr) = ServerProcess::start_listening(&[]);
    let mut alice = connected_client(addr, "alice").await;
    let mut bob = connected_client(addr, "bob").await;
    alice.sync().await;

    let signalled = std::time::Instant::now();
    server.signal(signal);
    for client in [&mut alice, &mut bob] {
        let lines = client.expect_closed().await;
        let last = lines.last().map(|l| l.0.as_str());
        assert_eq!(last, Some("ERROR :Server shutting down"), "{lines:#?}");
    }
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "exit status {status}; stderr: {stderr}");
    assert!(
        signalled.elapsed() < PROCESS_TIMEOUT,
        "{:?}",
        signalled.elapsed()
    );
    assert_no_panic(&stderr);
}

#[tokio::test]
async fn prints_its_address_and_serves_clients() {
    let (_server, addr) = ServerProcess::start_listening(&[]);
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    let mut alice = connected_client(addr, "alice").await;
    let mut bob = connected_client(addr, "bob").await;
    bob.sync().await;
    alice.send("PRIVMSG #lobby :hi bob").await;
    let line = bob.expect_command("PRIVMSG").await;
    assert_eq!(line.last(), "hi bob");
    assert_eq!(line.source_nick(), "alice");
}

#[tokio::test]
async fn sigterm_says_goodbye_and_exits_with_status_zero() {
    stops_cleanly_on("TERM").await;
}

#[tokio::test]
async fn sigint_says_goodbye_and_exits_with_status_zero() {
    stops_cleanly_on("INT").await;
}

#[tokio::test]
async fn a_bad_address_is_one_clear_sentence() {
    let mut server = ServerProcess::spawn(&["not-an-ip", "6667"]);
    let (status, stderr) = server.wait_exit();
    assert!(!status.success(), "exit status {status}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_no_panic(&stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("'not-an-ip' is not an IP address"),
        "{stderr}"
    );
    assert!(
        lines[0].contains("127.0.0.1"),
        "suggests an address: {stderr}"
    );
    assert!(lines[0].contains("not looked up"), "says why: {stderr}");
}

#[tokio::test]
async fn impossible_counts_are_refused_in_plain_words() {
    for (args, expected) in [
        (&["--threads", "0"][..], "must be at least 1"),
        (&["--max-clients", "0"][..], "must be at least 1"),
        (&["--max-clients-per-ip", "0"][..], "must be at least 1"),
    ] {
        let mut command = vec!["127.0.0.1", "0"];
        command.extend_from_slice(args);
        let mut server = ServerProcess::spawn(&command);
        let (status, stderr) = server.wait_exit();
        assert!(!status.success(), "{args:?} accepted");
        assert_no_panic(&stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("non-zero type"), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_port_in_use_is_reported_as_such() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let mut server = ServerProcess::spawn(&["127.0.0.1", &port]);
    let (status, stderr) = server.wait_exit();
    assert!(!status.success(), "exit status {status}");
    assert_no_panic(&stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("already in use"), "{stderr}");
    assert!(lines[0].contains(&port), "{stderr}");
    drop(taken);
}

#[tokio::test]
async fn help_describes_the_usage() {
    let mut server = ServerProcess::spawn(&["--help"]);
    let usage = server.expect_stdout("Usage:");
    assert!(usage.contains("chat-server"), "{usage}");
    assert!(
        usage.contains("<IP>") && usage.contains("<PORT>"),
        "{usage}"
    );
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "exit status {status}; stderr: {stderr}");

    let mut server = ServerProcess::spawn(&["--version"]);
    let version = server.expect_stdout("chat-server");
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    assert!(server.wait_exit().0.success());

    // Missing arguments: a usage error (clap's status 2), not a panic.
    let mut server = ServerProcess::spawn(&[]);
    let (status, stderr) = server.wait_exit();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Usage:"), "{stderr}");
    assert_no_panic(&stderr);
}
