//! The [`Store`] trait: everything the server persists, at the level of its domain.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

use crate::error::{AppendRejected, StoreError};
use crate::types::{
    Account, CertfpAdded, ChannelRegistration, Expired, HistoryMessage, HistoryRef, PasswordUpdate,
    Retention, ServerBan, ServerBanAdded, ServerBanKind, TargetKey, TargetLatest, TargetScope,
    Timestamp,
};

/// What every asynchronous [`Store`] method returns: a boxed, `Send` future.
///
/// Why boxed rather than `async fn` in the trait: the server holds its store as
/// `Arc<dyn Store>` (the backend is chosen at start-up from the configuration), and
/// a trait with `async fn` is not object safe. One allocation per call is nothing
/// next to a database round trip, and the hot path ([`Store::append`]) is a plain
/// synchronous method that allocates nothing. Writing the type out by hand instead
/// of using the `async-trait` macro keeps the signatures visible in docs and costs no
/// proc-macro build.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Persistence for accounts, registered channels, history, read markers and server
/// bans.
///
/// Backends: [`crate::SqliteStore`] (default, embedded) and [`crate::PgStore`]
/// (PostgreSQL, shared by the nodes of a cluster). Both pass
/// `palaver_store::conformance` (feature `conformance`), the contract in executable
/// form; nothing here assumes SQLite (no rowids, no file paths, no single-process
/// locking). Sequence numbers and the watermark belong to one store (one node);
/// the data, and the atomicity of each write, are shared by every store on the
/// same database.
///
/// Keys (`key` arguments, [`Account::key`], [`ChannelRegistration::key`]) are
/// *folded* by the caller with the server's casemapping.
///
/// # History writes and the durability promise
///
/// History is appended with [`Store::append`], which only queues the message and
/// returns its **sequence number**. A writer commits queued work in batches (group
/// commit) and then raises the **committed watermark** ([`Store::committed`],
/// [`Store::watch_committed`]): every sequence number at or below it is settled. The
/// server holds a message's deliveries until the watermark reaches its sequence
/// number, which is how "a message any recipient saw is in history after a crash"
/// holds without a commit per message. Queries see only committed messages.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    // ----- accounts -----

    /// Registers `account`; fails with [`StoreError::AlreadyExists`] if its key is
    /// taken (the check and the insert are one atomic step, so two racing
    /// registrations cannot both win).
    fn create_account(&self, account: Account) -> StoreFuture<'_, ()>;

    /// The account with folded name `key`, if registered.
    fn account(&self, key: &str) -> StoreFuture<'_, Option<Account>>;

    /// The folded names of every account: the server loads them at start-up, so
    /// that telling a registered nick from a free one needs no query.
    fn account_keys(&self) -> StoreFuture<'_, Vec<String>>;

    /// Replaces the password material of `key` (argon2 hash and SCRAM verifier
    /// together); [`StoreError::NotFound`] if there is no such account.
    fn set_password(&self, key: &str, update: PasswordUpdate) -> StoreFuture<'_, ()>;

    /// Marks `key` verified or not; [`StoreError::NotFound`] if there is no such
    /// account.
    fn set_verified(&self, key: &str, verified: bool) -> StoreFuture<'_, ()>;

    /// Deletes account `key`, its read markers and its certificate fingerprints (in
    /// one atomic step); returns whether it existed. Its history stays (other
    /// people's conversations include it) until retention.
    fn delete_account(&self, key: &str) -> StoreFuture<'_, bool>;

    // ----- client-certificate fingerprints (SASL EXTERNAL) -----
    //
    // A fingerprint is the lowercase hex SHA-256 of a client certificate (64
    // characters). The store keeps it exactly as given and compares it byte for
    // byte: the server normalises (lowercase, no colons) before every call, so all
    // backends agree by construction, as with folded keys.

    /// Adds `certfp` to account `account_key` (`NickServ CERT ADD`), so that the
    /// certificate logs in to it. The checks and the insert are one atomic step:
    /// [`CertfpAdded::AlreadyPresent`] if the account has it,
    /// [`CertfpAdded::Taken`] if another account has it (a fingerprint identifies
    /// at most one account, so EXTERNAL is never ambiguous),
    /// [`CertfpAdded::LimitReached`] if the account already has
    /// [`crate::MAX_CERTFPS_PER_ACCOUNT`] (the list is client-controlled, so
    /// bounded); [`StoreError::NotFound`] if there is no such account.
    fn add_certfp(&self, account_key: &str, certfp: &str) -> StoreFuture<'_, CertfpAdded>;

    /// Removes `certfp` from account `account_key` (`NickServ CERT DEL`); returns
    /// whether the account had it (a fingerprint of another account is left alone).
    fn remove_certfp(&self, account_key: &str, certfp: &str) -> StoreFuture<'_, bool>;

    /// The fingerprints of account `account_key`, sorted (`NickServ CERT LIST`);
    /// empty for an unknown account.
    fn certfps(&self, account_key: &str) -> StoreFuture<'_, Vec<String>>;

    /// The account that `certfp` identifies, if any: the SASL EXTERNAL lookup, one
    /// indexed read. Deleting an account deletes its fingerprints, so a later
    /// account of the same name cannot be entered with the old certificate.
    fn account_by_certfp(&self, certfp: &str) -> StoreFuture<'_, Option<Account>>;

    // ----- channel registrations -----

    /// Registers a channel; [`StoreError::AlreadyExists`] if its key is taken.
    fn register_channel(&self, channel: ChannelRegistration) -> StoreFuture<'_, ()>;

    /// The registration of the channel with folded name `key`, if any.
    fn channel(&self, key: &str) -> StoreFuture<'_, Option<ChannelRegistration>>;

    /// Replaces a registration as a whole (topic, modes, lists, access) in one
    /// atomic step; [`StoreError::NotFound`] if it is not registered.
    fn update_channel(&self, channel: ChannelRegistration) -> StoreFuture<'_, ()>;

    /// Drops the registration of `key`; returns whether it existed.
    fn drop_channel(&self, key: &str) -> StoreFuture<'_, bool>;

    /// Every registration, ordered by key: the server loads them at start-up.
    fn channels(&self) -> StoreFuture<'_, Vec<ChannelRegistration>>;

    // ----- server bans (K-lines and D-lines) -----

    /// Stores `ban`, replacing one of the same kind and mask
    /// ([`ServerBanAdded::Replaced`]). A new one is refused with
    /// [`ServerBanAdded::LimitReached`] when the store already holds `limit` bans of
    /// both kinds together: operators grow this list, so it is bounded too. The
    /// check and the write are one atomic step.
    fn add_server_ban(&self, ban: ServerBan, limit: usize) -> StoreFuture<'_, ServerBanAdded>;

    /// Removes the ban of `kind` on `mask` (byte for byte); returns whether it existed.
    fn remove_server_ban(&self, kind: ServerBanKind, mask: &str) -> StoreFuture<'_, bool>;

    /// Every ban, expired or not, ordered by kind then mask: the server loads them
    /// at start-up.
    fn server_bans(&self) -> StoreFuture<'_, Vec<ServerBan>>;

    /// Deletes the bans that expired at or before `now`; returns how many.
    fn expire_server_bans(&self, now: Timestamp) -> StoreFuture<'_, u64>;

    // ----- history: the write path -----

    /// Queues `message` for the next group commit and returns its sequence number.
    ///
    /// Never blocks and never waits for the disk: it is called with the server's
    /// world locked. A full queue is refused ([`crate::AppendError::Full`]) with the
    /// message handed back, so the caller sees backpressure and chooses (retry after
    /// the next commit, or deliver without history).
    // The error is large because it hands the message back; boxing it would allocate
    // on the hot path exactly when the store is overloaded.
    #[allow(clippy::result_large_err)]
    fn append(&self, message: HistoryMessage) -> Result<u64, AppendRejected>;

    /// The committed watermark: all work with a sequence number `<= committed()` is
    /// settled. Settled means committed, except for work counted in
    /// [`Store::write_failures`] (the database refused it).
    fn committed(&self) -> u64;

    /// A receiver that changes after every commit, carrying the watermark: the
    /// cheap way to be told (one wake-up per batch, not per message).
    fn watch_committed(&self) -> watch::Receiver<u64>;

    /// How many queued operations the database refused so far (a write error, a
    /// full disk): the server logs and reports them; their sequence numbers still
    /// count as settled so nothing waits forever.
    fn write_failures(&self) -> u64;

    /// Waits until everything queued before this call is settled, and returns the
    /// watermark.
    fn flush(&self) -> StoreFuture<'_, u64>;

    /// Deletes the message `msgid` (message redaction); returns whether it existed.
    ///
    /// The deletion takes its place among the writes when this is *called*, not
    /// when the future is polled, and the future borrows nothing: the server calls it
    /// with the world locked, in order with the appends around it, and only awaits
    /// (or drops) the outcome later.
    fn redact(&self, msgid: &str) -> StoreFuture<'static, bool>;

    // ----- history: queries (results always oldest first) -----

    /// The newest `limit` messages of `target`; with `after`, only those strictly
    /// after that reference (CHATHISTORY LATEST).
    fn latest(
        &self,
        target: &TargetKey,
        after: Option<HistoryRef>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>>;

    /// The `limit` messages just before `at`, exclusive (CHATHISTORY BEFORE).
    fn before(
        &self,
        target: &TargetKey,
        at: HistoryRef,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>>;

    /// The `limit` messages just after `at`, exclusive (CHATHISTORY AFTER).
    fn after(
        &self,
        target: &TargetKey,
        at: HistoryRef,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>>;

    /// Up to `limit` messages around `at`: `limit / 2` strictly before it, the rest
    /// at or after it (so a msgid reference includes that message).
    fn around(
        &self,
        target: &TargetKey,
        at: HistoryRef,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>>;

    /// Up to `limit` messages strictly between `from` and `to`, the ones nearest
    /// `from` (so `from` later than `to` pages backwards) (CHATHISTORY BETWEEN).
    fn between(
        &self,
        target: &TargetKey,
        from: HistoryRef,
        to: HistoryRef,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>>;

    /// The targets in `scope` whose latest message time lies between `from` and
    /// `to` (inclusive), at most `limit` of them, the ones nearest `from`, ordered
    /// oldest first (CHATHISTORY TARGETS).
    fn targets(
        &self,
        scope: &TargetScope,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> StoreFuture<'_, Vec<TargetLatest>>;

    // ----- read markers -----

    /// Moves `account`'s read marker on `target` forward to `at` (never back) and
    /// returns the stored marker afterwards, so the caller can tell the account's
    /// other connections. Like [`Store::redact`], the write takes its place when
    /// called, and the future borrows nothing.
    fn set_read_marker(
        &self,
        account: &str,
        target: &TargetKey,
        at: Timestamp,
    ) -> StoreFuture<'static, Timestamp>;

    /// `account`'s read marker on `target`, if any.
    fn read_marker(&self, account: &str, target: &TargetKey) -> StoreFuture<'_, Option<Timestamp>>;

    /// Every read marker as `(account, target, time)`, at most `limit` of them
    /// (the most recently moved first): the server loads them at start-up, so
    /// that a logged-in user's markers are known without waiting for the disk.
    fn all_read_markers(
        &self,
        limit: usize,
    ) -> StoreFuture<'_, Vec<(String, TargetKey, Timestamp)>>;

    // ----- retention -----

    /// One bounded pass of history expiry under `policy` as of `now`, removing at
    /// most about `batch` rows so a caller can loop off the hot path (until
    /// [`Expired::complete`]) without stalling the writer.
    fn expire(&self, policy: Retention, now: Timestamp, batch: u32) -> StoreFuture<'_, Expired>;

    // ----- lifecycle -----

    /// Commits everything queued, then stops the store: later calls fail with
    /// [`StoreError::Closed`] / [`crate::AppendError::Closed`].
    fn close(&self) -> StoreFuture<'_, ()>;
}
