//! RDB persistence: `SAVE`/`BGSAVE`, loading `dbfilename` at start-up,
//! `SHUTDOWN` and SIGTERM saving, the `save` points, `DEBUG RELOAD`, and
//! `INFO persistence`. Each test works in a directory of its own (`--dir`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrite_tests::{cmd, err, info_field, info_int, TestServer};

fn tempdir(name: &str) -> PathBuf {
    ferrite_tests::tempdir(&format!("persist-{name}"))
}

fn fill(c: &mut redis::Connection) {
    let _: () = cmd(c, &["set", "str", "value"]);
    let _: () = cmd(c, &["set", "ttl", "v", "ex", "1000"]);
    let _: i64 = cmd(c, &["rpush", "list", "a", "b", "c"]);
    let _: i64 = cmd(c, &["hset", "hash", "f", "v", "g", "w"]);
    let _: i64 = cmd(c, &["sadd", "set", "1", "2", "x"]);
    let _: i64 = cmd(c, &["zadd", "zset", "1.5", "m", "2", "n"]);
    let _: () = cmd(c, &["select", "3"]);
    let _: () = cmd(c, &["set", "in3", "x"]);
    let _: () = cmd(c, &["select", "0"]);
}

/// Waits up to `timeout` for the running `BGSAVE` to end, and asserts it
/// succeeded.
fn wait_bgsave_ok(c: &mut redis::Connection, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while info_int(c, "persistence", "rdb_bgsave_in_progress") == 1 {
        assert!(Instant::now() < deadline, "bgsave never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(info_field(c, "persistence", "rdb_last_bgsave_status"), "ok");
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
    assert_eq!(cmd::<i64>(c, &["scard", "set"]), 3);
    assert_eq!(cmd::<String>(c, &["zscore", "zset", "m"]), "1.5");
    let _: () = cmd(c, &["select", "3"]);
    assert_eq!(cmd::<String>(c, &["get", "in3"]), "x");
    let _: () = cmd(c, &["select", "0"]);
    assert_eq!(cmd::<i64>(c, &["dbsize"]), 6);
}

#[test]
fn save_then_restart_loads_every_type_and_ttl() {
    let dir = tempdir("save");
    {
        let s = TestServer::in_dir(&dir, &[]);
        let mut c = s.client();
        fill(&mut c);
        // One change per key written (Redis counts some commands per
        // element, so its figure here would be higher).
        assert!(info_int(&mut c, "persistence", "rdb_changes_since_last_save") >= 7);
        let before: i64 = cmd(&mut c, &["lastsave"]);
        assert_eq!(cmd::<String>(&mut c, &["save"]), "OK");
        assert_eq!(
            info_int(&mut c, "persistence", "rdb_changes_since_last_save"),
            0
        );
        assert_eq!(info_int(&mut c, "persistence", "rdb_saves"), 1);
        assert!(cmd::<i64>(&mut c, &["lastsave"]) >= before);
        assert!(dir.join("dump.rdb").exists());
        // `--save ""`: SHUTDOWN does not save again; the file stays as saved.
        let _: () = cmd(&mut c, &["set", "unsaved", "1"]);
    }
    let s = TestServer::in_dir(&dir, &[]);
    let mut c = s.client();
    check(&mut c);
    assert_eq!(cmd::<Option<String>>(&mut c, &["get", "unsaved"]), None);
    assert_eq!(
        info_int(&mut c, "persistence", "rdb_last_load_keys_loaded"),
        7
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bgsave_reports_its_progress_and_writes_the_file() {
    let dir = tempdir("bgsave");
    let s = TestServer::in_dir(&dir, &[]);
    let mut c = s.client();
    fill(&mut c);
    assert_eq!(
        cmd::<String>(&mut c, &["bgsave"]),
        "Background saving started"
    );
    wait_bgsave_ok(&mut c, Duration::from_secs(10));
    assert_eq!(info_int(&mut c, "persistence", "rdb_saves"), 1);
    assert_eq!(
        info_int(&mut c, "persistence", "rdb_changes_since_last_save"),
        0
    );
    assert_eq!(err(&mut c, &["bgsave", "now"]), "ERR syntax error");
    drop(c);
    drop(s);
    let s = TestServer::in_dir(&dir, &[]);
    check(&mut s.client());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_saves_by_default_with_save_points_and_not_with_nosave() {
    let dir = tempdir("shutdown");
    let mut s = TestServer::in_dir(&dir, &["--save", "3600 1"]);
    let mut c = s.client();
    fill(&mut c);
    let _ = redis::cmd("shutdown").query::<()>(&mut c);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.is_running() {
        assert!(Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut s = TestServer::in_dir(&dir, &["--save", "3600 1"]);
    let mut c = s.client();
    check(&mut c);
    let _: () = cmd(&mut c, &["set", "later", "1"]);
    let _ = redis::cmd("shutdown").arg("nosave").query::<()>(&mut c);
    while s.is_running() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = TestServer::in_dir(&dir, &[]);
    let mut c = s.client();
    assert_eq!(cmd::<Option<String>>(&mut c, &["get", "later"]), None);
    check(&mut c);
    // SHUTDOWN SAVE saves even without save points.
    let _: () = cmd(&mut c, &["set", "forced", "1"]);
    let mut s = s;
    let _ = redis::cmd("shutdown").arg("save").query::<()>(&mut c);
    while s.is_running() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = TestServer::in_dir(&dir, &[]);
    assert_eq!(cmd::<String>(&mut s.client(), &["get", "forced"]), "1");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn save_points_start_a_background_save() {
    let dir = tempdir("points");
    let s = TestServer::in_dir(&dir, &["--save", "1 2"]);
    let mut c = s.client();
    let _: () = cmd(&mut c, &["set", "a", "1"]);
    // One change is below the point's two: nothing is saved.
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(info_int(&mut c, "persistence", "rdb_saves"), 0);
    let _: () = cmd(&mut c, &["set", "b", "2"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_int(&mut c, "persistence", "rdb_saves") == 0 {
        assert!(Instant::now() < deadline, "the save point never fired");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dir.join("dump.rdb").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn debug_reload_keeps_the_dataset_and_save_is_refused_in_multi() {
    let dir = tempdir("reload");
    let s = TestServer::in_dir(&dir, &[]);
    let mut c = s.client();
    fill(&mut c);
    assert_eq!(cmd::<String>(&mut c, &["debug", "reload"]), "OK");
    check(&mut c);
    assert_eq!(cmd::<String>(&mut c, &["debug", "reload", "nosave"]), "OK");
    check(&mut c);
    let _: () = cmd(&mut c, &["multi"]);
    let e = err(&mut c, &["save"]);
    assert_eq!(e, "ERR Command not allowed inside a transaction");
    assert!(err(&mut c, &["exec"]).starts_with("EXECABORT"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_file_stops_the_server_from_starting() {
    let dir = tempdir("corrupt");
    std::fs::write(dir.join("dump.rdb"), b"REDIS0010garbage").expect("write");
    let dir_s = dir.to_string_lossy().into_owned();
    let status = std::process::Command::new(ferrite_tests::server_binary())
        .args(["--port", "0", "--save", "", "--dir", &dir_s])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run");
    assert!(!status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Function libraries are part of the snapshot (`FUNCTION2` records):
/// they survive a restart and `DEBUG RELOAD`, which drops the libraries
/// loaded since the save, as Redis's `emptyData` does.
#[test]
fn function_libraries_are_saved_and_loaded() {
    let dir = tempdir("functions");
    let lib = "#!lua name=kept\nredis.register_function('seven', function() return 7 end)";
    {
        let s = TestServer::in_dir(&dir, &[]);
        let mut c = s.client();
        assert_eq!(cmd::<String>(&mut c, &["FUNCTION", "LOAD", lib]), "kept");
        assert_eq!(cmd::<String>(&mut c, &["save"]), "OK");
        let late = "#!lua name=late\nredis.register_function('late', function() return 1 end)";
        let _: String = cmd(&mut c, &["FUNCTION", "LOAD", late]);
        let _: String = cmd(&mut c, &["DEBUG", "RELOAD", "NOSAVE"]);
        assert_eq!(
            err(&mut c, &["FCALL", "late", "0"]),
            "ERR Function not found"
        );
        assert_eq!(cmd::<i64>(&mut c, &["FCALL", "seven", "0"]), 7);
    }
    let s = TestServer::in_dir(&dir, &[]);
    let mut c = s.client();
    assert_eq!(cmd::<i64>(&mut c, &["FCALL", "seven", "0"]), 7);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `BF.INFO key` as field → value pairs, for comparing two filters.
fn bf_info(c: &mut redis::Connection, key: &str) -> Vec<redis::Value> {
    cmd(c, &["bf.info", key])
}

/// `BF.INFO key FILTERS` (a one-element array, as RedisBloom answers).
fn bf_filters(c: &mut redis::Connection, key: &str) -> i64 {
    cmd::<Vec<i64>>(c, &["bf.info", key, "filters"])[0]
}

/// Bloom filters are in the snapshot (Ferrite's module record): a scaled
/// filter with several sub-filters and a non-scaling one come back from a
/// restart and from `DEBUG RELOAD` with their geometry, counts and every
/// added item, and go on growing.
#[test]
fn bloom_filters_survive_a_restart() {
    let dir = tempdir("bloom");
    let items: Vec<String> = (0..500).map(|i| format!("item:{i}")).collect();
    let before;
    {
        let s = TestServer::in_dir(&dir, &[]);
        let mut c = s.client();
        let _: () = cmd(
            &mut c,
            &["bf.reserve", "grown", "0.01", "50", "expansion", "3"],
        );
        let _: () = cmd(
            &mut c,
            &["bf.reserve", "fixed", "0.001", "1000", "nonscaling"],
        );
        for it in &items {
            let _: i64 = cmd(&mut c, &["bf.add", "grown", it]);
            let _: i64 = cmd(&mut c, &["bf.add", "fixed", it]);
        }
        let _: () = cmd(&mut c, &["set", "ttl-bloom-neighbour", "x", "ex", "1000"]);
        let _: () = cmd(&mut c, &["pexpire", "grown", "1000000"]);
        before = (bf_info(&mut c, "grown"), bf_info(&mut c, "fixed"));
        assert!(bf_filters(&mut c, "grown") >= 3);
        assert_eq!(cmd::<String>(&mut c, &["save"]), "OK");
    }
    let s = TestServer::in_dir(&dir, &[]);
    let mut c = s.client();
    let check = |c: &mut redis::Connection| {
        assert_eq!((bf_info(c, "grown"), bf_info(c, "fixed")), before);
        assert_eq!(cmd::<String>(c, &["type", "grown"]), "MBbloom--");
        for key in ["grown", "fixed"] {
            let mut q = vec!["bf.mexists", key];
            q.extend(items.iter().map(String::as_str));
            let found: Vec<i64> = cmd(c, &q);
            assert!(found.iter().all(|&f| f == 1), "{key} lost items");
        }
        let ttl: i64 = cmd(c, &["ttl", "grown"]);
        assert!((990..=1000).contains(&ttl), "ttl {ttl}");
        assert_eq!(cmd::<i64>(c, &["dbsize"]), 3);
    };
    check(&mut c);
    assert_eq!(
        info_int(&mut c, "persistence", "rdb_last_load_keys_loaded"),
        3
    );
    assert_eq!(cmd::<String>(&mut c, &["debug", "reload"]), "OK");
    check(&mut c);
    // Still a working filter: it grows, and the non-scaling one still
    // refuses to.
    let filters = bf_filters(&mut c, "grown");
    for i in 0..2000 {
        let _: i64 = cmd(&mut c, &["bf.add", "grown", &format!("more:{i}")]);
    }
    assert!(bf_filters(&mut c, "grown") > filters);
    let full = (0..1000).find_map(|i| {
        redis::cmd("bf.add")
            .arg("fixed")
            .arg(format!("more:{i}"))
            .query::<i64>(&mut c)
            .err()
    });
    let e = full.expect("a non-scaling filter of 1000 took 1500 items");
    assert_eq!(e.detail(), Some("non scaling filter is full"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `DEBUG RELOAD NOFLUSH` adds the file to the dataset: a key or library
/// already there is an error (nothing changes), unless `MERGE`, where the
/// file's win; keys and libraries made since the save stay.
#[test]
fn debug_reload_noflush_and_merge() {
    let dir = tempdir("noflush");
    let s = TestServer::in_dir(&dir, &[]);
    let mut c = s.client();
    let lib1 = "#!lua name=test1\nredis.register_function('test1', function() return 'hello1' end)";
    let lib2 = "#!lua name=test2\nredis.register_function('test2', function() return 'hello2' end)";
    let _: () = cmd(&mut c, &["SET", "x", "saved"]);
    let _: String = cmd(&mut c, &["FUNCTION", "LOAD", lib1]);
    assert_eq!(cmd::<String>(&mut c, &["DEBUG", "RELOAD"]), "OK");
    let e = err(&mut c, &["DEBUG", "RELOAD", "NOFLUSH"]);
    assert_eq!(
        e,
        "ERR Error trying to load the RDB dump, check server logs."
    );
    let _: () = cmd(&mut c, &["SET", "x", "changed"]);
    let _: () = cmd(&mut c, &["SET", "y", "new"]);
    let _: String = cmd(&mut c, &["FUNCTION", "LOAD", lib2]);
    assert_eq!(
        cmd::<String>(&mut c, &["DEBUG", "RELOAD", "NOSAVE", "NOFLUSH", "MERGE"]),
        "OK"
    );
    assert_eq!(
        cmd::<String>(&mut c, &["GET", "x"]),
        "saved",
        "the file's value wins"
    );
    assert_eq!(cmd::<String>(&mut c, &["GET", "y"]), "new");
    assert_eq!(cmd::<String>(&mut c, &["FCALL", "test1", "0"]), "hello1");
    assert_eq!(cmd::<String>(&mut c, &["FCALL", "test2", "0"]), "hello2");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A background save is the dataset at the moment `BGSAVE` ran: writes
/// that follow it, single or in `MULTI` over several shards, are not in
/// the file, however the save's work interleaves with them (each shard is
/// serialized by whoever locks it first after that moment).
#[test]
fn bgsave_is_one_point_in_time_while_clients_write() {
    let dir = tempdir("point-in-time");
    {
        let s = TestServer::in_dir(&dir, &[]);
        let mut c = s.client();
        let _: () = cmd(&mut c, &["debug", "populate", "100000", "key", "8"]);
        let _: () = cmd(&mut c, &["mset", "marker", "before", "a", "0", "b", "0"]);
        // One pipeline: the writes run right after BGSAVE, while most
        // shards are still to be serialized.
        let mut p = redis::pipe();
        p.cmd("bgsave").ignore();
        p.cmd("set").arg("marker").arg("after").ignore();
        p.cmd("del").arg("key:0").arg("key:1").arg("key:2").ignore();
        for j in 0..50 {
            p.cmd("set").arg(format!("new:{j}")).arg("x").ignore();
        }
        let _: () = p.query(&mut c).unwrap();
        // Meanwhile another client keeps `a` and `b` equal, atomically.
        let mut w = s.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut rounds = 0;
        while rounds < 20 || info_int(&mut c, "persistence", "rdb_bgsave_in_progress") == 1 {
            assert!(Instant::now() < deadline, "bgsave never ended");
            let _: () = redis::pipe()
                .atomic()
                .cmd("incr")
                .arg("a")
                .cmd("incr")
                .arg("b")
                .query(&mut w)
                .unwrap();
            rounds += 1;
        }
        assert_eq!(
            info_field(&mut c, "persistence", "rdb_last_bgsave_status"),
            "ok"
        );
    }
    let s = TestServer::in_dir(&dir, &[]);
    let mut c = s.client();
    assert_eq!(cmd::<String>(&mut c, &["get", "marker"]), "before");
    assert_eq!(cmd::<i64>(&mut c, &["dbsize"]), 100_003);
    assert_eq!(
        cmd::<i64>(&mut c, &["exists", "key:0", "key:2", "key:99999"]),
        3
    );
    assert_eq!(cmd::<i64>(&mut c, &["exists", "new:0", "new:49"]), 0);
    let (a, b): (i64, i64) = (cmd(&mut c, &["get", "a"]), cmd(&mut c, &["get", "b"]));
    assert_eq!((a, b), (0, 0), "a and b as they were at BGSAVE");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `FLUSHALL` with `save` points saves the empty dataset at once, and
/// gives up a `BGSAVE` that would write the keys back (Redis's
/// `flushAllDataAndResetRDB`), so even a crash does not bring them back.
#[test]
fn flushall_gives_up_a_running_bgsave_and_saves_the_empty_dataset() {
    let dir = tempdir("flushall");
    {
        let mut s = TestServer::in_dir(&dir, &["--save", "3600 1"]);
        let mut c = s.client();
        let _: () = cmd(&mut c, &["debug", "populate", "100000", "key", "8"]);
        assert_eq!(cmd::<String>(&mut c, &["save"]), "OK");
        let mut p = redis::pipe();
        p.cmd("bgsave").ignore();
        p.cmd("flushall").ignore();
        p.cmd("set").arg("after").arg("1").ignore();
        let _: () = p.query(&mut c).unwrap();
        wait_bgsave_ok(&mut c, Duration::from_secs(30));
        // No shutdown save: the file on disk is what FLUSHALL left.
        s.signal("KILL");
        s.wait_exit(Duration::from_secs(10));
    }
    let s = TestServer::in_dir(&dir, &[]);
    let mut c = s.client();
    assert_eq!(cmd::<i64>(&mut c, &["dbsize"]), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
