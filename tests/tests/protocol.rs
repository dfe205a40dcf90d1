//! RESP parsing, inline commands, pipelining, RESP3 and protocol errors,
//! checked byte for byte against Redis 7.0 replies.

use std::time::Duration;

use ferrite_tests::{resp, text, TestServer};
use proptest::prelude::*;

/// A server that was sent garbage still answers a fresh connection.
fn assert_still_serving(server: &TestServer) {
    assert_eq!(text(&server.raw(b"PING\r\n")), "+PONG\r\n");
}

/// Sends `input` and asserts Redis's protocol error reply followed by a close.
fn assert_protocol_error(input: &[u8], message: &str) {
    let server = TestServer::start();
    let mut c = server.raw_conn();
    c.send(input);
    let reply = c.read_until(|b| b.ends_with(b"\r\n"), Duration::from_secs(5));
    assert_eq!(text(&reply), format!("-ERR Protocol error: {message}\r\n"));
    assert!(
        c.is_closed(),
        "connection must be closed after a protocol error"
    );
    assert_still_serving(&server);
}

#[test]
fn inline_ping_answers_pong() {
    let server = TestServer::start();
    assert_eq!(text(&server.raw(b"PING\r\n")), "+PONG\r\n");
}

#[test]
fn inline_command_with_quoted_argument_keeps_the_space() {
    let server = TestServer::start();
    let reply = server.raw(b"SET k \"a b\"\r\nGET k\r\n");
    assert_eq!(text(&reply), "+OK\r\n$3\r\na b\r\n");
}

#[test]
fn empty_lines_and_empty_multibulk_are_ignored() {
    let server = TestServer::start();
    let reply = server.raw(b"\r\n*0\r\n*-1\r\nPING\r\n");
    assert_eq!(text(&reply), "+PONG\r\n");
}

#[test]
fn a_thousand_pipelined_commands_get_a_thousand_replies_in_order() {
    let server = TestServer::start();
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1000 {
        let v = i.to_string();
        input.extend(resp(&[b"ECHO", v.as_bytes()]));
        expected.extend(format!("${}\r\n{v}\r\n", v.len()).into_bytes());
    }
    let mut c = server.raw_conn();
    c.send(&input);
    let got = c.read_n(expected.len());
    assert_eq!(got.len(), expected.len(), "short read: {}", text(&got));
    assert!(got == expected, "replies out of order");
}

/// Replies go out after the worker's round (`crate::deferred` in the
/// server); a client that reads nothing until its socket is full makes
/// them overflow to the connection, which then writes with backpressure.
/// Every reply still arrives, in order, and other clients are served
/// meanwhile.
#[test]
fn a_client_that_reads_late_gets_every_reply_in_order() {
    late_reader(false);
}

/// As above, with the client's FIN right after its last command: the
/// connection still writes every reply, then closes.
#[test]
fn a_client_that_half_closes_after_its_commands_gets_every_reply() {
    late_reader(true);
}

/// Many clients with one command in flight each: the load under which a
/// worker naps between rounds (`server::nap`). Every client gets its own
/// replies, in order, and no update is lost.
#[test]
fn many_clients_one_command_at_a_time_get_their_own_replies() {
    let server = TestServer::start();
    const CLIENTS: usize = 32;
    const ROUNDS: usize = 100;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let mut con = server.client();
            std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    let _: i64 = ferrite_tests::cmd(&mut con, &["INCR", "shared"]);
                    let mine = format!("{c}:{i}");
                    let _: () = ferrite_tests::cmd(&mut con, &["SET", &format!("k{c}"), &mine]);
                    let got: String = ferrite_tests::cmd(&mut con, &["GET", &format!("k{c}")]);
                    assert_eq!(got, mine);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let mut con = server.client();
    let n: usize = ferrite_tests::cmd(&mut con, &["GET", "shared"]);
    assert_eq!(n, CLIENTS * ROUNDS);
}

fn late_reader(half_close: bool) {
    use std::io::{Read, Write};
    let server = TestServer::start();
    let mut r = server.client();
    // Each read of requests (16 KB) makes about 45 KB of replies: small
    // enough to be deferred, not written at once.
    let big = "x".repeat(100);
    let _: () = ferrite_tests::cmd(&mut r, &["SET", "big", &big]);
    const N: usize = 60_000;
    let stream = std::net::TcpStream::connect(server.addr()).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    // About 7 MB of replies: more than the socket buffers hold.
    let sender = std::thread::spawn(move || {
        let mut chunk = Vec::new();
        for i in 0..N {
            chunk.extend(resp(&[b"INCR", b"n"]));
            chunk.extend(resp(&[b"GET", b"big"]));
            if i % 100 == 99 {
                writer.write_all(&chunk).expect("send");
                chunk.clear();
            }
        }
        writer.write_all(&chunk).expect("send");
        if half_close {
            writer
                .shutdown(std::net::Shutdown::Write)
                .expect("shutdown");
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    // Stuck on its output, the first client holds nobody else up.
    assert_eq!(text(&server.raw(b"PING\r\n")), "+PONG\r\n");
    let mut expected = Vec::new();
    let mut reader = stream;
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut next = 1usize;
    let mut checked = 0usize;
    while next <= N {
        let n = reader.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {} replies", next - 1);
        got.extend_from_slice(&buf[..n]);
        // Check whole reply pairs as they come, then drop them.
        loop {
            expected.clear();
            expected.extend(format!(":{next}\r\n$100\r\n{big}\r\n").into_bytes());
            if got.len() - checked < expected.len() {
                break;
            }
            assert_eq!(
                text(&got[checked..checked + expected.len()]),
                text(&expected),
                "reply pair {next}"
            );
            checked += expected.len();
            next += 1;
        }
        got.drain(..checked);
        checked = 0;
    }
    assert!(got.is_empty(), "extra bytes: {}", text(&got));
    if half_close {
        assert_eq!(reader.read(&mut buf).expect("read"), 0, "closed at the end");
    }
    sender.join().expect("sender");
    let n: i64 = ferrite_tests::cmd(&mut r, &["GET", "n"]);
    assert_eq!(n, N as i64);
}

#[test]
fn a_command_split_across_writes_is_reassembled() {
    let server = TestServer::start();
    let mut c = server.raw_conn();
    let cmd = resp(&[b"ECHO", b"hello"]);
    for chunk in cmd.chunks(3) {
        c.send(chunk);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(text(&c.read_n(11)), "$5\r\nhello\r\n");
}

#[test]
fn hello_3_answers_a_resp3_map_with_seven_fields() {
    let server = TestServer::start();
    let mut c = server.raw_conn();
    let reply = text(&c.hello3());
    assert!(
        reply.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n"),
        "{reply}"
    );
    assert!(
        reply.contains("$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:"),
        "{reply}"
    );
    assert!(
        reply.ends_with("$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"),
        "{reply}"
    );
}

#[test]
fn after_hello_3_a_missing_value_is_the_resp3_null() {
    let server = TestServer::start();
    let mut c = server.raw_conn();
    c.hello3();
    // CLIENT GETNAME on an unnamed connection is a null: `_` in RESP3.
    c.send(b"CLIENT GETNAME\r\n");
    assert_eq!(text(&c.read_n(3)), "_\r\n");
}

#[test]
fn hello_with_an_unsupported_version_is_noproto() {
    let server = TestServer::start();
    assert_eq!(
        text(&server.raw(b"HELLO 4\r\n")),
        "-NOPROTO unsupported protocol version\r\n"
    );
}

#[test]
fn invalid_multibulk_length_is_a_protocol_error_that_closes_the_connection() {
    assert_protocol_error(b"*x\r\n", "invalid multibulk length");
}

#[test]
fn huge_multibulk_length_is_a_protocol_error() {
    assert_protocol_error(b"*99999999999\r\n", "invalid multibulk length");
}

#[test]
fn a_non_bulk_element_in_a_multibulk_is_a_protocol_error() {
    assert_protocol_error(b"*1\r\nx\r\n", "expected '$', got 'x'");
}

#[test]
fn unbalanced_quotes_in_an_inline_command_are_a_protocol_error() {
    assert_protocol_error(b"SET k \"a b\r\n", "unbalanced quotes in request");
}

#[test]
fn negative_bulk_length_is_a_protocol_error() {
    assert_protocol_error(b"*2\r\n$3\r\nGET\r\n$-5\r\n", "invalid bulk length");
}

#[test]
fn bulk_length_over_proto_max_bulk_len_is_refused() {
    // proto-max-bulk-len defaults to 512 MiB (536870912).
    assert_protocol_error(b"*1\r\n$536870913\r\n", "invalid bulk length");
}

#[test]
fn bulk_length_over_a_lowered_proto_max_bulk_len_is_refused() {
    let server = TestServer::with_args(&["--proto-max-bulk-len", "1mb"]);
    let mut c = server.raw_conn();
    c.send(b"*2\r\n$4\r\nECHO\r\n$2000000\r\n");
    let reply = c.read_until(|b| b.ends_with(b"\r\n"), Duration::from_secs(5));
    assert_eq!(text(&reply), "-ERR Protocol error: invalid bulk length\r\n");
    assert!(c.is_closed());
    assert_still_serving(&server);
}

#[test]
fn wrong_arity_names_the_command() {
    let server = TestServer::start();
    assert_eq!(
        text(&server.raw(b"GET\r\n")),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
}

#[test]
fn wrong_arity_of_a_connection_command_names_it() {
    let server = TestServer::start();
    assert_eq!(
        text(&server.raw(b"ECHO\r\n")),
        "-ERR wrong number of arguments for 'echo' command\r\n"
    );
}

#[test]
fn inline_echo_with_quotes_and_escapes_keeps_one_argument() {
    let server = TestServer::start();
    let reply = server.raw(b"ECHO \"a b\"\r\nECHO 'it''s'\r\nECHO \"\\x41\\t\"\r\n");
    assert_eq!(
        text(&reply),
        "$3\r\na b\r\n-ERR Protocol error: unbalanced quotes in request\r\n"
    );
}

#[test]
fn unknown_command_lists_its_first_arguments() {
    let server = TestServer::start();
    assert_eq!(
        text(&server.raw(b"FOO bar\r\n")),
        "-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n"
    );
}

#[test]
fn unknown_subcommand_points_to_help() {
    let server = TestServer::start();
    assert_eq!(
        text(&server.raw(b"CLIENT foo\r\n")),
        "-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n"
    );
}

#[test]
fn errors_do_not_close_the_connection() {
    let server = TestServer::start();
    let reply = server.raw(b"GET\r\nFOO\r\nPING\r\n");
    assert!(text(&reply).ends_with("+PONG\r\n"), "{}", text(&reply));
}

#[test]
fn embedded_server_answers_ping_through_the_library_api() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(ferrite_server::run(
            listener,
            ferrite_server::Config::default(),
            async move {
                let _ = stop_rx.await;
            },
        ));
        let reply = tokio::task::spawn_blocking(move || {
            let mut c = ferrite_tests::RawConn::connect(addr);
            c.send(b"PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n");
            c.read_n(15)
        })
        .await
        .expect("client thread");
        assert_eq!(text(&reply), "+PONG\r\n$2\r\nhi\r\n");
        let _ = stop_tx.send(());
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stops on shutdown")
            .expect("server task");
    });
}

#[test]
fn inline_quoting_on_the_wire_matches_the_protocol_crate() {
    // The server's inline splitter and the wire agree on escapes in quotes.
    let line = b"SET k \"a\\x41\\n\"";
    let args = ferrite_protocol::split_args(line).expect("balanced");
    assert_eq!(args, vec![b"SET".to_vec(), b"k".to_vec(), b"aA\n".to_vec()]);
    let server = TestServer::start();
    let mut input = line.to_vec();
    input.extend_from_slice(b"\r\nGET k\r\n");
    assert_eq!(text(&server.raw(&input)), "+OK\r\n$3\r\naA\n\r\n");
}

/// Random byte sequences, RESP-looking fragments mixed in, never take the
/// server down: after each, a fresh connection still gets PONG. The cases
/// share one server, owned by this function so it is stopped at the end (a
/// `static` server would outlive the test process's destructors).
#[test]
fn random_bytes_never_kill_the_server() {
    use proptest::test_runner::{Config, TestRunner};
    let server = TestServer::start();
    let chunks = proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            // RESP-looking fragments make the parser go deeper.
            proptest::sample::select(vec![
                b"*".to_vec(),
                b"$".to_vec(),
                b"\r\n".to_vec(),
                b"-1".to_vec(),
                b"3".to_vec(),
                b"99999".to_vec(),
                b"PING".to_vec(),
                b"\"".to_vec(),
                b"*2\r\n$4\r\nECHO\r\n".to_vec(),
                b"HELLO 3\r\n".to_vec(),
            ]),
        ],
        0..16,
    );
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&chunks, |chunks| {
            let input: Vec<u8> = chunks.concat();
            // QUIT/SHUTDOWN/DEBUG in random bytes would be legitimate ways to
            // stop; keep the fuzz about parsing.
            let upper = text(&input).to_ascii_uppercase();
            prop_assume!(!upper.contains("SHUTDOWN") && !upper.contains("DEBUG"));
            let mut c = server.raw_conn();
            c.send(&input);
            let _ = c.read_until(|_| false, Duration::from_millis(30));
            drop(c);
            let mut other = server.raw_conn();
            other.send(b"PING\r\n");
            let reply = other.read_n(7);
            prop_assert_eq!(text(&reply), "+PONG\r\n");
            Ok(())
        })
        .expect("the server survives every input");
}
