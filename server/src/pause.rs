//! `CLIENT PAUSE` / `CLIENT UNPAUSE` (Redis's `pauseClients`): holding
//! clients' commands back so the dataset stays as it is, e.g. while a
//! replica catches up before a failover.
//!
//! The dispatcher asks [`Pause::active`] on every command: one relaxed
//! load while nothing is paused. A command the pause holds back is
//! *postponed* (Redis's `BLOCKED_POSTPONE`): its connection waits in
//! [`Pause::changed`] and then runs it from the start again, so it is
//! checked (and maybe postponed) anew. While paused, the keyspace keeps
//! expired keys (hidden from readers), and active expiry and eviction wait
//! (`StoreStats::paused`).

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use ferrite_storage::Store;

/// What a pause holds back; ordered from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Off = 0,
    /// Writes and commands that may replicate (`CLIENT PAUSE ... WRITE`).
    Write = 1,
    /// Every command (`CLIENT PAUSE ...`, `ALL`).
    All = 2,
}

impl Kind {
    fn from_u8(v: u8) -> Kind {
        match v {
            1 => Kind::Write,
            2 => Kind::All,
            _ => Kind::Off,
        }
    }
}

/// The pause state shared by every connection.
#[derive(Default)]
pub struct Pause {
    /// The effective [`Kind`]; [`Kind::Off`] is the dispatcher's fast path.
    kind: AtomicU8,
    /// When the effective pause ends or eases, in unix ms.
    end_ms: AtomicI64,
    /// Serialises changes of the fields and the store's flag.
    change: Mutex<Purposes>,
    /// Wakes postponed connections when the pause ends or eases.
    notify: Notify,
    /// Connections waiting for the pause to end (`blocked_clients`
    /// counts them, as Redis counts postponed clients).
    postponed: AtomicUsize,
}

/// A reason, other than `CLIENT PAUSE`, to hold writes back until it ends
/// (Redis's `pause_purpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A shutdown waiting for its replicas (`PAUSE_DURING_SHUTDOWN`).
    Shutdown,
    /// `FAILOVER` waiting for a replica to catch up and take over
    /// (`PAUSE_DURING_FAILOVER`).
    Failover,
}

/// Why clients are paused: each purpose ends on its own, so `CLIENT
/// UNPAUSE` does not lift a shutdown's or a failover's pause.
#[derive(Default)]
struct Purposes {
    /// `CLIENT PAUSE`: its kind and end.
    client: (u8, i64),
    /// The [`Purpose`]s holding writes back.
    shutdown: bool,
    failover: bool,
}

impl Purposes {
    /// The effective kind and when it ends or eases.
    fn effective(&self, now_ms: i64) -> (Kind, i64) {
        let (ck, ce) = self.client;
        let client = if ck != Kind::Off as u8 && ce >= now_ms {
            (Kind::from_u8(ck), ce)
        } else {
            (Kind::Off, 0)
        };
        if !(self.shutdown || self.failover) || client.0 == Kind::All {
            // An ALL pause of a client eases to a purpose's WRITE pause at
            // its end, when this is computed again.
            return client;
        }
        (Kind::Write, i64::MAX)
    }
}

impl Pause {
    /// Pauses until `end_ms`; a pause already on keeps the later end and
    /// the more restrictive kind (Redis's `pauseClients`). An end already
    /// past (`CLIENT PAUSE 0`) pauses nothing.
    pub fn pause(&self, store: &Store, end_ms: i64, kind: Kind, now_ms: i64) {
        let mut p = self.change.lock();
        let cur = Kind::from_u8(self.kind.load(Ordering::Relaxed));
        let (ck, ce) = p.client;
        p.client = if ck == Kind::Off as u8 || ce < now_ms {
            (kind as u8, end_ms)
        } else {
            ((kind as u8).max(ck), end_ms.max(ce))
        };
        let (kind, end) = p.effective(now_ms);
        self.set(store, kind, end, cur);
    }

    /// Ends the pause (`CLIENT UNPAUSE`); postponed commands run again.
    pub fn unpause(&self, store: &Store) {
        let mut p = self.change.lock();
        let cur = Kind::from_u8(self.kind.load(Ordering::Relaxed));
        p.client = (Kind::Off as u8, 0);
        let (kind, end) = p.effective(crate::command::ctx::unix_ms());
        self.set(store, kind, end, cur);
    }

    /// Starts or ends a [`Purpose`]'s pause of writes, with no end time.
    pub fn hold_writes(&self, store: &Store, purpose: Purpose, on: bool) {
        let mut p = self.change.lock();
        let cur = Kind::from_u8(self.kind.load(Ordering::Relaxed));
        match purpose {
            Purpose::Shutdown => p.shutdown = on,
            Purpose::Failover => p.failover = on,
        }
        let (kind, end) = p.effective(crate::command::ctx::unix_ms());
        self.set(store, kind, end, cur);
    }

    /// What is paused now, ending a pause whose time has passed (Redis's
    /// `checkClientPauseTimeoutAndReturnIfPaused`).
    #[inline]
    pub fn active(&self, store: &Store, now_ms: i64) -> Kind {
        if self.kind.load(Ordering::Relaxed) == Kind::Off as u8 {
            return Kind::Off;
        }
        self.check_end(store, now_ms)
    }

    #[cold]
    fn check_end(&self, store: &Store, now_ms: i64) -> Kind {
        let kind = Kind::from_u8(self.kind.load(Ordering::Acquire));
        if self.end_ms.load(Ordering::Acquire) >= now_ms {
            return kind;
        }
        let p = self.change.lock();
        let cur = Kind::from_u8(self.kind.load(Ordering::Relaxed));
        if cur != Kind::Off && self.end_ms.load(Ordering::Relaxed) < now_ms {
            let (kind, end) = p.effective(now_ms);
            self.set(store, kind, end, cur);
        }
        Kind::from_u8(self.kind.load(Ordering::Relaxed))
    }

    /// Stores a new state (under `change`); a pause that ends or eases
    /// wakes the postponed connections to try their commands again.
    fn set(&self, store: &Store, kind: Kind, end_ms: i64, old: Kind) {
        self.end_ms.store(end_ms, Ordering::Release);
        self.kind.store(kind as u8, Ordering::Release);
        store
            .stats()
            .paused
            .store(kind != Kind::Off, Ordering::Release);
        if kind < old {
            self.notify.notify_waiters();
        }
        if kind != old {
            tracing::debug!(?kind, end_ms, "client pause");
        }
    }

    /// Waits until the pause may have ended or eased: an unpause, or the
    /// end time. The caller then retries its command, which checks again.
    pub async fn changed(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.kind.load(Ordering::Acquire) == Kind::Off as u8 {
            return;
        }
        let left = self.end_ms.load(Ordering::Acquire) - crate::command::ctx::unix_ms();
        // One millisecond past the end, so the retry sees it passed.
        let sleep = tokio::time::sleep(Duration::from_millis(left.max(0) as u64 + 1));
        tokio::select! {
            _ = notified => {}
            _ = sleep => {}
        }
    }

    /// Counts a connection in or out of the postponed ones.
    pub fn postponed(&self, waiting: bool) {
        if waiting {
            self.postponed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.postponed.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Connections waiting for the pause to end.
    pub fn postponed_clients(&self) -> usize {
        self.postponed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(1, 1, std::sync::Arc::new(ferrite_storage::NoObserver))
    }

    #[test]
    fn each_purpose_ends_on_its_own() {
        let (s, p) = (store(), Pause::default());
        let now = crate::command::ctx::unix_ms();
        p.hold_writes(&s, Purpose::Shutdown, true);
        assert_eq!(p.active(&s, now), Kind::Write);
        // CLIENT PAUSE ALL over it, then CLIENT UNPAUSE: the shutdown's
        // WRITE pause stays.
        p.pause(&s, now + 60_000, Kind::All, now);
        assert_eq!(p.active(&s, now), Kind::All);
        p.unpause(&s);
        assert_eq!(p.active(&s, now), Kind::Write);
        // A client's WRITE pause outlives the shutdown's.
        p.pause(&s, now + 60_000, Kind::Write, now);
        p.hold_writes(&s, Purpose::Shutdown, false);
        assert_eq!(p.active(&s, now), Kind::Write);
        p.unpause(&s);
        assert_eq!(p.active(&s, now), Kind::Off);
        // Two purposes: writes stay held until both end.
        p.hold_writes(&s, Purpose::Shutdown, true);
        p.hold_writes(&s, Purpose::Failover, true);
        p.hold_writes(&s, Purpose::Shutdown, false);
        assert_eq!(p.active(&s, now), Kind::Write);
        p.hold_writes(&s, Purpose::Failover, false);
        assert_eq!(p.active(&s, now), Kind::Off);
    }

    #[test]
    fn a_second_pause_keeps_the_later_end_and_the_stricter_kind() {
        let (s, p) = (store(), Pause::default());
        p.pause(&s, 2_000, Kind::All, 1_000);
        p.pause(&s, 1_500, Kind::Write, 1_000);
        assert_eq!(p.active(&s, 1_900), Kind::All);
        assert!(s.stats().paused.load(Ordering::Relaxed));
        assert_eq!(p.active(&s, 2_001), Kind::Off);
        assert!(!s.stats().paused.load(Ordering::Relaxed));
    }

    #[test]
    fn a_pause_after_an_ended_one_starts_afresh() {
        let (s, p) = (store(), Pause::default());
        p.pause(&s, 2_000, Kind::All, 1_000);
        p.pause(&s, 5_000, Kind::Write, 3_000);
        assert_eq!(p.active(&s, 4_000), Kind::Write);
    }

    #[test]
    fn pause_zero_and_unpause_pause_nothing() {
        let (s, p) = (store(), Pause::default());
        p.pause(&s, 0, Kind::All, 1_000);
        assert_eq!(p.active(&s, 1_000), Kind::Off);
        p.pause(&s, 9_000, Kind::Write, 1_000);
        p.unpause(&s);
        assert_eq!(p.active(&s, 1_000), Kind::Off);
        assert!(!s.stats().paused.load(Ordering::Relaxed));
    }
}
