//! Lists: pushes and pops, ranges, edits, LPOS, LMOVE/LMPOP, and the
//! blocking pops (served in blocking order, timeouts, CLIENT UNBLOCK,
//! disconnects that must not lose elements).

use std::thread;
use std::time::{Duration, Instant};

use ferrite_tests::{cmd, err, wait_blocked_clients, TestServer};
use redis::Connection;

fn setup() -> (TestServer, Connection) {
    let server = TestServer::start();
    let con = server.client();
    (server, con)
}

fn range(con: &mut Connection, key: &str) -> Vec<String> {
    cmd(con, &["LRANGE", key, "0", "-1"])
}

#[test]
fn push_pop_and_ranges() {
    let (_s, mut con) = setup();
    assert_eq!(cmd::<i64>(&mut con, &["RPUSH", "l", "a", "b", "c"]), 3);
    assert_eq!(cmd::<i64>(&mut con, &["LPUSH", "l", "z"]), 4);
    assert_eq!(range(&mut con, "l"), ["z", "a", "b", "c"]);
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["LRANGE", "l", "-2", "100"]),
        ["b", "c"]
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["LRANGE", "l", "3", "1"]).len(),
        0
    );
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["LINDEX", "l", "-1"]).as_deref(),
        Some("c")
    );
    assert_eq!(cmd::<Option<String>>(&mut con, &["LINDEX", "l", "9"]), None);
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["LPOP", "l"]).as_deref(),
        Some("z")
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["RPOP", "l", "2"]),
        ["c", "b"]
    );
    assert_eq!(cmd::<Vec<String>>(&mut con, &["LPOP", "l", "0"]).len(), 0);
    assert_eq!(cmd::<i64>(&mut con, &["LLEN", "l"]), 1);
    // Popping the last element deletes the key.
    assert_eq!(cmd::<Vec<String>>(&mut con, &["LPOP", "l", "5"]), ["a"]);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "l"]), 0);
    // A missing key: nil for the plain pop, a null array with a count.
    let v: redis::Value = cmd(&mut con, &["LPOP", "l", "2"]);
    assert_eq!(v, redis::Value::Nil);
    assert_eq!(cmd::<i64>(&mut con, &["LPUSHX", "l", "x"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "l"]), 0);
    assert_eq!(
        err(&mut con, &["LPOP", "l", "-1"]),
        "ERR value is out of range, must be positive"
    );
    // A non-integer count gets the same message, as Redis.
    assert_eq!(
        err(&mut con, &["LPOP", "l", "abc"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        err(&mut con, &["LPOP", "l", "1", "2"]),
        "ERR wrong number of arguments for 'lpop' command"
    );
}

#[test]
fn edits_lset_lrem_ltrim_linsert() {
    let (_s, mut con) = setup();
    let _: i64 = cmd(&mut con, &["RPUSH", "l", "a", "b", "a", "c", "a"]);
    assert_eq!(cmd::<i64>(&mut con, &["LREM", "l", "-2", "a"]), 2);
    assert_eq!(range(&mut con, "l"), ["a", "b", "c"]);
    assert_eq!(cmd::<String>(&mut con, &["LSET", "l", "-1", "C"]), "OK");
    assert_eq!(
        err(&mut con, &["LSET", "l", "5", "x"]),
        "ERR index out of range"
    );
    assert_eq!(
        err(&mut con, &["LSET", "nokey", "0", "x"]),
        "ERR no such key"
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["LINSERT", "l", "BEFORE", "b", "x"]),
        4
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["LINSERT", "l", "AFTER", "C", "y"]),
        5
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["LINSERT", "l", "AFTER", "nope", "y"]),
        -1
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["LINSERT", "nokey", "AFTER", "a", "y"]),
        0
    );
    assert_eq!(
        err(&mut con, &["LINSERT", "l", "MIDDLE", "a", "y"]),
        "ERR syntax error"
    );
    assert_eq!(range(&mut con, "l"), ["a", "x", "b", "C", "y"]);
    assert_eq!(cmd::<String>(&mut con, &["LTRIM", "l", "1", "-2"]), "OK");
    assert_eq!(range(&mut con, "l"), ["x", "b", "C"]);
    assert_eq!(cmd::<String>(&mut con, &["LTRIM", "l", "5", "10"]), "OK");
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "l"]), 0);
}

#[test]
fn lpos_rank_count_maxlen() {
    let (_s, mut con) = setup();
    let _: i64 = cmd(
        &mut con,
        &["RPUSH", "l", "a", "b", "c", "1", "2", "3", "c", "c"],
    );
    assert_eq!(cmd::<Option<i64>>(&mut con, &["LPOS", "l", "c"]), Some(2));
    assert_eq!(
        cmd::<Option<i64>>(&mut con, &["LPOS", "l", "c", "RANK", "2"]),
        Some(6)
    );
    assert_eq!(
        cmd::<Option<i64>>(&mut con, &["LPOS", "l", "c", "RANK", "-1"]),
        Some(7)
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut con, &["LPOS", "l", "c", "COUNT", "0"]),
        [2, 6, 7]
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut con, &["LPOS", "l", "c", "RANK", "-1", "COUNT", "2"]),
        [7, 6]
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut con, &["LPOS", "l", "c", "COUNT", "0", "MAXLEN", "3"]),
        [2]
    );
    assert_eq!(cmd::<Option<i64>>(&mut con, &["LPOS", "l", "zz"]), None);
    assert!(err(&mut con, &["LPOS", "l", "c", "RANK", "0"]).starts_with("ERR RANK can't be zero"));
    assert_eq!(
        err(&mut con, &["LPOS", "l", "c", "COUNT", "-1"]),
        "ERR COUNT can't be negative"
    );
    assert_eq!(
        err(&mut con, &["LPOS", "l", "c", "MAXLEN", "-1"]),
        "ERR MAXLEN can't be negative"
    );
}

#[test]
fn lmove_lmpop_and_wrongtype() {
    let (_s, mut con) = setup();
    let _: i64 = cmd(&mut con, &["RPUSH", "src", "a", "b", "c"]);
    assert_eq!(
        cmd::<String>(&mut con, &["LMOVE", "src", "dst", "RIGHT", "LEFT"]),
        "c"
    );
    assert_eq!(cmd::<String>(&mut con, &["RPOPLPUSH", "src", "dst"]), "b");
    assert_eq!(range(&mut con, "dst"), ["b", "c"]);
    // Rotation onto itself.
    assert_eq!(
        cmd::<String>(&mut con, &["LMOVE", "dst", "dst", "LEFT", "RIGHT"]),
        "b"
    );
    assert_eq!(range(&mut con, "dst"), ["c", "b"]);
    let _: String = cmd(&mut con, &["SET", "str", "x"]);
    assert!(err(&mut con, &["LMOVE", "src", "str", "LEFT", "LEFT"]).starts_with("WRONGTYPE"));
    // The source keeps its element when the destination has the wrong type.
    assert_eq!(range(&mut con, "src"), ["a"]);
    assert!(err(&mut con, &["LPUSH", "str", "x"]).starts_with("WRONGTYPE"));
    assert!(err(&mut con, &["LRANGE", "str", "0", "-1"]).starts_with("WRONGTYPE"));

    let v: (String, Vec<String>) = cmd(
        &mut con,
        &["LMPOP", "3", "none", "src", "dst", "LEFT", "COUNT", "5"],
    );
    assert_eq!(v, ("src".to_string(), vec!["a".to_string()]));
    let v: redis::Value = cmd(&mut con, &["LMPOP", "1", "none", "RIGHT"]);
    assert_eq!(v, redis::Value::Nil);
    assert_eq!(
        err(&mut con, &["LMPOP", "0", "a", "LEFT"]),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        err(&mut con, &["LMPOP", "1", "a", "LEFT", "COUNT", "0"]),
        "ERR count should be greater than 0"
    );
    assert_eq!(
        err(&mut con, &["LMPOP", "1", "a", "UP"]),
        "ERR syntax error"
    );
    assert_eq!(
        cmd::<String>(&mut con, &["OBJECT", "ENCODING", "dst"]),
        "quicklist"
    );
}

#[test]
fn blpop_returns_at_once_when_data_exists_and_times_out_otherwise() {
    let (_s, mut con) = setup();
    let _: i64 = cmd(&mut con, &["RPUSH", "b", "x"]);
    let v: (String, String) = cmd(&mut con, &["BLPOP", "a", "b", "0"]);
    assert_eq!(v, ("b".into(), "x".into()));
    let start = Instant::now();
    let v: redis::Value = cmd(&mut con, &["BLPOP", "a", "b", "0.1"]);
    assert_eq!(v, redis::Value::Nil);
    assert!(start.elapsed() >= Duration::from_millis(90));
    let v: redis::Value = cmd(&mut con, &["BLMOVE", "a", "b", "LEFT", "LEFT", "0.05"]);
    assert_eq!(v, redis::Value::Nil);
    assert_eq!(
        err(&mut con, &["BLPOP", "a", "-1"]),
        "ERR timeout is negative"
    );
    assert_eq!(
        err(&mut con, &["BLPOP", "a", "abc"]),
        "ERR timeout is not a float or out of range"
    );
}

#[test]
fn blocked_clients_are_served_in_the_order_they_blocked() {
    let (s, mut con) = setup();
    let mut handles = Vec::new();
    for i in 0..3 {
        let mut c = s.client();
        wait_blocked_clients(&mut con, i);
        handles.push(thread::spawn(move || {
            let v: (String, String) = cmd(&mut c, &["BRPOP", "q", "0"]);
            v.1
        }));
        wait_blocked_clients(&mut con, i + 1);
    }
    // One push of three elements: each waiter gets one, first come first served.
    let _: i64 = cmd(&mut con, &["RPUSH", "q", "1", "2", "3"]);
    let got: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, ["3", "2", "1"]);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "q"]), 0);
    wait_blocked_clients(&mut con, 0);
}

#[test]
fn blmove_chain_serves_the_client_blocked_on_the_target() {
    let (s, mut con) = setup();
    let mut c1 = s.client();
    let mut c2 = s.client();
    let h1 =
        thread::spawn(move || cmd::<String>(&mut c1, &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"]));
    wait_blocked_clients(&mut con, 1);
    let h2 = thread::spawn(move || cmd::<(String, String)>(&mut c2, &["BLPOP", "b", "0"]));
    wait_blocked_clients(&mut con, 2);
    let _: i64 = cmd(&mut con, &["LPUSH", "a", "v"]);
    assert_eq!(h1.join().unwrap(), "v");
    assert_eq!(h2.join().unwrap(), ("b".to_string(), "v".to_string()));
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "a", "b"]), 0);
}

#[test]
fn blmpop_with_count_and_brpoplpush_wrong_destination() {
    let (s, mut con) = setup();
    let mut c = s.client();
    let h = thread::spawn(move || {
        cmd::<(String, Vec<String>)>(
            &mut c,
            &["BLMPOP", "0", "2", "x", "y", "RIGHT", "COUNT", "2"],
        )
    });
    wait_blocked_clients(&mut con, 1);
    let _: i64 = cmd(&mut con, &["RPUSH", "y", "1", "2", "3"]);
    assert_eq!(
        h.join().unwrap(),
        ("y".to_string(), vec!["3".to_string(), "2".to_string()])
    );
    assert_eq!(range(&mut con, "y"), ["1"]);

    let _: String = cmd(&mut con, &["SET", "target", "str"]);
    let mut c = s.client();
    let h = thread::spawn(move || {
        let r: redis::RedisResult<String> = redis::cmd("BRPOPLPUSH")
            .arg("z")
            .arg("target")
            .arg("0")
            .query(&mut c);
        r.map_err(|e| ferrite_tests::error_text(&e))
    });
    wait_blocked_clients(&mut con, 1);
    let _: i64 = cmd(&mut con, &["RPUSH", "z", "v"]);
    let e = h.join().unwrap().unwrap_err();
    assert!(e.starts_with("WRONGTYPE"), "{e}");
    // The element stays where it was.
    assert_eq!(range(&mut con, "z"), ["v"]);
}

#[test]
fn client_unblock_ends_a_blocking_pop() {
    let (s, mut con) = setup();
    let mut c = s.client();
    let id: i64 = cmd(&mut c, &["CLIENT", "ID"]);
    let h = thread::spawn(move || {
        let r: redis::RedisResult<redis::Value> =
            redis::cmd("BLPOP").arg("k").arg("0").query(&mut c);
        let first = r.map_err(|e| ferrite_tests::error_text(&e));
        let r: redis::RedisResult<redis::Value> =
            redis::cmd("BLPOP").arg("k").arg("0").query(&mut c);
        (first, r.map_err(|e| ferrite_tests::error_text(&e)))
    });
    wait_blocked_clients(&mut con, 1);
    let list: String = cmd(&mut con, &["CLIENT", "LIST"]);
    assert!(list
        .lines()
        .any(|l| l.contains(&format!("id={id} ")) && l.contains("flags=b")));
    assert_eq!(
        cmd::<i64>(&mut con, &["CLIENT", "UNBLOCK", &id.to_string()]),
        1
    );
    wait_blocked_clients(&mut con, 1);
    assert_eq!(
        cmd::<i64>(&mut con, &["CLIENT", "UNBLOCK", &id.to_string(), "ERROR"]),
        1
    );
    let (first, second) = h.join().unwrap();
    assert_eq!(first, Ok(redis::Value::Nil));
    assert_eq!(
        second.unwrap_err(),
        "UNBLOCKED client unblocked via CLIENT UNBLOCK"
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["CLIENT", "UNBLOCK", &id.to_string()]),
        0
    );
}

#[test]
fn a_disconnected_waiter_never_swallows_an_element() {
    let (s, mut con) = setup();
    {
        let mut raw = s.raw_conn();
        raw.send(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nk\r\n$1\r\n0\r\n");
        wait_blocked_clients(&mut con, 1);
    }
    // The connection is gone: the server notices and forgets the waiter.
    wait_blocked_clients(&mut con, 0);
    let _: i64 = cmd(&mut con, &["RPUSH", "k", "kept"]);
    assert_eq!(range(&mut con, "k"), ["kept"]);
}

#[test]
fn swapdb_wakes_a_client_blocked_in_the_swapped_db() {
    let (s, mut con) = setup();
    let _: String = cmd(&mut con, &["SELECT", "1"]);
    let _: i64 = cmd(&mut con, &["RPUSH", "k", "from-db1"]);
    let _: String = cmd(&mut con, &["SELECT", "0"]);
    let mut c = s.client();
    let h = thread::spawn(move || cmd::<(String, String)>(&mut c, &["BLPOP", "k", "0"]));
    wait_blocked_clients(&mut con, 1);
    let _: String = cmd(&mut con, &["SWAPDB", "0", "1"]);
    assert_eq!(h.join().unwrap().1, "from-db1");
}

/// Parses the BRPOP replies found in `buf` (`*2 key job` or `*-1`), returning
/// the jobs.
fn jobs_in(buf: &[u8]) -> Vec<u64> {
    let text = String::from_utf8_lossy(buf);
    let lines: Vec<&str> = text.split("\r\n").collect();
    let mut jobs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i] == "*2" && i + 4 < lines.len() {
            jobs.push(lines[i + 4].parse().expect("job id"));
            i += 5;
        } else {
            i += 1;
        }
    }
    jobs
}

/// The job-queue pattern (Sidekiq, RQ, Celery): 4 producers push 100k jobs
/// while 4 consumers wait in BRPOP and 2 flaky consumers keep blocking and
/// hanging up mid-wait. Every job is delivered exactly once: a consumer that
/// hangs up is never handed a job it cannot receive. The flaky consumers
/// half-close (shutdown of their write side) and then read until the server
/// closes, so a job served just before the hang-up is still seen by the test.
#[test]
fn job_queue_delivers_every_job_exactly_once_through_disconnects() {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const PRODUCERS: u64 = 4;
    const PER_PRODUCER: u64 = 25_000;
    const TOTAL: usize = (PRODUCERS * PER_PRODUCER) as usize;

    let s = TestServer::start();
    let received = Arc::new(Mutex::new(Vec::<u64>::with_capacity(TOTAL)));
    let count = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();

    for _ in 0..4 {
        let (mut c, received, count, done) =
            (s.client(), received.clone(), count.clone(), done.clone());
        threads.push(thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let v: Option<(String, u64)> = cmd(&mut c, &["BRPOP", "jobs", "0.2"]);
                if let Some((_, job)) = v {
                    received.lock().unwrap().push(job);
                    if count.fetch_add(1, Ordering::Relaxed) + 1 == TOTAL {
                        done.store(true, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let hangups = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let (addr, received, count, done, hangups) = (
            s.addr(),
            received.clone(),
            count.clone(),
            done.clone(),
            hangups.clone(),
        );
        threads.push(thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let mut sock = TcpStream::connect(addr).expect("connect");
                sock.write_all(b"*3\r\n$5\r\nBRPOP\r\n$4\r\njobs\r\n$1\r\n0\r\n")
                    .expect("send");
                thread::sleep(Duration::from_millis(2));
                // Hang up mid-wait, then collect whatever was already sent.
                let _ = sock.shutdown(Shutdown::Write);
                sock.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let mut buf = Vec::new();
                let _ = sock.read_to_end(&mut buf);
                let jobs = jobs_in(&buf);
                if jobs.is_empty() {
                    hangups.fetch_add(1, Ordering::Relaxed);
                }
                for job in jobs {
                    received.lock().unwrap().push(job);
                    if count.fetch_add(1, Ordering::Relaxed) + 1 == TOTAL {
                        done.store(true, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let mut c = s.client();
        producers.push(thread::spawn(move || {
            for chunk in (0..PER_PRODUCER).collect::<Vec<_>>().chunks(100) {
                let mut pipe = redis::pipe();
                for i in chunk {
                    pipe.cmd("LPUSH")
                        .arg("jobs")
                        .arg(p * PER_PRODUCER + i)
                        .ignore();
                }
                pipe.query::<()>(&mut c).expect("push");
            }
        }));
    }
    for p in producers {
        p.join().expect("producer");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done.load(Ordering::Relaxed) {
        assert!(
            Instant::now() < deadline,
            "only {} of {TOTAL} jobs delivered",
            count.load(Ordering::Relaxed)
        );
        thread::sleep(Duration::from_millis(20));
    }
    for t in threads {
        t.join().expect("consumer");
    }
    let mut all = received.lock().unwrap().clone();
    all.sort_unstable();
    assert_eq!(all.len(), TOTAL, "every job once, none twice");
    all.dedup();
    assert_eq!(all.len(), TOTAL, "no job delivered twice");
    assert!(
        hangups.load(Ordering::Relaxed) > 0,
        "the flaky consumers did hang up mid-wait"
    );
    let mut con = s.client();
    assert_eq!(cmd::<i64>(&mut con, &["LLEN", "jobs"]), 0);
}
