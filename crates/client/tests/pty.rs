//! The real `chat-client` binary in a pseudo-terminal, full screen, against an
//! in-process server: what a user at a terminal does, keys in and screen out.
//!
//! `portable-pty` gives the child the pty as its controlling terminal (so crossterm
//! finds a terminal and a window size), and `vt100` keeps the screen the child drew.
//! A reader thread feeds the screen and answers the cursor-position queries the
//! client's width probe sends, as a terminal would; tests wait on screen updates,
//! never on a clock.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use palaver_test_support::{TIMEOUT, TestServer};
use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};
use tokio::sync::watch;

const ROWS: u16 = 24;
const COLS: u16 = 80;

/// `chat-client` running in a pty of 24x80.
struct PtyClient {
    child: Box<dyn Child + Send + Sync>,
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    screen: Arc<Mutex<vt100::Parser>>,
    /// Counts the reads applied to `screen`; closed when the pty reaches its end.
    updates: watch::Receiver<u64>,
    /// Terminal bells (BEL bytes) the client wrote.
    bells: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl PtyClient {
    /// Runs with `--plain`: the test servers here speak plain IRC.
    fn spawn(args: &[&str]) -> Self {
        Self::spawn_as(args, true)
    }

    fn spawn_as(args: &[&str], plain: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pty");
        let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_chat-client"));
        command.args(args);
        if plain {
            command.arg("--plain");
        }
        command.cwd(dir.path());
        command.env("XDG_CONFIG_HOME", dir.path());
        command.env("TERM", "xterm-256color");
        let child = pair
            .slave
            .spawn_command(command)
            .expect("start chat-client");
        // Only the child holds the terminal end now, so its exit ends our reads.
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let writer = Arc::new(Mutex::new(pair.master.take_writer().expect("pty writer")));
        let screen = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
        let (tx, updates) = watch::channel(0u64);
        let (thread_screen, thread_writer) = (Arc::clone(&screen), Arc::clone(&writer));
        let bells = Arc::new(AtomicUsize::new(0));
        let thread_bells = Arc::clone(&bells);
        std::thread::spawn(move || {
            // The master must stay open while the child runs.
            let _master = pair.master;
            let mut bytes = [0u8; 4096];
            while let Ok(n) = reader.read(&mut bytes) {
                if n == 0 {
                    break;
                }
                let mut rest = &bytes[..n];
                let rung = rest.iter().filter(|&&b| b == 0x07).count();
                thread_bells.fetch_add(rung, Ordering::SeqCst);
                let mut screen = thread_screen.lock().expect("screen lock");
                // Answer "where is the cursor?" (ESC [ 6 n) from the screen so far.
                while let Some(at) = rest.windows(4).position(|w| w == b"\x1b[6n") {
                    screen.process(&rest[..at]);
                    let (row, col) = screen.screen().cursor_position();
                    let answer = format!("\x1b[{};{}R", row + 1, col + 1);
                    let mut writer = thread_writer.lock().expect("writer lock");
                    let _ = writer.write_all(answer.as_bytes());
                    let _ = writer.flush();
                    rest = &rest[at + 4..];
                }
                screen.process(rest);
                drop(screen);
                tx.send_modify(|count| *count += 1);
            }
        });
        Self {
            child,
            writer,
            screen,
            updates,
            bells,
            _dir: dir,
        }
    }

    /// Types `keys` (a terminal sends Enter as `\r`).
    fn type_keys(&self, keys: &str) {
        let mut writer = self.writer.lock().expect("writer lock");
        writer.write_all(keys.as_bytes()).expect("write to the pty");
        writer.flush().expect("flush the pty");
    }

    fn contents(&self) -> String {
        self.screen.lock().expect("screen lock").screen().contents()
    }

    /// Waits until the screen satisfies `pred`; panics with the screen otherwise.
    async fn until(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        let found = tokio::time::timeout(TIMEOUT, async {
            loop {
                if pred(&self.contents()) {
                    return true;
                }
                if self.updates.changed().await.is_err() {
                    return pred(&self.contents());
                }
            }
        })
        .await;
        assert!(
            matches!(found, Ok(true)),
            "screen never showed {what}:\n{}",
            self.contents()
        );
    }

    /// Waits until the client has rung the bell `count` times in all.
    async fn rang(&mut self, count: usize) {
        let rang = tokio::time::timeout(TIMEOUT, async {
            while self.bells.load(Ordering::SeqCst) < count {
                if self.updates.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        assert!(
            rang.is_ok() && self.bells.load(Ordering::SeqCst) >= count,
            "the bell did not ring {count} times"
        );
    }

    /// Clicks the left button at (row, column), counted from 0.
    fn click(&self, row: usize, column: usize) {
        let (y, x) = (row + 1, column + 1);
        self.type_keys(&format!("\x1b[<0;{x};{y}M\x1b[<0;{x};{y}m"));
    }

    async fn shows(&mut self, text: &str) {
        self.until(text, |screen| screen.contains(text)).await;
    }

    /// Waits for the process to end; returns its exit code.
    async fn exit_code(self) -> u32 {
        let mut child = self.child;
        let status =
            tokio::time::timeout(TIMEOUT, tokio::task::spawn_blocking(move || child.wait()))
                .await
                .expect("chat-client exits in time")
                .expect("wait task")
                .expect("wait");
        status.exit_code()
    }
}

/// The whole path a terminal user takes: the `username:` prompt, the lobby on the
/// full screen, a line typed there reaching another client, Ctrl+L repainting a
/// damaged screen, a Ctrl+R search, the bell and a new tab for a private message, a mouse click on
/// that tab, a long paste (asked about, then paced with its progress shown), and
/// `/quit` ending the program with status 0.
#[tokio::test]
async fn issue_12_the_binary_in_a_terminal_prompts_chats_redraws_and_quits() {
    let server = TestServer::start().await;
    let mut bob = server.clients_in("#lobby", &["bob"]).await.remove(0);
    let port = server.addr.port().to_string();
    let mut carol = PtyClient::spawn(&["127.0.0.1", &port]);

    carol.shows("username:").await;
    carol.type_keys("carol\r");
    carol.shows("carol has joined #lobby").await;
    // The full screen: the tab bar, the nick list with both of us, the prompt.
    carol.shows("2:#lobby").await;
    carol.shows("[#lobby]").await;
    carol
        .until("bob in the nick list", |s| {
            s.contains("@bob") && s.contains(" carol")
        })
        .await;
    bob.expect(|l| l.command() == "JOIN" && l.source_nick() == "carol")
        .await;

    carol.type_keys("hello from a terminal\r");
    let said = bob.expect_command("PRIVMSG").await;
    assert_eq!(
        (
            said.source_nick().as_str(),
            said.param(0).as_str(),
            said.last().as_str()
        ),
        ("carol", "#lobby", "hello from a terminal")
    );
    carol.shows("<carol> hello from a terminal").await;

    // Damage the screen behind ratatui's back (as a terminal that disagrees about
    // a width would), then Ctrl+L: every cell is drawn again.
    carol
        .screen
        .lock()
        .expect("screen lock")
        .process(b"\x1b[10;5HSTRAY-GLYPHS");
    assert!(carol.contents().contains("STRAY-GLYPHS"));
    carol.type_keys("\x0c");
    carol
        .until("the stray text gone after Ctrl+L", |s| {
            !s.contains("STRAY-GLYPHS") && s.contains("<carol> hello from a terminal")
        })
        .await;

    // Ctrl+R searches the scrollback; Esc ends the search.
    carol.type_keys("\x12terminal");
    carol.shows("(search) terminal").await;
    carol.shows("match 1 of 1").await;
    carol.type_keys("\x1b");
    carol
        .until("the search ended", |s| {
            !s.contains("(search)") && s.contains("[#lobby]")
        })
        .await;

    // A private message rings the bell and opens a tab; a click on it switches.
    assert_eq!(carol.bells.load(Ordering::SeqCst), 0);
    bob.send("PRIVMSG carol :psst").await;
    carol.shows("3:bob").await;
    carol.rang(1).await;
    let bar = carol
        .contents()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let column = bar.find("3:bob").expect("bob's tab");
    carol.click(0, column + 1);
    carol.shows("[bob]").await;
    carol.shows("<bob> psst").await;

    // A paste of 14 lines asks first, then goes out paced, with its progress on
    // the status line; a pasted "/quit" is text, not a command.
    let pasted: Vec<String> = (1..=14).map(|i| format!("pasted line {i}")).collect();
    carol.type_keys(&format!(
        "\x1b[200~{}\n/quit is text here\x1b[201~",
        pasted.join("\n")
    ));
    carol.shows("Send 15 pasted lines to bob? y: send").await;
    carol.type_keys("y");
    carol.shows("lines to go").await;
    for line in pasted
        .iter()
        .map(String::as_str)
        .chain(["/quit is text here"])
    {
        let got = bob.expect_command("PRIVMSG").await;
        assert_eq!(got.last(), line);
    }
    carol
        .until("the progress gone", |s| !s.contains("lines to go"))
        .await;

    carol.type_keys("/quit see you\r");
    let quit = bob.expect_command("QUIT").await;
    assert_eq!(quit.last(), "Quit: see you");
    assert_eq!(carol.exit_code().await, 0);
}

/// Issue 10: `--account` asks for the password on the terminal, shows nothing of
/// what is typed, logs in with it (the server says so in WHOIS) and uses the
/// account as the nick.
#[tokio::test]
async fn issue_10_the_account_password_is_asked_unseen_and_logs_in() {
    let server = TestServer::start().await;
    let mut owner = server.client("acct").await;
    owner.send("REGISTER * * correct-horse").await;
    owner
        .expect(|l| l.command() == "REGISTER" && l.param(0) == "SUCCESS")
        .await;
    owner.send("QUIT").await;
    owner.expect_closed().await;
    let port = server.addr.port().to_string();
    let mut client = PtyClient::spawn(&["127.0.0.1", &port, "--account", "acct"]);
    client.shows("password for acct (not shown):").await;
    client.type_keys("correct-horse\r");
    client.shows("acct has joined #lobby").await;
    assert!(!client.contents().contains("correct-horse"));
    let mut bob = server.client("bob").await;
    bob.send("WHOIS acct").await;
    let account = bob.expect_command("330").await;
    assert_eq!(account.param(2), "acct");
    client.type_keys("/quit\r");
    assert_eq!(client.exit_code().await, 0);
}

/// TLS on first contact, full screen: after `username:` the fingerprint is shown
/// with a `(y/N)` question, as the username is asked; `y` pins it and the
/// client chats.
#[tokio::test]
async fn tofu_the_terminal_asks_to_accept_the_fingerprint() {
    let (config, fingerprint) = palaver_test_support::tls_test_config();
    let server = TestServer::with_config(config).await;
    let mut bob = server.clients_in("#lobby", &["bob"]).await.remove(0);
    let dir = tempfile::tempdir().expect("temp dir");
    let known = dir.path().join("known_servers");
    let port = server.addr.port().to_string();
    let mut carol = PtyClient::spawn_as(
        &[
            "127.0.0.1",
            &port,
            "--known-servers",
            known.to_str().expect("utf-8 path"),
        ],
        false,
    );
    carol.shows("username:").await;
    carol.type_keys("carol\r");
    carol.shows("(y/N)").await;
    carol.shows(&fingerprint[..47]).await;
    carol.type_keys("y\r");
    carol.shows("carol has joined #lobby").await;
    carol.type_keys("hello over tls\r");
    let said = bob.expect_command("PRIVMSG").await;
    assert_eq!(said.last(), "hello over tls");
    assert_eq!(
        std::fs::read_to_string(&known).expect("pinned"),
        format!("127.0.0.1:{port} {fingerprint}\n")
    );
    carol.type_keys("/quit\r");
    assert_eq!(carol.exit_code().await, 0);
}
