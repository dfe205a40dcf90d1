//! Transactions: MULTI/EXEC/DISCARD queueing and errors, WATCH aborts,
//! atomicity under concurrent clients, and how a transaction reaches the
//! propagation stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrite_tests::{cmd, err, resp, text, TestServer};
use redis::{Connection, Value};

fn setup() -> (TestServer, Connection) {
    let server = TestServer::start();
    let con = server.client();
    (server, con)
}

fn query(con: &mut Connection, args: &[&str]) -> Value {
    cmd(con, args)
}

fn ok(con: &mut Connection, args: &[&str]) {
    assert_eq!(cmd::<String>(con, args), "OK", "{args:?}");
}

fn queued(con: &mut Connection, args: &[&str]) {
    assert_eq!(cmd::<String>(con, args), "QUEUED", "{args:?}");
}

fn exec_is_nil(con: &mut Connection) -> bool {
    matches!(query(con, &["EXEC"]), Value::Nil)
}

fn repl_offset(con: &mut Connection) -> usize {
    ferrite_tests::repl_offset(con) as usize
}

#[test]
fn queued_commands_run_at_exec_in_order_with_the_exact_wire_format() {
    let s = TestServer::start();
    let mut c = s.raw_conn();
    let mut req = Vec::new();
    for args in [
        &["MULTI"][..],
        &["SET", "a", "1"],
        &["INCR", "a"],
        &["GET", "a"],
        &["RPUSH", "l", "x", "y"],
        &["EXEC"],
    ] {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        req.extend(resp(&v));
    }
    c.send(&req);
    let want =
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*4\r\n+OK\r\n:2\r\n$1\r\n2\r\n:2\r\n";
    let got = c.read_until(|b| b.len() >= want.len(), Duration::from_secs(5));
    assert_eq!(text(&got), want);
}

#[test]
fn nothing_runs_before_exec_and_discard_drops_the_queue() {
    let (s, mut con) = setup();
    let mut other = s.client();
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "k", "v"]);
    assert_eq!(cmd::<Option<String>>(&mut other, &["GET", "k"]), None);
    ok(&mut con, &["DISCARD"]);
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "k"]), None);
    // The connection is out of the transaction.
    assert_eq!(cmd::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn misuse_errors_match_redis() {
    let (_s, mut con) = setup();
    assert_eq!(err(&mut con, &["EXEC"]), "ERR EXEC without MULTI");
    assert_eq!(err(&mut con, &["DISCARD"]), "ERR DISCARD without MULTI");
    ok(&mut con, &["MULTI"]);
    assert_eq!(
        err(&mut con, &["MULTI"]),
        "ERR MULTI calls can not be nested"
    );
    assert_eq!(
        err(&mut con, &["WATCH", "x"]),
        "ERR WATCH inside MULTI is not allowed"
    );
    // Neither error dooms the transaction.
    queued(&mut con, &["SET", "k", "v"]);
    assert_eq!(query(&mut con, &["EXEC"]), Value::Array(vec![Value::Okay]));
}

#[test]
fn a_queueing_error_aborts_the_whole_transaction() {
    let (_s, mut con) = setup();
    for bad in [&["NOSUCHCOMMAND", "x"][..], &["GET"], &["SHUTDOWN"]] {
        ok(&mut con, &["MULTI"]);
        queued(&mut con, &["SET", "a", "1"]);
        let e = err(&mut con, bad);
        assert!(e.starts_with("ERR"), "{bad:?}: {e}");
        if bad[0] == "SHUTDOWN" {
            assert_eq!(e, "ERR Command not allowed inside a transaction");
        }
        queued(&mut con, &["SET", "b", "2"]);
        assert_eq!(
            err(&mut con, &["EXEC"]),
            "EXECABORT Transaction discarded because of previous errors."
        );
        assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "a", "b"]), 0, "{bad:?}");
        assert_eq!(cmd::<String>(&mut con, &["PING"]), "PONG");
    }
}

#[test]
fn a_refused_exec_ends_the_transaction_with_execabort() {
    let (_s, mut con) = setup();
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "a", "1"]);
    assert_eq!(
        err(&mut con, &["EXEC", "extra"]),
        "EXECABORT Transaction discarded because of: ERR wrong number of arguments for 'exec' command"
    );
    assert_eq!(err(&mut con, &["EXEC"]), "ERR EXEC without MULTI");
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "a"]), 0);
}

#[test]
fn runtime_errors_stay_in_their_slot() {
    let s = TestServer::start();
    let mut c = s.raw_conn();
    let mut req = Vec::new();
    for args in [
        &["MULTI"][..],
        &["SET", "k", "notanumber"],
        &["INCR", "k"],
        &["SET", "j", "1"],
        &["EXEC"],
        &["GET", "j"],
    ] {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        req.extend(resp(&v));
    }
    c.send(&req);
    let want = "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n\
                *3\r\n+OK\r\n-ERR value is not an integer or out of range\r\n+OK\r\n$1\r\n1\r\n";
    let got = c.read_until(|b| b.len() >= want.len(), Duration::from_secs(5));
    assert_eq!(text(&got), want);
}

#[test]
fn watch_aborts_on_a_change_by_another_client_or_by_itself() {
    let (s, mut con) = setup();
    let mut other = s.client();
    ok(&mut con, &["SET", "k", "1"]);

    // Untouched: runs.
    ok(&mut con, &["WATCH", "k", "k", "unrelated"]);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["INCR", "k"]);
    assert_eq!(
        query(&mut con, &["EXEC"]),
        Value::Array(vec![Value::Int(2)])
    );

    // Changed by another client.
    ok(&mut con, &["WATCH", "k"]);
    ok(&mut other, &["SET", "k", "10"]);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["INCR", "k"]);
    assert!(exec_is_nil(&mut con));
    assert_eq!(cmd::<String>(&mut con, &["GET", "k"]), "10");

    // Changed by the watching client itself before MULTI.
    ok(&mut con, &["WATCH", "k"]);
    let _: i64 = cmd(&mut con, &["INCR", "k"]);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["INCR", "k"]);
    assert!(exec_is_nil(&mut con));

    // EXEC unwatched: the next transaction runs.
    ok(&mut other, &["SET", "k", "0"]);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["INCR", "k"]);
    assert_eq!(
        query(&mut con, &["EXEC"]),
        Value::Array(vec![Value::Int(1)])
    );
}

#[test]
fn watch_aborts_on_delete_expire_flush_and_swapdb() {
    let (s, mut con) = setup();
    let mut other = s.client();
    type Change = fn(&mut Connection);
    let changes: &[(&str, Change)] = &[
        ("DEL", |c| {
            let _: i64 = cmd(c, &["DEL", "k"]);
        }),
        ("EXPIRE", |c| {
            let _: i64 = cmd(c, &["EXPIRE", "k", "100"]);
        }),
        ("FLUSHDB", |c| ok(c, &["FLUSHDB"])),
        ("FLUSHALL", |c| ok(c, &["FLUSHALL"])),
        ("SWAPDB", |c| ok(c, &["SWAPDB", "0", "1"])),
        ("RENAME", |c| ok(c, &["RENAME", "k", "k2"])),
        ("APPEND", |c| {
            let _: i64 = cmd(c, &["APPEND", "k", "x"]);
        }),
    ];
    for (name, change) in changes {
        ok(&mut con, &["FLUSHALL"]);
        ok(&mut con, &["SET", "k", "v"]);
        ok(&mut con, &["WATCH", "k"]);
        change(&mut other);
        ok(&mut con, &["MULTI"]);
        queued(&mut con, &["PING"]);
        assert!(exec_is_nil(&mut con), "{name}");
    }

    // A missing watched key that a flush leaves missing is no change.
    ok(&mut con, &["FLUSHALL"]);
    ok(&mut con, &["WATCH", "missing"]);
    ok(&mut other, &["FLUSHALL"]);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["PING"]);
    assert_eq!(
        query(&mut con, &["EXEC"]),
        Value::Array(vec![Value::SimpleString("PONG".into())])
    );
}

#[test]
fn a_watched_key_that_expires_before_exec_aborts_it() {
    let (_s, mut con) = setup();
    ok(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    ok(&mut con, &["SET", "k", "v", "PX", "50"]);
    ok(&mut con, &["WATCH", "k"]);
    std::thread::sleep(Duration::from_millis(80));
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["PING"]);
    assert!(exec_is_nil(&mut con));

    // Already expired when watched: its later deletion is no change.
    ok(&mut con, &["SET", "k", "v", "PX", "1"]);
    std::thread::sleep(Duration::from_millis(5));
    ok(&mut con, &["WATCH", "k"]);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "k"]), 0);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["PING"]);
    assert!(!exec_is_nil(&mut con));
}

#[test]
fn unwatch_discard_and_watch_in_another_db() {
    let (s, mut con) = setup();
    let mut other = s.client();
    ok(&mut con, &["WATCH", "k"]);
    ok(&mut other, &["SET", "k", "1"]);
    ok(&mut con, &["UNWATCH"]);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["PING"]);
    assert!(!exec_is_nil(&mut con), "UNWATCH forgets the change");

    ok(&mut con, &["WATCH", "k"]);
    ok(&mut other, &["SET", "k", "2"]);
    ok(&mut con, &["MULTI"]);
    ok(&mut con, &["DISCARD"]);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["PING"]);
    assert!(!exec_is_nil(&mut con), "DISCARD unwatches");

    // The watch stays on database 5's key after SELECT.
    ok(&mut con, &["SELECT", "5"]);
    ok(&mut con, &["WATCH", "k"]);
    ok(&mut con, &["SELECT", "1"]);
    ok(&mut other, &["SET", "k", "other db"]);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["PING"]);
    assert!(!exec_is_nil(&mut con), "a key of another database");
    ok(&mut con, &["SELECT", "5"]);
    ok(&mut con, &["WATCH", "k"]);
    ok(&mut con, &["SELECT", "0"]);
    ok(&mut other, &["SELECT", "5"]);
    ok(&mut other, &["SET", "k", "x"]);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["PING"]);
    assert!(exec_is_nil(&mut con), "the watched key of database 5");
}

#[test]
fn aborted_exec_is_a_null_array_in_both_protocols() {
    let s = TestServer::start();
    for (hello, null) in [("2", "*-1\r\n"), ("3", "_\r\n")] {
        let mut c = s.raw_conn();
        let mut other = s.client();
        c.send(&resp(&[b"HELLO", hello.as_bytes()]));
        let _ = c.read_idle();
        c.send(&resp(&[b"WATCH", b"k"]));
        assert_eq!(text(&c.read_n(5)), "+OK\r\n");
        ok(&mut other, &["SET", "k", hello]);
        c.send(&[resp(&[b"MULTI"]), resp(&[b"EXEC"])].concat());
        let want = format!("+OK\r\n{null}");
        assert_eq!(text(&c.read_n(want.len())), want, "RESP{hello}");
    }
}

#[test]
fn blocking_commands_do_not_block_inside_exec() {
    let (_s, mut con) = setup();
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["BLPOP", "empty", "0"]);
    queued(&mut con, &["BRPOPLPUSH", "empty", "dst", "0"]);
    queued(&mut con, &["BLMOVE", "empty", "dst", "LEFT", "LEFT", "0"]);
    queued(&mut con, &["BLMPOP", "0", "1", "empty", "LEFT"]);
    assert_eq!(
        query(&mut con, &["EXEC"]),
        Value::Array(vec![Value::Nil, Value::Nil, Value::Nil, Value::Nil])
    );
    // Nor does MONITOR take the connection over.
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["MONITOR"]);
    queued(&mut con, &["PING"]);
    let e = redis::cmd("EXEC").query::<Value>(&mut con).unwrap_err();
    assert_eq!(
        ferrite_tests::error_text(&e),
        "ERR MONITOR isn't allowed for DENY BLOCKING client"
    );
    assert_eq!(cmd::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn a_transaction_push_serves_blocked_clients_after_exec() {
    let (s, mut con) = setup();
    let waiter = std::thread::spawn({
        let mut c = s.client();
        move || cmd::<Vec<String>>(&mut c, &["BLPOP", "q", "5"])
    });
    // Wait for the client to block.
    for _ in 0..100 {
        let list: String = cmd(&mut con, &["CLIENT", "LIST"]);
        if list.contains("flags=b") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["RPUSH", "q", "a", "b"]);
    queued(&mut con, &["LPOP", "q"]);
    assert_eq!(
        query(&mut con, &["EXEC"]),
        Value::Array(vec![Value::Int(2), Value::BulkString(b"a".to_vec())])
    );
    // The blocked client sees the state after the whole transaction.
    assert_eq!(waiter.join().unwrap(), vec!["q".to_string(), "b".into()]);
}

#[test]
fn client_list_shows_the_transaction() {
    let (s, mut con) = setup();
    let mut other = s.client();
    let line: String = cmd(&mut con, &["CLIENT", "INFO"]);
    assert!(line.contains(" multi=-1 "), "{line}");
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "a", "1"]);
    queued(&mut con, &["SET", "b", "1"]);
    let all: String = cmd(&mut other, &["CLIENT", "LIST"]);
    assert!(
        all.lines()
            .any(|l| l.contains(" flags=x ") && l.contains(" multi=2 ")),
        "{all}"
    );
    ok(&mut con, &["DISCARD"]);
    let line: String = cmd(&mut con, &["CLIENT", "INFO"]);
    assert!(
        line.contains(" multi=-1 ") && line.contains(" flags=N "),
        "{line}"
    );
    // Run inside EXEC, CLIENT INFO still shows the transaction, as in
    // Redis, which clears CLIENT_MULTI only after the commands ran.
    let reply =
        String::from_utf8_lossy(&s.raw(b"MULTI\r\nCLIENT INFO\r\nPING\r\nEXEC\r\n")).into_owned();
    assert!(
        reply.contains(" flags=x ") && reply.contains(" multi=2 "),
        "{reply}"
    );

    // A doomed WATCH shows as `d`.
    ok(&mut con, &["WATCH", "a"]);
    ok(&mut other, &["SET", "a", "2"]);
    let line: String = cmd(&mut con, &["CLIENT", "INFO"]);
    assert!(line.contains(" flags=d "), "{line}");
    ok(&mut con, &["UNWATCH"]);
}

#[test]
fn transactions_reach_the_stream_as_one_block() {
    let (s, mut con) = setup();
    let _link = ferrite_tests::attach_replica(&s);
    ok(&mut con, &["SET", "warm", "up"]); // the stream's first SELECT
    let enc = |cmds: &[&[&str]]| -> usize {
        cmds.iter()
            .map(|c| {
                let v: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
                resp(&v).len()
            })
            .sum()
    };

    // Read-only, empty and no-effect transactions propagate nothing.
    let before = repl_offset(&mut con);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["GET", "warm"]);
    queued(&mut con, &["DEL", "missing"]);
    let _: Value = query(&mut con, &["EXEC"]);
    ok(&mut con, &["MULTI"]);
    let _: Value = query(&mut con, &["EXEC"]);
    assert_eq!(repl_offset(&mut con), before);

    // One effect goes alone, as in Redis 7.0.
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "a", "1"]);
    queued(&mut con, &["GET", "a"]);
    let _: Value = query(&mut con, &["EXEC"]);
    let after_one = repl_offset(&mut con);
    assert_eq!(after_one - before, enc(&[&["SET", "a", "1"]]));

    // Several are wrapped in MULTI ... EXEC.
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "a", "2"]);
    queued(&mut con, &["SET", "b", "3"]);
    let _: Value = query(&mut con, &["EXEC"]);
    assert_eq!(
        repl_offset(&mut con) - after_one,
        enc(&[
            &["MULTI"],
            &["SET", "a", "2"],
            &["SET", "b", "3"],
            &["EXEC"]
        ])
    );
}

const CLIENTS: usize = 8;
const ROUNDS: usize = 1000;

#[test]
fn optimistic_increments_from_eight_clients_lose_nothing() {
    let s = TestServer::start();
    let mut con = s.client();
    ok(&mut con, &["SET", "counter", "0"]);
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut c = s.client();
            std::thread::spawn(move || {
                let mut retries = 0usize;
                for _ in 0..ROUNDS {
                    loop {
                        ok(&mut c, &["WATCH", "counter"]);
                        let v: i64 = cmd(&mut c, &["GET", "counter"]);
                        ok(&mut c, &["MULTI"]);
                        queued(&mut c, &["SET", "counter", &(v + 1).to_string()]);
                        match query(&mut c, &["EXEC"]) {
                            Value::Nil => retries += 1,
                            Value::Array(r) => {
                                assert_eq!(r, vec![Value::Okay]);
                                break;
                            }
                            other => panic!("EXEC answered {other:?}"),
                        }
                    }
                }
                retries
            })
        })
        .collect();
    let retries: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(
        cmd::<i64>(&mut con, &["GET", "counter"]),
        (CLIENTS * ROUNDS) as i64,
        "lost updates ({retries} retries)"
    );
}

#[test]
fn the_same_loop_with_incr_inside_the_transaction() {
    let s = TestServer::start();
    let mut con = s.client();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut c = s.client();
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    loop {
                        ok(&mut c, &["WATCH", "counter"]);
                        let _: Option<i64> = cmd(&mut c, &["GET", "counter"]);
                        ok(&mut c, &["MULTI"]);
                        queued(&mut c, &["INCR", "counter"]);
                        if !exec_is_nil(&mut c) {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        cmd::<i64>(&mut con, &["GET", "counter"]),
        (CLIENTS * ROUNDS) as i64
    );
}

#[test]
fn other_clients_never_see_half_a_transaction() {
    let s = TestServer::start();
    let mut con = s.client();
    // Eight keys: they spread over several shards.
    let keys: Vec<String> = (0..8).map(|i| format!("key:{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut mset = vec!["MSET"];
    for k in &keys {
        mset.extend([*k, "0"]);
    }
    ok(&mut con, &mset);
    let mget: Vec<&str> = std::iter::once("MGET")
        .chain(keys.iter().copied())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let mut c = s.client();
        let stop = stop.clone();
        let mget: Vec<String> = mget.iter().map(|a| a.to_string()).collect();
        std::thread::spawn(move || {
            let mget: Vec<&str> = mget.iter().map(String::as_str).collect();
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let v: Vec<i64> = cmd(&mut c, &mget);
                assert!(
                    v.iter().all(|x| *x == v[0]),
                    "saw half a transaction: {v:?}"
                );
                reads += 1;
            }
            reads
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let mut c = s.client();
            let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            std::thread::spawn(move || {
                for _ in 0..300 {
                    ok(&mut c, &["MULTI"]);
                    for k in &keys {
                        queued(&mut c, &["INCR", k]);
                    }
                    let _: Value = query(&mut c, &["EXEC"]);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(cmd::<Vec<i64>>(&mut con, &mget), vec![1200; 8]);
}

#[test]
fn whole_server_transactions_do_not_deadlock_with_other_traffic() {
    let s = TestServer::start();
    let workers: Vec<_> = (0..6)
        .map(|t| {
            let mut c = s.client();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let k = format!("k{}", (i * 7 + t) % 50);
                    let j = format!("k{}", (i * 13 + t) % 50);
                    match t % 3 {
                        // Locks everything (SELECT, DBSIZE, MOVE, COPY ... DB).
                        0 => {
                            ok(&mut c, &["MULTI"]);
                            queued(&mut c, &["SET", &k, "1"]);
                            queued(&mut c, &["SELECT", "2"]);
                            queued(&mut c, &["SET", &j, "2"]);
                            queued(&mut c, &["DBSIZE"]);
                            queued(&mut c, &["SELECT", "0"]);
                            queued(&mut c, &["MOVE", &j, "3"]);
                            queued(&mut c, &["COPY", &k, &j, "DB", "4", "REPLACE"]);
                            let _: Value = query(&mut c, &["EXEC"]);
                        }
                        // Cross-database commands outside transactions.
                        1 => {
                            let _: Value = query(&mut c, &["MOVE", &k, "1"]);
                            ok(&mut c, &["SWAPDB", "1", "3"]);
                            ok(&mut c, &["MSET", &k, "x", &j, "y"]);
                        }
                        // Key-set transactions with WATCH.
                        _ => {
                            ok(&mut c, &["WATCH", &j]);
                            ok(&mut c, &["MULTI"]);
                            queued(&mut c, &["MSET", &k, "a", &j, "b"]);
                            queued(&mut c, &["RENAME", &k, &j]);
                            let _: Value = query(&mut c, &["EXEC"]);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut con = s.client();
    assert_eq!(cmd::<String>(&mut con, &["PING"]), "PONG");
}

/// Writes that change nothing are no modification for `WATCH`, as in
/// Redis (`signalModifiedKey` only when something was added or removed):
/// `SADD` of a present member, `SREM` of a missing one, `HDEL` of a
/// missing field, `ZREM` and `LREM` of missing elements, `ZADD` of a
/// member with its current score. Real changes still abort.
#[test]
fn no_op_writes_do_not_abort_a_watch() {
    let (s, mut con) = setup();
    let mut other = s.client();
    cmd::<i64>(&mut con, &["SADD", "set", "a"]);
    cmd::<i64>(&mut con, &["HSET", "hash", "f", "v"]);
    cmd::<i64>(&mut con, &["ZADD", "zset", "1", "m"]);
    cmd::<i64>(&mut con, &["RPUSH", "list", "x"]);
    let no_ops: [(&str, &[&str]); 6] = [
        ("set", &["SADD", "set", "a"]),
        ("set", &["SREM", "set", "zz"]),
        ("hash", &["HDEL", "hash", "zz"]),
        ("zset", &["ZREM", "zset", "zz"]),
        ("list", &["LREM", "list", "0", "zz"]),
        ("zset", &["ZADD", "zset", "1", "m"]),
    ];
    for (key, no_op) in no_ops {
        ok(&mut con, &["WATCH", key]);
        assert_eq!(cmd::<i64>(&mut other, no_op), 0, "{no_op:?}");
        ok(&mut con, &["MULTI"]);
        queued(&mut con, &["PING"]);
        assert!(!exec_is_nil(&mut con), "{no_op:?} aborted the transaction");
    }
    let changes: [&[&str]; 3] = [
        &["SADD", "set", "b"],
        &["SREM", "set", "b"],
        &["HDEL", "hash", "f"],
    ];
    for (key, change) in [
        ("set", changes[0]),
        ("set", changes[1]),
        ("hash", changes[2]),
    ] {
        ok(&mut con, &["WATCH", key]);
        assert_eq!(cmd::<i64>(&mut other, change), 1, "{change:?}");
        ok(&mut con, &["MULTI"]);
        queued(&mut con, &["PING"]);
        assert!(
            exec_is_nil(&mut con),
            "{change:?} did not abort the transaction"
        );
    }
}
