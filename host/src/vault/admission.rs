//! Which connections the local vault keeps: token holders first.
//!
//! A connection is *unproven* until one of its requests carries the vault's token. Unproven
//! connections (a TLS handshake under way, a client that has not sent a request yet) are
//! bounded by [`unproven_capacity`], and when a new connection needs room the oldest unproven
//! one is closed: so connections that never send a byte, or idle after a
//! 401, cannot keep a client with the token out, however many a local user opens. A proven
//! connection takes one of `max_connections` slots for as long as it lives; past them, its
//! answer closes it (`Connection: close`), so token holders are bounded too. A 401 always
//! closes its connection. Pure bookkeeping, no I/O: the accept loop in `mod.rs` acts on it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The most unproven connections kept open at once: half of the process's open-file limit,
/// at most 4,096 (the other half is for proven connections, the database and the rest).
pub fn unproven_capacity() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let files = if ok { limit.rlim_cur as usize } else { 1024 };
    (files / 2).clamp(64, 4096)
}

/// The connections of one vault, by standing.
pub struct Admission {
    unproven: Mutex<VecDeque<(u64, Arc<Notify>)>>,
    next: Mutex<u64>,
    proven: Arc<Semaphore>,
    max_unproven: usize,
}

/// One connection's standing; dropping it forgets the connection.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    evicted: Arc<Notify>,
    slot: Mutex<Option<Option<OwnedSemaphorePermit>>>,
}

impl Admission {
    /// Bookkeeping for `max_connections` proven connections and `max_unproven` others.
    pub fn new(max_connections: usize, max_unproven: usize) -> Arc<Admission> {
        Arc::new(Admission {
            unproven: Mutex::new(VecDeque::new()),
            next: Mutex::new(0),
            proven: Arc::new(Semaphore::new(max_connections.max(1))),
            max_unproven: max_unproven.max(1),
        })
    }

    /// Admits a new connection as unproven, closing the oldest unproven one if there is no
    /// room.
    pub fn admit(self: &Arc<Self>) -> Ticket {
        let id = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        let evicted = Arc::new(Notify::new());
        let mut unproven = self.unproven.lock().unwrap_or_else(|p| p.into_inner());
        while unproven.len() >= self.max_unproven {
            if let Some((_, oldest)) = unproven.pop_front() {
                oldest.notify_one();
            }
        }
        unproven.push_back((id, evicted.clone()));
        Ticket {
            admission: self.clone(),
            id,
            evicted,
            slot: Mutex::new(None),
        }
    }

    /// How many connections are unproven now.
    #[cfg(test)]
    fn unproven(&self) -> usize {
        self.unproven
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    fn forget(&self, id: u64) {
        self.unproven
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(other, _)| *other != id);
    }
}

impl Ticket {
    /// Resolves when the connection was closed to make room (never once it is proven).
    pub async fn evicted(&self) {
        self.evicted.notified().await
    }

    /// Marks the connection proven (a request carried the token); whether it holds a slot,
    /// that is, whether it may stay open after this answer.
    pub fn prove(&self) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            self.admission.forget(self.id);
            *slot = Some(self.admission.proven.clone().try_acquire_owned().ok());
        }
        matches!(*slot, Some(Some(_)))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_unproven_connection_makes_room_and_proven_ones_never_do() {
        let admission = Admission::new(1, 2);
        let first = admission.admit();
        assert!(first.prove(), "a proven connection takes the slot");
        let second = admission.admit();
        let third = admission.admit();
        assert_eq!(admission.unproven(), 2);
        let fourth = admission.admit();
        tokio::time::timeout(std::time::Duration::from_secs(1), second.evicted())
            .await
            .expect("the oldest unproven connection is closed");
        assert_eq!(admission.unproven(), 2);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), first.evicted())
                .await
                .is_err(),
            "a proven connection is never evicted"
        );
        assert!(
            !third.prove(),
            "past max_connections a proven connection closes"
        );
        drop(first);
        assert!(fourth.prove(), "a freed slot is taken again");
        drop(third);
        assert_eq!(admission.unproven(), 0);
    }
}
