//! The server as a function of a bound listener: `run(listener, config,
//! shutdown)`. Tests bind `127.0.0.1:0` and embed a whole server.
//!
//! Connections are accepted on the caller's runtime and handed to worker
//! threads, each running its own single-threaded tokio runtime: a
//! connection lives on one thread (no work stealing, no cross-thread
//! wake-ups on the request path), and shards with short critical sections
//! let the workers scale across cores. How many workers take connections
//! follows the load; the balancer moves a connection between batches
//! (`crate::workers`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::client::{Client, ClientHandle};
use crate::command::ctx::unix_ms;
use crate::config::Config;
use crate::connection;
use crate::shared::Shared;
use crate::workers::{Incoming, Workers};

const PROTECTED_MODE_ERR: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Number of worker threads: half the cores (at least one) unless
/// `FERRITE_WORKERS` says otherwise. The other half is left to the kernel's
/// network stack and to clients on the same host: on a 2-core machine, one
/// worker per core made the server spend ~20% more CPU per request than
/// Redis (threads time-slicing with the benchmark client), one worker spent
/// the same (bench-vs-redis, 2026-11-23).
fn worker_count() -> usize {
    std::env::var("FERRITE_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            (cores / 2).max(1)
        })
}

/// Runs a server on `listener` until `shutdown` completes or a client sends
/// `SHUTDOWN`. Returns the shared state for inspection (tests).
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future) -> Arc<Shared> {
    let srv = Shared::new(config);
    if let Err(e) = crate::acl::load_at_startup(&srv) {
        // As `redis-server` exits: the users it was told to have are missing.
        tracing::error!("{e}");
        return srv;
    }
    run_with(listener, srv.clone(), shutdown).await;
    srv
}

/// [`run`] over state built by the caller.
pub async fn run_with(mut listener: TcpListener, srv: Arc<Shared>, shutdown: impl Future) {
    if let Ok(a) = listener.local_addr() {
        srv.port.store(i64::from(a.port()), Ordering::Relaxed);
    }
    crate::scripting::start(&srv);
    let n = worker_count();
    let mut inboxes = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::unbounded_channel::<Incoming>();
        senders.push(tx);
        inboxes.push(rx);
    }
    let workers = Arc::new(Workers::new(senders));
    let _ = srv.workers.set(workers.clone());
    let mut threads = Vec::with_capacity(n);
    for (i, rx) in inboxes.into_iter().enumerate() {
        let srv = srv.clone();
        let workers = workers.clone();
        let t = std::thread::Builder::new()
            .name(format!("ferrite-worker-{i}"))
            .spawn(move || worker(i, rx, srv, workers))
            .expect("spawn worker thread");
        threads.push(t);
    }
    let balancer = workers.balanced().then(|| {
        let srv = srv.clone();
        let workers = workers.clone();
        std::thread::Builder::new()
            .name("ferrite-balance".into())
            .spawn(move || crate::workers::balance(srv, workers))
            .expect("spawn balancer thread")
    });
    let expiry = {
        let srv = srv.clone();
        std::thread::Builder::new()
            .name("ferrite-expire".into())
            .spawn(move || active_expiry(srv))
            .expect("spawn active expiry thread")
    };
    let aof_thread = {
        let srv = srv.clone();
        std::thread::Builder::new()
            .name("ferrite-aof".into())
            .spawn(move || crate::aof::background(srv))
            .expect("spawn AOF thread")
    };
    let cron = tokio::spawn(cron(srv.clone()));
    let repl_cron = tokio::spawn(crate::replica::ping_cron(srv.clone()));
    let failover_cron = tokio::spawn(crate::failover::cron(srv.clone()));
    let evictor = tokio::spawn(crate::evict::background(srv.clone()));
    let upstream = tokio::spawn(crate::upstream::manager(srv.clone()));
    let start_as_replica = srv.config.read().replicaof.clone();
    if let Some((host, port)) = start_as_replica {
        crate::upstream::start_as_replica(&srv, &host, port);
    }
    tokio::pin!(shutdown);
    // One `Notified` for the whole loop, enabled before the flag is read:
    // `notify_waiters` reaches only futures that exist when it is called,
    // and a `SHUTDOWN` runs on a worker thread while this loop may be
    // between two iterations (a lost wake-up left the server running).
    let stop = srv.shutdown.notified();
    tokio::pin!(stop);
    stop.as_mut().enable();
    loop {
        if srv.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = &mut stop => break,
            l = srv.rebind.next() => {
                // `CONFIG SET port/bind` bound it: serve it, close the old one.
                match TcpListener::from_std(l) {
                    Ok(l) => {
                        if let Ok(a) = l.local_addr() {
                            srv.port.store(i64::from(a.port()), Ordering::Relaxed);
                            tracing::info!(addr = %a, "Listening on the new address");
                        }
                        listener = l;
                    }
                    Err(e) => tracing::warn!(error = %e, "could not serve the new listening socket"),
                }
            }
            r = listener.accept() => {
                let (stream, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                srv.stats.total_connections_received.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = refuse(&srv, &peer) {
                    srv.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.try_write(reply.as_bytes());
                    continue;
                }
                match stream.into_std() {
                    Ok(s) => {
                        let _ = workers.send(workers.pick(), Incoming::New(s, peer));
                    }
                    Err(e) => tracing::warn!(error = %e, "could not hand over connection"),
                }
            }
        }
    }
    if srv.scripts.running.load(Ordering::Acquire) {
        // A script holds every shard and only ends on its own: exit now,
        // as Redis does when asked to stop during a busy script.
        tracing::warn!("A script is still running; exiting without waiting for it");
        std::process::exit(0);
    }
    srv.request_shutdown();
    crate::persist::at_exit(&srv);
    workers.close();
    cron.abort();
    repl_cron.abort();
    failover_cron.abort();
    evictor.abort();
    upstream.abort();
    expiry.thread().unpark();
    aof_thread.thread().unpark();
    if let Some(b) = &balancer {
        b.thread().unpark();
    }
    let _ = tokio::task::spawn_blocking(move || {
        let _ = expiry.join();
        let _ = aof_thread.join();
        if let Some(b) = balancer {
            let _ = b.join();
        }
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
    // Whatever the last connections wrote after SHUTDOWN's flush.
    crate::aof::shutdown(&srv);
    tracing::info!("server stopped");
}

fn refuse(srv: &Shared, peer: &SocketAddr) -> Option<&'static str> {
    if srv.hot.protected_mode.load(Ordering::Relaxed)
        && !crate::commands::server::is_local_ip(peer.ip())
        && srv.acl.default_user_nopass()
    {
        return Some(PROTECTED_MODE_ERR);
    }
    if srv.clients.len() as i64 >= srv.hot.maxclients.load(Ordering::Relaxed) {
        return Some("-ERR max number of clients reached\r\n");
    }
    None
}

fn worker(
    idx: usize,
    mut rx: mpsc::UnboundedReceiver<Incoming>,
    srv: Arc<Shared>,
    workers: Arc<Workers>,
) {
    workers.register_thread(idx);
    crate::deferred::install();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "worker runtime failed to start");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    let main = local.run_until(async move {
        let mut tasks = tokio::task::JoinSet::new();
        while let Some(inc) = rx.recv().await {
            let srv = srv.clone();
            let workers = workers.clone();
            match inc {
                Incoming::New(std_stream, peer) => {
                    let Some(stream) = adopt(&srv, std_stream) else {
                        continue;
                    };
                    tasks.spawn_local(async move {
                        let laddr = stream
                            .local_addr()
                            .map(|a| a.to_string())
                            .unwrap_or_default();
                        let id = srv.clients.next_id();
                        let handle = Arc::new(ClientHandle::new(
                            id,
                            peer.to_string(),
                            laddr,
                            fd_of(&stream),
                            unix_ms(),
                        ));
                        handle.worker.store(idx, Ordering::Relaxed);
                        srv.clients.add(handle.clone());
                        let user = srv.acl.default_user();
                        let mut client = Client::new(handle.clone(), !user.needs_auth());
                        client.set_user(user);
                        // A panic inside the connection stays inside this
                        // task: the runtime reports it and the server keeps
                        // serving.
                        let parked = connection::serve(stream, srv.clone(), client).await;
                        finish(&srv, &workers, &handle, parked);
                    });
                }
                Incoming::Moved(p) => {
                    let handle = p.handle().clone();
                    handle.worker.store(idx, Ordering::Relaxed);
                    tasks.spawn_local(async move {
                        let parked = connection::resume(*p, srv.clone()).await;
                        finish(&srv, &workers, &handle, parked);
                    });
                }
            }
            // Reap finished tasks so the set does not grow.
            while let Some(Some(r)) = futures_now(&mut tasks) {
                if let Err(e) = r {
                    if e.is_panic() {
                        tracing::error!("a connection task panicked; the connection was closed");
                    }
                }
            }
        }
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                if e.is_panic() {
                    tracing::error!("a connection task panicked; the connection was closed");
                }
            }
        }
    });
    // Each poll of the set runs the connections that are ready (up to
    // tokio's per-tick budget); what they deferred is written right
    // after, before the worker polls for I/O again (`crate::deferred`),
    // or naps first under a load of many clients (`crate::nap`).
    tokio::pin!(main);
    // A worker asks for a small timer slack so that its naps
    // (`crate::nap`) last about what they ask for.
    #[cfg(target_os = "linux")]
    if let Some(ns) = std::num::NonZeroU64::new(crate::nap::TIMER_SLACK_NS) {
        let _ = rustix::thread::set_current_timer_slack(Some(ns));
    }
    let mut moderator = crate::nap::Moderator::new(Instant::now());
    let mut watch: Option<(std::task::Waker, Arc<WakeWatch>)> = None;
    rt.block_on(std::future::poll_fn(|cx| {
        // The set is polled with a waker that notes whether anything woke
        // it during the poll or the flush (a task left for the next poll
        // by tokio's budget, a stuck connection's task): then work is
        // ready, and the worker must not nap.
        if !watch
            .as_ref()
            .is_some_and(|(_, w)| w.inner.will_wake(cx.waker()))
        {
            watch = None;
        }
        let (waker, w) = watch.get_or_insert_with(|| {
            let w = Arc::new(WakeWatch {
                inner: cx.waker().clone(),
                woken: AtomicBool::new(false),
            });
            (std::task::Waker::from(w.clone()), w)
        });
        w.woken.store(false, Ordering::Relaxed);
        let r = std::future::Future::poll(main.as_mut(), &mut Context::from_waker(waker));
        crate::deferred::flush_all();
        let flushed = crate::deferred::take_flushed();
        let load = crate::nap::take_load();
        if r.is_pending() && flushed.batches > 0 {
            let (nap, new_epoch) = moderator.after_round(flushed, load, Instant::now());
            if new_epoch {
                crate::deferred::new_epoch();
            }
            if let Some(d) = nap.filter(|_| !w.woken.load(Ordering::Relaxed)) {
                // The runtime then polls for I/O: what came during the nap
                // is ready at once, and with nothing there it sleeps as
                // before.
                std::thread::sleep(d);
            }
        }
        r
    }));
    crate::deferred::flush_all();
}

/// The waker a worker polls its connections with: the runtime's, and a
/// note that it was called.
struct WakeWatch {
    inner: std::task::Waker,
    woken: AtomicBool,
}

impl std::task::Wake for WakeWatch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Relaxed);
        self.inner.wake_by_ref();
    }
}

/// Socket options for a new connection, then its registration with this
/// worker's runtime.
fn adopt(srv: &Shared, std_stream: std::net::TcpStream) -> Option<TcpStream> {
    let _ = std_stream.set_nodelay(true);
    let keepalive = srv.config.read().tcp_keepalive;
    if keepalive > 0 {
        let ka = socket2::TcpKeepalive::new().with_time(Duration::from_secs(keepalive as u64));
        let _ = socket2::SockRef::from(&std_stream).set_tcp_keepalive(&ka);
    }
    match TcpStream::from_std(std_stream) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "could not register connection");
            None
        }
    }
}

/// After a connection task ends: a connection that left for another worker
/// is handed over, one that closed leaves the registry.
fn finish(
    srv: &Shared,
    workers: &Workers,
    handle: &Arc<ClientHandle>,
    parked: Option<connection::Parked>,
) {
    if let Some(p) = parked {
        match workers.send(p.to, Incoming::Moved(Box::new(p))) {
            None => return,
            // The server is stopping: the connection closes here.
            Some(Incoming::Moved(p)) => p.close(srv),
            Some(Incoming::New(..)) => {}
        }
    }
    srv.clients.remove(handle.id);
    srv.tracking.disable(handle);
}

fn futures_now(
    set: &mut tokio::task::JoinSet<()>,
) -> Option<Option<Result<(), tokio::task::JoinError>>> {
    set.try_join_next().map(Some)
}

#[cfg(unix)]
fn fd_of(s: &TcpStream) -> i64 {
    use std::os::fd::AsRawFd;
    i64::from(s.as_raw_fd())
}

#[cfg(not(unix))]
fn fd_of(_s: &TcpStream) -> i64 {
    -1
}

/// The active expiry thread: runs the cycles that stay due while no worker
/// runs them (an idle server), slow ones with their full limit (see
/// [`ferrite_storage::ExpireDriver`]). A thread of its own, not a task:
/// its cycles are synchronous work under shard locks. It sleeps until the
/// next cycle is due plus the grace left to the workers, and is unparked
/// at shutdown.
fn active_expiry(srv: Arc<Shared>) {
    while !srv.shutting_down.load(Ordering::Relaxed) {
        let (effort, hz) = srv.expire_tuning();
        let (cycle, wait) =
            srv.expire
                .background_tick(&srv.store, Instant::now(), &unix_ms, &effort, hz);
        if let Some(c) = &cycle {
            srv.expire_cycle_done(c);
        }
        std::thread::park_timeout(wait);
    }
}

/// Background work on `hz`: tracking broadcasts and key limit, idle
/// timeouts, the ops/sec sample. `DEBUG PAUSE-CRON 1` stops it.
async fn cron(srv: Arc<Shared>) {
    loop {
        let hz = srv.config.read().hz.clamp(1, 500);
        let period = Duration::from_millis((1000 / hz) as u64);
        tokio::time::sleep(period).await;
        if srv.cron_paused.load(Ordering::Relaxed) {
            continue;
        }
        let now = unix_ms();
        // Expiries and background evictions reach BCAST clients here.
        srv.tracking.cron();
        let timeout = srv.hot.timeout_s.load(Ordering::Relaxed);
        if timeout > 0 {
            for c in srv.clients.all() {
                if (now - c.last_interaction_ms.load(Ordering::Relaxed)) / 1000 > timeout
                    && !c.monitor.load(Ordering::Relaxed)
                {
                    c.kill();
                }
            }
        }
        srv.client_cron.tick(&srv, now, hz as usize);
        crate::commands::memory::track_peak(&srv);
        crate::persist::cron(&srv);
        crate::aof::cron(&srv);
        crate::shutdown::cron(&srv);
        if srv.getack_pending.swap(false, Ordering::Relaxed)
            && !srv.upstream.is_replica.load(Ordering::Relaxed)
        {
            crate::replica::ask_for_acks(&srv, now);
        }
        let mut s = srv.stats.ops_sample.lock();
        let total = srv.stats.commands_processed();
        let (last_total, last_ms, _) = *s;
        let dt = (now - last_ms).max(1) as u64;
        let ops = total.saturating_sub(last_total) * 1000 / dt;
        *s = (total, now, ops);
    }
}
