//! Parser and serialiser throughput (lines per second), the two costs on every
//! message the server relays. Run with `cargo bench -p palaver-proto`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use palaver_proto::{LineWriter, Message};

const LINES: &[&str] = &[
    "PRIVMSG #lobby :hello everyone, how is it going today?",
    "@time=2026-11-22T03:48:00.000Z;msgid=abc123;+draft/reply=xyz :alice!alice@127.0.0.1 PRIVMSG #lobby :a tagged reply",
    ":irc.example.com 353 bob = #lobby :@alice +bob carol dave erin frank",
    "PING :1700000000",
];

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(LINES.len() as u64));
    group.bench_function("mixed_lines", |b| {
        b.iter(|| {
            for line in LINES {
                let msg = Message::parse(black_box(line)).expect("bench lines parse");
                black_box(msg.params().len());
            }
        })
    });
    group.finish();
}

fn serialise(c: &mut Criterion) {
    let mut group = c.benchmark_group("serialise");
    group.throughput(Throughput::Elements(1));
    group.bench_function("privmsg_with_time_tag", |b| {
        b.iter(|| {
            let mut line = LineWriter::new();
            line.tag("time", Some(black_box("2026-11-22T03:48:00.000Z")))
                .source_parts(black_box("alice"), "alice", "127.0.0.1")
                .command("PRIVMSG")
                .param("#lobby")
                .trailing(black_box("hello everyone, how is it going today?"));
            black_box(line.finish())
        })
    });
    group.finish();
}

criterion_group!(benches, parse, serialise);
criterion_main!(benches);
