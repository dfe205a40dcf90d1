//! Client-side caching (Redis's `tracking.c`): which clients may cache which
//! keys, and the invalidation messages they get when those keys change.
//!
//! Two tables, as in Redis. The tracking table maps a key (of any
//! database) to the ids of the clients that read it while tracking in the
//! default mode; a change to the key sends each of them one invalidation
//! and forgets the key. The prefix table maps each `BCAST` prefix to its
//! clients and to the keys with that prefix changed since the last
//! broadcast; broadcasts go out after each command and from the cron.
//!
//! Storage reports every change through `Observer::key_modified` while
//! [`StoreStats::track_keys`] is set (while any client tracks or the table
//! still names keys), so a server nobody caches against pays one relaxed
//! load per change. Those reports arrive with shard locks held: the table
//! lock is a leaf (lock order: shards, then the table, then the client
//! registry), and messages only ever go into channels or thread-local
//! buffers.
//!
//! Messages for other connections travel through their feed (the pub/sub
//! channel, `ClientHandle::feed`). A message for the connection whose
//! command caused it is collected in a thread-local buffer instead, so it
//! lands exactly where Redis puts it: before the command's reply when the
//! key was dropped before the command ran (eviction, the table's key
//! limit), after the reply (after the whole `EXEC`) when the command itself
//! changed the key (Redis's `tracking_pending_keys`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use ferrite_storage::StoreStats;
use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::client::{ClientHandle, Registry};
use crate::pubsub::PubSub;

/// A client's tracking state bits (`ClientHandle::tracking`), Redis's
/// `CLIENT_TRACKING*` flags.
pub mod flag {
    /// Tracking is on.
    pub const ON: u32 = 1;
    /// The redirect target is gone (`CLIENT LIST` flag `R`).
    pub const BROKEN_REDIR: u32 = 1 << 1;
    /// Broadcast mode (flag `B`).
    pub const BCAST: u32 = 1 << 2;
    /// Only keys read right after `CLIENT CACHING yes` are tracked.
    pub const OPTIN: u32 = 1 << 3;
    /// Keys read right after `CLIENT CACHING no` are not tracked.
    pub const OPTOUT: u32 = 1 << 4;
    /// `CLIENT CACHING yes|no` was given for the next command.
    pub const CACHING: u32 = 1 << 5;
    /// No invalidations for keys this client changed itself.
    pub const NOLOOP: u32 = 1 << 6;
}

/// The `CLIENT LIST` flag letters of a tracking state (`t`, `R`, `B`).
pub fn list_flags(bits: u32, out: &mut String) {
    if bits & flag::ON != 0 {
        out.push('t');
    }
    if bits & flag::BROKEN_REDIR != 0 {
        out.push('R');
    }
    if bits & flag::BCAST != 0 {
        out.push('B');
    }
}

/// The `CLIENT LIST` `redir=` value: the redirect id while tracking, else -1.
pub fn list_redir(bits: u32, redir: &AtomicU64) -> i64 {
    if bits & flag::ON != 0 {
        redir.load(Ordering::Relaxed) as i64
    } else {
        -1
    }
}

/// One tracking client as the tables know it.
struct Tracker {
    handle: Arc<ClientHandle>,
    /// Its `BCAST` prefixes, in byte order (`CLIENT TRACKINGINFO`).
    prefixes: BTreeSet<Box<[u8]>>,
}

/// One `BCAST` prefix.
#[derive(Default)]
struct Prefix {
    /// Keys changed since the last broadcast, each with the id of the
    /// client that changed it last (0: no client, e.g. an expiry), for
    /// `NOLOOP`. In byte order, as Redis's radix tree sends them.
    keys: BTreeMap<Box<[u8]>, u64>,
    clients: BTreeSet<u64>,
}

#[derive(Default)]
struct Table {
    /// Key → ids of the clients that may cache it, sorted. Ids of clients
    /// that stopped tracking stay until the key changes, as in Redis.
    keys: HashMap<Box<[u8]>, SmallVec<[u64; 2]>>,
    /// Ids across all keys (`tracking_total_items`).
    items: usize,
    prefixes: BTreeMap<Box<[u8]>, Prefix>,
    /// Every client with tracking on, by id.
    clients: HashMap<u64, Tracker>,
    /// Rounds in a row the key limit could not be reached (Redis's
    /// `timeout_counter`): each makes the next round try harder.
    limit_rounds: usize,
}

/// What the current thread's command sees of tracking.
#[derive(Default)]
struct Current {
    /// The client whose command runs on this thread (0: none).
    id: u64,
    /// Its handler is running (Redis's `fixed_time_expire`): invalidations
    /// it causes for its own keys wait until after the reply.
    in_call: bool,
    /// Messages for this client that precede the reply.
    before: BytesMut,
    /// Messages for this client that follow the reply.
    after: BytesMut,
}

thread_local! {
    static CURRENT: RefCell<Current> = RefCell::default();
}

/// The server's tracking state.
pub struct Tracking {
    table: Mutex<Table>,
    registry: Arc<Registry>,
    pubsub: Arc<PubSub>,
    stats: OnceLock<Arc<StoreStats>>,
    /// Clients with tracking on (`tracking_clients`): the one relaxed load
    /// each command pays when nobody tracks.
    clients: AtomicUsize,
    /// Keys in the tracking table, readable without the lock.
    keys: AtomicUsize,
    /// `BCAST` prefixes, readable without the lock.
    prefixes: AtomicUsize,
    /// `tracking-table-max-keys` (0 = no limit).
    pub max_keys: AtomicU64,
    /// A prefix has changed keys waiting to be broadcast.
    bcast_pending: AtomicBool,
}

impl Tracking {
    /// Empty tables; [`Tracking::attach`] must follow once the store exists.
    pub fn new(registry: Arc<Registry>, pubsub: Arc<PubSub>) -> Self {
        Tracking {
            table: Mutex::new(Table::default()),
            registry,
            pubsub,
            stats: OnceLock::new(),
            clients: AtomicUsize::new(0),
            keys: AtomicUsize::new(0),
            prefixes: AtomicUsize::new(0),
            max_keys: AtomicU64::new(1_000_000),
            bcast_pending: AtomicBool::new(false),
        }
    }

    /// Connects the tables to the store's flag that turns change reports on.
    pub fn attach(&self, stats: Arc<StoreStats>) {
        let _ = self.stats.set(stats);
    }

    /// Clients with tracking on (`tracking_clients`).
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// `tracking_total_keys`, `tracking_total_items`, `tracking_total_prefixes`.
    pub fn totals(&self) -> (usize, usize, usize) {
        let t = self.table.lock();
        (t.keys.len(), t.items, t.prefixes.len())
    }

    /// Keeps the counters and the store's reporting flag in step with the
    /// table; called with the table locked after it changed.
    fn sync(&self, t: &Table) {
        self.clients.store(t.clients.len(), Ordering::Relaxed);
        self.keys.store(t.keys.len(), Ordering::Relaxed);
        self.prefixes.store(t.prefixes.len(), Ordering::Relaxed);
        if let Some(s) = self.stats.get() {
            let on = !t.clients.is_empty() || !t.keys.is_empty();
            if s.track_keys.load(Ordering::Relaxed) != on {
                s.track_keys.store(on, Ordering::Relaxed);
            }
        }
    }

    /// Turns tracking on for `handle` or changes its options (Redis's
    /// `enableTracking`): the caller has validated `options` and the
    /// prefixes. `BCAST` prefixes add to the ones it has.
    pub fn enable(
        &self,
        handle: &Arc<ClientHandle>,
        redirect: u64,
        options: u32,
        prefixes: &[Bytes],
    ) {
        let mut t = self.table.lock();
        let id = handle.id;
        t.clients.entry(id).or_insert_with(|| Tracker {
            handle: handle.clone(),
            prefixes: BTreeSet::new(),
        });
        let old = handle.tracking.load(Ordering::Relaxed);
        let mut bits = (old | flag::ON)
            & !(flag::BROKEN_REDIR | flag::BCAST | flag::OPTIN | flag::OPTOUT | flag::NOLOOP);
        handle.tracking_redir.store(redirect, Ordering::Relaxed);
        if options & flag::BCAST != 0 {
            bits |= flag::BCAST;
            if prefixes.is_empty() {
                add_prefix(&mut t, id, b"");
            }
            for p in prefixes {
                add_prefix(&mut t, id, p);
            }
        }
        bits |= options & (flag::OPTIN | flag::OPTOUT | flag::NOLOOP);
        handle.tracking.store(bits, Ordering::Relaxed);
        self.sync(&t);
    }

    /// Turns tracking off (Redis's `disableTracking`): `CLIENT TRACKING
    /// off`, `RESET`, disconnection. Its ids stay in the key table until
    /// those keys change.
    pub fn disable(&self, handle: &ClientHandle) {
        if handle.tracking.load(Ordering::Relaxed) & flag::ON == 0 {
            return;
        }
        let mut t = self.table.lock();
        if let Some(tr) = t.clients.remove(&handle.id) {
            for p in &tr.prefixes {
                if let Some(st) = t.prefixes.get_mut(p) {
                    st.clients.remove(&handle.id);
                    if st.clients.is_empty() {
                        t.prefixes.remove(p);
                    }
                }
            }
        }
        handle.tracking.store(0, Ordering::Relaxed);
        self.sync(&t);
    }

    /// A client's `BCAST` prefixes in byte order (`CLIENT TRACKINGINFO`).
    pub fn prefixes_of(&self, id: u64) -> Option<Vec<Box<[u8]>>> {
        let t = self.table.lock();
        let tr = t.clients.get(&id)?;
        if tr.prefixes.is_empty() {
            return None;
        }
        Some(tr.prefixes.iter().cloned().collect())
    }

    /// Redis's `checkPrefixCollisionsOrReply`: the first new prefix that
    /// overlaps one the client has, or another new one, as its error text.
    pub fn prefix_collision(&self, id: u64, new: &[Bytes]) -> Option<String> {
        let t = self.table.lock();
        let mine = t.clients.get(&id).map(|tr| &tr.prefixes);
        let overlap = |a: &[u8], b: &[u8]| {
            let n = a.len().min(b.len());
            a[..n] == b[..n]
        };
        let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        for (i, p) in new.iter().enumerate() {
            if let Some(old) = mine.and_then(|m| m.iter().find(|o| overlap(o, p))) {
                return Some(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    show(p),
                    show(old)
                ));
            }
            if let Some(q) = new[i + 1..].iter().find(|q| overlap(p, q)) {
                return Some(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    show(p),
                    show(q)
                ));
            }
        }
        None
    }

    /// Remembers the keys a read-only command of `handle` read (Redis's
    /// `trackingRememberKeys`), unless `OPTIN`/`OPTOUT` with `CLIENT
    /// CACHING` say otherwise.
    pub fn remember(&self, handle: &ClientHandle, keys: impl Iterator<Item = Bytes>) {
        let bits = handle.tracking.load(Ordering::Relaxed);
        let caching = bits & flag::CACHING != 0;
        if (bits & flag::OPTIN != 0 && !caching) || (bits & flag::OPTOUT != 0 && caching) {
            return;
        }
        let mut t = self.table.lock();
        let id = handle.id;
        for k in keys {
            let ids = t.keys.entry(Box::from(&k[..])).or_default();
            if let Err(at) = ids.binary_search(&id) {
                ids.insert(at, id);
                t.items += 1;
            }
        }
        self.sync(&t);
    }

    /// `key` changed (Redis's `trackingInvalidateKey` with `bcast`):
    /// invalidates it for the clients caching it and queues it for the
    /// `BCAST` prefixes it matches, with the current client as the one who
    /// changed it.
    pub fn key_modified(&self, key: &[u8]) {
        // Clients may track in BCAST mode only, or read nothing yet.
        if self.keys.load(Ordering::Relaxed) == 0 && self.prefixes.load(Ordering::Relaxed) == 0 {
            return;
        }
        let cur = CURRENT.with(|c| c.borrow().id);
        let mut t = self.table.lock();
        if !t.prefixes.is_empty() {
            self.queue_bcast(&mut t, key, cur);
        }
        self.invalidate(&mut t, key);
        self.sync(&t);
    }

    /// `key` expired or was evicted: no client changed it, so `NOLOOP`
    /// broadcast clients hear of it too (Redis passes no client for these).
    /// The key's own invalidation already went out through
    /// [`Tracking::key_modified`] when storage deleted it.
    pub fn key_dropped(&self, key: &[u8]) {
        if self.prefixes.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut t = self.table.lock();
        if !t.prefixes.is_empty() {
            self.queue_bcast(&mut t, key, 0);
        }
    }

    fn queue_bcast(&self, t: &mut Table, key: &[u8], by: u64) {
        for (p, st) in t.prefixes.iter_mut() {
            if key.starts_with(p) {
                st.keys.insert(Box::from(key), by);
                self.bcast_pending.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Sends the invalidation of `key` to every client caching it and
    /// forgets the key (the table is locked).
    fn invalidate(&self, t: &mut Table, key: &[u8]) {
        let Some(ids) = t.keys.remove(key) else {
            return;
        };
        t.items -= ids.len();
        let (cur, in_call) = CURRENT.with(|c| {
            let c = c.borrow();
            (c.id, c.in_call)
        });
        let mut payload = None;
        for id in ids {
            let Some(tr) = t.clients.get(&id) else {
                continue;
            };
            let bits = tr.handle.tracking.load(Ordering::Relaxed);
            // A client that went BCAST since it read the key gets no
            // leftover invalidations.
            if bits & flag::ON == 0 || bits & flag::BCAST != 0 {
                continue;
            }
            if bits & flag::NOLOOP != 0 && id == cur {
                continue;
            }
            let p = payload.get_or_insert_with(|| key_array(key));
            self.send(&tr.handle, p, id == cur && in_call);
        }
    }

    /// Every database was (or one was) flushed (Redis's
    /// `trackingInvalidateKeysOnFlush`): every tracking client gets the
    /// null "everything" invalidation and the key table empties.
    pub fn flushed(&self) {
        let mut t = self.table.lock();
        let cur = CURRENT.with(|c| c.borrow().id);
        for tr in t.clients.values() {
            // Redis spells the null in the tracking client's protocol, even
            // when a redirect target speaks the other one.
            let null: &[u8] = if tr.handle.resp.load(Ordering::Relaxed) == 3 {
                b"_\r\n"
            } else {
                b"$-1\r\n"
            };
            self.send(&tr.handle, null, tr.handle.id == cur);
        }
        t.keys.clear();
        t.items = 0;
        self.sync(&t);
    }

    /// Keeps the key table within `tracking-table-max-keys` (Redis's
    /// `trackingLimitUsedSlots`): invalidates keys, as if changed, until it
    /// fits, trying harder each round it could not.
    pub fn limit(&self) {
        let max = self.max_keys.load(Ordering::Relaxed) as usize;
        if max == 0 || self.keys.load(Ordering::Relaxed) <= max {
            return;
        }
        let mut t = self.table.lock();
        if t.keys.len() <= max {
            t.limit_rounds = 0;
            return;
        }
        let effort = 100 * (t.limit_rounds + 1);
        let victims: Vec<Box<[u8]>> = t.keys.keys().take(effort).cloned().collect();
        for k in victims {
            self.invalidate(&mut t, &k);
            if t.keys.len() <= max {
                t.limit_rounds = 0;
                self.sync(&t);
                return;
            }
        }
        t.limit_rounds += 1;
        self.sync(&t);
    }

    /// Sends each `BCAST` prefix's changed keys to its clients (Redis's
    /// `trackingBroadcastInvalidationMessages`, run after each command and
    /// by the cron instead of before each event-loop sleep).
    pub fn broadcast(&self) {
        // A plain load first: every command of a tracking server calls this.
        if !self.bcast_pending.load(Ordering::Relaxed)
            || !self.bcast_pending.swap(false, Ordering::Relaxed)
        {
            return;
        }
        let mut t = self.table.lock();
        let t = &mut *t;
        for st in t.prefixes.values_mut() {
            if st.keys.is_empty() {
                continue;
            }
            let all = keys_array(&st.keys, None).unwrap_or_default();
            for id in &st.clients {
                let Some(tr) = t.clients.get(id) else {
                    continue;
                };
                if tr.handle.tracking.load(Ordering::Relaxed) & flag::NOLOOP != 0 {
                    if let Some(mine) = keys_array(&st.keys, Some(*id)) {
                        self.send(&tr.handle, &mine, false);
                    }
                } else {
                    self.send(&tr.handle, &all, false);
                }
            }
            st.keys.clear();
        }
    }

    /// The cron's share: the key limit and pending broadcasts.
    pub fn cron(&self) {
        if self.clients() > 0 {
            self.limit();
        }
        self.broadcast();
    }

    /// Sends one invalidation (`payload` is its RESP value: an array of
    /// keys or a null) on behalf of tracking client `tracker`, to it or its
    /// redirect target (Redis's `sendTrackingMessage`). `after`: the
    /// tracker is the current client and its command is running.
    fn send(&self, tracker: &ClientHandle, payload: &[u8], after: bool) {
        let redir = tracker.tracking_redir.load(Ordering::Relaxed);
        let target;
        let dest: &ClientHandle = if redir == 0 {
            tracker
        } else {
            match self.registry.get(redir) {
                Some(h) => {
                    target = h;
                    &target
                }
                None => {
                    tracker
                        .tracking
                        .fetch_or(flag::BROKEN_REDIR, Ordering::Relaxed);
                    if tracker.resp.load(Ordering::Relaxed) == 3 {
                        let mut m = BytesMut::with_capacity(40);
                        m.put_slice(b">2\r\n$21\r\ntracking-redir-broken\r\n:");
                        m.put_slice(itoa::Buffer::new().format(redir).as_bytes());
                        m.put_slice(b"\r\n");
                        self.deliver(tracker, m, after);
                    }
                    return;
                }
            }
        };
        let mut m = BytesMut::with_capacity(48 + payload.len());
        if dest.resp.load(Ordering::Relaxed) == 3 {
            m.put_slice(b">2\r\n$10\r\ninvalidate\r\n");
        } else if redir != 0 && subscribed(dest) {
            m.put_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n");
        } else {
            // RESP2 cannot carry a push on the tracker's own connection.
            return;
        }
        m.put_slice(payload);
        self.deliver(dest, m, after);
    }

    /// Puts a message on `dest`'s connection: into this thread's buffers
    /// when `dest` runs the current command, else into its feed.
    fn deliver(&self, dest: &ClientHandle, msg: BytesMut, after: bool) {
        let mine = CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if c.id != dest.id {
                return false;
            }
            if after && c.in_call {
                c.after.put_slice(&msg);
            } else {
                c.before.put_slice(&msg);
            }
            true
        });
        if mine {
            return;
        }
        if let Some(feed) = dest.feed.get().and_then(std::sync::Weak::upgrade) {
            self.pubsub.send_bytes(&feed, msg.freeze());
        }
    }
}

/// Whether a client has subscriptions (Redis's `CLIENT_PUBSUB`): a RESP2
/// redirect target receives invalidations as `__redis__:invalidate`
/// messages only then.
fn subscribed(h: &ClientHandle) -> bool {
    h.sub.load(Ordering::Relaxed) + h.psub.load(Ordering::Relaxed) + h.ssub.load(Ordering::Relaxed)
        > 0
}

fn add_prefix(t: &mut Table, id: u64, p: &[u8]) {
    let newly = t
        .prefixes
        .entry(Box::from(p))
        .or_default()
        .clients
        .insert(id);
    if newly {
        if let Some(tr) = t.clients.get_mut(&id) {
            tr.prefixes.insert(Box::from(p));
        }
    }
}

fn put_bulk(m: &mut BytesMut, s: &[u8]) {
    m.put_u8(b'$');
    m.put_slice(itoa::Buffer::new().format(s.len()).as_bytes());
    m.put_slice(b"\r\n");
    m.put_slice(s);
    m.put_slice(b"\r\n");
}

/// `*1 $n key`: the payload of one key's invalidation.
fn key_array(key: &[u8]) -> Vec<u8> {
    let mut m = BytesMut::with_capacity(key.len() + 16);
    m.put_slice(b"*1\r\n");
    put_bulk(&mut m, key);
    m.to_vec()
}

/// A broadcast payload: every changed key, or (`skip` = a `NOLOOP`
/// client) those it did not change itself; `None` when that leaves none
/// (Redis's `trackingBuildBroadcastReply`).
fn keys_array(keys: &BTreeMap<Box<[u8]>, u64>, skip: Option<u64>) -> Option<Vec<u8>> {
    let keep = |by: &u64| skip.is_none_or(|s| s != *by);
    let n = keys.values().filter(|b| keep(b)).count();
    if n == 0 && skip.is_some() {
        return None;
    }
    let mut m = BytesMut::with_capacity(n * 16 + 8);
    m.put_u8(b'*');
    m.put_slice(itoa::Buffer::new().format(n).as_bytes());
    m.put_slice(b"\r\n");
    for (k, by) in keys {
        if keep(by) {
            put_bulk(&mut m, k);
        }
    }
    Some(m.to_vec())
}

/// Marks the start of a command of client `id` on this thread, when
/// anyone tracks: invalidations it causes for `id`'s own connection are
/// collected here instead of its feed. Returns whether it armed.
#[inline]
pub fn enter(tracking: &Tracking, id: u64) -> bool {
    if tracking.clients.load(Ordering::Relaxed) == 0 {
        return false;
    }
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        c.id = id;
        c.in_call = false;
    });
    true
}

/// The command's handler starts (`true`) or ended (`false`).
pub fn set_in_call(on: bool) {
    CURRENT.with(|c| c.borrow_mut().in_call = on);
}

/// Takes the messages that must precede the command's reply.
pub fn take_before() -> Option<BytesMut> {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        (!c.before.is_empty()).then(|| c.before.split())
    })
}

/// Ends the command: returns the messages that follow its reply and
/// disarms the thread.
pub fn leave() -> Option<BytesMut> {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        c.id = 0;
        c.in_call = false;
        if !c.before.is_empty() {
            // Raised after the reply was placed (cannot happen by
            // construction); they still go out, after it.
            let before = c.before.split();
            c.after.unsplit(before);
        }
        (!c.after.is_empty()).then(|| c.after.split())
    })
}

/// Runs a read-only command for a client tracking keys in the default
/// mode and remembers the keys it read (Redis's `trackingRememberKeys`).
/// The read and the remembering happen with the keys' shards held, so a
/// write from another thread either comes before the read (which then sees
/// it) or after the keys are in the table (and invalidates them): no cached
/// value can go stale unnoticed. Pub/Sub commands name shard channels, not
/// keys.
#[cold]
pub fn call_remembering(
    ctx: &mut crate::command::Ctx<'_>,
    handler: crate::command::Handler,
    argv: &[Bytes],
) -> crate::command::CmdResult {
    let cmd = ctx.cmd;
    // Read-only scripts track what they read, not their declared keys as
    // such (see `scripting`), as Redis's `call()` skips them.
    if matches!(cmd.name(), "eval_ro" | "evalsha_ro" | "fcall_ro") {
        return handler(ctx, argv);
    }
    let keys = cmd.keys(argv);
    if keys.is_empty() || cmd.has(crate::command::table::flag::PUBSUB) {
        return handler(ctx, argv);
    }
    let srv = ctx.srv;
    let set = crate::commands::multi::call_lock_set(srv, ctx.client.db, cmd, argv, &keys);
    srv.store.with_locked(&set, || {
        let r = handler(ctx, argv);
        srv.tracking.remember(
            &ctx.client.handle,
            keys.iter().filter_map(|(i, _)| argv.get(*i).cloned()),
        );
        r
    })
}

/// Whether the tracking-enabled client with these bits remembers keys on
/// reads (on, not `BCAST`).
#[inline]
pub fn remembers(bits: u32) -> bool {
    bits & (flag::ON | flag::BCAST) == flag::ON
}
