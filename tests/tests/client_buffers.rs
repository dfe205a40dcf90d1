//! Client buffer sizing by the clients cron: `CLIENT LIST` `rbs` / `rbp`
//! / `qbuf-free`, `INFO` `reply_buffer_shrinks` / `reply_buffer_expands`,
//! `DEBUG REPLYBUFFER`. The first test ports Redis's
//! `tests/unit/replybufsize.tcl`, the second the idle half of
//! `tests/unit/querybuf.tcl`. Waits are bounded polls, never timings.

use std::time::{Duration, Instant};

use ferrite_tests::{client_field as field, cmd, err, info_int, TestServer};

/// How long the cron may take to show its effect.
const WAIT: Duration = Duration::from_secs(10);

/// `name`'s line of `CLIENT LIST`.
fn client_line(r: &mut redis::Connection, name: &str) -> String {
    let list: String = cmd(r, &["CLIENT", "LIST"]);
    let tag = format!(" name={name} ");
    list.lines()
        .find(|l| l.contains(&tag))
        .unwrap_or_else(|| panic!("no client {name} in {list}"))
        .to_string()
}

/// Polls `check` on `name`'s line until it holds; the last line otherwise.
fn wait_line(
    r: &mut redis::Connection,
    name: &str,
    mut between: impl FnMut(),
    check: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let start = Instant::now();
    loop {
        between();
        let line = client_line(r, name);
        if check(&line) {
            return Ok(line);
        }
        if start.elapsed() > WAIT {
            return Err(line);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_idle_clients_reply_buffer_shrinks_and_a_busy_ones_grows_back() {
    let s = TestServer::with_args(&["--enable-debug-command", "yes"]);
    let mut r = s.client();
    // Peaks are forgotten every 100 ms, so an idle client shrinks at once.
    let _: () = cmd(&mut r, &["DEBUG", "REPLYBUFFER", "PEAK-RESET-TIME", "100"]);
    let mut tc = s.client();
    let _: () = cmd(&mut tc, &["CLIENT", "SETNAME", "test_client"]);
    let line = wait_line(
        &mut r,
        "test_client",
        || {},
        |l| (1024..2046).contains(&field(l, "rbs")),
    )
    .unwrap_or_else(|l| panic!("reply buffer of an idle client: {l}"));
    assert!(field(&line, "rbp") < 1024, "{line}");
    assert!(info_int(&mut r, "stats", "reply_buffer_shrinks") >= 1);

    // A client that keeps filling its buffer doubles it at each cron
    // visit, up to 16 KB.
    let _: () = cmd(&mut r, &["SET", "bigval", &"x".repeat(32768)]);
    let _: () = cmd(
        &mut r,
        &["DEBUG", "REPLYBUFFER", "PEAK-RESET-TIME", "never"],
    );
    let line = wait_line(
        &mut r,
        "test_client",
        || {
            let v: Vec<u8> = cmd(&mut tc, &["GET", "bigval"]);
            assert_eq!(v.len(), 32768);
        },
        |l| (16384..32768).contains(&field(l, "rbs")),
    )
    .unwrap_or_else(|l| panic!("reply buffer of a busy client: {l}"));
    assert_eq!(field(&line, "rbp"), 16384, "{line}");
    assert!(info_int(&mut r, "stats", "reply_buffer_expands") >= 4);

    let _: () = cmd(&mut r, &["CONFIG", "RESETSTAT"]);
    assert_eq!(info_int(&mut r, "stats", "reply_buffer_expands"), 0);
    let _: () = cmd(
        &mut r,
        &["DEBUG", "REPLYBUFFER", "PEAK-RESET-TIME", "reset"],
    );
    let _: () = cmd(&mut r, &["DEBUG", "REPLYBUFFER", "RESIZING", "0"]);
    assert_eq!(
        err(&mut r, &["DEBUG", "REPLYBUFFER", "SIZE", "1"]),
        "ERR unknown subcommand or wrong number of arguments for 'REPLYBUFFER'. Try DEBUG HELP."
    );
    assert_eq!(
        err(&mut r, &["DEBUG", "REPLYBUFFER", "PEAK-RESET-TIME", "soon"]),
        "ERR value is not an integer or out of range"
    );
}

#[test]
fn an_idle_clients_query_buffer_is_given_back() {
    let s = TestServer::start();
    let mut r = s.client();
    let mut idle = s.client();
    let _: () = cmd(&mut idle, &["CLIENT", "SETNAME", "idle_client"]);
    let line = client_line(&mut r, "idle_client");
    let qbuf = |l: &str| field(l, "qbuf") + field(l, "qbuf-free");
    assert!((16384..32768).contains(&qbuf(&line)), "{line}");
    let before = info_int(&mut r, "memory", "mem_clients_normal");

    // Idle for over 2 seconds: the buffer goes, the reply buffer is down
    // to its minimum, and the client memory Ferrite counts drops with them.
    let line = wait_line(
        &mut r,
        "idle_client",
        || {},
        |l| field(l, "idle") >= 3 && qbuf(l) == 0,
    )
    .unwrap_or_else(|l| panic!("query buffer of an idle client: {l}"));
    assert_eq!(field(&line, "rbs"), 1024, "{line}");
    let after = info_int(&mut r, "memory", "mem_clients_normal");
    assert!(
        after < before - 16384,
        "mem_clients_normal {before} -> {after}"
    );

    // The client is served as before, with a buffer of its own again.
    let pong: String = cmd(&mut idle, &["PING"]);
    assert_eq!(pong, "PONG");
    let _: () = cmd(&mut idle, &["SET", "k", &"v".repeat(50_000)]);
    let v: Vec<u8> = cmd(&mut idle, &["GET", "k"]);
    assert_eq!(v.len(), 50_000);
}
