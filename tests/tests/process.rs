//! Process-level behaviour from the configuration, as redis-server's:
//! `daemonize` and `pidfile`, `supervised systemd`, `disable-thp`,
//! `oom-score-adj`, `shutdown-on-sigterm`/`-sigint`, and
//! `stop-writes-on-bgsave-error` (`-MISCONF`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrite_tests::{cmd, err, free_port, info_field, server_binary, TestServer};

fn tempdir(name: &str) -> PathBuf {
    ferrite_tests::tempdir(&format!("process-{name}"))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

#[test]
fn daemonize_runs_in_the_background_with_a_pid_file() {
    let dir = tempdir("daemon");
    let port = free_port();
    let pidfile = dir.join("ferrite.pid");
    let status = Command::new(server_binary())
        .args(["--port", &port.to_string(), "--save", ""])
        .args(["--dir", dir.to_str().unwrap()])
        .args(["--daemonize", "yes", "--pidfile", "ferrite.pid"])
        .status()
        .expect("run ferrite-server");
    // The foreground process is gone, with success, at once.
    assert!(status.success());
    wait_for("the pid file", || pidfile.exists());
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url).unwrap();
    let mut c = None;
    wait_for("the server", || {
        c = client.get_connection().ok();
        c.is_some()
    });
    let mut c = c.unwrap();
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(info_field(&mut c, "server", "process_id"), pid.to_string());
    // Its own session, detached from the terminal of the one that started it.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    if let Some(rest) = stat.rsplit(')').next() {
        let f: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(
            f.get(3),
            Some(&pid.to_string().as_str()),
            "session id: {stat}"
        );
    }
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
    wait_for("the pid file to go", || !pidfile.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn supervised_systemd_is_told_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempdir("systemd");
    let sock = dir.join("notify.sock");
    let listener = UnixDatagram::bind(&sock).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut s = TestServer::with_args_env(
        // daemonize is ignored when supervised, as in Redis.
        &["--supervised", "systemd", "--daemonize", "yes"],
        &[("NOTIFY_SOCKET", sock.to_str().unwrap())],
    );
    let mut buf = [0u8; 512];
    let n = listener.recv(&mut buf).expect("READY=1");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.contains("READY=1"), "{msg}");
    assert!(s.is_running());
    s.signal("TERM");
    let n = listener.recv(&mut buf).expect("STOPPING=1");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    assert!(s.wait_exit(Duration::from_secs(10)).is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `THP_enabled` of `/proc/PID/status` (Linux 5.0+), if the kernel shows it.
fn thp_enabled(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"))?;
    Some(line.split_whitespace().nth(1)? == "1")
}

#[test]
fn transparent_huge_pages_are_off_unless_asked_for() {
    let s = TestServer::start();
    let Some(on) = thp_enabled(s.pid()) else {
        eprintln!("skipped: the kernel does not report THP_enabled");
        return;
    };
    assert!(!on, "disable-thp yes (the default) left THP enabled");
    let t = TestServer::with_args(&["--disable-thp", "no"]);
    // The kernel may have THP compiled out or off: then there is nothing
    // to compare, but the default must still have turned it off above.
    if thp_enabled(std::process::id()) == Some(true) {
        assert_eq!(thp_enabled(t.pid()), Some(true));
    }
}

fn oom_score(pid: u32) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn oom_score_adj_follows_the_role() {
    let s = TestServer::start();
    if !std::path::Path::new(&format!("/proc/{}/oom_score_adj", s.pid())).exists() {
        eprintln!("skipped: no /proc/PID/oom_score_adj");
        return;
    }
    let base = oom_score(s.pid());
    let mut c = s.client();
    // Raising the score needs no privilege; lowering below the start may.
    let _: () = cmd(
        &mut c,
        &["CONFIG", "SET", "oom-score-adj-values", "10 20 30"],
    );
    assert_eq!(oom_score(s.pid()), base, "oom-score-adj no: unchanged");
    let _: () = cmd(&mut c, &["CONFIG", "SET", "oom-score-adj", "relative"]);
    assert_eq!(oom_score(s.pid()), base + 10);
    // A replica takes the second value.
    let _: () = cmd(
        &mut c,
        &["REPLICAOF", "127.0.0.1", &free_port().to_string()],
    );
    assert_eq!(oom_score(s.pid()), base + 20);
    let _: () = cmd(&mut c, &["REPLICAOF", "NO", "ONE"]);
    assert_eq!(oom_score(s.pid()), base + 10);
    let _: () = cmd(
        &mut c,
        &["CONFIG", "SET", "oom-score-adj-values", "500 600 700"],
    );
    let _: () = cmd(&mut c, &["CONFIG", "SET", "oom-score-adj", "absolute"]);
    assert_eq!(oom_score(s.pid()), 500);
    // Back to the score it started with.
    let _: () = cmd(&mut c, &["CONFIG", "SET", "oom-score-adj", "no"]);
    // Lowering a score needs CAP_SYS_RESOURCE: checked as root only.
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if root {
        assert_eq!(oom_score(s.pid()), base);
    }
}

#[test]
fn sigterm_saves_by_the_configured_flags() {
    // `save` with no save points configured: SIGTERM saves anyway.
    let dir = tempdir("sigterm-save");
    let d = dir.to_str().unwrap();
    let mut s = TestServer::with_args(&["--dir", d, "--shutdown-on-sigterm", "save"]);
    let mut c = s.client();
    let _: () = cmd(&mut c, &["SET", "k", "v"]);
    s.signal("TERM");
    assert!(s.wait_exit(Duration::from_secs(10)).is_some());
    assert!(
        dir.join("dump.rdb").exists(),
        "SIGTERM with `save` wrote no dump"
    );
    drop(s);
    // `nosave` with save points: no dump.
    let _ = std::fs::remove_file(dir.join("dump.rdb"));
    let mut s = TestServer::with_args(&[
        "--dir",
        d,
        "--save",
        "3600 1",
        "--shutdown-on-sigint",
        "nosave",
    ]);
    let mut c = s.client();
    let _: () = cmd(&mut c, &["SET", "k", "v"]);
    s.signal("INT");
    assert!(s.wait_exit(Duration::from_secs(10)).is_some());
    assert!(!dir.join("dump.rdb").exists(), "SIGINT with `nosave` saved");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server whose `dir` vanished cannot save: its background save fails.
fn failing_saves(save: &str) -> (TestServer, redis::Connection) {
    let dir = tempdir(&format!("gone-{}", save.len()));
    let s = TestServer::with_args(&["--dir", dir.to_str().unwrap(), "--save", save]);
    let c = s.client();
    std::fs::remove_dir_all(&dir).unwrap();
    (s, c)
}

#[test]
fn a_failed_save_stops_writes_with_misconf() {
    let (_s, mut c) = failing_saves("3600 1");
    let _: () = cmd(&mut c, &["SET", "k", "before"]);
    let _: String = cmd(&mut c, &["BGSAVE"]);
    wait_for("the background save to fail", || {
        info_field(&mut c, "persistence", "rdb_last_bgsave_status") == "err"
    });
    assert_eq!(err(&mut c, &["SET", "k", "after"]), MISCONF);
    assert_eq!(err(&mut c, &["PING"]), MISCONF);
    // Inside MULTI the write is refused and EXEC aborts.
    let _: () = cmd(&mut c, &["MULTI"]);
    assert_eq!(err(&mut c, &["INCR", "n"]), MISCONF);
    assert!(err(&mut c, &["EXEC"]).starts_with("EXECABORT"));
    // Reads go on.
    let v: String = cmd(&mut c, &["GET", "k"]);
    assert_eq!(v, "before");
    // Off: writes go on.
    let _: () = cmd(
        &mut c,
        &["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"],
    );
    let _: () = cmd(&mut c, &["SET", "k", "after"]);
    let _: () = cmd(
        &mut c,
        &["CONFIG", "SET", "stop-writes-on-bgsave-error", "yes"],
    );
    assert_eq!(err(&mut c, &["SET", "k", "again"]), MISCONF);
    // A good save clears it.
    let dir = tempdir("good");
    let _: () = cmd(&mut c, &["CONFIG", "SET", "dir", dir.to_str().unwrap()]);
    let _: () = cmd(&mut c, &["SAVE"]);
    let _: () = cmd(&mut c, &["SET", "k", "again"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_save_points_a_failed_save_stops_nothing() {
    let (_s, mut c) = failing_saves("");
    let _: String = cmd(&mut c, &["BGSAVE"]);
    wait_for("the background save to fail", || {
        info_field(&mut c, "persistence", "rdb_last_bgsave_status") == "err"
    });
    let _: () = cmd(&mut c, &["SET", "k", "v"]);
}

#[test]
fn sigterm_whose_save_fails_leaves_the_server_up() {
    let (mut s, mut c) = failing_saves("3600 1");
    let _: () = cmd(&mut c, &["SET", "k", "v"]);
    s.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.is_running(), "exited although its save failed");
    let v: String = cmd(&mut c, &["GET", "k"]);
    assert_eq!(v, "v");
    // `force` exits even so.
    let _: () = cmd(&mut c, &["CONFIG", "SET", "shutdown-on-sigterm", "force"]);
    s.signal("TERM");
    assert!(s.wait_exit(Duration::from_secs(10)).is_some());
}
