//! Other people's Redis software against the real binary: redis-py (the
//! distribution's `python3-redis`) runs `tests/clients/redis_py_smoke.py`
//! and node-redis v4 (`node-redis`) `tests/clients/node_redis_smoke.js`,
//! each with its own reply parsing, and the Prometheus Redis exporter
//! (`prometheus-redis-exporter`), which reads `INFO` and friends, must
//! publish the same metric families for Ferrite as for a real Redis.
//! `.ci/run` installs both; where one is missing its test says so and
//! passes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrite_tests::{cmd, free_port, has_binary, start_redis, TestServer};

/// The system Python (not a pyenv one), which is where `python3-redis`
/// installs redis-py.
const PYTHON: &str = "/usr/bin/python3";

/// Whether `program` with `args` exits 0 (a client library loads), else
/// says why the test is skipped.
fn runs(program: &str, args: &[&str], env: &[(&str, &str)], missing: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("skipped: {missing}");
    }
    ok
}

/// Runs `tests/clients/<script>` with `program` against a fresh server and
/// asserts it reported success.
fn run_smoke(program: &str, script: &str, env: &[(&str, &str)]) {
    let s = TestServer::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(script);
    let out = Command::new(program)
        .arg(&script)
        .arg(s.port().to_string())
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" ok"), "{text}");
}

#[test]
fn redis_py_runs_an_applications_calls() {
    let missing = "no redis-py for /usr/bin/python3 (apt-get install python3-redis)";
    if runs(PYTHON, &["-c", "import redis"], &[], missing) {
        run_smoke(PYTHON, "redis_py_smoke.py", &[]);
    }
}

/// Where Debian installs node modules (`node-redis`), which a Node.js
/// from elsewhere does not search by itself.
const NODE_PATH: &str = "/usr/share/nodejs";

#[test]
fn node_redis_runs_an_applications_calls() {
    let env = [("NODE_PATH", NODE_PATH)];
    let missing = "no node-redis for node (apt-get install node-redis)";
    if runs("node", &["-e", "require('redis')"], &env, missing) {
        run_smoke("node", "node_redis_smoke.js", &env);
    }
}

/// An exporter process, stopped on drop.
struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The metric families (names before any label) an exporter of the server
/// on `port` publishes, with `redis_up`'s value.
fn scrape(port: u16) -> (std::collections::BTreeSet<String>, String) {
    let web = free_port();
    let _exporter = Exporter(
        Command::new("prometheus-redis-exporter")
            .args([
                "--redis.addr",
                &format!("redis://127.0.0.1:{port}"),
                "--web.listen-address",
                &format!("127.0.0.1:{web}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn exporter"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", web)) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
            let req = format!("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{web}\r\n\r\n");
            if c.write_all(req.as_bytes()).is_ok() {
                let mut body = String::new();
                if c.read_to_string(&mut body).is_ok() && body.contains("redis_up") {
                    break body;
                }
            }
        }
        assert!(Instant::now() < deadline, "exporter never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut names = std::collections::BTreeSet::new();
    let mut up = String::new();
    for line in body.lines().filter(|l| l.starts_with("redis_")) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        if name == "redis_up" {
            up = line.rsplit(' ').next().unwrap_or_default().to_string();
        }
        names.insert(name.to_string());
    }
    (names, up)
}

#[test]
fn the_prometheus_exporter_publishes_what_it_publishes_for_redis() {
    if !has_binary("redis-server") {
        return;
    }
    let missing = "prometheus-redis-exporter is not on PATH";
    if !runs("prometheus-redis-exporter", &["--version"], &[], missing) {
        return;
    }
    let s = TestServer::start();
    let redis_port = free_port();
    let (_redis, mut r) = start_redis(redis_port, &[]);
    let mut f = s.client();
    // The same small workload on both, so the same command and key
    // families appear.
    for c in [&mut f, &mut r] {
        let _: () = cmd(c, &["SET", "k", "v"]);
        let _: () = cmd(c, &["EXPIRE", "k", "100"]);
        let _: i64 = cmd(c, &["LPUSH", "l", "x"]);
        let _: Option<String> = cmd(c, &["GET", "nope"]);
    }
    let (ours, up) = scrape(s.port());
    assert_eq!(up, "1");
    let (theirs, _) = scrape(redis_port);
    assert!(theirs.len() > 50, "{theirs:?}");
    let missing: Vec<_> = theirs.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
}
