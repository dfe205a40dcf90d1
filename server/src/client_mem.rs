//! Client memory accounting and client eviction (Redis's
//! `getClientMemoryUsage`, `stat_clients_type_memory` and `evictClients`).
//!
//! A client's memory has two parts, each one atomic word on its
//! [`ClientHandle`]:
//! - `mem`, its own buffers, written only by its connection task through a
//!   [`MemTracker`]: the allocated query buffer, the allocated reply buffer,
//!   the queued transaction and a fixed overhead. The task recomputes the
//!   figure after each batch and touches an atomic only when it changed, so
//!   a client whose buffers keep their size costs no atomic read-modify-write
//!   per command.
//! - `queued`, the bytes publishers queued for a subscriber and its
//!   connection has not yet moved into its reply buffer (added by
//!   publishers, subtracted by the connection; see `crate::pubsub`).
//!
//! The server totals (`Registry::mem`, `PubSub::queued_total`) move with
//! every change of either word. When a client stops counting (it closed, it
//! was evicted, it became a replica link) its words get the [`DETACHED`]
//! bit, atomically with reading what they held, and that much leaves the
//! totals; a change made after that sees the bit and leaves the totals
//! alone. So a client is subtracted exactly once, however its own task,
//! publishers and an evicting connection interleave.
//!
//! Our connections stop reading while a write is blocked, so a client that
//! does not read its replies holds at most one batch of output (see
//! `crate::connection`); Redis's reply lists can grow without bound instead.
//!
//! Must not take a shard lock: eviction runs before commands, with none held.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::client::{Client, ClientHandle};
use crate::shared::Shared;

/// Set on a client's memory words once they are no longer in the totals.
pub const DETACHED: u64 = 1 << 63;

/// What a client costs beyond its buffers: its state structs (Redis adds
/// `zmalloc_size(c)` the same way).
pub const CLIENT_OVERHEAD: usize =
    std::mem::size_of::<Client>() + std::mem::size_of::<ClientHandle>();

/// Per queued transaction command, beyond its argument bytes.
const QUEUED_OVERHEAD: usize = std::mem::size_of::<crate::client::Queued>();

/// Redis's floor for `maxmemory-clients`, so a bad setting cannot make the
/// server unreachable (`getClientEvictionLimit`).
const MIN_CLIENTS_LIMIT: u64 = 128 * 1024;

/// The low bits of a memory word: the bytes it holds.
#[inline]
pub fn bytes_of(word: u64) -> u64 {
    word & !DETACHED
}

/// Memory of normal and pub/sub clients (`mem_clients_normal`): what
/// `maxmemory-clients` limits.
pub fn normal_clients_memory(srv: &Shared) -> i64 {
    (srv.clients.mem.load(Ordering::Relaxed) + srv.pubsub.queued_total.load(Ordering::Relaxed))
        .max(0)
}

/// Memory of replica links (`mem_clients_slaves`): the snapshot a full
/// resync holds while sending it, and the link's buffers.
pub fn replica_clients_memory(srv: &Shared) -> i64 {
    srv.clients.replica_mem.load(Ordering::Relaxed).max(0)
}

/// All clients' memory, the term `used_memory` adds for them.
pub fn clients_memory(srv: &Shared) -> i64 {
    normal_clients_memory(srv) + replica_clients_memory(srv)
}

/// What key eviction does not count (`mem_not_counted_for_evict`): replica
/// buffers, as Redis's `freeMemoryGetNotCountedMemory`, so evicting keys
/// (which are propagated to the replicas as `DEL`s) cannot feed itself.
pub fn not_counted_for_evict(srv: &Shared) -> i64 {
    replica_clients_memory(srv)
}

/// A client's memory as `CLIENT LIST` `tot-mem` shows it.
pub fn client_total(h: &ClientHandle) -> u64 {
    bytes_of(h.mem.load(Ordering::Relaxed)) + bytes_of(h.queued.load(Ordering::Relaxed))
}

/// A client's unwritten output (`CLIENT LIST` `omem`): what publishers
/// queued for it plus the reply bytes a blocked write still holds.
pub fn client_output(h: &ClientHandle) -> u64 {
    bytes_of(h.queued.load(Ordering::Relaxed)) + h.obuf_pending.load(Ordering::Relaxed) as u64
}

/// Takes a client out of the totals for good (closed, evicted, or handed
/// to replication). Idempotent.
pub fn detach(srv: &Shared, h: &ClientHandle) {
    let prev = h.mem.fetch_or(DETACHED, Ordering::Relaxed);
    if prev & DETACHED == 0 {
        srv.clients.mem.fetch_sub(prev as i64, Ordering::Relaxed);
    }
    let prev = h.queued.fetch_or(DETACHED, Ordering::Relaxed);
    if prev & DETACHED == 0 {
        srv.pubsub
            .queued_total
            .fetch_sub(prev as i64, Ordering::Relaxed);
    }
}

/// The sizes a connection task reports after each batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buffers {
    /// Allocated query buffer.
    pub qbuf_cap: usize,
    /// Allocated reply buffer.
    pub obuf_cap: usize,
    /// Argument bytes of the commands queued since `MULTI`.
    pub multi_argv: usize,
    /// Number of commands queued since `MULTI`.
    pub multi_cmds: usize,
}

impl Buffers {
    /// The client's own memory from these sizes.
    fn figure(&self) -> u64 {
        (CLIENT_OVERHEAD
            + self.qbuf_cap
            + self.obuf_cap
            + self.multi_argv
            + self.multi_cmds * QUEUED_OVERHEAD) as u64
    }
}

/// A connection task's view of its own memory word. Dropping it takes the
/// client out of the totals, also when the task unwinds.
pub struct MemTracker {
    srv: Arc<Shared>,
    handle: Arc<ClientHandle>,
    last: Buffers,
    figure: u64,
}

impl MemTracker {
    /// Starts counting a new client with `initial` buffers.
    pub fn new(srv: Arc<Shared>, handle: Arc<ClientHandle>, initial: Buffers) -> Self {
        let mut t = MemTracker {
            srv,
            handle,
            last: Buffers::default(),
            figure: 0,
        };
        t.update(initial);
        t
    }

    /// Reports the buffers' current sizes. Costs comparisons only when
    /// nothing changed; on growth with `maxmemory-clients` set, it also
    /// evicts clients, so a client that never completes a command is caught
    /// while its query buffer grows. True when it evicted someone (maybe
    /// this very client).
    #[inline]
    pub fn update(&mut self, now: Buffers) -> bool {
        if now == self.last {
            return false;
        }
        self.changed(now)
    }

    #[cold]
    fn changed(&mut self, now: Buffers) -> bool {
        let h = &self.handle;
        if now.qbuf_cap != self.last.qbuf_cap {
            h.qbuf_cap.store(now.qbuf_cap, Ordering::Relaxed);
        }
        if now.obuf_cap != self.last.obuf_cap {
            h.obuf_cap.store(now.obuf_cap, Ordering::Relaxed);
        }
        if now.multi_argv != self.last.multi_argv {
            h.multi_mem.store(now.multi_argv, Ordering::Relaxed);
        }
        self.last = now;
        let figure = now.figure();
        if figure == self.figure {
            return false;
        }
        let delta = figure.wrapping_sub(self.figure);
        self.figure = figure;
        // Only this task changes the low bits, so they go from the old
        // figure to the new one; an evictor may have set the top bit.
        let prev = h.mem.fetch_add(delta, Ordering::Relaxed);
        if prev & DETACHED != 0 {
            return false;
        }
        self.srv
            .clients
            .mem
            .fetch_add(delta as i64, Ordering::Relaxed);
        (delta as i64) > 0 && evict_clients(&self.srv)
    }

    /// Takes this client out of the normal clients' totals (it became a
    /// replica link, which is counted as replica memory instead).
    pub fn detach(&self) {
        detach(&self.srv, &self.handle);
    }
}

impl Drop for MemTracker {
    fn drop(&mut self) {
        detach(&self.srv, &self.handle);
    }
}

/// Bytes charged to `mem_clients_slaves` while alive (a replica link's
/// buffers, the snapshot it is sending).
pub struct ReplicaCharge<'a> {
    total: &'a AtomicI64,
    bytes: i64,
}

impl<'a> ReplicaCharge<'a> {
    /// Charges `bytes` to the replica total until dropped.
    pub fn new(srv: &'a Shared, bytes: usize) -> Self {
        let total = &srv.clients.replica_mem;
        let bytes = bytes as i64;
        total.fetch_add(bytes, Ordering::Relaxed);
        ReplicaCharge { total, bytes }
    }
}

impl Drop for ReplicaCharge<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The effective `maxmemory-clients` in bytes, 0 when off: a negative
/// setting is a percentage of `maxmemory` (off while `maxmemory` is 0),
/// and never less than 128 KB (Redis's `getClientEvictionLimit`).
pub fn eviction_limit(maxmemory_clients: i64, maxmemory: i64) -> u64 {
    let limit = if maxmemory_clients < 0 && maxmemory > 0 {
        (maxmemory as f64 * (-maxmemory_clients) as f64 / 100.0) as u64
    } else if maxmemory_clients > 0 {
        maxmemory_clients as u64
    } else {
        return 0;
    };
    limit.max(MIN_CLIENTS_LIMIT)
}

/// Disconnects the clients using the most memory until normal and pub/sub
/// clients together are under `maxmemory-clients` (Redis's `evictClients`).
/// Never a client with `CLIENT NO-EVICT on`, nor a replica link. Costs one
/// relaxed load when the limit is off, two more loads when under it.
/// True when it disconnected someone.
#[inline]
pub fn evict_clients(srv: &Shared) -> bool {
    let mc = srv.hot.maxmemory_clients.load(Ordering::Relaxed);
    if mc == 0 {
        return false;
    }
    let limit = eviction_limit(mc, srv.hot.maxmemory.load(Ordering::Relaxed));
    if limit == 0 || (normal_clients_memory(srv) as u64) < limit {
        return false;
    }
    evict_over(srv, limit)
}

#[cold]
fn evict_over(srv: &Shared, limit: u64) -> bool {
    // One eviction at a time, so two connections over the limit together
    // do not both disconnect a client for the same excess.
    let _one = srv.clients.evicting.lock();
    if (normal_clients_memory(srv) as u64) < limit {
        return false;
    }
    let mut candidates: Vec<(u64, Arc<ClientHandle>)> = srv
        .clients
        .all()
        .into_iter()
        .filter(|h| {
            h.mem.load(Ordering::Relaxed) & DETACHED == 0
                && !h.no_evict.load(Ordering::Relaxed)
                && !h.replica.load(Ordering::Relaxed)
        })
        .map(|h| (client_total(&h), h))
        .collect();
    // Largest first: Redis walks its memory buckets from the top.
    candidates.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    let now = crate::command::ctx::unix_ms();
    let mut evicted = false;
    for (_, h) in candidates {
        if (normal_clients_memory(srv) as u64) < limit {
            return evicted;
        }
        if h.killed.load(Ordering::Acquire) {
            // Killed already and about to close: what it holds is as good
            // as freed.
            detach(srv, &h);
            continue;
        }
        tracing::info!("Evicting client: {}", h.info_line(now));
        h.kill();
        // Freed at once, as Redis's `freeClient`: the task only has to
        // notice the kill, and its bytes no longer count anywhere.
        detach(srv, &h);
        srv.stats.evicted_clients.fetch_add(1, Ordering::Relaxed);
        evicted = true;
    }
    if (normal_clients_memory(srv) as u64) >= limit {
        tracing::warn!("Over client maxmemory after evicting all evictable clients");
    }
    evicted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_follows_redis() {
        assert_eq!(eviction_limit(0, 100 << 20), 0);
        assert_eq!(eviction_limit(3 << 20, 0), 3 << 20);
        // A percentage of maxmemory, off without maxmemory.
        assert_eq!(eviction_limit(-10, 100 << 20), 10 << 20);
        assert_eq!(eviction_limit(-10, 0), 0);
        // Never under 128 KB.
        assert_eq!(eviction_limit(1000, 0), 128 * 1024);
        assert_eq!(eviction_limit(-1, 1 << 20), 128 * 1024);
    }

    #[test]
    fn detached_bit_is_outside_any_byte_count() {
        assert_eq!(bytes_of(DETACHED | 12345), 12345);
        assert_eq!(bytes_of(12345), 12345);
    }
}
