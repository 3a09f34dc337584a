//! Slow work a handler asks for, run after the world lock is released.
//!
//! Handlers hold the world lock and must finish quickly, but some commands need work
//! that takes tens of milliseconds of CPU, such as checking an argon2 password hash
//! for `OPER` (and later SASL). Such a handler does not do the work itself: it stores
//! a [`Deferred`] job in [`Ctx::deferred`](super::Ctx) and returns. The connection's
//! reader, once `dispatch` has returned and the lock is released, calls [`run`]:
//!
//! 1. [`Deferred::work`] runs the job on tokio's blocking pool, behind
//!    `Shared::slow_work` (a semaphore with a few permits, so a burst of attempts
//!    from many clients queues instead of taking every core);
//! 2. the world is locked again and the job's [`Completion`] is applied by the
//!    handler's completion function (e.g. `oper::finish`), which answers the client.
//!
//! The reader awaits the job before it takes the client's next line, so commands keep
//! their order (a `JOIN` after `OPER` sees the outcome of the `OPER`) and a client can
//! have at most one job in flight: flooding slow commands only slows the flooder.
//!
//! To add a job: a variant here, its work in [`Deferred::work`], a [`Completion`]
//! variant, and the function that finishes it in [`Completion::finish`].

use std::fmt;

use super::{Ctx, oper};
use std::sync::Arc;

use crate::world::ClientId;
use crate::{Shared, labeled};

/// Work a handler left to be done outside the world lock.
pub(crate) enum Deferred {
    /// Check `OPER <name> <password>` against the configured argon2id hashes.
    VerifyOper { name: String, password: String },
    /// Read history from the store (`CHATHISTORY`).
    History(super::chathistory::Request),
}

impl fmt::Debug for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never log the password, nor the name: clients that swap the two
            // parameters send the password as the name.
            Self::VerifyOper { .. } => f.debug_struct("VerifyOper").finish_non_exhaustive(),
            Self::History(request) => f.debug_tuple("History").field(request).finish(),
        }
    }
}

/// The result of a [`Deferred`] job, applied with the world locked.
pub(crate) enum Completion {
    /// Whether `name`'s password matched.
    OperVerified { name: String, ok: bool },
    /// What a history query found.
    History(super::chathistory::Found),
}

impl Deferred {
    /// Does the slow part, without the world lock, on the blocking pool.
    async fn work(self, shared: &Shared) -> Completion {
        match self {
            Self::VerifyOper { name, password } => {
                let opers = &shared.config.opers;
                let known = opers.iter().find(|oper| oper.name == name);
                // An unknown name is checked against some hash anyway, so the time
                // taken does not reveal which names exist (the reply doesn't either).
                let Some(hash) = known.or(opers.first()).map(|o| o.password_hash.clone()) else {
                    return Completion::OperVerified { name, ok: false };
                };
                let matched = blocking(shared, move || {
                    crate::opers::verify_password(&password, &hash)
                })
                .await
                .unwrap_or(false);
                Completion::OperVerified {
                    ok: known.is_some() && matched,
                    name,
                }
            }
            // The store's own reader threads do the work: no permit needed.
            Self::History(request) => {
                Completion::History(super::chathistory::query(&*shared.store, request).await)
            }
        }
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The name may be a password (see `Deferred`'s Debug).
            Self::OperVerified { ok, .. } => f
                .debug_struct("OperVerified")
                .field("ok", ok)
                .finish_non_exhaustive(),
            Self::History(found) => f.debug_tuple("History").field(found).finish(),
        }
    }
}

impl Completion {
    /// Applies the result: the handler's own completion function answers the client.
    fn finish(self, ctx: &mut Ctx<'_>) {
        match self {
            Self::OperVerified { name, ok } => oper::finish(ctx, &name, ok),
            Self::History(found) => super::chathistory::finish(ctx, found),
        }
    }
}

/// Runs `job` on the blocking pool once a `slow_work` permit is free; `None` if the
/// job panicked.
async fn blocking<T: Send + 'static>(
    shared: &Shared,
    job: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    // The semaphore is never closed; if it were, running without a permit is safe.
    let _permit = shared.slow_work.acquire().await.ok();
    tokio::task::spawn_blocking(job).await.ok()
}

/// Runs a deferred job for client `id` and completes it with the world locked.
/// Returns the reason to close the connection, if the completion decided so.
/// A labeled command's label (and earlier replies) is honoured for the completion's
/// replies too.
pub(crate) async fn run(
    shared: &Shared,
    id: ClientId,
    job: Deferred,
    labeled: Option<labeled::Pending>,
) -> Option<String> {
    let completion = job.work(shared).await;
    let mut world = shared.lock_world();
    let outbox = world.clients.get(&id).map(|c| Arc::clone(&c.outbox))?;
    if labeled.is_some() {
        outbox.begin_capture();
    }
    let mut ctx = Ctx::new(&mut world, id);
    completion.finish(&mut ctx);
    if let Some(again) = ctx.deferred.take() {
        tracing::warn!(client = id.0, job = ?again, "a completion deferred more work; dropped");
    }
    let quit = ctx.quit.take();
    if let Some(labeled::Pending { label, mut replies }) = labeled {
        replies.extend(outbox.end_capture());
        labeled::deliver(&mut world, id, &label, replies);
    }
    quit
}
