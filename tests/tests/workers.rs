//! Connections moving between worker threads (`server/src/workers.rs`):
//! a move happens between batches and must lose nothing of the
//! connection's state, its unread input or its replies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferrite_tests::{cmd, TestServer};

fn four_workers() -> TestServer {
    TestServer::with_args_env(&[], &[("FERRITE_WORKERS", "4")])
}

/// Polls `DEBUG WORKERS` until `ok` accepts the per-worker counts.
fn wait_workers(ctl: &mut redis::Connection, ok: impl Fn(&[i64]) -> bool) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counts: Vec<i64> = cmd(ctl, &["DEBUG", "WORKERS"]);
        if ok(&counts) {
            return counts;
        }
        assert!(Instant::now() < deadline, "workers stayed at {counts:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn moved_connections_keep_their_state() {
    let server = four_workers();
    let mut ctl = server.client();
    let counts: Vec<i64> = cmd(&mut ctl, &["DEBUG", "WORKERS"]);
    assert_eq!(counts.len(), 4);
    assert_eq!(counts.iter().sum::<i64>(), 1);

    let mut db5 = server.client();
    let _: () = cmd(&mut db5, &["SELECT", "5"]);
    let _: () = cmd(&mut db5, &["SET", "k", "in-db-5"]);
    let mut named = server.client();
    let _: () = cmd(&mut named, &["CLIENT", "SETNAME", "mover"]);
    let mut queued = server.client();
    let _: () = cmd(&mut queued, &["MULTI"]);
    let _: () = cmd(&mut queued, &["INCR", "n"]);
    let mut watcher = server.client();
    let _: () = cmd(&mut watcher, &["WATCH", "w"]);
    let mut sub = server.raw_conn();
    sub.send(b"SUBSCRIBE ch\r\n");
    let _ = sub.read_until(|b| b.ends_with(b":1\r\n"), Duration::from_secs(5));

    let _: () = cmd(&mut ctl, &["DEBUG", "SET-ACTIVE-WORKERS", "4"]);
    // Each connection moves after its next batch; the subscriber after a
    // message.
    for c in [&mut db5, &mut named, &mut queued, &mut watcher] {
        let _: redis::Value = cmd(c, &["PING"]);
    }
    let delivered: i64 = cmd(&mut ctl, &["PUBLISH", "ch", "first"]);
    assert_eq!(delivered, 1);
    let _: redis::Value = cmd(&mut ctl, &["PING"]);
    let counts = wait_workers(&mut ctl, |c| {
        c.iter().sum::<i64>() == 6
            && c.iter().all(|&n| n <= 2)
            && c.iter().filter(|&&n| n > 0).count() >= 3
    });
    assert_eq!(counts.iter().sum::<i64>(), 6);

    let v: String = cmd(&mut db5, &["GET", "k"]);
    assert_eq!(v, "in-db-5");
    let name: String = cmd(&mut named, &["CLIENT", "GETNAME"]);
    assert_eq!(name, "mover");
    let _: () = cmd(&mut ctl, &["SET", "w", "changed"]);
    let _: () = cmd(&mut watcher, &["MULTI"]);
    let _: () = cmd(&mut watcher, &["SET", "w", "mine"]);
    let r: Option<Vec<String>> = cmd(&mut watcher, &["EXEC"]);
    assert_eq!(r, None, "WATCH survives the move");
    // INCR, then the PING that made it move.
    let r: (i64, String) = cmd(&mut queued, &["EXEC"]);
    assert_eq!(r, (1, "PONG".into()), "the MULTI queue survives the move");
    let delivered: i64 = cmd(&mut ctl, &["PUBLISH", "ch", "second"]);
    assert_eq!(delivered, 1);
    let got = sub.read_until(|b| b.ends_with(b"$6\r\nsecond\r\n"), Duration::from_secs(5));
    let got = String::from_utf8_lossy(&got);
    assert!(got.contains("first") && got.contains("second"), "{got}");

    // Back to one worker: everyone moves after its next command.
    let _: () = cmd(&mut ctl, &["DEBUG", "SET-ACTIVE-WORKERS", "1"]);
    for c in [&mut db5, &mut named, &mut queued, &mut watcher] {
        let _: redis::Value = cmd(c, &["PING"]);
    }
    let _: i64 = cmd(&mut ctl, &["PUBLISH", "ch", "third"]);
    let _: redis::Value = cmd(&mut ctl, &["PING"]);
    wait_workers(&mut ctl, |c| c[0] == 6 && c[1..].iter().all(|&n| n == 0));
    let v: String = cmd(&mut db5, &["GET", "k"]);
    assert_eq!(v, "in-db-5");
    let clients: String = cmd(&mut ctl, &["CLIENT", "LIST"]);
    assert_eq!(clients.lines().count(), 6);
    assert!(clients.contains("name=mover"));
}

#[test]
fn a_pipeline_in_flight_survives_moves() {
    let server = four_workers();
    let mut ctl = server.client();
    const N: usize = 20_000;
    let mut s = TcpStream::connect(server.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            // Small writes with pauses, so commands arrive split across
            // reads and batches while the connection moves.
            let one = b"*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n";
            for chunk in one.repeat(N).chunks(997) {
                w.write_all(chunk).unwrap();
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };
    let toggler = {
        let mut c = server.client();
        std::thread::spawn(move || {
            for i in 0..60 {
                let k = if i % 2 == 0 { "4" } else { "1" };
                let _: () = cmd(&mut c, &["DEBUG", "SET-ACTIVE-WORKERS", k]);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // Every reply arrives, in order: 1, 2, ..., N.
    let mut expected = String::new();
    for i in 1..=N {
        expected.push_str(&format!(":{i}\r\n"));
    }
    let mut got = Vec::with_capacity(expected.len());
    let mut buf = [0u8; 65536];
    while got.len() < expected.len() {
        let n = s.read(&mut buf).expect("replies");
        assert!(n > 0, "connection closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    writer.join().unwrap();
    toggler.join().unwrap();
    assert!(got == expected.as_bytes(), "replies out of order or lost");
    let v: i64 = cmd(&mut ctl, &["GET", "counter"]);
    assert_eq!(v, N as i64);
}

#[test]
fn set_active_workers_checks_its_argument() {
    let server = four_workers();
    let mut ctl = server.client();
    let e = ferrite_tests::err(&mut ctl, &["DEBUG", "SET-ACTIVE-WORKERS", "5"]);
    assert!(e.contains("between 0 and the number of workers (4)"), "{e}");
    let e = ferrite_tests::err(&mut ctl, &["DEBUG", "SET-ACTIVE-WORKERS", "x"]);
    assert!(e.starts_with("ERR value is not an integer"), "{e}");
    let _: () = cmd(&mut ctl, &["DEBUG", "SET-ACTIVE-WORKERS", "0"]);
}
