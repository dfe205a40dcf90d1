//! Client memory and client eviction: client buffers in `used_memory` (so
//! in key eviction), `INFO` `mem_clients_normal` / `evicted_clients`,
//! `CLIENT LIST` `qbuf` / `qbuf-free` / `omem` / `tot-mem`, and
//! `maxmemory-clients`.
//!
//! The scenario tests port the client-buffer tests of Redis's
//! `tests/unit/maxmemory.tcl` with its sizes (`maxmemory 11mb`,
//! `allkeys-lru`, 50 keys of 100 KB, `maxmemory-clients 3mb`): our
//! `used_memory` starts near Redis's (about 0.9 MB with no key), so the
//! same sizes give the same shape. Each runs once without client eviction
//! (keys are evicted, no client is) and once with it (clients are evicted,
//! no key is). Waits are bounded polls of `INFO`, like Redis's 20 s loops,
//! never timings.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferrite_tests::{client_field, cmd, err, info_int, resp, RawConn, TestServer};

/// How long a scenario may take to show its effect (Redis's loops: 20 s).
const SCENARIO_WAIT: Duration = Duration::from_secs(20);
/// The size of each key's value, and of each published message.
const VALUE: usize = 100_000;

fn server() -> (TestServer, redis::Connection) {
    let s = TestServer::with_args(&["--maxmemory", "11mb", "--maxmemory-policy", "allkeys-lru"]);
    let r = s.client();
    (s, r)
}

/// One numeric field of an `INFO` text.
fn field_of(info: &str, field: &str) -> i64 {
    ferrite_tests::info_value(info, field)
        .unwrap_or_else(|| panic!("no {field} in INFO"))
        .parse()
        .unwrap_or_else(|e| panic!("{field}: {e}"))
}

/// Redis's `init_test`: 50 keys of 100 KB, client eviction on or off, and
/// this connection exempt from it.
fn init_test(r: &mut redis::Connection, client_eviction: bool) {
    let _: String = cmd(r, &["FLUSHDB"]);
    if client_eviction {
        let _: String = cmd(r, &["CONFIG", "SET", "maxmemory-clients", "3mb"]);
        let _: String = cmd(r, &["CLIENT", "NO-EVICT", "on"]);
    } else {
        let _: String = cmd(r, &["CONFIG", "SET", "maxmemory-clients", "0"]);
    }
    let _: String = cmd(r, &["CONFIG", "RESETSTAT"]);
    for j in 0..50 {
        let _: i64 = cmd(r, &["SETRANGE", &j.to_string(), &VALUE.to_string(), "x"]);
    }
    assert_eq!(cmd::<i64>(r, &["DBSIZE"]), 50);
}

/// `evicted_keys`, `evicted_clients`, `DBSIZE`, `used_memory` and
/// `mem_clients_normal`, for checks and failure messages.
#[derive(Debug)]
struct Figures {
    evicted_keys: i64,
    evicted_clients: i64,
    dbsize: i64,
    used_memory: i64,
    mem_clients_normal: i64,
    connected_clients: i64,
}

fn figures(r: &mut redis::Connection) -> Figures {
    let info: String = cmd(r, &["INFO", "everything"]);
    Figures {
        evicted_keys: field_of(&info, "evicted_keys"),
        evicted_clients: field_of(&info, "evicted_clients"),
        dbsize: cmd(r, &["DBSIZE"]),
        used_memory: field_of(&info, "used_memory"),
        mem_clients_normal: field_of(&info, "mem_clients_normal"),
        connected_clients: field_of(&info, "connected_clients"),
    }
}

/// Redis's `check_eviction_test`: with client eviction, clients went and
/// every key stayed; without it, keys went and every client stayed.
fn eviction_done(f: &Figures, client_eviction: bool) -> bool {
    if client_eviction {
        f.evicted_clients > 0 && f.evicted_keys == 0 && f.dbsize == 50
    } else {
        f.evicted_clients == 0 && f.evicted_keys > 0 && f.dbsize < 50
    }
}

/// Runs `step` until the eviction the scenario expects shows, or
/// [`SCENARIO_WAIT`] passes; returns the last figures.
fn until_eviction(
    r: &mut redis::Connection,
    client_eviction: bool,
    mut step: impl FnMut(&mut redis::Connection),
) -> Figures {
    let deadline = Instant::now() + SCENARIO_WAIT;
    loop {
        let f = figures(r);
        if eviction_done(&f, client_eviction) || Instant::now() > deadline {
            return f;
        }
        step(r);
    }
}

/// A client that sends `MGET 1` (a 100 KB reply) over and over and never
/// reads, on a non-blocking socket so a full socket never stalls the test.
struct MgetClient {
    stream: TcpStream,
    unsent: Vec<u8>,
}

impl MgetClient {
    fn connect(s: &TestServer) -> Self {
        let stream = TcpStream::connect(s.addr()).expect("connect");
        stream.set_nonblocking(true).expect("non-blocking");
        MgetClient {
            stream,
            unsent: Vec::new(),
        }
    }

    /// Sends as many `MGET 1` as the socket takes now (at most `limit`
    /// bytes); returns how many bytes went.
    fn pump(&mut self, limit: usize) -> usize {
        let batch = resp(&[b"MGET", b"1"]).repeat(64);
        let mut sent = 0;
        while sent < limit {
            if self.unsent.is_empty() {
                self.unsent.extend_from_slice(&batch);
            }
            match self.stream.write(&self.unsent) {
                Ok(0) => break,
                Ok(n) => {
                    // Only whole commands are ever queued, so a partial
                    // write resumes mid-command next time.
                    self.unsent.drain(..n);
                    sent += n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        sent
    }
}

/// The `CLIENT LIST` lines of every client but the caller.
fn other_clients(r: &mut redis::Connection) -> Vec<String> {
    let me: i64 = cmd(r, &["CLIENT", "ID"]);
    let list: String = cmd(r, &["CLIENT", "LIST"]);
    list.lines()
        .filter(|l| !l.starts_with(&format!("id={me} ")))
        .map(String::from)
        .collect()
}

/// Redis's first scenario: 20 clients send `MGET` of a 100 KB key without
/// reading the replies. In Redis their reply lists grow until keys (or,
/// with client eviction, the clients) are evicted. Ours do not grow: a
/// connection stops reading while its write waits for the socket and
/// writes a batch's output once it reaches 64 KB, so a client that does
/// not read holds at most its query buffer and one reply. So the
/// expectation that is true for us is the opposite of Redis's: the clients
/// end up stuck, each holding unwritten output (`omem`), with bounded
/// memory, and nothing at all is evicted, with or without client eviction.
fn mget_clients_not_reading(client_eviction: bool) {
    let (s, mut r) = server();
    init_test(&mut r, client_eviction);
    let mut clients: Vec<MgetClient> = (0..20).map(|_| MgetClient::connect(&s)).collect();
    // Pump until every socket stays full for a few rounds in a row: the
    // server has stopped reading all of them.
    let deadline = Instant::now() + SCENARIO_WAIT;
    let mut quiet_rounds = 0;
    while quiet_rounds < 3 {
        assert!(
            Instant::now() < deadline,
            "MGET clients never got stuck: {:?}",
            figures(&mut r)
        );
        let moved: usize = clients.iter_mut().map(|c| c.pump(1 << 20)).sum();
        quiet_rounds = if moved == 0 { quiet_rounds + 1 } else { 0 };
        std::thread::sleep(Duration::from_millis(50));
    }
    // Each connection is blocked in its write, holding output.
    let deadline = Instant::now() + SCENARIO_WAIT;
    let lines = loop {
        let lines = other_clients(&mut r);
        let stuck = lines.iter().filter(|l| client_field(l, "omem") > 0).count();
        if stuck == 20 {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "{stuck} of 20 clients hold output:\n{}",
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // At most a 32 KB query buffer, one reply and the per-client state.
    let per_client = 32 * 1024 + VALUE as i64 + 64 + 8 * 1024;
    for l in &lines {
        assert!(client_field(l, "tot-mem") <= per_client, "{l}");
    }
    let f = figures(&mut r);
    assert!(
        f.mem_clients_normal <= 20 * per_client + 64 * 1024,
        "clients' memory unbounded: {f:?}"
    );
    assert!(f.used_memory < 11 * 1024 * 1024, "{f:?}");
    assert_eq!(
        (
            f.evicted_keys,
            f.evicted_clients,
            f.dbsize,
            f.connected_clients
        ),
        (0, 0, 50, 21),
        "{f:?}"
    );
}

#[test]
fn output_buffers_of_many_mget_clients_stay_bounded_without_client_eviction() {
    mget_clients_not_reading(false);
}

#[test]
fn output_buffers_of_many_mget_clients_stay_bounded_with_client_eviction() {
    mget_clients_not_reading(true);
}

/// Redis's second scenario: 30 clients each send the first 249 arguments
/// (1000 bytes each) of a 250-argument command and then nothing, so their
/// query buffers hold about 250 KB each.
fn dead_clients_input_buffers(client_eviction: bool) {
    let (s, mut r) = server();
    init_test(&mut r, client_eviction);
    let mut clients: Vec<RawConn> = (0..30).map(|_| s.raw_conn()).collect();
    let arg = format!("$1000\r\n{}\r\n", "x".repeat(1000));
    for c in &mut clients {
        // A write to a client evicted meanwhile fails quietly.
        c.send(b"*250\r\n");
        for _ in 0..249 {
            c.send(arg.as_bytes());
        }
    }
    // The server reads on its own time: wait for the effect.
    let f = until_eviction(&mut r, client_eviction, |_| {
        std::thread::sleep(Duration::from_millis(20))
    });
    assert!(eviction_done(&f, client_eviction), "{f:?}");
    if !client_eviction {
        assert_eq!(f.connected_clients, 31, "{f:?}");
    }
}

#[test]
fn eviction_due_to_input_buffer_of_a_dead_client_without_client_eviction() {
    dead_clients_input_buffers(false);
}

#[test]
fn eviction_due_to_input_buffer_of_a_dead_client_with_client_eviction() {
    dead_clients_input_buffers(true);
}

/// Redis's third scenario: 20 subscribers never read while 100 KB
/// messages are published to them.
fn pubsub_output_buffers(client_eviction: bool) {
    let (s, mut r) = server();
    init_test(&mut r, client_eviction);
    let mut subscribers: Vec<RawConn> = (0..20).map(|_| s.raw_conn()).collect();
    for c in &mut subscribers {
        c.send(&resp(&[b"SUBSCRIBE", b"bla"]));
        let confirm = c.read_until(|b| b.ends_with(b":1\r\n"), Duration::from_secs(5));
        assert!(confirm.ends_with(b":1\r\n"), "no subscribe confirmation");
    }
    let big = "x".repeat(VALUE);
    let f = until_eviction(&mut r, client_eviction, |r| {
        let _: i64 = cmd(r, &["PUBLISH", "bla", &big]);
    });
    assert!(eviction_done(&f, client_eviction), "{f:?}");
    if !client_eviction {
        assert_eq!(f.connected_clients, 21, "{f:?}");
    }
}

#[test]
fn eviction_due_to_output_buffers_of_pubsub_without_client_eviction() {
    pubsub_output_buffers(false);
}

#[test]
fn eviction_due_to_output_buffers_of_pubsub_with_client_eviction() {
    pubsub_output_buffers(true);
}

/// Sends the start of `ECHO <len bytes>` with only `sent` bytes of the
/// argument, leaving the command incomplete in the query buffer.
fn partial_echo(c: &mut RawConn, len: usize, sent: usize) {
    c.send(format!("*2\r\n$4\r\nECHO\r\n${len}\r\n").as_bytes());
    c.send(&vec![b'x'; sent]);
}

/// Waits until a client named `name` shows `qbuf` of at least `min`;
/// returns its `CLIENT LIST` line.
fn wait_qbuf(r: &mut redis::Connection, name: &str, min: i64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: String = cmd(r, &["CLIENT", "LIST"]);
        if let Some(l) = list.lines().find(|l| l.contains(&format!(" name={name} "))) {
            if client_field(l, "qbuf") >= min {
                return l.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name} never buffered {min}:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn client_list_and_info_count_a_growing_query_buffer() {
    let s = TestServer::start();
    let mut r = s.client();
    let before = info_int(&mut r, "everything", "mem_clients_normal");
    let used_before = info_int(&mut r, "everything", "used_memory");
    let mut big = named(&s, "big");
    partial_echo(&mut big, 500_000, 300_000);
    let line = wait_qbuf(&mut r, "big", 300_000);
    let qbuf = client_field(&line, "qbuf");
    let total = client_field(&line, "tot-mem");
    // The whole allocation: what is buffered plus what is free.
    assert!(client_field(&line, "qbuf-free") >= 0, "{line}");
    assert!(
        total >= qbuf + client_field(&line, "qbuf-free") + client_field(&line, "rbs"),
        "{line}"
    );
    assert_eq!(client_field(&line, "omem"), 0, "{line}");
    let now = info_int(&mut r, "everything", "mem_clients_normal");
    assert!(
        now >= before + qbuf,
        "mem_clients_normal {before} -> {now}, {line}"
    );
    assert!(info_int(&mut r, "everything", "used_memory") >= used_before + qbuf);
    // Completing the command frees it again.
    big.send(&vec![b'x'; 200_000]);
    big.send(b"\r\n");
    let reply = big.read_until(|b| b.len() >= 500_000 + 11, Duration::from_secs(10));
    assert_eq!(reply.len(), 500_000 + 11);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_int(&mut r, "everything", "mem_clients_normal") >= now {
        assert!(Instant::now() < deadline, "memory never went back down");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A closed client leaves nothing behind.
    drop(big);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_int(&mut r, "everything", "connected_clients") != 1 {
        assert!(Instant::now() < deadline, "client never went away");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(info_int(&mut r, "everything", "mem_clients_normal"), before);
}

#[test]
fn maxmemory_clients_config_takes_bytes_or_a_percentage() {
    let s = TestServer::start();
    let mut r = s.client();
    let get = |r: &mut redis::Connection| -> String {
        let v: Vec<String> = cmd(r, &["CONFIG", "GET", "maxmemory-clients"]);
        v[1].clone()
    };
    assert_eq!(get(&mut r), "0");
    for (set, shown) in [
        ("3mb", "3145728"),
        ("10%", "10%"),
        ("50kb", "51200"),
        ("0", "0"),
    ] {
        let _: String = cmd(&mut r, &["CONFIG", "SET", "maxmemory-clients", set]);
        assert_eq!(get(&mut r), shown, "after {set}");
    }
    for bad in ["-1", "abc", "1.5mb", "-5%", "5%%"] {
        assert_eq!(
            err(&mut r, &["CONFIG", "SET", "maxmemory-clients", bad]),
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-clients') - argument must be a memory or percent value",
            "{bad}"
        );
    }
    assert_eq!(
        err(&mut r, &["CONFIG", "SET", "maxmemory-clients", "101%"]),
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory-clients') - percentage argument must be less or equal to 100"
    );
    assert_eq!(get(&mut r), "0");
}

/// Waits until `INFO` `evicted_clients` reaches `n`.
fn wait_evicted_clients(r: &mut redis::Connection, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_int(r, "everything", "evicted_clients") < n {
        assert!(Instant::now() < deadline, "never evicted {n} clients");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A raw connection named `name` (its `CLIENT SETNAME` answered).
fn named(s: &TestServer, name: &str) -> RawConn {
    let mut c = s.raw_conn();
    c.send(&resp(&[b"CLIENT", b"SETNAME", name.as_bytes()]));
    assert_eq!(
        c.read_until(|b| b.len() >= 5, Duration::from_secs(5)),
        b"+OK\r\n"
    );
    c
}

#[test]
fn the_largest_clients_go_first_and_no_evict_clients_never() {
    let s = TestServer::start();
    let mut r = s.client();
    let _: String = cmd(&mut r, &["CLIENT", "NO-EVICT", "on"]);
    let me: String = cmd(&mut r, &["CLIENT", "INFO"]);
    assert!(me.contains(" flags=e "), "{me}");
    let mut small = named(&s, "small");
    let mut large = named(&s, "large");
    partial_echo(&mut large, 2_000_000, 1_000_000);
    wait_qbuf(&mut r, "large", 1_000_000);
    // Over the limit by the large client alone: it goes, and only it.
    let _: String = cmd(&mut r, &["CONFIG", "SET", "maxmemory-clients", "512kb"]);
    wait_evicted_clients(&mut r, 1);
    assert!(large.is_closed());
    assert_eq!(cmd::<String>(&mut r, &["PING"]), "PONG");
    let list: String = cmd(&mut r, &["CLIENT", "LIST"]);
    assert!(list.contains(" name=small "), "{list}");
    assert_eq!(info_int(&mut r, "everything", "evicted_clients"), 1);
    // An exempt client over the limit by itself: every other evictable
    // client goes (here the small one, as its buffer grows), never it.
    let mut keep = named(&s, "keep");
    keep.send(b"CLIENT NO-EVICT on\r\n");
    assert_eq!(
        keep.read_until(|b| b.len() >= 5, Duration::from_secs(5)),
        b"+OK\r\n"
    );
    partial_echo(&mut keep, 2_000_000, 1_000_000);
    wait_qbuf(&mut r, "keep", 1_000_000);
    wait_evicted_clients(&mut r, 2);
    assert!(small.is_closed());
    let list: String = cmd(&mut r, &["CLIENT", "LIST"]);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(
        list.lines()
            .any(|l| l.contains(" name=keep ") && l.contains(" flags=e ")),
        "{list}"
    );
    assert_eq!(info_int(&mut r, "everything", "evicted_clients"), 2);
    // RESETSTAT zeroes the counter, as Redis.
    let _: String = cmd(&mut r, &["CONFIG", "RESETSTAT"]);
    assert_eq!(info_int(&mut r, "everything", "evicted_clients"), 0);
}

#[test]
fn a_percentage_limit_is_of_maxmemory_and_off_without_it() {
    let s = TestServer::start();
    let mut r = s.client();
    let _: String = cmd(&mut r, &["CLIENT", "NO-EVICT", "on"]);
    let _: String = cmd(&mut r, &["CONFIG", "SET", "maxmemory-clients", "5%"]);
    // No maxmemory: a percentage limits nothing.
    let mut a = named(&s, "a");
    partial_echo(&mut a, 2_000_000, 1_000_000);
    wait_qbuf(&mut r, "a", 1_000_000);
    assert_eq!(cmd::<String>(&mut r, &["PING"]), "PONG");
    assert_eq!(info_int(&mut r, "everything", "evicted_clients"), 0);
    // 5% of 10mb is 512 KB: the client holding a 1 MB buffer goes.
    let _: String = cmd(&mut r, &["CONFIG", "SET", "maxmemory", "10mb"]);
    wait_evicted_clients(&mut r, 1);
    assert!(a.is_closed());
}

#[test]
fn a_replica_link_is_replica_memory_and_never_evicted() {
    let s = TestServer::start();
    let mut r = s.client();
    let _: String = cmd(&mut r, &["CLIENT", "NO-EVICT", "on"]);
    assert_eq!(info_int(&mut r, "everything", "mem_clients_slaves"), 0);
    let _link = ferrite_tests::attach_replica(&s);
    let slaves = info_int(&mut r, "everything", "mem_clients_slaves");
    assert!(slaves > 0, "a replica link holds buffers");
    assert_eq!(
        info_int(&mut r, "everything", "mem_not_counted_for_evict"),
        slaves
    );
    let list: String = cmd(&mut r, &["CLIENT", "LIST"]);
    assert!(list.contains(" flags=S "), "{list}");
    // The smallest limit, and a client that pushes the total over it: that
    // client goes, the replica link stays.
    let _: String = cmd(&mut r, &["CONFIG", "SET", "maxmemory-clients", "1"]);
    let mut big = s.raw_conn();
    partial_echo(&mut big, 1_000_000, 300_000);
    wait_evicted_clients(&mut r, 1);
    assert!(big.is_closed());
    let list: String = cmd(&mut r, &["CLIENT", "LIST"]);
    assert!(list.contains(" flags=S "), "{list}");
}
