//! `chat-client` (in progress).
fn main() {}
