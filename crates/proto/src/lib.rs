//! The IRC wire format, and nothing else.
//!
//! This crate knows how IRC lines look and what the names in them mean; it does no
//! I/O and has no async runtime, so it can be fuzzed, property-tested and benchmarked
//! in isolation, and reused by the server, the client and the load tool alike.
//!
//! - [`framing`]: splitting a byte stream into lines under the IRC length limits.
//! - [`message`]: a zero-copy parser, [`Message`], borrowing from the line.
//! - [`writer`]: a serialiser that writes a line once into bytes that can be shared.
//! - [`casemap`], [`validate`], [`mask`]: names, their comparison and wildcard masks.
//! - [`numeric`]: the one table of numeric reply codes.

pub mod casemap;
pub mod framing;
pub mod mask;
pub mod message;
pub mod numeric;
pub mod validate;
pub mod writer;

pub use casemap::{CaseKey, CaseMapping};
pub use framing::{Frame, LineFramer};
pub use message::{Message, ParseError, Source, Tags};
pub use writer::LineWriter;

/// Longest line body we accept or send, counting the trailing CRLF but not the tags
/// (RFC 1459 §2.3, modern.ircdocs.horse "Message format").
pub const MAX_LINE_BODY: usize = 512;
/// Longest tag section a line may carry, counting the `@` and the space after it
/// (IRCv3 message-tags: 8191 bytes, of which a client may send [`MAX_CLIENT_TAGS_LEN`]).
pub const MAX_TAGS_LEN: usize = 8191;
/// Longest tag section a client may send, counting the `@` and the space after it; the
/// rest of the 8191 bytes is room for the tags a server adds.
pub const MAX_CLIENT_TAGS_LEN: usize = 4096;
/// Most parameters a message may carry (RFC 1459 §2.3).
pub const MAX_PARAMS: usize = 15;
