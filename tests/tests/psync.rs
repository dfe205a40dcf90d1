//! Partial resynchronization (`PSYNC replid offset` answered `+CONTINUE`
//! from the backlog) and its fallbacks to a full resync, on the wire and
//! with real replicas (Ferrite, and Redis when `redis-server` is there).

use std::time::{Duration, Instant};

use ferrite_tests::{
    attach_replica, cmd, free_port, has_binary, info_field, info_int, repl_offset, start_redis,
    text, wait_info, wait_value, RawConn, TestServer,
};

/// Sends `PSYNC replid offset` (after the capabilities a Redis replica
/// announces when `psync2` is set) and reads until `want` has arrived:
/// all of the reply, or its start for a `+FULLRESYNC`.
fn psync(link: &mut RawConn, replid: &str, offset: i64, psync2: bool, want: &str) {
    let capa = if psync2 {
        "REPLCONF capa eof capa psync2\r\n"
    } else {
        "REPLCONF capa eof\r\n"
    };
    link.send(format!("{capa}PSYNC {replid} {offset}\r\n").as_bytes());
    let got = read_at_least(link, want.len());
    if want.ends_with("+FULLRESYNC") {
        assert!(got.starts_with(want), "{got:?}");
    } else {
        assert_eq!(got, want);
    }
}

fn read_at_least(link: &mut RawConn, n: usize) -> String {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < n && Instant::now() < deadline {
        got.extend(link.read_until(|b| !b.is_empty(), Duration::from_millis(200)));
    }
    text(&got)
}

/// Reads until at least `want.len()` bytes came, then compares.
fn expect(link: &mut RawConn, want: &str) {
    assert_eq!(read_at_least(link, want.len()), want);
}

fn stats(c: &mut redis::Connection) -> (i64, i64, i64) {
    (
        info_int(c, "stats", "sync_full"),
        info_int(c, "stats", "sync_partial_ok"),
        info_int(c, "stats", "sync_partial_err"),
    )
}

#[test]
fn psync_continues_from_the_requested_offset_in_the_backlog() {
    let server = TestServer::start();
    let mut c = server.client();
    // The backlog exists from the first replica on.
    let _first = attach_replica(&server);
    let replid = info_field(&mut c, "replication", "master_replid");
    let before = repl_offset(&mut c);
    let _: () = cmd(&mut c, &["set", "k", "v"]);

    // The replica has everything up to `before`: it gets the rest, the
    // SELECT the stream already carried included.
    let mut link = server.raw_conn();
    psync(
        &mut link,
        &replid,
        before + 1,
        true,
        &format!(
            "+OK\r\n+CONTINUE {replid}\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
        ),
    );
    // Then the stream goes on, with no SELECT forced for the new link.
    let _: () = cmd(&mut c, &["set", "k2", "v2"]);
    expect(&mut link, "*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$2\r\nv2\r\n");

    // A replica that has everything gets nothing but the +CONTINUE, and
    // one without the psync2 capability a +CONTINUE without the id.
    let end = repl_offset(&mut c);
    let mut quiet = server.raw_conn();
    psync(&mut quiet, &replid, end + 1, false, "+OK\r\n+CONTINUE\r\n");
    assert!(quiet.read_idle().is_empty());

    assert_eq!(stats(&mut c), (1, 2, 0));
    let info: String = cmd(&mut c, &["info", "replication"]);
    assert!(info.contains("connected_slaves:3\r\n"), "{info}");
}

#[test]
fn psync_falls_back_to_a_full_resync_when_it_cannot_continue() {
    let server = TestServer::with_args(&["--repl-backlog-size", "16384"]);
    let mut c = server.client();
    // No backlog yet: a full resync even with the right id.
    let replid = info_field(&mut c, "replication", "master_replid");
    let mut link = server.raw_conn();
    psync(&mut link, &replid, 1, true, "+OK\r\n+FULLRESYNC");
    drop(link);
    assert_eq!(stats(&mut c), (1, 0, 1));

    // `?` asks for a full resync: not counted as a refused partial one.
    let _keep = attach_replica(&server);
    let mut link = server.raw_conn();
    psync(&mut link, "?", -1, true, "+OK\r\n+FULLRESYNC");
    drop(link);
    assert_eq!(stats(&mut c), (3, 0, 1));

    // Another history, an offset past the end, an offset the backlog
    // no longer holds.
    let big = "x".repeat(40_000);
    let _: () = cmd(&mut c, &["set", "big", &big]);
    let end = repl_offset(&mut c);
    for (id, off) in [
        ("0123456789012345678901234567890123456789", end + 1),
        (replid.as_str(), end + 2),
        (replid.as_str(), 1),
    ] {
        let mut link = server.raw_conn();
        psync(&mut link, id, off, true, "+OK\r\n+FULLRESYNC");
    }
    assert_eq!(stats(&mut c), (6, 0, 4));

    let mut link = server.raw_conn();
    link.send(b"PSYNC ? notanumber\r\n");
    expect(
        &mut link,
        "-ERR value is not an integer or out of range\r\n",
    );
}

/// Drops the replica's link (`CLIENT KILL TYPE master`), writes while it
/// is down, and checks that the replica caught up by a partial resync.
fn reconnect_partially(p: &mut redis::Connection, r: &mut redis::Connection) {
    let _: () = cmd(p, &["set", "before", "1"]);
    wait_value(r, "before", "1");
    let (full, ok, _) = stats(p);
    let n: i64 = cmd(r, &["client", "kill", "type", "master"]);
    assert_eq!(n, 1);
    let _: () = cmd(p, &["set", "during", "2"]);
    wait_value(r, "during", "2");
    let _: i64 = cmd(p, &["incr", "after"]);
    wait_value(r, "after", "1");
    let (full2, ok2, err2) = stats(p);
    assert_eq!((full2, ok2, err2), (full, ok + 1, 0), "full, ok, err");
    let offset = repl_offset(p);
    wait_info(r, "master_repl_offset", &offset.to_string());
}

#[test]
fn a_ferrite_replica_continues_after_its_link_drops() {
    let primary = TestServer::start();
    let port = primary.port().to_string();
    // Started as a replica: it has no history of its own to offer, so it
    // asks for a full resync (`PSYNC ? -1`), not counted as refused.
    let replica = TestServer::with_args(&["--replicaof", "127.0.0.1", &port]);
    let mut p = primary.client();
    let mut r = replica.client();
    wait_info(&mut r, "master_link_status", "up");
    assert_eq!(stats(&mut p), (1, 0, 0));
    reconnect_partially(&mut p, &mut r);
    // The replica keeps a backlog of the stream it applies.
    let info: String = cmd(&mut r, &["info", "replication"]);
    assert!(info.contains("repl_backlog_active:1\r\n"), "{info}");

    // A replica of the replica continues from the replica's backlog too.
    let sub = TestServer::start();
    let mut s = sub.client();
    let _: () = cmd(
        &mut s,
        &["replicaof", "127.0.0.1", &replica.port().to_string()],
    );
    wait_info(&mut s, "master_link_status", "up");
    let _: () = cmd(&mut p, &["set", "chained", "1"]);
    wait_value(&mut s, "chained", "1");
    let n: i64 = cmd(&mut s, &["client", "kill", "type", "master"]);
    assert_eq!(n, 1);
    let _: () = cmd(&mut p, &["set", "chained", "2"]);
    wait_value(&mut s, "chained", "2");
    assert_eq!(info_int(&mut r, "stats", "sync_partial_ok"), 1);
}

#[test]
fn a_real_redis_replica_continues_after_its_link_drops() {
    if !has_binary("redis-server") {
        return;
    }
    let primary = TestServer::start();
    let mut p = primary.client();
    let port = primary.port().to_string();
    let (_redis, mut r) = start_redis(free_port(), &["--replicaof", "127.0.0.1", &port]);
    wait_info(&mut r, "master_link_status", "up");
    reconnect_partially(&mut p, &mut r);
}

/// Stops `server` with `SHUTDOWN SAVE` (which waits for its replicas to
/// acknowledge everything, then saves) and waits for it to exit.
fn shutdown_saving(mut server: TestServer) {
    let mut c = server.client();
    let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut c);
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
}

/// A primary restarted from its RDB file keeps the saved history as its
/// previous id: its replica continues with a partial resync.
#[test]
fn a_restarted_primary_continues_its_replicas_history() {
    let dir = ferrite_tests::tempdir("psync-primary-restart");
    let primary = TestServer::in_dir(&dir, &[]);
    let replica = TestServer::start();
    let mut r = replica.client();
    let mut p = primary.client();
    let _: () = cmd(
        &mut r,
        &["replicaof", "127.0.0.1", &primary.port().to_string()],
    );
    wait_info(&mut r, "master_link_status", "up");
    let _: () = cmd(&mut p, &["set", "k", "1"]);
    let _: i64 = cmd(&mut p, &["incr", "n"]);
    wait_value(&mut r, "n", "1");
    let old_id = info_field(&mut p, "replication", "master_replid");
    let before = repl_offset(&mut p);
    drop(p);
    // The shutdown asks the replica for an acknowledgement (a GETACK in
    // the stream), then saves.
    shutdown_saving(primary);

    let primary = TestServer::in_dir(&dir, &[]);
    let mut p = primary.client();
    assert_eq!(info_field(&mut p, "replication", "master_replid2"), old_id);
    let offset = repl_offset(&mut p);
    assert!(offset > before, "{offset} {before}");
    assert_eq!(
        info_field(&mut p, "replication", "second_repl_offset"),
        (offset + 1).to_string()
    );
    let _: () = cmd(
        &mut r,
        &["replicaof", "127.0.0.1", &primary.port().to_string()],
    );
    wait_info(&mut r, "master_link_status", "up");
    assert_eq!(stats(&mut p), (0, 1, 0));
    let _: i64 = cmd(&mut p, &["incr", "n"]);
    wait_value(&mut r, "n", "2");
    assert_eq!(cmd::<String>(&mut r, &["get", "k"]), "1");
}

/// A replica restarted from its RDB file offers the saved history in its
/// first `PSYNC`, and its primary continues it.
#[test]
fn a_restarted_replica_continues_from_its_rdb_file() {
    let primary = TestServer::start();
    let mut p = primary.client();
    let port = primary.port().to_string();
    let dir = ferrite_tests::tempdir("psync-replica-restart");
    let replica = TestServer::in_dir(&dir, &["--replicaof", "127.0.0.1", &port]);
    let mut r = replica.client();
    wait_info(&mut r, "master_link_status", "up");
    let _: () = cmd(&mut p, &["select", "3"]);
    let _: () = cmd(&mut p, &["set", "k", "1"]);
    let _: i64 = cmd(&mut p, &["incr", "n"]);
    let _: () = cmd(&mut r, &["select", "3"]);
    wait_value(&mut r, "n", "1");
    drop(r);
    shutdown_saving(replica);
    // Written while the replica is down, in the database the stream had
    // selected: the continued stream has no SELECT before it.
    let _: i64 = cmd(&mut p, &["incr", "n"]);

    let replica = TestServer::in_dir(&dir, &["--replicaof", "127.0.0.1", &port]);
    let mut r = replica.client();
    wait_info(&mut r, "master_link_status", "up");
    let _: () = cmd(&mut r, &["select", "3"]);
    wait_value(&mut r, "n", "2");
    assert_eq!(stats(&mut p), (1, 1, 0));
}

/// The same with a real Redis primary: Ferrite's file carries Redis's
/// history, and Redis continues it.
#[test]
fn a_ferrite_replica_of_real_redis_continues_after_a_restart() {
    if !has_binary("redis-server") {
        return;
    }
    let rport = free_port();
    let (_redis, mut p) = start_redis(rport, &[]);
    let dir = ferrite_tests::tempdir("psync-replica-of-redis");
    let args = ["--replicaof", "127.0.0.1", &rport.to_string()];
    let replica = TestServer::in_dir(&dir, &args);
    let mut r = replica.client();
    wait_info(&mut r, "master_link_status", "up");
    let _: i64 = cmd(&mut p, &["incr", "n"]);
    wait_value(&mut r, "n", "1");
    drop(r);
    shutdown_saving(replica);
    let _: i64 = cmd(&mut p, &["incr", "n"]);
    let replica = TestServer::in_dir(&dir, &args);
    let mut r = replica.client();
    wait_value(&mut r, "n", "2");
    assert_eq!(stats(&mut p), (1, 1, 0));
}

/// A replica moved to a sibling replica offers the offset it has applied,
/// not the one it had when its link last dropped.
#[test]
fn a_replica_moved_to_a_sibling_continues_from_what_it_applied() {
    let primary = TestServer::start();
    let port = primary.port().to_string();
    let r = TestServer::with_args(&["--replicaof", "127.0.0.1", &port]);
    let q = TestServer::with_args(&["--replicaof", "127.0.0.1", &port]);
    let (mut p, mut pr, mut pq) = (primary.client(), r.client(), q.client());
    wait_info(&mut pr, "master_link_status", "up");
    wait_info(&mut pq, "master_link_status", "up");
    let _: i64 = cmd(&mut p, &["incr", "x"]);
    wait_value(&mut pr, "x", "1");
    let n: i64 = cmd(&mut pr, &["client", "kill", "type", "master"]);
    assert_eq!(n, 1);
    for _ in 0..3 {
        let _: i64 = cmd(&mut p, &["incr", "x"]);
    }
    wait_value(&mut pr, "x", "4");
    wait_value(&mut pq, "x", "4");
    let _: () = cmd(&mut pr, &["replicaof", "127.0.0.1", &q.port().to_string()]);
    wait_info(&mut pr, "master_link_status", "up");
    assert_eq!(info_int(&mut pq, "stats", "sync_partial_ok"), 1);
    let _: i64 = cmd(&mut p, &["incr", "x"]);
    wait_value(&mut pr, "x", "5");
    let offset = repl_offset(&mut p);
    wait_info(&mut pr, "master_repl_offset", &offset.to_string());
}

/// A link cut inside a transaction resumes from its `MULTI`: the queued
/// commands were not applied, so they are asked for again (a hand-driven
/// primary checks the offset in the replica's `PSYNC`).
#[test]
fn a_link_cut_inside_a_transaction_resumes_from_its_multi() {
    use std::io::{Read, Write};
    // An empty snapshot, from a server of our own.
    let source = TestServer::start();
    let mut link = source.raw_conn();
    link.send(b"SYNC\r\n");
    let head = link.read_until(
        |b| b.windows(2).any(|w| w == b"\r\n"),
        Duration::from_secs(5),
    );
    let eol = head.windows(2).position(|w| w == b"\r\n").unwrap();
    let len: usize = text(&head[1..eol]).parse().unwrap();
    let mut rdb = head[eol + 2..].to_vec();
    while rdb.len() < len {
        rdb.extend(link.read_until(|b| !b.is_empty(), Duration::from_secs(1)));
    }

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let replica = TestServer::with_args(&["--replicaof", "127.0.0.1", &port]);
    let id = "ab".repeat(20);
    // Answers the handshake (the replica sends one command at a time and
    // waits for each reply) and returns the PSYNC's id and offset.
    let handshake = |s: &mut std::net::TcpStream| -> String {
        let mut buf = [0u8; 4096];
        let mut got = String::new();
        loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "replica closed after {got:?}");
            got.push_str(&text(&buf[..n]));
            if let Some(at) = got.find("PSYNC") {
                let parts: Vec<&str> = got[at..].split("\r\n").collect();
                if parts.len() >= 5 {
                    return format!("{} {}", parts[2], parts[4]);
                }
            } else if got.ends_with("\r\n") {
                s.write_all(b"+OK\r\n").unwrap();
                got.clear();
            }
        }
    };
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(handshake(&mut s), "? -1");
    s.write_all(format!("+FULLRESYNC {id} 0\r\n${}\r\n", rdb.len()).as_bytes())
        .unwrap();
    s.write_all(&rdb).unwrap();
    let select = "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n";
    let multi = "*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";
    s.write_all(format!("{select}{multi}").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);

    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(handshake(&mut s), format!("{id} {}", select.len() + 1));
    s.write_all(format!("+CONTINUE {id}\r\n{multi}*1\r\n$4\r\nEXEC\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n").as_bytes())
        .unwrap();
    let mut r = replica.client();
    wait_value(&mut r, "b", "2");
    assert_eq!(cmd::<String>(&mut r, &["get", "a"]), "1");
    drop(s);
}

/// Keys that expired while the primary was down are deleted on the
/// replicas that continue its history: the restarted primary puts their
/// `DEL`s into its backlog, as Redis does.
#[test]
fn a_restarted_primary_deletes_what_expired_while_it_was_down() {
    let dir = ferrite_tests::tempdir("psync-restart-expired");
    let primary = TestServer::in_dir(&dir, &[]);
    let replica = TestServer::start();
    let (mut p, mut r) = (primary.client(), replica.client());
    let _: () = cmd(
        &mut r,
        &["replicaof", "127.0.0.1", &primary.port().to_string()],
    );
    wait_info(&mut r, "master_link_status", "up");
    let _: () = cmd(&mut p, &["set", "short", "1", "px", "300"]);
    let _: () = cmd(&mut p, &["set", "long", "1"]);
    wait_value(&mut r, "long", "1");
    drop(p);
    shutdown_saving(primary);
    std::thread::sleep(Duration::from_millis(400));
    let primary = TestServer::in_dir(&dir, &[]);
    let mut p = primary.client();
    assert_eq!(cmd::<i64>(&mut p, &["dbsize"]), 1);
    // A replica keeps an expired key (hidden from reads) until its
    // primary deletes it.
    assert_eq!(cmd::<i64>(&mut r, &["dbsize"]), 2);
    let _: () = cmd(
        &mut r,
        &["replicaof", "127.0.0.1", &primary.port().to_string()],
    );
    wait_info(&mut r, "master_link_status", "up");
    assert_eq!(stats(&mut p), (0, 1, 0));
    let deadline = Instant::now() + Duration::from_secs(10);
    while cmd::<i64>(&mut r, &["dbsize"]) != 1 {
        assert!(Instant::now() < deadline, "the expired key stayed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `repl-backlog-ttl`: a primary that has had no replica for that long
/// frees its backlog and starts a new history, so the old one can only be
/// resumed with a full resync.
#[test]
fn a_backlog_without_replicas_is_freed_after_repl_backlog_ttl() {
    let s = TestServer::with_args(&["--repl-backlog-ttl", "1"]);
    let mut c = s.client();
    let old_id = info_field(&mut c, "replication", "master_replid");
    let mut link = attach_replica(&s);
    let _: () = cmd(&mut c, &["SET", "k", "v"]);
    let offset = repl_offset(&mut c);
    drop(link);
    wait_info(&mut c, "repl_backlog_active", "0");
    let new_id = info_field(&mut c, "replication", "master_replid");
    assert_ne!(new_id, old_id);
    assert_eq!(
        info_field(&mut c, "replication", "master_replid2"),
        "0".repeat(40)
    );
    assert_eq!(info_int(&mut c, "replication", "repl_backlog_histlen"), 0);
    // The offset stays; writes are no longer recorded.
    let _: () = cmd(&mut c, &["SET", "k", "w"]);
    assert_eq!(repl_offset(&mut c), offset);
    link = s.raw_conn();
    psync(&mut link, &old_id, offset + 1, true, "+OK\r\n+FULLRESYNC");
    wait_info(&mut c, "repl_backlog_active", "1");
}
