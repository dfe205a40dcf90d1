//! The append-only file against the real binary: what `appendonly yes`
//! writes survives `kill -9`, rewrites replace the files as Redis 7.0's
//! multi-part AOF does, the directory is interchangeable with a real
//! Redis's, and torn or foreign files are handled as Redis handles them.
//! Each test works in a directory of its own (`--dir`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferrite_tests::{cmd, info_field, TestServer};

fn tempdir(name: &str) -> PathBuf {
    ferrite_tests::tempdir(&format!("aof-{name}"))
}

/// Kills the server without letting it flush anything (`kill -9`).
fn crash(s: &mut TestServer) {
    s.signal("KILL");
    assert!(s.wait_exit(Duration::from_secs(10)).is_some());
}

fn manifest(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Writes of every kind the stream carries: types, TTLs, a transaction,
/// another database, a script's effects, a function library.
fn fill(c: &mut redis::Connection) {
    let _: () = cmd(c, &["set", "str", "value"]);
    let _: () = cmd(c, &["set", "ttl", "v", "ex", "1000"]);
    let _: i64 = cmd(c, &["rpush", "list", "a", "b", "c"]);
    let _: i64 = cmd(c, &["hset", "hash", "f", "v", "g", "w"]);
    let _: i64 = cmd(c, &["sadd", "set", "1", "2", "x"]);
    let _: i64 = cmd(c, &["zadd", "zset", "1.5", "m", "2", "n"]);
    let _: String = cmd(c, &["xadd", "stream", "1-1", "f", "v"]);
    let _: () = cmd(c, &["xgroup", "create", "stream", "g", "0"]);
    let _: redis::Value = cmd(
        c,
        &[
            "xreadgroup",
            "group",
            "g",
            "alice",
            "streams",
            "stream",
            ">",
        ],
    );
    let _: i64 = cmd(c, &["incrby", "counter", "5"]);
    let _: i64 = cmd(c, &["expire", "counter", "2000"]);
    let _: () = cmd(c, &["multi"]);
    let _: String = cmd(c, &["set", "in-multi", "1"]);
    let _: String = cmd(c, &["incr", "counter"]);
    let _: Vec<redis::Value> = cmd(c, &["exec"]);
    let _: redis::Value = cmd(
        c,
        &["eval", "redis.call('set', 'by-script', ARGV[1])", "0", "s"],
    );
    let _: String = cmd(
        c,
        &[
            "function",
            "load",
            "#!lua name=lib\nredis.register_function('one', function() return 1 end)",
        ],
    );
    let _: () = cmd(c, &["select", "3"]);
    let _: () = cmd(c, &["set", "in3", "x"]);
    let _: () = cmd(c, &["select", "0"]);
    let _: i64 = cmd(c, &["del", "set"]);
}

fn check(c: &mut redis::Connection) {
    assert_eq!(cmd::<String>(c, &["get", "str"]), "value");
    let ttl: i64 = cmd(c, &["ttl", "ttl"]);
    assert!((990..=1000).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        cmd::<Vec<String>>(c, &["lrange", "list", "0", "-1"]),
        ["a", "b", "c"]
    );
    assert_eq!(cmd::<String>(c, &["hget", "hash", "g"]), "w");
    assert_eq!(cmd::<i64>(c, &["exists", "set"]), 0);
    assert_eq!(cmd::<f64>(c, &["zscore", "zset", "m"]), 1.5);
    assert_eq!(cmd::<i64>(c, &["get", "counter"]), 6);
    let ttl: i64 = cmd(c, &["ttl", "counter"]);
    assert!((1990..=2000).contains(&ttl), "ttl {ttl}");
    assert_eq!(cmd::<String>(c, &["get", "in-multi"]), "1");
    assert_eq!(cmd::<String>(c, &["get", "by-script"]), "s");
    assert_eq!(cmd::<i64>(c, &["fcall", "one", "0"]), 1);
    let pending: Vec<redis::Value> = cmd(c, &["xpending", "stream", "g"]);
    assert_eq!(pending[0], redis::Value::Int(1));
    let _: () = cmd(c, &["select", "3"]);
    assert_eq!(cmd::<String>(c, &["get", "in3"]), "x");
    let _: () = cmd(c, &["select", "0"]);
}

/// Every key of databases 0 and 3 with its value's digest and expiry
/// time. The stream is left out: a consumer group's `entries-read` does
/// not survive the stream's `XCLAIM` form, in Redis either (Redis's own
/// digest leaves groups out; Ferrite's covers them). `check` covers it.
fn digest(c: &mut redis::Connection) -> Vec<String> {
    let mut out = Vec::new();
    for db in ["0", "3"] {
        let _: () = cmd(c, &["select", db]);
        let mut keys: Vec<String> = cmd(c, &["keys", "*"]);
        keys.sort();
        for k in keys.iter().filter(|k| *k != "stream") {
            let d: Vec<String> = cmd(c, &["debug", "digest-value", k]);
            let at: i64 = cmd(c, &["pexpiretime", k]);
            out.push(format!("{db} {k} {} {at}", d[0]));
        }
    }
    let _: () = cmd(c, &["select", "0"]);
    out
}

#[test]
fn acknowledged_writes_survive_kill_9_with_each_fsync_policy() {
    for policy in ["always", "everysec", "no"] {
        let dir = tempdir(&format!("kill-{policy}"));
        let mut s = TestServer::in_dir(&dir, &["--appendonly", "yes", "--appendfsync", policy]);
        let mut c = s.client();
        fill(&mut c);
        let before = digest(&mut c);
        // An empty start writes a base, then appends to incr file 1.
        assert_eq!(
            manifest(&dir),
            "file appendonly.aof.1.base.rdb seq 1 type b\n\
             file appendonly.aof.1.incr.aof seq 1 type i\n"
        );
        crash(&mut s);
        let s = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
        let mut c = s.client();
        check(&mut c);
        assert_eq!(digest(&mut c), before, "appendfsync {policy}");
    }
}

#[test]
fn the_rdb_file_is_not_loaded_while_appendonly_is_on() {
    let dir = tempdir("no-rdb");
    let s = TestServer::in_dir(&dir, &[]);
    let mut c = s.client();
    let _: () = cmd(&mut c, &["set", "only-in-rdb", "1"]);
    let _: () = cmd(&mut c, &["save"]);
    drop(s);
    // As in Redis: with appendonly on and no AOF yet, the dataset starts
    // empty (the RDB file is left alone).
    let s = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
    let mut c = s.client();
    assert_eq!(cmd::<i64>(&mut c, &["dbsize"]), 0);
    assert!(dir.join("dump.rdb").exists());
}

#[test]
fn bgrewriteaof_replaces_base_and_incr_files_in_both_formats() {
    let dir = tempdir("rewrite");
    let mut s = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
    let mut c = s.client();
    fill(&mut c);
    let want = digest(&mut c);
    let ok: String = cmd(&mut c, &["bgrewriteaof"]);
    assert_eq!(ok, "Background append only file rewriting started");
    wait_rewrite(&mut c);
    assert_eq!(
        manifest(&dir),
        "file appendonly.aof.2.base.rdb seq 2 type b\n\
         file appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    // The old files are deleted (aof-disable-auto-gc no).
    assert_eq!(
        files(&dir),
        [
            "appendonly.aof.2.base.rdb",
            "appendonly.aof.2.incr.aof",
            "appendonly.aof.manifest"
        ]
    );
    // A command-format base (aof-use-rdb-preamble no), then more writes.
    let _: () = cmd(&mut c, &["config", "set", "aof-use-rdb-preamble", "no"]);
    let _: String = cmd(&mut c, &["bgrewriteaof"]);
    wait_rewrite(&mut c);
    let base = std::fs::read(dir.join("appendonlydir/appendonly.aof.3.base.aof")).unwrap();
    assert!(base.starts_with(b"*3\r\n$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n"));
    let _: () = cmd(&mut c, &["set", "after", "1"]);
    let want_after = digest(&mut c);
    assert_eq!(info_field(&mut c, "persistence", "aof_rewrites"), "2");
    assert_eq!(
        info_field(&mut c, "persistence", "aof_last_bgrewrite_status"),
        "ok"
    );
    crash(&mut s);
    let s = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
    let mut c = s.client();
    check(&mut c);
    assert_ne!(want, want_after);
    assert_eq!(digest(&mut c), want_after);
    // DEBUG LOADAOF replaces the dataset with what the files load to.
    let _: () = cmd(&mut c, &["set", "after", "2"]);
    let loaded: String = cmd(&mut c, &["debug", "loadaof"]);
    assert_eq!(loaded, "OK");
    assert_eq!(cmd::<String>(&mut c, &["get", "after"]), "2");
    check(&mut c);
}

fn wait_rewrite(c: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(c, "persistence", "aof_rewrite_in_progress") != "0"
        || info_field(c, "persistence", "aof_rewrite_scheduled") != "0"
    {
        assert!(Instant::now() < deadline, "the rewrite never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn config_set_appendonly_writes_the_existing_data_then_follows_writes() {
    let dir = tempdir("enable");
    let mut s = TestServer::in_dir(&dir, &[]);
    let mut c = s.client();
    fill(&mut c);
    assert_eq!(info_field(&mut c, "persistence", "aof_enabled"), "0");
    let _: () = cmd(&mut c, &["config", "set", "appendonly", "yes"]);
    assert_eq!(info_field(&mut c, "persistence", "aof_enabled"), "1");
    let _: () = cmd(&mut c, &["set", "later", "1"]);
    wait_rewrite(&mut c);
    let want = digest(&mut c);
    crash(&mut s);
    let mut s = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
    let mut c = s.client();
    check(&mut c);
    assert_eq!(digest(&mut c), want);
    // Switched off, writes no longer reach the file.
    let _: () = cmd(&mut c, &["config", "set", "appendonly", "no"]);
    let _: () = cmd(&mut c, &["set", "unlogged", "1"]);
    crash(&mut s);
    let s = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
    let mut c = s.client();
    assert_eq!(cmd::<Option<String>>(&mut c, &["get", "unlogged"]), None);
    assert_eq!(digest(&mut c), want);
}

#[test]
fn info_persistence_has_redis_s_aof_fields() {
    let s = TestServer::with_args(&["--appendonly", "yes"]);
    let mut c = s.client();
    let _: () = cmd(&mut c, &["set", "k", "v"]);
    let info: String = cmd(&mut c, &["info", "persistence"]);
    let names: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .filter(|k| k.starts_with("aof_"))
        .collect();
    assert_eq!(
        names,
        [
            "aof_enabled",
            "aof_rewrite_in_progress",
            "aof_rewrite_scheduled",
            "aof_last_rewrite_time_sec",
            "aof_current_rewrite_time_sec",
            "aof_last_bgrewrite_status",
            "aof_rewrites",
            "aof_rewrites_consecutive_failures",
            "aof_last_write_status",
            "aof_last_cow_size",
            "aof_current_size",
            "aof_base_size",
            "aof_pending_rewrite",
            "aof_buffer_length",
            "aof_pending_bio_fsync",
            "aof_delayed_fsync",
        ]
    );
    let size: u64 = info_field(&mut c, "persistence", "aof_current_size")
        .parse()
        .unwrap();
    let base: u64 = info_field(&mut c, "persistence", "aof_base_size")
        .parse()
        .unwrap();
    // SELECT 0 and the SET are in the incr file.
    assert!(size > base, "{size} {base}");
}

/// Appends bytes to the last incr file.
fn append_to_incr(dir: &Path, bytes: &[u8]) {
    use std::io::Write;
    let path = dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn a_torn_tail_is_cut_off_with_aof_load_truncated_and_fatal_without() {
    let dir = tempdir("torn");
    let s = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
    let mut c = s.client();
    let _: () = cmd(&mut c, &["set", "whole", "1"]);
    drop(s);
    let incr = dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    let good = std::fs::metadata(&incr).unwrap().len();
    // A transaction without its EXEC, then half a command.
    append_to_incr(&dir, b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$2\r\nab");
    let mut refused =
        start_in_failing(&dir, &["--appendonly", "yes", "--aof-load-truncated", "no"]);
    assert!(refused.contains("Unexpected end of file"), "{refused}");
    refused.clear();
    let s = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
    let mut c = s.client();
    assert_eq!(cmd::<String>(&mut c, &["get", "whole"]), "1");
    assert_eq!(cmd::<Option<String>>(&mut c, &["get", "lost"]), None);
    // The file was cut back to its last whole command outside MULTI.
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), good);
    drop(s);
    // Garbage is a format error, whatever aof-load-truncated says.
    append_to_incr(&dir, b"garbage\r\n");
    let refused = start_in_failing(&dir, &["--appendonly", "yes"]);
    assert!(refused.contains("Bad file format"), "{refused}");
}

/// Starts a server expected to refuse to start; returns its log.
fn start_in_failing(dir: &Path, extra: &[&str]) -> String {
    let out = std::process::Command::new(ferrite_tests::server_binary())
        .args([
            "--port",
            &ferrite_tests::free_port().to_string(),
            "--save",
            "",
        ])
        .args(["--dir", &dir.to_string_lossy()])
        .args(extra)
        .output()
        .expect("run ferrite-server");
    assert!(!out.status.success(), "the server started");
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

#[test]
fn an_old_style_single_file_aof_is_moved_into_the_directory() {
    let dir = tempdir("upgrade");
    std::fs::write(
        dir.join("appendonly.aof"),
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$3\r\nold\r\n$5\r\nstyle\r\n",
    )
    .unwrap();
    let s = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
    let mut c = s.client();
    assert_eq!(cmd::<String>(&mut c, &["get", "old"]), "style");
    assert!(!dir.join("appendonly.aof").exists());
    assert_eq!(
        manifest(&dir),
        "file appendonly.aof seq 1 type b\n\
         file appendonly.aof.1.incr.aof seq 1 type i\n"
    );
}

#[test]
fn a_real_redis_and_ferrite_load_each_other_s_aof() {
    if !ferrite_tests::has_binary("redis-server") {
        eprintln!("redis-server not installed; skipped");
        return;
    }
    for preamble in ["yes", "no"] {
        // Ferrite writes, Redis loads.
        let dir = tempdir(&format!("interop-{preamble}"));
        let d = dir.to_string_lossy().into_owned();
        let args = ["--appendonly", "yes", "--aof-use-rdb-preamble", preamble];
        let mut s = TestServer::in_dir(&dir, &args);
        let mut c = s.client();
        fill(&mut c);
        let _: String = cmd(&mut c, &["bgrewriteaof"]);
        wait_rewrite(&mut c);
        let _: () = cmd(&mut c, &["set", "after-rewrite", "1"]);
        let keys = cmd::<i64>(&mut c, &["dbsize"]);
        crash(&mut s);
        // (Digests are not compared: Redis's are SHA-1, Ferrite's xxh3.)
        let port = ferrite_tests::free_port();
        let mut redis_args = vec!["--dir", d.as_str()];
        redis_args.extend_from_slice(&args);
        let (redis, mut r) = ferrite_tests::start_redis(port, &redis_args);
        check(&mut r);
        assert_eq!(cmd::<String>(&mut r, &["get", "after-rewrite"]), "1");
        assert_eq!(cmd::<i64>(&mut r, &["dbsize"]), keys);
        // Redis writes on, then Ferrite loads Redis's files.
        let _: () = cmd(&mut r, &["set", "by-redis", "1"]);
        let _: i64 = cmd(&mut r, &["pexpire", "by-redis", "5000000"]);
        let _: i64 = cmd(&mut r, &["hset", "hash", "h", "x"]);
        let at: i64 = cmd(&mut r, &["pexpiretime", "by-redis"]);
        let _: redis::RedisResult<()> = redis::cmd("shutdown").query(&mut r);
        drop(redis);
        let s = TestServer::in_dir(&dir, &args);
        let mut c = s.client();
        check(&mut c);
        assert_eq!(cmd::<i64>(&mut c, &["pexpiretime", "by-redis"]), at);
        assert_eq!(cmd::<String>(&mut c, &["hget", "hash", "h"]), "x");
        assert_eq!(cmd::<i64>(&mut c, &["dbsize"]), keys + 1);
    }
}

#[test]
fn timestamp_annotations_are_written_and_skipped_when_loading() {
    let dir = tempdir("timestamps");
    let mut s = TestServer::in_dir(
        &dir,
        &["--appendonly", "yes", "--aof-timestamp-enabled", "yes"],
    );
    let mut c = s.client();
    let _: () = cmd(&mut c, &["set", "k", "v"]);
    let incr =
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap();
    assert!(incr.starts_with("#TS:"), "{incr:?}");
    let line = incr.lines().next().unwrap();
    let ts: i64 = line["#TS:".len()..].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - 5..=now).contains(&ts), "{ts} {now}");
    crash(&mut s);
    let s = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
    let mut c = s.client();
    assert_eq!(cmd::<String>(&mut c, &["get", "k"]), "v");
}

#[test]
fn a_replica_s_aof_holds_the_synced_dataset_and_the_stream() {
    let primary = TestServer::start();
    let mut p = primary.client();
    let _: () = cmd(&mut p, &["set", "before-sync", "1"]);
    let dir = tempdir("replica");
    let mut r = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
    let mut rc = r.client();
    // Written on the replica before it follows: the sync replaces it.
    let _: () = cmd(&mut rc, &["set", "replaced", "1"]);
    let port = primary.port().to_string();
    let _: () = cmd(&mut rc, &["replicaof", "127.0.0.1", &port]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut rc, "replication", "master_link_status") != "up" {
        assert!(Instant::now() < deadline, "the link never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_rewrite(&mut rc);
    let _: () = cmd(&mut p, &["set", "after-sync", "2"]);
    while cmd::<Option<String>>(&mut rc, &["get", "after-sync"]).is_none() {
        assert!(Instant::now() < deadline, "the write never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    crash(&mut r);
    let r = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
    let mut rc = r.client();
    assert_eq!(cmd::<String>(&mut rc, &["get", "before-sync"]), "1");
    assert_eq!(cmd::<String>(&mut rc, &["get", "after-sync"]), "2");
    assert_eq!(cmd::<Option<String>>(&mut rc, &["get", "replaced"]), None);
}

/// Clients write concurrently while the server is killed: every increment
/// a client saw acknowledged is in the dataset after the restart.
#[test]
fn no_acknowledged_write_is_lost_when_killed_under_load() {
    for policy in ["always", "no"] {
        let dir = tempdir(&format!("load-{policy}"));
        let mut s = TestServer::in_dir(&dir, &["--appendonly", "yes", "--appendfsync", policy]);
        let url = s.url();
        let acked: Vec<_> = (0..6)
            .map(|i| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                    let key = format!("counter:{i}");
                    let mut last = 0i64;
                    // Ends when the server dies.
                    while let Ok(v) = redis::cmd("incr").arg(&key).query::<i64>(&mut c) {
                        last = v;
                    }
                    (key, last)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        crash(&mut s);
        let acked: Vec<(String, i64)> = acked.into_iter().map(|t| t.join().unwrap()).collect();
        let s = TestServer::in_dir(&dir, &["--appendonly", "yes"]);
        let mut c = s.client();
        for (key, last) in acked {
            assert!(last > 0, "{policy}: {key} made no progress");
            let got: i64 = cmd(&mut c, &["get", &key]);
            // One more may have been written whose reply was lost.
            assert!(
                got == last || got == last + 1,
                "{policy}: {key} acknowledged {last}, loaded {got}"
            );
        }
    }
}

#[test]
fn a_bad_manifest_stops_the_start_even_with_appendonly_no() {
    let dir = tempdir("bad-manifest");
    std::fs::create_dir_all(dir.join("appendonlydir")).unwrap();
    std::fs::write(
        dir.join("appendonlydir/appendonly.aof.manifest"),
        "file appendonly.aof.1.base.rdb seq 1\n",
    )
    .unwrap();
    for on in ["yes", "no"] {
        let log = start_in_failing(&dir, &["--appendonly", on]);
        assert!(log.contains("Invalid AOF manifest file format"), "{log}");
    }
}
