//! Integration tests of `chat-bench`: the real binary (and a little of the library)
//! against a palaver server on 127.0.0.1:0, with small parameters. Every child
//! process is bounded by [`RUN_LIMIT`] and killed when it overruns.

use std::time::Duration;

use palaver_test_support::TestServer;
use serde_json::Value;

/// Longest any one chat-bench run may take here.
const RUN_LIMIT: Duration = Duration::from_secs(60);

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "chat-bench failed: {}", self.stderr);
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {}", self.stdout))
    }
}

async fn bench(args: &[&str]) -> Run {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_LIMIT, child)
        .await
        .expect("chat-bench finishes in time")
        .expect("chat-bench runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = &cur[key];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_registers_every_client() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let pid = std::process::id().to_string();
    // The server runs inside this test process, so its pid is ours.
    let run = bench(&[
        "connect",
        "--addr",
        &addr,
        "--clients",
        "50",
        "--hold",
        "0.2",
        "--json",
        "-q",
        "--server-pid",
        &pid,
    ])
    .await;
    let report = run.json();
    assert_eq!(report["mode"], "connect");
    assert_eq!(num(&report, "clients"), 50.0);
    assert_eq!(num(&report, "registered"), 50.0);
    assert_eq!(report["failures"], serde_json::json!({}));
    assert_eq!(num(&report, "dropped_while_held"), 0.0);
    assert_eq!(num(&report, "latency.samples"), 50.0);
    assert!(num(&report, "latency.p50_us") > 0.0);
    assert!(num(&report, "latency.max_us") >= num(&report, "latency.p50_us"));
    assert!(num(&report, "server.rss_after_bytes") > 0.0);
    assert!(report["server"]["rss_per_connection_bytes"].is_number());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_prints_a_readable_summary() {
    let server = TestServer::start().await;
    let run = bench(&[
        "connect",
        "--addr",
        &server.addr.to_string(),
        "--clients",
        "5",
        "--hold",
        "0",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("registered      5 of 5"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("failures        none"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("p50"), "{}", run.stdout);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_counts_refused_connections_by_kind() {
    // Bind a port, then free it: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let report = bench(&[
        "connect",
        "--addr",
        &addr,
        "--clients",
        "3",
        "--hold",
        "0",
        "--json",
    ])
    .await;
    // Nothing registered: the report is still printed, and the run fails.
    assert_eq!(report.code, 1, "{}", report.stderr);
    let report: Value = serde_json::from_str(report.stdout.trim()).expect("one JSON object");
    assert_eq!(num(&report, "registered"), 0.0);
    assert_eq!(report["failures"], serde_json::json!({"connect": 3}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_saturation_delivers_everything_once_in_order() {
    let server = TestServer::start().await;
    let run = bench(&[
        "fanout",
        "--addr",
        &server.addr.to_string(),
        "--channels",
        "2",
        "--members",
        "5",
        "--senders",
        "2",
        "--duration",
        "1",
        "--json",
        "-q",
    ])
    .await;
    let report = run.json();
    assert_eq!(report["mode"], "fanout");
    let sent = num(&report, "sent");
    assert!(sent > 0.0, "nothing sent: {report}");
    assert_eq!(num(&report, "expected_deliveries"), sent * 4.0);
    assert_eq!(num(&report, "deliveries"), sent * 4.0);
    for field in [
        "lost",
        "duplicates",
        "reordered",
        "foreign",
        "disconnected",
        "starved_senders",
    ] {
        assert_eq!(num(&report, field), 0.0, "{field} in {report}");
    }
    assert_eq!(num(&report, "latency.samples"), sent * 4.0);
    assert!(num(&report, "latency.p50_us") > 0.0);
    assert!(num(&report, "deliveries_per_s") > 0.0);
    assert_eq!(num(&report, "window"), 32.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_at_a_fixed_rate_sends_about_that_many() {
    let server = TestServer::start().await;
    let run = bench(&[
        "fanout",
        "--addr",
        &server.addr.to_string(),
        "--channels",
        "1",
        "--members",
        "3",
        "--senders",
        "2",
        "--rate",
        "100",
        "--duration",
        "1",
        "--json",
    ])
    .await;
    let report = run.json();
    let sent = num(&report, "sent");
    // Two senders at 100/s for one second.
    assert!((150.0..=210.0).contains(&sent), "sent {sent}: {report}");
    assert_eq!(num(&report, "deliveries"), sent * 2.0);
    assert_eq!(num(&report, "lost"), 0.0);
    assert!(report["window"].is_null());
    // Receive times come from the kernel's stamps, mapped onto the send clock: a
    // wrong mapping would give zero or absurd latencies.
    assert_eq!(report["receive_time"], "kernel", "{report}");
    let p50 = num(&report["latency"], "p50_us");
    assert!(p50 > 1.0 && p50 < 1_000_000.0, "p50 {p50} µs: {report}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_summary_says_clean() {
    let server = TestServer::start().await;
    let run = bench(&[
        "fanout",
        "--addr",
        &server.addr.to_string(),
        "--members",
        "3",
        "--duration",
        "0.3",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("(clean)"), "{}", run.stdout);
    assert!(run.stdout.contains("deliveries"), "{}", run.stdout);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_measures_round_trips() {
    let server = TestServer::start().await;
    let run = bench(&[
        "latency",
        "--addr",
        &server.addr.to_string(),
        "--count",
        "200",
        "--json",
    ])
    .await;
    let report = run.json();
    assert_eq!(report["mode"], "latency");
    assert_eq!(report["probe"], "privmsg");
    assert_eq!(num(&report, "round_trips"), 200.0);
    assert!(num(&report, "rtt.p50_us") > 0.0);
    assert!(num(&report, "rtt.p999_us") >= num(&report, "rtt.p50_us"));

    // WHOIS round trips: each waits for the end of the reply about B.
    let run = bench(&[
        "latency",
        "--addr",
        &server.addr.to_string(),
        "--count",
        "50",
        "--probe",
        "whois",
        "--json",
    ])
    .await;
    let report = run.json();
    assert_eq!(report["probe"], "whois");
    assert_eq!(num(&report, "round_trips"), 50.0);
    assert!(num(&report, "rtt.p50_us") > 0.0);
    server.shutdown().await;
}

#[tokio::test]
async fn non_loopback_targets_are_refused_without_allow_remote() {
    for addr in [
        "10.1.2.3:6667",
        "192.0.2.7:6667",
        "irc.example.com:6667",
        "[2001:db8::1]:6667",
    ] {
        let run = bench(&["connect", "--addr", addr, "--clients", "1"]).await;
        assert_eq!(run.code, 1, "{addr}: {}", run.stdout);
        assert!(
            run.stderr.contains("--allow-remote"),
            "{addr}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{addr}: {}", run.stdout);
    }
}

#[tokio::test]
async fn impossible_options_are_errors() {
    let run = bench(&["fanout", "--members", "2", "--senders", "3"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("--senders 3 exceeds --members 2"),
        "{}",
        run.stderr
    );
    let run = bench(&["fanout", "--members", "1"]).await;
    assert_eq!(run.code, 2, "clap rejects it: {}", run.stderr);
    let run = bench(&["connect", "--clients", "0"]).await;
    assert_eq!(run.code, 2, "clap rejects it: {}", run.stderr);
}

#[tokio::test]
async fn help_describes_every_scenario() {
    let run = bench(&["--help"]).await;
    assert_eq!(run.code, 0);
    for word in [
        "connect",
        "fanout",
        "latency",
        "failover",
        "abuse",
        "--allow-remote",
        "--no-flood-limit",
    ] {
        assert!(run.stdout.contains(word), "{word} missing from --help");
    }
    let run = bench(&["fanout", "--help"]).await;
    for word in [
        "--channels",
        "--members",
        "--senders",
        "--rate",
        "--window",
        "--server-pid",
        "--json",
        "--cpu",
    ] {
        assert!(
            run.stdout.contains(word),
            "{word} missing from fanout --help"
        );
    }
}

/// Two "nodes" that are one ordinary server: the round-robin spreading and the
/// wait for every node's NAMES run, and must change nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_a_node_list_that_is_one_server_works_like_one_node() {
    let server = TestServer::start().await;
    let one = server.addr.to_string();
    let nodes = format!("{one},{one}");
    let pid = std::process::id().to_string();
    let run = bench(&[
        "fanout",
        "--addr",
        &nodes,
        "--channels",
        "2",
        "--members",
        "5",
        "--senders",
        "2",
        "--duration",
        "1",
        "--json",
        "-q",
        "--server-pid",
        &pid,
        "--server-pid",
        &pid,
    ])
    .await;
    let report = run.json();
    let sent = num(&report, "sent");
    assert!(sent > 0.0, "nothing sent: {report}");
    assert_eq!(num(&report, "deliveries"), sent * 4.0);
    for field in ["lost", "duplicates", "reordered", "foreign", "disconnected"] {
        assert_eq!(num(&report, field), 0.0, "{field} in {report}");
    }
    assert_eq!(report["target"], nodes.as_str());
    assert_eq!(report["nodes"], serde_json::json!([one, one]));
    assert!(num(&report, "converge_s") >= 0.0, "{report}");
    // The same pid twice: summed twice, each share listed.
    assert_eq!(
        report["server"]["per_pid"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(report["server"]["pids"].as_array().map(Vec::len), Some(2));
    // One address: no convergence step, as before.
    let run = bench(&[
        "fanout",
        "--addr",
        &one,
        "--members",
        "3",
        "--duration",
        "0.3",
        "--json",
        "-q",
    ])
    .await;
    let report = run.json();
    assert!(report["converge_s"].is_null(), "{report}");
    assert_eq!(report["nodes"], serde_json::json!([one]));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_connect_take_a_node_list() {
    let server = TestServer::start().await;
    let one = server.addr.to_string();
    let nodes = format!("{one},{one}");
    let run = bench(&["latency", "--addr", &nodes, "--count", "50", "--json"]).await;
    let report = run.json();
    assert_eq!(num(&report, "round_trips"), 50.0);
    let run = bench(&[
        "connect",
        "--addr",
        &nodes,
        "--clients",
        "10",
        "--hold",
        "0",
        "--json",
        "-q",
    ])
    .await;
    let report = run.json();
    assert_eq!(num(&report, "registered"), 10.0);
    assert_eq!(report["nodes"].as_array().map(Vec::len), Some(2));
    server.shutdown().await;
}

#[tokio::test]
async fn node_lists_are_refused_where_they_make_no_sense() {
    for args in [
        &["abuse", "--addr", "127.0.0.1:9,127.0.0.1:10"][..],
        &["fanout", "--addr", "127.0.0.1:9,,127.0.0.1:10"],
        &[
            "failover",
            "--addr",
            "127.0.0.1:9",
            "--victim-pid",
            "123456",
        ],
        &[
            "failover",
            "--addr",
            "127.0.0.1:9,127.0.0.1:9",
            "--victim-pid",
            "123456",
        ],
    ] {
        let run = bench(args).await;
        assert_eq!(run.code, 1, "{args:?}: {}", run.stdout);
        assert!(
            run.stderr.contains("chat-bench:"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

#[tokio::test]
async fn registration_retries_a_nickname_in_use() {
    let server = TestServer::start().await;
    let _holder = server.client("taken").await;
    let registered = palaver_bench::conn::register(server.addr, "taken", Duration::from_secs(10))
        .await
        .expect("registers under another nickname");
    assert_eq!(registered.nick, "takena");
    assert!(registered.latency > Duration::ZERO);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_measures_the_canary_while_attackers_run() {
    palaver_test_support::raise_fd_limit();
    let server = TestServer::start().await;
    let pid = std::process::id().to_string();
    let run = bench(&[
        "abuse",
        "--addr",
        &server.addr.to_string(),
        "--attack",
        "who-star",
        "--attackers",
        "5",
        "--duration",
        "1",
        "--users",
        "30",
        "--channels",
        "40",
        "--topics",
        "--bans",
        "6",
        "--baseline",
        "0.3",
        "--server-pid",
        &pid,
        "--json",
        "-q",
    ])
    .await;
    let report = run.json();
    assert_eq!(report["mode"], "abuse");
    assert_eq!(report["attack"], "who-star");
    assert_eq!(num(&report, "setup.fillers"), 30.0);
    assert_eq!(num(&report, "setup.channels"), 40.0);
    assert_eq!(num(&report, "setup.fillers_dropped"), 0.0);
    // The canary: samples in every phase, none lost, and a recovery time.
    assert!(num(&report, "canary.baseline.samples") >= 1.0, "{report}");
    assert!(num(&report, "canary.attack.samples") >= 5.0, "{report}");
    assert!(num(&report, "canary.after.samples") >= 5.0, "{report}");
    assert_eq!(num(&report, "canary.attack_lost"), 0.0, "{report}");
    assert_eq!(
        num(&report, "canary.attack_sent"),
        num(&report, "canary.attack.samples")
    );
    assert_eq!(num(&report, "canary.disconnected"), 0.0);
    assert!(num(&report, "canary.attack.p50_us") > 0.0);
    assert!(num(&report, "canary.recovered_after_s") >= 0.0, "{report}");
    // The attackers: all registered from 127.0.0.2, burst plus paced commands, and
    // every WHO * answered with the users' lines.
    assert_eq!(num(&report, "attackers.registered"), 5.0);
    assert_eq!(
        report["attackers"]["sources"],
        serde_json::json!(["127.0.0.2"])
    );
    let sent = num(&report, "attackers.commands_sent");
    assert!(
        (5.0 * 20.0..=5.0 * 26.0).contains(&sent),
        "sent {sent}: {report}"
    );
    assert!(num(&report, "attackers.bytes_received") > 0.0);
    assert!(
        num(&report, "attackers.lines_received") > sent * 30.0,
        "{report}"
    );
    assert_eq!(num(&report, "attackers.cut"), 0.0, "{report}");
    assert!(num(&report, "server.rss_peak_bytes") > 0.0);
    assert!(report["server"]["cpu_s_attack"].is_number());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_mix_runs_every_attack_and_prints_a_summary() {
    palaver_test_support::raise_fd_limit();
    let server = TestServer::start().await;
    let run = bench(&[
        "abuse",
        "--addr",
        &server.addr.to_string(),
        "--attack",
        "mix",
        "--attackers",
        "13",
        "--duration",
        "1",
        "--channels",
        "10",
        "--bans",
        "3",
        "--baseline",
        "0.2",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for words in [
        "chat-bench abuse",
        "mix × 13 from 127.0.0.2",
        "13 registered",
        "canary          from 127.0.0.3",
        "lost          0 of",
        "recovered     after",
    ] {
        assert!(run.stdout.contains(words), "{words:?} in {}", run.stdout);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_fails_when_the_server_refuses_the_setup() {
    let server = TestServer::start().await;
    // One filler would have to join 60 channels; the server allows 50.
    let run = bench(&[
        "abuse",
        "--addr",
        &server.addr.to_string(),
        "--channels",
        "60",
        "--channels-per-filler",
        "60",
        "--attackers",
        "1",
        "--duration",
        "0.1",
    ])
    .await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("setup failed"), "{}", run.stderr);
    assert!(run.stderr.contains("405"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // Attackers and the canary only ever come from loopback addresses.
    let run = bench(&[
        "abuse",
        "--addr",
        &server.addr.to_string(),
        "--attacker-ip",
        "10.0.0.2",
    ])
    .await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("not an IPv4 loopback"),
        "{}",
        run.stderr
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_counts_cut_attackers_and_reconnects_them() {
    palaver_test_support::raise_fd_limit();
    // Attackers whose opening burst is far over the server's (5) overrun a tiny
    // recvq and are cut with "Excess Flood"; the canary stays within the pace.
    let mut config = palaver_test_support::test_config();
    config.limits.flood = Some(palaver_server::FloodLimit {
        burst: 5,
        per_second: 10.0,
    });
    config.limits.recvq_bytes = 64;
    let server = TestServer::with_config(config).await;
    let report = bench(&[
        "abuse",
        "--addr",
        &server.addr.to_string(),
        "--attack",
        "who-star",
        "--attackers",
        "2",
        "--burst",
        "20",
        "--duration",
        "2",
        "--baseline",
        "0.2",
        "--reconnect",
        "--json",
        "-q",
    ])
    .await
    .json();
    assert_eq!(num(&report, "attackers.cut"), 2.0, "{report}");
    let cuts = num(&report, "attackers.cuts");
    assert!(cuts >= 4.0, "{report}");
    // Every cut but an attacker's last one (if the attack ended it) led to a reconnect.
    let reconnects = num(&report, "attackers.reconnects");
    assert!((cuts - 2.0..=cuts).contains(&reconnects), "{report}");
    let reasons = report["attackers"]["cut_by_reason"]
        .as_object()
        .expect("reasons");
    let counted: f64 = reasons.values().filter_map(Value::as_f64).sum();
    assert_eq!(counted, cuts, "{report}");
    assert!(reasons.contains_key("Excess Flood"), "{report}");
    assert_eq!(num(&report, "canary.attack_lost"), 0.0, "{report}");
    server.shutdown().await;
}

#[tokio::test]
async fn connect_to_a_closed_port_fails_once_and_clearly() {
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let run = bench(&["connect", "--addr", &addr, "--clients", "20", "-q"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("no client registered") && run.stderr.contains("is the server running"),
        "{}",
        run.stderr
    );
    // The same refusal is listed once, not once per client.
    assert_eq!(
        run.stdout.matches("Connection refused").count(),
        1,
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_verify_history_finds_every_message_in_chathistory() {
    let server = TestServer::start().await;
    let args = [
        "fanout",
        "--addr",
        &server.addr.to_string(),
        "--channels",
        "3",
        "--members",
        "4",
        "--senders",
        "2",
        "--duration",
        "1",
        "--verify-history",
        "--json",
        "-q",
    ];
    let report = bench(&args).await.json();
    let sent = num(&report, "sent");
    assert!(sent > 0.0, "nothing sent: {report}");
    assert_eq!(num(&report, "history.found"), sent, "{report}");
    assert_eq!(num(&report, "history.missing"), 0.0);
    assert_eq!(num(&report, "history.duplicates"), 0.0);
    server.shutdown().await;

    // A server that keeps no history fails the check, with the reason.
    let mut config = palaver_test_support::test_config();
    config.history.enabled = false;
    let server = TestServer::with_config(config).await;
    let addr = server.addr.to_string();
    let mut args = args;
    args[2] = &addr;
    let run = bench(&args).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("history check"), "{}", run.stderr);
    server.shutdown().await;
}

/// A test server that also speaks TLS (self-signed for `localhost`) on its port.
async fn tls_server() -> TestServer {
    TestServer::with_config(palaver_test_support::tls_test_config().0).await
}

/// One short fan-out over `transport_flags`, checked like a plain one.
async fn fanout_over(transport_flags: &[&str], transport: &str) {
    let server = tls_server().await;
    let addr = server.addr.to_string();
    let mut args = vec![
        "fanout",
        "--addr",
        &addr,
        "--members",
        "4",
        "--senders",
        "2",
        "--duration",
        "0.5",
        "--json",
        "-q",
    ];
    args.extend_from_slice(transport_flags);
    let report = bench(&args).await.json();
    assert_eq!(report["transport"], transport, "{report}");
    let sent = num(&report, "sent");
    assert!(sent > 0.0, "nothing sent: {report}");
    assert!(num(&report, "deliveries") > 0.0, "{report}");
    assert_eq!(num(&report, "deliveries"), sent * 3.0, "{report}");
    assert_eq!(num(&report, "lost"), 0.0, "{report}");
    assert_eq!(num(&report, "disconnected"), 0.0, "{report}");
    // Kernel receive stamps, taken under the TLS and WebSocket layers.
    assert_eq!(report["receive_time"], "kernel", "{report}");
    let p50 = num(&report["latency"], "p50_us");
    assert!(p50 > 1.0 && p50 < 1_000_000.0, "p50 {p50} µs: {report}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_tls() {
    fanout_over(&["--tls"], "tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_websocket() {
    fanout_over(&["--websocket"], "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_websocket_and_tls() {
    fanout_over(&["--websocket", "--tls"], "websocket+tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_over_tls_says_so() {
    let server = tls_server().await;
    let run = bench(&[
        "connect",
        "--addr",
        &server.addr.to_string(),
        "--clients",
        "5",
        "--hold",
        "0",
        "--tls",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("(tls)"), "{}", run.stdout);
    assert!(
        run.stdout.contains("registered      5 of 5"),
        "{}",
        run.stdout
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_refuses_tls() {
    let run = bench(&["abuse", "--addr", "127.0.0.1:9", "--tls", "--json"]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("plain TCP only"), "{}", run.stderr);
}
