//! Connection commands: AUTH, HELLO, SELECT, SWAPDB, CLIENT, QUIT, RESET.

use std::time::Duration;

use ferrite_tests::{cmd, err, text, TestServer};

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

#[test]
fn commands_before_auth_get_noauth_when_requirepass_is_set() {
    let server = TestServer::with_args(&["--requirepass", "secret"]);
    assert_eq!(
        text(&server.raw(b"PING\r\nCLIENT ID\r\n")),
        format!("{NOAUTH}{NOAUTH}")
    );
}

#[test]
fn data_commands_before_auth_get_noauth() {
    let server = TestServer::with_args(&["--requirepass", "secret"]);
    assert_eq!(
        text(&server.raw(b"GET x\r\nSET x y\r\n")),
        format!("{NOAUTH}{NOAUTH}")
    );
}

#[test]
fn an_unknown_command_before_auth_is_reported_as_unknown() {
    // Redis looks the command up before checking authentication.
    let server = TestServer::with_args(&["--requirepass", "secret"]);
    assert_eq!(
        text(&server.raw(b"FOO x\r\n")),
        "-ERR unknown command 'FOO', with args beginning with: 'x' \r\n"
    );
}

#[test]
fn wrong_password_is_wrongpass_and_the_right_one_authenticates() {
    let server = TestServer::with_args(&["--requirepass", "secret"]);
    let reply = server.raw(b"AUTH wrong\r\nAUTH default wrong\r\nAUTH secret\r\nPING\r\n");
    assert_eq!(
        text(&reply),
        format!("{WRONGPASS}{WRONGPASS}+OK\r\n+PONG\r\n")
    );
}

#[test]
fn auth_with_username_default_works() {
    let server = TestServer::with_args(&["--requirepass", "secret"]);
    assert_eq!(
        text(&server.raw(b"AUTH default secret\r\nPING\r\n")),
        "+OK\r\n+PONG\r\n"
    );
}

#[test]
fn auth_without_a_configured_password_is_an_error() {
    let server = TestServer::start();
    assert_eq!(
        text(&server.raw(b"AUTH foo\r\n")),
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"
    );
}

#[test]
fn hello_without_auth_is_refused_when_a_password_is_required() {
    let server = TestServer::with_args(&["--requirepass", "secret"]);
    assert_eq!(
        text(&server.raw(b"HELLO 3\r\n")),
        "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"
    );
}

#[test]
fn hello_3_auth_default_secret_authenticates_and_switches_to_resp3() {
    let server = TestServer::with_args(&["--requirepass", "secret"]);
    let mut c = server.raw_conn();
    c.send(b"HELLO 3 AUTH default secret\r\n");
    let reply = text(&c.read_until(
        |b| b.ends_with(b"modules\r\n*0\r\n"),
        Duration::from_secs(5),
    ));
    assert!(reply.starts_with("%7\r\n"), "{reply}");
    assert!(reply.contains("$5\r\nproto\r\n:3\r\n"), "{reply}");
    c.send(b"PING\r\n");
    assert_eq!(text(&c.read_n(7)), "+PONG\r\n");
}

#[test]
fn hello_auth_with_a_wrong_password_is_wrongpass() {
    let server = TestServer::with_args(&["--requirepass", "secret"]);
    assert_eq!(
        text(&server.raw(b"HELLO 3 AUTH default nope\r\n")),
        WRONGPASS
    );
}

#[test]
fn reset_forgets_authentication() {
    let server = TestServer::with_args(&["--requirepass", "secret"]);
    assert_eq!(
        text(&server.raw(b"AUTH secret\r\nRESET\r\nPING\r\n")),
        format!("+OK\r\n+RESET\r\n{NOAUTH}")
    );
}

#[test]
fn the_redis_crate_authenticates_through_the_url() {
    let server = TestServer::with_args(&["--requirepass", "secret"]);
    let client =
        redis::Client::open(format!("redis://:secret@127.0.0.1:{}/", server.port())).expect("url");
    let mut con = client.get_connection().expect("authenticated connection");
    assert_eq!(cmd::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn ping_with_an_argument_echoes_it_and_echo_returns_its_argument() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(cmd::<String>(&mut con, &["PING"]), "PONG");
    assert_eq!(cmd::<String>(&mut con, &["PING", "hi there"]), "hi there");
    assert_eq!(cmd::<String>(&mut con, &["ECHO", "x y"]), "x y");
}

#[test]
fn select_out_of_range_is_an_error() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(
        err(&mut con, &["SELECT", "16"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        err(&mut con, &["SELECT", "-1"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        err(&mut con, &["SELECT", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(cmd::<String>(&mut con, &["SELECT", "15"]), "OK");
}

#[test]
fn select_with_more_databases_configured_accepts_higher_indexes() {
    let server = TestServer::with_args(&["--databases", "32"]);
    let mut con = server.client();
    assert_eq!(cmd::<String>(&mut con, &["SELECT", "31"]), "OK");
    assert_eq!(
        err(&mut con, &["SELECT", "32"]),
        "ERR DB index is out of range"
    );
}

#[test]
fn swapdb_validates_its_indexes() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(
        err(&mut con, &["SWAPDB", "0", "16"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        err(&mut con, &["SWAPDB", "0", "x"]),
        "ERR invalid second DB index"
    );
    assert_eq!(
        err(&mut con, &["SWAPDB", "x", "0"]),
        "ERR invalid first DB index"
    );
    assert_eq!(cmd::<String>(&mut con, &["SWAPDB", "0", "1"]), "OK");
}

#[test]
fn client_setname_and_getname_round_trip() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["CLIENT", "GETNAME"]),
        None
    );
    assert_eq!(
        cmd::<String>(&mut con, &["CLIENT", "SETNAME", "worker-1"]),
        "OK"
    );
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["CLIENT", "GETNAME"]).as_deref(),
        Some("worker-1")
    );
    assert_eq!(
        err(&mut con, &["CLIENT", "SETNAME", "a b"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(cmd::<String>(&mut con, &["CLIENT", "SETNAME", ""]), "OK");
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["CLIENT", "GETNAME"]),
        None
    );
}

#[test]
fn client_ids_are_distinct_and_increasing() {
    let server = TestServer::start();
    let mut a = server.client();
    let mut b = server.client();
    let ida: i64 = cmd(&mut a, &["CLIENT", "ID"]);
    let idb: i64 = cmd(&mut b, &["CLIENT", "ID"]);
    assert!(ida > 0 && idb > ida, "{ida} {idb}");
}

#[test]
fn client_list_shows_every_connection_with_redis_fields() {
    let server = TestServer::start();
    let mut a = server.client();
    let mut b = server.client();
    let _: String = cmd(&mut b, &["CLIENT", "SETNAME", "bee"]);
    let idb: i64 = cmd(&mut b, &["CLIENT", "ID"]);
    let list: String = cmd(&mut a, &["CLIENT", "LIST"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    let bee = lines
        .iter()
        .find(|l| l.contains(" name=bee "))
        .expect("named client listed");
    assert!(
        bee.starts_with(&format!("id={idb} addr=127.0.0.1:")),
        "{bee}"
    );
    for field in [
        " laddr=",
        " fd=",
        " age=",
        " idle=",
        " flags=N ",
        " db=0 ",
        " cmd=",
        " resp=2",
    ] {
        assert!(bee.contains(field), "missing {field:?} in {bee}");
    }
    // An idle client holds no query; the one asking holds its own
    // command, as Redis keeps it in the buffer while it runs.
    assert!(bee.contains(" qbuf=0 "), "{bee}");
    let me: String = cmd(&mut a, &["CLIENT", "INFO"]);
    assert!(me.contains("cmd=client|info"), "{me}");
    assert!(me.contains(" qbuf=26 "), "*2 $6 CLIENT $4 INFO: {me}");
}

#[test]
fn client_kill_by_id_closes_that_connection() {
    let server = TestServer::start();
    let mut killer = server.client();
    let mut victim = server.raw_conn();
    victim.send(b"CLIENT ID\r\n");
    let reply = text(&victim.read_until(|b| b.ends_with(b"\r\n"), Duration::from_secs(5)));
    let id = reply.trim_start_matches(':').trim_end().to_string();
    assert_eq!(cmd::<i64>(&mut killer, &["CLIENT", "KILL", "ID", &id]), 1);
    assert!(victim.is_closed(), "killed client must be disconnected");
    assert_eq!(
        cmd::<i64>(&mut killer, &["CLIENT", "KILL", "ID", "999999"]),
        0
    );
    assert_eq!(
        err(&mut killer, &["CLIENT", "KILL", "1.2.3.4:5"]),
        "ERR No such client"
    );
}

#[test]
fn client_reply_off_on_and_skip_suppress_replies() {
    let server = TestServer::start();
    let reply = server.raw(
        b"CLIENT REPLY OFF\r\nPING\r\nCLIENT REPLY ON\r\nPING\r\nCLIENT REPLY SKIP\r\nECHO a\r\nECHO b\r\n",
    );
    assert_eq!(text(&reply), "+OK\r\n+PONG\r\n$1\r\nb\r\n");
    // `CLIENT REPLY ON` right after SKIP ends the skip and is answered.
    assert_eq!(
        text(&server.raw(b"CLIENT REPLY SKIP\r\nCLIENT REPLY ON\r\nPING\r\n")),
        "+OK\r\n+PONG\r\n"
    );
    assert_eq!(
        text(&server.raw(b"CLIENT REPLY foo\r\n")),
        "-ERR syntax error\r\n"
    );
}

#[test]
fn quit_replies_ok_and_closes_the_connection() {
    let server = TestServer::start();
    let mut c = server.raw_conn();
    c.send(b"QUIT\r\nPING\r\n");
    let reply = c.read_idle();
    assert_eq!(text(&reply), "+OK\r\n");
    assert!(c.is_closed());
}

#[test]
fn reset_clears_name_and_database() {
    let server = TestServer::start();
    let reply = server.raw(b"CLIENT SETNAME x\r\nCLIENT GETNAME\r\nSELECT 3\r\nRESET\r\nCLIENT GETNAME\r\nCLIENT INFO\r\n");
    let reply = text(&reply);
    assert!(
        reply.starts_with("+OK\r\n$1\r\nx\r\n+OK\r\n+RESET\r\n$-1\r\n"),
        "{reply}"
    );
    assert!(reply.contains(" db=0 "), "{reply}");
}

#[test]
fn reset_returns_to_resp2() {
    let server = TestServer::start();
    let mut c = server.raw_conn();
    c.hello3();
    c.send(b"RESET\r\nCLIENT GETNAME\r\n");
    assert_eq!(text(&c.read_n(14)), "+RESET\r\n$-1\r\n");
}

#[test]
fn the_server_keeps_serving_many_clients_at_once() {
    let server = TestServer::start();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let addr = server.addr();
            std::thread::spawn(move || {
                let mut c = ferrite_tests::RawConn::connect(addr);
                let mut input = Vec::new();
                for _ in 0..100 {
                    input.extend(ferrite_tests::resp(&[b"ECHO", format!("c{i}").as_bytes()]));
                }
                c.send(&input);
                let want = format!("$2\r\nc{i}\r\n").repeat(100);
                assert_eq!(text(&c.read_n(want.len())), want);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
}

/// The first reply a client bound to `source` gets to `PING`.
fn ping_from(server: &TestServer, source: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let mut s = sock.connect(server.addr()).await.unwrap();
        s.write_all(b"PING\r\n").await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        text(&buf[..n])
    })
}

#[test]
fn protected_mode_accepts_only_127_0_0_1_and_not_the_rest_of_127_slash_8() {
    // Redis's `islocalClient` compares the peer with "127.0.0.1" and
    // "::1"; 127.0.0.2 is on the loopback interface but counts as remote.
    let server = TestServer::start();
    assert_eq!(ping_from(&server, "127.0.0.1"), "+PONG\r\n");
    let denied = ping_from(&server, "127.0.0.2");
    assert!(
        denied.starts_with("-DENIED Redis is running in protected mode"),
        "{denied}"
    );
    let open = TestServer::with_args(&["--protected-mode", "no"]);
    assert_eq!(ping_from(&open, "127.0.0.2"), "+PONG\r\n");
    let guarded = TestServer::with_args(&["--requirepass", "secret"]);
    assert!(ping_from(&guarded, "127.0.0.2").starts_with("-NOAUTH"));
}
