//! End-to-end test harness for Ferrite.
//!
//! [`TestServer`] runs the real `ferrite-server` binary on a free port and
//! kills it on drop. Tests talk to it through the `redis` crate
//! ([`TestServer::client`]) or through raw bytes ([`TestServer::raw`],
//! [`RawConn`]) when the exact wire format matters.
//!
//! The binary is found next to the test executable (`<target>/<profile>/`)
//! and is (re)built once per test process with `cargo build -p
//! ferrite-server`, so a stale binary is never tested by accident. Set
//! `FERRITE_SERVER_BIN` to test a binary built elsewhere.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a server may take to start accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a raw read waits for more bytes before deciding the reply is complete.
const RAW_IDLE: Duration = Duration::from_millis(300);

/// The `<target>/<profile>` directory holding the running test executable
/// (`<target>/<profile>/deps/<test>-<hash>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("test executable has a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().expect("deps has a parent");
    }
    dir.to_path_buf()
}

/// Path of the server binary, built once per process.
pub fn server_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("FERRITE_SERVER_BIN") {
            return PathBuf::from(p);
        }
        let profile = profile_dir();
        let bin = profile.join(format!("ferrite-server{}", std::env::consts::EXE_SUFFIX));
        let target = profile.parent().expect("profile dir has a parent");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ lives in the workspace");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace)
            .args(["build", "--quiet", "-p", "ferrite-server", "--bin", "ferrite-server"])
            .env("CARGO_TARGET_DIR", target);
        match profile.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd.status();
        match status {
            Ok(s) if s.success() => {}
            other if bin.exists() => {
                eprintln!("warning: `cargo build -p ferrite-server` failed ({other:?}); testing the existing {}", bin.display());
            }
            other => panic!("cannot build ferrite-server: {other:?}"),
        }
        assert!(bin.exists(), "no server binary at {}", bin.display());
        bin
    })
}

/// A port that was free a moment ago and that this process has not handed
/// out before: the kernel may give the same ephemeral port to two tests
/// running in parallel, and the second server, failing to bind, would
/// leave its test talking to the first test's server.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A `ferrite-server` child process, killed on drop.
pub struct TestServer {
    child: Child,
    port: u16,
    /// The server's own working directory (`--dir`), so no file it writes
    /// or loads (`dump.rdb`) is shared with the repository or another
    /// test; removed on drop.
    dir: std::path::PathBuf,
}

impl TestServer {
    /// Starts a server with the default test arguments.
    pub fn start() -> Self {
        Self::with_args(&[])
    }

    /// Starts a server with extra Redis-style arguments (`["--requirepass", "secret"]`).
    pub fn with_args(extra: &[&str]) -> Self {
        Self::with_args_env(extra, &[])
    }

    /// Starts a server with extra arguments and environment variables
    /// (`FERRITE_WORKERS`).
    pub fn with_args_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(None, extra, env)
    }

    /// Starts a server working in `dir` (`--dir`), which outlives it, so
    /// a later server finds what it wrote there.
    pub fn in_dir(dir: &Path, extra: &[&str]) -> Self {
        let dir = dir.to_string_lossy().into_owned();
        let mut args = vec!["--dir", dir.as_str()];
        args.extend_from_slice(extra);
        Self::with_args(&args)
    }

    /// Starts a server reading the config file `file` (the first argument,
    /// as redis-server wants it), the test arguments and `extra` over it.
    pub fn with_file(file: &Path, extra: &[&str]) -> Self {
        Self::launch(Some(file), extra, &[])
    }

    fn launch(file: Option<&Path>, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let bin = server_binary();
        let mut last = String::new();
        // The port may be taken between `free_port` and the child's bind: retry.
        for _ in 0..3 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("ferrite-test-{}-{port}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("test server dir");
            let child = Command::new(bin)
                .args(file)
                .args(["--port", &port.to_string(), "--save", ""])
                .args(["--dir", &dir.to_string_lossy()])
                .args(["--enable-debug-command", "yes"])
                .args(extra)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            let mut server = TestServer { child, port, dir };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("ferrite-server did not start: {last}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("exited with {status}: {err}"));
            }
            if let Ok(mut probe) =
                TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))
            {
                match self.answer(&mut probe) {
                    Answer::Ours => return Ok(()),
                    Answer::Other(pid) => {
                        let _ = self.child.kill();
                        let _ = self.child.wait();
                        return Err(format!(
                            "port {} is another server's (pid {pid})",
                            self.port
                        ));
                    }
                    // Not a server yet: e.g. a connect to a port in the
                    // ephemeral range that nothing listens on can pick that
                    // very port and connect to itself, echoing the probe.
                    Answer::NoServer => {}
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not accepting on port {} after {START_TIMEOUT:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Who answers `INFO server` on `probe`: this child (its `process_id`,
    /// or an error such as `NOAUTH` that does not tell), another server,
    /// or no server at all.
    fn answer(&self, probe: &mut TcpStream) -> Answer {
        let _ = probe.set_read_timeout(Some(Duration::from_secs(2)));
        if probe.local_addr().ok() == probe.peer_addr().ok()
            || probe.write_all(b"INFO server\r\n").is_err()
        {
            return Answer::NoServer;
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let complete = |b: &[u8]| match b.first() {
            Some(b'-') => b.ends_with(b"\r\n"),
            Some(b'$') => b.ends_with(b"\r\n\r\n"),
            _ => !b.is_empty(),
        };
        while !complete(&buf) {
            match probe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        match buf.first() {
            Some(b'-') => Answer::Ours,
            Some(b'$') => {
                match info_value(&text(&buf), "process_id").and_then(|p| p.parse().ok()) {
                    Some(pid) if pid != self.child.id() => Answer::Other(pid),
                    _ => Answer::Ours,
                }
            }
            _ => Answer::NoServer,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A fresh synchronous client connection (RESP2, no auth).
    pub fn client(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("client url");
        let con = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("connect to ferrite-server");
        con.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set read timeout");
        con
    }

    /// A fresh raw TCP connection.
    pub fn raw_conn(&self) -> RawConn {
        RawConn::connect(self.addr())
    }

    /// Sends `bytes` on a fresh connection and returns everything the server
    /// answers until it stays silent for a moment or closes the connection.
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut c = self.raw_conn();
        c.send(bytes);
        c.read_idle()
    }

    /// Whether the child process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the server a signal by name (`TERM`, `INT`) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {name} {}", self.pid());
    }

    /// Waits up to `timeout` for the server to exit; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A failing test shows whether its server had died, and its log.
        let exited = self.child.try_wait().ok().flatten();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let mut log = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut log);
            }
            eprintln!(
                "ferrite-server on port {} {}; its log:\n{log}",
                self.port,
                exited.map_or("was running".to_string(), |s| format!("had exited: {s}"))
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What [`TestServer::answer`] found on the server's port.
enum Answer {
    Ours,
    Other(u32),
    NoServer,
}

/// An empty directory of this test process's own, `ferrite-{name}-{pid}`
/// under the system's temporary directory (emptied if it exists).
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrite-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A raw TCP connection for protocol-level tests.
pub struct RawConn {
    stream: TcpStream,
    closed: bool,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("raw connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("write timeout");
        RawConn {
            stream,
            closed: false,
        }
    }

    /// Writes all of `bytes` (a write error, e.g. after the server closed, is ignored).
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads until the server is silent for [`RAW_IDLE`] or closes.
    pub fn read_idle(&mut self) -> Vec<u8> {
        self.read_while(|_| true, Duration::from_secs(5), RAW_IDLE)
    }

    /// Reads until `done(buf)` holds, the server closes, or `timeout` passes.
    pub fn read_until(&mut self, done: impl Fn(&[u8]) -> bool, timeout: Duration) -> Vec<u8> {
        self.read_while(|b| !done(b), timeout, timeout)
    }

    /// Reads exactly `n` bytes (fewer if the server closes or 5 s pass).
    pub fn read_n(&mut self, n: usize) -> Vec<u8> {
        self.read_until(|b| b.len() >= n, Duration::from_secs(5))
    }

    fn read_while(
        &mut self,
        more: impl Fn(&[u8]) -> bool,
        total: Duration,
        idle: Duration,
    ) -> Vec<u8> {
        let deadline = Instant::now() + total;
        let mut out = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        while more(&out) && !self.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let wait = idle.min(deadline - now).max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(wait))
                .expect("read timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
        out
    }

    /// Switches the connection to RESP3 (`HELLO 3`) and returns the whole
    /// HELLO reply (a map ending with the empty `modules` array).
    pub fn hello3(&mut self) -> Vec<u8> {
        self.send(b"HELLO 3\r\n");
        self.read_until(
            |b| b.ends_with(b"$7\r\nmodules\r\n*0\r\n"),
            Duration::from_secs(5),
        )
    }

    /// Whether the server has closed the connection (waits up to 2 s for it).
    pub fn is_closed(&mut self) -> bool {
        if !self.closed {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !self.closed && Instant::now() < deadline {
                let extra = self.read_until(|_| false, Duration::from_millis(100));
                if !extra.is_empty() {
                    // More data means the connection is still talking.
                    return false;
                }
            }
        }
        self.closed
    }
}

/// Encodes a command as a RESP2 array of bulk strings.
pub fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Lossy text of a raw reply, for assertion messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command with string arguments, returning the typed reply.
pub fn cmd<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")))
}

/// Runs a command that must fail and returns its error text as Redis sends
/// it (`ERR syntax error`, `WRONGTYPE ...`).
pub fn err(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<redis::Value>(con) {
        Ok(v) => panic!("{}: expected an error, got {v:?}", args.join(" ")),
        Err(e) => error_text(&e),
    }
}

/// The full `CODE message` text of a server error.
pub fn error_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

/// Waits until `INFO clients` reports exactly `n` blocked clients (a client
/// sent its blocking command and the server registered it); panics after 10 s.
pub fn wait_blocked_clients(con: &mut redis::Connection, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = cmd(con, &["INFO", "clients"]);
        if info.contains(&format!("blocked_clients:{n}\r\n")) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {n} blocked clients");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Attaches a replica link with `SYNC` and reads the snapshot, so the
/// server records its propagation stream (it records nothing until a
/// replica connects, as Redis keeps no backlog before that). Keep the
/// returned link alive while the test reads `master_repl_offset` or the
/// stream; what follows the snapshot on it is the stream.
pub fn attach_replica(server: &TestServer) -> RawConn {
    let mut link = server.raw_conn();
    link.send(b"SYNC\r\n");
    read_snapshot(&mut link, Vec::new());
    link
}

/// [`attach_replica`] for a replica that says it serves clients on
/// `port` (`REPLCONF listening-port`), as `INFO replication` then lists it.
pub fn attach_replica_at(server: &TestServer, port: u16) -> RawConn {
    let mut link = server.raw_conn();
    link.send(format!("REPLCONF listening-port {port}\r\nSYNC\r\n").as_bytes());
    // The snapshot may come in the same read as the +OK.
    let mut got = link.read_n(5);
    assert!(got.starts_with(b"+OK\r\n"), "{}", text(&got));
    read_snapshot(&mut link, got.split_off(5));
    link
}

/// Reads a `SYNC` snapshot (`$<len>` and the payload) and checks that
/// nothing follows it yet.
fn read_snapshot(link: &mut RawConn, mut buf: Vec<u8>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        buf.extend(link.read_until(|b| !b.is_empty(), Duration::from_millis(200)));
        if let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") {
            let len: usize = text(&buf[1..eol]).parse().expect("snapshot length");
            if buf.len() >= eol + 2 + len {
                assert_eq!(buf.len(), eol + 2 + len, "stream began before any write");
                return;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no snapshot");
    }
}

/// One numeric field (`qbuf=26`) of a `CLIENT LIST` line.
pub fn client_field(line: &str, name: &str) -> i64 {
    let prefix = format!("{name}=");
    line.split(' ')
        .find_map(|f| f.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name} in {line}: {e}"))
}

/// The value of `field` in an `INFO` reply already read, trimmed.
pub fn info_value<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// Waits until `INFO replication` of `c` has `field:value` (20 s at most).
pub fn wait_info(c: &mut redis::Connection, field: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = cmd(c, &["info", "replication"]);
        if info_value(&info, field) == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{field} never became {value}: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `key` reads `value` on `c` (20 s at most): a write reached
/// a replica.
pub fn wait_value(c: &mut redis::Connection, key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while cmd::<Option<String>>(c, &["get", key]).as_deref() != Some(value) {
        assert!(Instant::now() < deadline, "{key} never became {value}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One field of `INFO <section>` as text; panics when it is missing.
pub fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = cmd(con, &["INFO", section]);
    info_value(&info, field)
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .to_string()
}

/// One field of `INFO <section>` as an integer; panics when it is missing
/// or not a number.
pub fn info_int(con: &mut redis::Connection, section: &str, field: &str) -> i64 {
    info_field(con, section, field)
        .parse()
        .unwrap_or_else(|e| panic!("{field}: {e}"))
}

/// `master_repl_offset`: how far the propagation stream has grown (the
/// tests that check what a command propagates compare it before and after).
pub fn repl_offset(con: &mut redis::Connection) -> i64 {
    info_int(con, "replication", "master_repl_offset")
}

/// Bytes `args` take in the propagation stream, as a RESP array.
pub fn stream_len(args: &[&str]) -> i64 {
    let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    resp(&v).len() as i64
}

/// Whether `bin` runs (`bin --version`); says "skipped" when it does not,
/// for the tests that need a real Redis's tools and skip without them.
pub fn has_binary(bin: &str) -> bool {
    let ok = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("skipped: {bin} is not on PATH");
    }
    ok
}

/// A real `redis-server` child process, stopped and its directory removed
/// on drop.
pub struct RealRedis(Child, PathBuf);

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// Starts a real Redis on `port` in a fresh directory of its own (a
/// disk-based sync or SAVE writes `dump.rdb` there, which must not be
/// loaded by the next run); `args` may name another `--dir`.
pub fn start_redis(port: u16, args: &[&str]) -> (RealRedis, redis::Connection) {
    let dir = std::env::temp_dir().join(format!("ferrite-redis-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("redis dir");
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.to_str().expect("utf-8 temp dir"),
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let child = RealRedis(child, dir);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(c) = client.get_connection() {
            return (child, c);
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}
