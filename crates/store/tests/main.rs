//! The store's integration tests: the conformance suite against SQLite in memory
//! and on disk, SQLite-specific behaviour (open errors, queue bound), and the
//! kill -9 durability test.

mod conformance;
mod durability;
mod sqlite;
