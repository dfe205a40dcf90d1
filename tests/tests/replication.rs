//! Replication, primary side: `SYNC`/`PSYNC` full resyncs and the stream
//! that follows. The real-Redis tests (a Redis replica of Ferrite, a
//! Redis started on Ferrite's RDB) are skipped when `redis-server` is absent.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrite_tests::{cmd, err, free_port, has_binary, start_redis, wait_info, RawConn, TestServer};

/// Reads a bulk payload header `$<len>\r\n` and the payload after it from
/// `buf`, reading more as needed; returns (payload, bytes after it).
fn read_payload(conn: &mut RawConn, mut buf: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") {
            assert_eq!(
                buf[0],
                b'$',
                "payload header: {:?}",
                String::from_utf8_lossy(&buf)
            );
            let len: usize = std::str::from_utf8(&buf[1..eol]).unwrap().parse().unwrap();
            let start = eol + 2;
            while buf.len() < start + len {
                assert!(Instant::now() < deadline, "payload incomplete");
                buf.extend(conn.read_until(|b| !b.is_empty(), Duration::from_millis(500)));
            }
            let rest = buf.split_off(start + len);
            return (buf.split_off(start), rest);
        }
        assert!(Instant::now() < deadline, "no payload header");
        buf.extend(conn.read_until(|b| !b.is_empty(), Duration::from_millis(500)));
    }
}

/// Reads stream bytes until `want` has arrived.
fn expect_stream(conn: &mut RawConn, mut got: Vec<u8>, want: &str) {
    let want = want.replace(' ', "\r\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < want.len() && Instant::now() < deadline {
        got.extend(conn.read_until(|b| !b.is_empty(), Duration::from_millis(200)));
    }
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[test]
fn sync_sends_an_rdb_then_the_stream_from_its_offset() {
    let server = TestServer::start();
    let mut c = server.client();
    let _: () = cmd(&mut c, &["set", "before", "1"]);
    let _: () = cmd(&mut c, &["select", "5"]);

    let mut link = server.raw_conn();
    link.send(b"SYNC\r\n");
    let (rdb, rest) = read_payload(&mut link, Vec::new());
    assert_eq!(&rdb[..9], b"REDIS0010");
    assert_eq!(rdb[rdb.len() - 9], 255, "EOF before the checksum");

    // The first effect after attaching comes with a SELECT, though the
    // stream had already selected db 0 before.
    let _: () = cmd(&mut c, &["select", "0"]);
    let _: () = cmd(&mut c, &["set", "after", "2"]);
    expect_stream(
        &mut link,
        rest,
        "*2 $6 SELECT $1 0 *3 $3 SET $5 after $1 2 ",
    );

    let info: String = cmd(&mut c, &["info", "replication"]);
    assert!(info.contains("connected_slaves:1\r\n"), "{info}");
    assert!(
        info.contains("slave0:ip=127.0.0.1,port=0,state=online"),
        "{info}"
    );
    drop(link);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info: String = cmd(&mut c, &["info", "replication"]);
        if info.contains("connected_slaves:0\r\n") {
            break;
        }
        assert!(Instant::now() < deadline, "replica not removed: {info}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn psync_answers_fullresync_with_the_snapshot_offset() {
    let server = TestServer::start();
    let mut c = server.client();
    let _: () = cmd(&mut c, &["set", "k", "v"]);
    let info: String = cmd(&mut c, &["info", "replication"]);
    let offset = info
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .unwrap()
        .to_string();
    let replid = info
        .lines()
        .find_map(|l| l.strip_prefix("master_replid:"))
        .unwrap()
        .to_string();

    let mut link = server.raw_conn();
    link.send(b"REPLCONF listening-port 4242\r\nREPLCONF capa eof capa psync2\r\nPSYNC ? -1\r\n");
    let head = link.read_until(
        |b| b.windows(2).filter(|w| w == b"\r\n").count() >= 3,
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&head).into_owned();
    let want = format!("+OK\r\n+OK\r\n+FULLRESYNC {replid} {offset}\r\n");
    assert!(text.starts_with(&want), "{text:?} vs {want:?}");
    let (rdb, _) = read_payload(&mut link, head[want.len()..].to_vec());
    assert_eq!(&rdb[..9], b"REDIS0010");
    let info: String = cmd(&mut c, &["info", "replication"]);
    assert!(info.contains("slave0:ip=127.0.0.1,port=4242,"), "{info}");
}

#[test]
fn replconf_validates_its_options() {
    let server = TestServer::start();
    let mut c = server.client();
    let _: () = cmd(&mut c, &["replconf", "capa", "eof"]);
    let e = ferrite_tests::err(&mut c, &["replconf", "capa"]);
    assert!(e.contains("syntax error"), "{e}");
    let e = ferrite_tests::err(&mut c, &["replconf", "bogus", "1"]);
    assert!(e.contains("Unrecognized REPLCONF option: bogus"), "{e}");
    // The periodic PING's period is a config like Redis's.
    let _: () = cmd(
        &mut c,
        &["config", "set", "repl-ping-replica-period", "3600"],
    );
    let v: Vec<String> = cmd(&mut c, &["config", "get", "repl-ping-replica-period"]);
    assert_eq!(v, ["repl-ping-replica-period", "3600"]);
}

/// Fills every type, with and without TTLs, in two databases.
fn populate(c: &mut redis::Connection, tag: &str) {
    let k = |s: &str| format!("{tag}{s}");
    let _: () = cmd(c, &["select", "0"]);
    let _: () = cmd(c, &["set", &k("str"), "hello world"]);
    let _: () = cmd(c, &["set", &k("int"), "-12345"]);
    let _: () = cmd(c, &["set", &k("ttl"), "v", "EX", "1000"]);
    let _: i64 = cmd(c, &["rpush", &k("list"), "a", "1", "bb", ""]);
    let _: i64 = cmd(c, &["sadd", &k("iset"), "1", "2", "300000"]);
    let _: i64 = cmd(c, &["sadd", &k("set"), "x", "y", "z"]);
    let _: i64 = cmd(c, &["hset", &k("hash"), "f", "v", "n", "7"]);
    let _: i64 = cmd(
        c,
        &["zadd", &k("zset"), "1.5", "a", "-inf", "b", "1e100", "c"],
    );
    let _: i64 = cmd(c, &["expire", &k("zset"), "5000"]);
    for i in 0..200 {
        let n = i.to_string();
        let _: i64 = cmd(c, &["rpush", &k("biglist"), &n]);
        let _: i64 = cmd(c, &["hset", &k("bighash"), &n, &n]);
        let _: i64 = cmd(c, &["zadd", &k("bigzset"), &n, &format!("m{n}")]);
        let _: i64 = cmd(c, &["sadd", &k("bigset"), &format!("m{n}")]);
    }
    // Streams: entries with the master's fields and without, a deletion,
    // a consumer group with pending entries, and a stream of many nodes.
    let _: String = cmd(c, &["xadd", &k("stream"), "1-1", "a", "1", "b", "2"]);
    let _: String = cmd(c, &["xadd", &k("stream"), "2-0", "a", "3", "b", "4"]);
    let _: String = cmd(c, &["xadd", &k("stream"), "3-0", "c", "5"]);
    let _: String = cmd(c, &["xadd", &k("stream"), "4-0", "a", "6", "b", "7"]);
    let _: i64 = cmd(c, &["xdel", &k("stream"), "2-0"]);
    let _: () = cmd(c, &["xgroup", "create", &k("stream"), "g", "0"]);
    let _: redis::Value = cmd(
        c,
        &[
            "xreadgroup",
            "group",
            "g",
            "alice",
            "count",
            "2",
            "streams",
            &k("stream"),
            ">",
        ],
    );
    for i in 0..250 {
        let _: String = cmd(c, &["xadd", &k("bigstream"), "*", "f", &i.to_string()]);
    }
    // Values of every listpack string size class, integer-like values, a
    // sequence lower than the master's, a drained stream that keeps its
    // last ID, a group never read (unknown entries_read) and a consumer
    // without pending entries.
    let big = "x".repeat(5000);
    let mid = "y".repeat(100);
    let _: String = cmd(c, &["xadd", &k("odd"), "5-10", "n", "-5", "big", &big]);
    let _: String = cmd(
        c,
        &["xadd", &k("odd"), "6-0", "n", "12345678901", "mid", &mid],
    );
    let _: String = cmd(c, &["xadd", &k("odd"), "6-1", "n", "300000"]);
    let _: () = cmd(c, &["xgroup", "create", &k("odd"), "h", "$"]);
    let _: i64 = cmd(c, &["xgroup", "createconsumer", &k("odd"), "h", "idle"]);
    let _: String = cmd(c, &["xadd", &k("drained"), "9-9", "f", "v"]);
    let _: i64 = cmd(c, &["xdel", &k("drained"), "9-9"]);
    let _: () = cmd(c, &["select", "9"]);
    let _: () = cmd(c, &["set", &k("db9"), "nine"]);
    let _: i64 = cmd(c, &["pexpire", &k("db9"), "900000"]);
    let _: () = cmd(c, &["select", "0"]);
}

/// Every key of databases 0 and 9 with its type, whether it has a TTL and
/// its contents in a canonical order.
fn contents(c: &mut redis::Connection) -> Vec<String> {
    let mut all = Vec::new();
    for db in ["0", "9"] {
        let _: () = cmd(c, &["select", db]);
        let mut keys: Vec<String> = cmd(c, &["keys", "*"]);
        keys.sort();
        for key in keys {
            let t: String = cmd(c, &["type", &key]);
            let ttl: i64 = cmd(c, &["pttl", &key]);
            let mut v: Vec<String> = match t.as_str() {
                "string" => vec![cmd(c, &["get", &key])],
                "list" => cmd(c, &["lrange", &key, "0", "-1"]),
                "set" => cmd(c, &["smembers", &key]),
                "hash" => cmd(c, &["hgetall", &key]),
                "zset" => cmd(c, &["zrange", &key, "0", "-1", "withscores"]),
                "stream" => stream_contents(c, &key),
                other => panic!("type {other}"),
            };
            if t == "set" {
                v.sort();
            }
            if t == "hash" {
                let mut pairs: Vec<String> = v.chunks(2).map(|p| p.join("=")).collect();
                pairs.sort();
                v = pairs;
            }
            all.push(format!("{db} {key} {t} ttl={} {v:?}", ttl > 0));
        }
    }
    let _: () = cmd(c, &["select", "0"]);
    all
}

/// A stream's entries, counters, groups, PEL summaries and consumers
/// (without idle times, which differ between two servers).
fn stream_contents(c: &mut redis::Connection, key: &str) -> Vec<String> {
    let entries: redis::Value = cmd(c, &["xrange", key, "-", "+"]);
    let info: Vec<redis::Value> = cmd(c, &["xinfo", "stream", key]);
    let mut v = vec![format!("{entries:?}")];
    // length, last-generated-id, max-deleted-entry-id, entries-added,
    // recorded-first-entry-id, groups.
    for i in [1, 7, 9, 11, 13, 15] {
        v.push(format!("{:?}", info.get(i)));
    }
    let groups: Vec<Vec<redis::Value>> = cmd(c, &["xinfo", "groups", key]);
    for g in groups {
        v.push(format!("{g:?}"));
        let name = match &g[1] {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("group name {other:?}"),
        };
        let p: redis::Value = cmd(c, &["xpending", key, &name]);
        v.push(format!("{p:?}"));
        let consumers: Vec<Vec<redis::Value>> = cmd(c, &["xinfo", "consumers", key, &name]);
        for cons in consumers {
            v.push(format!("{:?}", &cons[..4]));
        }
    }
    v
}

#[test]
fn a_real_redis_replica_gets_the_snapshot_and_the_stream() {
    if !has_binary("redis-server") {
        return;
    }
    let server = TestServer::start();
    let mut c = server.client();
    populate(&mut c, "pre:");
    let port = free_port();
    let primary = server.port().to_string();
    let (_replica, mut r) = start_redis(port, &["--replicaof", "127.0.0.1", &primary]);
    // Writes after the sync reach it through the stream.
    populate(&mut c, "post:");
    let _: i64 = cmd(&mut c, &["del", "pre:str"]);
    let _: String = cmd(&mut c, &["incrbyfloat", "post:float", "2.5"]);
    let want = contents(&mut c);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = contents(&mut r);
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica differs:\n{got:#?}\nprimary:\n{want:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let info: String = cmd(&mut c, &["info", "replication"]);
    assert!(
        info.contains(&format!("slave0:ip=127.0.0.1,port={port},state=online")),
        "{info}"
    );
}

#[test]
fn redis_cli_rdb_loads_into_a_real_redis() {
    if !has_binary("redis-server") || !has_binary("redis-cli") {
        return;
    }
    let server = TestServer::start();
    let mut c = server.client();
    populate(&mut c, "k:");
    // Strings that `rdbcompression yes` (the default) writes as LZF.
    let long = "compressible value ".repeat(30);
    let _: () = cmd(&mut c, &["set", &long, &long]);
    let _: i64 = cmd(&mut c, &["rpush", "k:lzf-list", &long, "short", &long]);
    let _: i64 = cmd(&mut c, &["hset", "k:lzf-hash", "f", &long]);
    let dir = std::env::temp_dir().join(format!("ferrite-rdb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dump.rdb");
    let st = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "--rdb"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli --rdb");
    assert!(st.success());
    let rdb = std::fs::read(&file).unwrap();
    assert!(
        !rdb.windows(long.len()).any(|w| w == long.as_bytes()),
        "long strings are compressed"
    );
    if Command::new("redis-check-rdb")
        .arg("--version")
        .output()
        .is_ok()
    {
        let out = Command::new("redis-check-rdb").arg(&file).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("RDB looks OK"), "{text}");
    }
    let port = free_port();
    let (_redis, mut r) = start_redis(
        port,
        &["--dir", dir.to_str().unwrap(), "--dbfilename", "dump.rdb"],
    );
    assert_eq!(contents(&mut r), contents(&mut c));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Values that take every compact and plain encoding in a real Redis 7.0:
/// integer widths in listpacks, intsets beyond their limit, long
/// (listpack-breaking) members, plain quicklist nodes, LZF strings.
fn populate_encodings(c: &mut redis::Connection, tag: &str) {
    let k = |s: &str| format!("{tag}{s}");
    let big = "x".repeat(10_000);
    let long = "abcdefghij".repeat(20);
    let _: () = cmd(c, &["set", &k("lzf"), &long]);
    let _: () = cmd(c, &["set", &k("i64"), "-9223372036854775808"]);
    let _: i64 = cmd(
        c,
        &[
            "rpush",
            &k("ints"),
            "-1",
            "100",
            "1000",
            "-70000",
            "1099511627776",
            "-4000",
            "12",
        ],
    );
    let _: i64 = cmd(c, &["rpush", &k("plainlist"), "a", &big, "b"]);
    let _: i64 = cmd(c, &["hset", &k("longhash"), "f", &long]);
    let _: i64 = cmd(c, &["zadd", &k("longzset"), "3", &long, "-2.5", "m"]);
    let _: i64 = cmd(c, &["sadd", &k("longset"), &long, "1"]);
    for i in 0..600 {
        let n = (i * 1000 - 70_000).to_string();
        let _: i64 = cmd(c, &["sadd", &k("bigintset"), &n]);
    }
    let _: i64 = cmd(c, &["sadd", &k("wideintset"), "1", "-5000000000"]);
}

/// Waits until `replica`'s contents equal `primary`'s.
fn wait_same(primary: &mut redis::Connection, replica: &mut redis::Connection, what: &str) {
    let want = contents(primary);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = contents(replica);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: replica has {} keys, primary {}",
            got.len(),
            want.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_ferrite_replica_follows_a_ferrite_primary_then_becomes_a_primary() {
    let primary = TestServer::start();
    let replica = TestServer::start();
    let mut p = primary.client();
    let mut r = replica.client();
    // The offsets compared below must not move under a periodic PING.
    let _: () = cmd(
        &mut p,
        &["config", "set", "repl-ping-replica-period", "3600"],
    );
    populate(&mut p, "pre:");
    let _: () = cmd(&mut r, &["set", "replaced", "by the sync"]);
    let port = primary.port().to_string();
    let ok: String = cmd(&mut r, &["replicaof", "127.0.0.1", &port]);
    assert_eq!(ok, "OK");
    let again: String = cmd(&mut r, &["slaveof", "127.0.0.1", &port]);
    assert_eq!(again, "OK Already connected to specified master");
    wait_info(&mut r, "master_link_status", "up");
    wait_same(&mut p, &mut r, "initial sync");
    // Streams arrive whole: node layout, counters, groups, PELs with their
    // delivery times and counts, consumers with their seen times.
    for key in ["pre:stream", "pre:bigstream", "pre:odd", "pre:drained"] {
        let want: redis::Value = cmd(&mut p, &["xinfo", "stream", key, "full"]);
        let got: redis::Value = cmd(&mut r, &["xinfo", "stream", key, "full"]);
        assert!(
            got == want,
            "XINFO STREAM {key} FULL differs on the replica"
        );
    }

    // Live writes arrive through the stream, expirations as DEL.
    populate(&mut p, "post:");
    let _: i64 = cmd(&mut p, &["del", "pre:str"]);
    let _: String = cmd(&mut p, &["incrbyfloat", "post:float", "2.5"]);
    let _: () = cmd(&mut p, &["set", "short", "v", "px", "50"]);
    std::thread::sleep(Duration::from_millis(100));
    wait_same(&mut p, &mut r, "stream");

    let info: String = cmd(&mut r, &["info", "replication"]);
    let field = |f: &str| ferrite_tests::info_value(&info, f).map(str::to_string);
    assert_eq!(field("role").as_deref(), Some("slave"), "{info}");
    assert_eq!(field("master_host").as_deref(), Some("127.0.0.1"));
    assert_eq!(field("master_port"), Some(port.clone()));
    assert_eq!(field("master_sync_in_progress").as_deref(), Some("0"));
    assert_eq!(field("slave_read_only").as_deref(), Some("1"));
    assert_eq!(field("slave_priority").as_deref(), Some("100"));
    assert_eq!(field("replica_announced").as_deref(), Some("1"));
    let p_info: String = cmd(&mut p, &["info", "replication"]);
    assert_eq!(
        field("master_replid").as_deref(),
        ferrite_tests::info_value(&p_info, "master_replid")
    );
    // The replica acknowledges what it applied.
    let offset: i64 = ferrite_tests::info_int(&mut p, "replication", "master_repl_offset");
    wait_info(&mut r, "slave_repl_offset", &offset.to_string());
    let role: Vec<redis::Value> = cmd(&mut r, &["role"]);
    assert_eq!(role.len(), 5);
    assert_eq!(role[0], redis::Value::BulkString(b"slave".to_vec()));
    assert_eq!(role[3], redis::Value::BulkString(b"connected".to_vec()));
    assert_eq!(role[4], redis::Value::Int(offset));
    let prole: Vec<redis::Value> = cmd(&mut p, &["role"]);
    assert_eq!(prole[0], redis::Value::BulkString(b"master".to_vec()));

    // Read only.
    let e = ferrite_tests::err(&mut r, &["set", "x", "1"]);
    assert_eq!(e, "READONLY You can't write against a read only replica.");
    let _: () = cmd(&mut r, &["multi"]);
    let e = ferrite_tests::err(&mut r, &["set", "x", "1"]);
    assert!(e.starts_with("READONLY"), "{e}");
    let e = ferrite_tests::err(&mut r, &["exec"]);
    assert!(e.starts_with("EXECABORT"), "{e}");

    // Promotion: a new history, the old one as replid2.
    let old_id = field("master_replid").unwrap();
    let ok: String = cmd(&mut r, &["replicaof", "no", "one"]);
    assert_eq!(ok, "OK");
    let info: String = cmd(&mut r, &["info", "replication"]);
    assert_eq!(ferrite_tests::info_value(&info, "role"), Some("master"));
    assert_eq!(
        ferrite_tests::info_value(&info, "master_replid2"),
        Some(old_id.as_str())
    );
    assert_ne!(
        ferrite_tests::info_value(&info, "master_replid"),
        Some(old_id.as_str())
    );
    assert_eq!(
        ferrite_tests::info_value(&info, "second_repl_offset"),
        Some((offset + 1).to_string().as_str())
    );
    let _: () = cmd(&mut r, &["set", "x", "1"]);
    // The primary's writes no longer arrive.
    let _: () = cmd(&mut p, &["set", "later", "1"]);
    std::thread::sleep(Duration::from_millis(200));
    let later: Option<String> = cmd(&mut r, &["get", "later"]);
    assert_eq!(later, None);
}

#[test]
fn replicaof_validates_its_arguments() {
    let server = TestServer::start();
    let mut c = server.client();
    let e = ferrite_tests::err(&mut c, &["replicaof", "127.0.0.1", "notaport"]);
    assert_eq!(e, "ERR Invalid master port");
    let e = ferrite_tests::err(&mut c, &["replicaof", "127.0.0.1", "65536"]);
    assert_eq!(e, "ERR Invalid master port");
    let e = ferrite_tests::err(&mut c, &["replicaof", "127.0.0.1"]);
    assert!(e.contains("wrong number of arguments"), "{e}");
    // NO ONE on a primary is a no-op.
    let ok: String = cmd(&mut c, &["replicaof", "no", "one"]);
    assert_eq!(ok, "OK");
    let role: Vec<redis::Value> = cmd(&mut c, &["role"]);
    assert_eq!(
        role,
        vec![
            redis::Value::BulkString(b"master".to_vec()),
            redis::Value::Int(0),
            redis::Value::Array(vec![]),
        ]
    );
}

#[test]
fn a_replica_with_its_link_down_refuses_stale_reads_when_configured() {
    let server = TestServer::start();
    let mut c = server.client();
    let _: () = cmd(&mut c, &["set", "k", "v"]);
    // Nothing listens there: the link stays down.
    let dead = free_port().to_string();
    let _: () = cmd(&mut c, &["replicaof", "127.0.0.1", &dead]);
    // Stale data is served by default.
    let v: String = cmd(&mut c, &["get", "k"]);
    assert_eq!(v, "v");
    let info: String = cmd(&mut c, &["info", "replication"]);
    assert_eq!(
        ferrite_tests::info_value(&info, "master_link_status"),
        Some("down")
    );
    assert_eq!(
        ferrite_tests::info_value(&info, "master_last_io_seconds_ago"),
        Some("-1")
    );
    assert!(info.contains("master_link_down_since_seconds:"), "{info}");
    let _: () = cmd(&mut c, &["config", "set", "replica-serve-stale-data", "no"]);
    let e = ferrite_tests::err(&mut c, &["get", "k"]);
    assert_eq!(
        e,
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
    );
    let e = ferrite_tests::err(&mut c, &["ping"]);
    assert!(e.starts_with("MASTERDOWN"), "{e}");
    // Commands flagged `stale` still run.
    let _: String = cmd(&mut c, &["info", "server"]);
    let role: Vec<redis::Value> = cmd(&mut c, &["role"]);
    assert_eq!(role[4], redis::Value::Int(-1));
    // A transaction queued before the state changed fails at EXEC.
    let _: () = cmd(&mut c, &["replicaof", "no", "one"]);
    let _: () = cmd(&mut c, &["multi"]);
    let _: () = cmd(&mut c, &["get", "k"]);
    let mut other = server.client();
    let _: () = cmd(&mut other, &["replicaof", "127.0.0.1", &dead]);
    let e = ferrite_tests::err(&mut c, &["exec"]);
    assert!(
        e.starts_with("EXECABORT") && e.contains("MASTERDOWN"),
        "{e}"
    );
    let _: () = cmd(&mut c, &["replicaof", "no", "one"]);
    let v: String = cmd(&mut c, &["get", "k"]);
    assert_eq!(v, "v");
}

#[test]
fn min_replicas_to_write_refuses_writes_without_enough_replicas() {
    let primary = TestServer::start();
    let mut p = primary.client();
    let _: () = cmd(&mut p, &["config", "set", "min-replicas-to-write", "1"]);
    let e = ferrite_tests::err(&mut p, &["set", "k", "v"]);
    assert_eq!(e, "NOREPLICAS Not enough good replicas to write.");
    let info: String = cmd(&mut p, &["info", "replication"]);
    assert_eq!(
        ferrite_tests::info_value(&info, "min_slaves_good_slaves"),
        Some("0")
    );
    // Reads still run; a transaction with a write fails at EXEC.
    let _: Option<String> = cmd(&mut p, &["get", "k"]);
    let _: () = cmd(&mut p, &["config", "set", "min-replicas-to-write", "0"]);
    let _: () = cmd(&mut p, &["multi"]);
    let _: () = cmd(&mut p, &["incr", "n"]);
    let mut other = primary.client();
    let _: () = cmd(&mut other, &["config", "set", "min-slaves-to-write", "1"]);
    let e = ferrite_tests::err(&mut p, &["exec"]);
    assert!(
        e.starts_with("EXECABORT") && e.contains("NOREPLICAS"),
        "{e}"
    );
    // A replica that acknowledges makes writes possible.
    let replica = TestServer::start();
    let mut r = replica.client();
    let port = primary.port().to_string();
    let _: () = cmd(&mut r, &["replicaof", "127.0.0.1", &port]);
    wait_info(&mut p, "min_slaves_good_slaves", "1");
    let _: () = cmd(&mut p, &["set", "k", "v"]);
    let n: Option<i64> = cmd(&mut p, &["get", "n"]);
    assert_eq!(n, None, "the aborted INCR did not run");
}

#[test]
fn a_ferrite_replica_follows_a_real_redis_primary() {
    if !has_binary("redis-server") {
        return;
    }
    let port = free_port();
    // No periodic PING may move the offsets compared at the end.
    let (_redis, mut p) = start_redis(
        port,
        &[
            "--repl-diskless-sync-delay",
            "0",
            "--repl-ping-replica-period",
            "3600",
        ],
    );
    populate(&mut p, "pre:");
    populate_encodings(&mut p, "enc:");
    let replica = TestServer::start();
    let mut r = replica.client();
    let _: () = cmd(&mut r, &["replicaof", "127.0.0.1", &port.to_string()]);
    // Redis 7.0 sends a diskless ($EOF:<mark>) snapshot by default.
    wait_info(&mut r, "master_link_status", "up");
    wait_same(&mut p, &mut r, "diskless sync");
    // The streams arrive whole; only radix-tree-nodes (Redis's count of
    // rax internals, which Ferrite estimates) may differ.
    for key in ["pre:stream", "pre:bigstream", "pre:odd", "pre:drained"] {
        let full = |c: &mut redis::Connection| {
            let mut v: Vec<redis::Value> = cmd(c, &["xinfo", "stream", key, "full"]);
            assert_eq!(
                v.get(4),
                Some(&redis::Value::BulkString(b"radix-tree-nodes".to_vec()))
            );
            v[5] = redis::Value::Nil;
            v
        };
        let want = full(&mut p);
        let got = full(&mut r);
        assert!(
            got == want,
            "XINFO STREAM {key} FULL differs on the replica"
        );
    }
    populate(&mut p, "post:");
    let _: i64 = cmd(&mut p, &["del", "pre:str"]);
    let _: i64 = cmd(&mut p, &["lpush", "enc:plainlist", &"y".repeat(9000)]);
    wait_same(&mut p, &mut r, "stream");
    // A disk-based ($<len>) snapshot after a resync with a new history.
    let _: () = cmd(&mut p, &["config", "set", "repl-diskless-sync", "no"]);
    let _: () = cmd(&mut r, &["replicaof", "no", "one"]);
    let _: () = cmd(&mut r, &["set", "diverged", "1"]);
    let _: () = cmd(&mut r, &["replicaof", "127.0.0.1", &port.to_string()]);
    wait_info(&mut r, "master_link_status", "up");
    wait_same(&mut p, &mut r, "disk sync");
    let offset = ferrite_tests::info_int(&mut p, "replication", "master_repl_offset");
    wait_info(&mut r, "slave_repl_offset", &offset.to_string());
}

/// (db, key, type, length) of every key of a real Redis.
fn shapes(c: &mut redis::Connection) -> Vec<(usize, String, String, i64)> {
    let mut out = Vec::new();
    for db in [0usize, 9] {
        let _: () = cmd(c, &["select", &db.to_string()]);
        let keys: Vec<String> = cmd(c, &["keys", "*"]);
        for k in keys {
            let t: String = cmd(c, &["type", &k]);
            let len_cmd = match t.as_str() {
                "string" => "strlen",
                "list" => "llen",
                "set" => "scard",
                "hash" => "hlen",
                "stream" => "xlen",
                _ => "zcard",
            };
            let n: i64 = cmd(c, &[len_cmd, &k]);
            out.push((db, k, t, n));
        }
    }
    let _: () = cmd(c, &["select", "0"]);
    out.sort();
    out
}

#[test]
fn the_rdb_loader_reads_a_file_written_by_real_redis() {
    if !has_binary("redis-server") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ferrite-rdbload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let (_redis, mut c) = start_redis(
        port,
        &["--dir", dir.to_str().unwrap(), "--dbfilename", "dump.rdb"],
    );
    populate(&mut c, "k:");
    populate_encodings(&mut c, "enc:");
    let want = shapes(&mut c);
    let _: () = cmd(&mut c, &["save"]);
    let data = std::fs::read(dir.join("dump.rdb")).unwrap();
    let limits = ferrite_storage_limits();
    let mut got = Vec::new();
    let mut ttls = 0;
    ferrite_server::rdb_load::load(&data, 16, &limits, |k| {
        if k.expire_at != i64::MAX && k.expire_at > 0 {
            ttls += 1;
        }
        let t = k.value.type_name().to_string();
        let n = match &k.value {
            ferrite_storage::Value::Str { bytes, .. } => bytes.len(),
            v => v.len(),
        } as i64;
        got.push((k.db, String::from_utf8(k.key).unwrap(), t, n));
    })
    .expect("load");
    got.sort();
    assert_eq!(got, want);
    assert_eq!(ttls, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

fn ferrite_storage_limits() -> ferrite_storage::EncodingLimits {
    ferrite_storage::EncodingLimits::default()
}

#[test]
fn a_replica_hides_expired_keys_until_the_primary_deletes_them() {
    let primary = TestServer::start();
    let replica = TestServer::start();
    let mut p = primary.client();
    let mut r = replica.client();
    // The primary deletes only on access, so the test decides when.
    let _: () = cmd(&mut p, &["debug", "set-active-expire", "0"]);
    let port = primary.port().to_string();
    let _: () = cmd(&mut r, &["replicaof", "127.0.0.1", &port]);
    wait_info(&mut r, "master_link_status", "up");
    let _: () = cmd(&mut p, &["set", "k", "v", "px", "100"]);
    let _: () = cmd(&mut p, &["set", "sync", "1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cmd::<Option<String>>(&mut r, &["get", "sync"]).is_none() {
        assert!(Instant::now() < deadline, "write never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    // Logically expired: invisible, but kept (no active expiry, no
    // deletion on read) until the primary's DEL.
    let v: Option<String> = cmd(&mut r, &["get", "k"]);
    assert_eq!(v, None);
    let n: i64 = cmd(&mut r, &["exists", "k"]);
    assert_eq!(n, 0);
    std::thread::sleep(Duration::from_millis(200));
    let size: i64 = cmd(&mut r, &["dbsize"]);
    assert_eq!(size, 2);
    let v: Option<String> = cmd(&mut p, &["get", "k"]);
    assert_eq!(v, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cmd::<i64>(&mut r, &["dbsize"]) != 1 {
        assert!(Instant::now() < deadline, "DEL never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn replicaof_on_the_command_line_starts_a_replica() {
    let primary = TestServer::start();
    let mut p = primary.client();
    let _: () = cmd(&mut p, &["set", "k", "v"]);
    let port = primary.port().to_string();
    let replica = TestServer::with_args(&["--replicaof", "127.0.0.1", &port]);
    let mut r = replica.client();
    wait_info(&mut r, "master_link_status", "up");
    let v: String = cmd(&mut r, &["get", "k"]);
    assert_eq!(v, "v");
    // As Redis: shown by CONFIG GET, not settable.
    let v: Vec<String> = cmd(&mut r, &["config", "get", "slaveof"]);
    assert_eq!(v, ["slaveof", &format!("127.0.0.1 {port}")]);
    let e = ferrite_tests::err(&mut r, &["config", "set", "replicaof", "x 1"]);
    assert!(e.contains("can't set immutable config"), "{e}");
    let _: () = cmd(&mut r, &["replicaof", "no", "one"]);
    let v: Vec<String> = cmd(&mut r, &["config", "get", "replicaof"]);
    assert_eq!(v, ["replicaof", ""]);
}

#[test]
fn becoming_a_replica_unblocks_blocked_clients_with_an_error() {
    let server = TestServer::start();
    let mut c = server.client();
    let mut blocked = server.raw_conn();
    blocked.send(&ferrite_tests::resp(&[b"BLPOP", b"nolist", b"0"]));
    ferrite_tests::wait_blocked_clients(&mut c, 1);
    let dead = free_port().to_string();
    let _: () = cmd(&mut c, &["replicaof", "127.0.0.1", &dead]);
    let reply = blocked.read_until(|b| b.ends_with(b"\r\n"), Duration::from_secs(5));
    assert_eq!(
        ferrite_tests::text(&reply),
        "-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n"
    );
    let _: () = cmd(&mut c, &["replicaof", "no", "one"]);
}

#[test]
fn a_replica_authenticates_with_masterauth() {
    let primary = TestServer::with_args(&["--requirepass", "secret"]);
    let replica = TestServer::start();
    let mut r = replica.client();
    let port = primary.port().to_string();
    let _: () = cmd(&mut r, &["replicaof", "127.0.0.1", &port]);
    // Without the password the sync is refused and retried.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        ferrite_tests::info_field(&mut r, "replication", "master_link_status"),
        "down"
    );
    let _: () = cmd(&mut r, &["config", "set", "masterauth", "secret"]);
    wait_info(&mut r, "master_link_status", "up");
}

#[test]
fn client_kill_type_master_makes_the_replica_reconnect() {
    let primary = TestServer::start();
    let replica = TestServer::start();
    let mut p = primary.client();
    let mut r = replica.client();
    let port = primary.port().to_string();
    let _: () = cmd(&mut r, &["replicaof", "127.0.0.1", &port]);
    wait_info(&mut r, "master_link_status", "up");
    let list: String = cmd(&mut r, &["client", "list", "type", "master"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains("flags=M"), "{list}");
    let list: String = cmd(&mut p, &["client", "list", "type", "replica"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains("flags=S"), "{list}");
    let n: i64 = cmd(&mut r, &["client", "kill", "type", "master"]);
    assert_eq!(n, 1);
    let _: () = cmd(&mut p, &["set", "after", "1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cmd::<Option<String>>(&mut r, &["get", "after"]).is_none() {
        assert!(Instant::now() < deadline, "the link did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `WAIT numreplicas timeout`: the count of replicas that acknowledged
/// every write so far, waiting for them (they are asked at once), or
/// what there is at the timeout; in `MULTI` it does not wait; a replica
/// refuses it.
#[test]
fn wait_counts_replicas_that_acknowledged_the_writes() {
    let primary = TestServer::start();
    let mut p = primary.client();
    // No replica: nothing to wait for with 0, a timeout otherwise.
    assert_eq!(cmd::<i64>(&mut p, &["WAIT", "0", "0"]), 0);
    let t = std::time::Instant::now();
    assert_eq!(cmd::<i64>(&mut p, &["WAIT", "1", "100"]), 0);
    assert!(t.elapsed() >= std::time::Duration::from_millis(100));
    assert_eq!(err(&mut p, &["WAIT", "1", "-1"]), "ERR timeout is negative");

    let replica = TestServer::start();
    let mut r = replica.client();
    let port = primary.port().to_string();
    let _: String = cmd(&mut r, &["replicaof", "127.0.0.1", &port]);
    wait_info(&mut r, "master_link_status", "up");
    let _: () = cmd(&mut p, &["SET", "k", "v"]);
    // Acknowledged well before the one-minute timeout.
    let t = std::time::Instant::now();
    assert_eq!(cmd::<i64>(&mut p, &["WAIT", "1", "60000"]), 1);
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(cmd::<String>(&mut r, &["GET", "k"]), "v");
    // More than there are: the timeout, with the count there is.
    let _: () = cmd(&mut p, &["SET", "k", "w"]);
    assert_eq!(cmd::<i64>(&mut p, &["WAIT", "2", "200"]), 1);
    // In a transaction it answers at once.
    let _: () = cmd(&mut p, &["MULTI"]);
    let _: String = cmd(&mut p, &["WAIT", "5", "0"]);
    let got: Vec<i64> = cmd(&mut p, &["EXEC"]);
    assert!(got[0] <= 1, "{got:?}");
    assert!(err(&mut r, &["WAIT", "0", "0"])
        .starts_with("ERR WAIT cannot be used with replica instances."));
}

/// `WAIT` waits for the client's own last write (Redis's `woff`), not for
/// writes other clients made after it: a replica link driven by hand
/// acknowledges the offset right after client A's write; client B writes
/// more; A's `WAIT` is satisfied at once, B's times out.
#[test]
fn wait_waits_for_the_clients_own_last_write() {
    let server = TestServer::start();
    let mut a = server.client();
    let mut b = server.client();
    let mut link = manual_replica(&server);
    // Client A writes; the stream's end is then A's write offset.
    let _: () = cmd(&mut a, &["SET", "a", "1"]);
    let offset = ferrite_tests::info_int(&mut a, "replication", "master_repl_offset");
    assert!(offset > 0);
    link.send(format!("REPLCONF ACK {offset}\r\n").as_bytes());
    // B writes after it and is not acknowledged.
    let _: () = cmd(&mut b, &["SET", "b", "1"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cmd::<String>(&mut a, &["INFO", "replication"]).contains(&format!("offset={offset},")) {
        assert!(Instant::now() < deadline, "the ACK never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    assert_eq!(cmd::<i64>(&mut a, &["WAIT", "1", "3000"]), 1);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(cmd::<i64>(&mut b, &["WAIT", "1", "200"]), 0);
    // A client that never wrote waits for nothing.
    let mut fresh = server.client();
    assert_eq!(cmd::<i64>(&mut fresh, &["WAIT", "1", "3000"]), 1);
}

/// A replica link driven by hand (`PSYNC ? -1`), past its snapshot: it
/// acknowledges only what the test sends.
fn manual_replica(server: &TestServer) -> RawConn {
    let mut link = server.raw_conn();
    link.send(b"REPLCONF listening-port 4244\r\nPSYNC ? -1\r\n");
    let head = link.read_until(
        |b| b.windows(2).filter(|w| w == b"\r\n").count() >= 2,
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&head).into_owned();
    let at = text.find("+FULLRESYNC").expect("full resync");
    let eol = at + text[at..].find("\r\n").unwrap();
    let _ = read_payload(&mut link, head[eol + 2..].to_vec());
    link
}

/// `SHUTDOWN` (and a signal) with a lagging replica waits for it
/// (`shutdown-timeout`) with writes paused; `SHUTDOWN ABORT` cancels it,
/// and the blocked `SHUTDOWN` gets Redis's error.
#[test]
fn shutdown_waits_for_a_lagging_replica_and_abort_cancels_it() {
    let server = TestServer::start();
    let mut c = server.client();
    let mut link = manual_replica(&server);
    let _: () = cmd(&mut c, &["set", "k", "v"]);
    let mut blocked = server.raw_conn();
    // A reply pipelined before the SHUTDOWN goes out before the wait.
    blocked.send(b"SET before shutdown\r\nSHUTDOWN\r\n");
    assert_eq!(
        blocked.read_until(|b| b.ends_with(b"\r\n"), Duration::from_secs(5)),
        b"+OK\r\n"
    );
    // Still serving reads; writes wait (a write pause).
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cmd::<String>(&mut c, &["get", "k"]), "v");
    // The SHUTDOWN client counts as blocked (flag `b`).
    assert_eq!(
        ferrite_tests::info_field(&mut c, "clients", "blocked_clients"),
        "1"
    );
    let list: String = cmd(&mut c, &["client", "list"]);
    assert!(
        list.lines()
            .any(|l| l.contains("cmd=shutdown") && l.contains("flags=b")),
        "{list}"
    );
    let mut writer = server.raw_conn();
    writer.send(b"SET k2 v2\r\n");
    assert_eq!(writer.read_idle(), b"");
    // The replica was asked for its offset.
    let asked = link.read_until(|b| b.ends_with(b"*\r\n"), Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&asked).contains("GETACK"));
    let ok: String = cmd(&mut c, &["shutdown", "abort"]);
    assert_eq!(ok, "OK");
    let reply = blocked.read_until(|b| b.ends_with(b"\r\n"), Duration::from_secs(5));
    assert_eq!(reply, b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n");
    // Writes resume; nothing else to abort.
    assert_eq!(
        writer.read_until(|b| b.ends_with(b"\r\n"), Duration::from_secs(5)),
        b"+OK\r\n"
    );
    let e = err(&mut c, &["shutdown", "abort"]);
    assert_eq!(e, "ERR No shutdown in progress.");
    let e = err(&mut c, &["shutdown", "save", "nosave"]);
    assert_eq!(e, "ERR syntax error");
    // A signal waits the same way, and SHUTDOWN ABORT cancels it too.
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cmd::<String>(&mut c, &["ping"]), "PONG");
    let left: i64 = ferrite_tests::info_field(&mut c, "server", "shutdown_in_milliseconds")
        .parse()
        .unwrap();
    assert!((1_000..=10_000).contains(&left), "{left}");
    let ok: String = cmd(&mut c, &["shutdown", "abort"]);
    assert_eq!(ok, "OK");
    drop(link);
}

/// `shutdown-on-sigterm now` does not wait for a lagging replica.
#[test]
fn a_signal_configured_with_now_does_not_wait() {
    let mut server = TestServer::with_args(&["--shutdown-on-sigterm", "now nosave"]);
    let mut c = server.client();
    let _link = manual_replica(&server);
    let _: () = cmd(&mut c, &["set", "k", "v"]);
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(3)).is_some());
}

/// The shutdown ends as soon as the replica acknowledges the stream, or
/// when `shutdown-timeout` runs out; `NOW` does not wait.
#[test]
fn shutdown_ends_on_the_replica_s_ack_or_the_timeout() {
    // The replica acknowledges: the server exits well before the timeout.
    let mut server = TestServer::start();
    let mut c = server.client();
    let _: () = cmd(&mut c, &["config", "set", "shutdown-timeout", "60"]);
    let mut link = manual_replica(&server);
    let _: () = cmd(&mut c, &["set", "k", "v"]);
    let offset = ferrite_tests::info_int(&mut c, "replication", "master_repl_offset");
    let mut blocked = server.raw_conn();
    blocked.send(b"SHUTDOWN NOSAVE\r\n");
    let asked = link.read_until(|b| b.ends_with(b"*\r\n"), Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&asked).contains("GETACK"));
    // Everything up to and with the GETACK.
    let end = offset as usize + b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n".len();
    link.send(format!("REPLCONF ACK {end}\r\n").as_bytes());
    let started = Instant::now();
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
    assert!(started.elapsed() < Duration::from_secs(5));
    // A replica that never answers: the timeout ends the wait.
    let mut server = TestServer::start();
    let mut c = server.client();
    let _: () = cmd(&mut c, &["config", "set", "shutdown-timeout", "1"]);
    let _link = manual_replica(&server);
    let _: () = cmd(&mut c, &["set", "k", "v"]);
    let mut blocked = server.raw_conn();
    let started = Instant::now();
    blocked.send(b"SHUTDOWN NOSAVE\r\n");
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
    assert!(started.elapsed() >= Duration::from_millis(900));
    // NOW: no wait.
    let mut server = TestServer::start();
    let mut c = server.client();
    let _link = manual_replica(&server);
    let _: () = cmd(&mut c, &["set", "k", "v"]);
    let mut now = server.raw_conn();
    now.send(b"SHUTDOWN NOW NOSAVE\r\n");
    assert!(server.wait_exit(Duration::from_secs(3)).is_some());
    // Never inside MULTI (Redis's `no-multi` flag).
    let server = TestServer::start();
    let mut c = server.client();
    let _: () = cmd(&mut c, &["multi"]);
    let e = err(&mut c, &["shutdown"]);
    assert_eq!(e, "ERR Command not allowed inside a transaction");
}

/// `bind-source-addr` is the local address of the link to the primary, and
/// `replica-lazy-flush` frees the replaced dataset in the background.
#[test]
fn the_link_binds_its_source_address_and_flushes_lazily() {
    // 127.0.0.2 is not 127.0.0.1: protected mode would refuse the link,
    // as Redis's would.
    let primary = TestServer::with_args(&["--protected-mode", "no"]);
    let replica = TestServer::start();
    let mut p = primary.client();
    let mut r = replica.client();
    let _: () = cmd(&mut p, &["set", "k", "v"]);
    let _: String = cmd(&mut r, &["debug", "populate", "500"]);
    let _: () = cmd(&mut r, &["config", "set", "bind-source-addr", "127.0.0.2"]);
    let _: () = cmd(&mut r, &["config", "set", "replica-lazy-flush", "yes"]);
    let port = primary.port().to_string();
    let _: () = cmd(&mut r, &["replicaof", "127.0.0.1", &port]);
    wait_info(&mut r, "master_link_status", "up");
    let info: String = cmd(&mut p, &["info", "replication"]);
    assert!(info.contains("slave0:ip=127.0.0.2,"), "{info}");
    assert_eq!(cmd::<i64>(&mut r, &["dbsize"]), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ferrite_tests::info_int(&mut r, "memory", "lazyfreed_objects") < 500 {
        assert!(
            Instant::now() < deadline,
            "the old keys were not freed lazily"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A replica is listed from its `SYNC` on, as Redis lists it: `send_bulk`
/// while its snapshot is being written (here it does not read it), then
/// `online`. Only online replicas count for `WAIT` and `FAILOVER`, and
/// only they are in `ROLE`.
#[test]
fn a_replica_receiving_its_snapshot_is_listed_as_send_bulk_until_online() {
    let s = TestServer::with_args(&["--enable-debug-command", "yes"]);
    let mut c = s.client();
    // A snapshot far larger than the socket buffers.
    let _: String = cmd(&mut c, &["DEBUG", "POPULATE", "300000", "key", "100"]);
    let mut link = s.raw_conn();
    link.send(b"REPLCONF listening-port 7777\r\nSYNC\r\n");
    let slave0 = |c: &mut redis::Connection| -> String {
        let info: String = cmd(c, &["INFO", "replication"]);
        ferrite_tests::info_value(&info, "slave0")
            .unwrap_or_default()
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !slave0(&mut c).contains("state=send_bulk") {
        assert!(Instant::now() < deadline, "{}", slave0(&mut c));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(slave0(&mut c).starts_with("ip=127.0.0.1,port=7777,state=send_bulk,offset=0,"));
    wait_info(&mut c, "connected_slaves", "1");
    let acked: i64 = cmd(&mut c, &["WAIT", "1", "50"]);
    assert_eq!(acked, 0);
    assert_eq!(
        err(&mut c, &["FAILOVER", "TO", "127.0.0.1", "7777"]),
        "ERR FAILOVER target replica is not online."
    );
    // ROLE lists online replicas only, as Redis's.
    let role: redis::Value = cmd(&mut c, &["ROLE"]);
    assert!(!format!("{role:?}").contains("7777"), "{role:?}");

    // +OK, then the snapshot ($<len> and the payload; WAIT's GETACK may
    // follow it in the stream).
    let mut got = link.read_n(5);
    assert!(got.starts_with(b"+OK\r\n"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        got.extend(link.read_until(|b| !b.is_empty(), Duration::from_millis(200)));
        let eol = got[5..].windows(2).position(|w| w == b"\r\n");
        let len = eol.and_then(|e| {
            std::str::from_utf8(&got[6..5 + e])
                .ok()?
                .parse::<usize>()
                .ok()
        });
        if let (Some(e), Some(len)) = (eol, len) {
            if got.len() >= 5 + e + 2 + len {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no snapshot");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !slave0(&mut c).contains("state=online") {
        assert!(Instant::now() < deadline, "{}", slave0(&mut c));
        std::thread::sleep(Duration::from_millis(10));
    }
    let role: redis::Value = cmd(&mut c, &["ROLE"]);
    assert!(format!("{role:?}").contains("7777"), "{role:?}");
}

/// A client in `WAIT` with no replica to acknowledge: the replies before
/// it in its pipeline arrive while it waits (Redis writes a blocked
/// client's replies), and `CLIENT KILL` ends the wait and the connection.
#[test]
fn wait_writes_earlier_replies_and_can_be_killed() {
    let server = TestServer::start();
    let mut admin = server.client();
    let mut c = server.raw_conn();
    c.send(b"CLIENT SETNAME waiter\r\nSET k v\r\nWAIT 1 0\r\n");
    let got = c.read_until(|b| b.ends_with(b"+OK\r\n+OK\r\n"), Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n+OK\r\n");
    let list: String = cmd(&mut admin, &["CLIENT", "LIST"]);
    let line = list
        .lines()
        .find(|l| l.contains("name=waiter"))
        .expect("waiter listed");
    assert!(
        line.contains("cmd=wait") && line.contains("flags=b "),
        "{line}"
    );
    let info: redis::InfoDict = redis::cmd("INFO")
        .arg("clients")
        .query(&mut admin)
        .expect("info");
    assert_eq!(info.get::<i64>("blocked_clients"), Some(1));
    let id = line
        .split(' ')
        .find_map(|f| f.strip_prefix("id="))
        .expect("id");
    let killed: i64 = cmd(&mut admin, &["CLIENT", "KILL", "ID", id]);
    assert_eq!(killed, 1);
    assert!(c.is_closed(), "the killed client's connection closes");
}
