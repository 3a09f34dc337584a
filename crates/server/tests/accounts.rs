//! Accounts: SASL (PLAIN, SCRAM-SHA-256), REGISTER, NickServ, account visibility
//! (account-notify, account-tag, extended-join, WHOIS, WHOX, `$a` extban, `+R`),
//! nickname ownership, throttling, and accounts surviving a restart.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use palaver_test_support::{TestClient, TestServer, test_config};
use sha2::{Digest, Sha256};

use crate::channels::{ask, assert_silent, pending};

/// Registers account `name` with `password` from a throwaway connection.
async fn register(server: &TestServer, name: &str, password: &str) {
    let mut client = server.client(name).await;
    let replies = ask(&mut client, &format!("REGISTER * * {password}")).await;
    assert!(
        replies
            .iter()
            .any(|l| l.contains(&format!("REGISTER SUCCESS {name} "))),
        "{replies:#?}"
    );
    client.send("QUIT").await;
    client.expect_closed().await;
}

/// Connects, asks for `sasl` and starts an exchange with `mechanism`.
async fn start_sasl(server: &TestServer, nick: &str, mechanism: &str) -> TestClient {
    let mut client = server.connect().await;
    client.nick = nick.to_owned();
    client.send("CAP REQ :sasl").await;
    client.expect_command("CAP").await;
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    assert_eq!(
        ask(&mut client, &format!("AUTHENTICATE {mechanism}")).await,
        [":test.server AUTHENTICATE +"]
    );
    client
}

fn plain(user: &str, password: &str) -> String {
    BASE64.encode(format!("\0{user}\0{password}"))
}

/// The replies to a PLAIN attempt as `user` with `password`.
async fn try_plain(client: &mut TestClient, user: &str, password: &str) -> Vec<String> {
    ask(client, &format!("AUTHENTICATE {}", plain(user, password))).await
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Runs a SCRAM-SHA-256 exchange as a client would (RFC 5802), up to the server's
/// final message; returns the replies to the client-final message and whether the
/// server's signature checked out.
async fn scram(client: &mut TestClient, user: &str, password: &str) -> (Vec<String>, bool) {
    let bare = format!("n={user},r=clientnonce123");
    let first = ask(
        client,
        &format!("AUTHENTICATE {}", BASE64.encode(format!("n,,{bare}"))),
    )
    .await;
    assert_eq!(first.len(), 1, "{first:#?}");
    let server_first = String::from_utf8(
        BASE64
            .decode(first[0].rsplit(' ').next().expect("data"))
            .expect("base64"),
    )
    .expect("utf-8");
    let mut fields = server_first.split(',');
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .expect("r=");
    assert!(
        nonce.starts_with("clientnonce123") && nonce.len() > 20,
        "{server_first}"
    );
    let salt = BASE64
        .decode(
            fields
                .next()
                .and_then(|f| f.strip_prefix("s="))
                .expect("s="),
        )
        .expect("salt");
    let iterations: u32 = fields
        .next()
        .and_then(|f| f.strip_prefix("i="))
        .expect("i=")
        .parse()
        .expect("number");
    assert!(iterations >= 4096);
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{bare},{server_first},{without_proof}");
    let signature = hmac(&stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let client_final = format!("{without_proof},p={}", BASE64.encode(proof));
    let replies = ask(
        client,
        &format!("AUTHENTICATE {}", BASE64.encode(client_final)),
    )
    .await;
    let expected = format!(
        "v={}",
        BASE64.encode(hmac(&hmac(&salted, b"Server Key"), auth.as_bytes()))
    );
    let verified = replies.first().is_some_and(|line| {
        line.starts_with(":test.server AUTHENTICATE ")
            && BASE64
                .decode(line.rsplit(' ').next().unwrap_or_default())
                .ok()
                == Some(expected.clone().into_bytes())
    });
    (replies, verified)
}

/// Ends registration and returns the lines up to the end of the MOTD.
async fn finish_registration(client: &mut TestClient) -> Vec<String> {
    client.send("CAP END").await;
    let mut lines = Vec::new();
    loop {
        let line = client.next_line().await.expect("welcome burst");
        let end = matches!(line.command(), "376" | "422");
        lines.push(line.0);
        if end {
            return lines;
        }
    }
}

#[tokio::test]
async fn sasl_plain_logs_in_before_registration() {
    let server = TestServer::start().await;
    register(&server, "alice", "correct-horse").await;
    let mut client = start_sasl(&server, "alice", "PLAIN").await;
    assert_eq!(
        try_plain(&mut client, "alice", "correct-horse").await,
        [
            ":test.server 900 alice alice!~alice@127.0.0.1 alice :You are now logged in as alice",
            ":test.server 903 alice :SASL authentication successful",
        ]
    );
    let burst = finish_registration(&mut client).await;
    assert!(burst[0].contains(" 001 alice "), "{burst:#?}");
    let whois = ask(&mut client, "WHOIS alice").await;
    assert!(
        whois.contains(&":test.server 330 alice alice alice :is logged in as".to_owned()),
        "{whois:#?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn sasl_plain_with_a_wrong_password_or_unknown_account_fails() {
    let server = TestServer::start().await;
    register(&server, "alice", "correct-horse").await;
    let mut client = start_sasl(&server, "alice", "PLAIN").await;
    assert_eq!(
        try_plain(&mut client, "alice", "wrong-horse").await,
        [":test.server 904 alice :SASL authentication failed"]
    );
    assert_eq!(
        ask(&mut client, "AUTHENTICATE PLAIN").await,
        [":test.server AUTHENTICATE +"]
    );
    assert_eq!(
        try_plain(&mut client, "nobody", "correct-horse").await,
        [":test.server 904 alice :SASL authentication failed"]
    );
    // Not logged in: registration goes on without an account.
    let burst = finish_registration(&mut client).await;
    assert!(!burst.iter().any(|l| l.contains(" 900 ")), "{burst:#?}");
    let whois = ask(&mut client, "WHOIS alice").await;
    assert!(!whois.iter().any(|l| l.contains(" 330 ")), "{whois:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn sasl_abort_unknown_mechanism_and_malformed_data() {
    let server = TestServer::start().await;
    let mut client = start_sasl(&server, "alice", "PLAIN").await;
    assert_eq!(
        ask(&mut client, "AUTHENTICATE *").await,
        [":test.server 906 alice :SASL authentication aborted"]
    );
    assert_eq!(
        ask(&mut client, "AUTHENTICATE DIGEST-MD5").await,
        [
            ":test.server 908 alice PLAIN,SCRAM-SHA-256 :are available SASL mechanisms",
            ":test.server 904 alice :SASL authentication failed",
        ]
    );
    ask(&mut client, "AUTHENTICATE PLAIN").await;
    assert_eq!(
        ask(&mut client, "AUTHENTICATE !!notbase64!!").await,
        [":test.server 904 alice :SASL authentication failed"]
    );
    ask(&mut client, "AUTHENTICATE PLAIN").await;
    assert_eq!(
        ask(&mut client, &format!("AUTHENTICATE {}", "A".repeat(401))).await,
        [":test.server 905 alice :SASL message too long"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn sasl_data_is_sent_in_400_byte_chunks() {
    let server = TestServer::start().await;
    let password = "p".repeat(300);
    register(&server, "alice", &password).await;
    let mut client = start_sasl(&server, "alice", "PLAIN").await;
    let data = plain("alice", &password);
    assert!(data.len() > 400);
    let (first, rest) = data.split_at(400);
    // The first chunk is exactly 400 bytes: the server waits for more.
    assert_eq!(
        ask(&mut client, &format!("AUTHENTICATE {first}")).await,
        Vec::<String>::new()
    );
    let replies = ask(&mut client, &format!("AUTHENTICATE {rest}")).await;
    assert!(replies.iter().any(|l| l.contains(" 903 ")), "{replies:#?}");

    // A message of exactly 400 bytes ends with `AUTHENTICATE +`.
    let mut exact = start_sasl(&server, "bob", "PLAIN").await;
    let user = "alice";
    let padded = "x".repeat(400 * 3 / 4 - user.len() - 2);
    let data = BASE64.encode(format!("\0{user}\0{padded}"));
    assert_eq!(data.len(), 400);
    assert_eq!(
        ask(&mut exact, &format!("AUTHENTICATE {data}")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        ask(&mut exact, "AUTHENTICATE +").await,
        [":test.server 904 bob :SASL authentication failed"]
    );
    server.shutdown().await;
}

/// irctest's `testPlainLarge800`: 800 bytes of base64 in two full chunks, then `+`.
/// Such a password (592 bytes) cannot be registered over IRC (the REGISTER line
/// would pass 512 bytes), so the check fails, but only once `+` has ended the
/// message: neither full chunk is answered, and nothing is "too long" (905).
#[tokio::test]
async fn two_full_chunks_wait_for_the_closing_plus() {
    let server = TestServer::start().await;
    register(&server, "foo", "sesame-sesame").await;
    let mut client = start_sasl(&server, "foo", "PLAIN").await;
    let data = BASE64.encode(format!("foo\0foo\0{}", "x".repeat(592)));
    assert_eq!(data.len(), 800);
    let (first, second) = data.split_at(400);
    for chunk in [first, second] {
        assert_eq!(
            ask(&mut client, &format!("AUTHENTICATE {chunk}")).await,
            Vec::<String>::new()
        );
    }
    assert_eq!(
        ask(&mut client, "AUTHENTICATE +").await,
        [":test.server 904 foo :SASL authentication failed"]
    );
    // The same exchange is still usable: the right password logs in.
    ask(&mut client, "AUTHENTICATE PLAIN").await;
    let replies = try_plain(&mut client, "foo", "sesame-sesame").await;
    assert!(replies.iter().any(|l| l.contains(" 903 ")), "{replies:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn registration_waits_for_a_check_but_aborts_an_idle_exchange() {
    let server = TestServer::start().await;
    register(&server, "alice", "correct-horse").await;
    // The credentials and CAP END sent together: the check runs first, so the
    // client is logged in before its welcome.
    let mut client = start_sasl(&server, "alice", "PLAIN").await;
    client
        .send(&format!("AUTHENTICATE {}", plain("alice", "correct-horse")))
        .await;
    client.send("CAP END").await;
    let replies = pending(&mut client).await;
    assert!(replies[0].contains(" 900 "), "{replies:#?}");
    assert!(replies[1].contains(" 903 "), "{replies:#?}");
    assert!(replies[2].contains(" 001 "), "{replies:#?}");

    // CAP END while the exchange waits for the client: aborted (906), then the
    // welcome, without an account (sasl-3.1).
    let mut idle = start_sasl(&server, "bob", "PLAIN").await;
    let replies = ask(&mut idle, "CAP END").await;
    assert_eq!(
        replies[0],
        ":test.server 906 bob :SASL authentication aborted"
    );
    assert!(replies[1].contains(" 001 bob "), "{replies:#?}");
    assert!(!replies.iter().any(|l| l.contains(" 900 ")), "{replies:#?}");
    server.shutdown().await;
}

/// SASLprep (RFC 4013): a password registered in decomposed Unicode is the same
/// password typed composed, for IDENTIFY, PLAIN and SCRAM (whose client prepares
/// it before hashing, as RFC 5802 asks).
#[tokio::test]
async fn unicode_passwords_are_compared_after_saslprep() {
    let server = TestServer::start().await;
    let decomposed = "cafe\u{0301}-au-lait";
    let composed = "caf\u{00E9}-au-lait";
    register(&server, "alice", decomposed).await;

    let mut identify = server.client("other").await;
    let replies = ask(&mut identify, &format!("NS IDENTIFY alice {composed}")).await;
    assert!(replies.iter().any(|l| l.contains(" 900 ")), "{replies:#?}");

    let mut plain_login = start_sasl(&server, "bob", "PLAIN").await;
    let replies = try_plain(&mut plain_login, "alice", composed).await;
    assert!(replies.iter().any(|l| l.contains(" 903 ")), "{replies:#?}");

    let mut scram_login = start_sasl(&server, "carol", "SCRAM-SHA-256").await;
    let (replies, verified) = scram(&mut scram_login, "alice", composed).await;
    assert!(verified, "{replies:#?}");
    let replies = ask(&mut scram_login, "AUTHENTICATE +").await;
    assert!(replies.iter().any(|l| l.contains(" 903 ")), "{replies:#?}");

    // Another password is still another password.
    let mut wrong = start_sasl(&server, "dave", "PLAIN").await;
    let replies = try_plain(&mut wrong, "alice", "cafe-au-lait").await;
    assert!(replies.iter().any(|l| l.contains(" 904 ")), "{replies:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn sasl_scram_sha_256_succeeds_and_fails() {
    let server = TestServer::start().await;
    register(&server, "alice", "correct-horse").await;
    let mut client = start_sasl(&server, "alice", "SCRAM-SHA-256").await;
    let (replies, verified) = scram(&mut client, "alice", "correct-horse").await;
    assert!(
        verified,
        "the server proves it knows the verifier: {replies:#?}"
    );
    assert_eq!(
        ask(&mut client, "AUTHENTICATE +").await,
        [
            ":test.server 900 alice alice!~alice@127.0.0.1 alice :You are now logged in as alice",
            ":test.server 903 alice :SASL authentication successful",
        ]
    );

    let mut wrong = start_sasl(&server, "bob", "SCRAM-SHA-256").await;
    let (replies, verified) = scram(&mut wrong, "alice", "wrong-horse").await;
    assert!(!verified);
    assert_eq!(
        replies,
        [":test.server 904 bob :SASL authentication failed"]
    );

    let mut unknown = start_sasl(&server, "carol", "SCRAM-SHA-256").await;
    let (replies, _) = scram(&mut unknown, "nobody", "correct-horse").await;
    assert_eq!(
        replies,
        [":test.server 904 carol :SASL authentication failed"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn after_registration_sasl_switches_accounts_but_not_before() {
    let server = TestServer::start().await;
    register(&server, "alice", "correct-horse").await;
    register(&server, "alt", "another-horse").await;
    let mut client = start_sasl(&server, "alice", "PLAIN").await;
    try_plain(&mut client, "alice", "correct-horse").await;
    assert_eq!(
        ask(&mut client, "AUTHENTICATE PLAIN").await,
        [":test.server 907 alice :You have already authenticated using SASL"]
    );
    finish_registration(&mut client).await;
    ask(&mut client, "AUTHENTICATE PLAIN").await;
    assert_eq!(
        try_plain(&mut client, "alt", "another-horse").await,
        [
            ":test.server 900 alice alice!~alice@127.0.0.1 alt :You are now logged in as alt"
                .to_owned(),
            ":test.server 903 alice :SASL authentication successful".to_owned(),
            // The nick is alice's account's, and the client is no longer in it.
            ns(
                "alice :This nick is registered; log in with /msg NickServ IDENTIFY <password> or it will be changed in 60 s"
            ),
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn failed_attempts_are_throttled_per_address_and_per_account() {
    let server = TestServer::start().await;
    register(&server, "alice", "correct-horse").await;
    register(&server, "bob", "battery-staple").await;
    // Five failures on alice from 127.0.0.1.
    for attempt in 0..5 {
        let nick = format!("guesser{attempt}");
        let mut client = start_sasl(&server, &nick, "PLAIN").await;
        assert_eq!(
            try_plain(&mut client, "alice", "guess").await,
            [format!(
                ":test.server 904 {nick} :SASL authentication failed"
            )]
        );
    }
    // That address is refused at once, whatever the account.
    let mut client = start_sasl_unchecked(&server, "again").await;
    let replies = ask(&mut client, "AUTHENTICATE PLAIN").await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert!(
        replies[0].starts_with(":test.server 904 again :Too many failed password attempts"),
        "{replies:#?}"
    );
    // From another address, alice is refused even with the right password, unchecked;
    // bob is not.
    let mut elsewhere = connect_from(&server, [127, 0, 0, 2], "owner").await;
    assert_eq!(
        ask(&mut elsewhere, "AUTHENTICATE PLAIN").await,
        [":test.server AUTHENTICATE +"]
    );
    let replies = try_plain(&mut elsewhere, "alice", "correct-horse").await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert!(
        replies[0].starts_with(":test.server 904 owner :Too many failed password attempts"),
        "{replies:#?}"
    );
    ask(&mut elsewhere, "AUTHENTICATE PLAIN").await;
    let replies = try_plain(&mut elsewhere, "bob", "battery-staple").await;
    assert!(replies.iter().any(|l| l.contains(" 903 ")), "{replies:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let server = TestServer::start().await;
    for n in 0..5 {
        let nick = format!("user{n}");
        let mut client = connect_from(&server, [127, 0, 0, 3], &nick).await;
        client.send("CAP END").await;
        let replies = ask(&mut client, "REGISTER * * correct-horse").await;
        assert!(
            replies.iter().any(|l| l.contains("REGISTER SUCCESS")),
            "{replies:#?}"
        );
    }
    let mut client = connect_from(&server, [127, 0, 0, 3], "user5").await;
    client.send("CAP END").await;
    let replies = ask(&mut client, "REGISTER * * correct-horse").await;
    let refusal = replies
        .iter()
        .find(|l| l.contains("FAIL REGISTER"))
        .expect("a refusal");
    assert!(
        refusal.starts_with(
            ":test.server FAIL REGISTER TEMPORARILY_UNAVAILABLE user5 :Too many accounts registered from your address"
        ),
        "{replies:#?}"
    );
    // Another address is not concerned.
    let mut elsewhere = server.client("other").await;
    let replies = ask(&mut elsewhere, "REGISTER * * correct-horse").await;
    assert!(replies[0].contains("REGISTER SUCCESS"), "{replies:#?}");
    server.shutdown().await;
}

/// Connects from the local address `source` and asks for `sasl`.
async fn connect_from(server: &TestServer, source: [u8; 4], nick: &str) -> TestClient {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .expect("bind a second loopback address");
    let stream = socket.connect(server.addr).await.expect("connect");
    let mut client = TestClient::from_stream(stream);
    client.nick = nick.to_owned();
    client.send("CAP REQ :sasl").await;
    client.expect_command("CAP").await;
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    client
}

/// Connects and asks for `sasl`, without starting an exchange.
async fn start_sasl_unchecked(server: &TestServer, nick: &str) -> TestClient {
    let mut client = server.connect().await;
    client.nick = nick.to_owned();
    client.send("CAP REQ :sasl").await;
    client.expect_command("CAP").await;
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    client
}

#[tokio::test]
async fn cap_ls_302_lists_the_mechanisms() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let replies = ask(&mut client, "CAP LS 302").await;
    let all = replies.join(" ");
    assert!(all.contains(" sasl=PLAIN,SCRAM-SHA-256"), "{all}");
    assert!(
        all.contains(" draft/account-registration=before-connect,custom-account-name"),
        "{all}"
    );
    assert!(
        all.contains(" account-notify") && all.contains(" account-tag"),
        "{all}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn register_creates_an_account_and_logs_in() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    assert_eq!(
        ask(&mut alice, "REGISTER * * correct-horse").await,
        [
            ":test.server REGISTER SUCCESS alice :Account successfully registered",
            ":test.server 900 alice alice!~alice@127.0.0.1 alice :You are now logged in as alice",
        ]
    );
    assert_eq!(
        ask(&mut alice, "REGISTER other * correct-horse").await,
        [":test.server FAIL REGISTER ALREADY_AUTHENTICATED other :You are already logged in"]
    );
    let mut bob = server.client("bob").await;
    assert_eq!(
        ask(&mut bob, "REGISTER ALICE * correct-horse").await,
        [":test.server FAIL REGISTER ACCOUNT_EXISTS ALICE :That name is in use as a nickname"]
    );
    assert_eq!(
        ask(&mut bob, "REGISTER * * short").await,
        [":test.server FAIL REGISTER UNACCEPTABLE_PASSWORD bob :That password is too short"]
    );
    assert_eq!(
        ask(&mut bob, "REGISTER * * BOB").await,
        [":test.server FAIL REGISTER UNACCEPTABLE_PASSWORD bob :That password is too short"]
    );
    assert_eq!(
        ask(&mut bob, "REGISTER #chan * correct-horse").await,
        [
            ":test.server FAIL REGISTER BAD_ACCOUNT_NAME #chan :Account names follow the nickname rules"
        ]
    );
    // A custom name, while alice's account is not in use as a nick.
    assert_eq!(
        ask(&mut bob, "REGISTER robert * correct-horse").await,
        [
            ":test.server REGISTER SUCCESS robert :Account successfully registered",
            ":test.server 900 bob bob!~bob@127.0.0.1 robert :You are now logged in as robert",
        ]
    );
    alice.send("QUIT").await;
    alice.expect_closed().await;
    let mut carol = server.client("carol").await;
    assert_eq!(
        ask(&mut carol, "REGISTER alice * correct-horse").await,
        [":test.server FAIL REGISTER ACCOUNT_EXISTS alice :That account is already registered"]
    );
    assert_eq!(
        ask(&mut carol, "VERIFY carol 1234").await,
        [
            ":test.server FAIL VERIFY INVALID_CODE carol :No verification is pending for that account"
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn register_before_connect_can_be_refused() {
    let mut config = test_config();
    config.accounts.register_before_connect = false;
    let server = TestServer::with_config(config).await;
    let mut client = server.connect().await;
    client.send("NICK early").await;
    assert_eq!(
        ask(&mut client, "REGISTER * * correct-horse").await,
        [
            ":test.server FAIL REGISTER COMPLETE_CONNECTION_REQUIRED * :Complete the connection before registering an account"
        ]
    );
    server.shutdown().await;

    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send("NICK early").await;
    let replies = ask(&mut client, "REGISTER * * correct-horse").await;
    assert_eq!(
        replies[0],
        ":test.server REGISTER SUCCESS early :Account successfully registered"
    );
    server.shutdown().await;
}

fn ns(text: &str) -> String {
    format!(":NickServ!NickServ@services. NOTICE {text}")
}

#[tokio::test]
async fn nickserv_register_identify_info_set_password_and_drop() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    assert_eq!(
        ask(
            &mut alice,
            "PRIVMSG NickServ :REGISTER correct-horse alice@example.org"
        )
        .await,
        [
            ns("alice :Account alice registered; you are now logged in"),
            ":test.server 900 alice alice!~alice@127.0.0.1 alice :You are now logged in as alice"
                .to_owned(),
        ]
    );
    let info = ask(&mut alice, "NS INFO").await;
    assert_eq!(info[0], ns("alice :Account: alice"));
    assert!(
        info.contains(&ns("alice :Logged in now: 1 client(s)")),
        "{info:#?}"
    );
    assert!(
        info.contains(&ns("alice :E-mail: alice@example.org")),
        "{info:#?}"
    );
    assert_eq!(
        ask(&mut alice, "NICKSERV SET PASSWORD new-password").await,
        [ns("alice :Your password has been changed")]
    );

    let mut other = server.client("other").await;
    assert_eq!(
        ask(&mut other, "PRIVMSG nickserv :IDENTIFY alice correct-horse").await,
        [ns("other :Invalid account name or password")]
    );
    assert_eq!(
        ask(&mut other, "PRIVMSG nickserv :IDENTIFY alice new-password").await,
        [
            ns("other :You are now logged in as alice"),
            ":test.server 900 other other!~other@127.0.0.1 alice :You are now logged in as alice"
                .to_owned(),
        ]
    );
    let info = ask(&mut other, "NS INFO alice").await;
    assert!(
        info.contains(&ns("other :Logged in now: 2 client(s)")),
        "{info:#?}"
    );
    let info = ask(&mut other, "NS INFO nobody").await;
    assert_eq!(info, [ns("other :nobody is not a registered account")]);
    assert_eq!(
        ask(&mut other, "NS FROB").await,
        [ns("other :Unknown command FROB; see /msg NickServ HELP")]
    );
    assert!(ask(&mut other, "NS HELP").await.len() > 5);

    // DROP logs out every client of the account.
    let dropped = ask(&mut alice, "NS DROP").await;
    assert_eq!(
        dropped,
        [
            ns("alice :Account alice has been dropped"),
            ":test.server 901 alice alice!~alice@127.0.0.1 :You are now logged out".to_owned(),
        ]
    );
    assert_eq!(
        pending(&mut other).await,
        [":test.server 901 other other!~other@127.0.0.1 :You are now logged out"]
    );
    assert_eq!(
        ask(&mut other, "NS INFO alice").await,
        [ns("other :alice is not a registered account")]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn service_nicks_cannot_be_taken() {
    let server = TestServer::start().await;
    let mut client = server.client("alice").await;
    assert_eq!(
        ask(&mut client, "NICK nickserv").await,
        [":test.server 432 alice nickserv :Nickname is reserved for services"]
    );
    assert_eq!(
        ask(&mut client, "NICK ChanServ").await,
        [":test.server 432 alice ChanServ :Nickname is reserved for services"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ghost_disconnects_a_client_using_the_accounts_nick() {
    let server = TestServer::start().await;
    register(&server, "alice", "correct-horse").await;
    let mut squatter = server.client("alice").await;
    let mut owner = server.client("owner").await;
    assert_eq!(
        ask(&mut owner, "NS GHOST alice").await,
        [ns("owner :You are not logged in")]
    );
    ask(&mut owner, "NS IDENTIFY alice correct-horse").await;
    assert_eq!(
        ask(&mut owner, "NS GHOST alice").await,
        [ns("owner :alice has been disconnected")]
    );
    let last = squatter.expect_closed().await;
    assert!(
        last.iter()
            .any(|l| l.0.contains("ERROR :GHOST command used by owner")),
        "{last:#?}"
    );
    assert_eq!(
        ask(&mut owner, "NICK alice").await,
        [":owner!~owner@127.0.0.1 NICK alice"]
    );
    assert_silent(&mut owner).await;
    server.shutdown().await;
}

#[tokio::test]
async fn accounts_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        let store = palaver_store::SqliteStore::open(dir.path()).expect("open the store");
        let mut config = test_config();
        config.store = Some(Arc::new(store));
        config
    };
    let server = TestServer::with_config(open()).await;
    register(&server, "alice", "correct-horse").await;
    server.shutdown().await;

    let server = TestServer::with_config(open()).await;
    let mut client = start_sasl(&server, "alice", "PLAIN").await;
    let replies = try_plain(&mut client, "alice", "correct-horse").await;
    assert!(replies.iter().any(|l| l.contains(" 903 ")), "{replies:#?}");
    let mut scram_client = start_sasl(&server, "bob", "SCRAM-SHA-256").await;
    let (_, verified) = scram(&mut scram_client, "alice", "correct-horse").await;
    assert!(verified);
    server.shutdown().await;
}

/// A registered client logged in to the account of its own name (REGISTER).
async fn logged_in(server: &TestServer, nick: &str, caps: &str) -> TestClient {
    let mut client = if caps.is_empty() {
        server.client(nick).await
    } else {
        server.client_with_caps(nick, caps).await
    };
    let replies = ask(&mut client, "REGISTER * * correct-horse").await;
    assert!(replies[0].contains("REGISTER SUCCESS"), "{replies:#?}");
    client
}

#[tokio::test]
async fn account_notify_tag_and_extended_join_show_the_account() {
    let server = TestServer::start().await;
    let mut watcher = server
        .client_with_caps("watcher", "account-notify account-tag extended-join")
        .await;
    let mut plain = server.client("plain").await;
    ask(&mut watcher, "JOIN #c").await;
    ask(&mut plain, "JOIN #c").await;
    let mut alice = server.client("alice").await;
    ask(&mut alice, "JOIN #c").await;
    assert_eq!(
        pending(&mut watcher).await,
        [
            ":plain!~plain@127.0.0.1 JOIN #c * :Test user plain",
            ":alice!~alice@127.0.0.1 JOIN #c * :Test user alice",
        ]
    );
    pending(&mut plain).await;

    // Logging in is announced to account-notify peers only.
    ask(&mut alice, "REGISTER * * correct-horse").await;
    assert_eq!(
        pending(&mut watcher).await,
        [":alice!~alice@127.0.0.1 ACCOUNT alice"]
    );
    assert_silent(&mut plain).await;

    // Messages carry the account for account-tag recipients.
    ask(&mut alice, "PRIVMSG #c :hello").await;
    assert_eq!(
        pending(&mut watcher).await,
        ["@account=alice :alice!~alice@127.0.0.1 PRIVMSG #c :hello"]
    );
    assert_eq!(
        pending(&mut plain).await,
        [":alice!~alice@127.0.0.1 PRIVMSG #c :hello"]
    );
    ask(&mut plain, "PRIVMSG #c :anonymous").await;
    assert_eq!(
        pending(&mut watcher).await,
        [":plain!~plain@127.0.0.1 PRIVMSG #c :anonymous"]
    );

    // extended-join names the account (and account-tag tags the JOIN).
    ask(&mut alice, "PART #c").await;
    pending(&mut watcher).await;
    ask(&mut alice, "JOIN #c").await;
    assert_eq!(
        pending(&mut watcher).await,
        ["@account=alice :alice!~alice@127.0.0.1 JOIN #c alice :Test user alice"]
    );

    // WHOX %a and WHOIS 330.
    pending(&mut plain).await;
    assert_eq!(
        ask(&mut plain, "WHO #c %na").await,
        [
            ":test.server 354 plain watcher 0",
            ":test.server 354 plain plain 0",
            ":test.server 354 plain alice alice",
            ":test.server 315 plain #c :End of WHO list",
        ]
    );
    let whois = ask(&mut plain, "WHOIS alice").await;
    assert!(
        whois.contains(&":test.server 330 plain alice alice :is logged in as".to_owned()),
        "{whois:#?}"
    );

    // INVITE carries the inviter's account too.
    ask(&mut watcher, "PART #c").await;
    ask(&mut alice, "INVITE watcher #c").await;
    assert_eq!(
        pending(&mut watcher).await,
        ["@account=alice :alice!~alice@127.0.0.1 INVITE watcher #c"]
    );
    ask(&mut watcher, "JOIN #c").await;
    pending(&mut plain).await;
    pending(&mut alice).await;

    // Dropping the account logs out: ACCOUNT *.
    ask(&mut alice, "NS DROP").await;
    assert_eq!(
        pending(&mut watcher).await,
        [":alice!~alice@127.0.0.1 ACCOUNT *"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn read_markers_are_shared_by_an_accounts_connections() {
    let server = TestServer::start().await;
    register(&server, "alice", "correct-horse").await;
    let mut sessions = Vec::new();
    for nick in ["alice", "alice_"] {
        let mut client = server.connect().await;
        client.nick = nick.to_owned();
        client.send("CAP REQ :sasl draft/read-marker").await;
        client.send(&format!("NICK {nick}")).await;
        client.send(&format!("USER {nick} 0 * :{nick}")).await;
        client.send("AUTHENTICATE PLAIN").await;
        client
            .send(&format!("AUTHENTICATE {}", plain("alice", "correct-horse")))
            .await;
        finish_registration(&mut client).await;
        sessions.push(client);
    }
    let mut other = server.client_with_caps("bob", "draft/read-marker").await;
    let [mut first, mut second] = <[TestClient; 2]>::try_from(sessions).ok().expect("two");
    let set = "MARKREAD #test timestamp=2022-11-11T11:11:11.111Z";
    assert_eq!(
        ask(&mut first, set).await,
        [":test.server MARKREAD #test timestamp=2022-11-11T11:11:11.111Z"]
    );
    assert_eq!(
        pending(&mut second).await,
        [":test.server MARKREAD #test timestamp=2022-11-11T11:11:11.111Z"]
    );
    assert_eq!(
        ask(&mut second, "MARKREAD #test").await,
        [":test.server MARKREAD #test timestamp=2022-11-11T11:11:11.111Z"]
    );
    // Not moving it does not announce it again; other accounts never see it.
    ask(&mut first, set).await;
    assert_silent(&mut second).await;
    assert_eq!(
        ask(&mut other, "MARKREAD #test").await,
        [":test.server MARKREAD #test *"]
    );
    server.shutdown().await;
}

/// account-tag: "all commands sent by a user", not only messages: JOIN, NICK, AWAY,
/// TOPIC, MODE, KICK, PART, QUIT of a logged-in user carry its account for
/// recipients with the capability (the user itself included), and only for them.
#[tokio::test]
async fn a_logged_in_users_events_carry_the_account_tag() {
    let server = TestServer::start().await;
    let mut tagged = server
        .client_with_caps("tagged", "account-tag away-notify")
        .await;
    let mut plain = server.client_with_caps("plain", "away-notify").await;
    ask(&mut tagged, "JOIN #c").await;
    ask(&mut plain, "JOIN #c").await;
    pending(&mut tagged).await;
    let mut alice = logged_in(&server, "alice", "account-tag").await;
    ask(&mut alice, "JOIN #c").await;
    pending(&mut tagged).await;
    pending(&mut plain).await;
    ask(&mut tagged, "MODE #c +o alice").await;
    pending(&mut plain).await;
    pending(&mut alice).await;

    // (command, what the others see, whether `plain` is still there to see it)
    let me = ":alicia!~alice@127.0.0.1";
    let steps: [(&str, &[&str], bool); 7] = [
        (
            "NICK alicia",
            &[":alice!~alice@127.0.0.1 NICK alicia"],
            true,
        ),
        ("AWAY :lunch", &["AWAY :lunch"], true),
        ("TOPIC #c :news", &["TOPIC #c :news"], true),
        ("MODE #c +v alicia", &["MODE #c +v alicia"], true),
        ("KICK #c plain :bye", &["KICK #c plain :bye"], true),
        ("PART #c :later", &["PART #c :later"], false),
        // away-notify: the JOIN of someone away is followed by its AWAY.
        ("JOIN #c", &["JOIN #c", "AWAY :lunch"], false),
    ];
    for (command, seen, plain_sees) in steps {
        let seen: Vec<String> = seen
            .iter()
            .map(|line| match line.starts_with(':') {
                true => (*line).to_owned(),
                false => format!("{me} {line}"),
            })
            .collect();
        let expected: Vec<String> = seen
            .iter()
            .map(|line| format!("@account=alice {line}"))
            .collect();
        let own = ask(&mut alice, command).await;
        // AWAY is not echoed to its sender (306 instead).
        if !command.starts_with("AWAY") {
            assert!(own.contains(&expected[0]), "{command}: {own:#?}");
        }
        assert_eq!(pending(&mut tagged).await, expected, "{command}");
        let plain_lines = pending(&mut plain).await;
        if plain_sees {
            assert_eq!(plain_lines, seen, "{command}");
        } else {
            assert!(plain_lines.is_empty(), "{command}: {plain_lines:#?}");
        }
    }
    alice.send("QUIT :gone").await;
    alice.expect_closed().await;
    assert_eq!(
        pending(&mut tagged).await,
        ["@account=alice :alicia!~alice@127.0.0.1 QUIT :Quit: gone"]
    );
    // Someone not logged in is never tagged.
    ask(&mut plain, "JOIN #c").await;
    assert_eq!(
        pending(&mut tagged).await,
        [":plain!~plain@127.0.0.1 JOIN #c"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn multiline_batches_carry_the_account_tag() {
    let server = TestServer::start().await;
    let mut alice = logged_in(&server, "alice", "batch draft/multiline").await;
    let mut batched = server
        .client_with_caps("batched", "batch draft/multiline account-tag")
        .await;
    let mut fallback = server.client_with_caps("fallback", "account-tag").await;
    for client in [&mut alice, &mut batched, &mut fallback] {
        ask(client, "JOIN #m").await;
    }
    for client in [&mut alice, &mut batched, &mut fallback] {
        pending(client).await;
    }
    alice.send("BATCH +a draft/multiline #m").await;
    alice.send("@batch=a PRIVMSG #m :one").await;
    alice.send("@batch=a PRIVMSG #m :two").await;
    ask(&mut alice, "BATCH -a").await;
    let lines = pending(&mut batched).await;
    assert!(
        lines[0].starts_with("@account=alice :alice!~alice@127.0.0.1 BATCH +"),
        "{lines:#?}"
    );
    assert_eq!(
        pending(&mut fallback).await,
        [
            "@account=alice :alice!~alice@127.0.0.1 PRIVMSG #m :one",
            "@account=alice :alice!~alice@127.0.0.1 PRIVMSG #m :two",
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn account_extbans_and_registered_only_channels() {
    let server = TestServer::start().await;
    let mut op = logged_in(&server, "op", "").await;
    ask(&mut op, "JOIN #c").await;
    let mut anon = server.client("anon").await;

    // +R: only logged-in users may join; it shows in the channel's modes.
    assert_eq!(
        ask(&mut op, "MODE #c +R").await,
        [":op!~op@127.0.0.1 MODE #c +R"]
    );
    assert_eq!(
        ask(&mut anon, "JOIN #c").await,
        [":test.server 477 anon #c :Cannot join channel (+R): log in to an account first"]
    );
    assert_eq!(
        ask(&mut op, "MODE #c").await[0],
        ":test.server 324 op #c +Rnt"
    );
    ask(&mut op, "MODE #c -R").await;

    // a:<mask> (ACCOUNTEXTBAN=a) bans by account, as does $a:<mask>; $a alone any
    // logged-in user.
    let mut bad = logged_in(&server, "bad", "").await;
    assert_eq!(
        ask(&mut op, "MODE #c +b a:BAD").await,
        [":op!~op@127.0.0.1 MODE #c +b a:BAD"]
    );
    assert_eq!(
        ask(&mut bad, "JOIN #c").await,
        [":test.server 474 bad #c :Cannot join channel (+b)"]
    );
    let joined = ask(&mut anon, "JOIN #c").await;
    assert!(joined[0].contains("JOIN #c"), "{joined:#?}");
    ask(&mut op, "MODE #c +e $a:b*").await;
    let joined = ask(&mut bad, "JOIN #c").await;
    assert!(joined[0].contains("JOIN #c"), "{joined:#?}");
    pending(&mut op).await;

    let mut other = logged_in(&server, "other", "").await;
    ask(&mut op, "MODE #c +b $a").await;
    assert_eq!(
        ask(&mut other, "JOIN #c").await,
        [":test.server 474 other #c :Cannot join channel (+b)"]
    );
    let mut anon2 = server.client("anon2").await;
    let joined = ask(&mut anon2, "JOIN #c").await;
    assert!(joined[0].contains("JOIN #c"), "{joined:#?}");

    // $a in the invite-exception list lets logged-in users past +i.
    ask(&mut op, "MODE #c -b $a").await;
    ask(&mut op, "MODE #c +iI $a").await;
    let joined = ask(&mut other, "JOIN #c").await;
    assert!(joined[0].contains("JOIN #c"), "{joined:#?}");
    let mut anon3 = server.client("anon3").await;
    assert_eq!(
        ask(&mut anon3, "JOIN #c").await,
        [":test.server 473 anon3 #c :Cannot join channel (+i)"]
    );
    server.shutdown().await;
}

/// A server whose nick ownership grace period is short.
async fn server_with_grace() -> TestServer {
    let mut config = test_config();
    config.accounts.nick_grace = Some(Duration::from_millis(300));
    TestServer::with_config(config).await
}

#[tokio::test]
async fn a_registered_nick_is_taken_back_after_the_grace_period() {
    let server = server_with_grace().await;
    register(&server, "alice", "correct-horse").await;
    register(&server, "bob", "battery-staple").await;

    // Taking alice's name without logging in: warned, then renamed.
    let mut squatter = server.connect().await;
    squatter.nick = "alice".to_owned();
    squatter.send("NICK alice").await;
    squatter.send("USER alice 0 * :x").await;
    let warning = squatter.expect_command("NOTICE").await;
    assert_eq!(
        warning.0,
        ns(
            "alice :This nick is registered; log in with /msg NickServ IDENTIFY <password> or it will be changed in 1 s"
        )
    );
    let notice = squatter.expect_command("NOTICE").await;
    assert!(
        notice.0.starts_with(&ns(
            "alice :Your nick is registered to someone else; you are now Guest"
        )),
        "{notice:?}"
    );
    let rename = squatter.expect_command("NICK").await;
    assert!(
        rename.0.starts_with(":alice!~alice@127.0.0.1 NICK Guest"),
        "{rename:?}"
    );
    assert_eq!(rename.param(0).len(), 10, "Guest + five digits: {rename:?}");

    // Logging in during the grace period cancels it; a NICK to another account's
    // name starts one. The second client's rename proves the first one's deadline
    // has passed too (it came first).
    let mut owner = server.client("someone").await;
    let mut other = server.client("other").await;
    ask(&mut owner, "NICK bob").await;
    let identified = ask(&mut owner, "NS IDENTIFY battery-staple").await;
    assert!(
        identified[0].contains("You are now logged in as bob"),
        "{identified:#?}"
    );
    ask(&mut other, "NICK alice").await;
    let rename = other.expect_command("NICK").await;
    assert!(
        rename.0.starts_with(":alice!~other@127.0.0.1 NICK Guest"),
        "{rename:?}"
    );
    let lines = owner.sync().await;
    assert!(
        !lines.iter().any(|l| l.command() == "NICK"),
        "the identified owner keeps its nick: {lines:#?}"
    );
    assert_eq!(
        ask(&mut owner, "WHOIS bob").await[0],
        ":test.server 311 bob bob ~someone 127.0.0.1 * :Test user someone"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn switching_to_another_account_puts_the_nick_on_notice() {
    let server = server_with_grace().await;
    register(&server, "alice", "correct-horse").await;
    register(&server, "bob", "battery-staple").await;
    let mut client = start_sasl(&server, "alice", "PLAIN").await;
    try_plain(&mut client, "alice", "correct-horse").await;
    finish_registration(&mut client).await;
    ask(&mut client, "AUTHENTICATE PLAIN").await;
    let replies = try_plain(&mut client, "bob", "battery-staple").await;
    assert!(replies[1].contains(" 903 "), "{replies:#?}");
    assert!(
        replies[2].starts_with(&ns("alice :This nick is registered;")),
        "{replies:#?}"
    );
    client
        .expect(|l| l.command() == "NICK" && l.param(0).starts_with("Guest"))
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn logging_in_with_sasl_to_the_nicks_account_needs_no_warning() {
    let server = server_with_grace().await;
    register(&server, "alice", "correct-horse").await;
    let mut client = start_sasl(&server, "alice", "PLAIN").await;
    try_plain(&mut client, "alice", "correct-horse").await;
    let burst = finish_registration(&mut client).await;
    assert!(!burst.iter().any(|l| l.contains("NickServ")), "{burst:#?}");
    // Another client of the same account, under another nick, is not renamed.
    let mut second = start_sasl(&server, "alice2", "PLAIN").await;
    try_plain(&mut second, "alice", "correct-horse").await;
    finish_registration(&mut second).await;
    // A squatter's rename is the clock: by then any rename of ours would be due too.
    let mut squatter = server.client("squat").await;
    assert_eq!(
        ask(&mut squatter, "NICK alice").await,
        [":test.server 433 squat alice :Nickname is already in use"]
    );
    ask(&mut client, "NICK alice_away").await;
    squatter.send("NICK alice").await;
    squatter
        .expect(|l| l.command() == "NICK" && l.param(0).starts_with("Guest"))
        .await;
    let lines = client.sync().await;
    assert!(!lines.iter().any(|l| l.0.contains("Guest")), "{lines:#?}");
    let lines = second.sync().await;
    assert!(!lines.iter().any(|l| l.command() == "NICK"), "{lines:#?}");
    server.shutdown().await;
}

/// A client logged in to `account` with SASL PLAIN, with the read-marker cap.
async fn marker_session(server: &TestServer, nick: &str, account: &str) -> TestClient {
    let mut client = server.connect().await;
    client.nick = nick.to_owned();
    client.send("CAP REQ :sasl draft/read-marker").await;
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    client.send("AUTHENTICATE PLAIN").await;
    client
        .send(&format!("AUTHENTICATE {}", plain(account, "correct-horse")))
        .await;
    finish_registration(&mut client).await;
    client
}

#[tokio::test]
async fn an_accounts_read_markers_come_back_after_a_reconnect_and_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        let store = palaver_store::SqliteStore::open(dir.path()).expect("open the store");
        let mut config = test_config();
        config.store = Some(Arc::new(store));
        config
    };
    let marker = ":test.server MARKREAD #test timestamp=2022-11-11T11:11:11.111Z";
    let server = TestServer::with_config(open()).await;
    register(&server, "alice", "correct-horse").await;
    let mut first = marker_session(&server, "alice", "alice").await;
    let set = "MARKREAD #test timestamp=2022-11-11T11:11:11.111Z";
    assert_eq!(ask(&mut first, set).await, [marker]);
    first.send("QUIT").await;
    first.expect_closed().await;

    // Every session gone: a new one (another nick, same account) has the marker.
    let mut later = marker_session(&server, "alice_phone", "alice").await;
    assert_eq!(ask(&mut later, "MARKREAD #test").await, [marker]);
    // Joining the channel again sends it too (read-marker: after the JOIN, before
    // the end of NAMES); what irctest's always-on variant expects without a JOIN.
    let joined = ask(&mut later, "JOIN #test").await;
    let at = joined.iter().position(|l| l == marker);
    let end = joined.iter().position(|l| l.contains(" 366 "));
    assert!(at.is_some() && at < end, "{joined:#?}");
    // Someone else does not.
    let mut bob = server.client_with_caps("bob", "draft/read-marker").await;
    assert_eq!(
        ask(&mut bob, "MARKREAD #test").await,
        [":test.server MARKREAD #test *"]
    );
    server.shutdown().await;

    let server = TestServer::with_config(open()).await;
    let mut after_restart = marker_session(&server, "alice", "alice").await;
    assert_eq!(ask(&mut after_restart, "MARKREAD #test").await, [marker]);
    server.shutdown().await;
}

#[tokio::test]
async fn register_star_without_a_nick_cannot_grab_a_name_in_use() {
    let server = TestServer::start().await;
    let _root = server.client("root").await;
    let mut grabber = server.connect().await;
    grabber.send("CAP LS 302").await;
    grabber.send("NICK root").await;
    grabber.expect_command("433").await;
    grabber.send("REGISTER * * a-good-passphrase").await;
    let fail = grabber.expect_command("FAIL").await;
    assert_eq!(
        (fail.param(0), fail.param(1), fail.param(2)),
        (
            "REGISTER".to_owned(),
            "ACCOUNT_EXISTS".to_owned(),
            "root".to_owned()
        ),
        "{fail:?}"
    );
    // With neither a nick nor a refused one, the nick is what is missing.
    let mut nameless = server.connect().await;
    nameless.send("CAP LS 302").await;
    nameless.send("REGISTER * * a-good-passphrase").await;
    let fail = nameless.expect_command("FAIL").await;
    assert_eq!(fail.param(1), "NEED_NICK", "{fail:?}");
}
