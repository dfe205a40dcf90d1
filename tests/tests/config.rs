//! The configuration as `redis-server` reads it: every parameter Redis 7.0
//! has (TLS aside), with Redis's defaults, in config files, on the command
//! line and through `CONFIG GET`/`CONFIG SET`; the directives Ferrite
//! refuses rather than ignore; a stock `redis.conf`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use ferrite_tests::{cmd, err, server_binary, TestServer};

/// Every parameter of Redis 7.0.15 built without TLS, with the value
/// `CONFIG GET` shows on a server started without a config file, as read
/// from a real one. Left out: those the test harness sets (`port`, `dir`,
/// `save`, `enable-debug-command`), `daemonize`/`pidfile`/`bind` (see
/// below), and `hash-max-listpack-entries` (alias `hash-max-ziplist-entries`),
/// which Ferrite starts at 128, the value of Redis's stock `redis.conf`,
/// where Redis's built-in default is 512.
const REDIS_DEFAULTS: &[(&str, &str)] = &[
    ("acl-pubsub-default", "resetchannels"),
    ("aclfile", ""),
    ("acllog-max-len", "128"),
    ("active-defrag-cycle-max", "25"),
    ("active-defrag-cycle-min", "1"),
    ("active-defrag-ignore-bytes", "104857600"),
    ("active-defrag-max-scan-fields", "1000"),
    ("active-defrag-threshold-lower", "10"),
    ("active-defrag-threshold-upper", "100"),
    ("active-expire-effort", "1"),
    ("activedefrag", "no"),
    ("activerehashing", "yes"),
    ("always-show-logo", "no"),
    ("aof-disable-auto-gc", "no"),
    ("aof-load-truncated", "yes"),
    ("aof-rewrite-incremental-fsync", "yes"),
    ("aof-timestamp-enabled", "no"),
    ("aof-use-rdb-preamble", "yes"),
    ("aof_rewrite_cpulist", ""),
    ("appenddirname", "appendonlydir"),
    ("appendfilename", "appendonly.aof"),
    ("appendfsync", "everysec"),
    ("appendonly", "no"),
    ("auto-aof-rewrite-min-size", "67108864"),
    ("auto-aof-rewrite-percentage", "100"),
    ("bgsave_cpulist", ""),
    ("bio_cpulist", ""),
    ("busy-reply-threshold", "5000"),
    (
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    ),
    ("client-query-buffer-limit", "1073741824"),
    ("cluster-allow-pubsubshard-when-down", "yes"),
    ("cluster-allow-reads-when-down", "no"),
    ("cluster-allow-replica-migration", "yes"),
    ("cluster-announce-bus-port", "0"),
    ("cluster-announce-hostname", ""),
    ("cluster-announce-ip", ""),
    ("cluster-announce-port", "0"),
    ("cluster-announce-tls-port", "0"),
    ("cluster-config-file", "nodes.conf"),
    ("cluster-enabled", "no"),
    ("cluster-link-sendbuf-limit", "0"),
    ("cluster-migration-barrier", "1"),
    ("cluster-node-timeout", "15000"),
    ("cluster-port", "0"),
    ("cluster-preferred-endpoint-type", "ip"),
    ("cluster-replica-no-failover", "no"),
    ("cluster-replica-validity-factor", "10"),
    ("cluster-require-full-coverage", "yes"),
    ("cluster-slave-no-failover", "no"),
    ("cluster-slave-validity-factor", "10"),
    ("crash-log-enabled", "yes"),
    ("crash-memcheck-enabled", "yes"),
    ("databases", "16"),
    ("dbfilename", "dump.rdb"),
    ("disable-thp", "yes"),
    ("dynamic-hz", "yes"),
    ("enable-module-command", "no"),
    ("enable-protected-configs", "no"),
    ("hash-max-listpack-value", "64"),
    ("hash-max-ziplist-value", "64"),
    ("hll-sparse-max-bytes", "3000"),
    ("hz", "10"),
    ("ignore-warnings", ""),
    ("io-threads", "1"),
    ("io-threads-do-reads", "no"),
    ("jemalloc-bg-thread", "yes"),
    ("latency-monitor-threshold", "0"),
    ("latency-tracking", "yes"),
    ("latency-tracking-info-percentiles", "50 99 99.9"),
    ("lazyfree-lazy-eviction", "no"),
    ("lazyfree-lazy-expire", "no"),
    ("lazyfree-lazy-server-del", "no"),
    ("lazyfree-lazy-user-del", "no"),
    ("lazyfree-lazy-user-flush", "no"),
    ("lfu-decay-time", "1"),
    ("lfu-log-factor", "10"),
    ("list-compress-depth", "0"),
    ("list-max-listpack-size", "-2"),
    ("list-max-ziplist-size", "-2"),
    ("logfile", ""),
    ("loglevel", "notice"),
    ("lua-time-limit", "5000"),
    ("masterauth", ""),
    ("masteruser", ""),
    ("maxclients", "10000"),
    ("maxmemory", "0"),
    ("maxmemory-clients", "0"),
    ("maxmemory-eviction-tenacity", "10"),
    ("maxmemory-policy", "noeviction"),
    ("maxmemory-samples", "5"),
    ("min-replicas-max-lag", "10"),
    ("min-replicas-to-write", "0"),
    ("min-slaves-max-lag", "10"),
    ("min-slaves-to-write", "0"),
    ("no-appendfsync-on-rewrite", "no"),
    ("notify-keyspace-events", ""),
    ("oom-score-adj", "no"),
    ("oom-score-adj-values", "0 200 800"),
    ("proc-title-template", "{title} {listen-addr} {server-mode}"),
    ("propagation-error-behavior", "ignore"),
    ("protected-mode", "yes"),
    ("proto-max-bulk-len", "536870912"),
    ("rdb-del-sync-files", "no"),
    ("rdb-save-incremental-fsync", "yes"),
    ("rdbchecksum", "yes"),
    ("rdbcompression", "yes"),
    ("repl-backlog-size", "1048576"),
    ("repl-backlog-ttl", "3600"),
    ("repl-disable-tcp-nodelay", "no"),
    ("repl-diskless-load", "disabled"),
    ("repl-diskless-sync", "yes"),
    ("repl-diskless-sync-delay", "5"),
    ("repl-diskless-sync-max-replicas", "0"),
    ("repl-ping-replica-period", "10"),
    ("repl-ping-slave-period", "10"),
    ("repl-timeout", "60"),
    ("replica-announce-ip", ""),
    ("replica-announce-port", "0"),
    ("replica-announced", "yes"),
    ("replica-ignore-disk-write-errors", "no"),
    ("replica-ignore-maxmemory", "yes"),
    ("replica-lazy-flush", "no"),
    ("replica-priority", "100"),
    ("replica-read-only", "yes"),
    ("replica-serve-stale-data", "yes"),
    ("replicaof", ""),
    ("requirepass", ""),
    ("sanitize-dump-payload", "no"),
    ("server_cpulist", ""),
    ("set-max-intset-entries", "512"),
    ("set-proc-title", "yes"),
    ("shutdown-on-sigint", "default"),
    ("shutdown-on-sigterm", "default"),
    ("shutdown-timeout", "10"),
    ("slave-announce-ip", ""),
    ("slave-announce-port", "0"),
    ("slave-ignore-maxmemory", "yes"),
    ("slave-lazy-flush", "no"),
    ("slave-priority", "100"),
    ("slave-read-only", "yes"),
    ("slave-serve-stale-data", "yes"),
    ("slaveof", ""),
    ("slowlog-log-slower-than", "10000"),
    ("slowlog-max-len", "128"),
    ("socket-mark-id", "0"),
    ("stop-writes-on-bgsave-error", "yes"),
    ("stream-node-max-bytes", "4096"),
    ("stream-node-max-entries", "100"),
    ("supervised", "no"),
    ("syslog-enabled", "no"),
    ("syslog-facility", "local0"),
    ("syslog-ident", "redis"),
    ("tcp-backlog", "511"),
    ("tcp-keepalive", "300"),
    ("timeout", "0"),
    ("tracking-table-max-keys", "1000000"),
    ("unixsocket", ""),
    ("unixsocketperm", "0"),
    ("zset-max-listpack-entries", "128"),
    ("zset-max-listpack-value", "64"),
    ("zset-max-ziplist-entries", "128"),
    ("zset-max-ziplist-value", "64"),
];

fn config_map(c: &mut redis::Connection) -> HashMap<String, String> {
    let v: Vec<String> = cmd(c, &["CONFIG", "GET", "*"]);
    v.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect()
}

fn tempdir(name: &str) -> PathBuf {
    ferrite_tests::tempdir(&format!("config-{name}"))
}

#[test]
fn every_redis_parameter_exists_with_redis_default() {
    let s = TestServer::start();
    let mut c = s.client();
    let all = config_map(&mut c);
    let mut wrong = Vec::new();
    for (name, want) in REDIS_DEFAULTS {
        match all.get(*name) {
            Some(v) if v == want => {}
            other => wrong.push(format!("{name}: want {want:?}, got {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Asked by name, aliases too.
    let v: Vec<String> = cmd(&mut c, &["CONFIG", "GET", "slave-announce-port"]);
    assert_eq!(v, ["slave-announce-port", "0"]);
    let _: () = cmd(&mut c, &["CONFIG", "SET", "repl-backlog-ttl", "100"]);
    let v: Vec<String> = cmd(&mut c, &["CONFIG", "GET", "repl-backlog-ttl"]);
    assert_eq!(v, ["repl-backlog-ttl", "100"]);
}

#[test]
fn a_file_with_every_parameter_loads() {
    let dir = tempdir("every");
    let file = dir.join("all.conf");
    let mut text = String::from("# every Redis 7.0 parameter at its default\n");
    // `replicaof` takes a host and a port, never "" (as in Redis).
    for (name, v) in REDIS_DEFAULTS
        .iter()
        .filter(|(n, _)| !matches!(*n, "replicaof" | "slaveof"))
    {
        let quoted = if v.is_empty() || v.contains(' ') {
            format!("\"{v}\"")
        } else {
            v.to_string()
        };
        text.push_str(&format!("{name} {quoted}\n"));
    }
    // Directives Redis 7.0 reads and ignores.
    text.push_str("list-max-ziplist-entries 512\nlist-max-ziplist-value 64\n");
    text.push_str("lua-replicate-commands yes\n");
    std::fs::write(&file, text).unwrap();
    let s = TestServer::with_file(&file, &[]);
    let mut c = s.client();
    let all = config_map(&mut c);
    for (name, want) in REDIS_DEFAULTS {
        assert_eq!(all.get(*name).map(String::as_str), Some(*want), "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn values_are_checked_as_redis_checks_them() {
    let s = TestServer::start();
    let mut c = s.client();
    let fail = |name: &str, why: &str| {
        format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
    };
    let cases: &[(&str, &str, &str)] = &[
        ("activedefrag", "yes", "Active defragmentation cannot be enabled: it requires a Redis server compiled with a modified Jemalloc like the one shipped by default with the Redis source distribution"),
        ("shutdown-on-sigterm", "save nosave", "shutdown options SAVE and NOSAVE can't be used simultaneously"),
        ("shutdown-on-sigint", "later", "argument(s) must be one of the following: default, save, nosave, now, force"),
        ("oom-score-adj-values", "0 200", "wrong number of arguments"),
        ("oom-score-adj-values", "0 200 3000", "Invalid oom-score-adj-values, elements must be between -2000 and 2000."),
        ("latency-tracking-info-percentiles", "50 101", "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"),
        ("latency-tracking-info-percentiles", "fifty", "Invalid latency-tracking-info-percentiles parameters"),
        ("proc-title-template", "{title} {nope}", "template format is invalid or contains unknown variables"),
        ("repl-diskless-load", "sometimes", "argument(s) must be one of the following: disabled, on-empty-db, swapdb"),
        ("active-defrag-cycle-max", "100", "argument must be between 1 and 99 inclusive"),
        ("cluster-enabled", "yes", "can't set immutable config"),
        ("disable-thp", "no", "can't set immutable config"),
    ];
    for (name, value, why) in cases {
        assert_eq!(
            err(&mut c, &["CONFIG", "SET", name, value]),
            fail(name, why),
            "{name} {value}"
        );
    }
    // Normalised as Redis shows them.
    for (name, set, shown) in [
        ("shutdown-on-sigterm", "NOW save", "save now"),
        ("shutdown-on-sigterm", "default", "default"),
        ("oom-score-adj", "relative", "yes"),
        (
            "latency-tracking-info-percentiles",
            "50.0 99 99.90",
            "50 99 99.9",
        ),
        ("latency-tracking-info-percentiles", "", ""),
        ("active-defrag-ignore-bytes", "1mb", "1048576"),
    ] {
        let _: () = cmd(&mut c, &["CONFIG", "SET", name, set]);
        let v: Vec<String> = cmd(&mut c, &["CONFIG", "GET", name]);
        assert_eq!(v[1], shown, "{name} {set}");
    }
}

/// Starts the binary with `args` and returns its exit status and output,
/// for configurations that must stop it at start-up.
fn refused(args: &[&str]) -> (bool, String) {
    let dir = tempdir("refused");
    let out = Command::new(server_binary())
        .args(args)
        .args(["--port", "0", "--dir", dir.to_str().unwrap()])
        .output()
        .expect("run ferrite-server");
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn what_ferrite_cannot_honour_stops_it_at_start() {
    let dir = tempdir("cannot");
    for (line, why) in [
        ("cluster-enabled yes", "cluster mode is not supported"),
        (
            "unixsocket /tmp/ferrite.sock",
            "unix sockets are not supported",
        ),
        (
            "user alice on >pw ~* ~more",
            "Adding a pattern after the * pattern",
        ),
        (
            "rename-command NOSUCH other",
            "No such command in rename-command",
        ),
        (
            "rename-command GET set",
            "Target command name already exists",
        ),
        (
            "loadmodule /usr/lib/redis/modules/x.so",
            "modules are not supported",
        ),
        (
            "activedefrag yes",
            "Active defragmentation cannot be enabled",
        ),
    ] {
        let file = dir.join("bad.conf");
        std::fs::write(&file, format!("port 0\n{line}\n")).unwrap();
        let (ok, out) = refused(&[file.to_str().unwrap()]);
        assert!(!ok, "{line}: started");
        assert!(out.contains("FATAL CONFIG FILE ERROR"), "{line}: {out}");
        assert!(out.contains("line 2"), "{line}: {out}");
        assert!(out.contains(why), "{line}: {out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `redis.conf` a distribution installs with `redis-server` (Debian's
/// in CI) starts Ferrite unchanged, but for where it listens, logs and
/// keeps files, given on the command line after it as redis-server allows.
#[test]
fn a_stock_redis_conf_loads() {
    let stock = ["/etc/redis/redis.conf", "/etc/redis.conf"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(stock) = stock else {
        eprintln!("skipped: no redis.conf installed (apt-get install redis-server)");
        return;
    };
    let s = TestServer::with_file(
        std::path::Path::new(stock),
        &["--daemonize", "no", "--pidfile", "", "--logfile", ""],
    );
    let mut c = s.client();
    let pong: String = cmd(&mut c, &["PING"]);
    assert_eq!(pong, "PONG");
    // The file's own settings took effect.
    let v: Vec<String> = cmd(&mut c, &["CONFIG", "GET", "databases"]);
    assert_eq!(v[1], "16");
}

/// `key-load-delay`, one of Redis's hidden debugging knobs: only asked for
/// by name does `CONFIG GET` show it, and a load waits that long per key.
#[test]
fn key_load_delay_is_hidden_and_slows_loading() {
    let s = TestServer::start();
    let mut c = s.client();
    assert!(!config_map(&mut c).contains_key("key-load-delay"));
    let v: Vec<String> = cmd(&mut c, &["config", "get", "key-load-delay"]);
    assert_eq!(v, ["key-load-delay", "0"]);
    let _: String = cmd(&mut c, &["debug", "populate", "50"]);
    let _: () = cmd(&mut c, &["config", "set", "key-load-delay", "10000"]);
    let started = std::time::Instant::now();
    let _: () = cmd(&mut c, &["debug", "reload"]);
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    assert_eq!(cmd::<i64>(&mut c, &["dbsize"]), 50);
    let _: () = cmd(&mut c, &["config", "set", "key-load-delay", "-100"]);
    let _: () = cmd(&mut c, &["debug", "reload"]);
    assert_eq!(cmd::<i64>(&mut c, &["dbsize"]), 50);
}
