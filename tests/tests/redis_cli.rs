//! The real `redis-cli` against Ferrite (skipped when redis-cli is absent).

use std::io::Write;
use std::process::{Command, Stdio};

use ferrite_tests::TestServer;

fn redis_cli_available() -> bool {
    ferrite_tests::has_binary("redis-cli")
}

fn cli(server: &TestServer, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-p", &server.port().to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redis-cli");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("redis-cli output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_set_and_get_round_trip() {
    if !redis_cli_available() {
        return;
    }
    let server = TestServer::start();
    assert_eq!(cli(&server, &["set", "foo", "bar"], None), "OK\n");
    assert_eq!(cli(&server, &["get", "foo"], None), "bar\n");
    assert_eq!(cli(&server, &["--no-raw", "get", "foo"], None), "\"bar\"\n");
    assert_eq!(cli(&server, &["--no-raw", "get", "nope"], None), "(nil)\n");
    assert_eq!(
        cli(&server, &["--no-raw", "incr", "n"], None),
        "(integer) 1\n"
    );
}

#[test]
fn redis_cli_ping_works_without_data_commands() {
    if !redis_cli_available() {
        return;
    }
    let server = TestServer::start();
    assert_eq!(cli(&server, &["ping"], None), "PONG\n");
    assert_eq!(
        cli(&server, &["--no-raw", "echo", "a b"], None),
        "\"a b\"\n"
    );
    assert_eq!(
        cli(&server, &["--no-raw", "client", "foo"], None),
        "(error) ERR unknown subcommand 'foo'. Try CLIENT HELP.\n"
    );
}

#[test]
fn redis_cli_reads_a_script_from_stdin() {
    if !redis_cli_available() {
        return;
    }
    let server = TestServer::start();
    let out = cli(&server, &[], Some("set a 1\nincr a\nget a\nping\n"));
    assert_eq!(out, "OK\n2\n2\nPONG\n");
}
