//! Blocking sorted-set pops: BZPOPMIN/BZPOPMAX/BZMPOP return at once when a
//! member exists, wait otherwise, are served in blocking order by a ZADD from
//! another client, time out with a null array, and skip waiters of the other
//! kind (a list waiter never takes a sorted set's member).

use std::thread;

use ferrite_tests::{cmd, err, wait_blocked_clients, TestServer};

#[test]
fn bzpop_returns_at_once_or_times_out() {
    let s = TestServer::start();
    let mut con = s.client();
    let _: i64 = cmd(&mut con, &["ZADD", "z", "1", "a", "2", "b"]);
    let v: (String, String, String) = cmd(&mut con, &["BZPOPMAX", "nokey", "z", "0"]);
    assert_eq!(v, ("z".into(), "b".into(), "2".into()));
    let v: (String, Vec<(String, String)>) =
        cmd(&mut con, &["BZMPOP", "0", "1", "z", "MIN", "COUNT", "5"]);
    assert_eq!(v, ("z".into(), vec![("a".into(), "1".into())]));
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "z"]), 0);
    let v: redis::Value = cmd(&mut con, &["BZPOPMIN", "z", "0.05"]);
    assert_eq!(v, redis::Value::Nil);
    let _: String = cmd(&mut con, &["SET", "str", "x"]);
    assert!(err(&mut con, &["BZPOPMIN", "str", "0"]).starts_with("WRONGTYPE"));
    assert_eq!(
        err(&mut con, &["BZMPOP", "0", "0", "z", "MIN"]),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        err(&mut con, &["BZMPOP", "0", "1", "z", "MIN", "COUNT", "0"]),
        "ERR count should be greater than 0"
    );
}

#[test]
fn zadd_serves_waiters_in_order_and_skips_list_waiters() {
    let s = TestServer::start();
    let mut con = s.client();
    let mut list_waiter = s.client();
    let lw = thread::spawn(move || cmd::<redis::Value>(&mut list_waiter, &["BLPOP", "k", "1"]));
    wait_blocked_clients(&mut con, 1);
    let mut handles = Vec::new();
    for i in 0..2 {
        let mut c = s.client();
        handles.push(thread::spawn(move || {
            cmd::<(String, String, String)>(&mut c, &["BZPOPMIN", "k", "0"])
        }));
        wait_blocked_clients(&mut con, i + 2);
    }
    let _: i64 = cmd(
        &mut con,
        &["ZADD", "k", "1", "one", "2", "two", "3", "three"],
    );
    let got: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got[0], ("k".into(), "one".into(), "1".into()));
    assert_eq!(got[1], ("k".into(), "two".into(), "2".into()));
    // The list waiter is not served by a sorted set; it times out.
    assert_eq!(lw.join().unwrap(), redis::Value::Nil);
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["ZRANGE", "k", "0", "-1"]),
        ["three"]
    );
}
