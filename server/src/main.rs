//! `ferrite-server [config-file] [--name value ...]`, like `redis-server`.

use std::process::ExitCode;

use clap::Parser;
use ferrite_server::{process, Config};
use tokio::net::TcpListener;

/// mimalloc instead of glibc malloc: glibc's per-thread arenas grow and
/// shrink with `mprotect` (about 3 calls per 100 SETs under strace), and its
/// 16-byte chunk headers cost memory per key; Redis links jemalloc for the
/// same reasons. mimalloc builds from C in seconds, which keeps CI fast.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command line: clap handles our own switches; every other argument is a
/// Redis-style configuration (`--port 6380`, a config file first).
#[derive(Parser, Debug)]
#[command(
    name = "ferrite-server",
    version,
    about = "A Redis-compatible in-memory key-value server"
)]
struct Cli {
    /// PING the configured port and exit 0 if it answers PONG (container health checks).
    #[arg(long)]
    healthcheck: bool,
    /// Container defaults (`bind 0.0.0.0`, `dir /data`) that a config file
    /// and the options after it override; protected mode keeps Redis's rule
    /// (no password: only loopback clients). The Docker
    /// image's ENTRYPOINT passes it, so `docker run IMAGE [config] [--opts]`
    /// keeps redis-server's argument order.
    #[arg(long)]
    container: bool,
    /// `[config-file] [--name value ...]` with Redis's parameter names.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn init_logging(config: &Config) {
    let level = match config.loglevel.as_str() {
        "debug" => "debug",
        "verbose" => "info",
        "warning" => "warn",
        "nothing" => "off",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if config.logfile.is_empty() {
        builder.with_writer(std::io::stdout).init();
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.logfile)
        {
            Ok(f) => builder
                .with_writer(std::sync::Mutex::new(f))
                .with_ansi(false)
                .init(),
            Err(e) => {
                builder.with_writer(std::io::stdout).init();
                tracing::warn!(error = %e, file = %config.logfile, "cannot open logfile, logging to stdout");
            }
        }
    }
}

fn healthcheck(config: &Config) -> ExitCode {
    use std::io::{Read, Write};
    let host = config
        .bind
        .first()
        .map(|b| b.trim_start_matches('-'))
        .unwrap_or("127.0.0.1");
    let host = if host == "0.0.0.0" || host == "*" {
        "127.0.0.1"
    } else {
        host
    };
    let addr = format!("{}:{}", host, config.port);
    let ok = (|| -> std::io::Result<bool> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&addr)?
            .next()
            .ok_or(std::io::ErrorKind::NotFound)?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        let cmd = if config.requirepass.is_empty() {
            "PING\r\n".to_string()
        } else {
            format!("AUTH {}\r\nPING\r\n", config.requirepass)
        };
        s.write_all(cmd.as_bytes())?;
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        // PONG, or NOAUTH from a server with a password the check was not
        // given (the image's HEALTHCHECK runs without the user's options):
        // either way the server is up and answering.
        let alive = |g: &[u8]| g.windows(7).any(|w| w == b"+PONG\r\n") || g.starts_with(b"-NOAUTH");
        while !alive(&got) && got.len() < 256 {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(alive(&got))
    })()
    .unwrap_or(false);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Completes when SIGINT or SIGTERM asks the server to stop: each acts as
/// `SHUTDOWN` with the flags `shutdown-on-sigint` / `shutdown-on-sigterm`
/// give, and if its save fails (without `force`) the server stays up, as
/// Redis 7.0's does.
async fn on_signal(srv: std::sync::Arc<ferrite_server::shared::Shared>) {
    use ferrite_server::persist::ShutdownFlags;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            let (name, param) = tokio::select! {
                _ = int.recv() => ("SIGINT", "shutdown-on-sigint"),
                _ = term.recv() => ("SIGTERM", "shutdown-on-sigterm"),
            };
            if name == "SIGINT" && ferrite_server::shutdown::signalled(&srv) {
                tracing::warn!("You insist... exiting now.");
                std::process::exit(1);
            }
            tracing::warn!("Received {name} scheduling shutdown...");
            let flags = ShutdownFlags::from_config(&srv.config.read().value(param));
            // Waiting for replicas: the server cron finishes it (or a
            // failed save keeps the server up).
            if let ferrite_server::shutdown::Outcome::Stopping =
                ferrite_server::shutdown::initiate(&srv, flags, false, true)
            {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        let _ = ferrite_server::persist::save_for_shutdown(&srv, ShutdownFlags::default());
    }
}

/// Binds the configured address (see `ferrite_server::listen::bind`).
fn bind(config: &Config) -> std::io::Result<TcpListener> {
    let port = u16::try_from(config.port).unwrap_or(0);
    TcpListener::from_std(ferrite_server::listen::bind(&config.bind, port)?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut base = Config::default();
    if cli.container {
        base.bind = vec!["0.0.0.0".into()];
        base.dir = "/data".into();
    }
    let config = match Config::from_args_over(base, &cli.args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("\n*** FATAL CONFIG FILE ERROR ***\n{e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.healthcheck {
        return healthcheck(&config);
    }
    if let Err(e) = ferrite_server::command::rename::install(&config.renames) {
        eprintln!("\n*** FATAL CONFIG FILE ERROR ***\n{e}");
        return ExitCode::FAILURE;
    }
    // Before anything else: the background process re-reads the same
    // arguments from the same working directory.
    if let process::Daemon::Exit(code) = process::daemonize(&config) {
        return code;
    }
    init_logging(&config);
    process::apply_thp(&config);
    let mut config = config;
    if let Err(e) = std::env::set_current_dir(&config.dir) {
        tracing::error!(error = %e, dir = %config.dir, "Can't chdir to the configured dir");
        return ExitCode::FAILURE;
    }
    // Files (`dbfilename`) are found in `dir` from now on, whatever the
    // process's working directory becomes.
    if let Ok(cwd) = std::env::current_dir() {
        config.dir = cwd.to_string_lossy().into_owned();
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = match bind(&config) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, port = config.port, "could not bind");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "Ready to accept connections");
        process::write_pidfile(&config);
        let srv = ferrite_server::shared::Shared::new(config);
        if let Err(e) = ferrite_server::acl::load_at_startup(&srv) {
            tracing::error!("{e}");
            process::remove_pidfile(&srv.config.read());
            return ExitCode::FAILURE;
        }
        if let Err(e) = ferrite_server::aof::load_data_at_startup(&srv) {
            tracing::error!(error = %e, "Fatal error loading the DB. Exiting.");
            process::remove_pidfile(&srv.config.read());
            return ExitCode::FAILURE;
        }
        process::ready(&srv.config.read());
        ferrite_server::server::run_with(listener, srv.clone(), on_signal(srv.clone())).await;
        let c = srv.config.read();
        process::remove_pidfile(&c);
        ExitCode::SUCCESS
    })
}
