//! Process-level settings from the configuration, as `redis-server`
//! applies them: transparent huge pages (`disable-thp`), running in the
//! background (`daemonize`, `pidfile`), telling a supervisor when the
//! server is ready (`supervised`), and the kernel's OOM-killer score
//! (`oom-score-adj`, `oom-score-adj-values`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::config::Config;

/// Set in the environment of the background process `daemonize` starts,
/// so that it runs the server instead of starting another.
const DAEMON_CHILD: &str = "FERRITE_DAEMON_CHILD";

/// Redis's default pid file when daemonized without `pidfile`.
const DEFAULT_PIDFILE: &str = "/var/run/redis.pid";

/// Turns transparent huge pages off for the process (`disable-thp yes`,
/// the default). Redis does so because a huge page's copy-on-write and
/// its faults (zeroing, compaction) stall the server. Ferrite does it
/// whatever the system setting, because its allocator (mimalloc) asks
/// for huge pages with `madvise` even where the system's mode is
/// `madvise`: growing one set to 2M members then stalled single commands
/// for 1-33 ms about 25 times, against 4 times with them off.
pub fn apply_thp(config: &Config) {
    if !config.flag("disable-thp") {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(error = %e, "could not disable transparent huge pages");
    }
}

/// The supervisor to report to: `supervised`, with `auto` resolved from
/// the environment as Redis's `redisIsSupervised` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervisor {
    None,
    Systemd,
    Upstart,
}

/// Resolves `supervised`.
pub fn supervisor(config: &Config) -> Supervisor {
    match config.value("supervised").as_str() {
        "systemd" => Supervisor::Systemd,
        "upstart" => Supervisor::Upstart,
        "auto" if std::env::var_os("UPSTART_JOB").is_some() => Supervisor::Upstart,
        "auto" if std::env::var_os("NOTIFY_SOCKET").is_some() => Supervisor::Systemd,
        _ => Supervisor::None,
    }
}

/// What [`daemonize`] decided.
pub enum Daemon {
    /// Run the server in this process.
    Run,
    /// This is the foreground process and the server now runs in the
    /// background: exit with this status.
    Exit(std::process::ExitCode),
}

/// `daemonize yes` (unless supervised): starts this executable again, with
/// the same arguments, detached in a session of its own with its standard
/// streams on `/dev/null`, and tells the caller to exit; the background
/// process runs the server. Redis forks instead; safe Rust cannot fork a
/// process that has threads, so the background process is a new one.
/// Must run before anything reads standard input (a config file given as
/// `-`).
pub fn daemonize(config: &Config) -> Daemon {
    if is_daemon() {
        #[cfg(unix)]
        let _ = rustix::process::setsid();
        return Daemon::Run;
    }
    if !config.daemonize || supervisor(config) != Supervisor::None {
        return Daemon::Run;
    }
    if std::env::args_os().skip(1).any(|a| a == "-") {
        eprintln!("cannot daemonize: a configuration read from standard input cannot be read again by the background process");
        return Daemon::Exit(std::process::ExitCode::FAILURE);
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot daemonize: {e}");
            return Daemon::Exit(std::process::ExitCode::FAILURE);
        }
    };
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(DAEMON_CHILD, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    match cmd.spawn() {
        Ok(_) => Daemon::Exit(std::process::ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("cannot daemonize: {e}");
            Daemon::Exit(std::process::ExitCode::FAILURE)
        }
    }
}

/// Whether this process is the background one [`daemonize`] started.
pub fn is_daemon() -> bool {
    std::env::var_os(DAEMON_CHILD).is_some()
}

/// The pid file Redis writes: `pidfile` if set, else its default path when
/// daemonized, else none. Relative to `dir`, as Redis (which changes to
/// `dir` while reading the configuration).
pub fn pidfile(config: &Config) -> Option<PathBuf> {
    if !config.pidfile.is_empty() {
        Some(PathBuf::from(&config.pidfile))
    } else if is_daemon() {
        Some(PathBuf::from(DEFAULT_PIDFILE))
    } else {
        None
    }
}

/// Writes the pid file (Redis's `createPidFile`); a failure is logged and
/// the server goes on, as Redis's.
pub fn write_pidfile(config: &Config) {
    if let Some(p) = pidfile(config) {
        if let Err(e) = std::fs::write(&p, format!("{}\n", std::process::id())) {
            tracing::warn!(error = %e, path = %p.display(), "Failed to write PID file");
        }
    }
}

/// Removes the pid file on the way out.
pub fn remove_pidfile(config: &Config) {
    if let Some(p) = pidfile(config) {
        let _ = std::fs::remove_file(p);
    }
}

/// Sends a state line (`READY=1`, `STOPPING=1`) to systemd's
/// `$NOTIFY_SOCKET` (`sd_notify`); nothing without the socket.
pub fn notify_systemd(state: &str) {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return;
        };
        let path = path.to_string_lossy().into_owned();
        let addr = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&path),
        };
        let sent = addr.and_then(|a| {
            let s = UnixDatagram::unbound()?;
            s.send_to_addr(state.as_bytes(), &a)
        });
        if let Err(e) = sent {
            tracing::warn!(error = %e, socket = %path, "could not notify systemd");
        }
    }
}

/// Tells the supervisor the server is ready, as Redis does once the
/// dataset is loaded: systemd gets `READY=1`; under upstart the process
/// stops itself (`SIGSTOP`), upstart's signal that a job is up.
pub fn ready(config: &Config) {
    match supervisor(config) {
        Supervisor::Systemd => {
            notify_systemd("STATUS=Ready to accept connections\nREADY=1\n");
        }
        Supervisor::Upstart => {
            #[cfg(unix)]
            {
                tracing::info!("supervised by upstart, will stop to signal readiness.");
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::STOP,
                );
            }
        }
        Supervisor::None => {}
    }
}

/// Tells systemd the server is stopping.
pub fn stopping(config: &Config) {
    if supervisor(config) == Supervisor::Systemd {
        notify_systemd("STOPPING=1\n");
    }
}

/// The process's `oom_score_adj` before Ferrite changed it, the base of
/// `oom-score-adj relative`; `i64::MIN` until read.
static OOM_BASE: AtomicI64 = AtomicI64::new(i64::MIN);

const OOM_FILE: &str = "/proc/self/oom_score_adj";

/// Sets `/proc/self/oom_score_adj` for the server's role (Redis's
/// `setOOMScoreAdj`): `oom-score-adj-values` holds the primary's and the
/// replica's values (and a forked child's, which Ferrite has none of),
/// added to the score the process started with (`yes`/`relative`) or
/// taken as they are (`absolute`); `no` puts the starting score back.
pub fn apply_oom_score(config: &Config, replica: bool) {
    let Ok(now) = std::fs::read_to_string(OOM_FILE) else {
        return;
    };
    let Ok(now) = now.trim().parse::<i64>() else {
        return;
    };
    let mode = config.value("oom-score-adj");
    if mode == "no" && OOM_BASE.load(Ordering::Relaxed) == i64::MIN {
        return;
    }
    let _ = OOM_BASE.compare_exchange(i64::MIN, now, Ordering::Relaxed, Ordering::Relaxed);
    let base = OOM_BASE.load(Ordering::Relaxed);
    let values: Vec<i64> = config
        .value("oom-score-adj-values")
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let value = values.get(usize::from(replica)).copied().unwrap_or(0);
    let want = match mode.as_str() {
        "no" => base,
        "absolute" => value,
        _ => base + value,
    }
    .clamp(-1000, 1000);
    if want != now {
        if let Err(e) = std::fs::write(OOM_FILE, format!("{want}\n")) {
            tracing::warn!(error = %e, value = want, "Unable to write oom_score_adj");
        }
    }
}
