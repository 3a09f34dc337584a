//! How a connection gets woken: the per-driver [`Inbox`] and each connection's
//! [`Wakeup`] on it.
//!
//! A connection's `Outbox` is its waker and holds its [`Wakeup`]; the listener hands
//! [`Accepted`] connections to a driver's [`Inbox`].
//! These types live apart from the driver so that the outbox (which handlers and the
//! world write to) does not depend on the driver that polls connections.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::admission::Ticket;
use crate::lock;
use crate::transport::Opened;
use crate::transport::opening::ListenMode;

/// What the listener and the wakers share with one driver.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// Keys of connections to poll.
    pub(crate) ready: Mutex<Vec<usize>>,
    /// Accepted connections to adopt.
    pub(crate) incoming: Mutex<Vec<Accepted>>,
    /// Connections whose transport is settled (`transport::opening`), to become
    /// clients.
    pub(crate) opened: Mutex<Vec<(Opened, Ticket)>>,
    /// Wakes the driver when any list gets something.
    pub(crate) wakeup: Notify,
}

impl Inbox {
    fn push_ready(&self, key: usize) {
        lock(&self.ready).push(key);
        self.wakeup.notify_one();
    }

    /// Hands an accepted, admitted connection to this driver.
    pub(crate) fn adopt(&self, accepted: Accepted) {
        lock(&self.incoming).push(accepted);
        self.wakeup.notify_one();
    }

    /// Hands a connection whose transport is settled to this driver (called by
    /// the opening task, on this driver's thread).
    pub(crate) fn hand_over(&self, opened: Opened, ticket: Ticket) {
        lock(&self.opened).push((opened, ticket));
        self.wakeup.notify_one();
    }
}

/// A connection the listener accepted and admitted, detached from the listener's
/// reactor so the driver can register it with its own.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) ip: IpAddr,
    pub(crate) ticket: Ticket,
    /// What the listener that accepted it serves.
    pub(crate) mode: ListenMode,
}

/// How a connection gets on its driver's ready list. It lives in the connection's
/// `Outbox`, which is the connection's [`Waker`](std::task::Waker) (see
/// `impl Wake for Outbox`): the reactor, a line for the client, or the end of a
/// deferred job all wake it.
#[derive(Debug)]
pub(crate) struct Wakeup {
    key: usize,
    /// Already on the ready list; cleared by the driver just before it polls.
    queued: AtomicBool,
    inbox: Arc<Inbox>,
}

impl Wakeup {
    /// The wake-up of the connection at `key` in the driver that owns `inbox`.
    pub(crate) fn new(key: usize, inbox: Arc<Inbox>) -> Self {
        Self {
            key,
            queued: AtomicBool::new(false),
            inbox,
        }
    }

    /// Puts the connection on the ready list, unless it is there already.
    pub(crate) fn wake(&self) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.inbox.push_ready(self.key);
        }
    }

    /// The connection's key on its owner's ready list (for a remote user, its
    /// slot: see `world::remote`).
    pub(crate) fn key(&self) -> usize {
        self.key
    }

    /// Whether this wakes the owner of `inbox` (a driver, or the cluster link).
    pub(crate) fn is_on(&self, inbox: &Arc<Inbox>) -> bool {
        Arc::ptr_eq(&self.inbox, inbox)
    }

    /// Called as the connection is taken off the ready list, so that a wake-up
    /// during its poll puts it back.
    pub(crate) fn taken(&self) {
        self.queued.store(false, Ordering::Release);
    }
}
