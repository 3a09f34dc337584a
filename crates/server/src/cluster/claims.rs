//! This node's nick claims and releases, one at a time, in the order the world
//! asked for them.
//!
//! Order matters: a user who goes from nick A to B and straight back to A asks
//! to release A, then to claim it again. Run side by side, the release could
//! land after the new claim and delete it, leaving the user holding a nick the
//! cluster thinks is free. So the world queues every request here the moment it
//! changes a nick (under its lock), and one task carries them out in that order.
//! A NICK waits for its answer (`handlers::deferred`); a release does not.
//!
//! The reconciliation after an outage (claim every user's nick again, release
//! what nobody holds) is one more job in that order.
//!
//! Nicks the server gives rather than a user asks for (a guest nick from
//! NickServ enforcement or after an outage, an operator's SANICK) take effect at
//! once, since the old nick must go now, and are claimed afterwards: if another
//! node's user holds the same nick, this node's user is renamed to a guest nick,
//! which is claimed the same way.

use std::future::Future;
use std::sync::Arc;

use palaver_proto::CaseKey;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::bus::{Bus, ClaimRefused};
use crate::world::{ClientId, World};

/// Most requests waiting: past it a NICK is answered "try again" and a release
/// is dropped (the claim stays until this node's next start, or the next
/// reconciliation after an outage, releases it).
const MAX_WAITING: usize = 10_000;

/// One request.
#[derive(Debug)]
pub(crate) enum Job {
    /// Claim `key` for client `id` (a NICK), and say whether it worked.
    Claim {
        key: CaseKey,
        id: u64,
        answer: oneshot::Sender<Result<(), ClaimRefused>>,
    },
    /// Claim nick `key`, which the server already gave client `id`.
    Given { key: CaseKey, id: u64 },
    /// Release `key` if this node's client `id` still holds it.
    Release { key: CaseKey, id: u64 },
    /// Release `key` if `holder` (a prefix: `node/boot/`) still holds it: a lost
    /// node's users.
    ReleaseLost { key: CaseKey, holder: String },
    /// After an outage: make the claims match this node's users (see
    /// [`reconcile`]), then say so.
    Reconcile { done: oneshot::Sender<()> },
}

/// Where the world and the NICK handler queue requests.
#[derive(Debug, Clone)]
pub(crate) struct Claims {
    jobs: mpsc::Sender<Job>,
}

impl Claims {
    /// The queue, and its end for [`run`].
    pub(crate) fn new() -> (Self, mpsc::Receiver<Job>) {
        let (jobs, receiver) = mpsc::channel(MAX_WAITING);
        (Self { jobs }, receiver)
    }

    /// Queues a claim of `key` for client `id` now; the future says whether the
    /// cluster let it have the nick.
    pub(crate) fn claim(
        &self,
        key: CaseKey,
        id: u64,
    ) -> impl Future<Output = Result<(), ClaimRefused>> + Send + 'static {
        let (answer, answered) = oneshot::channel();
        let queued = self.send(Job::Claim { key, id, answer });
        async move {
            if !queued {
                return Err(ClaimRefused::Unavailable);
            }
            answered.await.unwrap_or(Err(ClaimRefused::Unavailable))
        }
    }

    /// Queues a claim of nick `key`, which the server just gave client `id`.
    pub(crate) fn claim_given(&self, key: CaseKey, id: u64) {
        self.send(Job::Given { key, id });
    }

    /// Queues the release of `key`, which this node's client `id` gave up.
    pub(crate) fn release(&self, key: CaseKey, id: u64) {
        self.send(Job::Release { key, id });
    }

    /// Queues a reconciliation after an outage; the future ends when it is done
    /// (or could not be queued).
    pub(crate) fn reconcile(&self) -> impl Future<Output = ()> + Send + 'static {
        let (done, finished) = oneshot::channel();
        let queued = self.send(Job::Reconcile { done });
        async move {
            if queued {
                let _ = finished.await;
            }
        }
    }

    /// Queues the release of `key` if `holder` (`node/boot/`) still holds it.
    pub(crate) fn release_lost(&self, key: CaseKey, holder: String) {
        self.send(Job::ReleaseLost { key, holder });
    }

    fn send(&self, job: Job) -> bool {
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("too many nick claims waiting for the cluster bus; one dropped");
                false
            }
            // The node is shutting down.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Carries out `jobs` in order until `stop`.
pub(crate) async fn run(
    shared: Arc<Shared>,
    bus: Bus,
    mut jobs: mpsc::Receiver<Job>,
    stop: CancellationToken,
) {
    loop {
        let job = tokio::select! {
            () = stop.cancelled() => break,
            job = jobs.recv() => job,
        };
        let Some(job) = job else {
            return;
        };
        carry_out(&shared, &bus, job).await;
    }
    // The releases of the users who quit as the node stopped, bounded: with NATS
    // gone each would wait for its timeout (the next start releases them anyway).
    let drain = async {
        while let Ok(job) = jobs.try_recv() {
            carry_out(&shared, &bus, job).await;
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

async fn carry_out(shared: &Shared, bus: &Bus, job: Job) {
    {
        match job {
            Job::Claim { key, id, answer } => {
                let _ = answer.send(bus.claim_nick(&key, id).await);
            }
            Job::Given { key, id } => {
                if bus.claim_nick(&key, id).await == Err(ClaimRefused::Taken) {
                    given_taken(shared, &key, ClientId(id));
                }
            }
            Job::Release { key, id } => bus.release_nick(&key, &bus.holder(id)).await,
            Job::ReleaseLost { key, holder } => bus.release_nick(&key, &holder).await,
            Job::Reconcile { done } => {
                reconcile(shared, bus).await;
                let _ = done.send(());
            }
        }
    }
}

/// After an outage: claims this node's users' nicks again (renaming to a guest
/// nick anyone whose nick another node's user took meanwhile) and releases the
/// claims whose release was lost. Run as a job, so every claim and release queued
/// before it is done and every one queued after waits: the users' nicks read
/// here are the ones the bucket must show, and the release of a nick given up
/// after they were read comes after this claims it again, not before.
async fn reconcile(shared: &Shared, bus: &Bus) {
    let held: Vec<(CaseKey, u64)> = {
        let world = shared.lock_world();
        world
            .clients
            .iter()
            .filter(|(id, _)| !world.is_remote(**id))
            .filter_map(|(id, client)| client.nick.as_deref().map(|nick| (World::key(nick), id.0)))
            .collect()
    };
    let lost = bus.reconcile_claims(&held).await;
    if lost.is_empty() {
        return;
    }
    tracing::warn!(
        users = lost.len(),
        "nicks taken on other nodes during the outage"
    );
    let mut world = shared.lock_world();
    for id in lost {
        crate::handlers::nickserv::rename_to_guest(
            &mut world,
            ClientId(id),
            "Your nick was taken on another server while this one was cut off; you are now",
        );
    }
}

/// Another node's user holds the nick client `id` was given: if `id` still has
/// it, it gets a guest nick.
fn given_taken(shared: &Shared, key: &CaseKey, id: ClientId) {
    let mut world = shared.lock_world();
    let still = world
        .clients
        .get(&id)
        .and_then(|client| client.nick.as_deref())
        .is_some_and(|nick| World::key(nick) == *key);
    if still {
        crate::handlers::nickserv::rename_to_guest(
            &mut world,
            id,
            "That nick is held on another server of the cluster; you are now",
        );
    }
}
