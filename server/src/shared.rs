//! State shared by every connection: the store, the configuration, the
//! propagation stream, counters and the client registry.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ferrite_storage::{CycleOutcome, ExpireDriver, ExpireEffort, Observer, Store};
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;

use crate::blocking::Blocking;
use crate::client::{Client, Registry};
use crate::command::ctx::{unix_ms, unix_us};
use crate::config::Config;
use crate::propagate::Propagator;
use crate::pubsub::PubSub;
use crate::stats::{Latency, SlowLog, Stats};
use crate::tracking::Tracking;

/// Configuration values read on every command, mirrored in atomics so the
/// hot path takes no lock. Refreshed by [`Shared::apply_config`].
#[derive(Default)]
pub struct Hot {
    pub proto_max_bulk_len: AtomicI64,
    pub client_query_buffer_limit: AtomicI64,
    pub slowlog_slower_than: AtomicI64,
    pub slowlog_max_len: AtomicI64,
    pub latency_threshold_ms: AtomicI64,
    /// `hll-sparse-max-bytes`.
    pub hll_sparse_max_bytes: AtomicI64,
    pub timeout_s: AtomicI64,
    pub maxclients: AtomicI64,
    pub protected_mode: AtomicBool,
    /// `maxmemory` (0 = no limit), read before every command.
    pub maxmemory: AtomicI64,
    /// `maxmemory-samples`.
    pub maxmemory_samples: AtomicI64,
    /// `maxmemory-clients`: bytes, a negative percentage of `maxmemory`,
    /// or 0 (off); read before every command.
    pub maxmemory_clients: AtomicI64,
    /// `maxmemory-eviction-tenacity`.
    pub eviction_tenacity: AtomicI64,
    /// `min-replicas-to-write` and `min-replicas-max-lag` (seconds).
    pub min_replicas_to_write: AtomicI64,
    pub min_replicas_max_lag: AtomicI64,
    /// `replica-read-only`, `replica-serve-stale-data`.
    pub replica_read_only: AtomicBool,
    pub replica_serve_stale_data: AtomicBool,
    /// `replica-ignore-maxmemory`.
    pub replica_ignore_maxmemory: AtomicBool,
    /// `stop-writes-on-bgsave-error` with `save` points configured: a
    /// failed background save makes writes fail with `-MISCONF`.
    pub stop_writes_on_bgsave_error: AtomicBool,
    /// `hz`, clamped to Redis's 1..=500 (the active expiry scheduler).
    pub hz: AtomicI64,
    /// `active-expire-effort` (1..=10).
    pub active_expire_effort: AtomicI64,
    /// Collection encoding thresholds (`hash-max-listpack-entries` ...).
    pub enc: parking_lot::RwLock<ferrite_storage::EncodingLimits>,
}

/// Turns storage effects into stream entries (an expiry becomes `DEL`)
/// and `expired` keyspace events.
struct ExpiryFeed {
    repl: Arc<Propagator>,
    blocking: Arc<Blocking>,
    pubsub: Arc<PubSub>,
    tracking: Arc<Tracking>,
}

impl Observer for ExpiryFeed {
    fn expired(&self, db: usize, key: &[u8]) {
        self.tracking.key_dropped(key);
        self.repl.feed(db, &[b"DEL", key]);
        self.pubsub
            .notify(crate::pubsub::notify::EXPIRED, "expired", key, db, None);
    }

    fn evicted(&self, db: usize, key: &[u8]) {
        self.tracking.key_dropped(key);
        self.repl.feed(db, &[b"DEL", key]);
        self.pubsub
            .notify(crate::pubsub::notify::EVICTED, "evicted", key, db, None);
    }

    fn key_ready(&self, db: usize, key: &[u8]) {
        self.blocking.key_ready(db, key);
    }

    fn key_created(&self, db: usize, key: &[u8]) {
        self.pubsub
            .notify(crate::pubsub::notify::NEW, "new", key, db, None);
    }

    fn key_modified(&self, _db: usize, key: &[u8]) {
        self.tracking.key_modified(key);
    }

    fn dispose(&self, value: ferrite_storage::Value, why: ferrite_storage::Disposal) {
        let lazy = match why {
            ferrite_storage::Disposal::Expired => &crate::lazyfree::LAZY_EXPIRE,
            ferrite_storage::Disposal::Evicted => &crate::lazyfree::LAZY_EVICTION,
            ferrite_storage::Disposal::ServerDel => &crate::lazyfree::LAZY_SERVER_DEL,
        };
        if lazy.load(Ordering::Relaxed) {
            crate::lazyfree::free(value);
        }
    }
}

/// The server's shared state.
pub struct Shared {
    pub store: Store,
    /// The active expiry scheduler, run by workers after they write their
    /// replies and by the expiry thread while they are idle.
    pub expire: ExpireDriver,
    pub config: RwLock<Config>,
    pub hot: Hot,
    pub stats: Stats,
    pub clients: Arc<Registry>,
    pub repl: Arc<Propagator>,
    /// Clients blocked on keys.
    pub blocking: Arc<Blocking>,
    /// `CLIENT PAUSE` state.
    pub pause: crate::pause::Pause,
    /// The eviction pool and background eviction task's state.
    pub evictor: crate::evict::Evictor,
    /// Attached replicas (`INFO replication`).
    pub replicas: crate::replica::Replicas,
    /// Channel subscribers, keyspace-event classes, subscriber limits.
    pub pubsub: Arc<PubSub>,
    /// Client-side caching: who caches which keys.
    pub tracking: Arc<Tracking>,
    /// ACL users and the ACL log.
    pub acl: crate::acl::Acl,
    /// `DEBUG PAUSE-CRON 1`: the cron does nothing until set back.
    pub cron_paused: AtomicBool,
    /// Client buffer sizing (`crate::client_cron`).
    pub client_cron: crate::client_cron::ClientCron,
    pub slowlog: Mutex<SlowLog>,
    pub latency: Mutex<Latency>,
    /// 40 hex characters, new at every start (`run_id`, `master_replid`).
    pub run_id: String,
    /// `master_replid`: this server's replication history (a replica
    /// takes its primary's), `master_replid2` the one before it, valid up
    /// to `second_repl_offset`.
    pub replid: Mutex<String>,
    pub replid2: Mutex<String>,
    pub second_repl_offset: AtomicI64,
    /// A `WAIT` wanted replicas' acknowledgements while clients were
    /// paused: the cron asks for them once the pause ends (Redis's
    /// `get_ack_from_slaves`).
    pub getack_pending: AtomicBool,
    /// The replica side: the link to a primary (`REPLICAOF`).
    pub upstream: crate::upstream::Upstream,
    /// A `FAILOVER` under way.
    pub failover: crate::failover::Failover,
    pub start_ms: i64,
    /// RDB persistence state (`SAVE`, `BGSAVE`, the `save` points,
    /// `LASTSAVE`); shared with a background save's thread.
    pub persist: Arc<crate::persist::Persistence>,
    /// The append-only file (`appendonly`, `BGREWRITEAOF`).
    pub aof: Arc<crate::aof::Aof>,
    /// A shutdown waiting for its replicas (`shutdown-timeout`).
    pub shutdown_state: crate::shutdown::State,
    /// The port actually bound (`INFO server` `tcp_port`).
    pub port: AtomicI64,
    /// A listening socket `CONFIG SET port/bind` bound, for the accept loop.
    pub rebind: crate::listen::Rebind,
    pub monitors: Mutex<Vec<UnboundedSender<Bytes>>>,
    pub monitors_active: AtomicBool,
    /// Set by `SHUTDOWN` (and signals); the accept loop stops and connections close.
    pub shutdown: Notify,
    pub shutting_down: AtomicBool,
    /// The worker threads, once `server::run_with` started them.
    pub workers: std::sync::OnceLock<Arc<crate::workers::Workers>>,
    pub config_file: Option<std::path::PathBuf>,
    /// Lua scripting: the script cache and the running script's state.
    pub scripts: crate::scripting::Scripts,
}

/// 40 random hex characters: a run id or a replication id.
pub fn random_hex40() -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..40)
        .map(|_| char::from(b"0123456789abcdef"[r.gen_range(0..16)]))
        .collect()
}

impl Shared {
    /// Starts a new replication history with no previous one (Redis's
    /// `changeReplicationId` + `clearReplicationId2`): `DEBUG
    /// CHANGE-REPL-ID`, and a backlog freed by `repl-backlog-ttl`.
    pub fn new_replication_id(&self) {
        *self.replid.lock() = random_hex40();
        *self.replid2.lock() = "0".repeat(40);
        self.second_repl_offset.store(-1, Ordering::Relaxed);
    }

    /// Builds the state for `config`.
    pub fn new(config: Config) -> Arc<Shared> {
        let repl = Arc::new(Propagator::new(config.repl_backlog_size as usize));
        let blocking = Arc::new(Blocking::default());
        let pubsub = Arc::new(PubSub::default());
        let clients = Arc::new(Registry::default());
        let tracking = Arc::new(Tracking::new(clients.clone(), pubsub.clone()));
        let store = Store::new(
            config.databases as usize,
            config.shards as usize,
            Arc::new(ExpiryFeed {
                repl: repl.clone(),
                blocking: blocking.clone(),
                pubsub: pubsub.clone(),
                tracking: tracking.clone(),
            }),
        );
        tracking.attach(store.stats_arc());
        let now_s = unix_us() / 1_000_000;
        let config_file = config.config_file.clone();
        let s = Shared {
            store,
            expire: ExpireDriver::default(),
            config: RwLock::new(config),
            hot: Hot::default(),
            stats: Stats::default(),
            clients,
            repl,
            blocking,
            pause: Default::default(),
            acl: Default::default(),
            evictor: Default::default(),
            replicas: Default::default(),
            pubsub,
            tracking,
            cron_paused: AtomicBool::new(false),
            client_cron: Default::default(),
            slowlog: Mutex::new(SlowLog::default()),
            latency: Mutex::new(Latency::default()),
            run_id: random_hex40(),
            replid: Mutex::new(random_hex40()),
            replid2: Mutex::new("0".repeat(40)),
            second_repl_offset: AtomicI64::new(-1),
            getack_pending: AtomicBool::new(false),
            upstream: Default::default(),
            failover: Default::default(),
            start_ms: unix_us() / 1000,
            persist: Arc::new(crate::persist::Persistence::new(now_s)),
            aof: Default::default(),
            shutdown_state: Default::default(),
            port: AtomicI64::new(0),
            rebind: Default::default(),
            monitors: Mutex::new(Vec::new()),
            monitors_active: AtomicBool::new(false),
            shutdown: Notify::new(),
            shutting_down: AtomicBool::new(false),
            workers: Default::default(),
            config_file,
            scripts: Default::default(),
        };
        s.apply_config();
        let s = Arc::new(s);
        // Libraries in a snapshot loaded before the server runs compile
        // against this state.
        crate::scripting::attach(&s);
        s
    }

    /// What `CLIENT PAUSE` holds back now (one load while nothing is).
    #[inline]
    pub fn paused(&self) -> crate::pause::Kind {
        self.pause.active(&self.store, unix_ms())
    }

    /// Refreshes the hot mirrors after the configuration changed.
    pub fn apply_config(&self) {
        let c = self.config.read();
        let h = &self.hot;
        h.proto_max_bulk_len
            .store(c.proto_max_bulk_len, Ordering::Relaxed);
        h.client_query_buffer_limit
            .store(c.client_query_buffer_limit, Ordering::Relaxed);
        h.slowlog_slower_than
            .store(c.slowlog_log_slower_than, Ordering::Relaxed);
        h.slowlog_max_len
            .store(c.slowlog_max_len, Ordering::Relaxed);
        crate::counters::TRACKING.store(c.latency_tracking, Ordering::Relaxed);
        crate::lazyfree::LAZY_USER_DEL.store(c.lazyfree_lazy_user_del, Ordering::Relaxed);
        crate::lazyfree::LAZY_EXPIRE.store(c.lazyfree_lazy_expire, Ordering::Relaxed);
        crate::lazyfree::LAZY_EVICTION.store(c.lazyfree_lazy_eviction, Ordering::Relaxed);
        crate::lazyfree::LAZY_SERVER_DEL.store(c.lazyfree_lazy_server_del, Ordering::Relaxed);
        h.hll_sparse_max_bytes
            .store(c.hll_sparse_max_bytes, Ordering::Relaxed);
        h.latency_threshold_ms
            .store(c.latency_monitor_threshold, Ordering::Relaxed);
        h.timeout_s.store(c.timeout, Ordering::Relaxed);
        crate::aof::apply_config(self, &c.appendfsync, c.flag("aof-timestamp-enabled"));
        h.maxclients.store(c.maxclients, Ordering::Relaxed);
        self.acl.apply_requirepass(&c.requirepass);
        self.acl.pubsub_all.store(
            c.value("acl-pubsub-default") == "allchannels",
            Ordering::Relaxed,
        );
        h.protected_mode.store(c.protected_mode, Ordering::Relaxed);
        let old_maxmemory = h.maxmemory.swap(c.maxmemory, Ordering::Relaxed);
        h.maxmemory_samples
            .store(c.maxmemory_samples, Ordering::Relaxed);
        h.maxmemory_clients
            .store(c.maxmemory_clients, Ordering::Relaxed);
        h.eviction_tenacity
            .store(c.maxmemory_eviction_tenacity, Ordering::Relaxed);
        h.min_replicas_to_write
            .store(c.min_replicas_to_write, Ordering::Relaxed);
        h.min_replicas_max_lag
            .store(c.min_replicas_max_lag, Ordering::Relaxed);
        h.replica_read_only
            .store(c.replica_read_only, Ordering::Relaxed);
        h.replica_serve_stale_data
            .store(c.replica_serve_stale_data, Ordering::Relaxed);
        h.replica_ignore_maxmemory
            .store(c.replica_ignore_maxmemory, Ordering::Relaxed);
        crate::process::apply_oom_score(&c, self.upstream.is_replica.load(Ordering::Relaxed));
        h.stop_writes_on_bgsave_error.store(
            c.flag("stop-writes-on-bgsave-error")
                && !crate::persist::save_points(&c.save).is_empty(),
            Ordering::Relaxed,
        );
        self.tracking
            .max_keys
            .store(c.tracking_table_max_keys.max(0) as u64, Ordering::Relaxed);
        self.store.stats().access.set(
            ferrite_storage::Policy::parse(&c.maxmemory_policy)
                .unwrap_or(ferrite_storage::Policy::NoEviction),
            c.lfu_log_factor.clamp(0, i64::from(u32::MAX)) as u32,
            c.lfu_decay_time.clamp(0, i64::from(u32::MAX)) as u32,
        );
        if c.maxmemory != 0
            && c.maxmemory != old_maxmemory
            && crate::commands::memory::used_memory_now(self) > c.maxmemory
        {
            // As Redis's `startEvictionTimeProc` on `CONFIG SET maxmemory`,
            // only when the new limit is below what is used: a wake-up for
            // nothing would race the next command's own eviction (the key
            // evicted in the background, its invalidation after a reply
            // it should precede).
            self.evictor.start_background();
        }
        h.hz.store(c.hz.clamp(1, 500), Ordering::Relaxed);
        h.active_expire_effort
            .store(c.active_expire_effort, Ordering::Relaxed);
        let nf = crate::pubsub::notify::parse(&c.notify_keyspace_events).unwrap_or(0);
        self.pubsub.notify_flags.store(nf, Ordering::Relaxed);
        self.store.stats().notify_new.store(
            nf & crate::pubsub::notify::NEW != 0
                && nf & (crate::pubsub::notify::KEYSPACE | crate::pubsub::notify::KEYEVENT) != 0,
            Ordering::Relaxed,
        );
        if let Some((hard, soft, secs)) =
            crate::config::obuf_limit(&c.client_output_buffer_limit, "pubsub")
        {
            self.pubsub.limit_hard.store(hard, Ordering::Relaxed);
            self.pubsub.limit_soft.store(soft, Ordering::Relaxed);
            self.pubsub.limit_soft_secs.store(secs, Ordering::Relaxed);
        }
        let clamp = |v: i64| v.max(0) as usize;
        *h.enc.write() = ferrite_storage::EncodingLimits {
            list_max_listpack_size: c.list_max_listpack_size,
            hash_max_listpack_entries: clamp(c.hash_max_listpack_entries),
            hash_max_listpack_value: clamp(c.hash_max_listpack_value),
            set_max_intset_entries: clamp(c.set_max_intset_entries),
            zset_max_listpack_entries: clamp(c.zset_max_listpack_entries),
            zset_max_listpack_value: clamp(c.zset_max_listpack_value),
            stream_node_max_entries: clamp(c.stream_node_max_entries),
            stream_node_max_bytes: clamp(c.stream_node_max_bytes),
        };
    }

    /// Sends a command to every `MONITOR` client, in Redis's format.
    pub fn feed_monitors(&self, client: &Client, argv: &[Bytes]) {
        self.feed_monitors_as(client.db, &client.handle.addr.to_string(), argv);
    }

    /// Sends a command to every `MONITOR` client as run by `source` (a
    /// client's address, or `lua` for a script's `redis.call`).
    pub fn feed_monitors_as(&self, db: usize, source: &str, argv: &[Bytes]) {
        let us = unix_us();
        let mut line = format!(
            "+{}.{:06} [{} {}]",
            us / 1_000_000,
            us % 1_000_000,
            db,
            source
        );
        for a in argv {
            line.push(' ');
            line.push_str(&repr(a));
        }
        line.push_str("\r\n");
        let msg = Bytes::from(line);
        let mut mons = self.monitors.lock();
        mons.retain(|tx| tx.send(msg.clone()).is_ok());
        if mons.is_empty() {
            self.monitors_active.store(false, Ordering::Relaxed);
        }
    }

    /// The expiry tuning from the hot configuration: (effort, hz).
    pub fn expire_tuning(&self) -> (ExpireEffort, u32) {
        (
            ExpireEffort::new(self.hot.active_expire_effort.load(Ordering::Relaxed)),
            self.hot.hz.load(Ordering::Relaxed).clamp(1, 500) as u32,
        )
    }

    /// Runs the expiry cycle that is due, if any, cut to the fast duration
    /// (Redis's `beforeSleep` call): workers call it after writing a batch
    /// of replies, so the threads that write keys also expire them. A clock
    /// read and one relaxed load when none is due.
    #[inline]
    pub fn expire_if_due(&self) {
        let cycle =
            self.expire
                .run_if_due(&self.store, std::time::Instant::now(), &unix_ms, || {
                    self.expire_tuning()
                });
        if let Some(c) = cycle {
            self.expire_cycle_done(&c);
        }
    }

    /// Records a cycle that took long in the latency monitor (Redis's
    /// `latencyAddSampleIfNeeded("expire-cycle", ...)`).
    pub fn expire_cycle_done(&self, c: &CycleOutcome) {
        let threshold = self.hot.latency_threshold_ms.load(Ordering::Relaxed);
        let ms = c.elapsed.as_millis() as u64;
        if threshold > 0 && ms >= threshold as u64 {
            self.latency
                .lock()
                .add("expire-cycle", unix_ms() / 1000, ms);
        }
    }

    /// Replicas that acknowledged within `min-replicas-max-lag` seconds
    /// (Redis's `repl_good_slaves_count`).
    pub fn good_replicas(&self) -> usize {
        let lag = self.hot.min_replicas_max_lag.load(Ordering::Relaxed);
        let now = unix_ms();
        self.replicas
            .online()
            .iter()
            .filter(|r| (now - r.ack_ms.load(Ordering::Relaxed)) / 1000 <= lag)
            .count()
    }

    /// Whether writes may run under `min-replicas-to-write` (Redis's
    /// `checkGoodReplicasStatus`): always on a replica or when disabled.
    pub fn enough_good_replicas(&self) -> bool {
        let want = self.hot.min_replicas_to_write.load(Ordering::Relaxed);
        want == 0
            || self.hot.min_replicas_max_lag.load(Ordering::Relaxed) == 0
            || self.upstream.is_replica.load(Ordering::Relaxed)
            || self.good_replicas() as i64 >= want
    }

    /// A replica that leaves memory to its primary (Redis's
    /// `server.masterhost && server.repl_slave_ignore_maxmemory`).
    pub fn ignores_maxmemory(&self) -> bool {
        self.upstream.is_replica.load(Ordering::Relaxed)
            && self.hot.replica_ignore_maxmemory.load(Ordering::Relaxed)
    }

    /// Asks the whole server to stop.
    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.shutdown.notify_waiters();
        for c in self.clients.all() {
            c.kill();
        }
    }
}

/// Quotes bytes like Redis's `sdscatrepr`.
pub fn repr(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(char::from(c)),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push('"');
    out
}
