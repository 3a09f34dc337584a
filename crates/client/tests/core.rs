//! The core and the connection task together, over real sockets.

use std::time::Duration;

use palaver_client::connection::{self, ConnEvent, ConnectConfig, ToConn};
use palaver_client::state::{LineKind, Stamp};
use palaver_client::{Change, Client, ClientConfig};
use palaver_test_support::{TIMEOUT, TestServer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const NOW: Stamp = Stamp {
    hour: 9,
    minute: 30,
    date: None,
    utc: None,
};

/// A core wired to a connection task, pumped by the test.
struct Harness {
    client: Client,
    /// The time handed to the core with each event.
    now: Stamp,
    to_conn: mpsc::Sender<ToConn>,
    events: mpsc::Receiver<ConnEvent>,
    _task: JoinHandle<()>,
}

impl Harness {
    fn start(config: ConnectConfig, nick: &str) -> Self {
        Self::with(config, ClientConfig::new(nick, vec!["#lobby".into()]))
    }

    fn with(config: ConnectConfig, client: ClientConfig) -> Self {
        let (to_conn, events, task) = connection::spawn(config);
        Self {
            now: NOW,
            client: Client::new("test", client),
            to_conn,
            events,
            _task: task,
        }
    }

    /// Pumps lines out and events in until `pred` accepts an event or a change;
    /// returns the events seen.
    async fn until(
        &mut self,
        mut pred: impl FnMut(&ConnEvent, &[Change]) -> bool,
    ) -> Vec<ConnEvent> {
        let mut seen = Vec::new();
        let done = tokio::time::timeout(TIMEOUT, async {
            loop {
                while let Some(message) = self.client.pop_outgoing() {
                    self.to_conn
                        .send(message)
                        .await
                        .expect("connection task alive");
                }
                let Some(event) = self.events.recv().await else {
                    return false;
                };
                let changes = self.client.handle(event.clone(), self.now);
                let hit = pred(&event, &changes);
                seen.push(event);
                if hit {
                    return true;
                }
            }
        })
        .await;
        assert!(
            matches!(done, Ok(true)),
            "condition not met; events: {seen:#?}"
        );
        seen
    }

    /// Hands every queued line to the connection task.
    async fn flush(&mut self) {
        while let Some(message) = self.client.pop_outgoing() {
            self.to_conn
                .send(message)
                .await
                .expect("connection task alive");
        }
    }

    async fn until_change(&mut self, wanted: impl Fn(&Change) -> bool) -> Vec<ConnEvent> {
        self.until(|_, changes| changes.iter().any(&wanted)).await
    }
}

fn fast(addr: std::net::SocketAddr) -> ConnectConfig {
    let mut config = ConnectConfig::new(addr.ip().to_string(), addr.port());
    config.backoff_initial = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(80);
    config.jitter = 0.0;
    config
}

#[tokio::test]
async fn two_cores_chat_through_a_real_server_and_a_taken_nick_is_retried() {
    let server = TestServer::start().await;
    let mut alice = Harness::start(fast(server.addr), "dup");
    alice.until_change(|c| *c == Change::Ready).await;
    let mut bob = Harness::start(fast(server.addr), "dup");
    bob.until_change(|c| *c == Change::Ready).await;
    assert_eq!(bob.client.state().nick, "dup_");
    assert_eq!(bob.client.state().active_buffer().name, "#lobby");

    alice.client.input("hi dup_", NOW);
    alice.flush().await;
    bob.until_change(|c| matches!(c, Change::Line { line, .. } if line.text == "hi dup_"))
        .await;
    let lobby = bob.client.state().active_buffer();
    let line = lobby.lines.back().expect("line");
    assert_eq!(
        (line.kind, line.nick.as_deref(), line.highlight),
        (LineKind::Message, Some("dup"), true)
    );
    let members: Vec<&str> = lobby.members.values().map(|m| m.nick.as_str()).collect();
    assert_eq!(members.len(), 2, "{members:?}");

    alice.client.quit(Some("done"));
    alice.until_change(|c| *c == Change::Closed).await;
    bob.until_change(|c| matches!(c, Change::Line { line, .. } if line.text.contains("has quit")))
        .await;
    assert_eq!(bob.client.state().active_buffer().members.len(), 1);
}

/// A scripted server connection: read lines, write lines.
struct Scripted {
    reader: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Scripted {
    async fn accept(listener: &TcpListener) -> Self {
        let (stream, _) = tokio::time::timeout(TIMEOUT, listener.accept())
            .await
            .expect("client connects in time")
            .expect("accept");
        Self::from(stream)
    }

    fn from(stream: TcpStream) -> Self {
        let (reader, writer) = stream.into_split();
        Self {
            reader: BufReader::new(reader).lines(),
            writer,
        }
    }

    async fn expect(&mut self, prefix: &str) -> String {
        loop {
            let line = tokio::time::timeout(TIMEOUT, self.reader.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {prefix:?} in time"))
                .expect("read")
                .unwrap_or_else(|| panic!("closed before {prefix:?}"));
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write");
    }

    async fn register(&mut self, nick: &str) {
        self.expect("NICK").await;
        self.expect("USER").await;
        self.send(&format!(":srv 001 {nick} :Welcome")).await;
    }
}

#[tokio::test]
async fn drops_are_reconnected_with_capped_backoff_and_channels_rejoined() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut h = Harness::start(fast(listener.local_addr().expect("addr")), "ann");

    let pump = tokio::spawn(async move {
        let mut retries = Vec::new();
        h.until(|event, _| {
            if let ConnEvent::Disconnected { retry_in, .. } = event {
                retries.push(*retry_in);
            }
            retries.len() == 4
        })
        .await;
        (h, retries)
    });
    // 1: registers and joins, then drops. 2 and 3: drop before registering.
    let mut first = Scripted::accept(&listener).await;
    first.register("ann").await;
    first.expect("JOIN #lobby").await;
    first.send(":ann!a@h JOIN #lobby").await;
    drop(first);
    for _ in 0..3 {
        let conn = Scripted::accept(&listener).await;
        drop(conn);
    }
    let (mut h, retries) = pump.await.expect("pump");
    // Reset after a registered connection, then doubling, capped at 80ms.
    let ms: Vec<u128> = retries.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [20, 40, 80, 80]);
    assert!(!h.client.is_registered());

    let mut back = Scripted::accept(&listener).await;
    let pump = tokio::spawn(async move {
        h.until_change(|c| *c == Change::Ready).await;
        h
    });
    back.register("ann").await;
    back.expect("JOIN #lobby").await;
    back.send(":ann!a@h JOIN #lobby").await;
    let h = pump.await.expect("pump");
    assert!(h.client.state().active_buffer().joined);
}

#[tokio::test]
async fn pings_are_answered_lag_is_measured_and_silence_drops_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut config = fast(listener.local_addr().expect("addr"));
    config.ping_interval = Duration::from_millis(50);
    config.ping_timeout = Duration::from_millis(150);
    let mut h = Harness::start(config, "pat");

    let pump = tokio::spawn(async move {
        let events = h
            .until(|event, _| matches!(event, ConnEvent::Disconnected { .. }))
            .await;
        (h, events)
    });
    let mut server = Scripted::accept(&listener).await;
    server.register("pat").await;
    server.send("PING :are-you-there").await;
    assert_eq!(server.expect("PONG").await, "PONG are-you-there");
    // Our lag PING comes right after registration; answer it once.
    let ping = server.expect("PING").await;
    let token = ping
        .trim_start_matches("PING ")
        .trim_start_matches(':')
        .to_owned();
    server.send(&format!(":srv PONG srv :{token}")).await;
    // Then stay silent: the next PING goes unanswered and the client gives up.
    server.expect("PING").await;
    let (h, events) = pump.await.expect("pump");
    assert!(
        events.iter().any(|e| matches!(e, ConnEvent::Lag(_))),
        "{events:#?}"
    );
    let reason = events.iter().find_map(|e| match e {
        ConnEvent::Disconnected { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("no reply to PING for 150ms"));
    assert!(
        h.client.state().lag.is_none(),
        "lag is cleared while disconnected"
    );
}

#[tokio::test]
async fn the_local_port_is_used_and_a_quit_while_disconnected_ends_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut config = fast(listener.local_addr().expect("addr"));
    config.local_port = Some(free);
    config.backoff_initial = Duration::from_secs(30);
    let mut h = Harness::start(config, "lp");
    let (stream, peer) = listener.accept().await.expect("accept");
    assert_eq!(peer.port(), free);
    drop(stream);
    h.until(|event, _| matches!(event, ConnEvent::Disconnected { .. }))
        .await;
    h.client.quit(None);
    // The 30 s backoff does not delay the quit.
    h.until_change(|c| *c == Change::Closed).await;
}

/// Issue 12, bug 2, in the UI's terms: a refused password stops the retries (no
/// second connection without `/reconnect`), and `/password` then `/reconnect` gets in.
#[tokio::test]
async fn issue_12_a_refused_password_waits_for_password_and_reconnect() {
    let mut config = palaver_test_support::test_config();
    config.password = Some("sesame".to_owned());
    let server = TestServer::with_config(config).await;
    let mut h = Harness::start(fast(server.addr), "pw");
    let events = h
        .until_change(|c| matches!(c, Change::Refused { .. }))
        .await;
    let connects = |events: &[ConnEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, ConnEvent::Connected { .. }))
            .count()
    };
    assert_eq!(connects(&events), 1);
    assert!(matches!(
        h.client.state().conn,
        palaver_client::state::ConnState::Stopped { .. }
    ));
    let told = h.client.state().buffers[0]
        .lines
        .iter()
        .filter(|l| l.text.contains("/password"))
        .count();
    assert_eq!(told, 1, "told once");
    h.client.input("/password sesame", NOW);
    h.client.input("/reconnect", NOW);
    let events = h.until_change(|c| *c == Change::Ready).await;
    assert_eq!(
        connects(&events),
        1,
        "exactly one new connection: {events:#?}"
    );
}

/// Issue 12, bug 4: a message the server refuses (`404` under `+m`) is marked not
/// delivered; once voiced, the next one comes back through echo-message and is
/// marked delivered.
#[tokio::test]
async fn issue_12_a_refused_message_is_marked_not_delivered() {
    use palaver_client::state::Delivery;
    let server = TestServer::start().await;
    let mut op = server.client("op").await;
    op.send("JOIN #quiet").await;
    op.expect_command("366").await;
    op.send("MODE #quiet +m").await;
    op.expect_command("MODE").await;

    let mut h = Harness::start(fast(server.addr), "mute");
    h.until_change(|c| *c == Change::Ready).await;
    h.client.input("/join #quiet", NOW);
    let in_quiet = |text: &'static str| move |c: &Change| matches!(c, Change::Line { buffer, line, .. } if buffer == "#quiet" && line.text.contains(text));
    h.until_change(in_quiet("mute has joined")).await;
    h.client.input("hello", NOW);
    h.until_change(|c| matches!(c, Change::Line { line, .. } if line.text.contains("Cannot send")))
        .await;
    let own = |h: &Harness, text: &str| -> Vec<Delivery> {
        let index = h.client.state().find("#quiet").expect("#quiet");
        h.client.state().buffers[index]
            .lines
            .iter()
            .filter(|l| l.own && l.text == text)
            .map(|l| l.delivery)
            .collect()
    };
    assert_eq!(own(&h, "hello"), [Delivery::Failed]);

    op.send("MODE #quiet +v mute").await;
    h.until_change(in_quiet("sets mode +v mute")).await;
    h.client.input("again", NOW);
    assert_eq!(own(&h, "again"), [Delivery::Pending]);
    h.until_change(|c| *c == Change::Buffers).await;
    assert_eq!(own(&h, "again"), [Delivery::Sent], "echoed once, not twice");
    assert_eq!(own(&h, "hello"), [Delivery::Failed]);
    let heard = op.expect_command("PRIVMSG").await;
    assert_eq!(heard.last(), "again");
}

/// Issue 12, bug 6: when the server goes away, its reason ("Server shutting down",
/// from its ERROR line) is the disconnect reason, shown in every buffer.
#[tokio::test]
async fn issue_12_the_servers_reason_reaches_every_buffer() {
    let server = TestServer::start().await;
    let mut peer = server.client("peer").await;
    let mut h = Harness::start(fast(server.addr), "reader");
    h.until_change(|c| *c == Change::Ready).await;
    peer.send("PRIVMSG reader :psst").await;
    h.until_change(|c| matches!(c, Change::Line { buffer, .. } if buffer == "peer"))
        .await;
    let pump = tokio::spawn(async move {
        let events = h
            .until(|event, _| matches!(event, ConnEvent::Disconnected { .. }))
            .await;
        (h, events)
    });
    drop(peer);
    server.shutdown().await;
    let (h, events) = pump.await.expect("pump");
    let reason = events.iter().find_map(|e| match e {
        ConnEvent::Disconnected { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("Server shutting down"));
    for buffer in &h.client.state().buffers {
        let last = buffer.lines.back().map(|l| l.text.as_str()).unwrap_or("");
        assert!(
            last.starts_with("Disconnected: Server shutting down; reconnecting in"),
            "{}: {last}",
            buffer.name
        );
    }
}

/// Issue 12: the channel-operator commands, against a real server. alice (the
/// channel's first member, so its operator) runs each through the core; bob, a raw
/// client, sees what the server made of it. Then bob, made operator, kicks alice,
/// who is told who kicked her and why, and her buffer shows the channel left.
#[tokio::test]
async fn issue_12_operator_commands_reach_the_server_and_a_kick_is_explained() {
    let server = TestServer::start().await;
    let mut config = fast(server.addr);
    config.burst = 100;
    let mut h = Harness::start(config, "alice");
    h.until_change(|c| *c == Change::Ready).await;
    let mut bob = server.client("bob").await;
    bob.send("JOIN #lobby").await;
    bob.expect_command("366").await;
    h.until_change(
        |c| matches!(c, Change::Line { line, .. } if line.text == "bob has joined #lobby"),
    )
    .await;

    // Each command, and the line bob sees for it (command, then its parameters).
    let cases: [(&str, &[&str]); 10] = [
        ("/op bob", &["MODE", "#lobby", "+o", "bob"]),
        ("/deop bob", &["MODE", "#lobby", "-o", "bob"]),
        ("/voice bob", &["MODE", "#lobby", "+v", "bob"]),
        ("/devoice bob", &["MODE", "#lobby", "-v", "bob"]),
        ("/mode +m", &["MODE", "#lobby", "+m"]),
        ("/mode -m", &["MODE", "#lobby", "-m"]),
        ("/ban spammer", &["MODE", "#lobby", "+b", "spammer!*@*"]),
        ("/unban spammer", &["MODE", "#lobby", "-b", "spammer!*@*"]),
        ("/topic Fresh topic", &["TOPIC", "#lobby", "Fresh topic"]),
        ("/invite bob #side", &["INVITE", "bob", "#side"]),
    ];
    h.client.input("/join #side", NOW);
    h.until_change(
        |c| matches!(c, Change::Line { line, .. } if line.text == "alice has joined #side"),
    )
    .await;
    h.client.input("/buffer 2", NOW);
    assert_eq!(h.client.state().active_buffer().name, "#lobby");
    for (input, expected) in cases {
        h.client.input(input, NOW);
        h.flush().await;
        let line = bob.expect(|l| l.command() == expected[0]).await;
        let params: Vec<String> = (0..expected.len() - 1).map(|i| line.param(i)).collect();
        assert_eq!(params, expected[1..], "{input}: {}", line.0);
    }

    // /topic alone asks; the answer lands in the channel's buffer.
    h.client.input("/topic", NOW);
    h.until_change(|c| matches!(c, Change::Line { buffer, line, .. } if buffer == "#lobby" && line.text == "Topic for #lobby: Fresh topic"))
        .await;

    // /list fills its own buffer, largest channel first.
    h.client.input("/list", NOW);
    h.until_change(|c| matches!(c, Change::Line { line, .. } if line.text.starts_with("#side")))
        .await;
    let list = h.client.state().active_buffer();
    assert_eq!(list.kind, palaver_client::state::BufferKind::List);
    let rows: Vec<&str> = list.lines.iter().map(|l| l.text.as_str()).collect();
    assert!(rows[0].starts_with("2 channels"), "{rows:?}");
    assert!(
        rows[1].starts_with("#lobby") && rows[1].contains("    2  [+nt] Fresh topic"),
        "{rows:?}"
    );
    assert!(
        rows[2].starts_with("#side ") && rows[2].contains("    1"),
        "{rows:?}"
    );

    // bob, made operator, kicks alice.
    h.client.input("/buffer 2", NOW);
    h.client.input("/op bob", NOW);
    h.flush().await;
    bob.expect(|l| l.command() == "MODE" && l.param(1) == "+o")
        .await;
    bob.send("KICK #lobby alice :enough").await;
    let changes = h
        .until_change(
            |c| matches!(c, Change::Line { line, .. } if line.text.starts_with("You were kicked")),
        )
        .await;
    assert!(!changes.is_empty());
    let lobby = h.client.state().active_buffer();
    assert_eq!(lobby.name, "#lobby");
    assert!(!lobby.joined && lobby.members.is_empty());
    let told = lobby.lines.back().expect("a line");
    assert_eq!(
        told.text,
        "You were kicked from #lobby by bob (enough); you are no longer in it (/join #lobby to go back)"
    );
    assert!(told.highlight);
    // Text typed there now is not sent, and says why.
    let said = h.client.input("anyone?", NOW);
    assert!(said.iter().any(|c| matches!(c, Change::Line { line, .. } if line.text == "you are not in #lobby: /join #lobby")));
}

/// Issue 12: a paste goes as one `draft/multiline` message where the server
/// offers it: a client with the capability gets one batch, one without gets the
/// lines, and our own copy comes back to mark every line delivered.
#[tokio::test]
async fn issue_12_a_paste_is_one_multiline_message_where_offered() {
    use palaver_client::state::Delivery;
    let server = TestServer::start().await;
    let mut h = Harness::start(fast(server.addr), "paster");
    h.until_change(|c| *c == Change::Ready).await;
    let mut modern = server
        .client_with_caps("modern", "batch draft/multiline")
        .await;
    modern.send("JOIN #lobby").await;
    modern.expect_command("366").await;
    let mut plain = server.client("plain").await;
    plain.send("JOIN #lobby").await;
    plain.expect_command("366").await;
    h.until_change(
        |c| matches!(c, Change::Line { line, .. } if line.text == "plain has joined #lobby"),
    )
    .await;

    let pasted: Vec<String> = ["first line", "second line", "/quit is text"]
        .map(String::from)
        .to_vec();
    h.client.say_lines(&pasted, NOW);
    h.flush().await;

    let open = modern.expect_command("BATCH").await;
    assert_eq!(
        (open.param(1), open.param(2)),
        ("draft/multiline".into(), "#lobby".into())
    );
    let reference = open.param(0).trim_start_matches('+').to_owned();
    for text in &pasted {
        let line = modern.expect_command("PRIVMSG").await;
        assert_eq!(line.last(), *text);
        let tag = line
            .msg()
            .tags()
            .find(|(key, _)| *key == "batch")
            .map(|(_, value)| value.into_owned());
        assert_eq!(tag.as_deref(), Some(reference.as_str()), "{}", line.0);
    }
    let close = modern.expect_command("BATCH").await;
    assert_eq!(close.param(0), format!("-{reference}"));
    for text in &pasted {
        let line = plain.expect_command("PRIVMSG").await;
        assert_eq!(line.last(), *text);
    }

    let delivered = |h: &Harness| -> Vec<Delivery> {
        let lobby = h.client.state().active_buffer();
        lobby
            .lines
            .iter()
            .filter(|l| l.own)
            .map(|l| l.delivery)
            .collect()
    };
    assert_eq!(delivered(&h), [Delivery::Pending; 3]);
    // Each echoed line marks one delivered.
    for _ in 0..3 {
        h.until_change(|c| *c == Change::Buffers).await;
    }
    assert_eq!(delivered(&h), [Delivery::Sent; 3]);
}

/// A raw client that registers (after PASS, when given) with echo-message and
/// server-time, so it learns the time the server gave each of its messages.
async fn talker(
    addr: std::net::SocketAddr,
    nick: &str,
    password: Option<&str>,
) -> palaver_test_support::TestClient {
    let mut client = palaver_test_support::TestClient::connect(addr).await;
    if let Some(password) = password {
        client.send(&format!("PASS {password}")).await;
    }
    client.send("CAP REQ :echo-message server-time").await;
    client.expect_command("CAP").await;
    client.send("CAP END").await;
    client.register(nick).await;
    client.send("JOIN #lobby").await;
    client.expect_command("366").await;
    client
}

/// Says `text` in #lobby and returns the `HH:MM` of the time the server gave it
/// (from its echo), as a client in UTC shows it.
async fn say(client: &mut palaver_test_support::TestClient, text: &str) -> String {
    client.send(&format!("PRIVMSG #lobby :{text}")).await;
    let echo = client
        .expect(|l| l.command() == "PRIVMSG" && l.last() == text)
        .await;
    let time = echo
        .msg()
        .tags()
        .find(|(key, _)| *key == "time")
        .map(|(_, value)| value.into_owned())
        .expect("the echo has a time tag");
    // 2026-12-02T10:00:00.000Z -> 10:00
    time.get(11..16).expect("a server-time value").to_owned()
}

/// The `(HH:MM, <nick> text)` of the messages in `buffer`, oldest first.
fn messages(client: &Client, buffer: &str) -> Vec<(String, String)> {
    let index = client.state().find(buffer).expect("buffer exists");
    client.state().buffers[index]
        .lines
        .iter()
        .filter(|l| l.kind == LineKind::Message)
        .map(|l| (l.time.to_string(), l.plain()))
        .collect()
}

fn ends_history(change: &Change) -> bool {
    matches!(change, Change::Line { line, .. } if line.text.starts_with("End of history"))
}

/// Issue 10: a client that joins a channel with history shows it, oldest first,
/// with the times the server gave the messages (not the time they arrived).
#[tokio::test]
async fn issue_10_a_join_shows_the_channel_history_with_its_times() {
    let server = TestServer::start().await;
    let mut bob = talker(server.addr, "bob", None).await;
    let mut said = Vec::new();
    for text in ["first", "second", "third"] {
        said.push((say(&mut bob, text).await, format!("<bob> {text}")));
    }
    let mut h = Harness::start(fast(server.addr), "alice");
    h.until_change(ends_history).await;
    assert_eq!(messages(&h.client, "#lobby"), said);
    let lobby = h.client.state().active_buffer();
    assert!(
        lobby
            .lines
            .iter()
            .any(|l| l.text == "Recent history of #lobby:")
    );
    // Live lines follow, once.
    let now = say(&mut bob, "live").await;
    h.until_change(|c| matches!(c, Change::Line { line, .. } if line.text == "live"))
        .await;
    said.push((now, "<bob> live".to_owned()));
    assert_eq!(messages(&h.client, "#lobby"), said);
}

/// Starts a palaver server on `addr` (a port an earlier server used), as
/// `TestServer` does on port 0; the sender stops it.
fn serve_on(
    addr: std::net::SocketAddr,
    config: palaver_server::Config,
) -> tokio::sync::oneshot::Sender<()> {
    let listener = palaver_server::bind(addr).expect("bind the same address again");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(palaver_server::run(listener, config, async {
        let _ = stopped.await;
    }));
    stop
}

/// Issue 10: the server restarts (on the same data directory) while the client
/// is away; the lines said meanwhile appear once each, in order, with their
/// times, between what it saw before and what is said after. The restarted
/// server asks for a password at first, which stops the client's retries
/// (`Refused`) until the test has said everything: no timing involved.
#[tokio::test]
async fn issue_10_lines_said_while_away_appear_once_in_order_after_a_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let open = || -> std::sync::Arc<dyn palaver_store::Store> {
        std::sync::Arc::new(palaver_store::SqliteStore::open(dir.path()).expect("open the store"))
    };
    let mut config = palaver_test_support::test_config();
    config.store = Some(open());
    let server = TestServer::with_config(config).await;
    let addr = server.addr;
    let mut bob = talker(addr, "bob", None).await;
    let mut said = vec![(say(&mut bob, "before").await, "<bob> before".to_owned())];
    let mut h = Harness::start(fast(addr), "alice");
    h.until_change(ends_history).await;
    said.push((
        say(&mut bob, "seen live").await,
        "<bob> seen live".to_owned(),
    ));
    h.until_change(|c| matches!(c, Change::Line { line, .. } if line.text == "seen live"))
        .await;
    drop(bob);

    let pump = tokio::spawn(async move {
        h.until_change(|c| matches!(c, Change::Refused { .. }))
            .await;
        h
    });
    server.shutdown().await;
    let mut config = palaver_test_support::test_config();
    config.store = Some(open());
    config.password = Some("sesame".to_owned());
    let _stop = serve_on(addr, config);
    let mut h = pump.await.expect("pump");
    let mut bob = talker(addr, "bob", Some("sesame")).await;
    for text in ["missed 1", "missed 2", "missed 3"] {
        said.push((say(&mut bob, text).await, format!("<bob> {text}")));
    }

    h.client.input("/password sesame", NOW);
    h.client.input("/reconnect", NOW);
    h.until_change(ends_history).await;
    said.push((say(&mut bob, "after").await, "<bob> after".to_owned()));
    h.until_change(|c| matches!(c, Change::Line { line, .. } if line.text == "after"))
        .await;
    assert_eq!(messages(&h.client, "#lobby"), said);
    let lobby = h.client.state().active_buffer();
    assert!(
        lobby.lines.iter().any(|l| l
            .text
            .starts_with("Said in #lobby since you were last there")),
        "the missed lines are introduced"
    );
}

/// Registers the account `name` (password `correct-horse`) from a throwaway
/// connection.
async fn register_account(server: &TestServer, name: &str) {
    let mut client = server.client(name).await;
    client.send("REGISTER * * correct-horse").await;
    client
        .expect(|l| l.command() == "REGISTER" && l.param(0) == "SUCCESS")
        .await;
    client.send("QUIT").await;
    client.expect_closed().await;
}

fn account_config(
    nick: &str,
    password: &str,
    mechanism: Option<palaver_client::client::sasl::Mechanism>,
) -> ClientConfig {
    let mut config = ClientConfig::new(nick, vec!["#lobby".into()]);
    config.account = Some(palaver_client::client::Account {
        name: "acct".into(),
        password: palaver_client::client::Secret::new(password),
        mechanism,
    });
    config
}

/// Issue 10: `--account` logs in during registration, with SCRAM-SHA-256 (the
/// default where offered) and with PLAIN, against the real server.
#[tokio::test]
async fn issue_10_sasl_logs_in_with_scram_and_with_plain() {
    use palaver_client::client::sasl::Mechanism;
    let server = TestServer::start().await;
    register_account(&server, "acct").await;
    for (nick, mechanism) in [("scram", None), ("plain", Some(Mechanism::Plain))] {
        let config = account_config(nick, "correct-horse", mechanism);
        let mut h = Harness::with(fast(server.addr), config);
        h.until_change(|c| *c == Change::Ready).await;
        assert_eq!(h.client.logged_in(), Some("acct"), "{nick}");
        let server_lines: Vec<&str> = h.client.state().buffers[0]
            .lines
            .iter()
            .map(|l| l.text.as_str())
            .collect();
        assert!(
            server_lines.contains(&"Logged in as acct"),
            "{server_lines:#?}"
        );
    }
}

/// Issue 10: a wrong password is said in words, and the client goes on without
/// an account rather than stopping.
#[tokio::test]
async fn issue_10_a_failed_login_is_explained_and_registration_goes_on() {
    let server = TestServer::start().await;
    register_account(&server, "acct").await;
    let mut h = Harness::with(
        fast(server.addr),
        account_config("guess", "wrong-horse", None),
    );
    h.until_change(|c| *c == Change::Ready).await;
    assert_eq!(h.client.logged_in(), None);
    let told = h.client.state().buffers[0]
        .lines
        .iter()
        .filter(|l| {
            l.kind == LineKind::Error && l.text.starts_with("Login to the account acct failed: ")
        })
        .count();
    assert_eq!(told, 1);
}

/// A raw second device of the account `acct` (nick `phone`), logged in with
/// SASL PLAIN, after PASS when given.
async fn phone(
    addr: std::net::SocketAddr,
    password: Option<&str>,
) -> palaver_test_support::TestClient {
    use base64::Engine as _;
    let mut client = palaver_test_support::TestClient::connect(addr).await;
    client.nick = "phone".to_owned();
    if let Some(password) = password {
        client.send(&format!("PASS {password}")).await;
    }
    client.send("CAP REQ :sasl").await;
    client.expect_command("CAP").await;
    client.send("AUTHENTICATE PLAIN").await;
    client.expect_command("AUTHENTICATE").await;
    let plain = base64::engine::general_purpose::STANDARD.encode("\0acct\0correct-horse");
    client.send(&format!("AUTHENTICATE {plain}")).await;
    client.expect_command("903").await;
    client.send("NICK phone").await;
    client.send("USER phone 0 * :phone").await;
    client.send("CAP END").await;
    client.expect_command("001").await;
    client
}

/// Issue 10: logged in to an account, a private conversation is filled after a
/// reconnect too: what bob said to the account's other device (the same
/// conversation, account to bob) while this client was away appears once in
/// its query buffer, and a conversation it never had open (carol's) is found
/// with `CHATHISTORY TARGETS` and opened. The restart and the password make "away" deterministic, as
/// in the channel test.
#[tokio::test]
async fn issue_10_a_private_conversation_is_filled_after_a_reconnect_when_logged_in() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let open = || -> std::sync::Arc<dyn palaver_store::Store> {
        std::sync::Arc::new(palaver_store::SqliteStore::open(dir.path()).expect("open the store"))
    };
    let mut config = palaver_test_support::test_config();
    config.store = Some(open());
    let server = TestServer::with_config(config).await;
    let addr = server.addr;
    register_account(&server, "acct").await;
    // No pacing to wait for: several history requests go out at once.
    let mut connect = fast(addr);
    connect.burst = 100;
    let mut h = Harness::with(connect, account_config("alice", "correct-horse", None));
    h.until_change(|c| *c == Change::Ready).await;
    assert_eq!(h.client.logged_in(), Some("acct"));
    let mut bob = talker(addr, "bob", None).await;
    bob.send("PRIVMSG alice :before").await;
    h.until_change(|c| matches!(c, Change::Line { buffer, line, .. } if buffer == "bob" && line.text == "before"))
        .await;
    drop(bob);

    let pump = tokio::spawn(async move {
        h.until_change(|c| matches!(c, Change::Refused { .. }))
            .await;
        h
    });
    server.shutdown().await;
    let mut config = palaver_test_support::test_config();
    config.store = Some(open());
    config.password = Some("sesame".to_owned());
    let _stop = serve_on(addr, config);
    let mut h = pump.await.expect("pump");
    let mut device = phone(addr, Some("sesame")).await;
    let mut bob = talker(addr, "bob", Some("sesame")).await;
    bob.send("PRIVMSG phone :while you were away").await;
    device
        .expect(|l| l.command() == "PRIVMSG" && l.last() == "while you were away")
        .await;
    // carol starts a conversation alice never had open: TARGETS finds it.
    let mut carol = talker(addr, "carol", Some("sesame")).await;
    carol.send("PRIVMSG phone :new here").await;
    device
        .expect(|l| l.command() == "PRIVMSG" && l.last() == "new here")
        .await;

    h.now = Stamp {
        utc: Some(time::OffsetDateTime::now_utc()),
        ..NOW
    };
    h.client.input("/password sesame", NOW);
    h.client.input("/reconnect", NOW);
    let mut ended = Vec::new();
    h.until(|_, changes| {
        for change in changes {
            if let Change::Line { buffer, line, .. } = change
                && line.text.starts_with("End of history")
            {
                ended.push(buffer.clone());
            }
        }
        ended.contains(&"bob".to_owned()) && ended.contains(&"carol".to_owned())
    })
    .await;
    let said = |h: &Harness, who: &str| -> Vec<String> {
        messages(&h.client, who)
            .into_iter()
            .map(|(_, text)| text)
            .collect()
    };
    assert_eq!(
        said(&h, "bob"),
        ["<bob> before", "<bob> while you were away"]
    );
    assert_eq!(said(&h, "carol"), ["<carol> new here"]);
}
