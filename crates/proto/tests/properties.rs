//! Properties of the wire format, checked with proptest on generated inputs.
//!
//! - Serialising a valid message and parsing the line gives back the same atoms.
//! - The framer never panics, stays bounded, and frames a stream the same way however
//!   it is cut into reads.
//! - The parser never panics and its output keeps its structural promises.
//! - [`LineWriter::finish`] always yields one UTF-8 line with CRLF within the body limit.
//! - Tag-value escaping round-trips.

use std::borrow::Cow;

use bytes::BytesMut;
use palaver_proto::framing::{self, Frame, LineFramer, MAX_FRAME_LEN};
use palaver_proto::message::unescape_tag_value;
use palaver_proto::writer::{self, escape_tag_value_into, is_middle_param};
use palaver_proto::{LineWriter, MAX_LINE_BODY, MAX_PARAMS, Message};
use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------
// (a) write then parse

/// The parts of a message as plain values, so generated and parsed messages compare.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parts {
    /// Unescaped, in order, duplicates kept.
    tags: Vec<(String, String)>,
    source: Option<String>,
    command: String,
    params: Vec<String>,
}

impl Parts {
    fn of(msg: &Message<'_>) -> Self {
        Self {
            tags: msg
                .tags()
                .map(|(k, v)| (k.to_owned(), v.into_owned()))
                .collect(),
            source: msg.source().map(str::to_owned),
            command: msg.command().to_owned(),
            params: msg.params().iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// The escaped tag section, or `None` without tags.
    fn raw_tags(&self) -> Option<String> {
        if self.tags.is_empty() {
            return None;
        }
        let mut buf = BytesMut::new();
        for (i, (key, value)) in self.tags.iter().enumerate() {
            if i > 0 {
                buf.extend_from_slice(b";");
            }
            buf.extend_from_slice(key.as_bytes());
            buf.extend_from_slice(b"=");
            escape_tag_value_into(value, &mut buf);
        }
        Some(String::from_utf8(buf.to_vec()).expect("escaping keeps UTF-8"))
    }
}

fn tag_key() -> impl Strategy<Value = String> {
    "[a-z+/.-]{1,10}"
}

/// Printable values, with the characters that need escaping well represented.
fn tag_value() -> impl Strategy<Value = String> {
    "[ -~é€🦀; \\\\]{0,20}"
}

/// Anything but the bytes that end a word or a line.
fn source() -> impl Strategy<Value = String> {
    "[^ \r\n\x00]{1,20}"
}

fn command() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z]{1,10}", "[0-9]{3}"]
}

fn middle_param() -> impl Strategy<Value = String> {
    "[^ :\r\n\x00][^ \r\n\x00]{0,7}"
}

fn last_param() -> impl Strategy<Value = String> {
    "[^\r\n\x00]{0,30}"
}

fn message_parts() -> impl Strategy<Value = Parts> {
    (
        vec((tag_key(), tag_value()), 0..5),
        proptest::option::of(source()),
        command(),
        vec(middle_param(), 0..MAX_PARAMS),
        proptest::option::of(last_param()),
    )
        .prop_map(|(tags, source, command, middle, last)| Parts {
            tags,
            source,
            command,
            params: middle.into_iter().chain(last).collect(),
        })
}

/// The body (everything after the tag section) as the writer would write it uncut.
fn uncut_body_len(parts: &Parts) -> usize {
    let mut line = LineWriter::new();
    if let Some(source) = &parts.source {
        line.source(source);
    }
    line.command(&parts.command);
    for param in &parts.params {
        line.param(param);
    }
    line.as_bytes().len()
}

/// The tag section of a finished line, `@` and space included, and the rest.
fn split_tag_section(line: &[u8]) -> (&[u8], &[u8]) {
    if line.first() == Some(&b'@') {
        let space = line
            .iter()
            .position(|&b| b == b' ')
            .map_or(line.len(), |i| i + 1);
        line.split_at(space)
    } else {
        (&line[..0], line)
    }
}

proptest! {
    #[test]
    fn written_messages_parse_back_to_the_same_atoms(parts in message_parts()) {
        let raw_tags = parts.raw_tags();
        let params: Vec<&str> = parts.params.iter().map(String::as_str).collect();
        let msg = Message::from_parts(
            raw_tags.as_deref(),
            parts.source.as_deref(),
            &parts.command,
            &params,
        );
        prop_assert_eq!(&Parts::of(&msg), &parts);
        let line = writer::write_message(&msg);
        let text = std::str::from_utf8(&line).expect("the writer writes UTF-8");
        let text = text.strip_suffix("\r\n").expect("the writer ends lines with CRLF");
        prop_assert!(!text.contains(['\r', '\n']));
        let (_, body) = split_tag_section(text.as_bytes());
        prop_assert!(body.len() + 2 <= MAX_LINE_BODY);
        if uncut_body_len(&parts) + 2 <= MAX_LINE_BODY {
            // Nothing was cut: the line must say exactly what the parts said.
            prop_assert!(framing::fits_limits(text.as_bytes()));
            let parsed = Message::parse(text).expect("a written line parses");
            prop_assert_eq!(Parts::of(&parsed), parts);
        }
    }
}

// ---------------------------------------------------------------------------------
// (b) framing

/// A byte stream with the shapes that matter to the framer: noise, terminators, long
/// runs without one, and lines right at the body and tag limits.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => vec(any::<u8>(), 0..64),
        2 => prop::sample::select(vec![&b"\r\n"[..], b"\n", b"\r", b"\r\r\n\n"])
            .prop_map(<[u8]>::to_vec),
        2 => "[A-Z]{1,8}( [a-z#]{1,10}){0,5}( :[ -~]{0,40})?".prop_map(String::into_bytes),
        1 => (500usize..520).prop_map(|n| vec![b'x'; n]),
        1 => (0usize..20_000, prop::sample::select(vec![b'a', b' ', b'@']))
            .prop_map(|(n, byte)| vec![byte; n]),
        1 => (8180usize..8200, 490usize..520)
            .prop_map(|(t, b)| format!("@{} {}", "t".repeat(t), "b".repeat(b)).into_bytes()),
    ];
    vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// The IRC length limits, written out again independently of [`framing::fits_limits`]:
/// at most 510 body bytes, and a tag section (`@` to space) of at most 8191 bytes.
fn within_limits(line: &[u8]) -> bool {
    match line.strip_prefix(b"@") {
        Some(tagged) => match tagged.iter().position(|&b| b == b' ') {
            Some(space) => space + 2 <= 8191 && tagged.len() - space - 1 <= 510,
            None => tagged.len() + 1 < 8191,
        },
        None => line.len() <= 510,
    }
}

/// What the framer must yield for a whole stream: every terminated non-empty line,
/// judged by [`within_limits`]. Cutting the stream into reads changes nothing.
fn expected_frames(input: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut rest = input;
    while let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.is_empty() {
            continue;
        }
        frames.push(if within_limits(line) {
            Frame::Line(BytesMut::from(line))
        } else {
            Frame::TooLong
        });
    }
    frames
}

/// Feeds `input` to a framer in reads of the given sizes (cycled), checking the
/// invariants after every call, and returns the frames.
fn frame_in_reads(input: &[u8], reads: &[usize]) -> Result<Vec<Frame>, TestCaseError> {
    let mut framer = LineFramer::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = input;
    let mut sizes = reads.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().expect("reads is not empty")).min(rest.len());
        let (read, tail) = rest.split_at(size);
        rest = tail;
        prop_assert!(
            buf.len() <= MAX_FRAME_LEN,
            "{} bytes held between reads",
            buf.len()
        );
        buf.extend_from_slice(read);
        prop_assert!(buf.len() <= MAX_FRAME_LEN + size);
        while let Some(frame) = framer.next_frame(&mut buf) {
            if let Frame::Line(line) = &frame {
                prop_assert!(!line.is_empty());
                prop_assert!(!line.contains(&b'\r') && !line.contains(&b'\n'));
                prop_assert!(framing::fits_limits(line));
            }
            frames.push(frame);
        }
        prop_assert!(buf.len() <= MAX_FRAME_LEN + size);
    }
    Ok(frames)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn framing_is_bounded_and_independent_of_reads(
        input in stream(),
        reads in vec(256usize..10_000, 1..20),
    ) {
        let frames = frame_in_reads(&input, &reads)?;
        prop_assert_eq!(frames, expected_frames(&input));
    }

    #[test]
    fn an_unterminated_line_is_never_held_beyond_the_limit(
        len in MAX_FRAME_LEN - 40..MAX_FRAME_LEN + 40,
        reads in vec(1usize..24, 1..8),
    ) {
        let mut input = vec![b'a'; len];
        input.extend_from_slice(b"\r\nPING x\r\n");
        // One large read up to near the limit, then small ones across it.
        let mut sizes = vec![MAX_FRAME_LEN - 100];
        while sizes[1..].iter().sum::<usize>() < 200 {
            sizes.extend_from_slice(&reads);
        }
        let frames = frame_in_reads(&input, &sizes)?;
        prop_assert_eq!(frames, vec![Frame::TooLong, Frame::Line(BytesMut::from("PING x"))]);
    }

    #[test]
    fn framing_arbitrary_bytes_in_small_reads(
        input in vec(any::<u8>(), 0..2_000),
        reads in vec(1usize..64, 1..8),
    ) {
        let frames = frame_in_reads(&input, &reads)?;
        prop_assert_eq!(frames, expected_frames(&input));
    }
}

// ---------------------------------------------------------------------------------
// (c) parsing anything

/// Checks what a parse result promises, whatever the line.
fn check_parsed(line: &str) -> Result<(), TestCaseError> {
    let Ok(msg) = Message::parse(line) else {
        return Ok(());
    };
    prop_assert!(!msg.command().is_empty());
    prop_assert!(!msg.command().contains(' '));
    prop_assert!(msg.source().is_none_or(|s| !s.contains(' ')));
    prop_assert!(msg.raw_tags().is_none_or(|t| !t.contains(' ')));
    let params = msg.params();
    prop_assert!(params.len() <= MAX_PARAMS);
    // Every parameter but a last one is a proper middle parameter.
    if let Some((_, middle)) = params.split_last() {
        for param in middle {
            prop_assert!(is_middle_param(param), "middle param {:?}", param);
        }
    }
    for (key, _value) in msg.tags() {
        prop_assert!(!key.contains(';') && !key.contains('='));
        prop_assert!(msg.tag(key).is_some());
    }
    Ok(())
}

proptest! {
    #[test]
    fn parsing_any_string_never_panics(line in any::<String>()) {
        check_parsed(&line)?;
    }

    #[test]
    fn parsing_irc_shaped_strings_never_panics(line in "[@: a=;\\\\\r\n]{0,60}") {
        check_parsed(&line)?;
    }

    #[test]
    fn parsing_many_params_never_panics(
        words in vec(prop_oneof![4 => "[a-z]{1,3}", 1 => "[a: ]{0,3}"], 0..40),
    ) {
        check_parsed(&format!("CMD {}", words.join(" ")))?;
    }
}

/// Whether the parts of a parsed message can be written back as they are. Two limits of
/// the wire format: a body over the limit is cut, and after an empty tag section
/// (`@ @x CMD`) a command may start with `@`, which without that section reads as tags.
fn writable(msg: &Message<'_>) -> bool {
    let parts = Parts::of(msg);
    uncut_body_len(&parts) + 2 <= MAX_LINE_BODY
        && !(parts.tags.is_empty() && parts.source.is_none() && parts.command.starts_with('@'))
}

/// Parses `line`, writes the message and parses the written line: same parts.
fn check_rewritten(line: &str) -> Result<(), TestCaseError> {
    let Ok(msg) = Message::parse(line) else {
        return Ok(());
    };
    if !writable(&msg) {
        return Ok(());
    }
    let written = writer::write_message(&msg);
    let text = std::str::from_utf8(&written).expect("the writer writes UTF-8");
    let text = text
        .strip_suffix("\r\n")
        .expect("the writer ends lines with CRLF");
    let again = Message::parse(text);
    prop_assert!(again.is_ok(), "{:?} written as {:?} fails", line, text);
    if let Ok(again) = again {
        prop_assert_eq!(
            Parts::of(&again),
            Parts::of(&msg),
            "{:?} written as {:?}",
            line,
            text
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn parsed_lines_survive_writing(line in "[@: a=;\\\\\r\n]{0,60}") {
        check_rewritten(&line)?;
    }
}

/// Found by fuzzing `parse_roundtrip`: an item without a key (`=x`) is no tag. It used
/// to be reported as a tag named "", which the writer then wrote as a bare `@`.
#[test]
fn tags_without_a_name_are_skipped() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("@= CMD", &[]),
        ("@=x;a=1 CMD", &[("a", "1")]),
        ("@;;a=1;=;b CMD", &[("a", "1"), ("b", "")]),
    ];
    for (line, tags) in cases {
        let msg = Message::parse(line).expect("parses");
        let parsed: Vec<(&str, String)> = msg.tags().map(|(k, v)| (k, v.into_owned())).collect();
        let expected: Vec<(&str, String)> =
            tags.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        assert_eq!(parsed, expected, "{line:?}");
        assert_eq!(msg.tag(""), None, "{line:?}");
        check_rewritten(line).unwrap_or_else(|err| panic!("{err}"));
    }
}

// ---------------------------------------------------------------------------------
// (d) LineWriter::finish

/// What to ask of a writer: tags, a source (whole or in parts), a command, middle
/// parameters and a last one (through `param` or `trailing`). Strings are arbitrary,
/// CR and LF included, and long enough to need cutting.
#[derive(Debug, Clone)]
struct WriterInput {
    tags: Vec<(String, Option<String>)>,
    source: Option<(String, Option<(String, String)>)>,
    command: String,
    middle: Vec<String>,
    last: Option<(String, bool)>,
}

fn writer_input() -> impl Strategy<Value = WriterInput> {
    (
        vec((tag_key(), proptest::option::of("(?s:.{0,30})")), 0..4),
        proptest::option::of((
            "(?s:.{0,40})",
            proptest::option::of(("(?s:.{0,20})", "(?s:.{0,40})")),
        )),
        prop_oneof!["[A-Z]{1,10}", "(?s:.{0,600})"],
        vec(middle_param(), 0..MAX_PARAMS),
        proptest::option::of((prop_oneof!["(?s:.{0,40})", "(?s:.{0,700})"], any::<bool>())),
    )
        .prop_map(|(tags, source, command, middle, last)| WriterInput {
            tags,
            source,
            command,
            middle,
            last,
        })
}

fn write(input: &WriterInput) -> (LineWriter, usize) {
    let mut line = LineWriter::new();
    for (key, value) in &input.tags {
        line.tag(key, value.as_deref());
    }
    // Where the body starts: after the tags and the space that ends them.
    let tag_section = match line.as_bytes().len() {
        0 => 0,
        n => n + 1,
    };
    match &input.source {
        Some((nick, Some((user, host)))) => {
            line.source_parts(nick, user, host);
        }
        Some((source, None)) => {
            line.source(source);
        }
        None => {}
    }
    line.command(&input.command);
    for param in &input.middle {
        line.param(param);
    }
    match &input.last {
        Some((last, true)) => {
            line.trailing(last);
        }
        Some((last, false)) => {
            line.param(last);
        }
        None => {}
    }
    (line, tag_section)
}

proptest! {
    #[test]
    fn finished_lines_are_utf8_crlf_and_within_the_body_limit(input in writer_input()) {
        let (line, tag_section) = write(&input);
        let mut uncut = line.as_bytes().to_vec();
        // A last parameter that cannot be a middle one gets its ':' when finished.
        if let Some((last, false)) = &input.last
            && !palaver_proto::writer::is_middle_param(last)
        {
            uncut.insert(uncut.len() - last.len(), b':');
        }
        let finished = line.finish();
        prop_assert!(finished.ends_with(b"\r\n"));
        let text = std::str::from_utf8(&finished);
        prop_assert!(text.is_ok(), "not UTF-8: {:?}", finished);
        prop_assert!(finished.len() >= tag_section + 2);
        let body = &finished[tag_section..];
        prop_assert!(body.len() <= MAX_LINE_BODY, "body of {} bytes", body.len());
        // Cutting only ever removes a tail of the body, never more than a character's
        // worth beyond the limit.
        let kept = &finished[..finished.len() - 2];
        prop_assert!(uncut.starts_with(kept));
        if uncut.len() > kept.len() {
            prop_assert!(body.len() + 3 >= MAX_LINE_BODY);
        }
    }
}

// ---------------------------------------------------------------------------------
// (e) tag-value escaping

proptest! {
    #[test]
    fn tag_values_round_trip_through_escaping(value in any::<String>()) {
        let mut escaped = BytesMut::new();
        escape_tag_value_into(&value, &mut escaped);
        let escaped = std::str::from_utf8(&escaped).expect("escaping keeps UTF-8");
        prop_assert!(!escaped.contains([' ', ';', '\r', '\n']));
        prop_assert_eq!(unescape_tag_value(escaped), Cow::Borrowed(value.as_str()));
    }

    #[test]
    fn special_tag_values_round_trip_through_escaping(value in "[\\\\; \r\nsn:a]{0,30}") {
        let mut escaped = BytesMut::new();
        escape_tag_value_into(&value, &mut escaped);
        let escaped = std::str::from_utf8(&escaped).expect("escaping keeps UTF-8");
        prop_assert_eq!(unescape_tag_value(escaped), Cow::Borrowed(value.as_str()));
    }

    #[test]
    fn unescaping_anything_never_panics(value in any::<String>()) {
        let unescaped = unescape_tag_value(&value);
        prop_assert!(unescaped.len() <= value.len());
    }
}
