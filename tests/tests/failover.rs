//! `FAILOVER`: a primary hands its role to a replica with every write
//! (Redis 7.0's coordinated failover), between Ferrite servers, and with a
//! real Redis on either side when `redis-server` is installed.

use std::time::{Duration, Instant};

use ferrite_tests::{
    attach_replica_at, cmd, err, free_port, has_binary, info_field, repl_offset, start_redis, text,
    wait_info, wait_value, TestServer,
};

fn failover_state(c: &mut redis::Connection) -> String {
    info_field(c, "replication", "master_failover_state")
}

/// `ROLE`'s first element.
fn role(c: &mut redis::Connection) -> String {
    let r: Vec<redis::Value> = cmd(c, &["role"]);
    redis::from_redis_value(&r[0]).unwrap()
}

fn wait_role(c: &mut redis::Connection, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while role(c) != want {
        assert!(Instant::now() < deadline, "role never became {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn failover_refuses_what_redis_refuses() {
    let server = TestServer::start();
    let mut c = server.client();
    assert_eq!(
        err(&mut c, &["failover"]),
        "ERR FAILOVER requires connected replicas."
    );
    assert_eq!(
        err(&mut c, &["failover", "abort"]),
        "ERR No failover in progress."
    );
    for args in [
        &["failover", "bogus"][..],
        &["failover", "timeout"],
        &["failover", "to", "127.0.0.1"],
        &["failover", "force", "force"],
        &["failover", "timeout", "5", "timeout", "5"],
        &["failover", "abort", "timeout", "5"],
    ] {
        assert_eq!(err(&mut c, args), "ERR syntax error", "{args:?}");
    }
    assert_eq!(
        err(&mut c, &["failover", "timeout", "0"]),
        "ERR FAILOVER timeout must be greater than 0"
    );
    assert_eq!(
        err(&mut c, &["failover", "timeout", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["failover", "to", "127.0.0.1", "port"]),
        "ERR value is not an integer or out of range"
    );

    let _link = attach_replica_at(&server, 4250);
    assert_eq!(
        err(&mut c, &["failover", "force", "timeout", "100"]),
        "ERR FAILOVER with force option requires both a timeout and target HOST and IP."
    );
    assert_eq!(
        err(&mut c, &["failover", "to", "127.0.0.1", "4251"]),
        "ERR FAILOVER target HOST and PORT is not a replica."
    );

    // A replica cannot hand over a role it does not have.
    let replica = TestServer::with_args(&["--replicaof", "127.0.0.1", &server.port().to_string()]);
    let mut r = replica.client();
    assert_eq!(
        err(&mut r, &["failover"]),
        "ERR FAILOVER is not valid when server is a replica."
    );
    // PSYNC FAILOVER: only a replica of the same history takes over.
    let mut raw = replica.raw_conn();
    raw.send(b"PSYNC 0123456789012345678901234567890123456789 1 FAILOVER\r\n");
    assert_eq!(
        text(&raw.read_idle()),
        "-ERR PSYNC FAILOVER replid must match my replid.\r\n"
    );
    let mut raw = server.raw_conn();
    raw.send(b"PSYNC ? -1 FAILOVER\r\n");
    assert_eq!(
        text(&raw.read_idle()),
        "-ERR PSYNC FAILOVER can't be sent to a master.\r\n"
    );
}

/// While it waits for a replica to catch up, a failover holds writes
/// (reads go on), refuses what would change the replication set-up, and
/// `FAILOVER ABORT` lets the held writes run.
#[test]
fn a_waiting_failover_holds_writes_until_aborted() {
    let server = TestServer::start();
    let mut c = server.client();
    // A replica that never acknowledges anything.
    let _link = attach_replica_at(&server, 4260);
    let _: () = cmd(&mut c, &["set", "k", "v"]);
    let _: () = cmd(&mut c, &["failover", "to", "127.0.0.1", "4260"]);
    assert_eq!(failover_state(&mut c), "waiting-for-sync");
    // WAIT asks for no acknowledgement meanwhile: the stream must not grow.
    let offset = repl_offset(&mut c);
    assert_eq!(cmd::<i64>(&mut c, &["wait", "1", "100"]), 0);
    assert_eq!(repl_offset(&mut c), offset);
    let mut writer = server.raw_conn();
    writer.send(b"SET k v2\r\n");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cmd::<String>(&mut c, &["get", "k"]), "v");
    assert_eq!(
        err(&mut c, &["failover"]),
        "ERR FAILOVER already in progress."
    );
    assert_eq!(
        err(&mut c, &["replicaof", "127.0.0.1", "4260"]),
        "ERR REPLICAOF not allowed while failing over."
    );
    let mut sync = server.raw_conn();
    sync.send(b"PSYNC ? -1\r\n");
    assert_eq!(
        text(&sync.read_idle()),
        "-NOMASTERLINK Can't SYNC while failing over\r\n"
    );
    // CLIENT UNPAUSE does not lift a failover's pause.
    let _: () = cmd(&mut c, &["client", "unpause"]);
    assert!(writer.read_idle().is_empty());

    let _: () = cmd(&mut c, &["failover", "abort"]);
    assert_eq!(text(&writer.read_idle()), "+OK\r\n");
    // The acknowledgement the WAIT wanted is asked for once the pause
    // ended, after the held SET.
    let getack = ferrite_tests::stream_len(&["REPLCONF", "GETACK", "*"]);
    let set = ferrite_tests::stream_len(&["SET", "k", "v2"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while repl_offset(&mut c) != offset + set + getack {
        assert!(Instant::now() < deadline, "no GETACK after the pause");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(failover_state(&mut c), "no-failover");
    assert_eq!(role(&mut c), "master");
}

/// Without `FORCE` a failover gives up at its timeout; with it, it fails
/// over to the target anyway, and `FAILOVER ABORT` then makes the server
/// a primary again, on a new history.
#[test]
fn a_failover_times_out_or_forces_its_way() {
    let server = TestServer::start();
    let mut c = server.client();
    let _link = attach_replica_at(&server, 4270);
    let _: () = cmd(&mut c, &["set", "k", "v"]);
    let _: () = cmd(&mut c, &["failover", "timeout", "100"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while failover_state(&mut c) != "no-failover" {
        assert!(Instant::now() < deadline, "the failover never timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(role(&mut c), "master");
    let _: () = cmd(&mut c, &["set", "k", "v2"]);

    // Forced to a "replica" whose port serves nothing: the server follows
    // it and keeps trying to hand over until aborted.
    let replid = info_field(&mut c, "replication", "master_replid");
    let _: () = cmd(
        &mut c,
        &[
            "failover",
            "to",
            "127.0.0.1",
            "4270",
            "force",
            "timeout",
            "100",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while failover_state(&mut c) != "failover-in-progress" {
        assert!(Instant::now() < deadline, "the failover never went on");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(role(&mut c), "slave");
    let _: () = cmd(&mut c, &["failover", "abort"]);
    assert_eq!(failover_state(&mut c), "no-failover");
    assert_eq!(role(&mut c), "master");
    assert_eq!(info_field(&mut c, "replication", "master_replid2"), replid);
    let _: () = cmd(&mut c, &["set", "k", "v3"]);
}

/// The whole handover between Ferrite servers: the target becomes the
/// primary by a partial resync, the old primary its replica, and the
/// other replica stays with the old primary, which now relays the new
/// primary's stream. Writes held during the wait are refused afterwards
/// (`READONLY`), as on Redis.
#[test]
fn failover_hands_the_primary_role_to_a_caught_up_replica() {
    let a = TestServer::start();
    let port_a = a.port().to_string();
    let b = TestServer::with_args(&["--replicaof", "127.0.0.1", &port_a]);
    let c = TestServer::with_args(&["--replicaof", "127.0.0.1", &port_a]);
    let (mut pa, mut pb, mut pc) = (a.client(), b.client(), c.client());
    wait_info(&mut pb, "master_link_status", "up");
    wait_info(&mut pc, "master_link_status", "up");
    let _: () = cmd(&mut pa, &["set", "k", "1"]);
    let old_id = info_field(&mut pa, "replication", "master_replid");

    let _: () = cmd(
        &mut pa,
        &["failover", "to", "127.0.0.1", &b.port().to_string()],
    );
    wait_role(&mut pb, "master");
    wait_role(&mut pa, "slave");
    wait_info(&mut pa, "master_failover_state", "no-failover");
    wait_info(&mut pa, "master_link_status", "up");
    assert_eq!(
        ferrite_tests::info_int(&mut pb, "stats", "sync_partial_ok"),
        1
    );
    assert_eq!(ferrite_tests::info_int(&mut pb, "stats", "sync_full"), 0);
    // The new history continues the old one.
    assert_eq!(info_field(&mut pb, "replication", "master_replid2"), old_id);
    assert_eq!(info_field(&mut pa, "replication", "master_replid2"), old_id);
    assert_eq!(
        err(&mut pa, &["set", "k", "2"]),
        "READONLY You can't write against a read only replica."
    );
    let _: () = cmd(&mut pb, &["set", "k", "3"]);
    wait_value(&mut pa, "k", "3");
    wait_value(&mut pc, "k", "3");
    let offset = repl_offset(&mut pb);
    wait_info(&mut pc, "master_repl_offset", &offset.to_string());
    assert_eq!(role(&mut pc), "slave");
}

#[test]
fn failover_between_ferrite_and_a_real_redis() {
    if !has_binary("redis-server") {
        return;
    }
    // Ferrite hands over to a Redis replica.
    let f = TestServer::start();
    let mut pf = f.client();
    let rport = free_port();
    let (_redis, mut pr) = start_redis(rport, &["--replicaof", "127.0.0.1", &f.port().to_string()]);
    wait_info(&mut pr, "master_link_status", "up");
    let _: () = cmd(&mut pf, &["set", "from", "ferrite"]);
    let _: () = cmd(
        &mut pf,
        &["failover", "to", "127.0.0.1", &rport.to_string()],
    );
    wait_role(&mut pr, "master");
    wait_role(&mut pf, "slave");
    wait_info(&mut pf, "master_link_status", "up");
    assert_eq!(cmd::<String>(&mut pr, &["get", "from"]), "ferrite");
    let _: () = cmd(&mut pr, &["set", "from", "redis"]);
    wait_value(&mut pf, "from", "redis");

    // And the Redis primary hands the role back to Ferrite.
    let _: () = cmd(&mut pr, &["failover"]);
    wait_role(&mut pf, "master");
    wait_role(&mut pr, "slave");
    wait_info(&mut pr, "master_link_status", "up");
    let _: () = cmd(&mut pf, &["set", "from", "ferrite again"]);
    wait_value(&mut pr, "from", "ferrite again");
    assert_eq!(
        ferrite_tests::info_int(&mut pf, "stats", "sync_partial_ok"),
        1
    );
}
