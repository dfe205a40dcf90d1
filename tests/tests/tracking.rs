//! Client-side caching (`CLIENT TRACKING`): invalidation pushes in RESP3,
//! `__redis__:invalidate` messages to a RESP2 redirect subscriber, BCAST
//! prefixes, NOLOOP, OPTIN/OPTOUT, flushes, expiry and eviction, the key
//! limit, broken redirects, and the introspection commands. Frames are
//! compared byte for byte with what Redis 7.0 sends.
//!
//! Messages from other connections are placed in the receiver's feed
//! before the writer's reply leaves the server, so a `PING` on the receiver
//! after the writer's reply always finds them first: no test sleeps to
//! wait for a message, except for the active expiry cycle.

use std::time::{Duration, Instant};

use ferrite_tests::{resp, text, RawConn, TestServer};

/// A raw connection that reads whole RESP frames.
struct Peer {
    c: RawConn,
    buf: Vec<u8>,
}

/// Length of the first complete RESP2/RESP3 frame in `b`, if there is one.
fn frame_len(b: &[u8]) -> Option<usize> {
    let eol = b.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&b[1..eol]).ok()?;
    let head = eol + 2;
    let nested = |count: i64, b: &[u8]| -> Option<usize> {
        let mut at = head;
        for _ in 0..count.max(0) {
            at += frame_len(&b[at..])?;
        }
        Some(at)
    };
    match b[0] {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(head),
        b'$' | b'=' | b'!' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some(head);
            }
            let end = head + n as usize + 2;
            (b.len() >= end).then_some(end)
        }
        b'*' | b'~' | b'>' => nested(line.parse().ok()?, b),
        b'%' => nested(2 * line.parse::<i64>().ok()?, b),
        _ => panic!("not RESP: {}", text(b)),
    }
}

impl Peer {
    fn new(s: &TestServer) -> Peer {
        Peer {
            c: s.raw_conn(),
            buf: Vec::new(),
        }
    }

    /// A connection switched to RESP3.
    fn resp3(s: &TestServer) -> Peer {
        let mut p = Peer::new(s);
        let hello = p.call(&["HELLO", "3"]);
        assert!(hello.starts_with(b"%7\r\n"), "{}", text(&hello));
        p
    }

    fn send(&mut self, args: &[&str]) {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.c.send(&resp(&a));
    }

    /// The next frame, waiting up to 10 s for it.
    fn frame(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(n) = frame_len(&self.buf) {
                return self.buf.drain(..n).collect();
            }
            assert!(
                Instant::now() < deadline,
                "no complete frame; have {:?}",
                text(&self.buf)
            );
            let have = self.buf.clone();
            let more = self.c.read_until(
                |b| {
                    let mut all = have.clone();
                    all.extend_from_slice(b);
                    frame_len(&all).is_some()
                },
                Duration::from_millis(200),
            );
            self.buf.extend_from_slice(&more);
        }
    }

    /// Sends a command and returns the next frame.
    fn call(&mut self, args: &[&str]) -> Vec<u8> {
        self.send(args);
        self.frame()
    }

    /// Sends `PING` and returns every frame that came before its reply.
    fn before_ping(&mut self, pong: &[u8]) -> Vec<String> {
        self.send(&["PING"]);
        let mut seen = Vec::new();
        loop {
            let f = self.frame();
            if f == pong {
                return seen;
            }
            seen.push(text(&f));
        }
    }

    /// Frames before the `PING` reply of a RESP3 (or plain RESP2) client.
    fn pending(&mut self) -> Vec<String> {
        self.before_ping(b"+PONG\r\n")
    }
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{}\r\n", s.len(), s)
}

/// A RESP3 invalidation push for `keys`.
fn push(keys: &[&str]) -> String {
    let mut s = format!(">2\r\n$10\r\ninvalidate\r\n*{}\r\n", keys.len());
    for k in keys {
        s.push_str(&bulk(k));
    }
    s
}

/// A RESP2 `__redis__:invalidate` message for `keys`.
fn message(keys: &[&str]) -> String {
    let mut s = format!(
        "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*{}\r\n",
        keys.len()
    );
    for k in keys {
        s.push_str(&bulk(k));
    }
    s
}

fn ok(p: &mut Peer, args: &[&str]) {
    let r = p.call(args);
    assert_eq!(text(&r), "+OK\r\n", "{}", args.join(" "));
}

fn id_of(p: &mut Peer) -> String {
    let r = text(&p.call(&["CLIENT", "ID"]));
    r.trim_start_matches(':').trim_end().to_string()
}

/// A RESP2 connection subscribed to `__redis__:invalidate`, and its id.
fn redirect_subscriber(s: &TestServer) -> (Peer, String) {
    let mut sub = Peer::new(s);
    let id = id_of(&mut sub);
    let r = sub.call(&["SUBSCRIBE", "__redis__:invalidate"]);
    assert_eq!(
        text(&r),
        "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n"
    );
    (sub, id)
}

fn info_field(p: &mut Peer, field: &str) -> String {
    let info = text(&p.call(&["INFO", "everything"]));
    let at = info
        .find(&format!("\r\n{field}:"))
        .unwrap_or_else(|| panic!("no {field} in INFO"));
    let rest = &info[at + field.len() + 3..];
    rest[..rest.find("\r\n").unwrap_or(rest.len())].to_string()
}

#[test]
fn resp3_client_gets_a_push_when_a_key_it_read_changes() {
    let s = TestServer::start();
    let mut c = Peer::resp3(&s);
    let mut w = Peer::new(&s);
    ok(&mut w, &["SET", "k", "1"]);
    ok(&mut c, &["CLIENT", "TRACKING", "on"]);
    assert_eq!(text(&c.call(&["GET", "k"])), "$1\r\n1\r\n");
    // A key never read is not invalidated.
    ok(&mut w, &["SET", "other", "1"]);
    assert!(c.pending().is_empty());
    ok(&mut w, &["SET", "k", "2"]);
    assert_eq!(c.pending(), vec![push(&["k"])]);
    // The key was forgotten: the next change sends nothing until read again.
    ok(&mut w, &["SET", "k", "3"]);
    assert!(c.pending().is_empty());
    c.call(&["MGET", "k", "missing"]);
    ok(&mut w, &["MSET", "missing", "x", "k", "4"]);
    let mut got = c.pending();
    got.sort();
    assert_eq!(got, vec![push(&["k"]), push(&["missing"])]);
}

#[test]
fn own_changes_are_invalidated_after_the_reply() {
    let s = TestServer::start();
    let mut c = Peer::resp3(&s);
    ok(&mut c, &["CLIENT", "TRACKING", "on"]);
    assert_eq!(text(&c.call(&["HSET", "h", "f", "1"])), ":1\r\n");
    c.call(&["HGET", "h", "f"]);
    assert_eq!(text(&c.call(&["HDEL", "h", "f"])), ":1\r\n");
    assert_eq!(text(&c.frame()), push(&["h"]));
    // In a transaction, after the whole EXEC reply.
    c.call(&["MSET", "a", "1", "b", "2"]);
    c.call(&["GET", "a"]);
    ok(&mut c, &["MULTI"]);
    c.call(&["INCR", "a"]);
    c.call(&["GET", "b"]);
    assert_eq!(text(&c.call(&["EXEC"])), "*2\r\n:2\r\n$1\r\n2\r\n");
    assert_eq!(text(&c.frame()), push(&["a"]));
    // A flush inside a transaction: the null invalidation follows EXEC.
    ok(&mut c, &["MULTI"]);
    c.call(&["FLUSHDB"]);
    assert_eq!(text(&c.call(&["EXEC"])), "*1\r\n+OK\r\n");
    assert_eq!(text(&c.frame()), ">2\r\n$10\r\ninvalidate\r\n_\r\n");
}

#[test]
fn a_lazily_expired_key_is_invalidated_after_the_reply_that_found_it_gone() {
    let s = TestServer::start();
    let mut c = Peer::resp3(&s);
    ok(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    ok(&mut c, &["CLIENT", "TRACKING", "on"]);
    ok(&mut c, &["MSET", "x", "1", "y", "2"]);
    assert_eq!(text(&c.call(&["PEXPIRE", "y", "500"])), ":1\r\n");
    c.call(&["GET", "y"]);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(text(&c.call(&["MGET", "x", "y"])), "*2\r\n$1\r\n1\r\n_\r\n");
    assert_eq!(text(&c.frame()), push(&["y"]));
}

#[test]
fn resp2_redirect_delivers_invalidate_channel_messages() {
    let s = TestServer::start();
    let (mut sub, id) = redirect_subscriber(&s);
    let mut c = Peer::new(&s);
    ok(&mut c, &["CLIENT", "TRACKING", "on", "REDIRECT", &id]);
    ok(&mut c, &["SET", "a", "1"]);
    ok(&mut c, &["SET", "b", "1"]);
    c.call(&["GET", "a"]);
    assert_eq!(text(&c.call(&["INCR", "b"])), ":2\r\n");
    assert_eq!(text(&c.call(&["INCR", "a"])), ":2\r\n");
    assert_eq!(text(&sub.frame()), message(&["a"]));
    // Nothing about b, which was never read.
    let pong = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n";
    assert!(sub.before_ping(pong).is_empty());
    assert_eq!(text(&c.call(&["CLIENT", "GETREDIR"])), format!(":{id}\r\n"));
    // A flush sends the null invalidation, spelled as the tracking client's
    // protocol (RESP2 here).
    c.call(&["GET", "a"]);
    ok(&mut c, &["FLUSHALL"]);
    assert_eq!(
        text(&sub.frame()),
        "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
    );
}

#[test]
fn resp2_tracking_without_redirect_sends_nothing_on_the_connection() {
    let s = TestServer::start();
    let mut c = Peer::new(&s);
    let mut w = Peer::new(&s);
    ok(&mut c, &["CLIENT", "TRACKING", "on"]);
    c.call(&["GET", "k"]);
    ok(&mut w, &["SET", "k", "1"]);
    ok(&mut c, &["SET", "k", "2"]);
    assert!(c.pending().is_empty());
    assert_eq!(info_field(&mut w, "tracking_total_keys"), "0");
}

#[test]
fn resp3_redirect_target_gets_pushes_without_subscribing() {
    let s = TestServer::start();
    let mut target = Peer::resp3(&s);
    let id = id_of(&mut target);
    let mut c = Peer::new(&s);
    let mut w = Peer::new(&s);
    ok(&mut c, &["CLIENT", "TRACKING", "on", "REDIRECT", &id]);
    c.call(&["GET", "foo"]);
    // CLIENT REPLY OFF silences replies, not pushes.
    target.send(&["CLIENT", "REPLY", "OFF"]);
    ok(&mut w, &["SET", "foo", "bar"]);
    assert_eq!(text(&target.frame()), push(&["foo"]));
    ok(&mut target, &["CLIENT", "REPLY", "ON"]);
    assert!(target.pending().is_empty());
}

#[test]
fn bcast_sends_changed_keys_per_prefix_in_byte_order() {
    let s = TestServer::start();
    let (mut sub, id) = redirect_subscriber(&s);
    let mut c = Peer::new(&s);
    ok(
        &mut c,
        &["CLIENT", "TRACKING", "on", "BCAST", "REDIRECT", &id],
    );
    ok(&mut c, &["MSET", "c", "3", "a", "1", "b", "2"]);
    assert_eq!(text(&sub.frame()), message(&["a", "b", "c"]));
    ok(&mut c, &["CLIENT", "TRACKING", "off"]);
    ok(
        &mut c,
        &[
            "CLIENT", "TRACKING", "on", "BCAST", "REDIRECT", &id, "PREFIX", "a:", "PREFIX", "b:",
        ],
    );
    ok(&mut c, &["MULTI"]);
    for k in ["b:2", "a:2", "b:1", "a:1", "c:1"] {
        c.call(&["INCR", k]);
    }
    c.call(&["EXEC"]);
    // One message per prefix, after the transaction.
    assert_eq!(text(&sub.frame()), message(&["a:1", "a:2"]));
    assert_eq!(text(&sub.frame()), message(&["b:1", "b:2"]));
    // Prefixes add up.
    ok(
        &mut c,
        &[
            "CLIENT", "TRACKING", "on", "BCAST", "REDIRECT", &id, "PREFIX", "c:",
        ],
    );
    c.call(&["INCR", "c:1234"]);
    assert_eq!(text(&sub.frame()), message(&["c:1234"]));
    let info = text(&c.call(&["CLIENT", "TRACKINGINFO"]));
    assert_eq!(
        info,
        format!(
            "*6\r\n$5\r\nflags\r\n*2\r\n$2\r\non\r\n$5\r\nbcast\r\n$8\r\nredirect\r\n:{id}\r\n$8\r\nprefixes\r\n*3\r\n$2\r\na:\r\n$2\r\nb:\r\n$2\r\nc:\r\n"
        )
    );
    assert_eq!(info_field(&mut c, "tracking_total_prefixes"), "3");
}

#[test]
fn bcast_resp3_push_reaches_the_client_itself() {
    let s = TestServer::start();
    let mut c = Peer::resp3(&s);
    let mut w = Peer::new(&s);
    ok(
        &mut c,
        &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:"],
    );
    ok(&mut w, &["SET", "user:1", "x"]);
    ok(&mut w, &["SET", "item:1", "x"]);
    assert_eq!(c.pending(), vec![push(&["user:1"])]);
    // Its own change arrives after its reply.
    ok(&mut c, &["SET", "user:2", "y"]);
    assert_eq!(text(&c.frame()), push(&["user:2"]));
}

#[test]
fn noloop_skips_keys_the_client_changed_itself() {
    let s = TestServer::start();
    let (mut sub, id) = redirect_subscriber(&s);
    let mut c = Peer::new(&s);
    let mut w = Peer::new(&s);
    ok(
        &mut c,
        &["CLIENT", "TRACKING", "on", "REDIRECT", &id, "NOLOOP"],
    );
    c.call(&["MGET", "o1", "loop", "o2"]);
    ok(&mut w, &["SET", "o1", "1"]);
    ok(&mut c, &["SET", "loop", "1"]);
    ok(&mut w, &["SET", "o2", "1"]);
    assert_eq!(text(&sub.frame()), message(&["o1"]));
    assert_eq!(text(&sub.frame()), message(&["o2"]));
    // BCAST: the client's own keys are left out of what it is sent.
    ok(&mut c, &["CLIENT", "TRACKING", "off"]);
    ok(
        &mut c,
        &[
            "CLIENT", "TRACKING", "on", "BCAST", "REDIRECT", &id, "NOLOOP",
        ],
    );
    ok(&mut w, &["SET", "o1", "1"]);
    ok(&mut c, &["SET", "loop", "1"]);
    ok(&mut w, &["SET", "o2", "1"]);
    assert_eq!(text(&sub.frame()), message(&["o1"]));
    assert_eq!(text(&sub.frame()), message(&["o2"]));
    let pong = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n";
    assert!(sub.before_ping(pong).is_empty());
}

#[test]
fn expired_keys_reach_noloop_bcast_clients() {
    let s = TestServer::start();
    let (mut sub, id) = redirect_subscriber(&s);
    let mut c = Peer::new(&s);
    ok(
        &mut c,
        &[
            "CLIENT", "TRACKING", "on", "BCAST", "REDIRECT", &id, "NOLOOP",
        ],
    );
    ok(&mut c, &["SET", "mykey", "v", "PX", "1"]);
    ok(&mut c, &["SET", "mykeyother", "v"]);
    // The active expiry cycle (or a lazy one) removes it; no client did.
    assert_eq!(text(&sub.frame()), message(&["mykey"]));
}

#[test]
fn default_mode_tracking_hears_of_active_expiry() {
    let s = TestServer::start();
    let mut c = Peer::resp3(&s);
    ok(&mut c, &["CLIENT", "TRACKING", "on"]);
    ok(&mut c, &["SET", "t", "v", "PX", "1000"]);
    c.call(&["GET", "t"]);
    assert_eq!(text(&c.frame()), push(&["t"]));
}

#[test]
fn optin_tracks_only_after_caching_yes_and_optout_skips_after_caching_no() {
    let s = TestServer::start();
    let mut c = Peer::resp3(&s);
    let mut w = Peer::new(&s);
    ok(&mut c, &["CLIENT", "TRACKING", "on", "OPTIN"]);
    c.call(&["GET", "k1"]);
    ok(&mut w, &["SET", "k1", "1"]);
    assert!(c.pending().is_empty());
    ok(&mut c, &["CLIENT", "CACHING", "yes"]);
    assert_eq!(
        text(&c.call(&["CLIENT", "TRACKINGINFO"])),
        "%3\r\n$5\r\nflags\r\n~3\r\n$2\r\non\r\n$5\r\noptin\r\n$11\r\ncaching-yes\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n"
    );
    c.call(&["GET", "k1"]);
    // CACHING lasted one command.
    c.call(&["GET", "k2"]);
    ok(&mut w, &["MSET", "k1", "2", "k2", "2"]);
    assert_eq!(c.pending(), vec![push(&["k1"])]);
    // ... or one transaction.
    ok(&mut c, &["CLIENT", "CACHING", "yes"]);
    ok(&mut c, &["MULTI"]);
    c.call(&["GET", "k1"]);
    c.call(&["GET", "k2"]);
    c.call(&["EXEC"]);
    ok(&mut w, &["MSET", "k1", "3", "k2", "3"]);
    let mut got = c.pending();
    got.sort();
    assert_eq!(got, vec![push(&["k1"]), push(&["k2"])]);

    ok(&mut c, &["CLIENT", "TRACKING", "off"]);
    ok(&mut c, &["CLIENT", "TRACKING", "on", "OPTOUT"]);
    ok(&mut c, &["CLIENT", "CACHING", "no"]);
    c.call(&["GET", "k1"]);
    c.call(&["GET", "k2"]);
    ok(&mut w, &["MSET", "k1", "4", "k2", "4"]);
    assert_eq!(c.pending(), vec![push(&["k2"])]);
}

#[test]
fn option_errors_match_redis() {
    let s = TestServer::start();
    let mut c = Peer::new(&s);
    fn e(p: &mut Peer, args: &[&str]) -> String {
        text(&p.call(args))
    }
    assert_eq!(
        e(&mut c, &["CLIENT", "TRACKING", "on", "PREFIX", "a"]),
        "-ERR PREFIX option requires BCAST mode to be enabled\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "TRACKING", "on", "REDIRECT", "999999"]),
        "-ERR The client ID you want redirect to does not exist\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "TRACKING", "on", "REDIRECT", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    let me = id_of(&mut c);
    assert_eq!(
        e(
            &mut c,
            &["CLIENT", "TRACKING", "on", "REDIRECT", &me, "REDIRECT", &me]
        ),
        "-ERR A client can only redirect to a single other client\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "TRACKING", "on", "BCAST", "OPTIN"]),
        "-ERR OPTIN and OPTOUT are not compatible with BCAST\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"]),
        "-ERR You can't specify both OPTIN mode and OPTOUT mode\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "TRACKING", "maybe"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "TRACKING", "on", "BOGUS"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "CACHING", "yes"]),
        "-ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled\r\n"
    );
    ok(&mut c, &["CLIENT", "TRACKING", "on", "OPTIN"]);
    assert_eq!(
        e(&mut c, &["CLIENT", "CACHING", "no"]),
        "-ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "CACHING", "maybe"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "TRACKING", "on", "OPTOUT"]),
        "-ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "TRACKING", "on", "BCAST"]),
        "-ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.\r\n"
    );
    ok(&mut c, &["CLIENT", "TRACKING", "off"]);
    ok(&mut c, &["CLIENT", "TRACKING", "on", "OPTOUT"]);
    assert_eq!(
        e(&mut c, &["CLIENT", "CACHING", "yes"]),
        "-ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.\r\n"
    );
    ok(&mut c, &["CLIENT", "TRACKING", "off"]);
    assert_eq!(
        e(
            &mut c,
            &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "FOOBAR", "PREFIX", "FOO"]
        ),
        "-ERR Prefix 'FOOBAR' overlaps with another provided prefix 'FOO'. Prefixes for a single client must not overlap.\r\n"
    );
    ok(
        &mut c,
        &[
            "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "FOO", "PREFIX", "BAR",
        ],
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "FO"]),
        "-ERR Prefix 'FO' overlaps with an existing prefix 'FOO'. Prefixes for a single client must not overlap.\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "BARB"]),
        "-ERR Prefix 'BARB' overlaps with an existing prefix 'BAR'. Prefixes for a single client must not overlap.\r\n"
    );
    assert_eq!(
        e(&mut c, &["CLIENT", "CACHING"]),
        "-ERR wrong number of arguments for 'client|caching' command\r\n"
    );
}

#[test]
fn trackinginfo_getredir_and_client_list_report_the_state() {
    let s = TestServer::start();
    let mut c = Peer::new(&s);
    assert_eq!(
        text(&c.call(&["CLIENT", "TRACKINGINFO"])),
        "*6\r\n$5\r\nflags\r\n*1\r\n$3\r\noff\r\n$8\r\nredirect\r\n:-1\r\n$8\r\nprefixes\r\n*0\r\n"
    );
    assert_eq!(text(&c.call(&["CLIENT", "GETREDIR"])), ":-1\r\n");
    let list = text(&c.call(&["CLIENT", "INFO"]));
    assert!(
        list.contains(" flags=N ") && list.contains(" redir=-1 "),
        "{list}"
    );
    ok(&mut c, &["CLIENT", "TRACKING", "on", "NOLOOP"]);
    assert_eq!(text(&c.call(&["CLIENT", "GETREDIR"])), ":0\r\n");
    assert_eq!(
        text(&c.call(&["CLIENT", "TRACKINGINFO"])),
        "*6\r\n$5\r\nflags\r\n*2\r\n$2\r\non\r\n$6\r\nnoloop\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n"
    );
    let list = text(&c.call(&["CLIENT", "INFO"]));
    assert!(
        list.contains(" flags=t ") && list.contains(" redir=0 "),
        "{list}"
    );
    ok(&mut c, &["CLIENT", "TRACKING", "off"]);
    ok(&mut c, &["CLIENT", "TRACKING", "on", "BCAST"]);
    assert_eq!(
        text(&c.call(&["CLIENT", "TRACKINGINFO"])),
        "*6\r\n$5\r\nflags\r\n*2\r\n$2\r\non\r\n$5\r\nbcast\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*1\r\n$0\r\n\r\n"
    );
    let list = text(&c.call(&["CLIENT", "INFO"]));
    assert!(list.contains(" flags=tB "), "{list}");
    // RESET turns tracking off.
    assert_eq!(text(&c.call(&["RESET"])), "+RESET\r\n");
    assert_eq!(text(&c.call(&["CLIENT", "GETREDIR"])), ":-1\r\n");
    assert_eq!(info_field(&mut c, "tracking_clients"), "0");
}

#[test]
fn info_counts_tracking_clients_keys_items_and_prefixes() {
    let s = TestServer::start();
    let mut a = Peer::new(&s);
    let mut b = Peer::new(&s);
    let mut bc = Peer::new(&s);
    ok(&mut a, &["CLIENT", "TRACKING", "on"]);
    ok(&mut b, &["CLIENT", "TRACKING", "on"]);
    ok(
        &mut bc,
        &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "p:"],
    );
    a.call(&["MGET", "k1", "k2"]);
    b.call(&["GET", "k1"]);
    assert_eq!(info_field(&mut a, "tracking_clients"), "3");
    assert_eq!(info_field(&mut a, "tracking_total_keys"), "2");
    assert_eq!(info_field(&mut a, "tracking_total_items"), "3");
    assert_eq!(info_field(&mut a, "tracking_total_prefixes"), "1");
    // A BCAST client remembers no keys.
    bc.call(&["GET", "p:1"]);
    assert_eq!(info_field(&mut a, "tracking_total_keys"), "2");
    // Disconnecting stops tracking (its ids stay until the keys change).
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut a, "tracking_clients") != "2" {
        assert!(Instant::now() < deadline, "b still counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(bc);
    while info_field(&mut a, "tracking_total_prefixes") != "0" {
        assert!(Instant::now() < deadline, "prefix still counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    ok(&mut a, &["FLUSHALL"]);
    assert_eq!(info_field(&mut a, "tracking_total_keys"), "0");
    assert_eq!(info_field(&mut a, "tracking_total_items"), "0");
}

#[test]
fn a_gone_redirect_target_is_reported_as_broken() {
    let s = TestServer::start();
    let mut c = Peer::resp3(&s);
    let mut w = Peer::new(&s);
    let (mut sub, id) = redirect_subscriber(&s);
    ok(&mut c, &["CLIENT", "TRACKING", "on", "REDIRECT", &id]);
    c.call(&["GET", "key1"]);
    ok(&mut sub, &["QUIT"]);
    ok(&mut w, &["SET", "key1", "2"]);
    assert_eq!(
        c.pending(),
        vec![format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{id}\r\n")]
    );
    assert_eq!(
        text(&c.call(&["CLIENT", "TRACKINGINFO"])),
        format!("%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$15\r\nbroken_redirect\r\n$8\r\nredirect\r\n:{id}\r\n$8\r\nprefixes\r\n*0\r\n")
    );
    let list = text(&c.call(&["CLIENT", "INFO"]));
    assert!(
        list.contains(" flags=tR ") && list.contains(&format!(" redir={id} ")),
        "{list}"
    );
}

#[test]
fn the_key_limit_invalidates_keys_until_the_table_fits() {
    let s = TestServer::start();
    let (mut sub, id) = redirect_subscriber(&s);
    let mut c = Peer::new(&s);
    ok(&mut c, &["CLIENT", "TRACKING", "on", "REDIRECT", &id]);
    let keys: Vec<String> = (0..250).map(|i| format!("key{i}")).collect();
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    c.call(&mget);
    assert_eq!(info_field(&mut c, "tracking_total_keys"), "250");
    ok(&mut c, &["CONFIG", "SET", "tracking-table-max-keys", "1"]);
    // Rounds of 100, then 200 keys run before commands and from the cron.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..249 {
        let m = text(&sub.frame());
        let key = m.rsplit("\r\n").nth(1).unwrap_or_default().to_string();
        assert_eq!(m, message(&[&key]));
        assert!(seen.insert(key));
    }
    let pong = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n";
    assert!(sub.before_ping(pong).is_empty());
    assert_eq!(info_field(&mut c, "tracking_total_keys"), "1");
    ok(
        &mut c,
        &["CONFIG", "SET", "tracking-table-max-keys", "1000000"],
    );
}

#[test]
fn key_limit_invalidation_precedes_the_next_reply_of_the_tracking_client() {
    let s = TestServer::start();
    let mut c = Peer::resp3(&s);
    let mut admin = Peer::new(&s);
    ok(&mut admin, &["DEBUG", "PAUSE-CRON", "1"]);
    ok(&mut c, &["CLIENT", "TRACKING", "on"]);
    c.call(&["MGET", "1{t}", "2{t}"]);
    ok(&mut c, &["MULTI"]);
    ok(
        &mut admin,
        &["CONFIG", "SET", "tracking-table-max-keys", "1"],
    );
    c.send(&["PING"]);
    c.send(&["EXEC"]);
    let first = text(&c.frame());
    assert!(
        first == push(&["1{t}"]) || first == push(&["2{t}"]),
        "{first}"
    );
    assert_eq!(text(&c.frame()), "+QUEUED\r\n");
    assert_eq!(text(&c.frame()), "*1\r\n+PONG\r\n");
    ok(&mut admin, &["DEBUG", "PAUSE-CRON", "0"]);
}

#[test]
fn eviction_invalidates_before_the_reply_of_the_command_that_evicted() {
    let s = TestServer::start();
    let mut c = Peer::resp3(&s);
    ok(&mut c, &["CLIENT", "TRACKING", "on"]);
    ok(&mut c, &["SETEX", "volatile-key", "10000", "x"]);
    c.call(&["GET", "volatile-key"]);
    let used: i64 = info_field(&mut c, "used_memory").parse().unwrap();
    ok(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "maxmemory",
            &(used + 100 * 1024).to_string(),
        ],
    );
    ok(
        &mut c,
        &["CONFIG", "SET", "maxmemory-policy", "volatile-random"],
    );
    assert_eq!(text(&c.call(&["SETBIT", "big", "1600000", "0"])), ":0\r\n");
    assert_eq!(
        text(&c.call(&["GETBIT", "big", "0"])),
        push(&["volatile-key"])
    );
    assert_eq!(text(&c.frame()), ":0\r\n");
    ok(&mut c, &["CONFIG", "SET", "maxmemory", "0"]);
}

#[test]
fn a_client_unblocked_into_a_key_it_tracks_gets_its_reply_first() {
    let s = TestServer::start();
    let mut c = Peer::resp3(&s);
    let mut w = Peer::new(&s);
    assert_eq!(text(&w.call(&["RPUSH", "dst", "a"])), ":1\r\n");
    ok(&mut c, &["CLIENT", "TRACKING", "on"]);
    c.call(&["LRANGE", "dst", "0", "-1"]);
    c.send(&["BLMOVE", "src", "dst", "LEFT", "LEFT", "0"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut w, "blocked_clients") != "1" {
        assert!(Instant::now() < deadline, "never blocked");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(text(&w.call(&["RPUSH", "src", "foo"])), ":1\r\n");
    assert_eq!(text(&c.frame()), "$3\r\nfoo\r\n");
    assert_eq!(text(&c.frame()), push(&["dst"]));
}

#[test]
fn keys_are_tracked_across_databases_and_switching_to_bcast_drops_old_ones() {
    let s = TestServer::start();
    let mut c = Peer::resp3(&s);
    let mut w = Peer::new(&s);
    ok(&mut c, &["CLIENT", "TRACKING", "on"]);
    c.call(&["GET", "k"]);
    // Redis's table holds key names, not databases.
    ok(&mut w, &["SELECT", "3"]);
    ok(&mut w, &["SET", "k", "1"]);
    assert_eq!(c.pending(), vec![push(&["k"])]);
    // Keys read before switching to BCAST are not invalidated one by one;
    // the broadcast covers them.
    c.call(&["GET", "k"]);
    ok(&mut c, &["CLIENT", "TRACKING", "off"]);
    ok(&mut c, &["CLIENT", "TRACKING", "on", "BCAST"]);
    assert_eq!(text(&w.call(&["INCR", "k"])), ":2\r\n");
    assert_eq!(c.pending(), vec![push(&["k"])]);
}

#[test]
fn a_value_read_while_another_client_writes_never_stays_cached_stale() {
    let s = TestServer::start();
    let mut r = Peer::resp3(&s);
    ok(&mut r, &["CLIENT", "TRACKING", "on"]);
    ok(&mut r, &["SET", "n", "0"]);
    let addr = s.addr();
    const WRITES: i64 = 3000;
    let writer = std::thread::spawn(move || {
        let mut w = Peer {
            c: RawConn::connect(addr),
            buf: Vec::new(),
        };
        for _ in 0..WRITES {
            w.call(&["INCR", "n"]);
        }
    });
    // A client-side cache: a value read, dropped by its invalidation.
    let mut cached: Option<String> = None;
    fn handle(f: Vec<u8>, cached: &mut Option<String>) -> Option<String> {
        let t = text(&f);
        if t.starts_with(">2\r\n$10\r\ninvalidate\r\n") {
            *cached = None;
            None
        } else {
            Some(t)
        }
    }
    while !writer.is_finished() {
        r.send(&["GET", "n"]);
        loop {
            let f = r.frame();
            if let Some(v) = handle(f, &mut cached) {
                cached = Some(v);
                break;
            }
        }
    }
    writer.join().expect("writer");
    // Every invalidation sent so far arrives before this PONG.
    for f in r.pending() {
        handle(f.into_bytes(), &mut cached);
    }
    let last = format!("${}\r\n{WRITES}\r\n", WRITES.to_string().len());
    if let Some(v) = cached {
        assert_eq!(v, last, "a stale value stayed cached");
    }
}
