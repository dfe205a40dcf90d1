//! Pub/Sub fan-out benchmark: one publisher, 100 subscribers on one channel.
//! Prints messages delivered per second (messages × subscribers / seconds
//! until the last subscriber has read the last message).
//!
//! Run it against Ferrite and real Redis on the same machine, one after the
//! other, and compare the figures:
//!
//! ```sh
//! cargo run --release -p ferrite-tests --example pubsub_fanout -- 6379 [messages]
//! ```
//!
//! Raw sockets keep the client cheap: a subscriber counts bytes, since every
//! message frame has the same length.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

const SUBSCRIBERS: usize = 100;
const PAYLOAD: &[u8] = b"0123456789abcdef0123456789abcdef";

fn frame(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let port: u16 = argv.next().and_then(|p| p.parse().ok()).unwrap_or(6379);
    let messages: usize = argv.next().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let addr = format!("127.0.0.1:{port}");
    let push = frame(&[b"message", b"fanout", PAYLOAD]);
    let ready = Arc::new(Barrier::new(SUBSCRIBERS + 1));
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let (addr, ready, len) = (addr.clone(), ready.clone(), push.len());
        subs.push(thread::spawn(move || {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(&frame(&[b"SUBSCRIBE", b"fanout"]))
                .expect("subscribe");
            // The confirmation: *3 $9 subscribe $6 fanout :1
            let want_confirm = b"*3\r\n$9\r\nsubscribe\r\n$6\r\nfanout\r\n:1\r\n".len();
            let mut got = 0usize;
            let mut buf = vec![0u8; 1 << 16];
            while got < want_confirm {
                got += s.read(&mut buf).expect("read");
            }
            let mut bytes = got - want_confirm;
            ready.wait();
            while bytes < messages * len {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0, "server closed the subscriber");
                bytes += n;
            }
            Instant::now()
        }));
    }
    ready.wait();
    let mut publisher = TcpStream::connect(&addr).expect("connect");
    let one = frame(&[b"PUBLISH", b"fanout", PAYLOAD]);
    let start = Instant::now();
    let reader = {
        let mut r = publisher.try_clone().expect("clone");
        thread::spawn(move || {
            // Drain the integer replies (":100\r\n" each).
            let mut buf = vec![0u8; 1 << 16];
            let want = messages * format!(":{SUBSCRIBERS}\r\n").len();
            let mut got = 0;
            while got < want {
                let n = r.read(&mut buf).expect("read");
                assert!(n > 0);
                got += n;
            }
        })
    };
    let batch: Vec<u8> = one.repeat(100);
    let mut sent = 0;
    while sent < messages {
        let k = (messages - sent).min(100);
        publisher
            .write_all(&batch[..k * one.len()])
            .expect("publish");
        sent += k;
    }
    reader.join().expect("publisher replies");
    let last = subs
        .into_iter()
        .map(|h| h.join().expect("subscriber"))
        .max()
        .expect("subscribers");
    let secs = (last - start).as_secs_f64();
    println!(
        "fanout: {messages} messages x {SUBSCRIBERS} subscribers in {secs:.3} s = {:.0} deliveries/s",
        (messages * SUBSCRIBERS) as f64 / secs
    );
}
