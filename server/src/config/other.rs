//! The rest of Redis 7.0's parameters: those without a field of their own
//! in [`Config`], stored as normalised text in [`Config::other`].
//!
//! Every name `redis-server` (built without TLS) accepts is here, with its
//! type, range, default and immutability, so that a stock `redis.conf` and
//! `CONFIG GET *` behave as with Redis. What each one does in Ferrite is
//! written next to it. Values that would promise something Ferrite cannot
//! do (`cluster-enabled yes`, a Unix socket) are refused with
//! a reason instead of being accepted and ignored.

use super::{Config, Kind, Param};

/// A parameter kept in [`Config::other`], `$default` while unset.
macro_rules! o {
    ($name:literal, $alias:expr, $kind:expr, $default:literal, $imm:expr) => {
        o!($name, $alias, $kind, $default, $imm, None)
    };
    ($name:literal, $alias:expr, $kind:expr, $default:literal, $imm:expr, $refine:expr) => {
        Param {
            name: $name,
            alias: $alias,
            kind: $kind,
            immutable: $imm,
            get: |c| {
                c.other
                    .get($name)
                    .cloned()
                    .unwrap_or_else(|| $default.to_string())
            },
            set: |c, v| {
                c.other.insert($name, v);
            },
            refine: $refine,
        }
    };
}

const INT: Kind = Kind::Int {
    min: 0,
    max: i32::MAX as i64,
};
const LONG: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};
const PORT: Kind = Kind::Int { min: 0, max: 65535 };
/// The words of `shutdown-on-sigint` / `shutdown-on-sigterm`, bit 0 = `save`.
pub const SHUTDOWN_FLAGS: &[&str] = &["default", "save", "nosave", "now", "force"];

/// The parameters, in `CONFIG REWRITE` order after [`super::PARAMS`].
pub static PARAMS: &[Param] = &[
    // ---- process and operating system
    // Linux: `prctl(PR_SET_THP_DISABLE)` at start (see `main.rs`).
    o!("disable-thp", None, Kind::Bool, "yes", true),
    // `systemd` (or `auto` under systemd): readiness and stopping are
    // reported on `$NOTIFY_SOCKET`; `upstart`: the process stops itself
    // when ready (see `crate::supervise`).
    o!(
        "supervised",
        None,
        Kind::Enum(&["upstart", "systemd", "auto", "no"]),
        "no",
        true
    ),
    // `/proc/self/oom_score_adj` follows the role (see `crate::oom`).
    o!(
        "oom-score-adj",
        None,
        Kind::Enum(&["no", "yes", "relative", "absolute"]),
        "no",
        false,
        Some(|v| Ok(if v == "relative" { "yes".into() } else { v }))
    ),
    o!(
        "oom-score-adj-values",
        None,
        Kind::IntList {
            count: 3,
            min: -2000,
            max: 2000,
            err: "Invalid oom-score-adj-values, elements must be between -2000 and 2000."
        },
        "0 200 800",
        false
    ),
    // SIGINT / SIGTERM act as `SHUTDOWN` with these flags (see `main.rs`).
    o!(
        "shutdown-on-sigint",
        None,
        Kind::Flags(SHUTDOWN_FLAGS),
        "default",
        false,
        Some(save_nosave)
    ),
    o!(
        "shutdown-on-sigterm",
        None,
        Kind::Flags(SHUTDOWN_FLAGS),
        "default",
        false,
        Some(save_nosave)
    ),
    // Seconds `SHUTDOWN` (without NOW) and the shutdown signals wait, with
    // writes paused, for lagging replicas to acknowledge the stream
    // (`crate::shutdown`).
    o!("shutdown-timeout", None, INT, "10", false),
    // Refuses writes with `-MISCONF` after a failed background save.
    o!(
        "stop-writes-on-bgsave-error",
        None,
        Kind::Bool,
        "yes",
        false
    ),
    // Log presentation: Ferrite has no ASCII-art logo, and its process
    // title is the executable's (safe Rust cannot rewrite `argv`); the
    // template is still checked as Redis checks it.
    o!("always-show-logo", None, Kind::Bool, "no", true),
    o!("set-proc-title", None, Kind::Bool, "yes", true),
    o!(
        "proc-title-template",
        None,
        Kind::Str,
        "{title} {listen-addr} {server-mode}",
        false,
        Some(proc_title_template)
    ),
    // Redis's crash report on a fatal signal. Ferrite has no signal
    // handler to report from; a panic is caught and logged per task.
    o!("crash-log-enabled", None, Kind::Bool, "yes", false),
    o!("crash-memcheck-enabled", None, Kind::Bool, "yes", false),
    // Names of Redis start-up warnings to silence (`ARM64-COW-BUG`); Ferrite
    // emits none of them.
    o!("ignore-warnings", None, Kind::Str, "", false),
    // CPU affinity lists (`0-3,8`) of Redis's threads and forked children.
    // Not applied: Ferrite's threads follow the scheduler.
    o!("server_cpulist", None, Kind::Str, "", true),
    o!("bio_cpulist", None, Kind::Str, "", true),
    o!("aof_rewrite_cpulist", None, Kind::Str, "", true),
    o!("bgsave_cpulist", None, Kind::Str, "", true),
    // Refused when set: see each reason.
    o!(
        "syslog-enabled",
        None,
        Kind::Bool,
        "no",
        true,
        Some(|v| refuse_unless(v, "no", "syslog is not supported; use logfile"))
    ),
    o!("syslog-ident", None, Kind::Str, "redis", true),
    o!(
        "syslog-facility",
        None,
        Kind::Enum(&[
            "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"
        ]),
        "local0",
        true
    ),
    o!(
        "unixsocket",
        None,
        Kind::Str,
        "",
        true,
        Some(|v| refuse_unless(
            v,
            "",
            "unix sockets are not supported; clients connect over TCP"
        ))
    ),
    o!(
        "unixsocketperm",
        None,
        Kind::Octal { max: 0o777 },
        "0",
        true
    ),
    o!(
        "socket-mark-id",
        None,
        Kind::Int {
            min: 0,
            max: u32::MAX as i64
        },
        "0",
        true,
        Some(|v| refuse_unless(v, "0", "socket marks (SO_MARK) are not supported"))
    ),
    // ---- memory: no jemalloc, so as Redis built with libc malloc, active
    // defragmentation cannot be enabled and its tunables have no effect.
    o!(
        "activedefrag",
        None,
        Kind::Bool,
        "no",
        false,
        Some(|v| refuse_unless(
            v,
            "no",
            "Active defragmentation cannot be enabled: it requires a Redis server compiled \
             with a modified Jemalloc like the one shipped by default with the Redis source \
             distribution"
        ))
    ),
    o!(
        "active-defrag-cycle-max",
        None,
        Kind::Int { min: 1, max: 99 },
        "25",
        false
    ),
    o!(
        "active-defrag-cycle-min",
        None,
        Kind::Int { min: 1, max: 99 },
        "1",
        false
    ),
    o!(
        "active-defrag-ignore-bytes",
        None,
        Kind::Memory {
            min: 1,
            max: i64::MAX
        },
        "104857600",
        false
    ),
    o!(
        "active-defrag-max-scan-fields",
        None,
        Kind::Int {
            min: 1,
            max: i64::MAX
        },
        "1000",
        false
    ),
    o!(
        "active-defrag-threshold-lower",
        None,
        Kind::Int { min: 0, max: 1000 },
        "10",
        false
    ),
    o!(
        "active-defrag-threshold-upper",
        None,
        Kind::Int { min: 0, max: 1000 },
        "100",
        false
    ),
    o!("jemalloc-bg-thread", None, Kind::Bool, "yes", false),
    // Not applied: tables rehash a step on each access to them, never in
    // the background, so an idle table keeps its old array until touched.
    o!("activerehashing", None, Kind::Bool, "yes", false),
    // Not applied: background cycles run at `hz`, however many clients.
    o!("dynamic-hz", None, Kind::Bool, "yes", false),
    // Commands run on the connections' own workers (`crate::workers`).
    o!("io-threads-do-reads", None, Kind::Bool, "no", true),
    // `RESTORE` payloads are always checked in full, as with `yes`.
    o!(
        "sanitize-dump-payload",
        None,
        Kind::Enum(&["no", "yes", "clients"]),
        "no",
        false
    ),
    // Percentiles of INFO `latencystats` (`crate::hdr`).
    o!(
        "latency-tracking-info-percentiles",
        None,
        Kind::Percentiles,
        "50 99 99.9",
        false
    ),
    // ---- ACL (see `crate::acl`): the users' file, loaded at start and by
    // `ACL LOAD`, written by `ACL SAVE`; the ACL log's length.
    o!("aclfile", None, Kind::Str, "", true),
    o!("acllog-max-len", None, LONG, "128", false),
    o!(
        "acl-pubsub-default",
        None,
        Kind::Enum(&["allchannels", "resetchannels"]),
        "resetchannels",
        false
    ),
    // ---- persistence (RDB): `rdbcompression` compresses strings with
    // LZF as Redis does (`crate::lzf`); files always carry a checksum
    // (Redis and Ferrite load files with or without).
    o!("rdbcompression", None, Kind::Bool, "yes", false),
    o!("rdbchecksum", None, Kind::Bool, "yes", true),
    o!("rdb-del-sync-files", None, Kind::Bool, "no", false),
    o!("rdb-save-incremental-fsync", None, Kind::Bool, "yes", false),
    // A debugging knob Redis's tests use (hidden from `CONFIG GET`
    // patterns, as Redis's `HIDDEN_CONFIG`): microseconds to sleep per key
    // or AOF command loaded; negative, 1 µs once every that many keys.
    o!(
        "key-load-delay",
        None,
        Kind::Int {
            min: i32::MIN as i64,
            max: i32::MAX as i64
        },
        "0",
        false
    ),
    // ---- append-only file (`crate::aof`): the directory, truncated-tail
    // loading, the base's format, history deletion, `#TS:` annotations
    // and the automatic rewrite act as in Redis. Without effect:
    // `aof-rewrite-incremental-fsync` (a base is synced once, at its end)
    // and `no-appendfsync-on-rewrite` (syncing goes on during a rewrite,
    // which only ever loses less).
    o!(
        "appenddirname",
        None,
        Kind::Str,
        "appendonlydir",
        true,
        Some(aof_dirname)
    ),
    o!("aof-load-truncated", None, Kind::Bool, "yes", false),
    o!("aof-use-rdb-preamble", None, Kind::Bool, "yes", false),
    o!("aof-timestamp-enabled", None, Kind::Bool, "no", false),
    o!("aof-disable-auto-gc", None, Kind::Bool, "no", false),
    o!(
        "aof-rewrite-incremental-fsync",
        None,
        Kind::Bool,
        "yes",
        false
    ),
    o!("no-appendfsync-on-rewrite", None, Kind::Bool, "no", false),
    o!("auto-aof-rewrite-percentage", None, INT, "100", false),
    o!(
        "auto-aof-rewrite-min-size",
        None,
        Kind::Memory {
            min: 0,
            max: i64::MAX
        },
        "67108864",
        false
    ),
    // ---- replication. A full sync always streams the snapshot from
    // memory (diskless) and loads it into a fresh dataset.
    o!("repl-diskless-sync", None, Kind::Bool, "yes", false),
    o!("repl-diskless-sync-delay", None, INT, "5", false),
    o!("repl-diskless-sync-max-replicas", None, INT, "0", false),
    o!(
        "repl-diskless-load",
        None,
        Kind::Enum(&["disabled", "on-empty-db", "swapdb"]),
        "disabled",
        false
    ),
    // Turns TCP_NODELAY off on a replica's link after its snapshot.
    o!("repl-disable-tcp-nodelay", None, Kind::Bool, "no", false),
    // A primary without replicas this long frees its backlog
    // (`replica::free_idle_backlog`).
    o!("repl-backlog-ttl", None, LONG, "3600", false),
    o!(
        "replica-announce-ip",
        Some("slave-announce-ip"),
        Kind::Str,
        "",
        false
    ),
    o!(
        "replica-announce-port",
        Some("slave-announce-port"),
        PORT,
        "0",
        false
    ),
    // A full sync frees the old dataset in the background.
    o!(
        "replica-lazy-flush",
        Some("slave-lazy-flush"),
        Kind::Bool,
        "no",
        false
    ),
    o!(
        "replica-ignore-disk-write-errors",
        None,
        Kind::Bool,
        "no",
        false
    ),
    o!(
        "propagation-error-behavior",
        None,
        Kind::Enum(&["ignore", "panic", "panic-on-replicas"]),
        "ignore",
        false
    ),
    // The local address of the link to the primary.
    o!("bind-source-addr", None, Kind::Str, "", false),
    // ---- cluster: Ferrite runs standalone only, so cluster mode is
    // refused; the other cluster parameters have no effect without it.
    o!(
        "cluster-enabled",
        None,
        Kind::Bool,
        "no",
        true,
        Some(|v| refuse_unless(
            v,
            "no",
            "cluster mode is not supported; Ferrite runs as a standalone server"
        ))
    ),
    o!("cluster-config-file", None, Kind::Str, "nodes.conf", true),
    o!("cluster-port", None, PORT, "0", true),
    o!("cluster-node-timeout", None, LONG, "15000", false),
    o!("cluster-announce-ip", None, Kind::Str, "", false),
    o!("cluster-announce-hostname", None, Kind::Str, "", false),
    o!("cluster-announce-port", None, PORT, "0", false),
    o!("cluster-announce-bus-port", None, PORT, "0", false),
    o!("cluster-announce-tls-port", None, PORT, "0", false),
    o!(
        "cluster-preferred-endpoint-type",
        None,
        Kind::Enum(&["ip", "hostname", "unknown-endpoint"]),
        "ip",
        false
    ),
    o!(
        "cluster-replica-no-failover",
        Some("cluster-slave-no-failover"),
        Kind::Bool,
        "no",
        false
    ),
    o!(
        "cluster-replica-validity-factor",
        Some("cluster-slave-validity-factor"),
        INT,
        "10",
        false
    ),
    o!("cluster-migration-barrier", None, INT, "1", false),
    o!(
        "cluster-require-full-coverage",
        None,
        Kind::Bool,
        "yes",
        false
    ),
    o!(
        "cluster-allow-reads-when-down",
        None,
        Kind::Bool,
        "no",
        false
    ),
    o!(
        "cluster-allow-pubsubshard-when-down",
        None,
        Kind::Bool,
        "yes",
        false
    ),
    o!(
        "cluster-allow-replica-migration",
        None,
        Kind::Bool,
        "yes",
        false
    ),
    o!(
        "cluster-link-sendbuf-limit",
        None,
        Kind::Memory {
            min: 0,
            max: i64::MAX
        },
        "0",
        false
    ),
];

/// Directives that Redis 7.0 still reads from a config file and ignores
/// (its `deprecated_configs`), with their argument count.
pub const DEPRECATED: &[(&str, usize)] = &[
    ("list-max-ziplist-entries", 1),
    ("list-max-ziplist-value", 1),
    ("lua-replicate-commands", 1),
];

/// The bits of a [`Kind::Flags`] value: word `i` (from 1) is bit `i - 1`,
/// the first word is none. `None` if a word is not one of `words`.
pub fn flag_bits(words: &[&str], value: &str) -> Option<u32> {
    let mut bits = 0;
    let mut any = false;
    for w in value.split_whitespace() {
        let i = words.iter().position(|x| x.eq_ignore_ascii_case(w))?;
        if i > 0 {
            bits |= 1 << (i - 1);
        }
        any = true;
    }
    any.then_some(bits)
}

/// A [`Kind::Flags`] value as `CONFIG GET` shows it: the words in table
/// order, or the first word for none.
pub(super) fn render_flags(words: &[&str], bits: u32) -> String {
    let set: Vec<&str> = words
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(i, _)| bits & (1 << (i - 1)) != 0)
        .map(|(_, w)| *w)
        .collect();
    if set.is_empty() {
        words[0].to_string()
    } else {
        set.join(" ")
    }
}

/// Validates percentiles as Redis's
/// `setConfigLatencyTrackingInfoPercentilesOutputOption`; shown with
/// trailing zeros trimmed.
pub(super) fn parse_percentiles(args: &[String]) -> Result<String, String> {
    let joined = args.join(" ");
    let mut out = Vec::new();
    for p in joined.split_whitespace() {
        let v: f64 = p
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or("Invalid latency-tracking-info-percentiles parameters")?;
        if !(0.0..=100.0).contains(&v) {
            return Err(
                "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
                    .into(),
            );
        }
        out.push(trim_float(v));
    }
    Ok(out.join(" "))
}

/// `%f` with trailing zeros (and a bare point) removed, as Redis's
/// `trimDoubleString`.
fn trim_float(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn refuse_unless(v: String, allowed: &str, why: &str) -> Result<String, String> {
    if v == allowed {
        Ok(v)
    } else {
        Err(why.into())
    }
}

fn save_nosave(v: String) -> Result<String, String> {
    let bits = flag_bits(SHUTDOWN_FLAGS, &v).unwrap_or(0);
    if bits & 0b11 == 0b11 {
        Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into())
    } else {
        Ok(v)
    }
}

fn aof_dirname(v: String) -> Result<String, String> {
    if v.is_empty() {
        Err("appenddirname can't be empty".into())
    } else if v.contains('/') || v == "." || v == ".." {
        Err("appenddirname can't be a path, just a dirname".into())
    } else {
        Ok(v)
    }
}

/// Redis's `validateProcTitleTemplate`: `{var}` names a known variable
/// (`{{` and `}}` are literal braces), and the title the template makes
/// with an empty `{title}` is not blank.
fn proc_title_template(v: String) -> Result<String, String> {
    // The variables, and whether each expands to text when `title` is empty.
    const VARS: &[(&str, bool)] = &[
        ("title", false),
        ("listen-addr", true),
        ("server-mode", false),
        ("port", true),
        ("tls-port", true),
        ("unixsocket", false),
        ("config-file", false),
    ];
    let bad = || "template format is invalid or contains unknown variables".to_string();
    let b = v.as_bytes();
    let mut i = 0;
    let mut text = false;
    while i < b.len() {
        match b[i] {
            b'{' if b.get(i + 1) == Some(&b'{') => {
                text = true;
                i += 2;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => {
                text = true;
                i += 2;
            }
            b'}' => return Err(bad()),
            b'{' => {
                let close = v[i + 1..].find('}').ok_or_else(bad)? + i + 1;
                let var = &v[i + 1..close];
                let (_, expands) = VARS.iter().find(|(n, _)| *n == var).ok_or_else(bad)?;
                text |= expands;
                i = close + 1;
            }
            c => {
                text |= c != b' ';
                i += 1;
            }
        }
    }
    if text {
        Ok(v)
    } else {
        Err(bad())
    }
}

impl Config {
    /// A parameter's value as `CONFIG GET` shows it ("" for an unknown name).
    pub fn value(&self, name: &str) -> String {
        super::find_param(name)
            .map(|p| p.get(self))
            .unwrap_or_default()
    }

    /// Whether a yes/no parameter is `yes`.
    pub fn flag(&self, name: &str) -> bool {
        self.value(name) == "yes"
    }
}
