//! Pub/Sub: subscribe/publish/patterns, shard channels, RESP2 context
//! rules, RESP3 push frames, PUBSUB introspection, the slow-subscriber
//! output-buffer limit, and keyspace notifications.

use std::time::{Duration, Instant};

use ferrite_tests::{cmd, resp, text, RawConn, TestServer};

fn send(c: &mut RawConn, args: &[&str]) {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    c.send(&resp(&a));
}

/// Reads until `want` bytes arrived (or 5 s) and compares them exactly.
fn expect(c: &mut RawConn, want: &str) {
    let got = c.read_until(|b| b.len() >= want.len(), Duration::from_secs(5));
    assert_eq!(text(&got), want);
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{}\r\n", s.len(), s)
}

fn msg(kind: &str, channel: &str, payload: &str) -> String {
    format!("*3\r\n{}{}{}", bulk(kind), bulk(channel), bulk(payload))
}

fn confirm(kind: &str, channel: &str, n: i64) -> String {
    format!("*3\r\n{}{}:{}\r\n", bulk(kind), bulk(channel), n)
}

#[test]
fn subscribe_publish_and_unsubscribe_all() {
    let s = TestServer::start();
    let mut sub = s.raw_conn();
    let mut con = s.client();
    send(&mut sub, &["SUBSCRIBE", "c1", "c2"]);
    expect(
        &mut sub,
        &(confirm("subscribe", "c1", 1) + &confirm("subscribe", "c2", 2)),
    );
    assert_eq!(cmd::<i64>(&mut con, &["PUBLISH", "c1", "hello"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["PUBLISH", "nobody", "x"]), 0);
    expect(&mut sub, &msg("message", "c1", "hello"));
    send(&mut sub, &["UNSUBSCRIBE"]);
    let got = text(&sub.read_n(2 * confirm("unsubscribe", "c1", 1).len()));
    assert!(got.contains(":1\r\n") && got.ends_with(":0\r\n"), "{got}");
    // With nothing left, UNSUBSCRIBE still answers once, with a nil channel.
    send(&mut sub, &["UNSUBSCRIBE"]);
    expect(&mut sub, "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    assert_eq!(cmd::<i64>(&mut con, &["PUBLISH", "c1", "hello"]), 0);
    // Out of subscribed mode, commands work again.
    send(&mut sub, &["PING"]);
    expect(&mut sub, "+PONG\r\n");
}

#[test]
fn patterns_get_pmessage_and_count_as_receivers() {
    let s = TestServer::start();
    let mut sub = s.raw_conn();
    let mut con = s.client();
    send(&mut sub, &["SUBSCRIBE", "news.tech"]);
    send(&mut sub, &["PSUBSCRIBE", "news.*"]);
    expect(
        &mut sub,
        &(confirm("subscribe", "news.tech", 1) + &confirm("psubscribe", "news.*", 2)),
    );
    assert_eq!(cmd::<i64>(&mut con, &["PUBLISH", "news.tech", "hi"]), 2);
    let pm = format!(
        "*4\r\n{}{}{}{}",
        bulk("pmessage"),
        bulk("news.*"),
        bulk("news.tech"),
        bulk("hi")
    );
    expect(&mut sub, &(msg("message", "news.tech", "hi") + &pm));
    assert_eq!(cmd::<i64>(&mut con, &["PUBSUB", "NUMPAT"]), 1);
    send(&mut sub, &["PUNSUBSCRIBE"]);
    expect(&mut sub, &confirm("punsubscribe", "news.*", 1));
    send(&mut sub, &["PUNSUBSCRIBE"]);
    expect(&mut sub, "*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:1\r\n");
}

#[test]
fn resp2_subscribed_context_allows_only_the_subscribe_family() {
    let s = TestServer::start();
    let mut sub = s.raw_conn();
    send(&mut sub, &["SUBSCRIBE", "c"]);
    expect(&mut sub, &confirm("subscribe", "c", 1));
    send(&mut sub, &["GET", "k"]);
    expect(
        &mut sub,
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );
    send(&mut sub, &["PING"]);
    expect(&mut sub, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    send(&mut sub, &["PING", "x"]);
    expect(&mut sub, "*2\r\n$4\r\npong\r\n$1\r\nx\r\n");
    // RESET leaves subscribed mode and drops every subscription.
    send(&mut sub, &["RESET"]);
    expect(&mut sub, "+RESET\r\n");
    let mut con = s.client();
    assert_eq!(cmd::<i64>(&mut con, &["PUBLISH", "c", "x"]), 0);
    send(&mut sub, &["GET", "k"]);
    expect(&mut sub, "$-1\r\n");
}

#[test]
fn resp3_gets_push_frames_and_may_run_any_command() {
    let s = TestServer::start();
    let mut sub = s.raw_conn();
    send(&mut sub, &["HELLO", "3"]);
    sub.read_idle();
    send(&mut sub, &["SUBSCRIBE", "c"]);
    expect(
        &mut sub,
        &format!(">3\r\n{}{}:1\r\n", bulk("subscribe"), bulk("c")),
    );
    send(&mut sub, &["SET", "k", "v"]);
    expect(&mut sub, "+OK\r\n");
    // Publishing to itself: the push comes before the reply, as in Redis.
    send(&mut sub, &["PUBLISH", "c", "m"]);
    expect(
        &mut sub,
        &format!(">3\r\n{}{}{}:1\r\n", bulk("message"), bulk("c"), bulk("m")),
    );
}

#[test]
fn shard_channels_are_separate_from_global_ones() {
    let s = TestServer::start();
    let mut sub = s.raw_conn();
    let mut con = s.client();
    send(&mut sub, &["SSUBSCRIBE", "sc"]);
    expect(&mut sub, &confirm("ssubscribe", "sc", 1));
    assert_eq!(cmd::<i64>(&mut con, &["PUBLISH", "sc", "x"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["SPUBLISH", "sc", "y"]), 1);
    expect(&mut sub, &msg("smessage", "sc", "y"));
    let v: Vec<String> = cmd(&mut con, &["PUBSUB", "SHARDCHANNELS"]);
    assert_eq!(v, vec!["sc"]);
    let v: Vec<redis::Value> = cmd(&mut con, &["PUBSUB", "SHARDNUMSUB", "sc", "zz"]);
    assert_eq!(
        v,
        vec![
            redis::Value::BulkString(b"sc".to_vec()),
            redis::Value::Int(1),
            redis::Value::BulkString(b"zz".to_vec()),
            redis::Value::Int(0),
        ]
    );
    send(&mut sub, &["SUNSUBSCRIBE", "sc"]);
    expect(&mut sub, &confirm("sunsubscribe", "sc", 0));
}

#[test]
fn pubsub_introspection_client_list_and_info() {
    let s = TestServer::start();
    let mut sub = s.raw_conn();
    let mut con = s.client();
    send(&mut sub, &["SUBSCRIBE", "a.1", "b.1"]);
    send(&mut sub, &["PSUBSCRIBE", "a.*"]);
    sub.read_idle();
    let mut v: Vec<String> = cmd(&mut con, &["PUBSUB", "CHANNELS"]);
    v.sort();
    assert_eq!(v, vec!["a.1", "b.1"]);
    let v: Vec<String> = cmd(&mut con, &["PUBSUB", "CHANNELS", "a*"]);
    assert_eq!(v, vec!["a.1"]);
    let v: Vec<redis::Value> = cmd(&mut con, &["PUBSUB", "NUMSUB", "a.1", "x"]);
    assert_eq!(v[1], redis::Value::Int(1));
    assert_eq!(v[3], redis::Value::Int(0));
    let list: String = cmd(&mut con, &["CLIENT", "LIST"]);
    assert!(
        list.lines()
            .any(|l| l.contains("flags=P") && l.contains("sub=2 psub=1 ssub=0")),
        "{list}"
    );
    let info: String = cmd(&mut con, &["INFO", "stats"]);
    assert!(info.contains("pubsub_channels:2\r\n"), "{info}");
    assert!(info.contains("pubsub_patterns:1\r\n"), "{info}");
    // A closed connection leaves nothing behind.
    drop(sub);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cmd::<i64>(&mut con, &["PUBSUB", "NUMPAT"]) != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(cmd::<i64>(&mut con, &["PUBSUB", "NUMPAT"]), 0);
    assert!(cmd::<Vec<String>>(&mut con, &["PUBSUB", "CHANNELS"]).is_empty());
}

#[test]
fn publish_inside_multi_and_client_output_buffer_limit_config() {
    let s = TestServer::start();
    let mut con = s.client();
    let mut sub = s.raw_conn();
    send(&mut sub, &["SUBSCRIBE", "c"]);
    sub.read_idle();
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let _: String = redis::cmd("PUBLISH")
        .arg("c")
        .arg("m")
        .query(&mut con)
        .unwrap();
    let r: Vec<i64> = redis::cmd("EXEC").query(&mut con).unwrap();
    assert_eq!(r, vec![1]);
    expect(&mut sub, &msg("message", "c", "m"));
    let v: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "client-output-buffer-limit"]);
    assert_eq!(
        v[1],
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
    let _: String = cmd(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 512kb 60",
        ],
    );
    let v: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "client-output-buffer-limit"]);
    assert_eq!(
        v[1],
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 524288 60"
    );
    let e = ferrite_tests::err(
        &mut con,
        &["CONFIG", "SET", "client-output-buffer-limit", "nope 1 2 3"],
    );
    assert!(e.contains("Invalid client class"), "{e}");
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_over_the_limit() {
    let s = TestServer::start();
    let mut con = s.client();
    let _: String = cmd(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 512kb 60",
        ],
    );
    let mut sub = s.raw_conn();
    send(&mut sub, &["CLIENT", "SETNAME", "slow"]);
    send(&mut sub, &["SUBSCRIBE", "flood"]);
    sub.read_idle();
    let payload = "x".repeat(100 * 1024);
    let mut gone = false;
    // Far more than the socket buffers can hold: the subscriber must go.
    for _ in 0..1000 {
        let _: i64 = cmd(&mut con, &["PUBLISH", "flood", &payload]);
        let list: String = cmd(&mut con, &["CLIENT", "LIST"]);
        if !list.contains("name=slow") {
            gone = true;
            break;
        }
    }
    assert!(gone, "slow subscriber was never disconnected");
    let (_, n): (String, i64) = cmd(&mut con, &["PUBSUB", "NUMSUB", "flood"]);
    assert_eq!(n, 0);
    // The server is fine afterwards.
    assert_eq!(cmd::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn keyspace_and_keyevent_notifications() {
    let s = TestServer::start();
    let mut con = s.client();
    let _: String = cmd(
        &mut con,
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
    );
    let v: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "notify-keyspace-events"]);
    assert_eq!(v[1], "AKE");
    let mut sub = s.raw_conn();
    send(&mut sub, &["PSUBSCRIBE", "__key*@0__:*"]);
    sub.read_idle();
    let _: String = cmd(&mut con, &["SET", "foo", "bar"]);
    let _: i64 = cmd(&mut con, &["LPUSH", "l", "a"]);
    let _: String = cmd(&mut con, &["RPOP", "l"]);
    let got = text(&sub.read_until(
        |b| text(b).matches("pmessage").count() >= 8,
        Duration::from_secs(5),
    ));
    let events: Vec<&str> = got
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with(['*', '$']))
        .collect();
    let pairs: Vec<String> = events
        .chunks(4)
        .map(|c| format!("{} {}", c[2], c[3]))
        .collect();
    assert_eq!(
        pairs,
        vec![
            "__keyspace@0__:foo set",
            "__keyevent@0__:set foo",
            "__keyspace@0__:l lpush",
            "__keyevent@0__:lpush l",
            "__keyspace@0__:l rpop",
            "__keyevent@0__:rpop l",
            "__keyspace@0__:l del",
            "__keyevent@0__:del l",
        ]
    );
    // Expiry events come from storage; `n` reports new keys.
    let _: String = cmd(
        &mut con,
        &["CONFIG", "SET", "notify-keyspace-events", "Exn"],
    );
    let _: String = cmd(&mut con, &["SET", "t", "1", "PX", "50"]);
    let got = text(&sub.read_until(|b| text(b).contains("expired"), Duration::from_secs(5)));
    assert!(got.contains("__keyevent@0__:new\r\n$1\r\nt"), "{got}");
    assert!(got.contains("__keyevent@0__:expired\r\n$1\r\nt"), "{got}");
    let err = ferrite_tests::err(&mut con, &["CONFIG", "SET", "notify-keyspace-events", "Q"]);
    assert!(err.contains("Invalid event class character"), "{err}");
}
