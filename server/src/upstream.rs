//! The replica side of replication: `REPLICAOF host port` makes this
//! server follow a primary (Ferrite or Redis), `REPLICAOF NO ONE` makes it
//! a primary again (Redis 7.0's `replication.c`, replica half).
//!
//! One task per primary address (started by [`manager`], which the
//! `REPLICAOF` handler wakes) connects, does the handshake (`PING`,
//! `AUTH`, `REPLCONF listening-port`, `REPLCONF capa eof capa psync2`,
//! `PSYNC`), loads the snapshot of a full resync (`crate::rdb_load`) or
//! continues after `+CONTINUE`, then applies the primary's stream through
//! the ordinary dispatcher as the master client: writes allowed, replies
//! dropped, except `REPLCONF GETACK`, answered with `REPLCONF ACK
//! <offset>`, which it also sends every second. A dropped link is retried
//! with a short backoff until the address changes.
//!
//! While this server is a replica its own effects do not enter the
//! propagation stream; the primary's stream does, byte for byte
//! ([`Propagator::feed_raw`]), so `master_repl_offset` is the processed
//! offset and replicas of this replica see the primary's offsets.
//!
//! [`Propagator::feed_raw`]: crate::propagate::Propagator::feed_raw

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use ferrite_protocol::{parse_command, Limits, Parsed, ReplyBuf};
use ferrite_storage::LockSet;
use parking_lot::Mutex;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::client::{Client, ClientHandle};
use crate::command::ctx::unix_ms;
use crate::shared::Shared;

/// Where the link to the primary stands (Redis's `repl_state`, reduced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkState {
    /// Not a replica.
    None = 0,
    /// Must connect (after `REPLICAOF`, or after the link dropped).
    Connect = 1,
    Connecting = 2,
    Handshake = 3,
    /// Receiving the snapshot.
    Transfer = 4,
    Connected = 5,
}

impl LinkState {
    fn from_u8(v: u8) -> LinkState {
        match v {
            1 => LinkState::Connect,
            2 => LinkState::Connecting,
            3 => LinkState::Handshake,
            4 => LinkState::Transfer,
            5 => LinkState::Connected,
            _ => LinkState::None,
        }
    }

    /// The state `ROLE` names.
    pub fn role_name(self) -> &'static str {
        match self {
            LinkState::None => "none",
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Transfer => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// Why a link attempt ended; each one is logged and retried.
#[derive(Debug, Error)]
pub enum LinkError {
    #[error("I/O error with the primary: {0}")]
    Io(#[from] io::Error),
    #[error("the primary closed the connection")]
    Closed,
    #[error("timeout talking to the primary")]
    Timeout,
    #[error("unexpected reply from the primary to {0}: {1}")]
    Reply(&'static str, String),
    #[error("protocol error in the primary's stream: {0}")]
    Protocol(String),
    #[error("error loading the snapshot: {0}")]
    Load(#[from] crate::rdb_load::LoadError),
    #[error("replication target changed")]
    Superseded,
}

/// The replica-side state shared with `INFO`, `ROLE` and the dispatcher.
#[derive(Default)]
pub struct Upstream {
    /// The primary's address while this server is a replica (`masterhost`).
    target: Mutex<Option<(String, u16)>>,
    /// A replica (Redis's `masterhost != NULL`), read before every command.
    pub is_replica: AtomicBool,
    state: AtomicU8,
    /// Bumped by every `REPLICAOF`: a link of an older generation stops.
    generation: AtomicU64,
    wake: Notify,
    /// Unix ms of the last data from the primary (0: no link).
    pub last_io_ms: AtomicI64,
    /// Unix ms the link went down (0: never up since `REPLICAOF`).
    pub down_since_ms: AtomicI64,
    /// Stream bytes read and applied (`read_reploff`, `reploff`), -1 when
    /// no primary state exists.
    pub read_offset: AtomicI64,
    pub offset: AtomicI64,
    /// A connected master client exists (`server.master`).
    pub has_master: AtomicBool,
    /// The snapshot being received: (size, read so far).
    pub transfer_size: AtomicI64,
    pub transfer_read: AtomicI64,
    pub transfer_last_io_ms: AtomicI64,
    /// The dataset follows a known history, `master_replid` up to
    /// `offset` with `stream_db` selected, which the next `PSYNC` offers
    /// (Redis's cached master). It is read live when the link asks, so it
    /// is never stale: the link updates it as it applies the stream.
    history: AtomicBool,
    /// The database the primary's stream has selected (written under
    /// `apply`): a `+CONTINUE` stream goes on without a new `SELECT`.
    stream_db: std::sync::atomic::AtomicUsize,
    /// Held while the link applies one command of the primary's stream and
    /// counts its bytes, and by a save around its snapshot, so a snapshot
    /// never holds a command without its offset or the reverse.
    apply: Mutex<()>,
    /// A history restored from the RDB file at start-up, which a replica
    /// started by `replicaof` offers in its first `PSYNC`.
    restored: Mutex<Option<crate::rdb::ReplInfo>>,
}

impl Upstream {
    /// The link's state.
    pub fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Ordering::Relaxed))
    }

    fn set_state(&self, s: LinkState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    /// The primary's address, if this server is a replica.
    pub fn target(&self) -> Option<(String, u16)> {
        self.target.lock().clone()
    }

    /// A replica whose link is not up (Redis's `repl_state !=
    /// REPL_STATE_CONNECTED`), for `replica-serve-stale-data no`.
    pub fn link_down(&self) -> bool {
        self.is_replica.load(Ordering::Relaxed) && self.state() != LinkState::Connected
    }

    fn current(&self, gen: u64) -> bool {
        self.generation.load(Ordering::Acquire) == gen
    }

    /// See `apply`: taken before any shard lock.
    pub fn apply_lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.apply.lock()
    }

    /// [`Upstream::apply_lock`] if it is free, for a caller that already
    /// holds shards (and so must not wait for it).
    pub fn try_apply_lock(&self) -> Option<parking_lot::MutexGuard<'_, ()>> {
        self.apply.try_lock()
    }
}

/// Where this server stands in its replication history, for a snapshot
/// saved to disk (Redis's `rdbPopulateSaveInfo`); call it with every shard
/// held and [`Upstream::apply_lock`]. A primary has one once its backlog
/// exists; a replica while it has a primary, or its cached history.
pub fn save_info(srv: &Shared) -> Option<crate::rdb::ReplInfo> {
    let up = &srv.upstream;
    if !up.is_replica.load(Ordering::Relaxed) {
        if !srv.repl.backlog_active() {
            return None;
        }
        return Some(crate::rdb::ReplInfo {
            stream_db: srv.repl.selected_db().unwrap_or(0),
            replid: srv.replid.lock().clone(),
            offset: srv.repl.offset(),
        });
    }
    if !up.history.load(Ordering::Relaxed) {
        return None;
    }
    Some(crate::rdb::ReplInfo {
        stream_db: up.stream_db.load(Ordering::Relaxed),
        replid: srv.replid.lock().clone(),
        offset: up.offset.load(Ordering::Relaxed).max(0) as u64,
    })
}

/// Takes up the history of an RDB file loaded at start-up (Redis's
/// `loadDataFromDisk`). A server configured as a replica continues it
/// with its primary; a primary keeps it as its previous id, so its old
/// replicas can continue with it.
pub fn restore(srv: &Shared, info: crate::rdb::ReplInfo) -> bool {
    if info.stream_db >= srv.store.db_count() || info.offset > i64::MAX as u64 / 2 {
        tracing::warn!(
            "The replication information in the RDB file is out of range (database {}, offset {}); not continuing it",
            info.stream_db,
            info.offset
        );
        return false;
    }
    srv.repl.reset_offset(info.offset);
    if srv.config.read().replicaof.is_some() {
        *srv.replid.lock() = info.replid.clone();
        *srv.upstream.restored.lock() = Some(info);
    } else {
        *srv.replid2.lock() = info.replid;
        srv.second_repl_offset
            .store(info.offset as i64 + 1, Ordering::Relaxed);
        srv.repl.activate();
    }
    true
}

/// Disconnects every replica link (Redis's `disconnectSlaves`): they must
/// learn of a new history. Those still receiving a snapshot or about to
/// `+CONTINUE` too, not only the online ones `INFO` lists.
pub fn disconnect_replicas(srv: &Shared) {
    for h in srv.clients.all() {
        if h.replica.load(Ordering::Relaxed) {
            h.kill();
        }
    }
}

/// `REPLICAOF host port` (Redis's `replicationSetMaster`).
pub fn set_master(srv: &Shared, host: &str, port: u16) {
    let up = &srv.upstream;
    let was_master = !up.is_replica.load(Ordering::Relaxed);
    srv.blocking.unblock_all(
        b"UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
    );
    *up.target.lock() = Some((host.to_string(), port));
    srv.config.write().replicaof = Some((host.to_string(), port));
    up.generation.fetch_add(1, Ordering::AcqRel);
    srv.repl.set_suppressed(true);
    srv.store.stats().replica.store(true, Ordering::Relaxed);
    up.is_replica.store(true, Ordering::Release);
    crate::process::apply_oom_score(&srv.config.read(), true);
    if was_master {
        // Our own history, to PSYNC with: a primary that was our replica
        // can continue from it (`replicationCacheMasterUsingMyself`).
        let offset = srv.repl.offset() as i64;
        up.history.store(true, Ordering::Relaxed);
        up.stream_db
            .store(srv.repl.selected_db().unwrap_or(0), Ordering::Relaxed);
        up.offset.store(offset, Ordering::Relaxed);
        up.read_offset.store(offset, Ordering::Relaxed);
        up.down_since_ms.store(0, Ordering::Relaxed);
    }
    if up.has_master.swap(false, Ordering::Relaxed) {
        up.down_since_ms.store(unix_ms(), Ordering::Relaxed);
    }
    up.set_state(LinkState::Connect);
    tracing::info!("Connecting to MASTER {host}:{port}");
    up.wake.notify_one();
}

/// `replicaof` in the configuration: a replica from the start. Unlike
/// `REPLICAOF` on a running primary it has no history of its own to offer,
/// so its first `PSYNC` asks for a full resync (`PSYNC ? -1`), as Redis's
/// does when it starts without a cached master.
pub fn start_as_replica(srv: &Shared, host: &str, port: u16) {
    set_master(srv, host, port);
    let up = &srv.upstream;
    // The history of the RDB file loaded at start-up, if it had one.
    match up.restored.lock().take() {
        Some(info) => up.stream_db.store(info.stream_db, Ordering::Relaxed),
        None => up.history.store(false, Ordering::Relaxed),
    }
}

/// `REPLICAOF NO ONE` (Redis's `replicationUnsetMaster`).
pub fn unset_master(srv: &Shared) {
    let up = &srv.upstream;
    if !up.is_replica.load(Ordering::Relaxed) {
        return;
    }
    *up.target.lock() = None;
    srv.config.write().replicaof = None;
    up.generation.fetch_add(1, Ordering::AcqRel);
    up.is_replica.store(false, Ordering::Release);
    crate::process::apply_oom_score(&srv.config.read(), false);
    srv.store.stats().replica.store(false, Ordering::Relaxed);
    up.history.store(false, Ordering::Relaxed);
    up.has_master.store(false, Ordering::Relaxed);
    up.set_state(LinkState::None);
    up.down_since_ms.store(0, Ordering::Relaxed);
    up.last_io_ms.store(0, Ordering::Relaxed);
    // The inherited history becomes the secondary id up to here; a new
    // one starts (`shiftReplicationId`).
    let offset = srv.repl.offset() as i64;
    {
        let mut id = srv.replid.lock();
        *srv.replid2.lock() = std::mem::replace(&mut *id, crate::shared::random_hex40());
    }
    srv.second_repl_offset.store(offset + 1, Ordering::Relaxed);
    srv.repl.set_suppressed(false);
    disconnect_replicas(srv);
    up.wake.notify_one();
}

/// Runs for the server's life: (re)starts the link task whenever
/// `REPLICAOF` changes the target.
pub async fn manager(srv: Arc<Shared>) {
    /// Aborts the link task when the manager goes (server shutdown).
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut link: Option<AbortOnDrop> = None;
    loop {
        srv.upstream.wake.notified().await;
        drop(link.take());
        if srv.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        if let Some((host, port)) = srv.upstream.target() {
            let gen = srv.upstream.generation.load(Ordering::Acquire);
            link = Some(AbortOnDrop(tokio::spawn(run_link(
                srv.clone(),
                host,
                port,
                gen,
            ))));
        }
    }
}

/// Connects and serves the link until the target changes, retrying with
/// backoff after every failure.
async fn run_link(srv: Arc<Shared>, host: String, port: u16, gen: u64) {
    let mut delay = Duration::from_millis(100);
    while srv.upstream.current(gen) && !srv.shutting_down.load(Ordering::Relaxed) {
        let mut link = Link::new(&srv, gen);
        let r = link.session(&host, port).await;
        let synced = link.synced;
        drop(link);
        match r {
            Ok(()) | Err(LinkError::Superseded) => return,
            Err(e) => {
                if !srv.upstream.current(gen) {
                    return;
                }
                tracing::warn!("Replication link with MASTER {host}:{port}: {e}");
                if synced {
                    delay = Duration::from_millis(100);
                }
                srv.upstream.set_state(LinkState::Connect);
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// One connection to the primary.
struct Link<'a> {
    srv: &'a Arc<Shared>,
    gen: u64,
    buf: BytesMut,
    /// Reached the streaming phase (resets the backoff).
    synced: bool,
    handle: Option<Arc<ClientHandle>>,
    /// The stream bytes of a transaction being queued (`MULTI` and its
    /// commands): counted, and passed on to this server's replicas, only
    /// with its `EXEC`, as Redis updates the master client's offset. A link
    /// cut inside a transaction so resumes from its `MULTI`.
    multi: Vec<u8>,
}

impl<'a> Link<'a> {
    fn new(srv: &'a Arc<Shared>, gen: u64) -> Self {
        Link {
            srv,
            gen,
            buf: BytesMut::with_capacity(16 * 1024),
            synced: false,
            handle: None,
            multi: Vec::new(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.srv.config.read().repl_timeout.max(1) as u64)
    }

    fn check(&self) -> Result<(), LinkError> {
        if self.srv.upstream.current(self.gen) {
            Ok(())
        } else {
            Err(LinkError::Superseded)
        }
    }

    /// Reads more bytes into the buffer (with the link timeout).
    async fn fill(&mut self, s: &mut TcpStream) -> Result<usize, LinkError> {
        self.buf.reserve(16 * 1024);
        let n = tokio::time::timeout(self.timeout(), s.read_buf(&mut self.buf))
            .await
            .map_err(|_| LinkError::Timeout)??;
        if n == 0 {
            return Err(LinkError::Closed);
        }
        self.srv
            .stats
            .net_input_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        self.srv
            .upstream
            .last_io_ms
            .store(unix_ms(), Ordering::Relaxed);
        Ok(n)
    }

    /// One reply line (without `\r\n`); bare `\n`s (the primary's
    /// keepalives while it prepares a snapshot) are skipped.
    async fn line(&mut self, s: &mut TcpStream) -> Result<String, LinkError> {
        loop {
            while self.buf.first() == Some(&b'\n') {
                self.buf.advance(1);
            }
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.advance(i + 2);
                return Ok(l);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(LinkError::Protocol("reply line too long".into()));
            }
            self.fill(s).await?;
        }
    }

    async fn send(&self, s: &mut TcpStream, args: &[&[u8]]) -> Result<(), LinkError> {
        let mut out = Vec::new();
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        tokio::time::timeout(self.timeout(), s.write_all(&out))
            .await
            .map_err(|_| LinkError::Timeout)??;
        self.srv
            .stats
            .net_output_bytes
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn session(&mut self, host: &str, port: u16) -> Result<(), LinkError> {
        let up = &self.srv.upstream;
        up.set_state(LinkState::Connecting);
        let source = self.srv.config.read().value("bind-source-addr").to_string();
        let mut s = tokio::time::timeout(self.timeout(), connect(host, port, &source))
            .await
            .map_err(|_| LinkError::Timeout)??;
        let _ = s.set_nodelay(true);
        self.check()?;
        tracing::info!("MASTER <-> REPLICA sync started");
        up.set_state(LinkState::Handshake);
        up.last_io_ms.store(unix_ms(), Ordering::Relaxed);
        self.send(&mut s, &[b"PING"]).await?;
        let l = self.line(&mut s).await?;
        // An authentication error here is fine: AUTH follows.
        if l.starts_with('-')
            && !l.starts_with("-NOAUTH")
            && !l.starts_with("-NOPERM")
            && !l.starts_with("-ERR operation not permitted")
        {
            return Err(LinkError::Reply("PING", l));
        }
        let (user, pass) = {
            let c = self.srv.config.read();
            (c.masteruser.clone(), c.masterauth.clone())
        };
        if !pass.is_empty() {
            if user.is_empty() {
                self.send(&mut s, &[b"AUTH", pass.as_bytes()]).await?;
            } else {
                self.send(&mut s, &[b"AUTH", user.as_bytes(), pass.as_bytes()])
                    .await?;
            }
            let l = self.line(&mut s).await?;
            if l.starts_with('-') {
                return Err(LinkError::Reply("AUTH", l));
            }
        }
        let my_port = self.srv.port.load(Ordering::Relaxed).to_string();
        self.send(
            &mut s,
            &[b"REPLCONF", b"listening-port", my_port.as_bytes()],
        )
        .await?;
        let l = self.line(&mut s).await?;
        if l.starts_with('-') {
            tracing::info!(
                "(Non critical) Master does not understand REPLCONF listening-port: {l}"
            );
        }
        self.send(&mut s, &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
            .await?;
        let l = self.line(&mut s).await?;
        if l.starts_with('-') {
            tracing::info!("(Non critical) Master does not understand REPLCONF capa: {l}");
        }
        self.check()?;
        // The history the dataset follows now: what the last link applied
        // (it never runs again once a newer link exists), or this server's
        // own as a primary, or the one restored at start-up.
        let cached = up.history.load(Ordering::Relaxed).then(|| {
            (
                self.srv.replid.lock().clone(),
                up.offset.load(Ordering::Relaxed),
            )
        });
        let (id, next) = match &cached {
            Some((id, off)) => (id.clone(), (off + 1).to_string()),
            None => ("?".to_string(), "-1".to_string()),
        };
        let mut psync: Vec<&[u8]> = vec![b"PSYNC", id.as_bytes(), next.as_bytes()];
        // A primary handing its role over asks the target to take it.
        let failover = crate::failover::in_progress(self.srv);
        if failover {
            psync.push(b"FAILOVER");
        }
        let sent = self.send(&mut s, &psync).await;
        if failover && sent.is_err() {
            crate::failover::abort(self.srv, "Write error to failover target");
        }
        sent?;
        let l = self.line(&mut s).await;
        if failover {
            let accepted = l
                .as_ref()
                .ok()
                .map(|l| l.starts_with("+FULLRESYNC") || l.starts_with("+CONTINUE"));
            crate::failover::psync_answered(self.srv, accepted);
            self.check()?;
        }
        let l = l?;
        if let Some(rest) = l.strip_prefix("+FULLRESYNC") {
            let mut it = rest.split_whitespace();
            let (Some(id), Some(off)) = (it.next(), it.next().and_then(|o| o.parse::<i64>().ok()))
            else {
                return Err(LinkError::Reply("PSYNC", l));
            };
            let id = id.to_string();
            tracing::info!("Full resync from master: {id}:{off}");
            self.full_sync(&mut s, id, off).await?;
        } else if let Some(rest) = l.strip_prefix("+CONTINUE") {
            let Some((old_id, off)) = cached else {
                return Err(LinkError::Reply("PSYNC", l));
            };
            let new_id = rest.trim();
            if !new_id.is_empty() && new_id != old_id {
                // The primary's history has a new id from here on.
                *self.srv.replid2.lock() = old_id.clone();
                *self.srv.replid.lock() = new_id.to_string();
                self.srv
                    .second_repl_offset
                    .store(off + 1, Ordering::Relaxed);
                disconnect_replicas(self.srv);
            }
            tracing::info!("Successful partial resynchronization with master.");
            up.offset.store(off, Ordering::Relaxed);
            up.read_offset.store(off, Ordering::Relaxed);
        } else {
            return Err(LinkError::Reply("PSYNC", l));
        }
        self.stream(&mut s).await
    }

    /// Receives the snapshot (`$<len>` or the diskless `$EOF:<mark>`) and
    /// replaces the dataset with it.
    async fn full_sync(
        &mut self,
        s: &mut TcpStream,
        id: String,
        off: i64,
    ) -> Result<(), LinkError> {
        let up = &self.srv.upstream;
        up.set_state(LinkState::Transfer);
        up.transfer_read.store(0, Ordering::Relaxed);
        up.transfer_size.store(-1, Ordering::Relaxed);
        let head = self.line(s).await?;
        let Some(spec) = head.strip_prefix('$') else {
            return Err(LinkError::Reply("the snapshot", head));
        };
        let payload: Vec<u8> = if let Some(mark) = spec.strip_prefix("EOF:") {
            let mark = mark.as_bytes().to_vec();
            if mark.len() != 40 {
                return Err(LinkError::Reply("the snapshot", head));
            }
            up.transfer_size.store(0, Ordering::Relaxed);
            loop {
                if self.buf.len() >= 40 && self.buf[self.buf.len() - 40..] == mark[..] {
                    let n = self.buf.len() - 40;
                    let data = self.buf.split_to(n).to_vec();
                    self.buf.clear();
                    break data;
                }
                self.fill(s).await?;
                up.transfer_read
                    .store(self.buf.len() as i64, Ordering::Relaxed);
                up.transfer_last_io_ms.store(unix_ms(), Ordering::Relaxed);
            }
        } else {
            let len: usize = spec
                .parse()
                .map_err(|_| LinkError::Reply("the snapshot", head.clone()))?;
            up.transfer_size.store(len as i64, Ordering::Relaxed);
            while self.buf.len() < len {
                self.fill(s).await?;
                up.transfer_read
                    .store(self.buf.len().min(len) as i64, Ordering::Relaxed);
                up.transfer_last_io_ms.store(unix_ms(), Ordering::Relaxed);
            }
            self.buf.split_to(len).to_vec()
        };
        self.check()?;
        tracing::info!(
            "MASTER <-> REPLICA sync: received {} bytes, loading",
            payload.len()
        );
        let srv = self.srv.clone();
        let gen = self.gen;
        tokio::task::spawn_blocking(move || load_snapshot(&srv, gen, &payload, id, off))
            .await
            .map_err(|e| LinkError::Protocol(format!("snapshot loader failed: {e}")))??;
        tracing::info!("MASTER <-> REPLICA sync: Finished with success");
        Ok(())
    }

    /// Runs one command of the primary's stream and counts its bytes, both
    /// under the apply lock, so a snapshot saved meanwhile has either the
    /// command and its offset or neither. False when a pause postponed it
    /// (nothing counted).
    fn apply(
        &mut self,
        client: &mut Client,
        scratch: &mut ReplyBuf,
        argv: &[Bytes],
        bytes: &[u8],
    ) -> bool {
        let srv = self.srv;
        let up = &srv.upstream;
        let _applying = up.apply_lock();
        ferrite_storage::set_applying_primary(true);
        crate::command::dispatch::execute(srv, client, scratch, argv);
        ferrite_storage::set_applying_primary(false);
        if client.postponed {
            return false;
        }
        if scratch.buf.first() == Some(&b'-') {
            // The dataset may now differ from the primary's (an
            // unsupported command).
            let end = scratch.buf.len().min(200);
            tracing::warn!(
                "== CRITICAL == the primary's '{}' failed on this replica: {}",
                String::from_utf8_lossy(&argv[0]),
                String::from_utf8_lossy(&scratch.buf[..end]).trim_end()
            );
        }
        scratch.buf.clear();
        if client.multi.is_none() {
            up.stream_db.store(client.db, Ordering::Relaxed);
        }
        self.count(bytes, client.multi.is_some());
        true
    }

    /// Counts one command's stream bytes (call it with the apply lock):
    /// held back while a transaction is still queued (`in_multi`), else
    /// passed on to this server's replicas and added to the offset, with
    /// the transaction they end.
    fn count(&mut self, bytes: &[u8], in_multi: bool) {
        if in_multi {
            self.multi.extend_from_slice(bytes);
            return;
        }
        let block = if self.multi.is_empty() {
            bytes
        } else {
            self.multi.extend_from_slice(bytes);
            &self.multi[..]
        };
        self.srv.repl.feed_raw(block);
        self.srv
            .upstream
            .offset
            .fetch_add(block.len() as i64, Ordering::Relaxed);
        self.multi.clear();
    }

    /// Applies the primary's stream until the link drops or the target
    /// changes; acknowledges every second.
    async fn stream(&mut self, s: &mut TcpStream) -> Result<(), LinkError> {
        let srv = self.srv;
        let up = &srv.upstream;
        // The master client, listed by `CLIENT LIST` (flag `M`).
        let id = srv.clients.next_id();
        let peer = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let laddr = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let handle = Arc::new(ClientHandle::new(id, peer, laddr, -1, unix_ms()));
        handle.primary.store(true, Ordering::Relaxed);
        srv.clients.add(handle.clone());
        self.handle = Some(handle.clone());
        let mut client = Client::new(handle, true);
        // The database the stream has selected: 0 after a full sync, where
        // the last link left it after a `+CONTINUE`.
        client.db = up.stream_db.load(Ordering::Relaxed);
        client.handle.db.store(client.db, Ordering::Relaxed);
        client.primary = true;
        client.deny_blocking = true;
        let mut scratch = ReplyBuf::new();
        // A replica keeps a backlog of its primary's stream, so its own
        // replicas, and its old primary after a failover, can continue
        // from it.
        srv.repl.activate();
        up.set_state(LinkState::Connected);
        up.has_master.store(true, Ordering::Relaxed);
        up.down_since_ms.store(0, Ordering::Relaxed);
        self.synced = true;
        tracing::info!("MASTER <-> REPLICA sync: link up");
        let limits = Limits {
            max_bulk_len: 512 * 1024 * 1024,
            authenticated: true,
        };
        let mut argv: Vec<Bytes> = Vec::with_capacity(8);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Bytes after the snapshot already read are stream.
        let mut pending = std::mem::take(&mut self.buf);
        up.read_offset
            .fetch_add(pending.len() as i64, Ordering::Relaxed);
        loop {
            self.check()?;
            if client.handle.killed.load(Ordering::Acquire) {
                return Err(LinkError::Closed);
            }
            // Every complete command in the buffer; `raw` (one copy per
            // read) gives each command's exact bytes to the stream.
            let raw = Bytes::copy_from_slice(&pending);
            let mut at = 0usize;
            loop {
                let before = pending.len();
                match parse_command(&mut pending, &mut argv, &limits) {
                    Ok(Parsed::Command) => {
                        let used = before - pending.len();
                        let bytes = raw.slice(at..at + used);
                        at += used;
                        if argv.is_empty() {
                            let _applying = up.apply_lock();
                            if self.multi.is_empty() {
                                up.offset.fetch_add(used as i64, Ordering::Relaxed);
                            } else {
                                self.multi.extend_from_slice(&bytes);
                            }
                            continue;
                        }
                        if argv.len() >= 2
                            && argv[0].eq_ignore_ascii_case(b"replconf")
                            && argv[1].eq_ignore_ascii_case(b"getack")
                        {
                            // The offset before this command, as Redis.
                            let off = up.offset.load(Ordering::Relaxed).to_string();
                            self.send(s, &[b"REPLCONF", b"ACK", off.as_bytes()]).await?;
                            // Inside a transaction: counted with it.
                            let _applying = up.apply_lock();
                            let in_multi = !self.multi.is_empty();
                            self.count(&bytes, in_multi);
                        } else {
                            self.check()?;
                            // Applied and counted under the apply lock (no
                            // await while it is held), or postponed.
                            while !self.apply(&mut client, &mut scratch, &argv, &bytes) {
                                // `CLIENT PAUSE` holds the primary's stream
                                // too (Redis pauses its master client): the
                                // offset stands still, acknowledged as it is.
                                client.postponed = false;
                                tokio::select! {
                                    _ = srv.pause.changed() => {}
                                    _ = tick.tick() => {
                                        let off = up.offset.load(Ordering::Relaxed).to_string();
                                        self.send(s, &[b"REPLCONF", b"ACK", off.as_bytes()]).await?;
                                    }
                                }
                                self.check()?;
                            }
                        }
                        argv.clear();
                    }
                    Ok(Parsed::Incomplete { .. }) => {
                        argv.clear();
                        break;
                    }
                    Err(e) => return Err(LinkError::Protocol(e.to_string())),
                }
            }
            pending.reserve(16 * 1024);
            tokio::select! {
                r = tokio::time::timeout(self.timeout(), s.read_buf(&mut pending)) => {
                    let n = r.map_err(|_| LinkError::Timeout)??;
                    if n == 0 {
                        return Err(LinkError::Closed);
                    }
                    srv.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    up.read_offset.fetch_add(n as i64, Ordering::Relaxed);
                    up.last_io_ms.store(unix_ms(), Ordering::Relaxed);
                    client.handle.last_interaction_ms.store(unix_ms(), Ordering::Relaxed);
                }
                _ = client.handle.on_kill() => {}
                _ = tick.tick() => {
                    let off = up.offset.load(Ordering::Relaxed).to_string();
                    self.send(s, &[b"REPLCONF", b"ACK", off.as_bytes()]).await?;
                }
            }
        }
    }
}

impl Drop for Link<'_> {
    /// Leaves the link's state as Redis leaves it when the master client
    /// is freed: what was read but not applied is dropped (a transaction
    /// cut short included), and the history stays for the next `PSYNC`. A
    /// drop, so it also runs when `REPLICAOF` aborts the task.
    fn drop(&mut self) {
        let srv = self.srv;
        let up = &srv.upstream;
        if let Some(h) = self.handle.take() {
            srv.clients.remove(h.id);
            if up.current(self.gen) {
                up.read_offset
                    .store(up.offset.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            if up.has_master.swap(false, Ordering::Relaxed) {
                up.down_since_ms.store(unix_ms(), Ordering::Relaxed);
            }
        }
        if up.current(self.gen) && up.is_replica.load(Ordering::Relaxed) {
            up.set_state(LinkState::Connect);
        }
    }
}

/// Connects to the primary, from `bind-source-addr` when it is set. As
/// Redis's `anetTcpNonBlockBestEffortBindConnect`, the source may be a
/// host name, and a source that cannot be bound (not on this host, another
/// address family) falls back to a plain connect.
async fn connect(host: &str, port: u16, source: &str) -> io::Result<TcpStream> {
    if source.is_empty() {
        return TcpStream::connect((host, port)).await;
    }
    let sources: Vec<std::net::SocketAddr> = tokio::net::lookup_host((source, 0))
        .await
        .map(|a| a.collect())
        .unwrap_or_default();
    for addr in tokio::net::lookup_host((host, port)).await? {
        let Some(from) = sources.iter().find(|s| s.is_ipv4() == addr.is_ipv4()) else {
            continue;
        };
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Err(e) = socket.bind(*from) {
            tracing::warn!(error = %e, "Unable to bind the replication link to bind-source-addr {source}; connecting without it");
            break;
        }
        if let Ok(s) = socket.connect(addr).await {
            return Ok(s);
        }
    }
    TcpStream::connect((host, port)).await
}

/// Replaces the dataset with a snapshot, with every shard held; nothing
/// changes when the file does not load or `REPLICAOF` moved on meanwhile.
fn load_snapshot(
    srv: &Shared,
    gen: u64,
    data: &[u8],
    replid: String,
    offset: i64,
) -> Result<(), LinkError> {
    let loaded = crate::rdb_load::load_for(srv, data)?;
    // The dataset changes without commands the AOF could record: the AOF
    // stops for the load and starts again with a base of what was loaded
    // (Redis's `stopAppendOnly` and `restartAOFAfterSYNC`).
    let aof = srv.aof.enabled();
    if aof {
        let _ = crate::aof::set_enabled(srv, false);
    }
    let res = install_snapshot(srv, gen, loaded, replid, offset);
    if aof {
        if let Err(e) = crate::aof::set_enabled(srv, true) {
            tracing::warn!(error = %e, "Failed enabling the AOF after successful master synchronization!");
        }
    }
    res
}

fn install_snapshot(
    srv: &Shared,
    gen: u64,
    loaded: crate::rdb_load::Loaded,
    replid: String,
    offset: i64,
) -> Result<(), LinkError> {
    let lazy = srv.config.read().flag("replica-lazy-flush");
    let mut all = LockSet::new();
    all.add_all();
    let now = unix_ms();
    let _applying = srv.upstream.apply_lock();
    srv.store.with_locked(&all, || {
        if !srv.upstream.current(gen) {
            return Err(LinkError::Superseded);
        }
        // Replicas of this server must sync again: its history changes.
        disconnect_replicas(srv);
        if lazy {
            crate::lazyfree::flush_all_async(&srv.store);
        } else {
            srv.store.flush_all();
        }
        crate::scripting::functions::install_all(srv, loaded.libraries);
        let n = loaded.keys.len();
        for k in loaded.keys {
            srv.store
                .db(k.db)
                .with_shard(&k.key, |s| s.set(&k.key, k.value, k.expire_at, now));
        }
        *srv.replid.lock() = replid;
        *srv.replid2.lock() = "0".repeat(40);
        srv.second_repl_offset.store(-1, Ordering::Relaxed);
        srv.repl.reset_offset(offset.max(0) as u64);
        // The new history, with the dataset it belongs to: kept even if
        // the link is cut before it streams.
        let up = &srv.upstream;
        up.offset.store(offset, Ordering::Relaxed);
        up.read_offset.store(offset, Ordering::Relaxed);
        up.stream_db.store(0, Ordering::Relaxed);
        up.history.store(true, Ordering::Relaxed);
        tracing::info!("MASTER <-> REPLICA sync: loaded {n} keys");
        Ok(())
    })
}
