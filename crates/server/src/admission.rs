//! Admission: how many connections the server holds, in total and per IP address.
//!
//! The listener admits a connection (or refuses it) before handing it to a driver;
//! the connection then carries its [`Ticket`] until it ends. This sits below the
//! listener, the driver and the connection, which all hold tickets, so that none of
//! them needs to import the listener.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connection counts, total and per IP, for admission.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Admission {
    /// A place for a connection from `ip`, if the total and `ip`'s count are
    /// below their limits; otherwise the reason to give the refused client.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<Ticket, &'static str> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= max_total {
            return Err("Server full");
        }
        let from_ip = counts.per_ip.entry(ip).or_insert(0);
        if *from_ip >= max_per_ip {
            return Err("Too many connections from your IP address");
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(Ticket {
            admission: Arc::clone(self),
            ip,
        })
    }
}

/// One admitted connection's place in the admission counts; dropping it (with the
/// connection) frees the place.
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self
            .admission
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}
