//! Per-connection state: what the connection task owns (`Client`) and what
//! other connections may read or signal (`ClientHandle`, in the registry
//! behind `CLIENT LIST` / `CLIENT KILL`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ferrite_storage::WatchFlag;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

use crate::command::Command;

/// `CLIENT REPLY` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    SkipNext,
    /// Skipping the reply of the current command.
    Skipping,
}

/// [`ClientHandle::move_to`] when the connection stays where it is.
pub const NO_MOVE: usize = usize::MAX;

/// The shared face of a connection.
pub struct ClientHandle {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i64,
    /// Unix ms of connection.
    pub created_ms: i64,
    pub last_interaction_ms: AtomicI64,
    pub db: AtomicUsize,
    pub name: Mutex<Option<Bytes>>,
    pub lib_name: Mutex<Option<Bytes>>,
    pub lib_ver: Mutex<Option<Bytes>>,
    /// The id of the last command run (`Command::id`, 0 before the first):
    /// one relaxed store per command instead of a lock.
    pub last_cmd: std::sync::atomic::AtomicU32,
    pub resp: AtomicUsize,
    pub no_evict: AtomicBool,
    pub monitor: AtomicBool,
    /// Waiting in a blocking command (`CLIENT LIST` flag `b`).
    pub blocked: AtomicBool,
    /// Bytes in the query buffer (`qbuf`): while a batch runs, all it was
    /// read with; between batches, the unparsed rest.
    pub qbuf: AtomicUsize,
    /// Allocated query buffer (`qbuf` + `qbuf-free`).
    pub qbuf_cap: AtomicUsize,
    /// Allocated reply buffer (`rbs`).
    pub obuf_cap: AtomicUsize,
    /// The reply buffer size the clients cron chose (`crate::client_cron`);
    /// the connection keeps its buffer at this size between batches.
    pub rb_size: AtomicUsize,
    /// The most reply bytes written at once, up to `rb_size`, since the
    /// last reset (`rbp`).
    pub rb_peak: AtomicUsize,
    /// When `rb_peak` was last reset, unix ms.
    pub rb_peak_reset_ms: AtomicI64,
    /// `crate::client_cron::TRIM_*` bits: buffers the connection should
    /// resize when it next waits.
    pub trim: std::sync::atomic::AtomicU8,
    /// Reply bytes not yet written while a write waits for the socket:
    /// with `queued`, what `omem` and the pub/sub output limit count.
    pub obuf_pending: AtomicUsize,
    /// Argument memory of the commands queued since `MULTI` (`multi-mem`).
    pub multi_mem: AtomicUsize,
    /// The connection's own memory, kept by its task
    /// (`crate::client_mem::MemTracker`); top bit once out of the totals.
    pub mem: AtomicU64,
    /// Bytes publishers queued for this subscriber that its connection has
    /// not yet taken; added by publishers, subtracted by the connection;
    /// top bit once out of the totals (`crate::client_mem`).
    pub queued: AtomicU64,
    /// A replica link (flag `S`): never evicted, counted as replica memory.
    pub replica: AtomicBool,
    /// The link to this replica's primary (flag `M`).
    pub primary: AtomicBool,
    pub commands: AtomicU64,
    /// The worker thread serving this connection (`crate::workers`).
    pub worker: AtomicUsize,
    /// A worker this connection is asked to move to at the end of its
    /// current batch ([`NO_MOVE`] = stay); set by the worker balancer.
    pub move_to: AtomicUsize,
    /// Set by `CLIENT KILL`, timeouts and shutdown; the task closes the connection.
    pub killed: AtomicBool,
    /// The connection task's waker while it waits ([`ClientHandle::on_kill`]).
    kill_waker: AtomicWaker,
    /// Set by the shards when a key this client `WATCH`es changes.
    pub watch: Arc<WatchFlag>,
    /// Commands queued since `MULTI`, -1 outside a transaction (`CLIENT LIST` `multi=`).
    pub multi_len: AtomicI64,
    /// Channel, pattern and shard-channel subscriptions (`CLIENT LIST`
    /// `sub=` `psub=` `ssub=`, flag `P`).
    pub sub: AtomicUsize,
    pub psub: AtomicUsize,
    pub ssub: AtomicUsize,
    /// Client-side caching state (`crate::tracking::flag` bits), read by
    /// other connections' invalidations and by `CLIENT LIST`.
    pub tracking: std::sync::atomic::AtomicU32,
    /// `CLIENT TRACKING ... REDIRECT id` (0 = none).
    pub tracking_redir: AtomicU64,
    /// The sending end of this connection's message feed, once it has one
    /// (a subscribe, `HELLO 3` or `CLIENT TRACKING ON`): how invalidations
    /// reach it from other connections. Weak, as the feed holds the handle.
    pub feed: std::sync::OnceLock<std::sync::Weak<crate::pubsub::Subscriber>>,
    /// The ACL user the connection runs as (`None`: an internal client
    /// such as the primary's link, Redis's `(superuser)`), for `CLIENT
    /// LIST`, `CLIENT KILL USER` and scripts.
    pub user: Mutex<Option<Arc<crate::acl::UserCell>>>,
}

impl ClientHandle {
    /// A handle with everything else at its initial state.
    pub fn new(id: u64, addr: String, laddr: String, fd: i64, now_ms: i64) -> Self {
        ClientHandle {
            id,
            addr,
            laddr,
            fd,
            created_ms: now_ms,
            last_interaction_ms: now_ms.into(),
            db: 0.into(),
            name: Default::default(),
            lib_name: Default::default(),
            lib_ver: Default::default(),
            last_cmd: std::sync::atomic::AtomicU32::new(0),
            resp: 2.into(),
            no_evict: false.into(),
            monitor: false.into(),
            blocked: false.into(),
            qbuf: 0.into(),
            qbuf_cap: 0.into(),
            obuf_cap: 0.into(),
            rb_size: crate::client_cron::REPLY_CHUNK.into(),
            rb_peak: 0.into(),
            rb_peak_reset_ms: now_ms.into(),
            trim: 0.into(),
            obuf_pending: 0.into(),
            multi_mem: 0.into(),
            mem: 0.into(),
            queued: 0.into(),
            replica: false.into(),
            primary: false.into(),
            commands: 0.into(),
            worker: 0.into(),
            move_to: NO_MOVE.into(),
            killed: false.into(),
            kill_waker: AtomicWaker::new(),
            watch: WatchFlag::new(),
            multi_len: (-1).into(),
            sub: 0.into(),
            psub: 0.into(),
            ssub: 0.into(),
            tracking: 0.into(),
            tracking_redir: 0.into(),
            feed: Default::default(),
            user: Default::default(),
        }
    }

    /// Whether the connection runs as `user` (the same user, not one of
    /// the same name that replaced it).
    pub fn runs_as(&self, user: &Arc<crate::acl::UserCell>) -> bool {
        self.user
            .lock()
            .as_ref()
            .is_some_and(|u| Arc::ptr_eq(u, user))
    }

    /// The name `CLIENT LIST` shows for the connection's user.
    pub fn user_name(&self) -> String {
        match &*self.user.lock() {
            Some(u) => String::from_utf8_lossy(&u.name).into_owned(),
            None => "(superuser)".into(),
        }
    }

    /// Redis's `getClientType` name: `master`, `slave`, `pubsub` or
    /// `normal` (`CLIENT LIST/KILL TYPE`).
    pub fn client_type(&self) -> &'static str {
        if self.primary.load(Ordering::Relaxed) {
            "master"
        } else if self.replica.load(Ordering::Relaxed) && !self.monitor.load(Ordering::Relaxed) {
            "slave"
        } else if self.sub.load(Ordering::Relaxed)
            + self.psub.load(Ordering::Relaxed)
            + self.ssub.load(Ordering::Relaxed)
            > 0
        {
            "pubsub"
        } else {
            "normal"
        }
    }

    /// Asks the connection to close after its current command.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill_waker.wake();
    }

    /// Completes once the client is killed; the connection task selects on
    /// it while it waits for input or for room to write. Only that one task
    /// waits, so a single waker slot does: registering it is one atomic
    /// exchange, where tokio's `Notify` locked its waiter list on every
    /// wait and again on every drop (~200 instructions per request under
    /// callgrind, a tenth of a GET).
    pub fn on_kill(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.killed.load(Ordering::Acquire) {
                return std::task::Poll::Ready(());
            }
            self.kill_waker.register(cx.waker());
            if self.killed.load(Ordering::Acquire) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }

    /// Asks the connection to resize the buffers `what` names
    /// (`crate::client_cron`) as soon as it waits for input again.
    pub fn ask_trim(&self, what: u8) {
        self.trim.fetch_or(what, Ordering::Relaxed);
        self.kill_waker.wake();
    }

    /// Like [`ClientHandle::on_kill`], and also completes when the cron
    /// asked for a resize: what a connection waiting for input selects on.
    pub fn on_kill_or_trim(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let due =
                || self.killed.load(Ordering::Acquire) || self.trim.load(Ordering::Relaxed) != 0;
            if due() {
                return std::task::Poll::Ready(());
            }
            self.kill_waker.register(cx.waker());
            if due() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }

    /// Notes `len` reply bytes about to be written, for the peak the
    /// cron sizes the buffer by (Redis counts what fits its buffer).
    #[inline]
    pub fn note_reply(&self, len: usize) {
        let p = len.min(self.rb_size.load(Ordering::Relaxed));
        if p > self.rb_peak.load(Ordering::Relaxed) {
            self.rb_peak.store(p, Ordering::Relaxed);
        }
    }

    /// The name of the last command, `NULL` before the first (as Redis).
    pub fn last_cmd_name(&self) -> &'static str {
        crate::command::table::TABLE.name_of(self.last_cmd.load(Ordering::Relaxed))
    }

    /// The `CLIENT LIST` / `CLIENT INFO` line for this client.
    pub fn info_line(&self, now_ms: i64) -> String {
        let name = self
            .name
            .lock()
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let lib_name = self
            .lib_name
            .lock()
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let lib_ver = self
            .lib_ver
            .lock()
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let age = (now_ms - self.created_ms).max(0) / 1000;
        let idle = (now_ms - self.last_interaction_ms.load(Ordering::Relaxed)).max(0) / 1000;
        // Redis's order (`catClientInfoString`).
        let mut flags = String::new();
        if self.replica.load(Ordering::Relaxed) {
            flags.push('S');
        } else if self.monitor.load(Ordering::Relaxed) {
            flags.push('O');
        }
        if self.primary.load(Ordering::Relaxed) {
            flags.push('M');
        }
        let (sub, psub, ssub) = (
            self.sub.load(Ordering::Relaxed),
            self.psub.load(Ordering::Relaxed),
            self.ssub.load(Ordering::Relaxed),
        );
        if sub + psub + ssub > 0 {
            flags.push('P');
        }
        if self.multi_len.load(Ordering::Relaxed) >= 0 {
            flags.push('x');
        }
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        let tracking = self.tracking.load(Ordering::Relaxed);
        crate::tracking::list_flags(tracking, &mut flags);
        if self.watch.is_dirty() {
            flags.push('d');
        }
        if self.no_evict.load(Ordering::Relaxed) {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let _ = (lib_name, lib_ver);
        let qbuf = self.qbuf.load(Ordering::Relaxed);
        let rbs = self.obuf_cap.load(Ordering::Relaxed);
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem={} rbs={} rbp={} obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user={} redir={} resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            name,
            age,
            idle,
            flags,
            self.db.load(Ordering::Relaxed),
            sub,
            psub,
            ssub,
            self.multi_len.load(Ordering::Relaxed),
            qbuf,
            self.qbuf_cap.load(Ordering::Relaxed).saturating_sub(qbuf),
            self.multi_mem.load(Ordering::Relaxed),
            rbs,
            self.rb_peak.load(Ordering::Relaxed),
            crate::client_mem::client_output(self),
            crate::client_mem::client_total(self),
            self.last_cmd_name(),
            self.user_name(),
            crate::tracking::list_redir(tracking, &self.tracking_redir),
            self.resp.load(Ordering::Relaxed),
        )
    }
}

/// A command queued between `MULTI` and `EXEC`, checked when queued.
pub struct Queued {
    pub cmd: &'static Command,
    pub argv: Vec<Bytes>,
}

/// The state of a transaction being queued.
#[derive(Default)]
pub struct MultiState {
    pub queue: Vec<Queued>,
    /// A command failed its checks while queueing: `EXEC` answers
    /// `EXECABORT` (Redis's `CLIENT_DIRTY_EXEC`).
    pub aborted: bool,
    /// Argument bytes of `queue` plus a `Bytes` per argument
    /// (`multi-mem`), counted in the client's memory.
    pub argv_bytes: usize,
}

/// What the connection task owns.
pub struct Client {
    pub handle: Arc<ClientHandle>,
    pub db: usize,
    pub authenticated: bool,
    /// The ACL user commands are checked against (`None`: internal, never
    /// checked); mirrored in `handle.user`.
    pub user: Option<Arc<crate::acl::UserCell>>,
    /// This connection's copy of its user's rules and their generation.
    pub acl_cache: Option<crate::acl::RulesCache>,
    pub reply_mode: ReplyMode,
    /// Reply, then close (`QUIT`, protocol errors, `CLIENT KILL` of oneself).
    pub close_after_reply: bool,
    /// Set by `MONITOR`: the task starts forwarding the monitor feed.
    pub start_monitor: bool,
    /// `REPLCONF` options; `SYNC`/`PSYNC` set `start` to hand the connection over.
    pub repl: crate::replica::ReplState,
    /// The master client of a replica: its writes are the primary's
    /// stream (no `READONLY`, `MASTERDOWN` or `maxmemory` refusal).
    pub primary: bool,
    /// Set by a blocking command that found nothing: the task waits for
    /// the reply before reading further commands.
    pub blocked: Option<crate::blocking::Blocked>,
    /// The blocked command's stats, recorded when it completes.
    pub blocked_stats: Option<crate::command::dispatch::BlockedStats>,
    /// Set when `CLIENT PAUSE` held the command back: the task waits for
    /// the pause to end, then runs the same command again.
    pub postponed: bool,
    /// Set by `EVAL`: the script thread's reply, which the task awaits
    /// before reading further commands.
    pub script_wait: Option<tokio::sync::oneshot::Receiver<bytes::BytesMut>>,
    /// Set by a `WAIT` that must wait for acknowledgements: the count the
    /// task replies with once enough replicas acknowledged, or at the
    /// timeout.
    pub wait_acks: Option<tokio::sync::oneshot::Receiver<i64>>,
    /// `SHUTDOWN` waiting for replicas: its reply if it fails or is
    /// aborted; dropped when the server stops.
    pub shutdown_wait: Option<tokio::sync::oneshot::Receiver<bytes::Bytes>>,
    /// The replication offset right after this client's last command that
    /// propagated anything (Redis's `woff`): what `WAIT` waits for.
    pub woff: u64,
    /// The command about to run arrives while a script is past
    /// `busy-reply-threshold`: only `allow_busy` commands run.
    pub script_busy: bool,
    /// The client a script's `redis.call` runs as (Redis's `CLIENT_SCRIPT`).
    pub in_script: bool,
    /// Blocking commands answer as on timeout instead of blocking (inside
    /// `MULTI`/`EXEC`, as Redis's `CLIENT_DENY_BLOCKING`).
    pub deny_blocking: bool,
    /// Running `EXEC`'s queue: ACL log entries say `multi`.
    pub in_exec: bool,
    /// `Some` between `MULTI` and `EXEC`/`DISCARD`.
    pub multi: Option<MultiState>,
    /// Keys `WATCH`ed, with their database, in the order watched.
    pub watched: Vec<(usize, Bytes)>,
    /// Subscriptions and the message feed, created by the first subscribe.
    pub sub: Option<Box<crate::pubsub::SubState>>,
    /// Has subscriptions (Redis's `CLIENT_PUBSUB`): in RESP2 only the
    /// subscribe family, `PING`, `QUIT` and `RESET` may run.
    pub pubsub: bool,
    /// Push frames this command produced (subscribe confirmations, messages
    /// it published to itself). The dispatcher places them before the
    /// command's reply and keeps them under `CLIENT REPLY OFF`, as Redis's
    /// `CLIENT_PUSHING` does.
    pub push: std::cell::RefCell<ferrite_protocol::ReplyBuf>,
}

impl Client {
    /// Runs the connection as `user` from its next command: the task's
    /// copy, the handle's (`CLIENT LIST`, scripts) and a fresh rules cache.
    pub fn set_user(&mut self, user: Arc<crate::acl::UserCell>) {
        *self.handle.user.lock() = Some(user.clone());
        self.user = Some(user);
        self.acl_cache = None;
    }

    /// The ACL log context of this client's refusals: `multi` while it
    /// queues or runs a transaction.
    pub fn acl_context(&self) -> crate::acl::log::Context {
        if self.multi.is_some() || self.in_exec {
            crate::acl::log::Context::Multi
        } else {
            crate::acl::log::Context::Toplevel
        }
    }

    /// A new client on database 0.
    pub fn new(handle: Arc<ClientHandle>, authenticated: bool) -> Self {
        Client {
            handle,
            db: 0,
            authenticated,
            user: None,
            acl_cache: None,
            reply_mode: ReplyMode::On,
            close_after_reply: false,
            start_monitor: false,
            repl: Default::default(),
            primary: false,
            blocked: None,
            blocked_stats: None,
            postponed: false,
            script_wait: None,
            wait_acks: None,
            shutdown_wait: None,
            woff: 0,
            script_busy: false,
            in_script: false,
            deny_blocking: false,
            in_exec: false,
            multi: None,
            watched: Vec::new(),
            sub: None,
            pubsub: false,
            push: Default::default(),
        }
    }

    /// Whether blocking commands must not block now.
    pub fn deny_blocking(&self) -> bool {
        self.deny_blocking
    }

    /// The client's id.
    pub fn id(&self) -> u64 {
        self.handle.id
    }
}

/// Every connected client, by id.
#[derive(Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    next_id: AtomicU64,
    /// Sum of the connected normal clients' own memory
    /// (`ClientHandle::mem`); see `crate::client_mem`.
    pub mem: AtomicI64,
    /// Replica links' memory (`mem_clients_slaves`).
    pub replica_mem: AtomicI64,
    /// Held while clients are being evicted (one eviction at a time).
    pub evicting: Mutex<()>,
}

impl Registry {
    /// Allocates the next client id (ids start at 1 and never repeat).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Adds a client.
    pub fn add(&self, h: Arc<ClientHandle>) {
        self.clients.lock().insert(h.id, h);
    }

    /// Removes a client.
    pub fn remove(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of all clients, in id order.
    pub fn all(&self) -> Vec<Arc<ClientHandle>> {
        self.clients.lock().values().cloned().collect()
    }

    /// Up to `n` clients in id order after id `cursor`, going on from the
    /// lowest ids past the highest: a rotation that needs no full copy.
    pub fn after(&self, cursor: u64, n: usize) -> Vec<Arc<ClientHandle>> {
        let map = self.clients.lock();
        map.range(cursor.saturating_add(1)..)
            .chain(map.range(..=cursor))
            .take(n)
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// One client by id.
    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.clients.lock().get(&id).cloned()
    }
}
