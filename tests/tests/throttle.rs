//! `CL.THROTTLE` (redis-cell) over TCP: replies, the stored state and its
//! TTL, errors, and memory staying bounded for many keys.

use std::time::Duration;

use ferrite_tests::{cmd, err, TestServer};

fn setup() -> (TestServer, redis::Connection) {
    let s = TestServer::start();
    let c = s.client();
    (s, c)
}

fn throttle(c: &mut redis::Connection, args: &[&str]) -> Vec<i64> {
    let mut a = vec!["CL.THROTTLE"];
    a.extend_from_slice(args);
    cmd(c, &a)
}

#[test]
fn burst_then_limited_then_peek() {
    let (_s, mut c) = setup();
    // limit 5 (burst 4), 1 per second.
    for remaining in (0..5).rev() {
        let r = throttle(&mut c, &["k", "4", "1", "1"]);
        assert_eq!(&r[..4], &[0, 5, remaining, -1], "{r:?}");
        assert_eq!(r[4], 5 - remaining);
    }
    let r = throttle(&mut c, &["k", "4", "1", "1"]);
    assert_eq!(r, vec![1, 5, 0, 1, 5]);
    // Quantity 0 peeks without taking a token.
    let r = throttle(&mut c, &["k", "4", "1", "1", "0"]);
    assert_eq!(&r[..4], &[0, 5, 0, -1]);
    // A request bigger than the bucket is refused with retry_after -1.
    let r = throttle(&mut c, &["big", "4", "1", "1", "6"]);
    assert_eq!(r, vec![1, 5, 5, -1, 0]);
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "big"]), 0);
}

#[test]
fn state_is_a_string_with_a_ttl() {
    let (_s, mut c) = setup();
    let r = throttle(&mut c, &["k", "0", "1", "2"]);
    assert_eq!(r, vec![0, 1, 0, -1, 2]);
    assert_eq!(cmd::<String>(&mut c, &["TYPE", "k"]), "string");
    let tat: i64 = cmd::<String>(&mut c, &["GET", "k"]).parse().unwrap();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    assert!(
        (tat - now_ns - 2_000_000_000).abs() < 1_000_000_000,
        "{tat} {now_ns}"
    );
    let pttl: i64 = cmd(&mut c, &["PTTL", "k"]);
    assert!((1_900..=2_000).contains(&pttl), "{pttl}");
    let r = throttle(&mut c, &["k", "0", "1", "2"]);
    assert_eq!(r, vec![1, 1, 0, 2, 2]);
}

#[test]
fn refills_at_the_steady_rate() {
    let (_s, mut c) = setup();
    // 10 per second, burst 0: one token each 100 ms.
    assert_eq!(throttle(&mut c, &["k", "0", "10", "1"])[0], 0);
    assert_eq!(throttle(&mut c, &["k", "0", "10", "1"])[0], 1);
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(throttle(&mut c, &["k", "0", "10", "1"])[0], 0);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(
        cmd::<i64>(&mut c, &["EXISTS", "k"]),
        0,
        "state expires when full again"
    );
}

#[test]
fn errors() {
    let (_s, mut c) = setup();
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "k", "x", "1", "1"]),
        "Cell error: Store error: Couldn't parse as integer: x"
    );
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "k", "1", "1.5", "1"]),
        "Cell error: Store error: Couldn't parse as integer: 1.5"
    );
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "k", "1", "1"]),
        "Cell error: Store error: Usage: cl.throttle <key> <max_burst> <count per period> <period> [<quantity>]"
    );
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "k", "1", "0", "1"]),
        "Cell error: Store error: Zero rates are not supported"
    );
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "k", "-1", "1", "1"]),
        "Cell error: Store error: Negative values are not supported"
    );
    let _: i64 = cmd(&mut c, &["LPUSH", "l", "a"]);
    assert!(err(&mut c, &["CL.THROTTLE", "l", "1", "1", "1"]).starts_with("WRONGTYPE"));
    let _: String = cmd(&mut c, &["SET", "s", "abc"]);
    assert_eq!(
        err(&mut c, &["CL.THROTTLE", "s", "1", "1", "1"]),
        "Cell error: invalid digit found in string"
    );
}

fn used_memory(c: &mut redis::Connection) -> i64 {
    ferrite_tests::info_int(c, "memory", "used_memory")
}

/// 1M distinct keys throttled with a 1 s period: memory rises while they
/// are live and falls back once they expire. Slow in a debug build: run
/// with `cargo test --release -p ferrite-tests --test throttle -- --ignored --nocapture`.
#[test]
#[ignore]
fn million_keys_stay_bounded_and_expire() {
    let (_s, mut c) = setup();
    let before = used_memory(&mut c);
    let n = 1_000_000;
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("CL.THROTTLE")
            .arg(format!("user:{i}"))
            .arg(0)
            .arg(1)
            .arg(1)
            .ignore();
        if i % 10_000 == 9_999 {
            let () = pipe.query(&mut c).unwrap();
            pipe = redis::pipe();
        }
    }
    let peak = used_memory(&mut c);
    let keys: i64 = cmd(&mut c, &["DBSIZE"]);
    println!(
        "before={before} peak={peak} keys={keys} bytes/key={:.1}",
        (peak - before) as f64 / keys.max(1) as f64
    );
    std::thread::sleep(Duration::from_secs(3));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let k: i64 = cmd(&mut c, &["DBSIZE"]);
        if k == 0 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let after = used_memory(&mut c);
    let keys: i64 = cmd(&mut c, &["DBSIZE"]);
    println!("after expiry: used_memory={after} keys={keys}");
    assert_eq!(keys, 0);
    assert!(
        after - before < (peak - before) / 10,
        "{before} {peak} {after}"
    );
}
