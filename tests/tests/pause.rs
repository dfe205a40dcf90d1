//! `CLIENT PAUSE` / `CLIENT UNPAUSE` as Redis 7.0 does them: which
//! commands wait (writes and may-replicate commands under `WRITE`,
//! everything under `ALL`), that they run once the pause ends, how a
//! transaction and scripts are judged, and that keys do not expire while
//! paused.

use std::time::Duration;

use ferrite_tests::{cmd, err, info_int, resp, text, wait_blocked_clients, TestServer};

const WAIT: Duration = Duration::from_secs(5);

fn reply_of(raw: &mut ferrite_tests::RawConn) -> String {
    text(&raw.read_until(|b| b.ends_with(b"\r\n"), WAIT))
}

#[test]
fn write_pause_holds_writes_until_unpause_and_lets_reads_run() {
    let s = TestServer::start();
    let mut con = s.client();
    let _: () = cmd(&mut con, &["SET", "k", "old"]);
    assert_eq!(
        cmd::<String>(&mut con, &["CLIENT", "PAUSE", "100000", "WRITE"]),
        "OK"
    );

    let mut writer = s.raw_conn();
    writer.send(b"SET k new\r\n");
    wait_blocked_clients(&mut con, 1);
    // Reads, PING and INFO are not held, and the write has not run.
    let mut reader = s.client();
    assert_eq!(cmd::<String>(&mut reader, &["GET", "k"]), "old");
    assert_eq!(cmd::<String>(&mut reader, &["PING"]), "PONG");
    assert!(writer
        .read_until(|b| !b.is_empty(), Duration::from_millis(200))
        .is_empty());

    assert_eq!(cmd::<String>(&mut con, &["CLIENT", "UNPAUSE"]), "OK");
    assert_eq!(reply_of(&mut writer), "+OK\r\n");
    assert_eq!(cmd::<String>(&mut reader, &["GET", "k"]), "new");
    assert_eq!(info_int(&mut con, "clients", "blocked_clients"), 0);
}

#[test]
fn may_replicate_commands_and_write_transactions_wait_but_read_ones_do_not() {
    let s = TestServer::start();
    let mut con = s.client();
    let mut queued = s.raw_conn();
    queued.send(b"MULTI\r\nSET tx 1\r\n");
    assert_eq!(
        text(&queued.read_until(|b| b.ends_with(b"QUEUED\r\n"), WAIT)),
        "+OK\r\n+QUEUED\r\n"
    );
    let _: String = cmd(&mut con, &["CLIENT", "PAUSE", "100000", "WRITE"]);

    // PUBLISH may feed the replication stream: it waits.
    let mut publ = s.raw_conn();
    publ.send(b"PUBLISH ch msg\r\n");
    queued.send(b"EXEC\r\n");
    wait_blocked_clients(&mut con, 2);

    // A read-only transaction runs; a syntax error is answered at once.
    let mut rr = s.client();
    let (pong, v): (String, i64) = redis::pipe()
        .atomic()
        .cmd("PING")
        .cmd("EXISTS")
        .arg("tx")
        .query(&mut rr)
        .expect("read-only transaction");
    assert_eq!((pong.as_str(), v), ("PONG", 0));
    assert_eq!(
        err(&mut rr, &["SET", "x"]),
        "ERR wrong number of arguments for 'set' command"
    );

    let _: String = cmd(&mut con, &["CLIENT", "UNPAUSE"]);
    assert_eq!(reply_of(&mut publ), ":0\r\n");
    assert_eq!(reply_of(&mut queued), "*1\r\n+OK\r\n");
}

#[test]
fn all_pause_holds_every_command_until_its_timeout() {
    let s = TestServer::start();
    let mut con = s.client();
    let _: () = cmd(&mut con, &["SET", "k", "v"]);
    let _: String = cmd(&mut con, &["CLIENT", "PAUSE", "300"]);
    let mut reader = s.raw_conn();
    reader.send(b"GET k\r\n");
    assert!(reader
        .read_until(|b| !b.is_empty(), Duration::from_millis(100))
        .is_empty());
    // The pause ends by itself, and the read then runs.
    assert_eq!(reply_of(&mut reader), "$1\r\nv\r\n");
    assert_eq!(info_int(&mut con, "clients", "blocked_clients"), 0);
}

#[test]
fn scripts_wait_unless_they_declare_no_writes() {
    let s = TestServer::start();
    let mut con = s.client();
    let _: () = cmd(&mut con, &["SET", "x", "y"]);
    let _: String = cmd(
        &mut con,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=lib\nredis.register_function{function_name='ro', callback=function() return 'hello' end, flags={'no-writes'}}",
        ],
    );
    let _: String = cmd(&mut con, &["CLIENT", "PAUSE", "100000", "WRITE"]);
    let mut plain = s.raw_conn();
    plain.send(&resp(&[b"EVAL", b"return 1", b"0"]));
    let mut shebang = s.raw_conn();
    shebang.send(&resp(&[b"EVAL", b"#!lua\nreturn 2", b"0"]));
    wait_blocked_clients(&mut con, 2);

    let mut rr = s.client();
    assert_eq!(
        cmd::<String>(
            &mut rr,
            &["EVAL", "#!lua flags=no-writes\nreturn 'ro'", "0"]
        ),
        "ro"
    );
    assert_eq!(
        cmd::<String>(
            &mut rr,
            &["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "x"]
        ),
        "y"
    );
    let sha: String = cmd(
        &mut rr,
        &["SCRIPT", "LOAD", "#!lua flags=no-writes\nreturn 3"],
    );
    assert_eq!(cmd::<i64>(&mut rr, &["EVALSHA", &sha, "0"]), 3);
    assert_eq!(cmd::<String>(&mut rr, &["FCALL", "ro", "0"]), "hello");
    // A read-only script may not publish: that would slip past the pause.
    assert!(err(
        &mut rr,
        &["EVAL_RO", "return redis.call('publish','ch','m')", "0"]
    )
    .starts_with("ERR Write commands are not allowed from read-only scripts."));

    let _: String = cmd(&mut con, &["CLIENT", "UNPAUSE"]);
    assert_eq!(reply_of(&mut plain), ":1\r\n");
    assert_eq!(reply_of(&mut shebang), ":2\r\n");
}

#[test]
fn keys_do_not_expire_while_paused_and_do_after() {
    let s = TestServer::start();
    let mut con = s.client();
    let expired = info_int(&mut con, "stats", "expired_keys");
    let (): () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("a")
        .arg("1")
        .arg("PX")
        .arg("10")
        .ignore()
        .cmd("SET")
        .arg("b")
        .arg("1")
        .arg("PX")
        .arg("10")
        .ignore()
        .cmd("CLIENT")
        .arg("PAUSE")
        .arg("50000")
        .arg("WRITE")
        .ignore()
        .query(&mut con)
        .expect("transaction");
    std::thread::sleep(Duration::from_millis(300));
    // Logically gone, but not deleted (no expired_keys, no DEL to propagate).
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "a"]), None);
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "b"]), None);
    assert_eq!(info_int(&mut con, "stats", "expired_keys"), expired);
    let _: String = cmd(&mut con, &["CLIENT", "UNPAUSE"]);
    let _: Option<String> = cmd(&mut con, &["GET", "a"]);
    let _: Option<String> = cmd(&mut con, &["GET", "b"]);
    assert_eq!(info_int(&mut con, "stats", "expired_keys"), expired + 2);
}

#[test]
fn a_pause_inside_a_transaction_starts_at_its_end() {
    let s = TestServer::start();
    let mut con = s.client();
    let (): () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("f1")
        .arg("bar")
        .ignore()
        .cmd("CLIENT")
        .arg("PAUSE")
        .arg("60000")
        .arg("WRITE")
        .ignore()
        .cmd("SET")
        .arg("f2")
        .arg("bar")
        .ignore()
        .query(&mut con)
        .expect("transaction");
    let mut writer = s.raw_conn();
    writer.send(b"SET f3 bar\r\n");
    wait_blocked_clients(&mut con, 1);
    assert_eq!(cmd::<String>(&mut con, &["GET", "f2"]), "bar");
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "f3"]), None);
    let _: String = cmd(&mut con, &["CLIENT", "UNPAUSE"]);
    assert_eq!(reply_of(&mut writer), "+OK\r\n");
}

#[test]
fn pause_arguments_are_checked_as_redis_does() {
    let s = TestServer::start();
    let mut con = s.client();
    for (args, want) in [
        (
            &["CLIENT", "PAUSE", "abc"][..],
            "ERR timeout is not an integer or out of range",
        ),
        (&["CLIENT", "PAUSE", "-1"][..], "ERR timeout is negative"),
        (
            &["CLIENT", "PAUSE", "10", "READ"][..],
            "ERR CLIENT PAUSE mode must be WRITE or ALL",
        ),
        (
            &["CLIENT", "PAUSE", "10", "WRITE", "x"][..],
            "ERR unknown subcommand or wrong number of arguments for 'PAUSE'. Try CLIENT HELP.",
        ),
        (
            &["CLIENT", "PAUSE"][..],
            "ERR wrong number of arguments for 'client|pause' command",
        ),
    ] {
        assert_eq!(err(&mut con, args), want, "{args:?}");
    }
    // A pause of 0 ms pauses nothing.
    let _: String = cmd(&mut con, &["CLIENT", "PAUSE", "0"]);
    let _: () = cmd(&mut con, &["SET", "k", "v"]);
}
