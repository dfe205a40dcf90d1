//! ACL users against the real binary: rules, authentication, refusals and
//! the ACL log, transactions, scripts, pub/sub, files and configuration;
//! `ACL LIST` compared with a real Redis 7.0 when one is installed.

use std::time::Duration;

use ferrite_tests::{cmd, err, free_port, has_binary, start_redis, tempdir, text, TestServer};

const NOPERM_CMD_SET: &str = "NOPERM this user has no permissions to run the 'set' command";
const NOPERM_KEY: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";
const NOPERM_CHANNEL: &str =
    "NOPERM this user has no permissions to access one of the channels used as arguments";

/// Runs the server on config file `conf` in `dir`, expects it to exit
/// with a failure, and returns what it logged.
fn fails_to_start(conf: &std::path::Path, dir: &std::path::Path) -> String {
    let out = std::process::Command::new(ferrite_tests::server_binary())
        .arg(conf)
        .args(["--port", &free_port().to_string(), "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A connection logged in as `user`.
fn login(server: &TestServer, user: &str, pass: &str) -> redis::Connection {
    let mut c = server.client();
    let ok: String = cmd(&mut c, &["AUTH", user, pass]);
    assert_eq!(ok, "OK");
    c
}

#[test]
fn a_user_runs_what_its_rules_allow_and_gets_noperm_for_the_rest() {
    let server = TestServer::start();
    let mut admin = server.client();
    let ok: String = cmd(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">pw",
            "~app:*",
            "+get",
            "+@hash",
            "-hdel",
            "+acl|whoami",
        ],
    );
    assert_eq!(ok, "OK");
    let mut app = login(&server, "app", "pw");
    let who: String = cmd(&mut app, &["ACL", "WHOAMI"]);
    assert_eq!(who, "app");
    let none: Option<String> = cmd(&mut app, &["GET", "app:x"]);
    assert_eq!(none, None);
    let n: i64 = cmd(&mut app, &["HSET", "app:h", "f", "v"]);
    assert_eq!(n, 1);
    assert_eq!(err(&mut app, &["SET", "app:x", "1"]), NOPERM_CMD_SET);
    assert_eq!(err(&mut app, &["GET", "other"]), NOPERM_KEY);
    assert_eq!(
        err(&mut app, &["HDEL", "app:h", "f"]),
        "NOPERM this user has no permissions to run the 'hdel' command"
    );
    // Subcommands are checked by their full name.
    assert_eq!(
        err(&mut app, &["CONFIG", "GET", "port"]),
        "NOPERM this user has no permissions to run the 'config|get' command"
    );
    let list: String = cmd(&mut admin, &["CLIENT", "LIST"]);
    assert!(list.contains("user=app"), "{list}");
    assert!(list.contains("user=default"), "{list}");
}

#[test]
fn read_and_write_key_patterns_follow_the_key_specs() {
    let server = TestServer::start();
    let mut admin = server.client();
    let _: String = cmd(
        &mut admin,
        &[
            "ACL", "SETUSER", "rw", "on", "nopass", "+@all", "%R~r:*", "%W~w:*",
        ],
    );
    let mut c = login(&server, "rw", "any");
    let _: Option<String> = cmd(&mut c, &["GET", "r:1"]);
    assert_eq!(err(&mut c, &["GET", "w:1"]), NOPERM_KEY);
    // SET without GET only writes; with GET it also reads.
    let ok: String = cmd(&mut c, &["SET", "w:1", "v"]);
    assert_eq!(ok, "OK");
    assert_eq!(err(&mut c, &["SET", "w:1", "v", "GET"]), NOPERM_KEY);
    // COPY reads its source and writes its destination.
    let copied: i64 = cmd(&mut c, &["COPY", "r:1", "w:2"]);
    assert_eq!(copied, 0);
    assert_eq!(err(&mut c, &["COPY", "w:1", "r:2"]), NOPERM_KEY);
    // EXISTS reads no value, so either pattern will do.
    let n: i64 = cmd(&mut c, &["EXISTS", "w:1"]);
    assert_eq!(n, 1);
}

#[test]
fn acl_list_and_getuser_describe_rules_as_redis_does() {
    let server = TestServer::start();
    let mut c = server.client();
    let _: String = cmd(&mut c, &["ACL", "SETUSER", "u1"]);
    let _: String = cmd(
        &mut c,
        &[
            "ACL",
            "SETUSER",
            "u2",
            "on",
            ">pw",
            "~foo*",
            "%R~bar",
            "&chan",
            "+@hash",
            "+select|0",
            "(+set ~x*)",
        ],
    );
    let list: Vec<String> = cmd(&mut c, &["ACL", "LIST"]);
    assert_eq!(
        list,
        [
            "user default on nopass ~* &* +@all",
            "user u1 off resetchannels -@all",
            "user u2 on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~foo* %R~bar resetchannels &chan -@all +@hash +select|0 (~x* resetchannels -@all +set)",
        ]
    );
    let users: Vec<String> = cmd(&mut c, &["ACL", "USERS"]);
    assert_eq!(users, ["default", "u1", "u2"]);
    let raw = text(&server.raw(b"ACL GETUSER u1\r\n"));
    assert_eq!(
        raw,
        "*12\r\n$5\r\nflags\r\n*1\r\n$3\r\noff\r\n$9\r\npasswords\r\n*0\r\n$8\r\ncommands\r\n$5\r\n-@all\r\n$4\r\nkeys\r\n$0\r\n\r\n$8\r\nchannels\r\n$0\r\n\r\n$9\r\nselectors\r\n*0\r\n"
    );
    assert_eq!(text(&server.raw(b"ACL GETUSER nobody\r\n")), "$-1\r\n");
}

#[test]
fn acl_list_matches_a_real_redis_for_the_same_rules() {
    if !has_binary("redis-server") {
        eprintln!("redis-server not installed: comparison skipped");
        return;
    }
    let port = free_port();
    let (_redis, mut real) = start_redis(port, &[]);
    let server = TestServer::start();
    let mut mine = server.client();
    // Each rule set leaves at most one single-command difference, whose
    // place Redis takes from its dict order.
    let rules: &[&[&str]] = &[
        &["a", "on", "nopass", "+@all", "-@dangerous"],
        &[
            "b",
            "on",
            "#5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
            "+@read",
            "+@write",
            "-@admin",
            "~k*",
            "&*",
        ],
        &[
            "c",
            "reset",
            "+@all",
            "-@keyspace",
            "allkeys",
            "resetchannels",
            "&news.*",
        ],
        &[
            "d",
            "on",
            ">x",
            ">y",
            "<x",
            "+@list",
            "+client|id",
            "(%W~w* +@set)",
            "(+get ~g*)",
        ],
        &["e", "skip-sanitize-payload", "+@all", "-@string", "+get"],
    ];
    for r in rules {
        let mut args = vec!["ACL", "SETUSER"];
        args.extend_from_slice(r);
        let a: String = cmd(&mut real, &args);
        let b: String = cmd(&mut mine, &args);
        assert_eq!(a, b);
    }
    let want: Vec<String> = cmd(&mut real, &["ACL", "LIST"]);
    let got: Vec<String> = cmd(&mut mine, &["ACL", "LIST"]);
    assert_eq!(got, want);
    for bad in [
        &["ACL", "SETUSER", "x", "+nosuch"][..],
        &["ACL", "SETUSER", "x", "~a", "allkeys", "~b"],
        &["ACL", "SETUSER", "x", "#xyz"],
        &["ACL", "SETUSER", "x", "(+get"],
        &["ACL", "SETUSER", "x y"],
        &["ACL", "DELUSER", "default"],
        &["ACL", "CAT", "nosuch"],
        &["ACL", "GENPASS", "5000"],
    ] {
        assert_eq!(err(&mut mine, bad), err(&mut real, bad), "{bad:?}");
    }
    let dry = ["ACL", "DRYRUN", "c", "get", "k"];
    let a: String = cmd(&mut real, &dry);
    let b: String = cmd(&mut mine, &dry);
    assert_eq!(b, a);
}

#[test]
fn refusals_and_failed_logins_go_to_the_acl_log() {
    let server = TestServer::start();
    let mut admin = server.client();
    let _: String = cmd(
        &mut admin,
        &["ACL", "SETUSER", "bob", "on", ">pw", "+get", "~b*"],
    );
    let mut bob = login(&server, "bob", "pw");
    let _ = err(&mut bob, &["GET", "x"]);
    let _ = err(&mut bob, &["GET", "x"]);
    let _ = err(&mut bob, &["SET", "b1", "v"]);
    let mut anon = server.client();
    assert_eq!(
        err(&mut anon, &["AUTH", "bob", "wrong"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    let log = text(&server.raw(b"ACL LOG\r\n"));
    assert!(log.starts_with("*3\r\n*14\r\n$5\r\ncount\r\n:1\r\n$6\r\nreason\r\n$4\r\nauth\r\n$7\r\ncontext\r\n$8\r\ntoplevel\r\n$6\r\nobject\r\n$4\r\nAUTH\r\n$8\r\nusername\r\n$3\r\nbob\r\n"), "{log}");
    assert!(log.contains("$6\r\nreason\r\n$7\r\ncommand\r\n$7\r\ncontext\r\n$8\r\ntoplevel\r\n$6\r\nobject\r\n$3\r\nset\r\n"), "{log}");
    // The two key refusals are one entry counted twice.
    assert!(log.contains(":2\r\n$6\r\nreason\r\n$3\r\nkey\r\n$7\r\ncontext\r\n$8\r\ntoplevel\r\n$6\r\nobject\r\n$1\r\nx\r\n"), "{log}");
    assert!(log.contains("user=bob"), "{log}");
    assert_eq!(
        text(&server.raw(b"ACL LOG 1\r\n")).matches("count").count(),
        1
    );
    assert_eq!(
        text(&server.raw(b"ACL LOG RESET\r\nACL LOG\r\n")),
        "+OK\r\n*0\r\n"
    );
}

#[test]
fn transactions_and_scripts_are_checked_too() {
    let server = TestServer::start();
    let mut admin = server.client();
    let _: String = cmd(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "t",
            "on",
            ">pw",
            "+@all",
            "-flushall",
            "~t:*",
            "&*",
        ],
    );
    let mut c = server.raw_conn();
    c.send(b"AUTH t pw\r\nMULTI\r\nSET t:1 a\r\nFLUSHALL\r\nEXEC\r\n");
    let reply = text(&c.read_until(|b| b.ends_with(b"errors.\r\n"), Duration::from_secs(5)));
    assert_eq!(
        reply,
        "+OK\r\n+OK\r\n+QUEUED\r\n-NOPERM this user has no permissions to run the 'flushall' command\r\n-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // Rules that change after queueing refuse the command at EXEC.
    c.send(b"MULTI\r\nSET t:1 a\r\nGET t:1\r\n");
    let _ = c.read_until(
        |b| b.ends_with(b"+QUEUED\r\n+QUEUED\r\n"),
        Duration::from_secs(5),
    );
    let _: String = cmd(&mut admin, &["ACL", "SETUSER", "t", "-get"]);
    c.send(b"EXEC\r\n");
    let reply = text(&c.read_until(|b| b.ends_with(b"subcommand\r\n"), Duration::from_secs(5)));
    assert_eq!(
        reply,
        "*2\r\n+OK\r\n-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to execute the command or subcommand\r\n"
    );
    let mut t = login(&server, "t", "pw");
    let e = err(
        &mut t,
        &["EVAL", "return redis.call('get', KEYS[1])", "1", "t:1"],
    );
    assert!(
        e.starts_with("ERR The user executing the script can't run this command or subcommand"),
        "{e}"
    );
    let e = err(
        &mut t,
        &["EVAL", "return redis.call('set', 'other', 1)", "0"],
    );
    assert!(
        e.starts_with("ERR The user executing the script can't access at least one of the keys mentioned in the command arguments"),
        "{e}"
    );
    let allowed: Option<i64> = cmd(
        &mut t,
        &["EVAL", "return redis.acl_check_cmd('set', 't:2', 1)", "0"],
    );
    assert_eq!(allowed, Some(1));
    let denied: Option<i64> = cmd(
        &mut t,
        &["EVAL", "return redis.acl_check_cmd('get', 't:2')", "0"],
    );
    assert_eq!(denied, None);
    // SORT may not read keys its arguments do not name.
    assert_eq!(
        err(&mut t, &["SORT", "t:l", "BY", "w_*"]),
        "ERR BY option of SORT denied due to insufficient ACL permissions."
    );
}

#[test]
fn channels_are_checked_and_revoking_them_disconnects_subscribers() {
    let server = TestServer::start();
    let mut admin = server.client();
    let _: String = cmd(
        &mut admin,
        &[
            "ACL", "SETUSER", "ps", "on", ">pw", "+@all", "~*", "&news.*",
        ],
    );
    let mut p = login(&server, "ps", "pw");
    let n: i64 = cmd(&mut p, &["PUBLISH", "news.a", "m"]);
    assert_eq!(n, 0);
    assert_eq!(err(&mut p, &["PUBLISH", "sports", "m"]), NOPERM_CHANNEL);
    assert_eq!(err(&mut p, &["PSUBSCRIBE", "news.*x"]), NOPERM_CHANNEL);
    let mut sub = server.raw_conn();
    sub.send(b"AUTH ps pw\r\nSUBSCRIBE news.a\r\n");
    let _ = sub.read_until(|b| b.ends_with(b":1\r\n"), Duration::from_secs(5));
    // Keeping the pattern keeps the subscriber; losing it closes it.
    let _: String = cmd(&mut admin, &["ACL", "SETUSER", "ps", "&other"]);
    assert!(!sub.is_closed());
    let _: String = cmd(
        &mut admin,
        &["ACL", "SETUSER", "ps", "resetchannels", "&other"],
    );
    assert!(sub.is_closed());
}

#[test]
fn deleting_a_user_disconnects_its_clients() {
    let server = TestServer::start();
    let mut admin = server.client();
    let _: String = cmd(
        &mut admin,
        &["ACL", "SETUSER", "gone", "on", ">pw", "+@all", "~*"],
    );
    let mut c = server.raw_conn();
    c.send(b"AUTH gone pw\r\n");
    let _ = c.read_until(|b| b.ends_with(b"+OK\r\n"), Duration::from_secs(5));
    let n: i64 = cmd(&mut admin, &["ACL", "DELUSER", "gone", "never"]);
    assert_eq!(n, 1);
    assert!(c.is_closed());
    assert_eq!(
        err(&mut admin, &["AUTH", "gone", "pw"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
}

#[test]
fn requirepass_is_the_default_users_password() {
    let server = TestServer::with_args(&["--requirepass", "s3"]);
    let mut c = server.client();
    let ok: String = cmd(&mut c, &["AUTH", "s3"]);
    assert_eq!(ok, "OK");
    let list: Vec<String> = cmd(&mut c, &["ACL", "LIST"]);
    assert_eq!(
        list,
        [format!(
            "user default on #{} ~* &* +@all",
            sha256_hex(b"s3")
        )]
    );
    // Another CONFIG SET leaves the default user's rules alone.
    let _: String = cmd(&mut c, &["ACL", "SETUSER", "default", ">second"]);
    let _: String = cmd(&mut c, &["CONFIG", "SET", "maxmemory-samples", "7"]);
    let mut d = server.client();
    let ok: String = cmd(&mut d, &["AUTH", "default", "second"]);
    assert_eq!(ok, "OK");
    // Clearing requirepass makes the default user nopass again.
    let _: String = cmd(&mut c, &["CONFIG", "SET", "requirepass", ""]);
    let mut e = server.client();
    let pong: String = cmd(&mut e, &["PING"]);
    assert_eq!(pong, "PONG");
}

/// The hex SHA-256 of `s`, via the server's own `ACL SETUSER` would be
/// circular; `sha256sum` is on every machine the suite runs on.
fn sha256_hex(s: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(s).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

#[test]
fn a_client_library_logs_in_with_a_username_in_its_url() {
    let server = TestServer::start();
    let mut admin = server.client();
    let _: String = cmd(
        &mut admin,
        &["ACL", "SETUSER", "lib", "on", ">libpw", "+@all", "~*"],
    );
    let url = format!("redis://lib:libpw@127.0.0.1:{}/", server.port());
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let who: String = cmd(&mut c, &["ACL", "WHOAMI"]);
    assert_eq!(who, "lib");
    let bad = format!("redis://lib:nope@127.0.0.1:{}/", server.port());
    assert!(redis::Client::open(bad).unwrap().get_connection().is_err());
}

#[test]
fn acl_save_and_load_round_trip_through_the_acl_file() {
    let dir = tempdir("acl-file");
    std::fs::write(
        dir.join("users.acl"),
        "user default on nopass ~* &* +@all\nuser alice on >pw ~a:* +@read\n",
    )
    .unwrap();
    let server = TestServer::in_dir(&dir, &["--aclfile", "users.acl"]);
    let mut c = server.client();
    let users: Vec<String> = cmd(&mut c, &["ACL", "USERS"]);
    assert_eq!(users, ["alice", "default"]);
    let mut alice = login(&server, "alice", "pw");
    let _: String = cmd(
        &mut c,
        &["ACL", "SETUSER", "carol", "on", "nopass", "+ping"],
    );
    let ok: String = cmd(&mut c, &["ACL", "SAVE"]);
    assert_eq!(ok, "OK");
    let saved = std::fs::read_to_string(dir.join("users.acl")).unwrap();
    assert!(
        saved.contains("user carol on nopass resetchannels -@all +ping\n"),
        "{saved}"
    );
    // A broken file changes nothing.
    std::fs::write(dir.join("users.acl"), "user bad +nosuchcommand\n").unwrap();
    let e = err(&mut c, &["ACL", "LOAD"]);
    assert!(
        e.contains("Error in applying operation '+nosuchcommand'"),
        "{e}"
    );
    assert!(e.ends_with("WARNING: ACL errors detected, no change to the previously active ACL rules was performed"), "{e}");
    std::fs::write(
        dir.join("users.acl"),
        "user default on nopass ~* &* +@all\n",
    )
    .unwrap();
    let ok: String = cmd(&mut c, &["ACL", "LOAD"]);
    assert_eq!(ok, "OK");
    let users: Vec<String> = cmd(&mut c, &["ACL", "USERS"]);
    assert_eq!(users, ["default"]);
    // Users that are gone lose their connections.
    assert!(redis::cmd("PING").query::<String>(&mut alice).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn user_directives_in_the_config_file_define_users_and_survive_config_rewrite() {
    let dir = tempdir("acl-conf");
    let conf = dir.join("ferrite.conf");
    std::fs::write(
        &conf,
        "user default on nopass ~* &* +@all\nuser ops on >opspw +@admin +ping\n",
    )
    .unwrap();
    let server = TestServer::with_file(&conf, &["--dir", dir.to_str().unwrap()]);
    let mut c = server.client();
    let mut ops = login(&server, "ops", "opspw");
    let pong: String = cmd(&mut ops, &["PING"]);
    assert_eq!(pong, "PONG");
    assert_eq!(
        err(&mut ops, &["GET", "k"]),
        "NOPERM this user has no permissions to run the 'get' command"
    );
    let _: String = cmd(&mut c, &["ACL", "SETUSER", "ops", "+get"]);
    let ok: String = cmd(&mut c, &["CONFIG", "REWRITE"]);
    assert_eq!(ok, "OK");
    let text = std::fs::read_to_string(&conf).unwrap();
    // A configured default user is reset first, as Redis does.
    assert!(
        text.contains("user default on nopass sanitize-payload ~* &* +@all\n"),
        "{text}"
    );
    assert!(text.contains("+@admin"), "{text}");
    assert!(text.contains("+get"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn users_in_both_the_config_and_an_acl_file_stop_the_start() {
    let dir = tempdir("acl-both");
    std::fs::write(
        dir.join("users.acl"),
        "user default on nopass ~* &* +@all\n",
    )
    .unwrap();
    let conf = dir.join("ferrite.conf");
    std::fs::write(&conf, "user x on nopass +@all\naclfile users.acl\n").unwrap();
    let log = fails_to_start(&conf, &dir);
    assert!(log.contains("please define either an ACL file or declare users directly in your redis.conf, but not both"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exec_checks_each_queued_command_against_the_user_of_its_turn() {
    let server = TestServer::start();
    let mut admin = server.client();
    let _: String = cmd(
        &mut admin,
        &["ACL", "SETUSER", "ro", "on", ">pw", "-@all", "+get", "~*"],
    );
    let mut c = server.raw_conn();
    c.send(b"MULTI\r\nAUTH ro pw\r\nSET k v\r\nEXEC\r\n");
    let reply = text(&c.read_until(|b| b.ends_with(b"subcommand\r\n"), Duration::from_secs(5)));
    assert_eq!(
        reply,
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to execute the command or subcommand\r\n"
    );
    let v: Option<String> = cmd(&mut admin, &["GET", "k"]);
    assert_eq!(v, None);
}

#[test]
fn sort_store_is_checked_against_the_key_it_writes() {
    let server = TestServer::start();
    let mut admin = server.client();
    let _: String = cmd(
        &mut admin,
        &["ACL", "SETUSER", "s", "on", ">pw", "+@all", "~src", "~b*"],
    );
    let _: i64 = cmd(&mut admin, &["RPUSH", "src", "1"]);
    let mut s = login(&server, "s", "pw");
    // The second STORE is the one the sort writes.
    assert_eq!(
        err(&mut s, &["SORT", "src", "STORE", "by", "STORE", "victim"]),
        NOPERM_KEY
    );
    let n: i64 = cmd(&mut admin, &["EXISTS", "victim"]);
    assert_eq!(n, 0);
}

#[test]
fn odd_user_lines_in_the_config_do_not_crash_the_start() {
    let dir = tempdir("acl-odd");
    let conf = dir.join("ferrite.conf");
    std::fs::write(&conf, "user \"\"\n").unwrap();
    let server = TestServer::with_file(&conf, &["--dir", dir.to_str().unwrap()]);
    let mut c = server.client();
    let users: Vec<String> = cmd(&mut c, &["ACL", "USERS"]);
    assert_eq!(users, ["", "default"]);
    std::fs::write(&conf, "user \" \"\n").unwrap();
    let log = fails_to_start(&conf, &dir);
    assert!(log.contains("FATAL CONFIG FILE ERROR"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn module_script_debug_and_restore_asking_exist_for_rules_and_clients() {
    let server = TestServer::with_args(&["--enable-module-command", "yes"]);
    let mut c = server.client();
    let ok: String = cmd(
        &mut c,
        &[
            "ACL",
            "SETUSER",
            "m",
            "+@all",
            "-module",
            "-script|debug",
            "-restore-asking",
        ],
    );
    assert_eq!(ok, "OK");
    assert_eq!(text(&server.raw(b"MODULE LIST\r\n")), "*0\r\n");
    assert_eq!(
        err(&mut c, &["MODULE", "LOAD", "/nonexistent/x.so"]),
        "ERR Error loading the extension. Please check the server logs."
    );
    assert_eq!(
        err(&mut c, &["MODULE", "UNLOAD", "bf"]),
        "ERR Error unloading module: no such module with that name"
    );
    let ok: String = cmd(&mut c, &["SCRIPT", "DEBUG", "NO"]);
    assert_eq!(ok, "OK");
    assert!(err(&mut c, &["SCRIPT", "DEBUG", "YES"]).starts_with("ERR Ferrite has no Lua debugger"));
    assert_eq!(
        err(&mut c, &["SCRIPT", "DEBUG", "MAYBE"]),
        "ERR Use SCRIPT DEBUG YES/SYNC/NO"
    );
    // Not behind another command's unsent reply.
    assert_eq!(
        text(&server.raw(b"PING\r\nSCRIPT DEBUG NO\r\n")),
        "+PONG\r\n-ERR SCRIPT DEBUG must be called outside a pipeline\r\n"
    );
    let _: () = cmd(&mut c, &["SET", "k", "v"]);
    let payload: Vec<u8> = redis::cmd("DUMP").arg("k").query(&mut c).unwrap();
    let ok: String = redis::cmd("RESTORE-ASKING")
        .arg("k2")
        .arg(0)
        .arg(payload)
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, "OK");
    let v: String = cmd(&mut c, &["GET", "k2"]);
    assert_eq!(v, "v");
    // Only LOAD, LOADEX and UNLOAD are protected, and refused before the
    // login and ACL checks, as in Redis.
    let locked = TestServer::with_args(&["--requirepass", "pw"]);
    let mut d = locked.client();
    assert!(
        err(&mut d, &["MODULE", "LOAD", "/x.so"]).starts_with("ERR MODULE command not allowed.")
    );
    let _: String = cmd(&mut d, &["AUTH", "pw"]);
    assert_eq!(
        text(&locked.raw(b"AUTH pw\r\nMODULE LIST\r\n")),
        "+OK\r\n*0\r\n"
    );
    assert!(err(&mut d, &["MODULE", "UNLOAD", "x"]).starts_with("ERR MODULE command not allowed."));
}
