//! `fanout`: the pub/sub fan-out benchmark of issue 5.
//!
//! One publisher, S subscribers on one channel, M messages: the publisher
//! sends `PUBLISH` in pipelined batches and every subscriber reads until it
//! has the bytes of all M messages. The figure is messages delivered per
//! second (M x S over the time from the first `PUBLISH` to the last byte
//! reaching the last subscriber), measured on each server in turn, for a
//! number of rounds, alternating which server goes first. It prints each
//! round, the median per server and the median of the per-round ratios
//! (Ferrite / Redis), the way `bench-vs-redis.sh` pairs its runs.
//!
//! Clients are plain sockets and threads (std only): a subscriber counts
//! bytes instead of parsing frames (every message frame has the same
//! length), so the client side costs little CPU and the server is what is
//! measured. Talks plain RESP, so it runs against any Redis-compatible
//! server.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: fanout [--ferrite HOST:PORT] [--redis HOST:PORT] [--subscribers N] \
[--messages N] [--payload BYTES] [--batch N] [--rounds N]";

/// What the command line asked for.
struct Options {
    servers: Vec<(&'static str, String)>,
    subscribers: usize,
    messages: usize,
    payload: usize,
    batch: usize,
    rounds: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        servers: Vec::new(),
        subscribers: 100,
        messages: 20_000,
        payload: 64,
        batch: 50,
        rounds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag}: not a positive integer: {v}"))
        };
        match flag.as_str() {
            "--ferrite" => o.servers.push(("ferrite", v)),
            "--redis" => o.servers.push(("redis", v)),
            "--subscribers" => o.subscribers = num(&v)?,
            "--messages" => o.messages = num(&v)?,
            "--payload" => o.payload = num(&v)?,
            "--batch" => o.batch = num(&v)?,
            "--rounds" => o.rounds = num(&v)?,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if o.servers.is_empty() {
        return Err(format!("name at least one server\n{USAGE}"));
    }
    Ok(o)
}

/// The RESP2 frame a subscriber receives for one message.
fn message_frame(channel: &str, payload: &[u8]) -> usize {
    let bulk = |n: usize| format!("${n}\r\n").len() + n + 2;
    "*3\r\n".len() + bulk("message".len()) + bulk(channel.len()) + bulk(payload.len())
}

/// Reads one RESP2 reply line by line until a whole reply of `lines`
/// lines has arrived (enough for the fixed-shape replies used here).
fn read_lines(r: &mut impl BufRead, lines: usize) -> io::Result<()> {
    let mut s = String::new();
    for _ in 0..lines {
        s.clear();
        if r.read_line(&mut s)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// One measured run: messages delivered per second.
fn run_once(addr: &str, o: &Options, channel: &str) -> io::Result<f64> {
    let payload = vec![b'x'; o.payload];
    let frame = message_frame(channel, &payload);
    let want = frame * o.messages;
    // Subscribe everyone first; the barrier releases the publisher only once
    // every subscription is confirmed.
    let ready = Arc::new(Barrier::new(o.subscribers + 1));
    let mut subs = Vec::with_capacity(o.subscribers);
    for _ in 0..o.subscribers {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let cmd = format!(
            "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n",
            channel.len()
        );
        s.write_all(cmd.as_bytes())?;
        let ready = ready.clone();
        subs.push(thread::spawn(move || -> io::Result<Instant> {
            let mut r = BufReader::with_capacity(64 * 1024, s);
            // *3, $9, subscribe, $len, channel, :1
            let res = read_lines(&mut r, 6);
            ready.wait();
            res?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = r.buffer().len();
            r.consume(got);
            let mut s = r.into_inner();
            while got < want {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                got += n;
            }
            Ok(Instant::now())
        }));
    }
    ready.wait();
    let mut p = BufReader::new(TcpStream::connect(addr)?);
    let mut batch = Vec::new();
    for _ in 0..o.batch {
        batch.extend_from_slice(
            format!(
                "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{channel}\r\n${}\r\n",
                channel.len(),
                payload.len()
            )
            .as_bytes(),
        );
        batch.extend_from_slice(&payload);
        batch.extend_from_slice(b"\r\n");
    }
    let start = Instant::now();
    let mut sent = 0;
    while sent < o.messages {
        let n = o.batch.min(o.messages - sent);
        let len = batch.len() / o.batch * n;
        p.get_mut().write_all(&batch[..len])?;
        // One `:<receivers>` line per PUBLISH.
        read_lines(&mut p, n)?;
        sent += n;
    }
    let mut last = start;
    for h in subs {
        let t = h
            .join()
            .map_err(|_| io::Error::other("subscriber thread panicked"))??;
        last = last.max(t);
    }
    let secs = last.duration_since(start).as_secs_f64().max(1e-9);
    Ok((o.messages * o.subscribers) as f64 / secs)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "fanout: 1 publisher (PUBLISH pipelined {} deep), {} subscribers, {} messages of {} B, {} rounds",
        o.batch, o.subscribers, o.messages, o.payload, o.rounds
    );
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); o.servers.len()];
    for round in 0..o.rounds {
        // Alternate which server goes first, as bench-vs-redis does.
        let mut order: Vec<usize> = (0..o.servers.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (name, addr) = &o.servers[i];
            let channel = format!("fanout:{round}");
            match run_once(addr, &o, &channel) {
                Ok(rate) => {
                    println!("round {} {name:8} {rate:>12.0} msg/s delivered", round + 1);
                    results[i].push(rate);
                }
                Err(e) => {
                    eprintln!("fanout: {name} at {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    for (i, (name, _)) in o.servers.iter().enumerate() {
        let mut v = results[i].clone();
        println!("median   {name:8} {:>12.0} msg/s delivered", median(&mut v));
    }
    if o.servers.len() == 2 {
        let (fi, ri) = if o.servers[0].0 == "ferrite" {
            (0, 1)
        } else {
            (1, 0)
        };
        let mut ratios: Vec<f64> = results[fi]
            .iter()
            .zip(&results[ri])
            .map(|(f, r)| f / r)
            .collect();
        let lo = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().cloned().fold(0.0, f64::max);
        println!(
            "fanout: ferrite/redis delivered-messages ratio {:.2} (median of per-round ratios, range {lo:.2}-{hi:.2})",
            median(&mut ratios)
        );
    }
    ExitCode::SUCCESS
}
