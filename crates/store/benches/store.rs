//! The store's issue-10 numbers: appends per second through the group-commit writer,
//! CHATHISTORY LATEST 100 latency on a large table, bytes per stored 64-byte
//! PRIVMSG, and the open time of a large database.
//!
//! Run with `cargo bench -p palaver-store --bench store`. The large database is
//! built once (through the writer) under `target/tmp/` and reused by later runs;
//! `PALAVER_STORE_BENCH_ROWS` sets its size (default 1,000,000 rows over 1,000
//! channels; 10,000,000 takes a few minutes and ~1.5 GB).
//!
//! With `PALAVER_BENCH_POSTGRES` set to a PostgreSQL server's URL (e.g.
//! `postgres://palaver@127.0.0.1:5432/postgres`), `append/group_commit_postgres`
//! measures the same appends through `PgStore`, in a fresh database it creates.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use palaver_store::{
    AppendError, DATABASE_FILE, HistoryMessage, MessageKind, PgStore, SqliteOptions, SqliteStore,
    Store, SyncMode, TargetKey, Timestamp,
};

/// Channels the large table's rows are spread over.
const TARGETS: u64 = 1_000;

fn rows() -> u64 {
    std::env::var("PALAVER_STORE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn target(n: u64) -> TargetKey {
    TargetKey::channel(&format!("#channel-{}", n % TARGETS))
}

/// A realistic stored PRIVMSG: a server-style msgid, a typical `nick!user@host`, an
/// account, and exactly 64 bytes of text.
fn message(n: u64, targets: &[TargetKey]) -> HistoryMessage {
    let user = n % 5_000;
    let mut text = format!("message {n} ");
    text.extend(std::iter::repeat_n('x', 64 - text.len()));
    HistoryMessage {
        msgid: format!("19ae3c4f21b-{n:x}"),
        time: Timestamp(1_764_000_000_000 + n as i64 / 10),
        target: targets[(n % TARGETS) as usize].clone(),
        sender: format!("user{user}!~user{user}@host-{user}.example.net"),
        account: Some(format!("user{user}")),
        kind: MessageKind::Privmsg,
        tags: String::new(),
        text,
    }
}

/// Appends messages `range` as fast as the writer takes them (waiting for a commit
/// whenever the queue is full) and waits for the last commit.
fn append_range(
    rt: &tokio::runtime::Runtime,
    store: &SqliteStore,
    range: std::ops::Range<u64>,
    targets: &[TargetKey],
) {
    append_all(rt, store, range.map(|n| message(n, targets)));
}

/// Appends `messages` (see [`append_range`]).
fn append_all(
    rt: &tokio::runtime::Runtime,
    store: &dyn Store,
    messages: impl Iterator<Item = HistoryMessage>,
) {
    let mut watch = store.watch_committed();
    for mut m in messages {
        loop {
            match store.append(m) {
                Ok(_) => break,
                Err(rejected) if rejected.reason == AppendError::Full => {
                    m = rejected.message;
                    rt.block_on(watch.changed()).expect("writer alive");
                }
                Err(rejected) => panic!("{rejected}"),
            }
        }
    }
    rt.block_on(store.flush()).expect("flush");
}

fn targets() -> Vec<TargetKey> {
    (0..TARGETS).map(target).collect()
}

fn bench_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn appends(c: &mut Criterion) {
    let rt = runtime();
    let targets = targets();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for (name, sync) in [("normal", SyncMode::Normal), ("fsync_full", SyncMode::Full)] {
        let dir = bench_dir(&format!("store-bench-append-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        let options = SqliteOptions {
            sync,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open_with(&dir, options).expect("open");
        let mut next = 0u64;
        group.bench_function(format!("group_commit_{name}"), |b| {
            // The messages are built before the clock starts: the server has its
            // strings already, and formatting them here would measure this bench.
            b.iter_custom(|iters| {
                let batch: Vec<_> = (next..next + iters).map(|n| message(n, &targets)).collect();
                next += iters;
                let start = Instant::now();
                append_all(&rt, &store, batch.into_iter());
                start.elapsed()
            })
        });
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Some(store) = postgres_store(&rt) {
        let mut next = 0u64;
        group.bench_function("group_commit_postgres", |b| {
            b.iter_custom(|iters| {
                let batch: Vec<_> = (next..next + iters).map(|n| message(n, &targets)).collect();
                next += iters;
                let start = Instant::now();
                append_all(&rt, &store, batch.into_iter());
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// One message at a time: append, then wait for its commit. What a lone message's
/// deliveries wait for on a quiet server (group commit has nothing to share).
fn commit_latency(c: &mut Criterion) {
    let rt = runtime();
    let targets = targets();
    let mut group = c.benchmark_group("commit_latency");
    group.sample_size(20);
    let dir = bench_dir("store-bench-latency");
    let _ = std::fs::remove_dir_all(&dir);
    let sqlite = SqliteStore::open(&dir).expect("open");
    let mut stores: Vec<(&str, Box<dyn Store>)> = vec![("sqlite_normal", Box::new(sqlite))];
    if let Some(pg) = postgres_store(&rt) {
        stores.push(("postgres", Box::new(pg)));
    }
    for (name, store) in &stores {
        let mut next = 0u64;
        group.bench_function(*name, |b| {
            b.iter(|| {
                next += 1;
                store.append(message(next, &targets)).expect("append");
                rt.block_on(store.flush()).expect("flush")
            })
        });
    }
    drop(stores);
    let _ = std::fs::remove_dir_all(&dir);
    group.finish();
}

/// A `PgStore` on a fresh database of the server at `PALAVER_BENCH_POSTGRES`, if set.
fn postgres_store(rt: &tokio::runtime::Runtime) -> Option<PgStore> {
    let admin = std::env::var("PALAVER_BENCH_POSTGRES").ok()?;
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let db = format!("palaver_bench_{}_{n}", std::process::id());
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("connect to PALAVER_BENCH_POSTGRES");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .expect("create the bench database");
        drop(client);
        let _ = driver.await;
    });
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    Some(PgStore::connect(&format!("{base}/{db}")).expect("connect the store"))
}

/// The large database: built on first use, reused afterwards.
fn large_database() -> PathBuf {
    let rows = rows();
    let dir = bench_dir(&format!("store-bench-{rows}"));
    let done = dir.join("complete");
    if done.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let rt = runtime();
    let targets = targets();
    let start = Instant::now();
    let store = SqliteStore::open(&dir).expect("open");
    append_range(&rt, &store, 0..rows, &targets);
    drop(store);
    let size = std::fs::metadata(dir.join(DATABASE_FILE))
        .expect("db")
        .len();
    eprintln!(
        "built {rows} rows in {:.1} s ({:.0} rows/s); database {size} bytes = {:.1} bytes per message",
        start.elapsed().as_secs_f64(),
        rows as f64 / start.elapsed().as_secs_f64(),
        size as f64 / rows as f64
    );
    std::fs::write(&done, format!("{size}\n")).expect("marker");
    dir
}

fn latest(c: &mut Criterion) {
    let dir = large_database();
    let rows = rows();
    let size = std::fs::metadata(dir.join(DATABASE_FILE))
        .expect("db")
        .len();
    eprintln!(
        "large database: {rows} rows, {size} bytes, {:.1} bytes per stored 64-byte PRIVMSG",
        size as f64 / rows as f64
    );
    let rt = runtime();
    let store = SqliteStore::open(&dir).expect("open");
    let targets = targets();

    // Percentiles from a plain loop (criterion reports means and medians).
    let mut samples: Vec<Duration> = (0..20_000u64)
        .map(|i| {
            let t = &targets[(i * 7919 % TARGETS) as usize];
            let start = Instant::now();
            let got = rt.block_on(store.latest(t, None, 100)).expect("latest");
            let took = start.elapsed();
            assert_eq!(got.len(), 100.min((rows / TARGETS) as usize));
            took
        })
        .collect();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    eprintln!(
        "LATEST 100 over {rows} rows ({} samples): p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        samples.len(),
        pct(0.50),
        pct(0.99),
        pct(0.999),
        samples[samples.len() - 1]
    );

    let mut group = c.benchmark_group("query");
    let mut i = 0u64;
    group.bench_function(format!("latest_100_of_{rows}_rows"), |b| {
        b.iter(|| {
            i += 1;
            let t = &targets[(i * 7919 % TARGETS) as usize];
            black_box(rt.block_on(store.latest(t, None, 100)).expect("latest"))
        })
    });
    group.finish();
}

fn open(c: &mut Criterion) {
    let dir = large_database();
    let rows = rows();
    let mut group = c.benchmark_group("open");
    group.sample_size(20);
    group.bench_function(format!("open_and_close_{rows}_rows"), |b| {
        b.iter(|| {
            let store = SqliteStore::open(&dir).expect("open");
            black_box(store.committed());
        })
    });
    group.finish();
}

criterion_group!(benches, appends, commit_latency, latest, open);
criterion_main!(benches);
