//! Any line that parses must survive serialising and parsing again.
//!
//! Bytes become a line by lossy UTF-8 decoding. When [`Message::parse`] accepts it,
//! [`write_message`] writes it out and the written line is parsed again; both parses
//! must give the same atoms (tags unescaped, source, command, parameters), unless the
//! writer had to cut the body at the 512-byte limit, or the command starts with `@` with
//! no tag or source written before it (see the comment in the target).

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use palaver_proto::writer::write_message;
use palaver_proto::{LineWriter, MAX_LINE_BODY, MAX_PARAMS, Message};

type Atoms<'a> = (
    Vec<(&'a str, Cow<'a, str>)>,
    Option<&'a str>,
    &'a str,
    Vec<&'a str>,
);

fn atoms<'a>(msg: &Message<'a>) -> Atoms<'a> {
    (
        msg.tags().collect(),
        msg.source(),
        msg.command(),
        msg.params().to_vec(),
    )
}

/// Length of the body (after the tag section) before the writer cuts it to the limit.
fn uncut_body_len(msg: &Message<'_>) -> usize {
    let mut line = LineWriter::new();
    if let Some(source) = msg.source() {
        line.source(source);
    }
    line.command(msg.command());
    for param in msg.params() {
        line.param(param);
    }
    // A last parameter that needs a `:` only gets it from `finish`.
    let pending_colon = msg
        .params()
        .last()
        .is_some_and(|last| !palaver_proto::writer::is_middle_param(last));
    line.as_bytes().len() + usize::from(pending_colon)
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let Ok(msg) = Message::parse(&line) else {
        return;
    };
    assert!(msg.params().len() <= MAX_PARAMS);
    let written = write_message(&msg);
    let text = std::str::from_utf8(&written).expect("the writer writes UTF-8");
    let text = text
        .strip_suffix("\r\n")
        .expect("the writer ends lines with CRLF");
    if uncut_body_len(&msg) + 2 > MAX_LINE_BODY {
        // The body was cut: the atoms may differ, but the line still has its limits.
        let body = match text.strip_prefix('@') {
            Some(tagged) => tagged.split_once(' ').map_or("", |(_, body)| body),
            None => text,
        };
        assert!(
            body.len() + 2 <= MAX_LINE_BODY,
            "body of {} bytes",
            body.len()
        );
        return;
    }
    if msg.tags().next().is_none() && msg.source().is_none() && msg.command().starts_with('@') {
        // Known limit, not checked: after an empty tag section (`@ @x CMD`) a command may
        // start with `@`; written without that section it would read as tags.
        return;
    }
    let again = Message::parse(text)
        .unwrap_or_else(|err| panic!("{line:?} was written as {text:?}, which fails: {err}"));
    assert_eq!(
        atoms(&msg),
        atoms(&again),
        "{line:?} was written as {text:?}"
    );
});
