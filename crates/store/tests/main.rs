//! The store's integration tests: the conformance suite against SQLite in memory
//! and on disk, SQLite-specific behaviour (open errors, queue bound), and the
//! kill -9 durability test; the PostgreSQL backend against a real server
//! (`#[ignore]`d: scripts/test-cluster.sh runs them).

mod conformance;
mod durability;
mod postgres;
mod sqlite;
