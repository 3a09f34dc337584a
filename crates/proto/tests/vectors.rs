//! Every vector of the ircdocs parser tests (CC0; see `tests/data/LICENSE`).
//!
//! Each YAML file has one `check_*` function that compares one vector with what this
//! crate does and returns a description of the difference. [`run`] applies it to every
//! vector of the file and fails with the list of all vectors that disagree. A vector is
//! skipped only when it is listed in the file's `SKIP` table with its reason; a listed
//! vector that no longer disagrees fails the test, so the table cannot go stale.

use std::collections::BTreeMap;
use std::fmt::Debug;

use bytes::BytesMut;
use palaver_proto::message::Source;
use palaver_proto::writer::{escape_tag_value_into, write_message};
use palaver_proto::{CaseMapping, LineWriter, Message, mask, validate};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The layout shared by all the files: a list of tests under `tests`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile<T> {
    tests: Vec<T>,
}

fn load<T: DeserializeOwned>(name: &str, yaml: &str) -> Vec<T> {
    let file: VectorFile<T> =
        serde_norway::from_str(yaml).unwrap_or_else(|err| panic!("{name} does not load: {err}"));
    assert!(!file.tests.is_empty(), "{name} has no vectors");
    file.tests
}

/// Checks every vector, reports every disagreement at once, and returns how many
/// vectors were checked and how many skipped.
///
/// `skip` lists `(id, reason)` pairs; `id` is what `id_of` gives for the vector.
fn run<T: Debug>(
    name: &str,
    vectors: &[T],
    skip: &[(&str, &str)],
    id_of: impl Fn(&T) -> String,
    check: impl Fn(&T) -> Result<(), String>,
) -> (usize, usize) {
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut skipped = Vec::new();
    for vector in vectors {
        let id = id_of(vector);
        let result = check(vector);
        if let Some((_, reason)) = skip.iter().find(|(skip_id, _)| *skip_id == id) {
            match result {
                Err(_) => skipped.push(id),
                Ok(()) => failures.push(format!(
                    "{id:?}: listed as skipped ({reason}) but now passes; remove it from SKIP"
                )),
            }
            continue;
        }
        checked += 1;
        if let Err(why) = result {
            failures.push(format!("{id:?}: {why}\n    vector: {vector:?}"));
        }
    }
    for (id, _) in skip {
        if !vectors.iter().any(|v| id_of(v) == *id) {
            failures.push(format!("{id:?}: listed in SKIP but no such vector"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
    println!(
        "{name}: {checked} vectors passed, {} skipped {skipped:?}",
        skipped.len()
    );
    (checked, skipped.len())
}

/// The atoms of a message, as the YAML gives them: missing keys are empty or absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Atoms {
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    source: Option<String>,
    verb: String,
    #[serde(default)]
    params: Vec<String>,
}

/// The atoms of a parsed message, in the same shape (tags: the last duplicate wins).
fn atoms_of(msg: &Message<'_>) -> Atoms {
    Atoms {
        tags: msg.raw_tags().map(|_| {
            msg.tags()
                .map(|(key, value)| (key.to_owned(), value.into_owned()))
                .collect()
        }),
        source: msg.source().map(str::to_owned),
        verb: msg.command().to_owned(),
        params: msg.params().iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn same_atoms(expected: &Atoms, actual: &Atoms) -> Result<(), String> {
    let mut diffs = Vec::new();
    // A message without a tag section and one with an empty one carry the same tags.
    let expected_tags = expected.tags.clone().unwrap_or_default();
    let actual_tags = actual.tags.clone().unwrap_or_default();
    if expected_tags != actual_tags {
        diffs.push(format!("tags {actual_tags:?}, expected {expected_tags:?}"));
    }
    if expected.source != actual.source {
        diffs.push(format!(
            "source {:?}, expected {:?}",
            actual.source, expected.source
        ));
    }
    if expected.verb != actual.verb {
        diffs.push(format!(
            "verb {:?}, expected {:?}",
            actual.verb, expected.verb
        ));
    }
    if expected.params != actual.params {
        diffs.push(format!(
            "params {:?}, expected {:?}",
            actual.params, expected.params
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

// ---------------------------------------------------------------------------------
// msg-split.yaml: Message::parse

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitVector {
    input: String,
    atoms: Atoms,
}

fn check_split(v: &SplitVector) -> Result<(), String> {
    let msg = Message::parse(&v.input).map_err(|err| format!("does not parse: {err}"))?;
    let actual = atoms_of(&msg);
    if actual.tags.is_some() != v.atoms.tags.is_some() {
        return Err(format!(
            "tag section {:?}, expected tags {:?}",
            msg.raw_tags(),
            v.atoms.tags
        ));
    }
    same_atoms(&v.atoms, &actual)
}

#[test]
fn msg_split() {
    let vectors: Vec<SplitVector> = load("msg-split", include_str!("data/msg-split.yaml"));
    let (checked, _) = run("msg-split", &vectors, &[], |v| v.input.clone(), check_split);
    assert_eq!(checked, vectors.len());
}

// ---------------------------------------------------------------------------------
// msg-join.yaml: Message::from_parts + write_message, and LineWriter directly

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinVector {
    desc: String,
    atoms: Atoms,
    matches: Vec<String>,
}

/// The escaped tag section (without `@`) for `tags`, in the map's order.
fn raw_tag_section(tags: &BTreeMap<String, String>) -> String {
    let mut buf = BytesMut::new();
    for (i, (key, value)) in tags.iter().enumerate() {
        if i > 0 {
            buf.extend_from_slice(b";");
        }
        buf.extend_from_slice(key.as_bytes());
        if !value.is_empty() {
            buf.extend_from_slice(b"=");
            escape_tag_value_into(value, &mut buf);
        }
    }
    String::from_utf8(buf.to_vec()).expect("escaping keeps UTF-8")
}

/// The line without its CRLF, which must be there.
fn without_crlf(line: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(line).map_err(|err| format!("not UTF-8: {err}"))?;
    text.strip_suffix("\r\n")
        .map(str::to_owned)
        .ok_or_else(|| format!("{text:?} does not end with CRLF"))
}

/// Whether `line` is one of the `matches` of `v`: exactly, or, for a vector with several
/// tags (whose order in `matches` varies), by parsing to the same atoms.
fn is_a_match(v: &JoinVector, line: &str) -> Result<(), String> {
    if v.matches.iter().any(|m| m == line) {
        return Ok(());
    }
    let several_tags = v.atoms.tags.as_ref().is_some_and(|t| t.len() > 1);
    if several_tags {
        let ours = Message::parse(line).map_err(|err| format!("{line:?}: {err}"))?;
        for m in &v.matches {
            let theirs = Message::parse(m).map_err(|err| format!("match {m:?}: {err}"))?;
            if same_atoms(&atoms_of(&theirs), &atoms_of(&ours)).is_ok() {
                return Ok(());
            }
        }
    }
    Err(format!("wrote {line:?}, expected one of {:?}", v.matches))
}

fn check_join(v: &JoinVector) -> Result<(), String> {
    let params: Vec<&str> = v.atoms.params.iter().map(String::as_str).collect();
    let raw_tags = v.atoms.tags.as_ref().map(raw_tag_section);

    // Through Message: the path used when re-serialising a parsed message.
    let msg = Message::from_parts(
        raw_tags.as_deref(),
        v.atoms.source.as_deref(),
        &v.atoms.verb,
        &params,
    );
    let via_message = without_crlf(&write_message(&msg))?;
    is_a_match(v, &via_message).map_err(|err| format!("write_message: {err}"))?;

    // Through LineWriter: the path the server uses to build replies.
    let mut writer = LineWriter::new();
    for (key, value) in v.atoms.tags.iter().flatten() {
        writer.tag(key, Some(value));
    }
    if let Some(source) = &v.atoms.source {
        writer.source(source);
    }
    writer.command(&v.atoms.verb);
    for param in &params {
        writer.param(param);
    }
    let via_writer = without_crlf(&writer.finish())?;
    is_a_match(v, &via_writer).map_err(|err| format!("LineWriter: {err}"))?;
    Ok(())
}

#[test]
fn msg_join() {
    let vectors: Vec<JoinVector> = load("msg-join", include_str!("data/msg-join.yaml"));
    let (checked, _) = run("msg-join", &vectors, &[], |v| v.desc.clone(), check_join);
    assert_eq!(checked, vectors.len());
}

// ---------------------------------------------------------------------------------
// userhost-split.yaml: Source::split

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserhostAtoms {
    #[serde(default)]
    nick: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    host: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserhostVector {
    source: String,
    atoms: UserhostAtoms,
}

fn check_userhost(v: &UserhostVector) -> Result<(), String> {
    let split = Source::split(&v.source);
    // The file says a missing key means "empty"; Source says "absent" with None, which
    // is stricter: a missing key must be None, and a given one Some(it).
    let nick = v.atoms.nick.as_deref().unwrap_or("");
    let expected = Source {
        nick,
        user: v.atoms.user.as_deref(),
        host: v.atoms.host.as_deref(),
    };
    if split == expected {
        Ok(())
    } else {
        Err(format!("split into {split:?}, expected {expected:?}"))
    }
}

#[test]
fn userhost_split() {
    let vectors: Vec<UserhostVector> =
        load("userhost-split", include_str!("data/userhost-split.yaml"));
    let (checked, _) = run(
        "userhost-split",
        &vectors,
        &[],
        |v| v.source.clone(),
        check_userhost,
    );
    assert_eq!(checked, vectors.len());
}

// ---------------------------------------------------------------------------------
// validate-hostname.yaml: validate::is_valid_hostname

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostnameVector {
    host: String,
    valid: bool,
}

/// Hostname vectors that disagree with the documented rule of
/// [`validate::is_valid_hostname`]: "a DNS hostname (RFC 1123 labels)", under which a
/// single label is a valid hostname, as the vectors' own comment concedes.
const HOSTNAME_SKIP: &[(&str, &str)] = &[
    (
        "irc",
        "single-label name: valid under RFC 1123, which is_valid_hostname documents",
    ),
    (
        "com",
        "single-label name: valid under RFC 1123, which is_valid_hostname documents",
    ),
];

fn check_hostname(v: &HostnameVector) -> Result<(), String> {
    let valid = validate::is_valid_hostname(&v.host);
    if valid == v.valid {
        Ok(())
    } else {
        Err(format!(
            "is_valid_hostname gave {valid}, expected {}",
            v.valid
        ))
    }
}

#[test]
fn validate_hostname() {
    let vectors: Vec<HostnameVector> = load(
        "validate-hostname",
        include_str!("data/validate-hostname.yaml"),
    );
    let (checked, skipped) = run(
        "validate-hostname",
        &vectors,
        HOSTNAME_SKIP,
        |v| v.host.clone(),
        check_hostname,
    );
    assert_eq!(checked + skipped, vectors.len());
}

// ---------------------------------------------------------------------------------
// mask-match.yaml: mask::matches under rfc1459 casemapping

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskVector {
    mask: String,
    #[serde(default)]
    matches: Vec<String>,
    #[serde(default)]
    fails: Vec<String>,
}

/// One (mask, subject) pair of a [`MaskVector`], which is what a vector is here.
#[derive(Debug)]
struct MaskCase {
    mask: String,
    subject: String,
    should_match: bool,
}

fn check_mask(c: &MaskCase) -> Result<(), String> {
    let matched = mask::matches(CaseMapping::Rfc1459, &c.mask, &c.subject);
    if matched == c.should_match {
        Ok(())
    } else {
        Err(format!(
            "matches gave {matched}, expected {}",
            c.should_match
        ))
    }
}

#[test]
fn mask_match() {
    let vectors: Vec<MaskVector> = load("mask-match", include_str!("data/mask-match.yaml"));
    let cases: Vec<MaskCase> = vectors
        .iter()
        .flat_map(|v| {
            let matches = v.matches.iter().map(|s| (s, true));
            let fails = v.fails.iter().map(|s| (s, false));
            matches
                .chain(fails)
                .map(|(subject, should_match)| MaskCase {
                    mask: v.mask.clone(),
                    subject: subject.clone(),
                    should_match,
                })
        })
        .collect();
    assert!(
        vectors
            .iter()
            .all(|v| !v.matches.is_empty() || !v.fails.is_empty()),
        "a mask vector without subjects"
    );
    let (checked, _) = run(
        "mask-match",
        &cases,
        &[],
        |c| format!("{} ~ {}", c.mask, c.subject),
        check_mask,
    );
    assert_eq!(checked, cases.len());
}
