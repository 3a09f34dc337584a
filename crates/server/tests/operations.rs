//! The operator's side, on the real binary: the configuration file (options,
//! precedence, errors with file and line, `--check-config`, the example file),
//! live reload (SIGHUP and REHASH, without dropping a client), and backup/restore.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use palaver_test_support::TestClient;

use crate::binary::{ServerProcess, assert_no_panic};
use crate::channels::ask;

/// The example configuration file shipped in the repository.
fn example_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/palaver.toml")
}

/// Runs `chat-server` with `args` to completion: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = ServerProcess::command_with_data()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run chat-server");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A registered client of `addr`, its welcome burst read.
async fn client(addr: SocketAddr, nick: &str) -> TestClient {
    let mut client = TestClient::connect(addr).await;
    client.register(nick).await;
    client
}

/// Waits for the server NOTICE starting with `*** ` + `prefix`; returns its text.
async fn server_notice(client: &mut TestClient, prefix: &str) -> String {
    let wanted = format!("*** {prefix}");
    client
        .expect(|line| line.command() == "NOTICE" && line.last().starts_with(&wanted))
        .await
        .last()
}

/// The MOTD lines (372) a client is sent for `MOTD`.
async fn motd(client: &mut TestClient) -> Vec<String> {
    ask(client, "MOTD")
        .await
        .into_iter()
        .filter(|line| line.contains(" 372 "))
        .map(|line| line.rsplit(" :- ").next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_example_file_is_valid_and_shows_every_option() {
    let example = example_file();
    let example = example.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = run(&["--check-config", example]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("# The configuration is valid."), "{stdout}");
    assert!(stdout.contains("port = 6667  # "), "{stdout}");
    assert!(
        stdout.contains("data-dir = \"/var/lib/palaver\"  # "),
        "{stdout}"
    );
    // Every option the report knows is documented in the example, so the example
    // cannot fall behind the command line.
    let text = std::fs::read_to_string(example_file()).expect("read the example");
    let keys = stdout
        .lines()
        .filter(|line| !line.starts_with("# The") && !line.starts_with("# Each"))
        .filter(|line| !line.starts_with("# [[oper]]"))
        .filter_map(|line| {
            let line = line.trim_start_matches("# ");
            line.split([' ', '=']).next().filter(|key| !key.is_empty())
        });
    for key in keys {
        assert!(
            text.contains(&format!("# {key} = ")) || text.contains(&format!("\n{key} = ")),
            "contrib/palaver.toml does not show '{key}'"
        );
    }
}

#[test]
fn a_bad_file_is_refused_with_every_problem_and_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "port = 6667\nip = \"127.0.0.1\"\nmax_clients = 10\nping-timeout = \"soon\"\nno-history = \"yes\"\nfsync = \"sometimes\"\n[web]\n",
    )
    .expect("write");
    let path = path.to_str().expect("utf-8 path");
    let (code, _, stderr) = run(&["--check-config", path]);
    assert_eq!(code, Some(1), "{stderr}");
    for expected in [
        format!("{path}:3: unknown option 'max_clients' (did you mean 'max-clients'?)"),
        format!("{path}:4: 'ping-timeout': invalid value 'soon'"),
        format!("{path}:5: 'no-history' is a switch"),
        format!("{path}:6: 'fsync': invalid value 'sometimes'"),
        format!("{path}:7: unknown section [web]"),
    ] {
        assert!(stderr.contains(&expected), "{expected:?} not in {stderr}");
    }
    // The server itself refuses to start on it, with the same words.
    let mut server = ServerProcess::spawn(&["--config", path]);
    let (status, stderr) = server.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{path}:3: unknown option")),
        "{stderr}"
    );
    assert_no_panic(&stderr);
}

#[tokio::test]
async fn the_file_sets_options_and_the_command_line_wins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let motd_path = dir.path().join("motd.txt");
    std::fs::write(&motd_path, "from the file's motd\n").expect("write");
    let path = dir.path().join("palaver.toml");
    std::fs::write(
        &path,
        format!(
            "ip = \"127.0.0.1\"\nport = 0\nnetwork-name = \"FileNet\"\nmax-channels = 3\nmotd-file = {motd_path:?}\n"
        ),
    )
    .expect("write");
    let path = path.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = run(&["--check-config", path, "--max-channels", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("network-name = \"FileNet\"  # {path}:3")),
        "{stdout}"
    );
    assert!(
        stdout.contains("max-channels = 2  # command line"),
        "{stdout}"
    );
    assert!(stdout.contains("ping-timeout = 60  # default"), "{stdout}");

    // No IP or port on the command line: the file's are used.
    let mut command = ServerProcess::command();
    command.args(["--config", path, "--max-channels", "2"]);
    let (mut server, addr) = ServerProcess::listening(ServerProcess::spawn_command(command));
    let mut alice = TestClient::connect(addr).await;
    alice.send("NICK alice").await;
    alice.send("USER alice 0 * :Alice").await;
    let mut isupport = String::new();
    loop {
        let line = alice.next_line().await.expect("the welcome goes on");
        match line.command() {
            "005" => isupport.push_str(&line.0),
            "376" => break,
            _ => {}
        }
    }
    assert!(isupport.contains("NETWORK=FileNet"), "{isupport}");
    assert!(isupport.contains("CHANLIMIT=#:2"), "{isupport}");
    assert_eq!(motd(&mut alice).await, ["from the file's motd"]);
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{stderr}");
}

#[tokio::test]
async fn sighup_and_rehash_reload_without_dropping_anyone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let motd_path = dir.path().join("motd.txt");
    std::fs::write(&motd_path, "first motd\n").expect("write");
    let hash = palaver_server::opers::hash_password("hunter2").expect("hash");
    let second = palaver_server::opers::hash_password("swordfish").expect("hash");
    let path = dir.path().join("palaver.toml");
    let write_config = |extra: &str| {
        std::fs::write(
            &path,
            format!(
                "motd-file = {motd_path:?}\nno-flood-limit = true\n{extra}\n[[oper]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n"
            ),
        )
        .expect("write config");
    };
    write_config("max-channels = 5");
    let config = path.to_str().expect("utf-8 path").to_owned();
    let (mut server, addr) = ServerProcess::start_listening(&["--config", &config]);
    let mut admin = client(addr, "admin").await;
    assert!(
        ask(&mut admin, "OPER admin hunter2").await[0].contains(" 381 "),
        "OPER"
    );
    let mut bob = client(addr, "bob").await;
    bob.send("JOIN #stay").await;
    bob.expect_command("366").await;
    // Not an operator: no REHASH.
    let refused = ask(&mut bob, "REHASH").await;
    assert!(
        refused.iter().any(|l| l.contains(" 481 bob ")),
        "{refused:#?}"
    );

    // SIGHUP: a new MOTD, a second operator and a lower limit, all at once.
    std::fs::write(&motd_path, "second motd\n").expect("write");
    write_config(&format!(
        "max-channels = 1\n[[oper]]\nname = \"backup\"\npassword_hash = \"{second}\""
    ));
    server.signal("HUP");
    let report = server_notice(&mut admin, "Configuration reloaded (SIGHUP)").await;
    assert!(
        report.contains("changed: motd, operators, limits"),
        "{report}"
    );
    // Registered clients are told the new limit.
    let told = bob
        .expect(|line| line.command() == "005" && line.0.contains("CHANLIMIT="))
        .await;
    assert!(
        told.0
            .ends_with(" 005 bob CHANLIMIT=#:1 :are supported by this server"),
        "{}",
        told.0
    );
    assert_eq!(motd(&mut bob).await, ["second motd"]);
    // The new limit applies to commands at once: bob is in one channel already.
    let refused = ask(&mut bob, "JOIN #second").await;
    assert!(refused[0].contains(" 405 "), "{refused:#?}");
    let mut carol = client(addr, "carol").await;
    assert!(ask(&mut carol, "OPER backup swordfish").await[0].contains(" 381 "));

    // A broken file: REHASH says why, and the running configuration stays.
    std::fs::write(&path, "max-channels = \"many\"\n").expect("write");
    admin.send("REHASH").await;
    let started = admin.expect_command("382").await;
    assert!(
        started
            .0
            .ends_with(&format!(" 382 admin {config} :Rehashing")),
        "{}",
        started.0
    );
    let failed = server_notice(&mut admin, "Reload (admin) failed").await;
    assert!(
        failed.contains(&format!("{config}:1: 'max-channels': invalid value 'many'")),
        "{failed}"
    );
    assert!(
        failed.contains("the current configuration is kept"),
        "{failed}"
    );
    // Every operator hears it, not only the one who asked.
    server_notice(&mut carol, "Reload (admin) failed").await;
    assert_eq!(motd(&mut bob).await, ["second motd"]);
    server.expect_stderr("configuration not reloaded");

    // Fixed again, REHASH applies it; nobody was disconnected along the way.
    write_config("max-channels = 5");
    admin.send("REHASH").await;
    let report = server_notice(&mut admin, "Configuration reloaded (admin)").await;
    assert!(report.contains("limits"), "{report}");
    bob.send("JOIN #second").await;
    bob.expect_command("366").await;
    for client in [&mut admin, &mut bob, &mut carol] {
        client.send("PING still-here").await;
        client
            .expect(|line| line.command() == "PONG" && line.last() == "still-here")
            .await;
    }
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{stderr}");
    assert_no_panic(&stderr);
}

#[tokio::test]
async fn a_reload_names_what_needs_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("palaver.toml");
    std::fs::write(&path, "server-name = \"one.example\"\n").expect("write");
    let config = path.to_str().expect("utf-8 path").to_owned();
    let (mut server, addr) =
        ServerProcess::start_listening(&["--config", &config, "--oper", "admin:pw"]);
    let mut admin = client(addr, "admin").await;
    ask(&mut admin, "OPER admin pw").await;
    std::fs::write(&path, "server-name = \"two.example\"\nfsync = \"always\"\n").expect("write");
    admin.send("REHASH").await;
    let report = server_notice(&mut admin, "Configuration reloaded (admin)").await;
    assert!(
        report.contains("changed but needing a restart: server-name, fsync"),
        "{report}"
    );
    // The name stays what clients were told.
    let pong = ask(&mut admin, "PING x").await;
    assert!(pong[0].starts_with(":one.example "), "{pong:#?}");
    server.signal("TERM");
    server.wait_exit();
}

/// `store` in the file: `--check-config` shows it without its password, and a
/// reload that changes it says it needs a restart (the running store stays), never
/// printing the password either.
#[tokio::test]
async fn a_store_in_the_file_hides_its_password_and_needs_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("palaver.toml");
    let config = path.to_str().expect("utf-8 path").to_owned();
    let url = "postgres://palaver:hunter2-in-file@db.example:5433/palaver";
    std::fs::write(
        &path,
        format!("ip = \"127.0.0.1\"\nport = 6667\nstore = \"{url}\"\n"),
    )
    .expect("write");
    let (code, stdout, stderr) = run(&["--check-config", &config]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("store = \"postgres://palaver@db.example:5433/palaver\"  # "),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");

    std::fs::write(&path, "server-name = \"one.example\"\n").expect("write");
    let data = dir.path().join("data");
    let mut command = ServerProcess::command_with_data();
    command
        .args(["127.0.0.1", "0", "--config", &config, "--oper", "admin:pw"])
        .arg("--data-dir")
        .arg(&data);
    let (mut server, addr) = ServerProcess::listening(ServerProcess::spawn_command(command));
    let mut admin = client(addr, "admin").await;
    ask(&mut admin, "OPER admin pw").await;
    std::fs::write(
        &path,
        format!("server-name = \"one.example\"\nstore = \"{url}\"\n"),
    )
    .expect("write");
    admin.send("REHASH").await;
    let report = server_notice(&mut admin, "Configuration reloaded (admin)").await;
    assert!(
        report.contains("changed but needing a restart: store"),
        "{report}"
    );
    assert!(!report.contains("hunter2"), "{report}");
    // Still on SQLite: the server works on.
    let pong = ask(&mut admin, "PING x").await;
    assert!(pong[0].contains("PONG"), "{pong:#?}");
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test]
async fn a_reload_opens_and_closes_extra_listeners() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("palaver.toml");
    std::fs::write(&path, "no-flood-limit = true\n").expect("write");
    let config = path.to_str().expect("utf-8 path").to_owned();
    let (mut server, addr) =
        ServerProcess::start_listening(&["--config", &config, "--oper", "admin:pw"]);
    let mut admin = client(addr, "admin").await;
    ask(&mut admin, "OPER admin pw").await;

    std::fs::write(
        &path,
        "no-flood-limit = true\nlisten = [\"127.0.0.1:0/plain\"]\n",
    )
    .expect("write");
    admin.send("REHASH").await;
    let report = server_notice(&mut admin, "Configuration reloaded (admin)").await;
    let extra: SocketAddr = report
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no new listener in {report}"));
    assert!(
        report.contains(&format!("listening on {extra} (Plain)")),
        "{report}"
    );
    let mut bob = client(extra, "bob").await;

    // Gone from the file: the port closes, the client it accepted stays.
    std::fs::write(&path, "no-flood-limit = true\n").expect("write");
    admin.send("REHASH").await;
    let report = server_notice(&mut admin, "Configuration reloaded (admin)").await;
    assert!(
        report.contains(&format!("stopped listening on {extra}")),
        "{report}"
    );
    assert!(
        tokio::net::TcpStream::connect(extra).await.is_err(),
        "{extra} still accepts connections"
    );
    bob.send("PING still-here").await;
    bob.expect(|line| line.command() == "PONG" && line.last() == "still-here")
        .await;
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{stderr}");
}

#[tokio::test]
async fn a_backup_taken_while_running_restores_accounts_and_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path").to_owned();
    let start = |data: &str| {
        let mut command = ServerProcess::command_with_data();
        command.args(["127.0.0.1", "0", "--no-flood-limit", "--data-dir", data]);
        ServerProcess::listening(ServerProcess::spawn_command(command))
    };
    let (mut server, addr) = start(&data_arg);
    let mut alice = client(addr, "alice").await;
    let registered = ask(&mut alice, "REGISTER * * correct-horse").await;
    assert!(
        registered
            .iter()
            .any(|l| l.contains("REGISTER SUCCESS alice")),
        "{registered:#?}"
    );
    alice.send("JOIN #kept").await;
    alice.expect_command("366").await;
    for i in 0..20 {
        alice.send(&format!("PRIVMSG #kept :message {i}")).await;
    }
    // The messages are committed once the server answers a later command.
    ask(&mut alice, "PING sync").await;

    let backup = dir.path().join("palaver-backup.db");
    let backup_arg = backup.to_str().expect("utf-8 path").to_owned();
    let (code, stdout, stderr) = run(&["backup", "--data-dir", &data_arg, &backup_arg]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("backed up"), "{stdout}");
    // A restore into the directory of a running server is refused.
    let (code, _, stderr) = run(&["restore", "--data-dir", &data_arg, &backup_arg]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("locked by another process"), "{stderr}");
    server.signal("TERM");
    server.wait_exit();

    // Restored into a new data directory, the account and the history are there.
    let restored = dir.path().join("restored");
    let restored_arg = restored.to_str().expect("utf-8 path").to_owned();
    let (code, stdout, stderr) = run(&["restore", "--data-dir", &restored_arg, &backup_arg]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");
    let (mut server, addr) = start(&restored_arg);
    let mut again = TestClient::connect(addr).await;
    again
        .send("CAP REQ :batch server-time draft/chathistory")
        .await;
    again.expect_command("CAP").await;
    again.send("NICK reader").await;
    again.send("USER reader 0 * :Reader").await;
    again.send("CAP END").await;
    again.expect_command("376").await;
    again.send("JOIN #kept").await;
    again.expect_command("366").await;
    // The account is there: its name cannot be registered again.
    again.send("NICK alice").await;
    let taken = ask(&mut again, "REGISTER alice * another-password").await;
    assert!(
        taken.iter().any(|l| l.contains("ACCOUNT_EXISTS")),
        "{taken:#?}"
    );
    let history = ask(&mut again, "CHATHISTORY LATEST #kept * 100").await;
    let texts: Vec<&str> = history
        .iter()
        .filter(|line| line.contains(" PRIVMSG #kept :"))
        .filter_map(|line| line.rsplit(" :").next())
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("message {i}")).collect();
    assert_eq!(texts, expected);
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{stderr}");
    assert_no_panic(&stderr);
}

#[test]
fn backup_refuses_to_overwrite_and_restore_refuses_a_stranger() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stranger = dir.path().join("notes.txt");
    std::fs::write(&stranger, "not a database at all, just some words").expect("write");
    let data = dir.path().join("data");
    let (code, _, stderr) = run(&[
        "restore",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
        stranger.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not a palaver database"), "{stderr}");
    let (code, _, stderr) = run(&[
        "backup",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
        stranger.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&stranger).expect("read"),
        "not a database at all, just some words"
    );
}
