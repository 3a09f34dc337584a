//! Registered channels' write-back to the store.
//!
//! The registrations themselves are world state (`world::registry`).
//!
//! **Write-back.** While a registered channel exists, its live state (`Channel`) is
//! the truth; every change of topic, modes or lists calls `Registry::changed`,
//! which copies that state into the registration at once (so nothing is lost when
//! the channel empties) and marks it dirty. One task per server ([`save_until`])
//! writes dirty registrations, one after the other, with the world unlocked. Why one
//! task rather than a spawned write per change: writes from different driver
//! threads could then reach the store in another order than the changes happened,
//! and an older snapshot would overwrite a newer one. With one writer and snapshots
//! taken when it runs, the last write is always of the latest state; a burst of
//! changes costs one write per channel, and pending work is bounded by the number of
//! registrations.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::Shared;

/// Writes changed registrations to the store until `stop` is cancelled (see the
/// module documentation); `listener::run` calls [`save_pending`] once more after
/// the connections are gone.
pub(crate) async fn save_until(shared: Arc<Shared>, stop: CancellationToken) {
    let wake = Arc::clone(&shared.lock_world().registry.wake);
    loop {
        tokio::select! {
            () = wake.notified() => save_pending(&shared).await,
            () = stop.cancelled() => return,
        }
    }
}

/// Writes every registration changed since the last call; failures are logged
/// (the registration in memory stays right, and its next change writes it again).
pub(crate) async fn save_pending(shared: &Shared) {
    let pending = shared.lock_world().registry.take_dirty();
    for registration in pending {
        match shared.store.update_channel(registration).await {
            Ok(()) => {}
            // Dropped while this write was on its way: nothing left to save.
            Err(error @ palaver_store::StoreError::NotFound { .. }) => {
                tracing::debug!(%error, "a dropped channel registration was not saved");
            }
            Err(error) => tracing::warn!(%error, "cannot save a channel registration"),
        }
    }
}
