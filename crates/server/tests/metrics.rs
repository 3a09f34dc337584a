//! Operating the server: `/metrics` (counts that move by exactly what clients did,
//! the allow-list, TLS), `/readyz`, the Grafana dashboard's queries against a real
//! scrape, and `--log-format json`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use palaver_server::Config;
use palaver_test_support::transports::{connect_tls, connect_websocket, http_request};
use palaver_test_support::{TestClient, TestServer, test_config, tls_test_config};
use tokio::net::TcpStream;

use crate::binary::{ServerProcess, assert_no_panic, connected_client};

/// One scrape, parsed: every sample by its series (`name` or `name{labels}`, as
/// written), after checking the exposition's shape.
pub(crate) struct Scrape {
    samples: HashMap<String, f64>,
    pub(crate) text: String,
}

impl Scrape {
    /// Parses Prometheus text exposition: `# HELP` and `# TYPE` before each family's
    /// samples, each sample `series value`, each series once.
    fn parse(text: &str) -> Self {
        let mut samples = HashMap::new();
        let mut typed: HashMap<String, String> = HashMap::new();
        let mut helped = HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP name text");
                assert!(!help.is_empty(), "{line}");
                helped.insert(name.to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(helped.contains(name), "TYPE before HELP: {line}");
                typed.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let name = series.split('{').next().expect("a name");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    (typed.get(base).map(String::as_str) == Some("histogram")).then_some(base)
                })
                .unwrap_or(name);
            assert!(typed.contains_key(family), "sample before its TYPE: {line}");
            if typed[family] == "counter" {
                assert!(family.ends_with("_total"), "counter {family} not _total");
            }
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "{series} twice"
            );
        }
        Self {
            samples,
            text: text.to_owned(),
        }
    }

    /// The value of `series`; fails the test if it is not exported.
    pub(crate) fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} not in the scrape:\n{}", self.text))
    }

    /// The names of every sample (`_bucket`, `_sum`, `_count` as written).
    pub(crate) fn names(&self) -> HashSet<&str> {
        self.samples
            .keys()
            .filter_map(|series| series.split('{').next())
            .collect()
    }
}

/// `GET path` over plain HTTP: status and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (status, _, body) = http_request(tcp, &format!("GET {path} HTTP/1.1"), &[]).await;
    (status, body)
}

/// Scrapes `/metrics` over plain HTTP, expecting 200 and the Prometheus type.
pub(crate) async fn scrape(addr: SocketAddr) -> Scrape {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (status, head, body) = http_request(tcp, "GET /metrics HTTP/1.1", &[]).await;
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    Scrape::parse(&body)
}

#[tokio::test]
async fn counters_move_by_exactly_what_clients_did() {
    const N: usize = 25;
    let server = TestServer::start().await;
    let before = scrape(server.addr).await;
    let mut clients = server
        .clients_in("#metrics", &["alice", "bob", "carol"])
        .await;
    for i in 0..N {
        clients[0]
            .send(&format!("PRIVMSG #metrics :line {i}"))
            .await;
    }
    for member in &mut clients[1..] {
        for i in 0..N {
            let line = member.expect_command("PRIVMSG").await;
            assert_eq!(line.last(), format!("line {i}"));
        }
        // A round trip after the last copy: the driver counted its write before
        // it wrote the PONG.
        member.sync().await;
    }
    let after = scrape(server.addr).await;
    let delta = |series: &str| after.get(series) - before.get(series);

    assert_eq!(delta("palaver_messages_total"), N as f64);
    // Two other members; the sender gets no copy (no echo-message).
    assert_eq!(delta("palaver_deliveries_total"), (N * 2) as f64);
    assert_eq!(
        delta("palaver_commands_total{command=\"PRIVMSG\"}"),
        N as f64
    );
    assert_eq!(delta("palaver_commands_total{command=\"JOIN\"}"), 3.0);
    assert_eq!(delta("palaver_commands_total{command=\"NICK\"}"), 3.0);
    assert_eq!(delta("palaver_registrations_total"), 3.0);
    // The three clients and the second scrape.
    assert_eq!(delta("palaver_connections_accepted_total"), 4.0);
    assert_eq!(
        after.get("palaver_connections_open{transport=\"plain\"}"),
        3.0
    );
    assert_eq!(
        after.get("palaver_connections_open{transport=\"tls\"}"),
        0.0
    );
    assert_eq!(after.get("palaver_clients_registered"), 3.0);
    assert_eq!(after.get("palaver_channels"), 1.0);
    assert_eq!(after.get("palaver_accounts_logged_in"), 0.0);
    assert_eq!(delta("palaver_history_messages_written_total"), N as f64);
    assert!(after.get("palaver_history_commit_seconds_count") >= 1.0);
    assert!(after.get("palaver_history_commit_seconds_bucket{le=\"+Inf\"}") >= 1.0);
    assert!(
        after.get("palaver_driver_pass_seconds_count")
            > before.get("palaver_driver_pass_seconds_count")
    );
    // At least every PRIVMSG line read, and every copy written.
    let privmsg_bytes = "PRIVMSG #metrics :line 10\r\n".len() as f64;
    assert!(delta("palaver_read_bytes_total") >= N as f64 * (privmsg_bytes - 1.0));
    assert!(delta("palaver_written_bytes_total") >= 2.0 * N as f64 * privmsg_bytes);

    // A QUIT is counted as one; once bob's socket is closed, so is the gauge.
    let mut bob = clients.remove(1);
    bob.send("QUIT :bye").await;
    bob.expect_closed().await;
    clients[0].expect_command("QUIT").await;
    let last = scrape(server.addr).await;
    let delta = |series: &str| last.get(series) - after.get(series);
    assert_eq!(delta("palaver_disconnects_total{reason=\"quit\"}"), 1.0);
    assert_eq!(delta("palaver_disconnects_total{reason=\"eof\"}"), 0.0);
    assert_eq!(
        last.get("palaver_connections_open{transport=\"plain\"}"),
        2.0
    );
    assert_eq!(last.get("palaver_clients_registered"), 2.0);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_commands_share_one_bucket() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    for i in 0..5 {
        alice.send(&format!("XYZZY{i} a b")).await;
        alice.expect_command("421").await;
    }
    let scrape = scrape(server.addr).await;
    assert_eq!(scrape.get("palaver_commands_total{command=\"other\"}"), 5.0);
    assert!(!scrape.text.contains("XYZZY"), "{}", scrape.text);
    server.shutdown().await;
}

#[tokio::test]
async fn disconnect_reasons_are_told_apart() {
    let mut config = test_config();
    config.limits.registration_timeout = std::time::Duration::from_millis(300);
    let server = TestServer::with_config(config).await;
    // Registration timeout.
    let mut late = server.connect().await;
    late.send("NICK late").await;
    let lines = late.expect_closed().await;
    assert!(
        lines.iter().any(|l| l.0.contains("Registration timed out")),
        "{lines:?}"
    );
    // End of file without QUIT.
    let mut gone = server.client("gone").await;
    let mut watcher = server.client("watcher").await;
    gone.send("JOIN #x").await;
    gone.expect_command("366").await;
    watcher.send("JOIN #x").await;
    watcher.expect_command("366").await;
    // Everything read first: unread input would make the close a reset (an error).
    gone.sync().await;
    drop(gone);
    watcher.expect_command("QUIT").await;
    let scrape = scrape(server.addr).await;
    let reason = |r: &str| scrape.get(&format!("palaver_disconnects_total{{reason=\"{r}\"}}"));
    assert_eq!(reason("registration_timeout"), 1.0);
    assert_eq!(reason("eof"), 1.0);
    assert_eq!(reason("quit"), 0.0);
    assert_eq!(reason("sendq"), 0.0);
    server.shutdown().await;
}

#[tokio::test]
async fn chathistory_queries_are_counted() {
    let server = TestServer::start().await;
    let mut alice = server
        .client_with_caps("alice", "batch draft/chathistory server-time")
        .await;
    alice.send("JOIN #h").await;
    alice.expect_command("366").await;
    alice.send("PRIVMSG #h :kept").await;
    alice.send("CHATHISTORY LATEST #h * 10").await;
    alice
        .expect(|l| l.command() == "BATCH" && l.param(0).starts_with('-'))
        .await;
    let scrape = scrape(server.addr).await;
    assert_eq!(scrape.get("palaver_chathistory_queries_total"), 1.0);
    assert_eq!(scrape.get("palaver_history_messages_written_total"), 1.0);
    server.shutdown().await;
}

#[tokio::test]
async fn transports_are_counted_and_tls_peers_can_scrape() {
    let (config, _) = tls_test_config();
    let server = TestServer::with_config(config).await;
    let _plain = server.client("plain").await;
    let mut tls = TestClient::connect_tls(server.addr, None).await;
    tls.register("secure").await;
    let (socket, _) = connect_websocket(server.addr, &["text.ircv3.net"], false).await;
    let mut ws = TestClient::from_websocket(socket, false);
    ws.register("web").await;
    let (socket, _) = connect_websocket(server.addr, &["text.ircv3.net"], true).await;
    let mut wss = TestClient::from_websocket(socket, false);
    wss.register("websecure").await;
    let (stream, _) = connect_tls(server.addr, None, &["http/1.1"]).await;
    let (status, _, body) = http_request(stream, "GET /metrics HTTP/1.1", &[]).await;
    assert_eq!(status, 200, "{body}");
    let scrape = Scrape::parse(&body);
    assert_eq!(
        scrape.get("palaver_connections_open{transport=\"plain\"}"),
        1.0
    );
    assert_eq!(
        scrape.get("palaver_connections_open{transport=\"tls\"}"),
        1.0
    );
    assert_eq!(
        scrape.get("palaver_connections_open{transport=\"websocket\"}"),
        1.0
    );
    assert_eq!(
        scrape.get("palaver_connections_open{transport=\"websocket+tls\"}"),
        1.0
    );
    assert_eq!(scrape.get("palaver_clients_registered"), 4.0);
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_are_refused_outside_the_allow_list() {
    let server = TestServer::with_config(Config {
        metrics_allow: vec!["10.0.0.0/8".parse().expect("a network")],
        ..test_config()
    })
    .await;
    let (status, body) = get(server.addr, "/metrics").await;
    assert_eq!((status, body.as_str()), (403, "forbidden\n"));
    // Liveness and readiness stay open to all.
    assert_eq!(get(server.addr, "/healthz").await.0, 200);
    assert_eq!(get(server.addr, "/readyz").await.0, 200);
    server.shutdown().await;

    let server = TestServer::with_config(Config {
        metrics_allow: vec![
            "10.0.0.0/8".parse().expect("a network"),
            "127.0.0.1/32".parse().expect("a network"),
        ],
        ..test_config()
    })
    .await;
    assert_eq!(get(server.addr, "/metrics").await.0, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_running_server_is_ready() {
    let server = TestServer::start().await;
    assert_eq!(
        get(server.addr, "/readyz").await,
        (200, "ready\n".to_owned())
    );
    assert_eq!(get(server.addr, "/healthz").await, (200, "ok\n".to_owned()));
    server.shutdown().await;
}

/// The metric names in every `expr` of the dashboard.
pub(crate) fn dashboard_metric_names() -> HashSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contrib/grafana/palaver.json"
    );
    let text = std::fs::read_to_string(path).expect("read the dashboard");
    let json: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&json, &mut exprs);
    assert!(exprs.len() >= 12, "{exprs:?}");
    let mut names = HashSet::new();
    for expr in exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("palaver_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    names
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_dashboard_queries_only_exported_metrics() {
    let server = TestServer::start().await;
    let scrape = scrape(server.addr).await;
    let exported = scrape.names();
    let wanted = dashboard_metric_names();
    // A server alone exports no cluster metrics; the cluster suite checks those
    // against a node's scrape.
    let missing: Vec<_> = wanted
        .iter()
        .filter(|name| !name.starts_with("palaver_cluster_"))
        .filter(|name| !exported.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}\n{}",
        scrape.text
    );
    server.shutdown().await;
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let (server, addr) = ServerProcess::start_listening(&["--log-format", "json"]);
    let _alice = connected_client(addr, "alice").await;
    let stderr = server.expect_stderr("registered");
    assert_no_panic(&stderr);
    // Whole lines only: the last one may still be arriving.
    let lines: Vec<&str> = stderr
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n') && !line.trim().is_empty())
        .collect();
    let mut messages = Vec::new();
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {line:?}"));
        assert!(event["timestamp"].is_string(), "{line}");
        assert!(event["level"].is_string(), "{line}");
        messages.push(event["fields"]["message"].as_str().unwrap_or("").to_owned());
    }
    assert!(
        messages.iter().any(|m| m == "connection opened"),
        "{messages:?}"
    );
    let registered = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["fields"]["message"] == "registered")
        .expect("a registered event");
    assert_eq!(registered["fields"]["nick"], "alice");
    assert_eq!(registered["level"], "INFO");
}
