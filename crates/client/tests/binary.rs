//! The real `chat-client` binary in line mode, talking through an in-process server.

use std::process::Stdio;

use palaver_test_support::{TIMEOUT, TestServer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A `chat-client` process with piped stdio, logging into its own temporary
/// directory (which is also its `XDG_CONFIG_HOME`, so no test reads or writes the
/// user's known-servers file).
pub(crate) struct Proc {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Runs with `--plain`: the test servers here speak plain IRC (TLS is tested
    /// in `tls`, with [`Proc::spawn_tls`]).
    fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = args.to_vec();
        args.push("--plain");
        Self::spawn_tls(&args, env)
    }

    /// Runs with `args` as given: TLS by default.
    pub(crate) fn spawn_tls(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-client"))
            .args(args)
            .env_remove("PALAVER_ACCOUNT_PASSWORD")
            .env("XDG_CONFIG_HOME", dir.path())
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chat-client");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self {
            child,
            stdout,
            _dir: dir,
        }
    }

    /// Reads stdout until a line contains `needle`; returns that line.
    pub(crate) async fn expect(&mut self, needle: &str) -> String {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(TIMEOUT, async {
            while let Ok(Some(line)) = self.stdout.next_line().await {
                if line.contains(needle) {
                    return Some(line);
                }
                seen.push(line);
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!("no output line with {needle:?}; saw {seen:#?}"),
        }
    }

    /// The client's log file so far (complete once the process has exited).
    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("client.log")).unwrap_or_default()
    }

    pub(crate) async fn write(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).await.expect("write stdin");
        stdin.flush().await.expect("flush stdin");
    }

    pub(crate) fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits for exit; returns the status code and everything on stderr.
    pub(crate) async fn finish(self) -> (Option<i32>, String) {
        let (code, stderr, _) = self.finish_with_log().await;
        (code, stderr)
    }

    /// Waits for exit; returns the status code, stderr and the log file.
    async fn finish_with_log(mut self) -> (Option<i32>, String, String) {
        let mut stderr = self.child.stderr.take().expect("stderr");
        let status = tokio::time::timeout(TIMEOUT, self.child.wait())
            .await
            .expect("chat-client exits in time")
            .expect("wait");
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        (status.code(), text, self.log())
    }
}

fn is_stamped(line: &str, rest: &str) -> bool {
    let bytes = line.as_bytes();
    line.len() == 8 + rest.len()
        && bytes[0] == b'['
        && bytes[1..3].iter().all(u8::is_ascii_digit)
        && bytes[3] == b':'
        && bytes[4..6].iter().all(u8::is_ascii_digit)
        && &line[6..8] == "] "
        && line.ends_with(rest)
}

#[tokio::test]
async fn two_clients_talk_through_the_binaries() {
    let server = TestServer::start().await;
    let port = server.addr.port().to_string();
    let mut bob = Proc::spawn(&["127.0.0.1", &port, "--nick", "bob"]);
    bob.expect("bob has joined #lobby").await;

    let mut alice = Proc::spawn(&["127.0.0.1", &port, "--nick", "alice"]);
    alice.write("hello bob\n/me waves\n").await;
    alice.close_stdin();
    bob.expect("alice has joined #lobby").await;
    let said = bob.expect("<alice>").await;
    assert!(is_stamped(&said, "<alice> hello bob"), "{said:?}");
    let acted = bob.expect("alice waves").await;
    assert!(is_stamped(&acted, "* alice waves"), "{acted:?}");
    let (code, stderr) = alice.finish().await;
    assert_eq!(code, Some(0), "alice's stderr: {stderr}");
    bob.expect("alice has quit").await;

    // bob answers; end of input makes him quit cleanly too.
    bob.write("bye\n").await;
    bob.close_stdin();
    let (code, stderr) = bob.finish().await;
    assert_eq!(code, Some(0), "bob's stderr: {stderr}");
}

#[tokio::test]
async fn piped_input_asks_the_username_then_sends_every_line_before_quitting() {
    let server = TestServer::start().await;
    let mut watcher = server.client("watcher").await;
    watcher.send("JOIN #lobby").await;
    watcher.expect_command("366").await;

    let port = server.addr.port().to_string();
    let mut carol = Proc::spawn(&["127.0.0.1", &port]);
    carol.write("carol\none\ntwo\n/frobnicate\n").await;
    carol.close_stdin();
    for text in ["one", "two"] {
        let line = watcher.expect_command("PRIVMSG").await;
        assert_eq!(
            (line.source_nick(), line.param(0), line.last()),
            ("carol".into(), "#lobby".into(), text.into())
        );
    }
    let quit = watcher.expect(|l| l.command() != "PRIVMSG").await;
    assert_eq!(
        (quit.command(), quit.source_nick().as_str()),
        ("QUIT", "carol"),
        "nothing else was sent"
    );
    let (code, stderr) = carol.finish().await;
    assert_eq!(code, Some(0));
    assert!(stderr.starts_with("username: "), "{stderr}");
    assert!(stderr.contains("unknown command /frobnicate"), "{stderr}");
}

#[tokio::test]
async fn a_local_port_in_use_is_a_clear_error() {
    let server = TestServer::start().await;
    let taken = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let local = taken.local_addr().expect("addr").port().to_string();
    let port = server.addr.port().to_string();
    let client = Proc::spawn(&["127.0.0.1", &port, &local, "--nick", "x"]);
    let (code, stderr) = client.finish().await;
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        format!(
            "chat-client: cannot use local port {local}: it is already in use (pick another or leave it out)"
        )
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
        .to_string();
    let client = Proc::spawn(&["127.0.0.1", &port, "--nick", "x"]);
    let (code, stderr) = client.finish().await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!(
            "cannot connect to 127.0.0.1:{port}: connection refused"
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_bad_nick_is_refused_before_connecting() {
    let client = Proc::spawn(&["127.0.0.1", "1", "--nick", "9lives"]);
    let (code, stderr) = client.finish().await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot be a nickname"), "{stderr}");
}

/// Issue 12, bug 1: with the server's default flood pacing, 30 piped lines take
/// longer than the old fixed grace after end of input; every one must arrive, in
/// order, before the client exits 0.
#[tokio::test]
async fn issue_12_every_piped_line_is_sent_at_the_servers_pace_before_exit() {
    let mut config = palaver_test_support::test_config();
    config.limits.flood = Some(palaver_server::FloodLimit::default());
    let server = TestServer::with_config(config).await;
    let mut watcher = server.client("watcher").await;
    watcher.send("JOIN #lobby").await;
    watcher.expect_command("366").await;

    let port = server.addr.port().to_string();
    let mut bot = Proc::spawn(&["127.0.0.1", &port, "--nick", "bot2"]);
    let input: String = (1..=30).map(|i| format!("msg {i}\n")).collect();
    bot.write(&input).await;
    bot.close_stdin();
    for i in 1..=30 {
        let line = watcher.expect_command("PRIVMSG").await;
        assert_eq!(
            (line.source_nick(), line.param(0), line.last()),
            ("bot2".into(), "#lobby".into(), format!("msg {i}")),
        );
    }
    watcher.expect_command("QUIT").await;
    let (code, stderr) = bot.finish().await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
}

/// Issue 12, bug 2: a missing or wrong server password is told once, with what to
/// do, and the client exits 1 after one attempt instead of reconnecting forever.
#[tokio::test]
async fn issue_12_a_refused_password_exits_non_zero_after_one_attempt() {
    let mut config = palaver_test_support::test_config();
    config.password = Some("sesame".to_owned());
    let server = TestServer::with_config(config).await;
    let port = server.addr.port().to_string();
    for extra in [&[][..], &["--password", "wrong"][..]] {
        let started = std::time::Instant::now();
        let mut args = vec!["127.0.0.1", port.as_str(), "--nick", "locked"];
        args.extend_from_slice(extra);
        let client = Proc::spawn(&args);
        let (code, stderr, log) = client.finish_with_log().await;
        assert_eq!(code, Some(1), "{extra:?}: {stderr}");
        assert_eq!(
            stderr.trim(),
            "chat-client: the server refused the password (Bad password): give the right one with --password or PALAVER_PASSWORD",
            "{extra:?}"
        );
        assert_eq!(log.matches("connected to").count(), 1, "{extra:?}: {log}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

/// Issue 12, bug 3: text after `/join` goes to the joined channel, even when it
/// is read before the server has answered the JOIN.
#[tokio::test]
async fn issue_12_text_after_join_goes_to_the_joined_channel() {
    let server = TestServer::start().await;
    let mut watcher = server.client("watcher").await;
    watcher.send("JOIN #dev").await;
    watcher.expect_command("366").await;

    let port = server.addr.port().to_string();
    let mut x = Proc::spawn(&["127.0.0.1", &port, "--nick", "x"]);
    x.write("/join #dev\nhello\n").await;
    x.close_stdin();
    let joined = watcher.expect_command("JOIN").await;
    assert_eq!(joined.source_nick(), "x");
    let said = watcher.expect(|l| l.command() != "JOIN").await;
    assert_eq!(
        (said.command(), said.param(0), said.last()),
        ("PRIVMSG", "#dev".to_owned(), "hello".to_owned()),
        "{said:?}"
    );
    let (code, stderr) = x.finish().await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
}

/// Issue 12, bug 8: a 42-character name typed at the `username:` prompt is refused
/// locally with the reason, before any connection, instead of by the server.
#[tokio::test]
async fn issue_12_an_overlong_username_is_refused_locally() {
    let server = TestServer::start().await;
    let port = server.addr.port().to_string();
    let mut client = Proc::spawn(&["127.0.0.1", &port]);
    let long = "a".repeat(42);
    client.write(&format!("{long}\nhello\n")).await;
    client.close_stdin();
    let (code, stderr, log) = client.finish_with_log().await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("is too long for a nickname: at most 30 characters here (it has 42)"),
        "{stderr}"
    );
    assert_eq!(log.matches("connected to").count(), 0, "{log}");
}

/// Issue 12: client.log keeps the conversation (both sides of it), unless
/// `--no-log-messages` asks it not to; connection events are logged either way.
#[tokio::test]
async fn issue_12_the_log_keeps_the_conversation_unless_asked_not_to() {
    let server = TestServer::start().await;
    let port = server.addr.port().to_string();
    let mut bob = Proc::spawn(&["127.0.0.1", &port, "--nick", "bob"]);
    bob.expect("bob has joined #lobby").await;
    let mut quiet = Proc::spawn(&["127.0.0.1", &port, "--nick", "quiet", "--no-log-messages"]);
    bob.expect("quiet has joined #lobby").await;
    quiet.write("psst from quiet\n").await;
    bob.expect("<quiet> psst from quiet").await;
    bob.write("hello quiet\n").await;
    quiet.expect("<bob> hello quiet").await;
    quiet.close_stdin();
    bob.expect("quiet has quit").await;
    bob.close_stdin();

    let (code, _, log) = bob.finish_with_log().await;
    assert_eq!(code, Some(0));
    for line in [
        "[#lobby] * quiet has joined #lobby",
        "[#lobby] <quiet> psst from quiet",
        "[#lobby] <bob> hello quiet",
    ] {
        assert!(log.contains(line), "{line:?} not in bob's log:\n{log}");
    }
    let (code, _, log) = quiet.finish_with_log().await;
    assert_eq!(code, Some(0));
    assert!(
        log.contains("chat-client") && log.contains("starting"),
        "{log}"
    );
    assert!(
        !log.contains("psst") && !log.contains("hello quiet"),
        "{log}"
    );
}

/// Issue 12: `--help` opens with what the program does for its user, and the
/// usage line names the arguments as the Arguments section does.
#[test]
fn issue_12_help_is_written_for_users() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chat-client"))
        .arg("--help")
        .output()
        .expect("run chat-client --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.starts_with("Chat on IRC from your terminal"), "{help}");
    assert!(
        help.contains("Usage: chat-client [OPTIONS] <SERVER> <PORT> [LOCAL_PORT]"),
        "{help}"
    );
    for argument in ["<SERVER>", "<PORT>", "[LOCAL_PORT]"] {
        assert!(
            help.contains(&format!("\n  {argument}\n")),
            "{argument}: {help}"
        );
    }
    assert!(help.contains("--no-log-messages") && help.contains("Examples:"));
}

/// Issue 12: `/list` in line mode prints the channels, labelled with their
/// buffer, and the next line still goes to the channel.
#[tokio::test]
async fn issue_12_list_in_line_mode_prints_and_keeps_the_target() {
    let server = TestServer::start().await;
    let mut watcher = server.clients_in("#lobby", &["watcher"]).await.remove(0);
    let port = server.addr.port().to_string();
    let mut dora = Proc::spawn(&["127.0.0.1", &port, "--nick", "dora"]);
    dora.write("/list\nafter the list\n").await;
    let listed = dora.expect("[*channels*]").await;
    assert!(
        listed.contains("1 channel") || listed.contains("#lobby"),
        "{listed}"
    );
    dora.expect("#lobby").await;
    let said = watcher.expect_command("PRIVMSG").await;
    assert_eq!(
        (said.param(0), said.last()),
        ("#lobby".into(), "after the list".into())
    );
    dora.close_stdin();
    let (code, stderr) = dora.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
}

/// Issue 10: line mode prints no history by default (a script would take old
/// lines for new ones); with `--history` it prints the channel's history first,
/// with the times the server gave it, then what is said live.
#[tokio::test]
async fn issue_10_line_mode_prints_history_only_when_asked() {
    let server = TestServer::start().await;
    let mut old = server.client("old").await;
    old.send("JOIN #lobby").await;
    old.expect_command("366").await;
    old.send("PRIVMSG #lobby :said before").await;
    old.sync().await;
    let port = server.addr.port().to_string();

    let mut plain = Proc::spawn(&["127.0.0.1", &port, "--nick", "plain"]);
    old.expect(|l| l.command() == "JOIN" && l.source_nick() == "plain")
        .await;
    old.send("PRIVMSG #lobby :said now").await;
    let first = plain.expect("<old>").await;
    assert!(is_stamped(&first, "<old> said now"), "{first:?}");
    plain.close_stdin();
    assert_eq!(plain.finish().await.0, Some(0));

    let mut asked = Proc::spawn(&["127.0.0.1", &port, "--nick", "asked", "--history"]);
    asked.expect("Recent history of #lobby").await;
    let first = asked.expect("<old>").await;
    assert!(is_stamped(&first, "<old> said before"), "{first:?}");
    asked.expect("End of history").await;
    asked.close_stdin();
    assert_eq!(asked.finish().await.0, Some(0));
}

/// Issue 10: in line mode `--account` takes its password from
/// PALAVER_ACCOUNT_PASSWORD (there is no terminal to ask on), logs in, and
/// never writes the password to the log, even at debug level; without the
/// variable it says what to set and exits 1 before connecting.
#[tokio::test]
async fn issue_10_line_mode_logs_in_with_the_password_from_the_environment() {
    let server = TestServer::start().await;
    let mut owner = server.client("acct").await;
    owner.send("REGISTER * * correct-horse").await;
    owner
        .expect(|l| l.command() == "REGISTER" && l.param(0) == "SUCCESS")
        .await;
    owner.send("JOIN #lobby").await;
    owner.expect_command("366").await;
    let port = server.addr.port().to_string();

    let mut missing = Proc::spawn(&["127.0.0.1", &port, "--account", "acct"]);
    missing.close_stdin();
    let (code, stderr) = missing.finish().await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("set PALAVER_ACCOUNT_PASSWORD"), "{stderr}");

    let mut bot = Proc::spawn_with_env(
        &[
            "127.0.0.1",
            &port,
            "--account",
            "acct",
            "--nick",
            "bot",
            "--log-level",
            "debug",
        ],
        &[("PALAVER_ACCOUNT_PASSWORD", "correct-horse")],
    );
    owner
        .expect(|l| l.command() == "JOIN" && l.source_nick() == "bot")
        .await;
    owner.send("WHOIS bot").await;
    let account = owner.expect_command("330").await;
    assert_eq!(account.param(2), "acct");
    bot.close_stdin();
    let (code, stderr, log) = bot.finish_with_log().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(log.contains(">> AUTHENTICATE ****"), "{log}");
    assert!(!log.contains("correct-horse") && !stderr.contains("correct-horse"));
}
