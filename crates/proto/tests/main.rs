//! Integration tests of `palaver-proto`, built as one binary to keep link time down.
//!
//! - [`vectors`]: every vector of the ircdocs parser tests (CC0, `tests/data/`).
//! - [`properties`]: proptest properties of the parser, writer, framer and escaping.

#![allow(missing_docs)]

mod properties;
mod vectors;
