//! Memory accounting: `used_memory` against the process's real growth
//! while a million keys of every type and encoding are loaded, and the
//! `MEMORY` command and `INFO memory` fields as Redis 7.0 answers them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferrite_tests::{cmd, err, info_field, info_int, TestServer};
use redis::Connection;

/// Commands per pipelined batch: their replies (one short line each) stay
/// well inside the socket buffers, so writing a batch before reading its
/// replies cannot stall either side.
const BATCH: usize = 2000;

/// Sends commands over a raw connection in big pipelined batches. Every
/// command used here answers one line (`:n` or `+OK`), so a batch's replies
/// are counted by line ends without parsing; an error reply fails the test.
struct Loader {
    stream: TcpStream,
    out: Vec<u8>,
    pending: usize,
    line_start: bool,
}

impl Loader {
    fn new(server: &TestServer) -> Self {
        let stream = TcpStream::connect(server.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        Loader {
            stream,
            out: Vec::with_capacity(1 << 20),
            pending: 0,
            line_start: true,
        }
    }

    fn send(&mut self, args: &[&[u8]]) {
        self.out
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            self.out
                .extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
        self.pending += 1;
        if self.pending >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending == 0 {
            return;
        }
        self.stream.write_all(&self.out).expect("write batch");
        self.out.clear();
        let mut buf = [0u8; 64 * 1024];
        while self.pending > 0 {
            let n = self.stream.read(&mut buf).expect("read replies");
            assert!(n > 0, "server closed the connection");
            for &b in &buf[..n] {
                assert!(
                    !(self.line_start && b == b'-'),
                    "error reply while loading: {}",
                    String::from_utf8_lossy(&buf[..n])
                );
                self.line_start = b == b'\n';
                if b == b'\n' {
                    self.pending -= 1;
                }
            }
        }
    }
}

/// A small deterministic generator (xorshift), so every run loads the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// `len` printable bytes.
    fn text(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| b'a' + (self.next() % 26) as u8).collect()
    }
}

fn used_memory(c: &mut Connection) -> i64 {
    info_int(c, "memory", "used_memory")
}

/// The server process's resident set from `/proc/PID/status` (`VmRSS`).
fn vm_rss(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// RSS once it stops moving: the allocator gives freed pages (old hash
/// tables after a resize, pipelining buffers) back a moment after the
/// load, and on a loaded machine that moment can be late.
fn settled_rss(pid: u32) -> i64 {
    let mut last = vm_rss(pid);
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        let now = vm_rss(pid);
        if (now - last).abs() <= 256 * 1024 {
            return now;
        }
        last = now;
    }
    last
}

/// One kind of data, loaded in one go and measured on its own.
struct Phase {
    name: &'static str,
    /// Keys of this kind in the mixed million.
    keys: usize,
    /// Keys loaded when the kind is measured alone: enough for tens of
    /// megabytes, so the RSS's 2 MiB steps (transparent huge pages) stay
    /// small beside the growth.
    alone: usize,
    load: fn(&mut Loader, &mut Rng, usize),
}

fn key(prefix: &str, i: usize) -> Vec<u8> {
    format!("{prefix}:{i}").into_bytes()
}

/// `MSET` with 100 pairs per command, values from `value`.
fn mset(l: &mut Loader, rng: &mut Rng, n: usize, prefix: &str, value: fn(&mut Rng) -> Vec<u8>) {
    let mut i = 0;
    while i < n {
        let end = (i + 100).min(n);
        let pairs: Vec<(Vec<u8>, Vec<u8>)> =
            (i..end).map(|j| (key(prefix, j), value(rng))).collect();
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for (k, v) in &pairs {
            args.push(k);
            args.push(v);
        }
        l.send(&args);
        i = end;
    }
}

/// One command per key: `name key elements...`, with `count` elements from `elem`.
fn collections(
    l: &mut Loader,
    rng: &mut Rng,
    n: usize,
    prefix: &str,
    name: &[u8],
    count: (usize, usize),
    elem: Elems,
) {
    for i in 0..n {
        let k = key(prefix, i);
        let m = rng.range(count.0, count.1);
        let elems = elem(rng, m, 0);
        let mut args: Vec<&[u8]> = vec![name, &k];
        args.extend(elems.iter().map(Vec::as_slice));
        l.send(&args);
    }
}

/// A few big keys: `per_key` elements each on average (half to one and a
/// half times as many), sent 100 at a time.
fn big_collections(
    l: &mut Loader,
    rng: &mut Rng,
    n: usize,
    prefix: &str,
    name: &[u8],
    per_key: usize,
    elem: Elems,
) {
    for i in 0..n {
        let k = key(prefix, i);
        let per_key = rng.range(per_key / 2, per_key * 3 / 2);
        let mut done = 0;
        while done < per_key {
            let m = (per_key - done).min(100);
            let elems = elem(rng, m, done);
            let mut args: Vec<&[u8]> = vec![name, &k];
            args.extend(elems.iter().map(Vec::as_slice));
            l.send(&args);
            done += m;
        }
    }
}

fn short_text(rng: &mut Rng) -> Vec<u8> {
    let n = rng.range(4, 40);
    rng.text(n)
}

fn long_text(rng: &mut Rng) -> Vec<u8> {
    let n = rng.range(60, 1000);
    rng.text(n)
}

fn integer(rng: &mut Rng) -> Vec<u8> {
    (rng.next() % 10_000_000_000).to_string().into_bytes()
}

/// `n` elements (or field/value, score/member pairs) for a collection
/// command; members are numbered from `first` so chunks never collide.
type Elems = fn(&mut Rng, usize, usize) -> Vec<Vec<u8>>;

fn words(rng: &mut Rng, n: usize, _first: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| short_text(rng)).collect()
}

fn fields(rng: &mut Rng, n: usize, first: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(2 * n);
    for j in first..first + n {
        out.push(format!("field{j}").into_bytes());
        out.push(short_text(rng));
    }
    out
}

fn ints(rng: &mut Rng, n: usize, _first: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| (rng.next() % 1_000_000).to_string().into_bytes())
        .collect()
}

fn members(rng: &mut Rng, n: usize, first: usize) -> Vec<Vec<u8>> {
    (first..first + n)
        .map(|j| {
            let mut m = short_text(rng);
            m.extend_from_slice(format!(":{j}").as_bytes());
            m
        })
        .collect()
}

fn scored(rng: &mut Rng, n: usize, first: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(2 * n);
    for j in first..first + n {
        out.push(format!("{}", rng.next() % 100_000).into_bytes());
        let mut m = short_text(rng);
        m.extend_from_slice(format!(":{j}").as_bytes());
        out.push(m);
    }
    out
}

const PHASES: &[Phase] = &[
    Phase {
        name: "short strings (embstr)",
        keys: 250_000,
        alone: 250_000,
        load: |l, r, n| mset(l, r, n, "s", short_text),
    },
    Phase {
        name: "integer strings",
        keys: 150_000,
        alone: 250_000,
        load: |l, r, n| mset(l, r, n, "i", integer),
    },
    Phase {
        name: "long strings (raw)",
        keys: 50_000,
        alone: 50_000,
        load: |l, r, n| mset(l, r, n, "r", long_text),
    },
    Phase {
        name: "strings with a TTL",
        keys: 100_000,
        alone: 200_000,
        load: |l, r, n| {
            for i in 0..n {
                let k = key("t", i);
                let v = short_text(r);
                l.send(&[b"SET", &k, &v, b"EX", b"100000"]);
            }
        },
    },
    Phase {
        name: "small lists",
        keys: 100_000,
        alone: 100_000,
        load: |l, r, n| collections(l, r, n, "l", b"RPUSH", (1, 10), words),
    },
    Phase {
        name: "large lists",
        keys: 100,
        alone: 1_000,
        load: |l, r, n| big_collections(l, r, n, "L", b"RPUSH", 1000, words),
    },
    Phase {
        name: "small hashes (listpack)",
        keys: 100_000,
        alone: 100_000,
        load: |l, r, n| collections(l, r, n, "h", b"HSET", (1, 10), fields),
    },
    Phase {
        name: "large hashes (hashtable)",
        keys: 100,
        alone: 500,
        load: |l, r, n| big_collections(l, r, n, "H", b"HSET", 1000, fields),
    },
    Phase {
        name: "small sets (intset)",
        keys: 100_000,
        alone: 200_000,
        load: |l, r, n| collections(l, r, n, "n", b"SADD", (1, 10), ints),
    },
    Phase {
        name: "large sets (intset)",
        keys: 1000,
        alone: 8_000,
        load: |l, r, n| big_collections(l, r, n, "N", b"SADD", 300, ints),
    },
    Phase {
        name: "small sets (hashtable)",
        keys: 48_600,
        alone: 100_000,
        load: |l, r, n| collections(l, r, n, "m", b"SADD", (1, 10), members),
    },
    Phase {
        name: "large sets (hashtable)",
        keys: 100,
        alone: 600,
        load: |l, r, n| big_collections(l, r, n, "M", b"SADD", 1000, members),
    },
    Phase {
        name: "small sorted sets (listpack)",
        keys: 100_000,
        alone: 100_000,
        load: |l, r, n| collections(l, r, n, "z", b"ZADD", (1, 10), scored),
    },
    Phase {
        name: "large sorted sets (skiplist)",
        keys: 100,
        alone: 400,
        load: |l, r, n| big_collections(l, r, n, "Z", b"ZADD", 1000, scored),
    },
];

/// Growth of `used_memory` and of the RSS over one phase.
struct Growth {
    name: &'static str,
    keys: usize,
    used: i64,
    rss: i64,
}

impl Growth {
    fn ratio(&self) -> f64 {
        self.used as f64 / self.rss.max(1) as f64
    }

    fn print(&self) {
        println!(
            "{:<30} {:>8} keys  used_memory +{:>11}  rss +{:>11}  ratio {:.3}",
            self.name,
            self.keys,
            self.used,
            self.rss,
            self.ratio()
        );
    }
}

/// Starts a server, loads `(phase, keys)` one after the other through
/// pipelined commands, and measures each phase's growth; the last entry is
/// the whole load's.
fn load_and_measure(phases: &[(&Phase, usize)]) -> Vec<Growth> {
    let server = TestServer::start();
    let mut c = server.client();
    let pid: u32 = info_field(&mut c, "server", "process_id")
        .parse()
        .expect("pid");
    let mut loader = Loader::new(&server);
    // Warm up once so that lazily built structures (thread heaps,
    // connection buffers) exist before the first measurement.
    loader.send(&[b"SET", b"warmup", b"x"]);
    loader.flush();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let used0 = used_memory(&mut c);
    let rss0 = settled_rss(pid);
    let (mut used_before, mut rss_before) = (used0, rss0);
    let mut out = Vec::new();
    let mut keys = 0;
    for &(p, n) in phases {
        (p.load)(&mut loader, &mut rng, n);
        loader.flush();
        keys += n;
        let rss = settled_rss(pid);
        let used = used_memory(&mut c);
        let g = Growth {
            name: p.name,
            keys: n,
            used: used - used_before,
            rss: rss - rss_before,
        };
        g.print();
        out.push(g);
        (used_before, rss_before) = (used, rss);
    }
    let dbsize: usize = cmd(&mut c, &["DBSIZE"]);
    assert_eq!(dbsize, keys + 1, "every key was loaded");
    let total = Growth {
        name: "total",
        keys,
        used: used_before - used0,
        rss: rss_before - rss0,
    };
    total.print();
    out.push(total);
    out
}

/// The issue's acceptance test: after a million keys of mixed types (every
/// encoding, with and without TTLs) `used_memory` grew by the process's
/// real growth within 10%. Each kind's own ratio is printed too; one phase
/// of a few megabytes is blurred by the RSS's steps (2 MiB with transparent
/// huge pages) and by what the previous phase freed (a resized table), so
/// the per-kind check is the next test's, where each kind loads alone.
#[cfg(target_os = "linux")]
#[test]
fn used_memory_follows_rss_growth_for_a_million_mixed_keys() {
    let started = Instant::now();
    let phases: Vec<(&Phase, usize)> = PHASES.iter().map(|p| (p, p.keys)).collect();
    let growth = load_and_measure(&phases);
    let total = growth.last().expect("total");
    assert_eq!(total.keys, 1_000_000);
    println!("loaded in {:.1}s", started.elapsed().as_secs_f64());
    assert!(
        (0.9..=1.1).contains(&total.ratio()),
        "used_memory grew by {}, RSS by {}: ratio {:.3}",
        total.used,
        total.rss,
        total.ratio()
    );
}

/// Each kind of data alone in a fresh server, tens of megabytes of it:
/// `used_memory` grows with the RSS within 10%, so no type's estimate is
/// off with another's error hiding it. About a minute in a debug build, so
/// it runs on request: `cargo test -p ferrite-tests --test memory --
/// --ignored --nocapture`.
///
/// It measures the host as configured. Collections that grow by doubling
/// (list rings, skip-list arrays) hold capacity they have not written yet;
/// `used_memory` counts it, as Redis counts what its allocator reserved,
/// and with transparent huge pages (mimalloc asks for them) it is resident.
/// Where huge pages are off (`never`, or `MIMALLOC_ALLOW_THP=0` in the
/// environment, which the server inherits) those two kinds read 10-35%
/// over their RSS.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "about a minute in a debug build; run with --ignored"]
fn used_memory_follows_rss_growth_for_each_type_alone() {
    let mut bad = Vec::new();
    for p in PHASES {
        let growth = load_and_measure(&[(p, p.alone)]);
        let g = &growth[0];
        if !(0.9..=1.1).contains(&g.ratio()) {
            bad.push(format!("{}: ratio {:.3}", g.name, g.ratio()));
        }
    }
    assert!(bad.is_empty(), "{bad:?}");
}

/// `INFO memory` field names, in order, as Redis 7.0.15 prints them.
const REDIS_INFO_MEMORY: &[&str] = &[
    "used_memory",
    "used_memory_human",
    "used_memory_rss",
    "used_memory_rss_human",
    "used_memory_peak",
    "used_memory_peak_human",
    "used_memory_peak_perc",
    "used_memory_overhead",
    "used_memory_startup",
    "used_memory_dataset",
    "used_memory_dataset_perc",
    "allocator_allocated",
    "allocator_active",
    "allocator_resident",
    "total_system_memory",
    "total_system_memory_human",
    "used_memory_lua",
    "used_memory_vm_eval",
    "used_memory_lua_human",
    "used_memory_scripts_eval",
    "number_of_cached_scripts",
    "number_of_functions",
    "number_of_libraries",
    "used_memory_vm_functions",
    "used_memory_vm_total",
    "used_memory_vm_total_human",
    "used_memory_functions",
    "used_memory_scripts",
    "used_memory_scripts_human",
    "maxmemory",
    "maxmemory_human",
    "maxmemory_policy",
    "allocator_frag_ratio",
    "allocator_frag_bytes",
    "allocator_rss_ratio",
    "allocator_rss_bytes",
    "rss_overhead_ratio",
    "rss_overhead_bytes",
    "mem_fragmentation_ratio",
    "mem_fragmentation_bytes",
    "mem_not_counted_for_evict",
    "mem_replication_backlog",
    "mem_total_replication_buffers",
    "mem_clients_slaves",
    "mem_clients_normal",
    "mem_cluster_links",
    "mem_aof_buffer",
    "mem_allocator",
    "active_defrag_running",
    "lazyfree_pending_objects",
    "lazyfreed_objects",
];

/// `INFO memory` as (field, value) pairs, in order.
fn info_memory(c: &mut Connection) -> Vec<(String, String)> {
    let info: String = cmd(c, &["INFO", "memory"]);
    let mut lines = info.lines();
    assert_eq!(lines.next(), Some("# Memory"));
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("{l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn field<'a>(info: &'a [(String, String)], name: &str) -> &'a str {
    &info
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
}

fn int_field(info: &[(String, String)], name: &str) -> i64 {
    field(info, name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not an integer"))
}

fn float_field(info: &[(String, String)], name: &str) -> f64 {
    field(info, name)
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// Stores `n` strings of `size` bytes under `prefix:i`.
fn big_strings(c: &mut Connection, prefix: &str, n: usize, size: usize) {
    let value = vec![b'x'; size];
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SET")
            .arg(format!("{prefix}:{i}"))
            .arg(&value)
            .ignore();
    }
    let () = pipe.query(c).expect("SET pipeline");
}

#[test]
fn info_memory_has_redis_7_fields_in_order() {
    let server = TestServer::start();
    let mut c = server.client();
    let info = info_memory(&mut c);
    let names: Vec<&str> = info.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, REDIS_INFO_MEMORY);
    let used = int_field(&info, "used_memory");
    let rss = int_field(&info, "used_memory_rss");
    assert!(used > 0 && rss > 0, "{used} {rss}");
    // Redis's ratios, from the same reading.
    let frag = float_field(&info, "mem_fragmentation_ratio");
    assert!((frag - rss as f64 / used as f64).abs() < 0.011, "{frag}");
    assert_eq!(int_field(&info, "mem_fragmentation_bytes"), rss - used);
    assert!(int_field(&info, "used_memory_peak") >= used);
    assert_eq!(
        int_field(&info, "used_memory_overhead") + int_field(&info, "used_memory_dataset"),
        used
    );
    // Without allocator statistics, Redis's fallback: allocated is
    // used_memory, active and resident are the RSS.
    assert_eq!(int_field(&info, "allocator_allocated"), used);
    assert_eq!(int_field(&info, "allocator_active"), rss);
    assert_eq!(int_field(&info, "allocator_resident"), rss);
    assert_eq!(field(&info, "mem_allocator"), "mimalloc");
    assert_eq!(field(&info, "maxmemory"), "0");
    assert_eq!(field(&info, "maxmemory_human"), "0B");
    assert_eq!(field(&info, "maxmemory_policy"), "noeviction");
}

#[test]
fn info_memory_follows_maxmemory_config() {
    let server = TestServer::with_args(&["--maxmemory", "100mb"]);
    let mut c = server.client();
    let info = info_memory(&mut c);
    assert_eq!(field(&info, "maxmemory"), "104857600");
    assert_eq!(field(&info, "maxmemory_human"), "100.00M");
    let _: String = cmd(&mut c, &["CONFIG", "SET", "maxmemory", "1536kb"]);
    let _: String = cmd(
        &mut c,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    let info = info_memory(&mut c);
    assert_eq!(field(&info, "maxmemory"), "1572864");
    assert_eq!(field(&info, "maxmemory_human"), "1.50M");
    assert_eq!(field(&info, "maxmemory_policy"), "allkeys-lru");
}

#[test]
fn used_memory_peak_keeps_the_highest_use() {
    let server = TestServer::start();
    let mut c = server.client();
    big_strings(&mut c, "big", 20, 256 * 1024);
    let high = int_field(&info_memory(&mut c), "used_memory");
    let _: String = cmd(&mut c, &["FLUSHALL"]);
    let info = info_memory(&mut c);
    let low = int_field(&info, "used_memory");
    assert!(low + 5 * 256 * 1024 < high, "{low} {high}");
    assert!(int_field(&info, "used_memory_peak") >= high);
    let perc = float_field(&info, "used_memory_peak_perc");
    let peak = int_field(&info, "used_memory_peak");
    assert!(
        (perc - low as f64 * 100.0 / peak as f64).abs() < 0.011,
        "{perc}"
    );
    // CONFIG RESETSTAT leaves the peak alone, as in Redis 7.0.
    let _: String = cmd(&mut c, &["CONFIG", "RESETSTAT"]);
    assert!(int_field(&info_memory(&mut c), "used_memory_peak") >= high);
}

/// `used_memory` grows and shrinks by what `MEMORY USAGE` says a key costs.
#[test]
fn memory_usage_is_what_the_key_is_charged() {
    let server = TestServer::start();
    let mut c = server.client();
    let mut pipe = redis::pipe();
    for i in 0..3000 {
        pipe.cmd("HSET")
            .arg("h")
            .arg(format!("field:{i}"))
            .arg(format!("value number {i}"))
            .ignore();
        pipe.cmd("ZADD")
            .arg("z")
            .arg(i)
            .arg(format!("m{i}"))
            .ignore();
        pipe.cmd("RPUSH")
            .arg("l")
            .arg(format!("element {i}"))
            .ignore();
        pipe.cmd("SADD")
            .arg("s")
            .arg(format!("member {i}"))
            .ignore();
    }
    let () = pipe.query(&mut c).expect("load");
    for key in ["h", "z", "l", "s"] {
        let usage: i64 = cmd(&mut c, &["MEMORY", "USAGE", key]);
        // At least the element bytes themselves.
        assert!(usage > 3000 * 8, "{key}: {usage}");
        // Sizes are kept exactly, so sampling changes nothing.
        for samples in ["0", "1", "5", "1000000"] {
            let again: i64 = cmd(&mut c, &["MEMORY", "USAGE", key, "SAMPLES", samples]);
            assert_eq!(again, usage, "{key} SAMPLES {samples}");
        }
        let before = used_memory(&mut c);
        let _: i64 = cmd(&mut c, &["DEL", key]);
        let freed = before - used_memory(&mut c);
        // Besides the key: its shard's bucket array may shrink, and the
        // replication backlog grows by the DEL (in whole pages).
        assert!(
            (freed - usage).abs() <= 8192,
            "{key}: MEMORY USAGE {usage}, DEL freed {freed}"
        );
    }
}

#[test]
fn memory_usage_counts_allocations_and_the_ttl() {
    let server = TestServer::start();
    let mut c = server.client();
    let _: String = cmd(&mut c, &["SET", "k", "0123456789"]);
    let short: i64 = cmd(&mut c, &["MEMORY", "USAGE", "k"]);
    let _: String = cmd(&mut c, &["SET", "k", &"x".repeat(100)]);
    let long: i64 = cmd(&mut c, &["MEMORY", "USAGE", "k"]);
    // 10 bytes sit inline in the value, 100 bytes take a 112-byte block.
    assert_eq!(long - short, 112);
    let _: i64 = cmd(&mut c, &["EXPIRE", "k", "100"]);
    let volatile: i64 = cmd(&mut c, &["MEMORY", "USAGE", "k"]);
    // The TTL index holds a node (32-byte block) with the short key inline.
    assert_eq!(volatile - long, 32);
    let _: i64 = cmd(&mut c, &["PERSIST", "k"]);
    assert_eq!(cmd::<i64>(&mut c, &["MEMORY", "USAGE", "k"]), long);
}

#[test]
fn memory_usage_errors_as_redis() {
    let server = TestServer::start();
    let mut c = server.client();
    let none: Option<i64> = cmd(&mut c, &["MEMORY", "USAGE", "missing"]);
    assert_eq!(none, None);
    let none: Option<i64> = cmd(&mut c, &["MEMORY", "USAGE", "missing", "SAMPLES", "0"]);
    assert_eq!(none, None);
    let _: String = cmd(&mut c, &["SET", "k", "v"]);
    for (args, want) in [
        (
            &["MEMORY", "USAGE", "k", "SAMPLES", "-1"][..],
            "ERR syntax error",
        ),
        (&["MEMORY", "USAGE", "k", "SAMPLES"][..], "ERR syntax error"),
        (&["MEMORY", "USAGE", "k", "FOO"][..], "ERR syntax error"),
        (
            &["MEMORY", "USAGE", "k", "SAMPLES", "x"][..],
            "ERR value is not an integer or out of range",
        ),
        (
            &["MEMORY", "USAGE", "missing", "SAMPLES", "-1"][..],
            "ERR syntax error",
        ),
        (
            &["MEMORY", "USAGE"][..],
            "ERR wrong number of arguments for 'memory|usage' command",
        ),
        (
            &["MEMORY", "DOCTOR", "x"][..],
            "ERR wrong number of arguments for 'memory|doctor' command",
        ),
    ] {
        assert_eq!(err(&mut c, args), want, "{args:?}");
    }
}

#[test]
fn memory_stats_has_redis_7_keys() {
    let server = TestServer::start();
    let mut c = server.client();
    let _: String = cmd(&mut c, &["SET", "a", "1"]);
    let _: String = cmd(&mut c, &["SET", "b", "2", "EX", "100"]);
    let _: String = cmd(&mut c, &["SELECT", "3"]);
    let _: String = cmd(&mut c, &["SET", "c", "3"]);
    let reply: Vec<redis::Value> = cmd(&mut c, &["MEMORY", "STATS"]);
    let mut names = Vec::new();
    let mut ints = std::collections::HashMap::new();
    for pair in reply.chunks(2) {
        let redis::Value::BulkString(k) = &pair[0] else {
            panic!("{pair:?}")
        };
        let k = String::from_utf8_lossy(k).into_owned();
        match &pair[1] {
            redis::Value::Int(n) => {
                ints.insert(k.clone(), *n);
            }
            redis::Value::Array(db) => {
                let fields: Vec<String> = db
                    .chunks(2)
                    .map(|p| match &p[0] {
                        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                        other => panic!("{other:?}"),
                    })
                    .collect();
                assert_eq!(
                    fields,
                    [
                        "overhead.hashtable.main",
                        "overhead.hashtable.expires",
                        "overhead.hashtable.slot-to-keys"
                    ]
                );
            }
            _ => {}
        }
        names.push(k);
    }
    assert_eq!(
        names,
        [
            "peak.allocated",
            "total.allocated",
            "startup.allocated",
            "replication.backlog",
            "clients.slaves",
            "clients.normal",
            "cluster.links",
            "aof.buffer",
            "lua.caches",
            "functions.caches",
            "db.0",
            "db.3",
            "overhead.total",
            "keys.count",
            "keys.bytes-per-key",
            "dataset.bytes",
            "dataset.percentage",
            "peak.percentage",
            "allocator.allocated",
            "allocator.active",
            "allocator.resident",
            "allocator-fragmentation.ratio",
            "allocator-fragmentation.bytes",
            "allocator-rss.ratio",
            "allocator-rss.bytes",
            "rss-overhead.ratio",
            "rss-overhead.bytes",
            "fragmentation",
            "fragmentation.bytes",
        ]
    );
    assert_eq!(ints["keys.count"], 3);
    assert!(ints["peak.allocated"] >= ints["total.allocated"]);
    assert_eq!(
        ints["overhead.total"] + ints["dataset.bytes"],
        ints["total.allocated"]
    );
    // RESP3 answers a map, db entries included.
    let mut raw = server.raw_conn();
    raw.hello3();
    raw.send(&ferrite_tests::resp(&[b"MEMORY", b"STATS"]));
    let reply = raw.read_idle();
    assert!(
        reply.starts_with(b"%29\r\n"),
        "{}",
        ferrite_tests::text(&reply)
    );
    assert!(ferrite_tests::text(&reply).contains("$4\r\ndb.0\r\n%3\r\n"));
}

#[test]
fn memory_doctor_speaks_as_redis() {
    let server = TestServer::start();
    let mut c = server.client();
    let empty: String = cmd(&mut c, &["MEMORY", "DOCTOR"]);
    assert_eq!(
        empty,
        "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n"
    );
    // A peak three times the current use is reported. The peak is sampled
    // by the cron and by INFO, as Redis's serverCron does.
    big_strings(&mut c, "big", 30, 1 << 20);
    let _ = info_memory(&mut c);
    let mut keys: Vec<String> = (0..20).map(|i| format!("big:{i}")).collect();
    keys.insert(0, "DEL".into());
    let args: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(cmd::<i64>(&mut c, &args), 20);
    let report: String = cmd(&mut c, &["MEMORY", "DOCTOR"]);
    assert!(
        report.starts_with(
            "Sam, I detected a few issues in this Redis instance memory implants:\n\n"
        ),
        "{report}"
    );
    assert!(report.contains("\n * Peak memory: In the past this instance used more than 150% the memory that is currently using."), "{report}");
    assert!(report.ends_with("\nI'm here to keep you safe, Sam. I want to help you.\n"));
}

#[test]
fn memory_malloc_stats_purge_and_help() {
    let server = TestServer::start();
    let mut c = server.client();
    let stats: String = cmd(&mut c, &["MEMORY", "MALLOC-STATS"]);
    assert_eq!(stats, "Stats not supported for the current allocator");
    let ok: String = cmd(&mut c, &["MEMORY", "PURGE"]);
    assert_eq!(ok, "OK");
    let help: Vec<String> = cmd(&mut c, &["MEMORY", "HELP"]);
    assert_eq!(
        help[0],
        "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    );
    assert!(help.contains(&"USAGE <key> [SAMPLES <count>]".to_string()));
}
