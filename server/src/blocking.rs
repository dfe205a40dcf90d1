//! Clients blocked on keys (`BLPOP`, `BLMOVE`, `BLMPOP`, `BZPOPMIN`, ...),
//! after Redis's `blocked.c`.
//!
//! A blocking command that finds nothing registers a [`Waiter`] under every
//! key it waits on, **while its shard locks are held**, so a push that
//! lands after its check necessarily sees it. A write that creates a list or
//! sorted set reports the key through the storage observer
//! ([`Blocking::key_ready`]); after the writing command finishes, the
//! writer's connection serves the waiters of each ready key in the order
//! they blocked ([`crate::commands::list::serve_ready`]), executing the pop
//! on their behalf and sending them the reply. The waiting connection only
//! waits for that reply, its timeout, `CLIENT UNBLOCK`, a kill or EOF.
//!
//! Lock order is always shard locks, then the registry lock; the registry
//! lock is never held while a shard is locked afresh.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

impl End {
    /// `LEFT` / `RIGHT` as Redis writes it in propagated commands.
    pub fn name(self) -> &'static [u8] {
        match self {
            End::Left => b"LEFT",
            End::Right => b"RIGHT",
        }
    }
}

/// What a waiter does once one of its keys has data.
#[derive(Debug, Clone)]
pub enum BlockOp {
    /// `BLPOP`/`BRPOP` (`count` = None) or `BLMPOP` (`count` = Some).
    ListPop { end: End, count: Option<usize> },
    /// `BLMOVE` / `BRPOPLPUSH` (`rpoplpush` selects the propagated form).
    ListMove {
        from: End,
        to: End,
        dest: Bytes,
        rpoplpush: bool,
    },
    /// `BZPOPMIN`/`BZPOPMAX` (`count` = None) or `BZMPOP` (`count` = Some).
    ZPop { max: bool, count: Option<usize> },
    /// `XREAD`/`XREADGROUP ... BLOCK` (boxed: the largest op).
    Stream(Box<StreamRead>),
}

/// What a blocked `XREAD`/`XREADGROUP` waits for.
#[derive(Debug, Clone)]
pub struct StreamRead {
    /// Each key with the ID its entries must follow (`StreamId::MAX` for
    /// `>`: the group's last delivered ID when served).
    pub ids: Vec<(Bytes, ferrite_storage::StreamId)>,
    /// Most entries per stream in the reply.
    pub count: usize,
    /// `XREADGROUP`'s group and consumer.
    pub group: Option<(Bytes, Bytes)>,
    pub noack: bool,
}

impl BlockOp {
    /// Whether the op waits for a sorted set rather than a list.
    pub fn wants_zset(&self) -> bool {
        matches!(self, BlockOp::ZPop { .. })
    }

    /// Whether the op waits for a stream.
    pub fn wants_stream(&self) -> bool {
        matches!(self, BlockOp::Stream(_))
    }

    /// The timeout reply is a null array (pops) or a null bulk (moves).
    fn null_array_on_timeout(&self) -> bool {
        !matches!(self, BlockOp::ListMove { .. })
    }
}

/// One blocked client.
pub struct Waiter {
    pub client_id: u64,
    pub db: usize,
    pub resp3: bool,
    pub keys: Vec<Bytes>,
    pub op: BlockOp,
    tx: Mutex<Option<oneshot::Sender<BytesMut>>>,
}

impl Waiter {
    /// The empty reply a timeout or `CLIENT UNBLOCK ... TIMEOUT` produces.
    pub fn timeout_reply(&self) -> BytesMut {
        let mut out = ferrite_protocol::ReplyBuf::new();
        out.resp3 = self.resp3;
        if self.op.null_array_on_timeout() {
            out.null_array();
        } else {
            out.null();
        }
        out.buf
    }
}

/// What the blocked connection holds while it waits.
pub struct Blocked {
    pub waiter: Arc<Waiter>,
    pub rx: oneshot::Receiver<BytesMut>,
    /// Absolute deadline in unix ms; 0 = wait forever.
    pub deadline_ms: i64,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<(usize, Bytes), VecDeque<Arc<Waiter>>>,
    by_client: HashMap<u64, Arc<Waiter>>,
    ready: Vec<(usize, Bytes)>,
}

/// The registry of blocked clients.
#[derive(Default)]
pub struct Blocking {
    inner: Mutex<Inner>,
    /// Number of blocked clients: the cheap check that keeps every list
    /// write free of the registry lock when nobody waits.
    count: AtomicUsize,
    /// Number of keys reported ready and not yet served.
    pending: AtomicUsize,
}

impl Blocking {
    /// Blocked clients (`INFO` `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Keys that have waiters (`INFO` `total_blocking_keys`).
    pub fn blocking_keys(&self) -> usize {
        if self.blocked_clients() == 0 {
            return 0;
        }
        self.inner.lock().by_key.len()
    }

    /// Whether `client_id` is blocked.
    pub fn is_blocked(&self, client_id: u64) -> bool {
        self.blocked_clients() > 0 && self.inner.lock().by_client.contains_key(&client_id)
    }

    /// Registers a waiter on its keys. Call with the keys' shard locks held.
    pub fn block(
        &self,
        client_id: u64,
        db: usize,
        resp3: bool,
        keys: Vec<Bytes>,
        op: BlockOp,
        deadline_ms: i64,
    ) -> Blocked {
        let (tx, rx) = oneshot::channel();
        let w = Arc::new(Waiter {
            client_id,
            db,
            resp3,
            keys,
            op,
            tx: Mutex::new(Some(tx)),
        });
        let mut g = self.inner.lock();
        for (i, k) in w.keys.iter().enumerate() {
            if w.keys[..i].contains(k) {
                continue;
            }
            g.by_key
                .entry((db, k.clone()))
                .or_default()
                .push_back(w.clone());
        }
        g.by_client.insert(client_id, w.clone());
        self.count.fetch_add(1, Ordering::Relaxed);
        Blocked {
            waiter: w,
            rx,
            deadline_ms,
        }
    }

    /// Storage reports that `key` now holds a list or sorted set. Called with
    /// the key's shard lock held.
    pub fn key_ready(&self, db: usize, key: &[u8]) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut g = self.inner.lock();
        let k = (db, Bytes::copy_from_slice(key));
        if g.by_key.contains_key(&k) && !g.ready.contains(&k) {
            g.ready.push(k);
            self.pending.fetch_add(1, Ordering::Release);
        }
    }

    /// Marks every blocked key of `db` ready (`SWAPDB`, `MOVE` of whole dbs).
    pub fn db_ready(&self, db: usize) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut g = self.inner.lock();
        let keys: Vec<(usize, Bytes)> = g.by_key.keys().filter(|k| k.0 == db).cloned().collect();
        for k in keys {
            if !g.ready.contains(&k) {
                g.ready.push(k);
                self.pending.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// Whether any key waits to be served (checked after every command).
    #[inline]
    pub fn has_ready(&self) -> bool {
        self.pending.load(Ordering::Acquire) > 0
    }

    /// Takes the ready keys, in the order they became ready.
    pub fn take_ready(&self) -> Vec<(usize, Bytes)> {
        let mut g = self.inner.lock();
        let r = std::mem::take(&mut g.ready);
        self.pending.fetch_sub(r.len(), Ordering::Release);
        r
    }

    /// The waiters on a key, in the order they blocked.
    pub fn waiters(&self, db: usize, key: &Bytes) -> Vec<Arc<Waiter>> {
        let g = self.inner.lock();
        g.by_key
            .get(&(db, key.clone()))
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes a waiter from every queue and takes its reply channel; None
    /// when it was already served, timed out or unblocked.
    fn take_locked(&self, g: &mut Inner, w: &Arc<Waiter>) -> Option<oneshot::Sender<BytesMut>> {
        let tx = w.tx.lock().take()?;
        for k in &w.keys {
            let key = (w.db, k.clone());
            if let Some(q) = g.by_key.get_mut(&key) {
                q.retain(|x| !Arc::ptr_eq(x, w));
                if q.is_empty() {
                    g.by_key.remove(&key);
                }
            }
        }
        g.by_client.remove(&w.client_id);
        self.count.fetch_sub(1, Ordering::Relaxed);
        Some(tx)
    }

    /// Claims a waiter to serve it (with the shard locks of its op held).
    pub fn claim(&self, w: &Arc<Waiter>) -> Option<oneshot::Sender<BytesMut>> {
        let mut g = self.inner.lock();
        self.take_locked(&mut g, w)
    }

    /// Removes a waiter that gave up (timeout, EOF, kill). False when it was
    /// already claimed: its reply is in the channel or about to be.
    pub fn cancel(&self, w: &Arc<Waiter>) -> bool {
        let mut g = self.inner.lock();
        self.take_locked(&mut g, w).is_some()
    }

    /// Answers every blocked client with an `-UNBLOCKED` error (Redis's
    /// `disconnectAllBlockedClients` when a primary becomes a replica; the
    /// clients stay connected here).
    pub fn unblock_all(&self, msg: &[u8]) {
        if self.blocked_clients() == 0 {
            return;
        }
        let mut g = self.inner.lock();
        let all: Vec<Arc<Waiter>> = g.by_client.values().cloned().collect();
        let mut sends = Vec::new();
        for w in all {
            if let Some(tx) = self.take_locked(&mut g, &w) {
                sends.push((w, tx));
            }
        }
        drop(g);
        for (w, tx) in sends {
            let mut out = ferrite_protocol::ReplyBuf::new();
            out.resp3 = w.resp3;
            out.error(msg);
            let _ = tx.send(out.buf);
        }
    }

    /// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: true if the client was blocked.
    pub fn unblock(&self, client_id: u64, error: bool) -> bool {
        let mut g = self.inner.lock();
        let Some(w) = g.by_client.get(&client_id).cloned() else {
            return false;
        };
        let Some(tx) = self.take_locked(&mut g, &w) else {
            return false;
        };
        drop(g);
        let reply = if error {
            let mut out = ferrite_protocol::ReplyBuf::new();
            out.resp3 = w.resp3;
            out.error(b"UNBLOCKED client unblocked via CLIENT UNBLOCK");
            out.buf
        } else {
            w.timeout_reply()
        };
        let _ = tx.send(reply);
        true
    }
}
