//! Server control: operator requests that act on the whole process rather than on
//! the world (`DIE`, `RESTART`; `REHASH` is meant to join them here).
//!
//! A handler cannot stop the server itself: it holds the world lock, and the
//! listener owns the accept loop, the drivers and the store's shutdown. So it files
//! a [`Request`] with the [`ServerControl`] (shared by the world and the listener)
//! and returns; the listener's loop waits on [`ServerControl::next`] beside the
//! shutdown signal and acts: `Die` and `Restart` take the same graceful path as
//! SIGTERM (clients told, connections flushed, store closed), and `run_listeners`
//! returns a [`RunOutcome`] saying whether the process should start again, which
//! `chat-server` does by executing itself anew once its runtime is gone. A request
//! that does not stop the server (a reload) would be handled in that loop and the
//! loop would go on.

use std::sync::Mutex;

use tokio::sync::Notify;

/// What `run_listeners` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a restart request is lost if the outcome is ignored"]
pub enum RunOutcome {
    /// The server stopped (a signal, the shutdown future, or `DIE`).
    Stopped,
    /// An operator asked for a restart (`RESTART`): the caller should start the
    /// server again (`chat-server` executes itself with the same arguments).
    Restart,
}

/// A request an operator made of the whole server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Stop gracefully (`DIE`), as SIGTERM does.
    Die {
        /// Who asked, for the log.
        by: String,
    },
    /// Stop gracefully, then start again (`RESTART`).
    Restart {
        /// Who asked, for the log.
        by: String,
    },
}

/// Where handlers file [`Request`]s and the listener picks them up.
#[derive(Debug, Default)]
pub(crate) struct ServerControl {
    /// The pending request; a stop, once filed, is never replaced.
    pending: Mutex<Option<Request>>,
    /// Wakes the listener (a permit is kept if it is not waiting yet).
    wake: Notify,
    /// The stop the listener acted on, for the message clients get.
    stopping: Mutex<Option<Request>>,
}

impl ServerControl {
    /// Files `request` for the listener. A second stop while one is pending is
    /// ignored (the first one wins).
    pub(crate) fn request(&self, request: Request) {
        let mut pending = crate::lock(&self.pending);
        if pending.is_none() && crate::lock(&self.stopping).is_none() {
            *pending = Some(request);
            self.wake.notify_one();
        }
    }

    /// The next request, once one is filed.
    pub(crate) async fn next(&self) -> Request {
        loop {
            if let Some(request) = crate::lock(&self.pending).take() {
                return request;
            }
            self.wake.notified().await;
        }
    }

    /// Records that the server is stopping because of `request` (or a signal, with
    /// `None`), which decides what clients are told.
    pub(crate) fn stopping(&self, request: Option<Request>) {
        *crate::lock(&self.stopping) = request;
    }

    /// The `ERROR` text connections get as the server stops.
    pub(crate) fn closing_message(&self) -> &'static str {
        match &*crate::lock(&self.stopping) {
            Some(Request::Restart { .. }) => "Server restarting",
            _ => "Server shutting down",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_stop_wins() {
        let control = ServerControl::default();
        control.request(Request::Restart { by: "a".into() });
        control.request(Request::Die { by: "b".into() });
        let request = control.next().await;
        assert_eq!(request, Request::Restart { by: "a".into() });
        control.stopping(Some(request));
        assert_eq!(control.closing_message(), "Server restarting");
    }
}
