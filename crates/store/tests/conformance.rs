//! The backend-independent suite, run against both ways of opening SQLite.

mod sqlite_memory {
    palaver_store::conformance_tests!(|| async {
        std::sync::Arc::new(palaver_store::SqliteStore::open_in_memory().expect("open"))
            as std::sync::Arc<dyn palaver_store::Store>
    });
}

mod sqlite_file {
    /// A store in a fresh directory under cargo's target/tmp, which outlives the test
    /// (kept on purpose: the store outlives the factory call).
    fn fresh() -> std::sync::Arc<dyn palaver_store::Store> {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let store = palaver_store::SqliteStore::open(dir.path()).expect("open");
        std::mem::forget(dir);
        std::sync::Arc::new(store)
    }

    palaver_store::conformance_tests!(|| async { fresh() });
}
