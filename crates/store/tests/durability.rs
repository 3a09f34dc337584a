//! The durability promise under `kill -9`: a child process appends through the
//! writer and prints each message only once the watermark covers it (exactly what
//! the server will do before delivering); the parent kills it with SIGKILL in
//! mid-stream, reopens the database and finds every printed message, once, with the
//! same msgid and time.
//!
//! The child is this test binary re-executed with an environment variable set (no
//! extra binary to build); without the variable, `durability_child` does nothing.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use palaver_store::{HistoryMessage, MessageKind, SqliteStore, Store, TargetKey, Timestamp};

const CHILD_ENV: &str = "PALAVER_STORE_DURABILITY_CHILD";
/// Confirmed messages to see before killing the child.
const KILL_AFTER: usize = 20_000;

#[test]
fn durability_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = SqliteStore::open(std::path::Path::new(&dir)).expect("open");
    let targets: Vec<_> = (0..8)
        .map(|i| TargetKey::channel(&format!("#d{i}")))
        .collect();
    let mut watch = store.watch_committed();
    let mut pending: VecDeque<(u64, String, i64)> = VecDeque::new();
    let stdout = std::io::stdout();
    let mut n: u64 = 0;
    loop {
        // A burst of varying size, then print what is committed so far.
        for _ in 0..(1 + n % 257) {
            let time = Timestamp::now();
            let message = HistoryMessage {
                msgid: format!("d-{n:x}"),
                time,
                target: targets[(n % 8) as usize].clone(),
                sender: "bot!b@example.org".into(),
                account: None,
                kind: MessageKind::Privmsg,
                tags: String::new(),
                text: format!("durable message number {n} with some padding text"),
            };
            match store.append(message) {
                Ok(seq) => {
                    pending.push_back((seq, format!("d-{n:x}"), time.0));
                    n += 1;
                }
                Err(_) => break, // full: wait for a commit below
            }
        }
        runtime.block_on(watch.changed()).expect("writer alive");
        let committed = *watch.borrow_and_update();
        let mut out = stdout.lock();
        while let Some((seq, msgid, time)) = pending.front() {
            if *seq > committed {
                break;
            }
            writeln!(out, "CONFIRMED {msgid} {time}").expect("stdout");
            pending.pop_front();
        }
        out.flush().expect("flush");
    }
}

#[test]
fn sigkill_loses_no_confirmed_message() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "durability::durability_child", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped");
    let mut confirmed: Vec<(String, i64)> = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        let Some(rest) = line.strip_prefix("CONFIRMED ") else {
            continue;
        };
        let (msgid, time) = rest.split_once(' ').expect("msgid time");
        confirmed.push((msgid.to_owned(), time.parse().expect("time")));
        if !killed && confirmed.len() >= KILL_AFTER {
            // SIGKILL, mid-stream: the child is appending and committing flat out.
            // Lines already in the pipe are read on to EOF: they were confirmed too.
            child.kill().expect("kill");
            killed = true;
        }
    }
    let status = child.wait().expect("wait");
    assert!(killed, "the child stopped by itself: {status:?}");
    assert!(!status.success());

    let store = SqliteStore::open(dir.path()).expect("reopen after kill");
    drop(store);
    let raw =
        rusqlite::Connection::open(dir.path().join(palaver_store::DATABASE_FILE)).expect("open");
    let mut stored: HashMap<String, (i64, u32)> = HashMap::new();
    let mut stmt = raw
        .prepare("SELECT msgid, time FROM message")
        .expect("query");
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .expect("rows");
    for row in rows {
        let (msgid, time) = row.expect("row");
        let entry = stored.entry(msgid).or_insert((time, 0));
        entry.1 += 1;
    }
    for (msgid, time) in &confirmed {
        match stored.get(msgid) {
            Some(&(t, 1)) => assert_eq!(t, *time, "time of {msgid}"),
            Some(&(_, n)) => panic!("{msgid} stored {n} times"),
            None => panic!(
                "{msgid} was confirmed but is missing ({} confirmed, {} stored)",
                confirmed.len(),
                stored.len()
            ),
        }
    }
    // And through the store's own API, for one of them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = SqliteStore::open(dir.path()).expect("reopen");
    let (last_id, last_time) = confirmed.last().expect("some");
    let n = u64::from_str_radix(last_id.trim_start_matches("d-"), 16).expect("n");
    let target = TargetKey::channel(&format!("#d{}", n % 8));
    let got = runtime
        .block_on(store.around(
            &target,
            palaver_store::HistoryRef::MsgId(last_id.clone()),
            1,
        ))
        .expect("around");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].time, Timestamp(*last_time));
    eprintln!(
        "durability: {} confirmed before SIGKILL, {} stored (unconfirmed extras are allowed)",
        confirmed.len(),
        stored.len()
    );
}
