//! Configuration with Redis's names, defaults and syntax.
//!
//! One table of parameters drives the config file parser
//! (`redis.conf` syntax), the command line (`--name value ...`),
//! `CONFIG GET` (glob patterns), `CONFIG SET` (validation, immutables) and
//! `CONFIG REWRITE`.

use std::fmt::Write as _;
use std::path::PathBuf;

use thiserror::Error;

mod other;
pub use other::{flag_bits, SHUTDOWN_FLAGS};

/// Why a configuration value was refused; the text is Redis's.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("Bad directive or wrong number of arguments")]
    Unknown,
    #[error("{0}")]
    Invalid(String),
    #[error("can't set immutable config")]
    Immutable,
    #[error("can't open config file '{0}': {1}")]
    File(String, String),
}

/// The server's settings. Field names follow the Redis parameter names.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: i64,
    pub bind: Vec<String>,
    pub requirepass: String,
    pub databases: i64,
    pub maxclients: i64,
    pub timeout: i64,
    pub tcp_keepalive: i64,
    pub tcp_backlog: i64,
    pub loglevel: String,
    pub logfile: String,
    pub dir: String,
    pub dbfilename: String,
    pub save: String,
    pub appendonly: bool,
    pub appendfilename: String,
    pub appendfsync: String,
    pub maxmemory: i64,
    pub maxmemory_policy: String,
    pub maxmemory_samples: i64,
    pub maxmemory_eviction_tenacity: i64,
    /// `maxmemory-clients`: bytes, or a percentage of `maxmemory` stored
    /// negated (Redis's convention), 0 = no client eviction.
    pub maxmemory_clients: i64,
    /// Most keys the client-side caching table remembers (0 = no limit).
    pub tracking_table_max_keys: i64,
    pub lfu_log_factor: i64,
    pub lfu_decay_time: i64,
    pub proto_max_bulk_len: i64,
    pub client_query_buffer_limit: i64,
    pub protected_mode: bool,
    pub hz: i64,
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: i64,
    /// `busy-reply-threshold` (alias `lua-time-limit`): ms a script runs
    /// before other clients get `BUSY` and `SCRIPT KILL` may stop it.
    pub busy_reply_threshold: i64,
    pub latency_monitor_threshold: i64,
    /// `hll-sparse-max-bytes`: a sparse HyperLogLog growing past it turns dense.
    pub hll_sparse_max_bytes: i64,
    /// `latency-tracking`: per-command latency histograms (`LATENCY HISTOGRAM`).
    pub latency_tracking: bool,
    pub notify_keyspace_events: String,
    /// `client-output-buffer-limit`, canonical: `normal h s secs slave h s
    /// secs pubsub h s secs` in bytes.
    pub client_output_buffer_limit: String,
    pub active_expire_effort: i64,
    pub lazyfree_lazy_eviction: bool,
    pub lazyfree_lazy_expire: bool,
    pub lazyfree_lazy_server_del: bool,
    pub lazyfree_lazy_user_del: bool,
    pub lazyfree_lazy_user_flush: bool,
    pub repl_backlog_size: i64,
    /// Seconds between the `PING`s a primary puts into the replication
    /// stream, so replicas can tell a quiet primary from a dead link.
    pub repl_ping_replica_period: i64,
    /// A replica refuses writes from normal clients (`-READONLY`).
    pub replica_read_only: bool,
    /// A replica whose link is down still answers (else `-MASTERDOWN`).
    pub replica_serve_stale_data: bool,
    /// A replica leaves memory to its primary: no eviction, no `-OOM`.
    pub replica_ignore_maxmemory: bool,
    /// Password (and user) a replica authenticates with to its primary.
    pub masterauth: String,
    pub masteruser: String,
    /// A primary refuses writes unless this many replicas acked within
    /// `min-replicas-max-lag` seconds (0 = off).
    pub min_replicas_to_write: i64,
    pub min_replicas_max_lag: i64,
    pub replica_priority: i64,
    pub replica_announced: bool,
    /// Seconds without data from the primary before a replica drops the link.
    pub repl_timeout: i64,
    pub io_threads: i64,
    pub daemonize: bool,
    pub pidfile: String,
    pub enable_debug_command: String,
    pub enable_protected_configs: String,
    pub enable_module_command: String,
    pub shards: i64,
    pub list_max_listpack_size: i64,
    pub list_compress_depth: i64,
    pub hash_max_listpack_entries: i64,
    pub hash_max_listpack_value: i64,
    pub set_max_intset_entries: i64,
    pub zset_max_listpack_entries: i64,
    pub zset_max_listpack_value: i64,
    pub stream_node_max_entries: i64,
    pub stream_node_max_bytes: i64,
    /// The config file given on the command line, for `CONFIG REWRITE`.
    pub config_file: Option<PathBuf>,
    /// `replicaof host port` (or `slaveof`) in the file or on the command
    /// line: start as a replica. Kept equal to the primary's address while
    /// a replica (`CONFIG GET replicaof`, `CONFIG REWRITE`).
    pub replicaof: Option<(String, u16)>,
    /// `user <name> <rules...>` directives, in file order, for the ACL
    /// to load at start (Redis's `UsersToLoad`).
    pub users: Vec<Vec<Vec<u8>>>,
    /// `rename-command <old> <new>` directives, in file order
    /// (`crate::command::rename`); applied once, at start.
    pub renames: Vec<(String, String)>,
    /// The parameters of [`other::PARAMS`], by name, as normalised; a
    /// missing one has its default. What each does (or why it does
    /// nothing here) is written next to it there.
    pub other: std::collections::BTreeMap<&'static str, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: vec!["127.0.0.1".into(), "-::1".into()],
            requirepass: String::new(),
            databases: 16,
            maxclients: 10000,
            timeout: 0,
            tcp_keepalive: 300,
            tcp_backlog: 511,
            loglevel: "notice".into(),
            logfile: String::new(),
            dir: ".".into(),
            dbfilename: "dump.rdb".into(),
            save: "3600 1 300 100 60 10000".into(),
            appendonly: false,
            appendfilename: "appendonly.aof".into(),
            appendfsync: "everysec".into(),
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            maxmemory_samples: 5,
            maxmemory_eviction_tenacity: 10,
            maxmemory_clients: 0,
            tracking_table_max_keys: 1_000_000,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            protected_mode: true,
            hz: 10,
            slowlog_log_slower_than: 10000,
            slowlog_max_len: 128,
            busy_reply_threshold: 5000,
            latency_monitor_threshold: 0,
            hll_sparse_max_bytes: 3000,
            latency_tracking: true,
            notify_keyspace_events: String::new(),
            client_output_buffer_limit:
                "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60".into(),
            active_expire_effort: 1,
            lazyfree_lazy_eviction: false,
            lazyfree_lazy_expire: false,
            lazyfree_lazy_server_del: false,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            repl_backlog_size: 1024 * 1024,
            repl_ping_replica_period: 10,
            replica_read_only: true,
            replica_serve_stale_data: true,
            replica_ignore_maxmemory: true,
            masterauth: String::new(),
            masteruser: String::new(),
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            replica_priority: 100,
            replica_announced: true,
            repl_timeout: 60,
            io_threads: 1,
            daemonize: false,
            pidfile: String::new(),
            enable_debug_command: "no".into(),
            enable_protected_configs: "no".into(),
            enable_module_command: "no".into(),
            shards: 32,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            stream_node_max_entries: 100,
            stream_node_max_bytes: 4096,
            config_file: None,
            replicaof: None,
            users: Vec::new(),
            renames: Vec::new(),
            other: Default::default(),
        }
    }
}

/// How a parameter's value is written and parsed.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    /// Bytes, with Redis's unit suffixes (`1k` = 1000, `1kb` = 1024, ...).
    Memory {
        min: i64,
        max: i64,
    },
    /// Bytes, or a percentage (`10%`, at most `max_percent`) normalised to
    /// its negation, as Redis's `MEMORY_CONFIG | PERCENT_CONFIG`.
    MemoryOrPercent {
        max_percent: i64,
    },
    Enum(&'static [&'static str]),
    Str,
    /// Space-separated list (`bind`).
    List,
    /// `save` pairs.
    Save,
    /// Keyspace-events class letters.
    NotifyFlags,
    /// `client-output-buffer-limit` class triples.
    ObufLimit,
    /// One or more words of a set (Redis's multi-argument enums,
    /// `shutdown-on-sigterm save now`); the first word means none.
    Flags(&'static [&'static str]),
    /// Exactly `count` integers in `min..=max` (`oom-score-adj-values`).
    IntList {
        count: usize,
        min: i64,
        max: i64,
        err: &'static str,
    },
    /// Percentiles in `0..=100` (`latency-tracking-info-percentiles`).
    Percentiles,
    /// An integer written in octal (`unixsocketperm`).
    Octal {
        max: i64,
    },
}

/// One parameter of the table.
pub struct Param {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub kind: Kind,
    /// Cannot change at run time (`CONFIG SET` answers "can't set immutable config").
    pub immutable: bool,
    /// Protected configs (`enable-protected-configs`) in Redis; we accept them.
    get: fn(&Config) -> String,
    set: fn(&mut Config, String),
    /// A check after the kind's own (Redis's `isValid*` functions): the
    /// value to store, or Redis's reason for refusing it.
    refine: Option<fn(String) -> Result<String, String>>,
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

macro_rules! p {
    ($name:literal, $alias:expr, $field:ident, bool, $imm:expr) => {
        Param {
            name: $name,
            alias: $alias,
            kind: Kind::Bool,
            immutable: $imm,
            get: |c| yes_no(c.$field),
            set: |c, v| c.$field = v == "yes",
            refine: None,
        }
    };
    ($name:literal, $alias:expr, $field:ident, $kind:expr, int, $imm:expr) => {
        Param {
            name: $name,
            alias: $alias,
            kind: $kind,
            immutable: $imm,
            get: |c| c.$field.to_string(),
            set: |c, v| c.$field = v.parse().unwrap_or_default(),
            refine: None,
        }
    };
    ($name:literal, $alias:expr, $field:ident, $kind:expr, str, $imm:expr) => {
        Param {
            name: $name,
            alias: $alias,
            kind: $kind,
            immutable: $imm,
            get: |c| c.$field.clone(),
            set: |c, v| c.$field = v,
            refine: None,
        }
    };
}

const POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];
const YES_NO_LOCAL: &[&str] = &["no", "yes", "local"];

/// Every parameter, in `CONFIG REWRITE` order.
pub static PARAMS: &[Param] = &[
    p!(
        "port",
        None,
        port,
        Kind::Int { min: 0, max: 65535 },
        int,
        false
    ),
    Param {
        name: "bind",
        alias: None,
        kind: Kind::List,
        immutable: false,
        get: |c| c.bind.join(" "),
        set: |c, v| c.bind = v.split_whitespace().map(String::from).collect(),
        refine: None,
    },
    p!("requirepass", None, requirepass, Kind::Str, str, false),
    p!(
        "databases",
        None,
        databases,
        Kind::Int {
            min: 1,
            max: i32::MAX as i64
        },
        int,
        true
    ),
    p!(
        "maxclients",
        None,
        maxclients,
        Kind::Int {
            min: 1,
            max: u32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "timeout",
        None,
        timeout,
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "tcp-keepalive",
        None,
        tcp_keepalive,
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "tcp-backlog",
        None,
        tcp_backlog,
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        int,
        true
    ),
    p!(
        "loglevel",
        None,
        loglevel,
        Kind::Enum(&["debug", "verbose", "notice", "warning", "nothing"]),
        str,
        false
    ),
    p!("logfile", None, logfile, Kind::Str, str, true),
    p!("dir", None, dir, Kind::Str, str, false),
    p!("dbfilename", None, dbfilename, Kind::Str, str, false),
    p!("save", None, save, Kind::Save, str, false),
    p!("appendonly", None, appendonly, bool, false),
    p!("appendfilename", None, appendfilename, Kind::Str, str, true),
    p!(
        "appendfsync",
        None,
        appendfsync,
        Kind::Enum(&["always", "everysec", "no"]),
        str,
        false
    ),
    p!(
        "maxmemory",
        None,
        maxmemory,
        Kind::Memory {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "maxmemory-policy",
        None,
        maxmemory_policy,
        Kind::Enum(POLICIES),
        str,
        false
    ),
    p!(
        "maxmemory-samples",
        None,
        maxmemory_samples,
        Kind::Int { min: 1, max: 64 },
        int,
        false
    ),
    Param {
        name: "maxmemory-clients",
        alias: None,
        kind: Kind::MemoryOrPercent { max_percent: 100 },
        immutable: false,
        get: |c| render_percent(c.maxmemory_clients),
        set: |c, v| c.maxmemory_clients = v.parse().unwrap_or_default(),
        refine: None,
    },
    p!(
        "maxmemory-eviction-tenacity",
        None,
        maxmemory_eviction_tenacity,
        Kind::Int { min: 0, max: 100 },
        int,
        false
    ),
    p!(
        "tracking-table-max-keys",
        None,
        tracking_table_max_keys,
        Kind::Int {
            min: 0,
            max: u32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "lfu-log-factor",
        None,
        lfu_log_factor,
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "lfu-decay-time",
        None,
        lfu_decay_time,
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "proto-max-bulk-len",
        None,
        proto_max_bulk_len,
        Kind::Memory {
            min: 1024 * 1024,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "client-query-buffer-limit",
        None,
        client_query_buffer_limit,
        Kind::Memory {
            min: 1024 * 1024,
            max: i64::MAX
        },
        int,
        false
    ),
    p!("protected-mode", None, protected_mode, bool, false),
    p!(
        "list-max-listpack-size",
        Some("list-max-ziplist-size"),
        list_max_listpack_size,
        Kind::Int {
            min: i32::MIN as i64,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "list-compress-depth",
        None,
        list_compress_depth,
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "hash-max-listpack-entries",
        Some("hash-max-ziplist-entries"),
        hash_max_listpack_entries,
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "hash-max-listpack-value",
        Some("hash-max-ziplist-value"),
        hash_max_listpack_value,
        Kind::Memory {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "set-max-intset-entries",
        None,
        set_max_intset_entries,
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "zset-max-listpack-entries",
        Some("zset-max-ziplist-entries"),
        zset_max_listpack_entries,
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "zset-max-listpack-value",
        Some("zset-max-ziplist-value"),
        zset_max_listpack_value,
        Kind::Memory {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "stream-node-max-entries",
        None,
        stream_node_max_entries,
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "stream-node-max-bytes",
        None,
        stream_node_max_bytes,
        Kind::Memory {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "hz",
        None,
        hz,
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "slowlog-log-slower-than",
        None,
        slowlog_log_slower_than,
        Kind::Int {
            min: -1,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "slowlog-max-len",
        None,
        slowlog_max_len,
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "busy-reply-threshold",
        Some("lua-time-limit"),
        busy_reply_threshold,
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "hll-sparse-max-bytes",
        None,
        hll_sparse_max_bytes,
        Kind::Memory {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!("latency-tracking", None, latency_tracking, bool, false),
    p!(
        "latency-monitor-threshold",
        None,
        latency_monitor_threshold,
        Kind::Int {
            min: 0,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "notify-keyspace-events",
        None,
        notify_keyspace_events,
        Kind::NotifyFlags,
        str,
        false
    ),
    Param {
        name: "client-output-buffer-limit",
        alias: None,
        kind: Kind::ObufLimit,
        immutable: false,
        get: |c| c.client_output_buffer_limit.clone(),
        set: |c, v| {
            c.client_output_buffer_limit = merge_obuf_limits(&c.client_output_buffer_limit, &v)
        },
        refine: None,
    },
    p!(
        "active-expire-effort",
        None,
        active_expire_effort,
        Kind::Int { min: 1, max: 10 },
        int,
        false
    ),
    p!(
        "lazyfree-lazy-eviction",
        None,
        lazyfree_lazy_eviction,
        bool,
        false
    ),
    p!(
        "lazyfree-lazy-expire",
        None,
        lazyfree_lazy_expire,
        bool,
        false
    ),
    p!(
        "lazyfree-lazy-server-del",
        None,
        lazyfree_lazy_server_del,
        bool,
        false
    ),
    p!(
        "lazyfree-lazy-user-del",
        None,
        lazyfree_lazy_user_del,
        bool,
        false
    ),
    p!(
        "lazyfree-lazy-user-flush",
        None,
        lazyfree_lazy_user_flush,
        bool,
        false
    ),
    p!(
        "repl-backlog-size",
        None,
        repl_backlog_size,
        Kind::Memory {
            min: 1,
            max: i64::MAX
        },
        int,
        false
    ),
    p!(
        "repl-ping-replica-period",
        Some("repl-ping-slave-period"),
        repl_ping_replica_period,
        Kind::Int {
            min: 1,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    // Redis's special `replicaof` config: immutable for `CONFIG SET`
    // (`REPLICAOF` is the way), shown by `CONFIG GET` as "host port" while
    // a replica; the file and command line go through `load_text`.
    Param {
        name: "replicaof",
        alias: Some("slaveof"),
        kind: Kind::Str,
        immutable: true,
        get: |c| {
            c.replicaof
                .as_ref()
                .map(|(h, p)| format!("{h} {p}"))
                .unwrap_or_default()
        },
        set: |c, v| {
            c.replicaof = v
                .split_once(' ')
                .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
        },
        refine: None,
    },
    p!(
        "replica-read-only",
        Some("slave-read-only"),
        replica_read_only,
        bool,
        false
    ),
    p!(
        "replica-serve-stale-data",
        Some("slave-serve-stale-data"),
        replica_serve_stale_data,
        bool,
        false
    ),
    p!(
        "replica-ignore-maxmemory",
        Some("slave-ignore-maxmemory"),
        replica_ignore_maxmemory,
        bool,
        false
    ),
    p!("masterauth", None, masterauth, Kind::Str, str, false),
    p!("masteruser", None, masteruser, Kind::Str, str, false),
    p!(
        "min-replicas-to-write",
        Some("min-slaves-to-write"),
        min_replicas_to_write,
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "min-replicas-max-lag",
        Some("min-slaves-max-lag"),
        min_replicas_max_lag,
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "replica-priority",
        Some("slave-priority"),
        replica_priority,
        Kind::Int {
            min: 0,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    p!("replica-announced", None, replica_announced, bool, false),
    p!(
        "repl-timeout",
        None,
        repl_timeout,
        Kind::Int {
            min: 1,
            max: i32::MAX as i64
        },
        int,
        false
    ),
    p!(
        "io-threads",
        None,
        io_threads,
        Kind::Int { min: 1, max: 128 },
        int,
        true
    ),
    p!("daemonize", None, daemonize, bool, true),
    p!("pidfile", None, pidfile, Kind::Str, str, true),
    p!(
        "enable-debug-command",
        None,
        enable_debug_command,
        Kind::Enum(YES_NO_LOCAL),
        str,
        true
    ),
    p!(
        "enable-protected-configs",
        None,
        enable_protected_configs,
        Kind::Enum(YES_NO_LOCAL),
        str,
        true
    ),
    p!(
        "enable-module-command",
        None,
        enable_module_command,
        Kind::Enum(YES_NO_LOCAL),
        str,
        true
    ),
    p!(
        "shards",
        None,
        shards,
        Kind::Int { min: 1, max: 64 },
        int,
        true
    ),
];

/// A `MemoryOrPercent` value as `CONFIG GET` shows it: bytes, or `N%`
/// for a negative (percentage) value.
fn render_percent(v: i64) -> String {
    if v < 0 {
        format!("{}%", v.unsigned_abs())
    } else {
        v.to_string()
    }
}

/// Every parameter: those with a field of their own, then the rest of
/// Redis's ([`other::PARAMS`]).
pub fn params() -> impl Iterator<Item = &'static Param> {
    PARAMS.iter().chain(other::PARAMS)
}

/// Finds a parameter by name or alias, case-insensitively.
pub fn find_param(name: &str) -> Option<&'static Param> {
    params().find(|p| {
        p.name.eq_ignore_ascii_case(name) || p.alias.is_some_and(|a| a.eq_ignore_ascii_case(name))
    })
}

/// Parses a memory value the way Redis's `memtoull` does.
pub fn parse_memory(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let (num, mul): (&str, i64) = if let Some(n) = lower.strip_suffix("gb") {
        (n, 1024 * 1024 * 1024)
    } else if let Some(n) = lower.strip_suffix("mb") {
        (n, 1024 * 1024)
    } else if let Some(n) = lower.strip_suffix("kb") {
        (n, 1024)
    } else if let Some(n) = lower.strip_suffix('g') {
        (n, 1_000_000_000)
    } else if let Some(n) = lower.strip_suffix('m') {
        (n, 1_000_000)
    } else if let Some(n) = lower.strip_suffix('k') {
        (n, 1000)
    } else if let Some(n) = lower.strip_suffix('b') {
        (n, 1)
    } else {
        (lower.as_str(), 1)
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<i64>().ok()?.checked_mul(mul)
}

/// The `(hard, soft, soft_seconds)` of one class (`normal`, `slave`,
/// `pubsub`) in a canonical `client-output-buffer-limit` value.
pub fn obuf_limit(v: &str, class: &str) -> Option<(i64, i64, i64)> {
    let p: Vec<&str> = v.split_whitespace().collect();
    p.chunks(4)
        .find(|c| c.len() == 4 && c[0] == class)
        .and_then(|c| Some((c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?)))
}

/// Overlays the classes named in `new` on `old`, keeping Redis's order.
fn merge_obuf_limits(old: &str, new: &str) -> String {
    let mut out = Vec::new();
    for class in ["normal", "slave", "pubsub"] {
        let (h, s, t) = obuf_limit(new, class)
            .or_else(|| obuf_limit(old, class))
            .unwrap_or((0, 0, 0));
        out.push(format!("{class} {h} {s} {t}"));
    }
    out.join(" ")
}

/// Validates `client-output-buffer-limit` arguments as Redis's
/// `updateClientOutputBufferLimit`, into canonical triples.
fn parse_obuf_limits(args: &[String]) -> Result<String, ConfigError> {
    let joined = args.join(" ");
    let parts: Vec<&str> = joined.split_whitespace().collect();
    if !parts.len().is_multiple_of(4) {
        return Err(ConfigError::Invalid(
            "Wrong number of arguments in buffer limit configuration.".into(),
        ));
    }
    let mut out = Vec::new();
    for c in parts.chunks(4) {
        let class = match c[0].to_ascii_lowercase().as_str() {
            "normal" => "normal",
            "slave" | "replica" => "slave",
            "pubsub" => "pubsub",
            _ => {
                return Err(ConfigError::Invalid(
                    "Invalid client class specified in buffer limit configuration.".into(),
                ))
            }
        };
        let bad = || {
            ConfigError::Invalid(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.".into(),
            )
        };
        let hard = parse_memory(c[1]).ok_or_else(bad)?;
        let soft = parse_memory(c[2]).ok_or_else(bad)?;
        let secs: i64 = c[3].parse().ok().filter(|s| *s >= 0).ok_or_else(bad)?;
        out.push(format!("{class} {hard} {soft} {secs}"));
    }
    Ok(out.join(" "))
}

/// Parameters left out of `CONFIG GET` patterns (shown only when asked for
/// by name), as Redis leaves out its `HIDDEN_CONFIG` ones: Ferrite's own,
/// and Redis's hidden debugging knobs, so that tools that read `CONFIG GET *` and set every value
/// back (Redis's own test suite does) see only Redis's parameters.
const HIDDEN: &[&str] = &["shards", "key-load-delay"];

impl Param {
    /// Whether a `CONFIG GET` pattern skips it (see [`HIDDEN`]).
    pub fn hidden(&self) -> bool {
        HIDDEN.contains(&self.name)
    }

    /// Validates and normalises `args` (already split) into the stored text.
    pub fn normalise(&self, args: &[String]) -> Result<String, ConfigError> {
        let v = self.normalise_kind(args)?;
        match self.refine {
            Some(f) => f(v).map_err(ConfigError::Invalid),
            None => Ok(v),
        }
    }

    fn normalise_kind(&self, args: &[String]) -> Result<String, ConfigError> {
        let single = || -> Result<&str, ConfigError> {
            if args.len() == 1 {
                Ok(args[0].as_str())
            } else {
                Err(ConfigError::Unknown)
            }
        };
        match self.kind {
            Kind::Bool => match single()?.to_ascii_lowercase().as_str() {
                "yes" => Ok("yes".into()),
                "no" => Ok("no".into()),
                _ => Err(ConfigError::Invalid(
                    "argument must be 'yes' or 'no'".into(),
                )),
            },
            Kind::Int { min, max } => {
                let v = single()?;
                let n: i64 = ferrite_protocol::parse_i64(v.as_bytes()).ok_or_else(|| {
                    ConfigError::Invalid("argument couldn't be parsed into an integer".into())
                })?;
                if n < min || n > max {
                    return Err(ConfigError::Invalid(format!(
                        "argument must be between {min} and {max} inclusive"
                    )));
                }
                Ok(n.to_string())
            }
            Kind::Memory { min, max } => {
                let v = single()?;
                let n = parse_memory(v).ok_or_else(|| {
                    ConfigError::Invalid("argument must be a memory value".into())
                })?;
                if n < min || n > max {
                    return Err(ConfigError::Invalid(format!(
                        "argument must be between {min} and {max} inclusive"
                    )));
                }
                Ok(n.to_string())
            }
            Kind::MemoryOrPercent { max_percent } => {
                let v = single()?;
                let n = parse_memory(v)
                    .or_else(|| {
                        let n = ferrite_protocol::parse_i64(v.strip_suffix('%')?.as_bytes())?;
                        (n >= 0).then_some(-n)
                    })
                    .ok_or_else(|| {
                        ConfigError::Invalid("argument must be a memory or percent value".into())
                    })?;
                if n < -max_percent {
                    return Err(ConfigError::Invalid(format!(
                        "percentage argument must be less or equal to {max_percent}"
                    )));
                }
                Ok(n.to_string())
            }
            Kind::Enum(values) => {
                let v = single()?.to_ascii_lowercase();
                if values.contains(&v.as_str()) {
                    Ok(v)
                } else {
                    Err(ConfigError::Invalid(
                        "argument(s) must be one of the following: ".to_string()
                            + &values.join(", "),
                    ))
                }
            }
            Kind::Str => Ok(single()?.to_string()),
            Kind::List => Ok(args.join(" ")),
            Kind::Save => {
                let joined = args.join(" ");
                let parts: Vec<&str> = joined.split_whitespace().collect();
                if parts.len() == 1 && parts[0].is_empty() || parts.is_empty() {
                    return Ok(String::new());
                }
                if !parts.len().is_multiple_of(2) || parts.iter().any(|p| p.parse::<u64>().is_err())
                {
                    return Err(ConfigError::Invalid("Invalid save parameters".into()));
                }
                Ok(parts.join(" "))
            }
            Kind::ObufLimit => parse_obuf_limits(args),
            Kind::Flags(words) => {
                let bits = flag_bits(words, &args.join(" ")).ok_or_else(|| {
                    ConfigError::Invalid(
                        "argument(s) must be one of the following: ".to_string()
                            + &words.join(", "),
                    )
                })?;
                Ok(other::render_flags(words, bits))
            }
            Kind::IntList {
                count,
                min,
                max,
                err,
            } => {
                let joined = args.join(" ");
                let parts: Vec<&str> = joined.split_whitespace().collect();
                if parts.len() != count {
                    return Err(ConfigError::Invalid("wrong number of arguments".into()));
                }
                let mut out = Vec::with_capacity(count);
                for p in parts {
                    let n = ferrite_protocol::parse_i64(p.as_bytes())
                        .filter(|n| (min..=max).contains(n))
                        .ok_or_else(|| ConfigError::Invalid(err.into()))?;
                    out.push(n.to_string());
                }
                Ok(out.join(" "))
            }
            Kind::Percentiles => other::parse_percentiles(args).map_err(ConfigError::Invalid),
            Kind::Octal { max } => {
                let n = i64::from_str_radix(single()?, 8).map_err(|_| {
                    ConfigError::Invalid("argument couldn't be parsed as an octal number".into())
                })?;
                if !(0..=max).contains(&n) {
                    return Err(ConfigError::Invalid(format!(
                        "argument must be between 0 and {max:o} inclusive"
                    )));
                }
                Ok(format!("{n:o}"))
            }
            Kind::NotifyFlags => {
                let v = single()?;
                if let Some(f) = crate::pubsub::notify::parse(v) {
                    Ok(crate::pubsub::notify::render(f))
                } else {
                    Err(ConfigError::Invalid(
                        "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into(),
                    ))
                }
            }
        }
    }

    /// The value as `CONFIG GET` shows it.
    pub fn get(&self, c: &Config) -> String {
        (self.get)(c)
    }

    /// Stores an already normalised value.
    pub fn apply(&self, c: &mut Config, normalised: String) {
        (self.set)(c, normalised)
    }
}

impl Config {
    /// Sets one parameter from text arguments, validating it (config file,
    /// command line and `CONFIG SET` all come here).
    pub fn set(&mut self, name: &str, args: &[String]) -> Result<(), ConfigError> {
        let p = find_param(name).ok_or(ConfigError::Unknown)?;
        let v = p.normalise(args)?;
        p.apply(self, v);
        Ok(())
    }

    /// Applies `redis.conf`-style text: one directive per line, `#` comments,
    /// arguments split like Redis's `sdssplitargs`.
    pub fn load_text(&mut self, text: &str) -> Result<(), ConfigError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let args = ferrite_protocol::split_args(line.as_bytes()).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "line {}: Unbalanced quotes in configuration line",
                    i + 1
                ))
            })?;
            let args: Vec<String> = args
                .into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect();
            let Some((name, rest)) = args.split_first() else {
                continue;
            };
            if name.eq_ignore_ascii_case("replicaof") || name.eq_ignore_ascii_case("slaveof") {
                let bad = || {
                    ConfigError::Invalid(format!(
                        "line {}: '{}': Bad directive or wrong number of arguments",
                        i + 1,
                        line
                    ))
                };
                // `CONFIG REWRITE` writes the pair as one quoted value.
                let split: Vec<String> = match rest {
                    [one] => one.split_whitespace().map(String::from).collect(),
                    _ => rest.to_vec(),
                };
                let [host, port] = split.as_slice() else {
                    return Err(bad());
                };
                if host.eq_ignore_ascii_case("no") && port.eq_ignore_ascii_case("one") {
                    self.replicaof = None;
                    continue;
                }
                let port: u16 = port.parse().map_err(|_| bad())?;
                self.replicaof = Some((host.clone(), port));
                continue;
            }
            if name.eq_ignore_ascii_case("rename-command") {
                let bad =
                    |why: &str| ConfigError::Invalid(format!("line {}: '{}': {why}", i + 1, line));
                let [old, new] = rest else {
                    return Err(bad("Bad directive or wrong number of arguments"));
                };
                self.renames.push((old.clone(), new.clone()));
                // Checked here, in order, for the line that fails.
                crate::command::rename::namespace(&self.renames).map_err(|e| bad(&e))?;
                continue;
            }
            if name.eq_ignore_ascii_case("user") && !rest.is_empty() {
                // One argument holding the whole rule list (`--user "u on"`
                // on the command line) is split as a file line would be.
                let words: Vec<Vec<u8>> = match rest {
                    [one] if one.contains(char::is_whitespace) => one
                        .split_whitespace()
                        .map(|w| w.as_bytes().to_vec())
                        .collect(),
                    _ => rest.iter().map(|w| w.as_bytes().to_vec()).collect(),
                };
                let bad = |why: String| {
                    ConfigError::Invalid(format!("line {}: '{}': {why}", i + 1, line))
                };
                if words.is_empty() {
                    return Err(bad("Bad directive or wrong number of arguments".into()));
                }
                if self.users.iter().any(|u| u[0] == words[0]) {
                    return Err(bad(
                        "Duplicate user found. A user can only be defined once in config files"
                            .into(),
                    ));
                }
                crate::acl::validate_config_user(&words).map_err(|e| {
                    bad(format!(
                        "Error in user declaration '{}': {e}",
                        String::from_utf8_lossy(&words[0])
                    ))
                })?;
                self.users.push(words);
                continue;
            }
            if other::DEPRECATED
                .iter()
                .any(|(d, n)| name.eq_ignore_ascii_case(d) && rest.len() == *n)
            {
                continue;
            }
            // Directives outside the parameter table that Redis reads and
            // Ferrite cannot honour: refused, not ignored, since each one
            // would otherwise leave a server less locked down or less
            // capable than its file says.
            let unsupported = match name.to_ascii_lowercase().as_str() {
                "loadmodule" => Some("modules are not supported"),
                "sentinel" => Some("sentinel mode is not supported"),
                _ => None,
            };
            if let Some(why) = unsupported {
                return Err(ConfigError::Invalid(format!(
                    "line {}: '{}': {why}",
                    i + 1,
                    line
                )));
            }
            if name.eq_ignore_ascii_case("include") {
                for f in rest {
                    let t = std::fs::read_to_string(f)
                        .map_err(|e| ConfigError::File(f.clone(), e.to_string()))?;
                    self.load_text(&t)?;
                }
                continue;
            }
            self.set(name, rest)
                .map_err(|e| ConfigError::Invalid(format!("line {}: '{}': {}", i + 1, line, e)))?;
        }
        Ok(())
    }

    /// Builds the configuration like `redis-server [file] [--name value ...]`:
    /// the file first, then the command-line options over it.
    pub fn from_args(args: &[String]) -> Result<Config, ConfigError> {
        Config::from_args_over(Config::default(), args)
    }

    /// As [`Config::from_args`], starting from `base` instead of the
    /// defaults: the config file and then the options override it.
    pub fn from_args_over(base: Config, args: &[String]) -> Result<Config, ConfigError> {
        let mut c = base;
        let mut rest = args;
        if let Some(first) = args.first() {
            if !first.starts_with("--") {
                let text = if first == "-" {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                        .map_err(|e| ConfigError::File("-".into(), e.to_string()))?;
                    s
                } else {
                    c.config_file = Some(PathBuf::from(first));
                    std::fs::read_to_string(first)
                        .map_err(|e| ConfigError::File(first.clone(), e.to_string()))?
                };
                c.load_text(&text)?;
                rest = &args[1..];
            }
        }
        // `--name v1 v2 --other v` becomes "name v1 v2\nother v", as redis-server does.
        let mut text = String::new();
        for a in rest {
            if let Some(name) = a.strip_prefix("--") {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(name);
            } else {
                text.push(' ');
                let quoted = a.is_empty()
                    || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'');
                if quoted {
                    let _ = write!(text, "\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""));
                } else {
                    text.push_str(a);
                }
            }
        }
        c.load_text(&text)?;
        Ok(c)
    }

    /// Writes the configuration back to its file (`CONFIG REWRITE`): lines of
    /// parameters that differ from the defaults are replaced or appended,
    /// comments and unknown lines are kept.
    /// `users` are the ACL's `user ...` lines, written in place of the
    /// file's own (none when an ACL file keeps them).
    pub fn rewrite(&self, users: &[Vec<u8>]) -> Result<(), String> {
        let Some(path) = &self.config_file else {
            return Err("ERR The server is running without a config file".into());
        };
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let defaults = Config::default();
        let mut written = std::collections::HashSet::new();
        let mut out = String::new();
        let mut users_written = false;
        let write_users = |out: &mut String| {
            for u in users {
                out.push_str(&String::from_utf8_lossy(u));
                out.push('\n');
            }
        };
        for line in old.lines() {
            let t = line.trim();
            let name = t.split_whitespace().next().unwrap_or("");
            if name.eq_ignore_ascii_case("user") {
                if !users_written {
                    users_written = true;
                    write_users(&mut out);
                }
                continue;
            }
            match find_param(name) {
                Some(p) if !t.starts_with('#') => {
                    if written.insert(p.name) {
                        let _ = writeln!(out, "{} {}", p.name, quote(&p.get(self)));
                    }
                }
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        for p in params() {
            if !written.contains(p.name) && p.get(self) != p.get(&defaults) {
                let _ = writeln!(out, "{} {}", p.name, quote(&p.get(self)));
            }
        }
        if !users_written {
            // Every user, the default one included, as Redis writes them.
            write_users(&mut out);
        }
        let tmp = path.with_extension("tmp-rewrite");
        std::fs::write(&tmp, out).map_err(|e| format!("ERR Rewriting config file: {e}"))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("ERR Rewriting config file: {e}"))
    }
}

fn quote(v: &str) -> String {
    if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '"') {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_overrides_file_syntax() {
        let args: Vec<String> = [
            "--port",
            "7777",
            "--maxmemory",
            "100mb",
            "--save",
            "",
            "--bind",
            "0.0.0.0",
            "::",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = Config::from_args(&args).unwrap();
        assert_eq!(c.port, 7777);
        assert_eq!(c.maxmemory, 100 * 1024 * 1024);
        assert_eq!(c.save, "");
        assert_eq!(c.bind, vec!["0.0.0.0", "::"]);
    }

    #[test]
    fn container_defaults_are_overridden_by_file_and_options() {
        let base = Config {
            bind: vec!["0.0.0.0".into()],
            protected_mode: false,
            dir: "/data".into(),
            ..Config::default()
        };
        let c = Config::from_args_over(base.clone(), &[]).unwrap();
        assert_eq!(c.bind, vec!["0.0.0.0"]);
        assert!(!c.protected_mode);
        assert_eq!(c.dir, "/data");
        let args: Vec<String> = ["--protected-mode", "yes", "--dir", "/tmp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c = Config::from_args_over(base, &args).unwrap();
        assert!(c.protected_mode);
        assert_eq!(c.dir, "/tmp");
        assert_eq!(c.bind, vec!["0.0.0.0"]);
    }

    #[test]
    fn bad_values_are_refused_with_redis_text() {
        let mut c = Config::default();
        assert_eq!(
            c.set("maxmemory", &["lots".into()]),
            Err(ConfigError::Invalid(
                "argument must be a memory value".into()
            ))
        );
        assert_eq!(c.set("nosuch", &["1".into()]), Err(ConfigError::Unknown));
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("2GB"), Some(2 << 30));
    }

    #[test]
    fn maxmemory_clients_takes_bytes_or_a_percentage() {
        let mut c = Config::default();
        let p = find_param("maxmemory-clients").unwrap();
        c.set("maxmemory-clients", &["3mb".into()]).unwrap();
        assert_eq!(c.maxmemory_clients, 3 << 20);
        assert_eq!(p.get(&c), "3145728");
        c.set("maxmemory-clients", &["10%".into()]).unwrap();
        assert_eq!(c.maxmemory_clients, -10);
        assert_eq!(p.get(&c), "10%");
        c.set("maxmemory-clients", &["0%".into()]).unwrap();
        assert_eq!(p.get(&c), "0");
        let bad = Err(ConfigError::Invalid(
            "argument must be a memory or percent value".into(),
        ));
        for v in ["-1", "abc", "1.5mb", "-5%", "5%%", "%"] {
            assert_eq!(c.set("maxmemory-clients", &[v.into()]), bad, "{v}");
        }
        assert_eq!(
            c.set("maxmemory-clients", &["101%".into()]),
            Err(ConfigError::Invalid(
                "percentage argument must be less or equal to 100".into()
            ))
        );
    }
}
