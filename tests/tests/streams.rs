//! Streams: XADD and its trimming, ranges, deletes, XREAD (blocking
//! included), consumer groups (XREADGROUP, XACK, XPENDING, XCLAIM,
//! XAUTOCLAIM, XINFO, XSETID), what they propagate and the keyspace events
//! they send; COPY, RENAME and TYPE of a stream.

use std::thread;
use std::time::{Duration, Instant};

use ferrite_tests::{cmd, err, text, wait_blocked_clients, RawConn, TestServer};
use redis::Value;

type Entry = (String, Vec<String>);

fn xrange(con: &mut redis::Connection, key: &str) -> Vec<Entry> {
    cmd(con, &["XRANGE", key, "-", "+"])
}

fn bulk(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(n) => n.to_string(),
        Value::Nil => "nil".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn xadd_ids_and_errors() {
    let s = TestServer::start();
    let mut con = s.client();
    assert_eq!(
        cmd::<String>(&mut con, &["XADD", "s", "1-1", "a", "1"]),
        "1-1"
    );
    assert_eq!(
        cmd::<String>(&mut con, &["XADD", "s", "1-*", "b", "2"]),
        "1-2"
    );
    assert_eq!(
        cmd::<String>(&mut con, &["XADD", "s", "5", "c", "3"]),
        "5-0"
    );
    let auto: String = cmd(&mut con, &["XADD", "s", "*", "d", "4"]);
    assert!(auto.ends_with("-0") && auto.len() > 10, "{auto}");
    assert_eq!(
        err(&mut con, &["XADD", "s", "1-1", "a", "1"]),
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
    assert_eq!(
        err(&mut con, &["XADD", "s", "0-0", "a", "1"]),
        "ERR The ID specified in XADD must be greater than 0-0"
    );
    assert_eq!(
        err(&mut con, &["XADD", "s", "1-x", "a", "1"]),
        "ERR Invalid stream ID specified as stream command argument"
    );
    assert_eq!(
        err(&mut con, &["XADD", "s", "*", "a"]),
        "ERR wrong number of arguments for 'xadd' command"
    );
    assert_eq!(
        err(&mut con, &["XADD", "s", "MAXLEN", "-1", "*", "a", "1"]),
        "ERR The MAXLEN argument must be >= 0."
    );
    assert_eq!(
        err(
            &mut con,
            &["XADD", "s", "MAXLEN", "1", "LIMIT", "1", "*", "a", "1"]
        ),
        "ERR syntax error, LIMIT cannot be used without the special ~ option"
    );
    assert_eq!(
        err(
            &mut con,
            &["XADD", "s", "MAXLEN", "1", "MINID", "1", "*", "a", "1"]
        ),
        "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
    );
    let v: Value = cmd(&mut con, &["XADD", "nokey", "NOMKSTREAM", "*", "a", "1"]);
    assert_eq!(v, Value::Nil);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "nokey"]), 0);
    let _: String = cmd(
        &mut con,
        &[
            "XADD",
            "m",
            "18446744073709551615-18446744073709551615",
            "a",
            "1",
        ],
    );
    assert_eq!(
        err(&mut con, &["XADD", "m", "*", "a", "1"]),
        "ERR The stream has exhausted the last possible ID, unable to add more items"
    );
    assert_eq!(cmd::<String>(&mut con, &["TYPE", "s"]), "stream");
    assert_eq!(
        cmd::<String>(&mut con, &["OBJECT", "ENCODING", "s"]),
        "stream"
    );
    let _: String = cmd(&mut con, &["SET", "str", "x"]);
    assert!(err(&mut con, &["XADD", "str", "*", "a", "1"]).starts_with("WRONGTYPE"));
    assert!(cmd::<i64>(&mut con, &["MEMORY", "USAGE", "s"]) > 0);
}

#[test]
fn ranges_counts_and_exclusive_bounds() {
    let s = TestServer::start();
    let mut con = s.client();
    for i in 1..=5 {
        let _: String = cmd(
            &mut con,
            &["XADD", "s", &format!("{i}-0"), "f", &i.to_string()],
        );
    }
    assert_eq!(cmd::<i64>(&mut con, &["XLEN", "s"]), 5);
    assert_eq!(cmd::<i64>(&mut con, &["XLEN", "nokey"]), 0);
    let ids = |v: Vec<Entry>| v.into_iter().map(|e| e.0).collect::<Vec<_>>();
    assert_eq!(ids(xrange(&mut con, "s")).len(), 5);
    assert_eq!(
        ids(cmd(&mut con, &["XRANGE", "s", "(2", "4", "COUNT", "5"])),
        vec!["3-0", "4-0"]
    );
    assert_eq!(
        ids(cmd(&mut con, &["XREVRANGE", "s", "+", "-", "COUNT", "2"])),
        vec!["5-0", "4-0"]
    );
    let v: Value = cmd(&mut con, &["XRANGE", "s", "-", "+", "COUNT", "0"]);
    assert_eq!(v, Value::Nil);
    assert_eq!(
        err(
            &mut con,
            &[
                "XRANGE",
                "s",
                "(18446744073709551615-18446744073709551615",
                "+"
            ]
        ),
        "ERR invalid start ID for the interval"
    );
    assert_eq!(
        err(&mut con, &["XRANGE", "s", "-", "+", "FOO"]),
        "ERR syntax error"
    );
    assert_eq!(cmd::<i64>(&mut con, &["XDEL", "s", "2-0", "9-0"]), 1);
    assert_eq!(ids(xrange(&mut con, "s")), vec!["1-0", "3-0", "4-0", "5-0"]);
    assert_eq!(cmd::<i64>(&mut con, &["XTRIM", "s", "MAXLEN", "2"]), 2);
    assert_eq!(ids(xrange(&mut con, "s")), vec!["4-0", "5-0"]);
    assert_eq!(cmd::<i64>(&mut con, &["XTRIM", "s", "MINID", "5"]), 1);
    assert_eq!(
        err(&mut con, &["XTRIM", "s", "FOO", "1"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["XTRIM", "s"]),
        "ERR wrong number of arguments for 'xtrim' command"
    );
}

#[test]
fn approximate_trimming_removes_whole_nodes() {
    let s = TestServer::start();
    let mut con = s.client();
    let _: () = cmd(
        &mut con,
        &["CONFIG", "SET", "stream-node-max-entries", "10"],
    );
    for i in 0..100 {
        let _: String = cmd(&mut con, &["XADD", "s", "*", "f", &i.to_string()]);
    }
    assert_eq!(
        cmd::<i64>(&mut con, &["XTRIM", "s", "MAXLEN", "~", "55"]),
        40
    );
    assert_eq!(cmd::<i64>(&mut con, &["XLEN", "s"]), 60);
    assert_eq!(
        cmd::<i64>(&mut con, &["XTRIM", "s", "MAXLEN", "~", "0", "LIMIT", "15"]),
        10
    );
}

#[test]
fn xread_returns_new_entries_and_blocks() {
    let s = TestServer::start();
    let mut con = s.client();
    let _: String = cmd(&mut con, &["XADD", "a", "1-0", "f", "v"]);
    let v: Vec<(String, Vec<Entry>)> = cmd(&mut con, &["XREAD", "STREAMS", "a", "b", "0", "0"]);
    assert_eq!(
        v,
        vec![(
            "a".into(),
            vec![("1-0".into(), vec!["f".into(), "v".into()])]
        )]
    );
    let v: Value = cmd(&mut con, &["XREAD", "STREAMS", "a", "$"]);
    assert_eq!(v, Value::Nil);
    let v: Value = cmd(&mut con, &["XREAD", "BLOCK", "50", "STREAMS", "a", "$"]);
    assert_eq!(v, Value::Nil);
    assert_eq!(
        err(&mut con, &["XREAD", "STREAMS", "a", "b", "0"]),
        "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."
    );
    assert_eq!(
        err(&mut con, &["XREAD", "STREAMS", "a", ">"]),
        "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."
    );
    let mut w = s.client();
    let h = thread::spawn(move || {
        cmd::<Vec<(String, Vec<Entry>)>>(
            &mut w,
            &["XREAD", "BLOCK", "0", "STREAMS", "x", "a", "$", "$"],
        )
    });
    wait_blocked_clients(&mut con, 1);
    let _: String = cmd(&mut con, &["XADD", "a", "2-0", "new", "1"]);
    let got = h.join().unwrap();
    assert_eq!(
        got,
        vec![(
            "a".into(),
            vec![("2-0".into(), vec!["new".into(), "1".into()])]
        )]
    );
    // Inside MULTI a blocking read answers at once.
    let v: Value = redis::pipe()
        .atomic()
        .cmd("XREAD")
        .arg(&["BLOCK", "0", "STREAMS", "a", "$"])
        .query(&mut con)
        .unwrap();
    assert_eq!(v, Value::Array(vec![Value::Nil]));
}

#[test]
fn consumer_groups_deliver_ack_and_claim() {
    let s = TestServer::start();
    let mut con = s.client();
    assert_eq!(
        err(&mut con, &["XGROUP", "CREATE", "s", "g", "$"]),
        "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."
    );
    let _: () = cmd(&mut con, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    assert_eq!(
        err(&mut con, &["XGROUP", "CREATE", "s", "g", "$"]),
        "BUSYGROUP Consumer Group name already exists"
    );
    for i in 1..=3 {
        let _: String = cmd(
            &mut con,
            &["XADD", "s", &format!("{i}-0"), "f", &i.to_string()],
        );
    }
    let v: Vec<(String, Vec<Entry>)> = cmd(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">",
        ],
    );
    assert_eq!(v[0].1.len(), 2);
    let summary: Vec<Value> = cmd(&mut con, &["XPENDING", "s", "g"]);
    assert_eq!(bulk(&summary[0]), "2");
    assert_eq!(bulk(&summary[1]), "1-0");
    assert_eq!(bulk(&summary[2]), "2-0");
    assert_eq!(cmd::<i64>(&mut con, &["XACK", "s", "g", "1-0", "9-0"]), 1);
    // History: what alice still owns.
    let v: Vec<(String, Vec<Entry>)> = cmd(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0"],
    );
    assert_eq!(v[0].1[0].0, "2-0");
    let claimed: Vec<String> = cmd(&mut con, &["XCLAIM", "s", "g", "bob", "0", "2-0", "JUSTID"]);
    assert_eq!(claimed, vec!["2-0"]);
    let ext: Vec<(String, String, i64, i64)> =
        cmd(&mut con, &["XPENDING", "s", "g", "-", "+", "10"]);
    assert_eq!(ext[0].0, "2-0");
    assert_eq!(ext[0].1, "bob");
    assert_eq!(ext[0].3, 2);
    let auto: (String, Vec<String>, Vec<String>) = cmd(
        &mut con,
        &["XAUTOCLAIM", "s", "g", "carol", "0", "0", "JUSTID"],
    );
    assert_eq!(auto, ("0-0".into(), vec!["2-0".into()], vec![]));
    let consumers: Vec<Value> = cmd(&mut con, &["XINFO", "CONSUMERS", "s", "g"]);
    assert_eq!(consumers.len(), 3);
    assert_eq!(
        cmd::<i64>(&mut con, &["XGROUP", "DELCONSUMER", "s", "g", "carol"]),
        1
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["XGROUP", "CREATECONSUMER", "s", "g", "dan"]),
        1
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["XGROUP", "CREATECONSUMER", "s", "g", "dan"]),
        0
    );
    assert_eq!(
        err(
            &mut con,
            &["XREADGROUP", "GROUP", "nog", "c", "STREAMS", "s", ">"]
        ),
        "NOGROUP No such key 's' or consumer group 'nog' in XREADGROUP with GROUP option"
    );
    assert_eq!(
        err(
            &mut con,
            &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "$"]
        )
        .split(':')
        .next()
        .unwrap(),
        "ERR The $ ID is meaningless in the context of XREADGROUP"
    );
    let groups: Vec<Vec<Value>> = cmd(&mut con, &["XINFO", "GROUPS", "s"]);
    assert_eq!(bulk(&groups[0][1]), "g");
    assert_eq!(bulk(&groups[0][7]), "2-0"); // last-delivered-id
    assert_eq!(bulk(&groups[0][9]), "2"); // entries-read
    assert_eq!(bulk(&groups[0][11]), "1"); // lag
    let info: Vec<Value> = cmd(&mut con, &["XINFO", "STREAM", "s"]);
    assert_eq!(bulk(&info[0]), "length");
    assert_eq!(bulk(&info[1]), "3");
    assert_eq!(cmd::<i64>(&mut con, &["XGROUP", "DESTROY", "s", "g"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["XGROUP", "DESTROY", "s", "g"]), 0);
    assert_eq!(
        err(&mut con, &["XSETID", "s", "1-0"]),
        "ERR The ID specified in XSETID is smaller than the target stream top item"
    );
    let _: () = cmd(
        &mut con,
        &[
            "XSETID",
            "s",
            "10-0",
            "ENTRIESADDED",
            "7",
            "MAXDELETEDID",
            "4-0",
        ],
    );
    let info: Vec<Value> = cmd(&mut con, &["XINFO", "STREAM", "s"]);
    assert_eq!(bulk(&info[7]), "10-0");
    assert_eq!(bulk(&info[9]), "4-0");
    assert_eq!(bulk(&info[11]), "7");
    assert_eq!(
        err(&mut con, &["XSETID", "nokey", "1-0"]),
        "ERR no such key"
    );
}

#[test]
fn blocked_xreadgroup_is_served_and_told_when_the_group_goes() {
    let s = TestServer::start();
    let mut con = s.client();
    let _: () = cmd(&mut con, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    let mut w = s.client();
    let h = thread::spawn(move || {
        cmd::<Vec<(String, Vec<Entry>)>>(
            &mut w,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
        )
    });
    wait_blocked_clients(&mut con, 1);
    let _: String = cmd(&mut con, &["XADD", "s", "1-0", "f", "v"]);
    assert_eq!(h.join().unwrap()[0].1[0].0, "1-0");
    let pending: Vec<Value> = cmd(&mut con, &["XPENDING", "s", "g"]);
    assert_eq!(bulk(&pending[0]), "1");

    let mut w = s.client();
    let h = thread::spawn(move || {
        err(
            &mut w,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
        )
    });
    wait_blocked_clients(&mut con, 1);
    let _: i64 = cmd(&mut con, &["XGROUP", "DESTROY", "s", "g"]);
    assert_eq!(
        h.join().unwrap(),
        "NOGROUP the consumer group this client was blocked on no longer exists"
    );

    let _: () = cmd(&mut con, &["XGROUP", "CREATE", "s", "g", "$"]);
    let mut w = s.client();
    let h = thread::spawn(move || {
        err(
            &mut w,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
        )
    });
    wait_blocked_clients(&mut con, 1);
    let _: i64 = cmd(&mut con, &["DEL", "s"]);
    assert_eq!(
        h.join().unwrap(),
        "UNBLOCKED the stream key no longer exists"
    );
}

#[test]
fn copy_rename_and_move_keep_groups() {
    let s = TestServer::start();
    let mut con = s.client();
    let _: String = cmd(&mut con, &["XADD", "s", "1-0", "f", "v"]);
    let _: () = cmd(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]);
    let _: Value = cmd(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
    );
    assert_eq!(cmd::<i64>(&mut con, &["COPY", "s", "t"]), 1);
    // A deep copy: acknowledging in the copy leaves the source's PEL alone.
    assert_eq!(cmd::<i64>(&mut con, &["XACK", "t", "g", "1-0"]), 1);
    let p: Vec<Value> = cmd(&mut con, &["XPENDING", "s", "g"]);
    assert_eq!(bulk(&p[0]), "1");
    let _: () = cmd(&mut con, &["RENAME", "s", "r"]);
    assert_eq!(xrange(&mut con, "r").len(), 1);
    assert_eq!(cmd::<i64>(&mut con, &["MOVE", "r", "1"]), 1);
    let _: () = cmd(&mut con, &["SELECT", "1"]);
    let p: Vec<Value> = cmd(&mut con, &["XPENDING", "r", "g"]);
    assert_eq!(bulk(&p[0]), "1");
    let keys: (String, Vec<String>) = cmd(&mut con, &["SCAN", "0", "TYPE", "stream"]);
    assert_eq!(keys.1, vec!["r"]);
}

fn read_stream(link: &mut RawConn, until: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while !text(&got).contains(until) {
        assert!(Instant::now() < deadline, "stream so far: {}", text(&got));
        got.extend(link.read_until(|b| !b.is_empty(), Duration::from_millis(200)));
    }
    text(&got)
}

fn compact(stream: &str) -> String {
    stream
        .split("\r\n")
        .filter(|t| !t.is_empty() && !t.starts_with('*') && !t.starts_with('$'))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn writes_propagate_deterministic_effects() {
    let s = TestServer::start();
    let mut con = s.client();
    let mut link = ferrite_tests::attach_replica(&s);
    let id: String = cmd(&mut con, &["XADD", "a", "*", "f", "v"]);
    let _: String = cmd(
        &mut con,
        &[
            "XADD", "s", "MAXLEN", "~", "5", "LIMIT", "5", "7-*", "f", "w",
        ],
    );
    let _: () = cmd(&mut con, &["XGROUP", "CREATE", "s", "g", "$"]);
    let _: String = cmd(&mut con, &["XADD", "s", "8-0", "f", "x"]);
    let _: Value = cmd(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
    );
    let _: Value = cmd(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "NOACK",
            "STREAMS",
            "s",
            ">",
        ],
    );
    let _: String = cmd(&mut con, &["XADD", "s", "9-0", "f", "y"]);
    let _: Value = cmd(
        &mut con,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "d",
            "NOACK",
            "STREAMS",
            "s",
            ">",
        ],
    );
    let _: String = cmd(&mut con, &["SET", "end", "1"]);
    let got = compact(&read_stream(&mut link, "end"));
    let want_start = format!("SELECT 0 XADD a {id} f v XADD s MAXLEN = 1 7-0 f w");
    assert!(got.starts_with(&want_start), "{got}");
    assert!(got.contains("XGROUP CREATE s g 7-0"), "{got}");
    assert!(got.contains("XCLAIM s g c 0 8-0 TIME"), "{got}");
    assert!(
        got.contains("RETRYCOUNT 1 FORCE JUSTID LASTID 8-0"),
        "{got}"
    );
    assert!(
        got.contains("XGROUP CREATECONSUMER s g d XGROUP SETID s g 9-0 ENTRIESREAD 3"),
        "{got}"
    );
}

#[test]
fn stream_keyspace_events() {
    let s = TestServer::start();
    let mut con = s.client();
    let _: () = cmd(&mut con, &["CONFIG", "SET", "notify-keyspace-events", "Kt"]);
    let mut sub = s.raw_conn();
    sub.send(b"PSUBSCRIBE *\r\n");
    sub.read_until(|b| !b.is_empty(), Duration::from_secs(2));
    let _: () = cmd(&mut con, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    let _: i64 = cmd(&mut con, &["XGROUP", "CREATECONSUMER", "s", "g", "Bob"]);
    let _: String = cmd(&mut con, &["XADD", "s", "1", "f", "A"]);
    let _: Value = cmd(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "Alice", "STREAMS", "s", ">"],
    );
    let _: Value = cmd(&mut con, &["XCLAIM", "s", "g", "Mike", "0", "1-0", "FORCE"]);
    let _: i64 = cmd(&mut con, &["XGROUP", "DELCONSUMER", "s", "g", "Lee"]);
    let _: Value = cmd(&mut con, &["XAUTOCLAIM", "s", "g", "Bob", "0", "1-0"]);
    let _: i64 = cmd(&mut con, &["XGROUP", "DELCONSUMER", "s", "g", "Bob"]);
    let _: i64 = cmd(&mut con, &["XDEL", "s", "1-0"]);
    let _: i64 = cmd(&mut con, &["XTRIM", "s", "MAXLEN", "0"]);
    let _: () = cmd(&mut con, &["XSETID", "s", "5-0"]);
    let _: () = cmd(&mut con, &["XGROUP", "SETID", "s", "g", "0"]);
    let _: i64 = cmd(&mut con, &["XGROUP", "DESTROY", "s", "g"]);
    let got = text(&sub.read_until(
        |b| text(b).contains("xgroup-destroy"),
        Duration::from_secs(5),
    ));
    let events: Vec<&str> = got
        .split("\r\n")
        .filter(|l| l.starts_with("xgroup") || l.starts_with('x'))
        .collect();
    assert_eq!(
        events,
        vec![
            "xgroup-create",
            "xgroup-createconsumer",
            "xadd",
            "xgroup-createconsumer",
            "xgroup-createconsumer",
            "xgroup-delconsumer",
            "xdel",
            "xsetid",
            "xgroup-setid",
            "xgroup-destroy",
        ]
    );
}
