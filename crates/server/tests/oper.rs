//! IRC operators: OPER (argon2id credentials from the config, `--oper` or a TOML
//! file), KILL, and the `--hash-password` helper of the binary.

use std::io::Write as _;
use std::process::{Command, Stdio};

use palaver_server::opers::OperCredential;
use palaver_test_support::{TestServer, test_config};

use crate::binary::ServerProcess;
use crate::channels::{ask, assert_silent, clients, in_channel, pending, src};

pub(crate) async fn server_with_oper() -> TestServer {
    let mut config = test_config();
    config.opers = vec![OperCredential::from_password("root", "s3cret").expect("hash")];
    TestServer::with_config(config).await
}

#[tokio::test]
async fn oper_with_the_right_password_grants_plus_o() {
    let server = server_with_oper().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;

    assert_eq!(
        ask(&mut alice, "OPER root s3cret").await,
        [
            ":test.server 381 alice :You are now an IRC operator",
            ":alice MODE alice :+o",
        ]
    );
    assert_eq!(
        ask(&mut alice, "MODE alice").await,
        [":test.server 221 alice +o"]
    );
    let whois = ask(&mut bob, "WHOIS alice").await;
    assert!(
        whois.contains(&":test.server 313 bob alice :is an IRC operator".to_owned()),
        "{whois:#?}"
    );
    let lusers = ask(&mut bob, "LUSERS").await;
    assert!(
        lusers.contains(&":test.server 252 bob 1 :operator(s) online".to_owned()),
        "{lusers:#?}"
    );
    // Again: confirmed, but the mode does not change twice.
    assert_eq!(
        ask(&mut alice, "OPER root s3cret").await,
        [":test.server 381 alice :You are now an IRC operator"]
    );
    // Dropping operator status is the user's own choice.
    assert_eq!(
        ask(&mut alice, "MODE alice -o").await,
        [":alice MODE alice :-o"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_passwords_and_unknown_names_look_the_same() {
    let server = server_with_oper().await;
    let mut alice = server.client("alice").await;
    for attempt in ["OPER root wrong", "OPER nobody s3cret", "OPER ROOT s3cret"] {
        assert_eq!(
            ask(&mut alice, attempt).await,
            [":test.server 464 alice :Password incorrect"],
            "{attempt}"
        );
    }
    assert_eq!(
        ask(&mut alice, "OPER root").await,
        [":test.server 461 alice OPER :Not enough parameters"]
    );
    assert_eq!(
        ask(&mut alice, "MODE alice").await,
        [":test.server 221 alice +"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn commands_after_oper_wait_for_its_answer() {
    let server = server_with_oper().await;
    let mut alice = server.client("alice").await;
    // Sent in one write: the password check runs outside the world lock, yet
    // the commands behind it are answered after it, in order.
    alice
        .send_raw(b"OPER root s3cret\r\nKILL nobody\r\nOPER root bad\r\nPING x\r\n")
        .await;
    let lines = alice.sync().await;
    let lines: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(
        lines,
        [
            ":test.server 381 alice :You are now an IRC operator",
            ":alice MODE alice :+o",
            ":test.server 401 alice nobody :No such nick/channel",
            ":test.server 464 alice :Password incorrect",
            ":test.server PONG test.server :x",
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_operators_oper_says_so() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    assert_eq!(
        ask(&mut alice, "OPER root s3cret").await,
        [":test.server 491 alice :No O-lines for your host"]
    );
    let mut early = server.connect().await;
    early.send("OPER root s3cret").await;
    early.expect_command("451").await;
    server.shutdown().await;
}

#[tokio::test]
async fn kill_disconnects_with_the_reason_everyone_sees() {
    let server = server_with_oper().await;
    let [mut alice, mut bob, mut carol] =
        in_channel(&server, "#lobby", ["alice", "bob", "carol"]).await;
    ask(&mut carol, "MONITOR + bob").await;

    assert_eq!(
        ask(&mut bob, "KILL alice :no").await,
        [":test.server 481 bob :Permission Denied- You're not an IRC operator"]
    );
    ask(&mut alice, "OPER root s3cret").await;
    assert_eq!(
        ask(&mut alice, "KILL nobody :x").await,
        [":test.server 401 alice nobody :No such nick/channel"]
    );
    assert_eq!(
        ask(&mut alice, "KILL").await,
        [":test.server 461 alice KILL :Not enough parameters"]
    );

    alice.send("KILL Bob :spamming links").await;
    let last = bob.expect_closed().await;
    assert_eq!(
        last.last().map(|l| l.0.as_str()),
        Some("ERROR :Killed (alice (spamming links))"),
        "{last:#?}"
    );
    let quit = format!("{} QUIT :Killed (alice (spamming links))", src("bob"));
    assert_eq!(pending(&mut alice).await, std::slice::from_ref(&quit));
    assert_eq!(
        pending(&mut carol).await,
        [quit, ":test.server 731 * :bob".to_owned()]
    );
    // Without a reason.
    alice.send("KILL carol").await;
    let last = carol.expect_closed().await;
    assert_eq!(
        last.last().map(|l| l.0.as_str()),
        Some("ERROR :Killed (alice (No reason given))")
    );
    assert_eq!(
        pending(&mut alice).await,
        [format!(
            "{} QUIT :Killed (alice (No reason given))",
            src("carol")
        )]
    );
    assert_silent(&mut alice).await;
    server.shutdown().await;
}

/// Runs `chat-server --hash-password` with `input` on stdin.
fn hash_password(input: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .arg("--hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chat-server");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("chat-server exits");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn hash_password_prints_a_phc_string_that_a_config_file_accepts() {
    let (ok, stdout, stderr) = hash_password("hunter2\n");
    assert!(ok, "{stderr}");
    let hash = stdout.trim();
    assert!(hash.starts_with("$argon2id$"), "{stdout}");
    assert!(palaver_server::opers::verify_password("hunter2", hash));

    let (ok, _, stderr) = hash_password("\n");
    assert!(!ok);
    assert!(stderr.contains("empty"), "{stderr}");

    // The hash works end to end: config file → binary → OPER.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("palaver.toml");
    std::fs::write(
        &path,
        format!("[[oper]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n"),
    )
    .expect("write config");
    let path = path.to_string_lossy().into_owned();
    let (_server, addr) = ServerProcess::start_listening(&[
        "--no-flood-limit",
        "--config",
        &path,
        "--oper",
        "second:pa:ss",
    ]);
    let mut alice = palaver_test_support::TestClient::connect(addr).await;
    alice.register("alice").await;
    assert_eq!(
        ask(&mut alice, "OPER admin hunter2").await[0],
        ":palaver.local 381 alice :You are now an IRC operator"
    );
    assert_eq!(
        ask(&mut alice, "OPER second pa:ss").await,
        [":palaver.local 381 alice :You are now an IRC operator"]
    );
}

#[tokio::test]
async fn config_errors_are_reported_all_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[oper]]\nname = \"two words\"\npassword_hash = \"plaintext\"\n",
    )
    .expect("write config");
    let path = path.to_string_lossy().into_owned();
    let mut server = ServerProcess::spawn(&["127.0.0.1", "0", "--config", &path]);
    let (status, stderr) = server.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("one word"), "{stderr}");
    assert!(stderr.contains("not a PHC string"), "{stderr}");
    // Without the file's problems, the command line's are reported together.
    let mut server = ServerProcess::spawn(&[
        "127.0.0.1",
        "0",
        "--oper",
        "nocolon",
        "--oper",
        "a b:pw",
        "--max-clients",
        "5",
    ]);
    let (status, stderr) = server.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("one word"), "{stderr}");
    assert!(stderr.contains("--oper value has no ':'"), "{stderr}");
    assert!(
        !stderr.contains("nocolon"),
        "the value may be a password: {stderr}"
    );

    std::fs::write(dir.path().join("typo.toml"), "[[opers]]\nname = \"x\"\n").expect("write");
    let typo = dir.path().join("typo.toml").to_string_lossy().into_owned();
    let mut server = ServerProcess::spawn(&["127.0.0.1", "0", "--config", &typo]);
    let (status, stderr) = server.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("opers"), "{stderr}");

    // Without --hash-password (or a --config file giving them) the address and
    // port are required, and the message shows how to give them.
    let output = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .stdin(Stdio::null())
        .output()
        .expect("run chat-server");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("e.g. chat-server 127.0.0.1 6667"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
