//! Replication, primary side: `SYNC`/`PSYNC` full resyncs and the stream
//! that follows. The real-Redis tests (a Redis replica of Ferrite, a
//! Redis started on Ferrite's RDB) are skipped when `redis-server` is absent.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrite_tests::{cmd, RawConn, TestServer};

fn has(bin: &str) -> bool {
    let ok = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("skipped: {bin} is not on PATH");
    }
    ok
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

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

struct RedisChild(Child);

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis(port: u16, args: &[&str]) -> (RedisChild, redis::Connection) {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--bind",
            "127.0.0.1",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let child = RedisChild(child);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(c) = client.get_connection() {
            return (child, c);
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_real_redis_replica_gets_the_snapshot_and_the_stream() {
    if !has("redis-server") {
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
    if !has("redis-server") || !has("redis-cli") {
        return;
    }
    let server = TestServer::start();
    let mut c = server.client();
    populate(&mut c, "k:");
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
