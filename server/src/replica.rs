//! The primary side of replication: a partial resync (`PSYNC` of a
//! history the backlog still holds, answered `+CONTINUE`), else a full
//! resync (`SYNC`, `PSYNC`), and the replica link that follows either.
//!
//! A full resync is a snapshot at stream offset O plus the stream from O
//! (see the design's "Persistence and sync"). The snapshot is serialized
//! with every shard of every database held ([`Store::with_locked`]), and
//! the replica is attached to the propagation stream inside that same
//! locked step: writes append their effects while holding their shard
//! locks, so no effect can fall between the snapshot and O, and none can be
//! both in the snapshot and after O.
//!
//! After the RDB payload the connection only carries the stream, read from
//! the backlog ([`Propagator::read_from`]); a replica too slow to keep
//! inside the backlog is disconnected, as Redis does when a replica's
//! output buffer overflows. What the replica sends back is parsed only for
//! `REPLCONF ACK`, which `INFO replication` reports.
//!
//! [`Store::with_locked`]: ferrite_storage::Store::with_locked
//! [`Propagator::read_from`]: crate::propagate::Propagator::read_from

use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrite_protocol::{parse_command, Limits, Parsed};
use ferrite_storage::LockSet;
use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::client::Client;
use crate::command::ctx::unix_ms;
use crate::shared::Shared;

/// Replication state a connection gathers before it becomes a replica
/// link (`REPLCONF` options, then the `SYNC`/`PSYNC` that hands it over).
#[derive(Debug, Default, Clone)]
pub struct ReplState {
    /// `REPLCONF listening-port`: the port the replica serves clients on,
    /// which `INFO replication` shows instead of the link's own port.
    pub listening_port: Option<u16>,
    /// `REPLCONF ip-address`: the address the replica announces.
    pub announced_ip: Option<String>,
    /// `REPLCONF rdb-only 1` (`redis-cli --rdb`): close after the snapshot.
    pub rdb_only: bool,
    /// Set by `SYNC` (`Some(false)`) or `PSYNC` (`Some(true)`): once the
    /// reply is written the connection hands itself to [`serve`].
    pub start: Option<bool>,
    /// `PSYNC <replid> <offset>`: the history the replica has and the
    /// first byte it lacks, for a partial resync.
    pub psync: Option<(String, i64)>,
    /// `REPLCONF capa psync2`: `+CONTINUE` names the replication id.
    pub capa_psync2: bool,
}

/// Where a replica's synchronization stands (Redis's `replstate`, as
/// `INFO replication` names it).
pub mod state {
    /// Waiting for its snapshot (`wait_bgsave`).
    pub const WAIT_BGSAVE: u8 = 0;
    /// Receiving its snapshot (`send_bulk`).
    pub const SEND_BULK: u8 = 1;
    /// Following the stream (`online`).
    pub const ONLINE: u8 = 2;
}

/// One replica link, as `INFO replication` and `ROLE` list it, from its
/// `SYNC`/`PSYNC` on.
pub struct ReplicaInfo {
    pub client_id: u64,
    pub ip: String,
    pub port: u16,
    /// One of [`state`]'s values. Only online replicas count for `WAIT`,
    /// `min-replicas-to-write` and `FAILOVER`.
    pub state: std::sync::atomic::AtomicU8,
    /// Last offset the replica acknowledged (`REPLCONF ACK`).
    pub ack_offset: AtomicU64,
    /// When that acknowledgement came, unix ms.
    pub ack_ms: AtomicI64,
}

impl ReplicaInfo {
    /// Following the stream, its snapshot received.
    pub fn online(&self) -> bool {
        self.state.load(Ordering::Relaxed) == state::ONLINE
    }

    fn state_name(&self) -> &'static str {
        match self.state.load(Ordering::Relaxed) {
            state::WAIT_BGSAVE => "wait_bgsave",
            state::SEND_BULK => "send_bulk",
            _ => "online",
        }
    }

    fn set_online(&self) {
        // A fresh acknowledgement time, so `lag` does not count the sync
        // (Redis's `replicaPutOnline`).
        self.ack_ms.store(unix_ms(), Ordering::Relaxed);
        self.state.store(state::ONLINE, Ordering::Relaxed);
    }
}

/// Asks every replica for an acknowledgement (`REPLCONF GETACK *` in the
/// stream), or, while clients are paused (a failover waits for the stream
/// to stop growing), leaves it to the server cron once the pause ends, as
/// Redis's `get_ack_from_slaves`.
pub fn ask_for_acks(srv: &Shared, now_ms: i64) {
    if srv.pause.active(&srv.store, now_ms) == crate::pause::Kind::Off {
        srv.repl.feed_global(&[b"REPLCONF", b"GETACK", b"*"]);
    } else {
        srv.getack_pending.store(true, Ordering::Relaxed);
    }
}

/// Woken on every `REPLCONF ACK`, for `WAIT`.
pub static ACKS: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// How many of `replicas` acknowledged `offset` or more.
pub fn acked(replicas: &[Arc<ReplicaInfo>], offset: u64) -> i64 {
    replicas
        .iter()
        .filter(|r| r.ack_offset.load(Ordering::Relaxed) >= offset)
        .count() as i64
}

/// The replica links, in attach order.
#[derive(Default)]
pub struct Replicas {
    list: Mutex<Vec<Arc<ReplicaInfo>>>,
    /// Since when (unix ms) no replica is listed; 0: not known yet, or
    /// some are (Redis's `repl_no_slaves_since`).
    empty_since_ms: AtomicI64,
    /// Clients blocked in `WAIT` (counted in `blocked_clients`, as Redis's
    /// `BLOCKED_WAIT`).
    waiting: std::sync::atomic::AtomicUsize,
}

impl Replicas {
    /// Counts a client into or out of `WAIT`.
    pub fn waiting(&self, starts: bool) {
        if starts {
            self.waiting.fetch_add(1, Ordering::Relaxed);
        } else {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Clients blocked in `WAIT`.
    pub fn waiting_clients(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn add(&self, r: Arc<ReplicaInfo>) {
        let mut list = self.list.lock();
        list.push(r);
        self.empty_since_ms.store(0, Ordering::Relaxed);
    }

    fn remove(&self, client_id: u64) {
        let mut list = self.list.lock();
        list.retain(|r| r.client_id != client_id);
        if list.is_empty() {
            self.empty_since_ms.store(unix_ms(), Ordering::Relaxed);
        }
    }

    /// Seconds without any replica, `None` while some are listed; the
    /// first call with none starts the count (a server starts without).
    fn idle_s(&self, now_ms: i64) -> Option<i64> {
        let list = self.list.lock();
        if !list.is_empty() {
            return None;
        }
        let since = self.empty_since_ms.load(Ordering::Relaxed);
        if since == 0 {
            self.empty_since_ms.store(now_ms, Ordering::Relaxed);
            return Some(0);
        }
        Some((now_ms - since).max(0) / 1000)
    }

    /// Every replica link, synchronizing or online.
    pub fn all(&self) -> Vec<Arc<ReplicaInfo>> {
        self.list.lock().clone()
    }

    /// The replicas following the stream.
    pub fn online(&self) -> Vec<Arc<ReplicaInfo>> {
        self.list
            .lock()
            .iter()
            .filter(|r| r.online())
            .cloned()
            .collect()
    }
}

/// The `connected_slaves` and `slaveN:` lines of `INFO replication`.
pub fn info_lines(srv: &Shared) -> String {
    let list = srv.replicas.all();
    let now = unix_ms();
    let mut s = format!("connected_slaves:{}\r\n", list.len());
    let (want, lag) = {
        let h = &srv.hot;
        (
            h.min_replicas_to_write.load(Ordering::Relaxed),
            h.min_replicas_max_lag.load(Ordering::Relaxed),
        )
    };
    if want != 0 && lag != 0 {
        s.push_str(&format!(
            "min_slaves_good_slaves:{}\r\n",
            srv.good_replicas()
        ));
    }
    for (i, r) in list.iter().enumerate() {
        let lag = (now - r.ack_ms.load(Ordering::Relaxed)).max(0) / 1000;
        s.push_str(&format!(
            "slave{i}:ip={},port={},state={},offset={},lag={lag}\r\n",
            r.ip,
            r.port,
            r.state_name(),
            r.ack_offset.load(Ordering::Relaxed)
        ));
    }
    s
}

/// Takes the snapshot and attaches to the stream in one locked step:
/// (the RDB file, its stream offset, a receiver for stream growth). Only
/// arming the snapshot holds every shard; the file is collected after.
/// `None` (and detached again) when the snapshot could not be completed.
fn snapshot(srv: &Shared) -> Option<(Vec<u8>, u64, tokio::sync::watch::Receiver<u64>)> {
    let mut all = LockSet::new();
    all.add_all();
    let used = srv.store.stats().used_memory.load(Ordering::Relaxed).max(0) as u64;
    let bufs = crate::rdb::buffers(&srv.store, used);
    let compress = srv.config.read().flag("rdbcompression");
    let (pending, offset, rx) = {
        // On a replica, the primary's commands and their offsets stay on
        // one side of the snapshot (`Upstream::apply_lock`, before the
        // shards).
        let _applying = srv.upstream.apply_lock();
        srv.store.with_locked(&all, || {
            crate::scripting::functions::with_library_codes(srv, |libraries| {
                let (offset, rx) = srv.repl.attach();
                // A replica that saves this file as its own (Redis does)
                // can continue from it after a restart. Its stream gets a
                // SELECT before the next effect, so any database is right
                // here.
                let repl = crate::rdb::ReplInfo {
                    stream_db: 0,
                    replid: srv.replid.lock().clone(),
                    offset,
                };
                let pending = crate::rdb::arm(
                    &srv.store,
                    bufs,
                    compress,
                    unix_ms(),
                    used,
                    libraries,
                    Some(&repl),
                );
                (pending, offset, rx)
            })
        })
    };
    match pending.collect() {
        Ok(file) => Some((file.seal(), offset, rx)),
        Err(e) => {
            srv.repl.detach();
            tracing::warn!(error = %e, "snapshot for a replica failed");
            None
        }
    }
}

/// Attaches a `PSYNC` that can continue from the backlog (Redis's
/// `masterTryPartialResynchronization`): the history must be ours (our
/// replication id, or the previous one up to where it ended) and the
/// backlog must still hold every byte from the requested offset. Returns
/// the stream offset the replica continues from and the stream's watch.
fn try_partial(
    srv: &Shared,
    replid: &str,
    psync_offset: i64,
    name: &str,
) -> Option<(u64, tokio::sync::watch::Receiver<u64>)> {
    let (id, id2) = (srv.replid.lock().clone(), srv.replid2.lock().clone());
    let second = srv.second_repl_offset.load(Ordering::Relaxed);
    if !replid.eq_ignore_ascii_case(&id)
        && (!replid.eq_ignore_ascii_case(&id2) || psync_offset > second)
    {
        if replid.starts_with('?') {
            tracing::info!("Full resync requested by replica {name}");
        } else if !replid.eq_ignore_ascii_case(&id) && !replid.eq_ignore_ascii_case(&id2) {
            tracing::info!("Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{replid}', my replication IDs are '{id}' and '{id2}')");
        } else {
            tracing::info!("Partial resynchronization not accepted: Requested offset for second ID was {psync_offset}, but I can reply up to {second}");
        }
        return None;
    }
    // `psync_offset` is the first byte wanted, counted from 1: the
    // replica has the stream up to `psync_offset - 1`.
    let from = u64::try_from(psync_offset - 1).ok();
    match from.and_then(|f| srv.repl.attach_from(f).map(|rx| (f, rx))) {
        Some(found) => Some(found),
        None => {
            tracing::info!("Unable to partial resync with replica {name} for lack of backlog (Replica request was: {psync_offset}).");
            if psync_offset > srv.repl.offset() as i64 {
                tracing::warn!("Warning: replica {name} tried to PSYNC with an offset that is greater than the master replication offset.");
            }
            None
        }
    }
}

/// Detaches the link from the stream however it ends.
struct Attached<'a> {
    srv: &'a Shared,
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        self.srv.repl.detach();
    }
}

/// Takes the link out of the replica list however it ends.
struct Listed<'a> {
    srv: &'a Shared,
    client_id: u64,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.srv.replicas.remove(self.client_id);
    }
}

/// Serves a connection that sent `SYNC`/`PSYNC` for the rest of its life:
/// the full resync (`+FULLRESYNC` for `PSYNC`, then `$<len>\r\n<rdb>`), then
/// every stream byte from the snapshot's offset on. `inbuf` holds whatever
/// the connection had read past the `SYNC`. Returns when the link ends.
pub async fn serve(srv: &Arc<Shared>, stream: &TcpStream, client: &mut Client, inbuf: BytesMut) {
    let state = std::mem::take(&mut client.repl);
    let psync = state.start.unwrap_or(false);
    let handle = client.handle.clone();
    let ip = state.announced_ip.clone().unwrap_or_else(|| {
        handle
            .addr
            .rsplit_once(':')
            .map_or(handle.addr.clone(), |(ip, _)| ip.to_string())
    });
    let port = state.listening_port.unwrap_or(0);
    let name = format!("{ip}:{port}");
    tracing::info!("Replica {name} asks for synchronization");
    // Replica memory (`mem_clients_slaves`), not normal client memory: the
    // link itself while it lives.
    let _link = crate::client_mem::ReplicaCharge::new(
        srv,
        crate::client_mem::CLIENT_OVERHEAD + inbuf.capacity(),
    );
    let info = Arc::new(ReplicaInfo {
        client_id: client.id(),
        ip,
        port,
        state: state::WAIT_BGSAVE.into(),
        ack_offset: AtomicU64::new(0),
        ack_ms: AtomicI64::new(unix_ms()),
    });
    srv.replicas.add(info.clone());
    let _listed = Listed {
        srv,
        client_id: client.id(),
    };
    let partial = match (&state.psync, state.rdb_only) {
        (Some((id, off)), false) => {
            let found = try_partial(srv, id, *off, &name);
            let stat = match (&found, id.starts_with('?')) {
                (Some(_), _) => Some(&srv.stats.sync_partial_ok),
                (None, false) => Some(&srv.stats.sync_partial_err),
                (None, true) => None,
            };
            if let Some(c) = stat {
                c.fetch_add(1, Ordering::Relaxed);
            }
            found
        }
        _ => None,
    };
    let (offset, mut rx, _attached) = match partial {
        Some((from, rx)) => {
            let attached = Attached { srv };
            let head = if state.capa_psync2 {
                format!("+CONTINUE {}\r\n", srv.replid.lock())
            } else {
                "+CONTINUE\r\n".to_string()
            };
            if write_all(srv, stream, head.as_bytes()).await.is_err() {
                return;
            }
            tracing::info!(
                "Partial resynchronization request from {name} accepted. Sending {} bytes of backlog starting from offset {}.",
                srv.repl.offset().saturating_sub(from),
                from + 1
            );
            (from, rx, attached)
        }
        None => {
            srv.stats.sync_full.fetch_add(1, Ordering::Relaxed);
            let srv2 = srv.clone();
            let Ok(Some((rdb, offset, rx))) =
                tokio::task::spawn_blocking(move || snapshot(&srv2)).await
            else {
                tracing::warn!(client = client.id(), "snapshot for replica failed");
                return;
            };
            // The snapshot is replica memory while it is being sent.
            let rdb_charge = crate::client_mem::ReplicaCharge::new(srv, rdb.len());
            let attached = Attached { srv };
            info.state.store(state::SEND_BULK, Ordering::Relaxed);
            tracing::info!(
                "Full resync of replica {name} at offset {offset} ({} RDB bytes)",
                rdb.len()
            );
            let mut head = Vec::new();
            if psync {
                head.extend_from_slice(
                    format!("+FULLRESYNC {} {offset}\r\n", srv.replid.lock()).as_bytes(),
                );
            }
            head.extend_from_slice(format!("${}\r\n", rdb.len()).as_bytes());
            if srv.config.read().flag("repl-disable-tcp-nodelay") {
                // Fewer, larger packets for the snapshot and the stream, at
                // some latency (Redis turns TCP_NODELAY off as the full
                // sync starts).
                let _ = stream.set_nodelay(false);
            }
            if write_all(srv, stream, &head).await.is_err()
                || write_all(srv, stream, &rdb).await.is_err()
            {
                return;
            }
            drop(rdb);
            drop(rdb_charge);
            if state.rdb_only {
                return;
            }
            (offset, rx, attached)
        }
    };
    info.set_online();
    tracing::info!(
        "Synchronization with replica {}:{} succeeded",
        info.ip,
        info.port
    );
    let mut inbuf = inbuf;
    handle_input(&mut inbuf, &info);
    let mut sent = offset;
    loop {
        if handle.killed.load(Ordering::Acquire) {
            break;
        }
        // Mark the current end seen before reading, so growth after the
        // read wakes the wait below.
        rx.borrow_and_update();
        match srv.repl.read_from(sent) {
            None => {
                tracing::warn!(
                    "Replica {}:{} fell out of the replication backlog at offset {sent}; disconnecting",
                    info.ip,
                    info.port
                );
                break;
            }
            Some(data) if !data.is_empty() => {
                if write_all(srv, stream, &data).await.is_err() {
                    break;
                }
                sent += data.len() as u64;
                handle
                    .last_interaction_ms
                    .store(unix_ms(), Ordering::Relaxed);
                continue;
            }
            Some(_) => {}
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { break },
            _ = handle.on_kill() => {}
            r = stream.readable() => {
                if r.is_err() {
                    break;
                }
                inbuf.reserve(4096);
                match stream.try_read_buf(&mut inbuf) {
                    Ok(0) => break,
                    Ok(n) => {
                        srv.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        handle.last_interaction_ms.store(unix_ms(), Ordering::Relaxed);
                        if !handle_input(&mut inbuf, &info) {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
        }
    }
    tracing::info!("Connection with replica {}:{} lost", info.ip, info.port);
}

/// Parses what the replica sent: records `REPLCONF ACK <offset>`, ignores
/// the rest (a replica sends nothing else). False on a protocol error or
/// a runaway buffer, which ends the link.
fn handle_input(inbuf: &mut BytesMut, info: &ReplicaInfo) -> bool {
    let limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
        authenticated: true,
    };
    let mut argv: Vec<Bytes> = Vec::new();
    loop {
        match parse_command(inbuf, &mut argv, &limits) {
            Ok(Parsed::Command) => {
                if argv.len() >= 3
                    && argv[0].eq_ignore_ascii_case(b"replconf")
                    && argv[1].eq_ignore_ascii_case(b"ack")
                {
                    if let Some(off) = std::str::from_utf8(&argv[2])
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                    {
                        info.ack_offset.store(off, Ordering::Relaxed);
                        info.ack_ms.store(unix_ms(), Ordering::Relaxed);
                        ACKS.notify_waiters();
                    }
                }
                argv.clear();
            }
            Ok(Parsed::Incomplete { .. }) => return inbuf.len() < 64 * 1024 * 1024,
            Err(_) => return false,
        }
    }
}

async fn write_all(srv: &Shared, stream: &TcpStream, buf: &[u8]) -> io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        match stream.try_write(&buf[off..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    srv.stats
        .net_output_bytes
        .fetch_add(buf.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// Puts a `PING` into the stream every `repl-ping-replica-period` seconds
/// while replicas are attached (Redis's `replicationCron`), so they can
/// tell a quiet primary from a broken link.
pub async fn ping_cron(srv: Arc<Shared>) {
    let mut loops: i64 = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if srv.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        // Counted from 1, so the first PING comes one whole period after
        // start rather than in the first second.
        loops += 1;
        let period = srv.config.read().repl_ping_replica_period.max(1);
        // Not while a failover waits for a replica to acknowledge the
        // whole stream: a PING would move its end.
        if loops % period == 0
            && srv.repl.replica_count() > 0
            && srv.failover.state() == crate::failover::State::None
        {
            srv.repl.feed_global(&[b"PING"]);
        }
        free_idle_backlog(&srv);
    }
}

/// `repl-backlog-ttl`: a primary without replicas for that many seconds
/// frees its backlog and starts a new history, so no replica can later
/// continue one whose bytes it no longer holds (Redis's
/// `replicationCron`). A replica keeps its backlog for its own replicas.
fn free_idle_backlog(srv: &Shared) {
    let ttl: i64 = srv
        .config
        .read()
        .value("repl-backlog-ttl")
        .parse()
        .unwrap_or(0);
    if ttl <= 0 || srv.upstream.target().is_some() || !srv.repl.backlog_active() {
        return;
    }
    match srv.replicas.idle_s(unix_ms()) {
        Some(idle) if idle > ttl => {}
        _ => return,
    }
    if srv.repl.free_backlog(|| srv.new_replication_id()) {
        tracing::info!("Replication backlog freed after {ttl} seconds without connected replicas.");
    }
}
