//! Server commands: INFO, CONFIG, COMMAND, DBSIZE, TIME, DEBUG, SLOWLOG.

use ferrite_tests::{cmd, err, TestServer};
use redis::{Connection, Value};

fn setup() -> (TestServer, Connection) {
    let server = TestServer::start();
    let con = server.client();
    (server, con)
}

#[test]
fn info_has_sections_and_redis_field_names() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["SET", "k", "v"]);
    let _: Option<String> = cmd(&mut con, &["GET", "k"]);
    let info: String = cmd(&mut con, &["INFO"]);
    for section in ["# Server", "# Clients", "# Memory", "# Stats", "# Keyspace"] {
        assert!(info.contains(section), "missing {section}");
    }
    for field in [
        "redis_version:",
        "connected_clients:",
        "used_memory:",
        "keyspace_hits:",
    ] {
        assert!(
            info.lines().any(|l| l.starts_with(field)),
            "missing {field}"
        );
    }
    assert!(
        info.lines().any(|l| l.starts_with("db0:keys=1,expires=0")),
        "{info}"
    );
    let hits = info
        .lines()
        .find_map(|l| l.strip_prefix("keyspace_hits:"))
        .expect("hits");
    assert_eq!(hits.trim(), "1");
}

#[test]
fn info_with_a_section_returns_only_that_section() {
    let (_s, mut con) = setup();
    let info: String = cmd(&mut con, &["INFO", "keyspace"]);
    assert!(info.starts_with("# Keyspace"), "{info}");
    assert!(!info.contains("# Server"));
    let none: String = cmd(&mut con, &["INFO", "nope"]);
    assert_eq!(none, "");
}

#[test]
fn config_get_with_a_glob_returns_matching_pairs() {
    let (_s, mut con) = setup();
    let pairs: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "maxmemory*"]);
    let names: Vec<&str> = pairs.iter().step_by(2).map(String::as_str).collect();
    for n in ["maxmemory", "maxmemory-policy", "maxmemory-samples"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let exact: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "maxmemory"]);
    assert_eq!(exact, ["maxmemory", "0"]);
    let none: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "nope"]);
    assert!(none.is_empty());
    // Ferrite's own parameters are hidden from patterns, shown by name.
    let all: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "*"]);
    assert!(!all.iter().step_by(2).any(|n| n == "shards"), "{all:?}");
    let shards: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "shards"]);
    assert_eq!(shards[0], "shards");
}

#[test]
fn config_set_validates_with_redis_error_texts() {
    let (_s, mut con) = setup();
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "maxmemory", "abc"]),
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "nope", "1"]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'nope'"
    );
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "appendonly", "maybe"]),
        "ERR CONFIG SET failed (possibly related to argument 'appendonly') - argument must be 'yes' or 'no'"
    );
    assert_eq!(
        err(
            &mut con,
            &["CONFIG", "SET", "maxmemory", "1", "maxmemory", "2"]
        ),
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - duplicate parameter"
    );
    assert_eq!(
        cmd::<String>(&mut con, &["CONFIG", "SET", "hz", "50"]),
        "OK"
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "hz"]),
        ["hz", "50"]
    );
}

#[test]
fn command_count_covers_the_implemented_commands() {
    let (_s, mut con) = setup();
    let n: i64 = cmd(&mut con, &["COMMAND", "COUNT"]);
    let all: Vec<redis::Value> = cmd(&mut con, &["COMMAND"]);
    assert_eq!(n as usize, all.len(), "COMMAND COUNT matches COMMAND");
    assert!(n >= 70, "COMMAND COUNT = {n}");
}

#[test]
fn command_info_get_has_arity_2_and_readonly_fast_flags() {
    let (_s, mut con) = setup();
    let rows: Vec<Value> = cmd(&mut con, &["COMMAND", "INFO", "get"]);
    let Value::Array(row) = &rows[0] else {
        panic!("{rows:?}")
    };
    assert_eq!(row[0], Value::BulkString(b"get".to_vec()));
    assert_eq!(row[1], Value::Int(2));
    assert_eq!(
        row[2],
        Value::Array(vec![
            Value::SimpleString("readonly".into()),
            Value::SimpleString("fast".into())
        ])
    );
    assert_eq!(&row[3..6], &[Value::Int(1), Value::Int(1), Value::Int(1)]);
    assert_eq!(row.len(), 10);
}

#[test]
fn command_docs_get_has_summary_and_group() {
    let (_s, mut con) = setup();
    let docs: Vec<Value> = cmd(&mut con, &["COMMAND", "DOCS", "get"]);
    assert_eq!(docs[0], Value::BulkString(b"get".to_vec()));
    let Value::Array(fields) = &docs[1] else {
        panic!("{docs:?}")
    };
    assert_eq!(fields[0], Value::BulkString(b"summary".to_vec()));
    assert_eq!(
        fields[1],
        Value::BulkString(b"Get the value of a key".to_vec())
    );
    assert!(fields.contains(&Value::BulkString(b"group".to_vec())));
    assert!(fields.contains(&Value::BulkString(b"string".to_vec())));
}

#[test]
fn command_getkeys_extracts_key_arguments() {
    let (_s, mut con) = setup();
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["COMMAND", "GETKEYS", "SET", "a", "b"]),
        ["a"]
    );
    assert_eq!(
        cmd::<Vec<String>>(
            &mut con,
            &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]
        ),
        ["a", "b"]
    );
    assert_eq!(
        err(&mut con, &["COMMAND", "GETKEYS", "PING", "x"]),
        "ERR The command has no key arguments"
    );
    // Keys are optional for EVAL (`no_mandatory_keys`): an empty list.
    let none: Vec<String> = cmd(&mut con, &["COMMAND", "GETKEYS", "EVAL", "return 1", "0"]);
    assert!(none.is_empty());
    // Variable key flags resolved from the arguments, as Redis 7.0.
    let flags = |con: &mut Connection, args: &[&str]| -> Vec<(String, Vec<String>)> {
        let mut q = vec!["COMMAND", "GETKEYSANDFLAGS"];
        q.extend_from_slice(args);
        cmd(con, &q)
    };
    let kf = |k: &str, f: &[&str]| (k.to_string(), f.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        flags(&mut con, &["SET", "k1", "v1"]),
        [kf("k1", &["OW", "update"])]
    );
    assert_eq!(
        flags(&mut con, &["SET", "k1", "v1", "GET"]),
        [kf("k1", &["RW", "access", "update"])]
    );
    assert_eq!(
        flags(&mut con, &["BITFIELD", "b", "GET", "u8", "0"]),
        [kf("b", &["RO", "access"])]
    );
    assert_eq!(
        flags(&mut con, &["LMOVE", "k1", "k2", "left", "right"]),
        [
            kf("k1", &["RW", "access", "delete"]),
            kf("k2", &["RW", "insert"])
        ]
    );
    assert_eq!(
        err(&mut con, &["COMMAND", "GETKEYS", "FOO", "x"]),
        "ERR Invalid command specified"
    );
    assert_eq!(
        err(&mut con, &["COMMAND", "GETKEYS", "GET", "a", "b"]),
        "ERR Invalid number of arguments specified for command"
    );
}

#[test]
fn dbsize_counts_keys_of_the_selected_database() {
    let (_s, mut con) = setup();
    assert_eq!(cmd::<i64>(&mut con, &["DBSIZE"]), 0);
    let _: String = cmd(&mut con, &["MSET", "a", "1", "b", "2"]);
    assert_eq!(cmd::<i64>(&mut con, &["DBSIZE"]), 2);
    let _: String = cmd(&mut con, &["SELECT", "1"]);
    assert_eq!(cmd::<i64>(&mut con, &["DBSIZE"]), 0);
}

#[test]
fn time_returns_seconds_and_microseconds() {
    let (_s, mut con) = setup();
    let t: Vec<String> = cmd(&mut con, &["TIME"]);
    assert_eq!(t.len(), 2);
    let secs: u64 = t[0].parse().expect("seconds");
    let micros: u64 = t[1].parse().expect("micros");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(secs.abs_diff(now) <= 2, "{secs} vs {now}");
    assert!(micros < 1_000_000);
}

#[test]
fn debug_sleep_0_returns_ok() {
    let (_s, mut con) = setup();
    assert_eq!(cmd::<String>(&mut con, &["DEBUG", "SLEEP", "0"]), "OK");
}

#[test]
fn slowlog_records_slow_commands_and_resets() {
    let server = TestServer::with_args(&["--slowlog-log-slower-than", "0"]);
    let mut con = server.client();
    assert_eq!(cmd::<String>(&mut con, &["SLOWLOG", "RESET"]), "OK");
    let _: String = cmd(&mut con, &["DEBUG", "SLEEP", "0"]);
    let len: i64 = cmd(&mut con, &["SLOWLOG", "LEN"]);
    assert!(len >= 1, "{len}");
    let entries: Vec<Value> = cmd(&mut con, &["SLOWLOG", "GET"]);
    let Value::Array(e) = &entries[0] else {
        panic!("{entries:?}")
    };
    assert_eq!(e.len(), 6, "id, time, duration, args, addr, name");
    assert_eq!(
        err(&mut con, &["SLOWLOG", "FOO"]),
        "ERR unknown subcommand 'FOO'. Try SLOWLOG HELP."
    );
}

/// The `cmdstat_*` lines as Redis 7.0 writes them: a failed call (a reply
/// error) and a rejected one (refused before it ran) counted apart,
/// subcommands as `container|sub`, all zeroed by `CONFIG RESETSTAT`
/// except the reset's own call.
#[test]
fn info_commandstats_counts_calls_failures_and_rejections() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["SET", "k", "v"]);
    assert!(err(&mut con, &["LPUSH", "k", "x"]).starts_with("WRONGTYPE"));
    assert!(err(&mut con, &["GET"]).starts_with("ERR wrong number"));
    let _: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "port"]);
    let info: String = cmd(&mut con, &["INFO", "commandstats"]);
    let line = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
            .unwrap_or_else(|| panic!("no cmdstat_{name} in {info}"))
            .to_string()
    };
    assert!(
        line("set").starts_with("cmdstat_set:calls=1,usec="),
        "{info}"
    );
    assert!(line("set").ends_with(",rejected_calls=0,failed_calls=0"));
    assert!(line("lpush").starts_with("cmdstat_lpush:calls=1,"));
    assert!(line("lpush").ends_with(",rejected_calls=0,failed_calls=1"));
    assert_eq!(
        line("get"),
        "cmdstat_get:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0"
    );
    assert!(line("config|get").starts_with("cmdstat_config|get:calls=1,"));
    let _: String = cmd(&mut con, &["CONFIG", "RESETSTAT"]);
    let info: String = cmd(&mut con, &["INFO", "commandstats"]);
    let rows: Vec<&str> = info.lines().filter(|l| l.starts_with("cmdstat_")).collect();
    assert_eq!(rows.len(), 1, "{info}");
    assert!(rows[0].starts_with("cmdstat_config|resetstat:calls=1,"));
}

/// A port already in use stops the start, as Redis's `listenToPort`:
/// serving only the IPv6 loopback would leave clients of 127.0.0.1 talking
/// to whichever process holds that port.
#[test]
fn a_port_in_use_stops_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let dir = std::env::temp_dir().join(format!("ferrite-inuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut child = std::process::Command::new(ferrite_tests::server_binary())
        .args([
            "--port",
            &port,
            "--save",
            "",
            "--dir",
            &dir.to_string_lossy(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started on a port in use");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!status.success(), "{status}");
}

/// Passwords never reach `MONITOR` or the slow log: `AUTH`, `HELLO ...
/// AUTH` and `CONFIG SET requirepass` show `(redacted)` where Redis 7.0
/// does, other arguments as sent.
#[test]
fn monitor_and_slowlog_redact_passwords() {
    let server = TestServer::with_args(&["--slowlog-log-slower-than", "0"]);
    let mut con = server.client();
    let mut mon = server.raw_conn();
    mon.send(b"MONITOR\r\n");
    let ok = mon.read_until(|b| b.ends_with(b"\r\n"), std::time::Duration::from_secs(5));
    assert_eq!(ferrite_tests::text(&ok), "+OK\r\n");
    assert_eq!(cmd::<String>(&mut con, &["SLOWLOG", "RESET"]), "OK");
    let _ = err(&mut con, &["AUTH", "not-real"]);
    let _ = err(&mut con, &["AUTH", "not-real", "not-a-password"]);
    let _ = err(
        &mut con,
        &["HELLO", "2", "AUTH", "not-real", "not-a-password"],
    );
    let _: () = cmd(
        &mut con,
        &["CONFIG", "SET", "requirepass", "", "maxmemory", "0"],
    );
    let _: () = cmd(&mut con, &["SET", "auth", "visible"]);
    let got = ferrite_tests::text(&mon.read_until(
        |b| b.windows(2).filter(|w| w == b"\r\n").count() >= 4,
        std::time::Duration::from_secs(5),
    ));
    let lines: Vec<&str> = got.lines().collect();
    assert!(lines[0].ends_with(r#" "AUTH" "(redacted)""#), "{got}");
    assert!(
        lines[1].ends_with(r#" "AUTH" "(redacted)" "(redacted)""#),
        "{got}"
    );
    assert!(
        lines[2].ends_with(r#" "HELLO" "2" "AUTH" "(redacted)" "(redacted)""#),
        "{got}"
    );
    // CONFIG is an admin command: not in MONITOR, as in Redis.
    assert!(lines[3].ends_with(r#" "SET" "auth" "visible""#), "{got}");
    assert!(
        !got.contains("not-real") && !got.contains("not-a-password"),
        "{got}"
    );

    let entries: Vec<Value> = cmd(&mut con, &["SLOWLOG", "GET"]);
    let args: Vec<Vec<String>> = entries
        .iter()
        .map(|e| match e {
            Value::Array(f) => redis::from_redis_value(&f[3]).expect("args"),
            other => panic!("{other:?}"),
        })
        .collect();
    let has = |want: &[&str]| args.iter().any(|a| a == want);
    assert!(has(&["SET", "auth", "visible"]), "{args:?}");
    assert!(
        has(&[
            "CONFIG",
            "SET",
            "requirepass",
            "(redacted)",
            "maxmemory",
            "0"
        ]),
        "{args:?}"
    );
    assert!(has(&["AUTH", "(redacted)", "(redacted)"]), "{args:?}");
    assert!(
        has(&["HELLO", "2", "AUTH", "(redacted)", "(redacted)"]),
        "{args:?}"
    );
    assert!(!format!("{args:?}").contains("not-real"), "{args:?}");
}

/// `CONFIG SET port` moves the listening socket as Redis's
/// `changeListenPort` does: a port in use fails the whole `CONFIG SET`
/// with Redis's text and changes nothing; a free one is served at once,
/// the old one closed, open connections kept.
#[test]
fn config_set_port_listens_anew_or_changes_nothing() {
    let (s, mut con) = setup();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_port = busy.local_addr().expect("addr").port().to_string();
    let before: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "maxmemory"]);
    assert_eq!(
        err(
            &mut con,
            &["CONFIG", "SET", "maxmemory", "10000001", "port", &busy_port, "client-query-buffer-limit", "10mb"]
        ),
        "ERR CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port. Check server logs."
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "maxmemory"]),
        before
    );
    let qbl: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "client-query-buffer-limit"]);
    assert_eq!(qbl[1], "1073741824");
    // An address this host does not have (TEST-NET-1).
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "bind", "192.0.2.1"]),
        "ERR CONFIG SET failed (possibly related to argument 'bind') - Failed to bind to specified addresses."
    );
    let old = s.port();
    assert_eq!(
        ferrite_tests::info_int(&mut con, "server", "tcp_port"),
        i64::from(old)
    );

    let new = ferrite_tests::free_port();
    let _: () = cmd(&mut con, &["CONFIG", "SET", "port", &new.to_string()]);
    let mut other = redis::Client::open(format!("redis://127.0.0.1:{new}/"))
        .and_then(|c| c.get_connection())
        .expect("the new port serves");
    assert_eq!(cmd::<String>(&mut other, &["PING"]), "PONG");
    assert_eq!(
        cmd::<String>(&mut con, &["PING"]),
        "PONG",
        "open connections stay"
    );
    assert_eq!(
        ferrite_tests::info_int(&mut con, "server", "tcp_port"),
        i64::from(new)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", old)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the old port still listens"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(busy);
}

/// `LATENCY HISTOGRAM`: per command (and subcommand) the calls and the
/// cumulative counts by latency level, since `CONFIG RESETSTAT`; nothing
/// is recorded with `latency-tracking no`.
#[test]
fn latency_histogram_counts_calls_per_command() {
    let (_s, mut con) = setup();
    let _: () = cmd(&mut con, &["CONFIG", "RESETSTAT"]);
    let _: () = cmd(&mut con, &["SET", "a", "b"]);
    let _: () = cmd(&mut con, &["SET", "c", "d"]);
    let _: i64 = cmd(&mut con, &["CLIENT", "ID"]);
    // (command, calls, [(µs level, cumulative count)]) from the flat
    // RESP2 maps.
    type Row = (String, i64, Vec<(i64, i64)>);
    fn rows(v: Value) -> Vec<Row> {
        let items = |v: Value| match v {
            Value::Array(a) => a,
            other => panic!("{other:?}"),
        };
        let text = |v: &Value| -> String { redis::from_redis_value(v).expect("text") };
        let int = |v: &Value| -> i64 { redis::from_redis_value(v).expect("int") };
        items(v)
            .chunks(2)
            .map(|p| {
                let inner = items(p[1].clone());
                assert_eq!(
                    (text(&inner[0]), text(&inner[2])),
                    ("calls".into(), "histogram_usec".into())
                );
                let b = items(inner[3].clone());
                let buckets = b.chunks(2).map(|x| (int(&x[0]), int(&x[1]))).collect();
                (text(&p[0]), int(&inner[1]), buckets)
            })
            .collect()
    }
    let h = rows(cmd(
        &mut con,
        &["LATENCY", "HISTOGRAM", "set", "client", "nosuch"],
    ));
    assert_eq!(h.len(), 2, "{h:?}");
    let (name, calls, buckets) = &h[0];
    assert_eq!((name.as_str(), *calls), ("set", 2));
    // Cumulative: the last bucket holds every call; labels grow.
    assert_eq!(buckets.last().map(|b| b.1), Some(2));
    assert!(buckets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
    assert_eq!(h[1].0, "client|id");
    let all = rows(cmd(&mut con, &["LATENCY", "HISTOGRAM"]));
    let names: Vec<&str> = all.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        ["client|id", "config|resetstat", "latency|histogram", "set"]
    );
    let _: () = cmd(&mut con, &["CONFIG", "SET", "latency-tracking", "no"]);
    let _: () = cmd(&mut con, &["CONFIG", "RESETSTAT"]);
    let _: () = cmd(&mut con, &["SET", "a", "b"]);
    let none = rows(cmd(&mut con, &["LATENCY", "HISTOGRAM"]));
    assert!(none.is_empty(), "{none:?}");
}

/// `INFO latencystats`: per command called since `CONFIG RESETSTAT`, the
/// percentiles of `latency-tracking-info-percentiles` in µs, with Redis's
/// HDR quantization (never below the 1 ns floor, three decimals), and an
/// empty section with `latency-tracking no`.
#[test]
fn info_latencystats_shows_percentiles_per_command() {
    let (_s, mut con) = setup();
    let _: () = cmd(&mut con, &["CONFIG", "RESETSTAT"]);
    for _ in 0..20 {
        let _: () = cmd(&mut con, &["SET", "a", "b"]);
    }
    let _: i64 = cmd(&mut con, &["CLIENT", "ID"]);
    let info: String = cmd(&mut con, &["INFO", "latencystats"]);
    let lines: Vec<&str> = info.lines().collect();
    assert_eq!(lines[0], "# Latencystats");
    let row = |name: &str| -> Vec<(String, f64)> {
        let prefix = format!("latency_percentiles_usec_{name}:");
        let line = lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in {info}"));
        line.split(',')
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("p=v");
                // Three decimals, as Redis's "%.3f".
                assert_eq!(v.split_once('.').map(|(_, d)| d.len()), Some(3), "{line}");
                (k.to_string(), v.parse().expect("number"))
            })
            .collect()
    };
    let set = row("set");
    let labels: Vec<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(labels, ["p50", "p99", "p99.9"]);
    assert!(set.windows(2).all(|w| w[0].1 <= w[1].1), "{set:?}");
    assert!(set[0].1 >= 0.001, "{set:?}");
    row("client|id");
    assert!(!info.contains("latency_percentiles_usec_get:"), "{info}");

    let _: () = cmd(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "latency-tracking-info-percentiles",
            "0 100",
        ],
    );
    let labels: Vec<String> =
        row_labels(&cmd::<String>(&mut con, &["INFO", "latencystats"]), "set");
    assert_eq!(labels, ["p0", "p100"]);
    let _: () = cmd(&mut con, &["CONFIG", "RESETSTAT"]);
    let info: String = cmd(&mut con, &["INFO", "latencystats"]);
    assert!(!info.contains("usec_set:"), "{info}");
    let _: () = cmd(&mut con, &["CONFIG", "SET", "latency-tracking", "no"]);
    let _: () = cmd(&mut con, &["SET", "a", "b"]);
    let info: String = cmd(&mut con, &["INFO", "latencystats"]);
    assert_eq!(info.trim(), "# Latencystats");
}

/// The percentile labels of `name`'s `INFO latencystats` line.
fn row_labels(info: &str, name: &str) -> Vec<String> {
    let prefix = format!("latency_percentiles_usec_{name}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
        .split(',')
        .map(|kv| kv.split('=').next().unwrap_or_default().to_string())
        .collect()
}

/// A command that blocked is counted (calls, slow log) once, when it is
/// served, with its wait included, as Redis's `updateStatsOnUnblock`.
#[test]
fn a_blocked_command_counts_when_served() {
    let server = TestServer::with_args(&["--slowlog-log-slower-than", "0"]);
    let mut con = server.client();
    let mut waiter = server.raw_conn();
    waiter.send(b"BLPOP l 0\r\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ferrite_tests::info_int(&mut con, "clients", "blocked_clients") != 1 {
        assert!(std::time::Instant::now() < deadline, "never blocked");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(!cmd::<String>(&mut con, &["INFO", "commandstats"]).contains("cmdstat_blpop"));
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(cmd::<String>(&mut con, &["SLOWLOG", "RESET"]), "OK");
    let _: i64 = cmd(&mut con, &["LPUSH", "l", "x"]);
    let got = waiter.read_until(|b| b.ends_with(b"x\r\n"), std::time::Duration::from_secs(5));
    assert_eq!(ferrite_tests::text(&got), "*2\r\n$1\r\nl\r\n$1\r\nx\r\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let entries: Vec<Value> = cmd(&mut con, &["SLOWLOG", "GET"]);
        let first: Option<(Vec<String>, i64)> = entries.first().map(|e| match e {
            Value::Array(f) => (
                redis::from_redis_value(&f[3]).expect("args"),
                redis::from_redis_value(&f[2]).expect("duration"),
            ),
            other => panic!("{other:?}"),
        });
        if let Some((args, us)) = first.filter(|(a, _)| a[0] == "BLPOP") {
            assert_eq!(args, ["BLPOP", "l", "0"]);
            assert!(us >= 50_000, "the wait counts: {us} µs");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{entries:?}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let stats: String = cmd(&mut con, &["INFO", "commandstats"]);
    assert!(stats.contains("cmdstat_blpop:calls=1,"), "{stats}");
}

/// `DEBUG OBJECT` reads the stored entry even past its TTL (Redis answers
/// it from the dict), without expiring it; the next real access does.
#[test]
fn debug_object_sees_a_logically_expired_key() {
    let (_s, mut con) = setup();
    let _: () = cmd(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    let _: () = cmd(&mut con, &["SET", "key", "value", "PX", "1"]);
    std::thread::sleep(std::time::Duration::from_millis(10));
    let line: String = cmd(&mut con, &["DEBUG", "OBJECT", "key"]);
    assert!(line.contains("encoding:embstr"), "{line}");
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "key"]), 0);
    assert_eq!(
        err(&mut con, &["DEBUG", "OBJECT", "key"]),
        "ERR no such key"
    );
}

/// Without cluster support, `CLUSTER` (every subcommand), `READONLY`,
/// `READWRITE` and `ASKING` answer as Redis 7.0 with `cluster-enabled no`.
#[test]
fn cluster_commands_say_cluster_support_is_disabled() {
    let (_s, mut con) = setup();
    let off = "ERR This instance has cluster support disabled";
    for c in [
        &["CLUSTER", "INFO"][..],
        &["CLUSTER", "HELP"],
        &["CLUSTER", "SLOTS"],
        &["READONLY"],
        &["ASKING"],
    ] {
        assert_eq!(err(&mut con, c), off, "{c:?}");
    }
    assert_eq!(
        err(&mut con, &["CLUSTER", "NOSUCH"]),
        "ERR unknown subcommand 'NOSUCH'. Try CLUSTER HELP."
    );
    let names: Vec<String> = cmd(
        &mut con,
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "cluster*"],
    );
    assert!(names.contains(&"cluster|help".to_string()), "{names:?}");
    let e = err(
        &mut con,
        &["EVAL", "return redis.call('cluster', 'reset')", "0"],
    );
    assert!(
        e.contains("This Redis command is not allowed from script"),
        "{e}"
    );
}

/// `LATENCY GRAPH`: Redis's header, ruler and sparkline, and its error
/// for an event without samples.
#[test]
fn latency_graph_draws_the_events_samples() {
    let server = TestServer::with_args(&["--enable-debug-command", "yes"]);
    let mut c = server.client();
    let _: () = ferrite_tests::cmd(&mut c, &["CONFIG", "SET", "latency-monitor-threshold", "1"]);
    let _: () = ferrite_tests::cmd(&mut c, &["DEBUG", "SLEEP", "0.02"]);
    let graph: String = ferrite_tests::cmd(&mut c, &["LATENCY", "GRAPH", "command"]);
    let lines: Vec<&str> = graph.lines().collect();
    assert!(
        lines[0].starts_with("command - high ") && lines[0].contains("(all time high "),
        "{graph}"
    );
    assert_eq!(lines[1], "-".repeat(80));
    // One sample sits on the bottom row; a blank row, then "0s" downwards.
    assert_eq!(&lines[2..], [" ", " ", " ", "_", " ", "0", "s"], "{graph}");
    assert_eq!(
        ferrite_tests::err(&mut c, &["LATENCY", "GRAPH", "nosuch"]),
        "ERR No samples available for event 'nosuch'"
    );
}

/// `LOLWUT`: 7.0's version line, and the art of `VERSION 5` (Braille
/// squares) and `VERSION 6` (a skyline in terminal grays) at the sizes
/// Redis draws them.
#[test]
fn lolwut_prints_the_version_or_draws_redis_art() {
    let (_s, mut con) = setup();
    let plain: String = cmd(&mut con, &["LOLWUT"]);
    assert_eq!(plain, "Redis ver. 7.0.15\n");
    let art: String = cmd(&mut con, &["LOLWUT", "VERSION", "5", "20", "4", "3"]);
    let lines: Vec<&str> = art.lines().collect();
    // 40 x 31 pixels: 8 rows of 20 Braille characters, then the credit.
    assert_eq!(lines.len(), 10, "{art}");
    for l in &lines[..8] {
        assert_eq!(l.chars().count(), 20, "{art}");
        assert!(
            l.chars().all(|c| ('\u{2800}'..='\u{28ff}').contains(&c)),
            "{art}"
        );
    }
    assert_eq!(
        lines[9],
        "Georg Nees - schotter, plotter on paper, 1968. Redis ver. 7.0.15"
    );
    let city: String = cmd(&mut con, &["LOLWUT", "VERSION", "6", "10", "5"]);
    let lines: Vec<&str> = city.lines().collect();
    assert_eq!(lines.len(), 7, "{city}");
    for l in &lines[..5] {
        assert_eq!(l.matches(" \x1b[0m").count(), 10, "{city}");
    }
    assert!(lines[6].ends_with("Redis ver. 7.0.15"));
    assert_eq!(
        err(&mut con, &["LOLWUT", "VERSION", "five"]),
        "ERR value is not an integer or out of range"
    );
}
