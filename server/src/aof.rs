//! The append-only file: Redis 7.0's multi-part AOF, file for file.
//!
//! `dir/appenddirname` holds a *base* file (a snapshot: an RDB file when
//! `aof-use-rdb-preamble` is on, commands otherwise), *incr* files (the
//! propagation stream since that base) and the manifest
//! `<appendfilename>.manifest` naming them, in Redis's format, so either
//! server reads the other's directory (a Bloom filter's base is a value of
//! Ferrite's own module type, which Redis cannot load).
//!
//! Writes reach the file through [`crate::propagate::Propagator`]'s AOF
//! buffer, which records the same effects as the replication stream, in
//! the same order. The buffer is written to the incr file before any reply
//! leaves the server ([`before_reply`], as Redis writes in `beforeSleep`),
//! so a crashed process loses no acknowledged write; `appendfsync` decides
//! when the file is synced: with every write (`always`), once a second on a
//! thread of its own (`everysec`), or never (`no`).
//!
//! A rewrite (`BGREWRITEAOF`, enabling `appendonly` at run time, the
//! `auto-aof-rewrite-*` trigger) serializes the dataset with every shard
//! held and, at the same instant, sends later effects to a new incr file;
//! a thread writes the new base, then the manifest is replaced and the old
//! files are deleted. Without `fork()` the serialization pauses clients for
//! its duration, as a `BGSAVE` does here. A crash before the manifest
//! changes leaves the old base and every incr file, which load to the same
//! dataset.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrite_protocol::{parse_command, Limits, Parsed, ReplyBuf};
use ferrite_storage::{LockSet, Value, NO_EXPIRE};
use parking_lot::Mutex;
use thiserror::Error;

use crate::client::{Client, ClientHandle};
use crate::command::ctx::unix_ms;
use crate::propagate::encode;
use crate::shared::Shared;

/// Why loading, writing or rewriting the AOF failed.
#[derive(Debug, Error)]
pub enum AofError {
    #[error("Background append only file rewriting already in progress")]
    InProgress,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("Invalid AOF manifest file format (line {line}): {why}")]
    Manifest { line: usize, why: &'static str },
    #[error("Bad file format reading the append only file {0}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>")]
    Format(String),
    #[error("Unexpected end of file reading the append only file {0}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.")]
    Truncated(String),
    #[error("Fatal error: the truncated file is not the last file ({0})")]
    TruncatedNotLast(String),
    #[error("Unknown command '{cmd}' reading the append only file {file}")]
    UnknownCommand { cmd: String, file: String },
    #[error("Error reading the RDB base file {file}, AOF loading aborted: {source}")]
    Rdb {
        file: String,
        source: crate::rdb_load::LoadError,
    },
    #[error("Unable to obtain the AOF file {0} length. stat: No such file or directory")]
    Missing(String),
    /// A rewrite outlived the AOF it was for (`appendonly` switched).
    #[error("the AOF was switched during the rewrite")]
    Discarded,
    #[error(transparent)]
    Snapshot(#[from] crate::rdb::Incomplete),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AofError + 'a {
    move |source| AofError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// `appendfsync`, kept as a byte for the reply path.
const FSYNC_ALWAYS: u8 = 0;
const FSYNC_EVERYSEC: u8 = 1;
const FSYNC_NO: u8 = 2;

/// Elements per command in a command-format base (Redis's
/// `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_CMD: usize = 64;

/// Whether the AOF records: Redis's `aof_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Off,
    On,
    /// Enabled at run time: effects go to a temporary incr file until the
    /// first base is written (Redis's `AOF_WAIT_REWRITE`).
    WaitRewrite,
}

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileInfo {
    name: String,
    seq: i64,
    kind: u8,
}

/// The manifest: which files make up the AOF (Redis's `aofManifest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Manifest {
    base: Option<FileInfo>,
    history: Vec<FileInfo>,
    incr: Vec<FileInfo>,
    base_seq: i64,
    incr_seq: i64,
}

impl Manifest {
    /// Parses a manifest as `aofLoadManifestFromFile` does.
    fn parse(text: &str) -> Result<Manifest, AofError> {
        let mut m = Manifest::default();
        let mut max_seq = 0;
        let mut lines = 0;
        for (i, raw) in text.split_inclusive('\n').enumerate() {
            let line_no = i + 1;
            lines += 1;
            let bad = |why| AofError::Manifest { line: line_no, why };
            if raw.starts_with('#') {
                continue;
            }
            if !raw.ends_with('\n') {
                return Err(bad("The AOF manifest file contains too long line"));
            }
            let words: Vec<String> = ferrite_protocol::split_args(raw.trim().as_bytes())
                .ok_or_else(|| bad("Invalid AOF manifest file format"))?
                .into_iter()
                .map(|w| String::from_utf8_lossy(&w).into_owned())
                .collect();
            if words.len() < 6 || !words.len().is_multiple_of(2) {
                return Err(bad("Invalid AOF manifest file format"));
            }
            let (mut name, mut seq, mut kind) = (None, 0i64, 0u8);
            for kv in words.chunks(2) {
                match kv[0].to_ascii_lowercase().as_str() {
                    "file" => {
                        if kv[1].contains('/') {
                            return Err(bad("File can't be a path, just a filename"));
                        }
                        name = Some(kv[1].clone());
                    }
                    "seq" => seq = kv[1].parse().unwrap_or(0),
                    "type" => kind = kv[1].bytes().next().unwrap_or(0),
                    _ => {}
                }
            }
            let (Some(name), true, true) = (name, seq != 0, kind != 0) else {
                return Err(bad("Invalid AOF manifest file format"));
            };
            let info = FileInfo { name, seq, kind };
            match kind {
                b'b' => {
                    if m.base.is_some() {
                        return Err(bad("Found duplicate base file information"));
                    }
                    m.base_seq = seq;
                    m.base = Some(info);
                }
                b'h' => m.history.push(info),
                b'i' => {
                    if seq <= max_seq {
                        return Err(bad("Found a non-monotonic sequence number"));
                    }
                    max_seq = seq;
                    m.incr_seq = seq;
                    m.incr.push(info);
                }
                _ => return Err(bad("Unknown AOF file type")),
            }
        }
        if lines == 0 {
            return Err(AofError::Manifest {
                line: 0,
                why: "Found an empty AOF manifest",
            });
        }
        Ok(m)
    }

    /// The manifest's text: base, then history, then incr files.
    fn format(&self) -> String {
        let mut out = String::new();
        let all = self.base.iter().chain(&self.history).chain(&self.incr);
        for f in all {
            let name = repr(&f.name);
            out.push_str(&format!(
                "file {name} seq {} type {}\n",
                f.seq, f.kind as char
            ));
        }
        out
    }

    /// Names a new base and turns the old one into history
    /// (`getNewBaseFileNameAndMarkPreAsHistory`).
    fn new_base(&mut self, filename: &str, rdb: bool) -> String {
        if let Some(mut old) = self.base.take() {
            old.kind = b'h';
            self.history.insert(0, old);
        }
        self.base_seq += 1;
        let name = format!(
            "{filename}.{}.base.{}",
            self.base_seq,
            if rdb { "rdb" } else { "aof" }
        );
        self.base = Some(FileInfo {
            name: name.clone(),
            seq: self.base_seq,
            kind: b'b',
        });
        name
    }

    /// Names a new incr file (`getNewIncrAofName`).
    fn new_incr(&mut self, filename: &str) -> String {
        self.incr_seq += 1;
        let name = format!("{filename}.{}.incr.aof", self.incr_seq);
        self.incr.push(FileInfo {
            name: name.clone(),
            seq: self.incr_seq,
            kind: b'i',
        });
        name
    }

    /// Moves every incr file but the one being written (the last, when
    /// `keep_last`) to history (`markRewrittenIncrAofAsHistory`).
    fn retire_incrs(&mut self, keep_last: bool) {
        let keep = usize::from(keep_last && !self.incr.is_empty());
        let cut = self.incr.len() - keep;
        for mut f in self.incr.drain(..cut).rev() {
            f.kind = b'h';
            self.history.insert(0, f);
        }
    }
}

/// A file name as the manifest writes it: as is, or quoted with escapes
/// when it needs them (Redis's `sdsneedsrepr` / `sdscatrepr`).
fn repr(name: &str) -> String {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'\''));
    if plain && !name.is_empty() {
        return name.to_string();
    }
    crate::shared::repr(name.as_bytes())
}

/// Where the AOF lives.
struct Paths {
    dir: PathBuf,
    filename: String,
    /// A pre-7.0 single file, `dir/appendfilename`.
    old_style: PathBuf,
}

/// Whether history files are deleted (`aof-disable-auto-gc no`).
fn auto_gc(srv: &Shared) -> bool {
    !srv.config.read().flag("aof-disable-auto-gc")
}

fn paths(srv: &Shared) -> Paths {
    let c = srv.config.read();
    let dirname = c.value("appenddirname").to_string();
    Paths {
        dir: Path::new(&c.dir).join(dirname),
        filename: c.appendfilename.clone(),
        old_style: Path::new(&c.dir).join(&c.appendfilename),
    }
}

impl Paths {
    fn manifest(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest", self.filename))
    }

    fn temp_incr(&self) -> PathBuf {
        self.dir.join(format!("temp-{}.incr", self.filename))
    }

    fn temp_base(&self) -> PathBuf {
        self.dir
            .join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()))
    }
}

/// The file side, under one lock: writes, switches and the manifest.
struct Inner {
    state: State,
    /// Shared so the AOF thread can sync it without holding this lock
    /// (writes go on meanwhile, as with Redis's background fsync).
    file: Option<Arc<File>>,
    manifest: Manifest,
    /// Bytes taken from the buffer and not yet written (kept across a
    /// failed write, to be retried).
    pending: Vec<u8>,
    /// Size of the incr file being written.
    incr_size: u64,
    unsynced: bool,
    last_write_error: String,
    /// Bumped when the AOF is switched off or on, so a rewrite started
    /// before does not install its base.
    generation: u64,
    /// When a failing rewrite may be retried by the cron (Redis's
    /// `aofRewriteLimited`), and the delay after the next failure.
    retry_at_ms: i64,
    retry_delay_min: i64,
}

/// AOF state shared by the connections, the cron and the rewrite thread.
pub struct Aof {
    inner: Mutex<Inner>,
    /// How far (in [`crate::propagate::Propagator::aof_fed`] bytes) the
    /// file has been written, and synced. Both only grow.
    written: AtomicU64,
    synced: tokio::sync::watch::Sender<u64>,
    last_fsync_ms: AtomicI64,
    /// Someone is writing and syncing for everyone (`always`).
    syncing: AtomicBool,
    fsync: AtomicU8,
    pub rewrite_in_progress: AtomicBool,
    pub rewrite_scheduled: AtomicBool,
    rewrite_started_ms: AtomicI64,
    pub last_rewrite_time_sec: AtomicI64,
    pub last_rewrite_ok: AtomicBool,
    pub rewrites: AtomicU64,
    pub consecutive_failures: AtomicU64,
    /// `aof_last_write_status`: writes are refused with `-MISCONF` while
    /// the last write failed.
    pub last_write_ok: AtomicBool,
    current_size: AtomicU64,
    base_size: AtomicU64,
}

impl Default for Aof {
    fn default() -> Self {
        Aof {
            inner: Mutex::new(Inner {
                state: State::Off,
                file: None,
                manifest: Manifest::default(),
                pending: Vec::new(),
                incr_size: 0,
                unsynced: false,
                last_write_error: String::new(),
                generation: 0,
                retry_at_ms: 0,
                retry_delay_min: 0,
            }),
            written: AtomicU64::new(0),
            synced: tokio::sync::watch::channel(0).0,
            last_fsync_ms: AtomicI64::new(0),
            syncing: AtomicBool::new(false),
            fsync: AtomicU8::new(FSYNC_EVERYSEC),
            rewrite_in_progress: AtomicBool::new(false),
            rewrite_scheduled: AtomicBool::new(false),
            rewrite_started_ms: AtomicI64::new(0),
            last_rewrite_time_sec: AtomicI64::new(-1),
            last_rewrite_ok: AtomicBool::new(true),
            rewrites: AtomicU64::new(0),
            consecutive_failures: AtomicU64::new(0),
            last_write_ok: AtomicBool::new(true),
            current_size: AtomicU64::new(0),
            base_size: AtomicU64::new(0),
        }
    }
}

impl Aof {
    /// Whether `appendonly` is in effect (Redis's `aof_state != AOF_OFF`).
    pub fn enabled(&self) -> bool {
        self.inner.lock().state != State::Off
    }
}

/// The `-MISCONF` text for writes while the AOF cannot be written.
pub fn write_error(srv: &Shared) -> String {
    format!(
        "MISCONF Errors writing to the AOF file: {}",
        srv.aof.inner.lock().last_write_error
    )
}

/// Follows `appendfsync` and `aof-timestamp-enabled` (called from
/// `Shared::apply_config`, which holds the configuration).
pub fn apply_config(srv: &Shared, appendfsync: &str, timestamps: bool) {
    let v = match appendfsync {
        "always" => FSYNC_ALWAYS,
        "no" => FSYNC_NO,
        _ => FSYNC_EVERYSEC,
    };
    srv.aof.fsync.store(v, Ordering::Relaxed);
    srv.repl.set_aof_timestamps(timestamps);
    // Replies waiting for an `always` sync look at the policy again.
    srv.aof.synced.send_modify(|_| {});
}

impl Aof {
    /// Nothing is owed to the file: what was fed so far is written and
    /// synced (the AOF was just switched on, off, or to a new file).
    fn settle(&self, fed: u64) {
        self.written.fetch_max(fed, Ordering::AcqRel);
        self.synced.send_if_modified(|s| {
            let grew = fed > *s;
            *s = (*s).max(fed);
            grew
        });
    }
}

/// Before a reply is written: the effects fed so far reach the file first
/// (a `write`, so a crashed process loses no acknowledged write), and with
/// `appendfsync always` the disk. Syncs are grouped, as Redis syncs once
/// per event-loop turn: the reply first lets this worker's other ready
/// connections run (they feed too), then one waiting connection at a time
/// writes and syncs everything fed so far on its own thread while the
/// others wait for a sync that covers them, or lead the next. Measured on
/// 2 cores, `SET` under `always`: syncing per connection 0.10 of Redis's
/// rate, handing every sync to the AOF thread 0.79, this 1.07. One relaxed
/// load while the AOF is off.
#[inline]
pub async fn before_reply(srv: &Shared, handle: &crate::client::ClientHandle) {
    if !srv.repl.aof_on() {
        return;
    }
    let aof = &srv.aof;
    let fed = srv.repl.aof_fed();
    if aof.fsync.load(Ordering::Relaxed) != FSYNC_ALWAYS {
        if fed > aof.written.load(Ordering::Acquire) {
            flush(srv, false);
        }
        return;
    }
    if *aof.synced.borrow() >= fed {
        return;
    }
    // This worker's other ready connections feed first, so one sync
    // covers them all.
    tokio::task::yield_now().await;
    let done = |s: u64| {
        s >= fed
            || !srv.repl.aof_on()
            || aof.fsync.load(Ordering::Relaxed) != FSYNC_ALWAYS
            || srv.shutting_down.load(Ordering::Relaxed)
    };
    let mut rx = aof.synced.subscribe();
    loop {
        if done(*rx.borrow_and_update()) {
            return;
        }
        if !aof.syncing.swap(true, Ordering::AcqRel) {
            sync_unlocked(srv);
            aof.syncing.store(false, Ordering::Release);
            aof.synced.send_modify(|_| {});
            if done(*rx.borrow_and_update()) {
                return;
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = handle.on_kill() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Writes the AOF buffer to the incr file, and syncs it when `sync`.
pub fn flush(srv: &Shared, sync: bool) {
    let mut inner = srv.aof.inner.lock();
    flush_locked(srv, &mut inner, sync);
}

/// Writes and syncs, the sync without the lock (the AOF thread), then
/// tells waiting replies how far the disk has it.
fn sync_unlocked(srv: &Shared) {
    let aof = &srv.aof;
    let (file, upto, clean) = {
        let mut inner = aof.inner.lock();
        flush_locked(srv, &mut inner, false);
        if !inner.unsynced {
            return;
        }
        inner.unsynced = false;
        let clean = inner.pending.is_empty();
        (
            inner.file.clone(),
            aof.written.load(Ordering::Acquire),
            clean,
        )
    };
    let Some(file) = file else { return };
    match file.sync_data() {
        Ok(()) => {
            aof.last_fsync_ms.store(unix_ms(), Ordering::Relaxed);
            if clean {
                aof.last_write_ok.store(true, Ordering::Relaxed);
            }
            aof.settle(upto);
        }
        Err(e) => {
            let mut inner = aof.inner.lock();
            inner.unsynced = true;
            io_failed(aof, &mut inner, "Can't persist the AOF file (fsync)", &e);
        }
    }
}

/// Records a failed write or sync: writes are refused with `-MISCONF`
/// until one succeeds (Redis's `aof_last_write_status` and
/// `aof_bio_fsync_status`).
fn io_failed(aof: &Aof, inner: &mut Inner, what: &str, e: &io::Error) {
    if aof.last_write_ok.swap(false, Ordering::Relaxed) {
        tracing::warn!(error = %e, "{what}");
    }
    // strerror's text, as Redis's reply has it.
    let text = e.to_string();
    inner.last_write_error = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
}

fn flush_locked(srv: &Shared, inner: &mut Inner, sync: bool) {
    let aof = &srv.aof;
    let fed = srv.repl.take_aof(&mut inner.pending, false);
    if !inner.pending.is_empty() {
        let Some(file) = inner.file.clone() else {
            inner.pending.clear();
            aof.written.fetch_max(fed, Ordering::AcqRel);
            aof.settle(fed);
            return;
        };
        // Every file is opened for appending, so whatever a failed write
        // left is kept and the retry appends the rest after it (Redis
        // drops the written prefix from its buffer the same way).
        let mut done = 0;
        let res = loop {
            if done == inner.pending.len() {
                break Ok(());
            }
            match (&*file).write(&inner.pending[done..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        inner.pending.drain(..done);
        inner.incr_size += done as u64;
        aof.current_size.fetch_add(done as u64, Ordering::Relaxed);
        if done > 0 {
            inner.unsynced = true;
        }
        if let Err(e) = res {
            io_failed(aof, inner, "Error writing to the AOF file", &e);
            return;
        }
        if !aof.last_write_ok.swap(true, Ordering::Relaxed) {
            tracing::warn!("AOF write error looks solved, Redis can write again.");
        }
    }
    aof.written.fetch_max(fed, Ordering::AcqRel);
    if inner.file.is_none() {
        aof.settle(fed);
        return;
    }
    if sync && inner.unsynced {
        if let Some(f) = inner.file.clone() {
            if let Err(e) = f.sync_data() {
                io_failed(aof, inner, "Can't persist the AOF file (fsync)", &e);
                return;
            }
        }
        inner.unsynced = false;
        aof.last_fsync_ms.store(unix_ms(), Ordering::Relaxed);
        aof.settle(fed);
    }
}

/// The AOF thread: writes what the reply path did not (expirations,
/// evictions) every 100 ms, and syncs once a second under `everysec`, or
/// every 100 ms under `always` (what no reply waited for).
pub fn background(srv: Arc<Shared>) {
    loop {
        std::thread::park_timeout(Duration::from_millis(100));
        if srv.shutting_down.load(Ordering::Relaxed) {
            // Replies still waiting for a sync see the shutdown.
            srv.aof.synced.send_modify(|_| {});
            return;
        }
        if !srv.repl.aof_on() {
            continue;
        }
        let aof = &srv.aof;
        let due = unix_ms() - aof.last_fsync_ms.load(Ordering::Relaxed) >= 1000;
        match aof.fsync.load(Ordering::Relaxed) {
            FSYNC_ALWAYS => {
                if !aof.syncing.swap(true, Ordering::AcqRel) {
                    sync_unlocked(&srv);
                    aof.syncing.store(false, Ordering::Release);
                    aof.synced.send_modify(|_| {});
                }
            }
            FSYNC_EVERYSEC if due => sync_unlocked(&srv),
            _ => flush(&srv, false),
        }
    }
}

/// At shutdown: everything written and synced (Redis's
/// `prepareForShutdown`).
pub fn shutdown(srv: &Shared) {
    // A running rewrite ends first: when it writes the first base after
    // `CONFIG SET appendonly yes`, the files only load once it has (Redis
    // refuses to exit then, "Writing initial AOF, can't exit").
    while srv.aof.rewrite_in_progress.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(10));
    }
    if srv.repl.aof_on() {
        tracing::info!("Calling fsync() on the AOF file.");
        flush(srv, true);
    }
}

/// Creates (or empties) a file and opens it for appending.
fn open_empty(path: &Path) -> Result<File, AofError> {
    File::create(path).map_err(io_err("Can't open the append-only file", path))?;
    open_append(path)
}

/// Opens (creating) a file for appending.
fn open_append(path: &Path) -> Result<File, AofError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(io_err("Can't open the append-only file", path))
}

/// Writes the manifest through a synced temporary file and a rename, then
/// syncs the directory (`writeAofManifestFile`).
fn persist_manifest(p: &Paths, m: &Manifest) -> Result<(), AofError> {
    let path = p.manifest();
    let tmp = p.dir.join(format!("temp-{}.manifest", p.filename));
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(m.format().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(&p.dir)?.sync_all()
    })();
    res.map_err(io_err("Can't write the AOF manifest file", &path))
}

/// Deletes history files, unless `aof-disable-auto-gc` (`aofDelHistoryFiles`).
/// The manifest then no longer lists them; a failure only leaves files
/// behind, so it is logged, as Redis ignores it.
fn delete_history(gc: bool, p: &Paths, m: &mut Manifest) {
    if m.history.is_empty() || !gc {
        return;
    }
    let gone: Vec<FileInfo> = m.history.drain(..).collect();
    if let Err(e) = persist_manifest(p, m) {
        tracing::warn!(error = %e, "Could not drop the history files from the manifest");
        m.history = gone;
        return;
    }
    for f in gone {
        tracing::info!("Removing the history file {} in the background", f.name);
        let _ = std::fs::remove_file(p.dir.join(&f.name));
    }
}

/// Reads the manifest if the AOF directory has one.
fn read_manifest(p: &Paths) -> Result<Option<Manifest>, AofError> {
    let path = p.manifest();
    match std::fs::read(&path) {
        Ok(b) => Manifest::parse(&String::from_utf8_lossy(&b)).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("can't open the AOF manifest file", &path)(e)),
    }
}

/// Why the start-up load failed.
#[derive(Debug, Error)]
pub enum StartupError {
    #[error(transparent)]
    Aof(#[from] AofError),
    #[error(transparent)]
    Rdb(#[from] crate::persist::PersistError),
}

/// Start-up (Redis's `loadDataFromDisk` and `aofOpenIfNeededOnServerStart`):
/// with `appendonly` on, the AOF alone is loaded (the RDB file is not read,
/// even when no AOF exists yet, as in Redis) and then opened for
/// appending; otherwise the RDB file. The manifest is read either way, so
/// turning the AOF on later continues its sequence numbers.
pub fn load_data_at_startup(srv: &Shared) -> Result<(), StartupError> {
    if !srv.config.read().appendonly {
        // A bad manifest stops the start either way, as in Redis.
        srv.aof.inner.lock().manifest = read_manifest(&paths(srv))?.unwrap_or_default();
        return Ok(crate::persist::load_at_startup(srv)?);
    }
    load_at_startup(srv)?;
    open_on_start(srv)?;
    Ok(())
}

/// Loads the AOF instead of the RDB file: the base, then each incr file. A
/// pre-7.0 `appendfilename` in `dir` is moved into the directory first
/// (`aofUpgradePrepare`). Returns whether an AOF existed.
fn load_at_startup(srv: &Shared) -> Result<bool, AofError> {
    let p = paths(srv);
    let mut m = read_manifest(&p)?.unwrap_or_default();
    if p.old_style.is_file() {
        let only_old = m.incr.is_empty()
            && m.base
                .as_ref()
                .is_none_or(|b| b.name == p.filename && !p.dir.join(&p.filename).exists());
        if !p.dir.is_dir() || only_old {
            upgrade(&p, &mut m)?;
        }
    }
    let found = m.base.is_some() || !m.incr.is_empty();
    if found {
        let start = std::time::Instant::now();
        let truncated_ok = srv.config.read().flag("aof-load-truncated");
        load_files(srv, &p, &m, truncated_ok)?;
        tracing::info!(
            "DB loaded from append only file: {:.3} seconds",
            start.elapsed().as_secs_f64()
        );
    }
    srv.aof.inner.lock().manifest = m;
    Ok(found)
}

/// Moves an old single-file AOF into the directory as its base.
fn upgrade(p: &Paths, m: &mut Manifest) -> Result<(), AofError> {
    std::fs::create_dir_all(&p.dir)
        .map_err(io_err("Can't open or create append-only dir", &p.dir))?;
    *m = Manifest {
        base: Some(FileInfo {
            name: p.filename.clone(),
            seq: 1,
            kind: b'b',
        }),
        base_seq: 1,
        ..Manifest::default()
    };
    persist_manifest(p, m)?;
    std::fs::rename(&p.old_style, p.dir.join(&p.filename)).map_err(io_err(
        "Error trying to move the old AOF file",
        &p.old_style,
    ))?;
    tracing::info!(
        "Successfully migrated an old-style AOF file ({}) into the AOF directory ({}).",
        p.filename,
        p.dir.display()
    );
    Ok(())
}

/// Replays the manifest's files into the (empty) dataset, every shard
/// held and propagation off.
/// Ends the propagator's loading mode however the load ends.
struct LoadingGuard<'a>(&'a crate::propagate::Propagator);

impl Drop for LoadingGuard<'_> {
    fn drop(&mut self) {
        self.0.set_loading(false);
    }
}

fn load_files(srv: &Shared, p: &Paths, m: &Manifest, truncated_ok: bool) -> Result<(), AofError> {
    let files: Vec<&FileInfo> = m.base.iter().chain(&m.incr).collect();
    let mut total = 0u64;
    for f in &files {
        let path = p.dir.join(&f.name);
        match std::fs::metadata(&path) {
            Ok(md) => total += md.len(),
            Err(_) => return Err(AofError::Missing(f.name.clone())),
        }
    }
    if total == 0 {
        return Ok(());
    }
    let mut all = LockSet::new();
    all.add_all();
    let delay = crate::rdb_load::key_load_delay(srv);
    srv.repl.set_loading(true);
    let guard = LoadingGuard(&srv.repl);
    let res = srv.store.with_locked(&all, || {
        let mut base_size = 0;
        for (i, f) in files.iter().enumerate() {
            let last = i + 1 == files.len();
            let path = p.dir.join(&f.name);
            load_file(srv, &path, &f.name, last, truncated_ok, delay)?;
            if f.kind == b'b' {
                base_size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            }
        }
        Ok::<u64, AofError>(base_size)
    });
    drop(guard);
    let base_size = res?;
    srv.aof.current_size.store(total, Ordering::Relaxed);
    srv.aof.base_size.store(base_size, Ordering::Relaxed);
    // What was just loaded is what is on disk.
    srv.persist.dirty_at_save.store(
        srv.store.stats().dirty.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    Ok(())
}

/// Loads one file: an RDB snapshot if it starts like one, then commands
/// run as a client that no check refuses (`loadSingleAppendOnlyFile`).
fn load_file(
    srv: &Shared,
    path: &Path,
    name: &str,
    last: bool,
    truncated_ok: bool,
    delay: i64,
) -> Result<(), AofError> {
    let data = std::fs::read(path).map_err(io_err("can't open the append log file", path))?;
    if data.is_empty() {
        return Ok(());
    }
    let mut at = 0;
    if data.starts_with(b"REDIS") {
        let loaded = crate::rdb_load::load_for(srv, &data).map_err(|source| AofError::Rdb {
            file: name.to_string(),
            source,
        })?;
        at = loaded.consumed;
        crate::scripting::functions::install_all(srv, loaded.libraries);
        let now = unix_ms();
        for k in loaded.keys {
            srv.store
                .db(k.db)
                .with_shard(&k.key, |s| s.set(&k.key, k.value, k.expire_at, now));
        }
    }
    let handle = Arc::new(ClientHandle::new(
        0,
        String::new(),
        String::new(),
        -1,
        unix_ms(),
    ));
    // Not paused by `CLIENT PAUSE`, as Redis runs AOF commands directly.
    handle.replica.store(true, Ordering::Relaxed);
    let mut client = Client::new(handle, true);
    client.primary = true;
    client.deny_blocking = true;
    let mut out = ReplyBuf::new();
    let limits = Limits {
        max_bulk_len: i64::MAX,
        authenticated: true,
    };
    let mut buf = BytesMut::from(&data[at..]);
    let mut argv: Vec<Bytes> = Vec::with_capacity(8);
    let (mut valid_up_to, mut valid_before_multi) = (at, at);
    let mut truncated = false;
    ferrite_storage::set_applying_primary(true);
    let res = loop {
        if buf.is_empty() {
            break Ok(());
        }
        if buf[0] == b'#' {
            // An annotation (`aof-timestamp-enabled`).
            match buf.iter().position(|&b| b == b'\n') {
                Some(n) => {
                    let _ = buf.split_to(n + 1);
                    continue;
                }
                None => {
                    truncated = true;
                    break Ok(());
                }
            }
        }
        if buf[0] != b'*' {
            break Err(AofError::Format(name.to_string()));
        }
        match parse_command(&mut buf, &mut argv, &limits) {
            Ok(Parsed::Command) => {}
            Ok(Parsed::Incomplete { .. }) => {
                truncated = true;
                break Ok(());
            }
            Err(_) => break Err(AofError::Format(name.to_string())),
        }
        if argv.is_empty() {
            break Err(AofError::Format(name.to_string()));
        }
        if crate::command::rename::lookup_internal(&argv[0]).is_none() {
            break Err(AofError::UnknownCommand {
                cmd: String::from_utf8_lossy(&argv[0]).into_owned(),
                file: name.to_string(),
            });
        }
        if argv[0].eq_ignore_ascii_case(b"multi") {
            valid_before_multi = valid_up_to;
        }
        crate::command::dispatch::execute(srv, &mut client, &mut out, &argv);
        out.buf.clear();
        crate::rdb_load::debug_delay(delay);
        valid_up_to = data.len() - buf.len();
    };
    ferrite_storage::set_applying_primary(false);
    res?;
    if client.multi.is_some() {
        // A transaction without its EXEC is cut off whole.
        tracing::warn!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
        valid_up_to = valid_before_multi;
        truncated = true;
    }
    if !truncated {
        return Ok(());
    }
    if !truncated_ok {
        return Err(AofError::Truncated(name.to_string()));
    }
    if !last {
        return Err(AofError::TruncatedNotLast(name.to_string()));
    }
    tracing::warn!("!!! Warning: short read while loading the AOF file {name}!!!");
    tracing::warn!("!!! Truncating the AOF {name} at offset {valid_up_to} !!!");
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("Error truncating the AOF file", path))?;
    f.set_len(valid_up_to as u64)
        .map_err(io_err("Error truncating the AOF file", path))?;
    tracing::warn!("AOF {name} loaded anyway because aof-load-truncated is enabled");
    Ok(())
}

/// After the start-up load, with `appendonly` on: a base for an empty
/// start, the last incr file opened for appending, the manifest on disk
/// (`aofOpenIfNeededOnServerStart`), then recording.
fn open_on_start(srv: &Shared) -> Result<(), AofError> {
    let p = paths(srv);
    std::fs::create_dir_all(&p.dir)
        .map_err(io_err("Can't open or create append-only dir", &p.dir))?;
    let aof = &srv.aof;
    // Nothing else runs yet; the lock is taken after the snapshot anyway,
    // in the usual order (shards before it).
    let mut m = aof.inner.lock().manifest.clone();
    if m.base.is_none() && m.incr.is_empty() {
        let rdb = srv.config.read().flag("aof-use-rdb-preamble");
        let name = m.new_base(&p.filename, rdb);
        let ts = srv.config.read().flag("aof-timestamp-enabled");
        let (base, _) = base_snapshot(srv, rdb, ts)?;
        write_synced(&p.dir.join(&name), &base)?;
        aof.base_size.store(base.len() as u64, Ordering::Relaxed);
        aof.current_size.store(base.len() as u64, Ordering::Relaxed);
        tracing::info!("Creating AOF base file {name} on server start");
    }
    let name = match m.incr.last() {
        Some(f) => f.name.clone(),
        None => m.new_incr(&p.filename),
    };
    let path = p.dir.join(&name);
    let file = open_append(&path)?;
    persist_manifest(&p, &m)?;
    let mut inner = aof.inner.lock();
    inner.incr_size = file.metadata().map(|md| md.len()).unwrap_or(0);
    inner.file = Some(Arc::new(file));
    inner.state = State::On;
    aof.last_fsync_ms.store(unix_ms(), Ordering::Relaxed);
    delete_history(auto_gc(srv), &p, &mut m);
    inner.manifest = m;
    srv.repl.set_aof(true);
    aof.settle(srv.repl.aof_fed());
    tracing::info!("Opening AOF incr file {name} on server start");
    Ok(())
}

/// Writes a whole file and syncs it.
fn write_synced(path: &Path, data: &[u8]) -> Result<(), AofError> {
    let res = (|| {
        let mut f = File::create(path)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    res.map_err(io_err("Error writing the AOF base file", path))
}

/// Serializes the dataset as a base file: an RDB file, or commands.
/// Returns it with the time it stands for.
fn base_snapshot(srv: &Shared, rdb: bool, ts: bool) -> Result<(Vec<u8>, i64), AofError> {
    let bufs = rdb_buffers(srv, rdb);
    let mut all = LockSet::new();
    all.add_all();
    let (base, now) = srv.store.with_locked(&all, || {
        crate::scripting::functions::with_library_codes(srv, |libs| base_bytes(srv, libs, bufs, ts))
    });
    Ok((base.finish()?, now))
}

/// The shard buffers of an RDB base ([`crate::rdb::buffers`]) and
/// `rdbcompression`, taken before the shards are.
fn rdb_buffers(srv: &Shared, rdb: bool) -> Option<(crate::rdb::Buffers, bool)> {
    rdb.then(|| {
        let bufs = crate::rdb::buffers(
            &srv.store,
            srv.store.stats().used_memory.load(Ordering::Relaxed).max(0) as u64,
        );
        (bufs, srv.config.read().flag("rdbcompression"))
    })
}

/// A base as taken under the shard locks: an RDB snapshot armed then and
/// collected after ([`crate::rdb::arm`]), or commands.
enum BaseBytes {
    Rdb(crate::rdb::Pending),
    Commands(Vec<u8>),
}

impl BaseBytes {
    /// The file's bytes.
    fn finish(self) -> Result<Vec<u8>, AofError> {
        match self {
            BaseBytes::Rdb(p) => Ok(p.collect()?.seal()),
            BaseBytes::Commands(v) => Ok(v),
        }
    }
}

/// The base's bytes; the caller holds every shard and the libraries, and
/// read the configuration (`aof-use-rdb-preamble`, `ts`:
/// `aof-timestamp-enabled`) and made `bufs` (`Some` for an RDB base)
/// before taking them.
fn base_bytes(
    srv: &Shared,
    libraries: &[Bytes],
    rdb: Option<(crate::rdb::Buffers, bool)>,
    ts: bool,
) -> (BaseBytes, i64) {
    let now = unix_ms();
    if let Some((bufs, compress)) = rdb {
        let used = srv.store.stats().used_memory.load(Ordering::Relaxed).max(0) as u64;
        let file = crate::rdb::arm(&srv.store, bufs, compress, now, used, libraries, None);
        return (BaseBytes::Rdb(file), now);
    }
    (
        BaseBytes::Commands(command_base(srv, libraries, now, ts)),
        now,
    )
}

/// A command-format base (`rewriteAppendOnlyFileRio`): `FUNCTION LOAD`
/// per library, then per database a `SELECT` and each key's commands.
fn command_base(srv: &Shared, libraries: &[Bytes], now: i64, ts: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if ts {
        out.extend_from_slice(format!("#TS:{}\r\n", now / 1000).as_bytes());
    }
    for code in libraries {
        encode(&mut out, &[b"FUNCTION", b"LOAD", code]);
    }
    let mut tmp = itoa::Buffer::new();
    for d in 0..srv.store.db_count() {
        let db = srv.store.db(d);
        let mut selected = false;
        for i in 0..db.shard_count() {
            db.with_shard_at(i, |s| {
                for (key, e) in s.iter() {
                    if e.expire_at != NO_EXPIRE && e.expire_at <= now {
                        continue;
                    }
                    if !selected {
                        encode(&mut out, &[b"SELECT", tmp.format(d).as_bytes()]);
                        selected = true;
                    }
                    rewrite_value(&mut out, key, &e.value);
                    if e.expire_at != NO_EXPIRE {
                        let at = itoa::Buffer::new().format(e.expire_at).to_string();
                        encode(&mut out, &[b"PEXPIREAT", key, at.as_bytes()]);
                    }
                }
            });
        }
    }
    out
}

/// Emits `head key` followed by `items` (each a run of arguments), at most
/// [`ITEMS_PER_CMD`] items per command, as Redis's `rewrite*Object`.
fn batched(out: &mut Vec<u8>, head: &[u8], key: &[u8], items: impl Iterator<Item = Vec<Vec<u8>>>) {
    let mut args: Vec<Vec<u8>> = Vec::new();
    let mut n = 0;
    let mut emit = |args: &mut Vec<Vec<u8>>| {
        let mut v: Vec<&[u8]> = vec![head, key];
        v.extend(args.iter().map(|a| &a[..]));
        encode(out, &v);
        args.clear();
    };
    for item in items {
        args.extend(item);
        n += 1;
        if n == ITEMS_PER_CMD {
            emit(&mut args);
            n = 0;
        }
    }
    if n > 0 {
        emit(&mut args);
    }
}

/// One key's commands in a command-format base. Streams and Bloom filters,
/// whose exact state (consumer groups, pending entries, sub-filters) has no
/// short command form here, are written as `RESTORE` with their `DUMP`
/// payload, which rebuilds them exactly.
fn rewrite_value(out: &mut Vec<u8>, key: &[u8], value: &Value) {
    match value {
        Value::Str { bytes, .. } => {
            encode(out, &[b"SET", key, bytes]);
        }
        Value::List(l) => batched(out, b"RPUSH", key, l.iter().map(|e| vec![e.to_vec()])),
        Value::Set(s) => batched(
            out,
            b"SADD",
            key,
            s.iter().map(|m| vec![m.with_bytes(|b| b.to_vec())]),
        ),
        Value::Hash(h) => batched(
            out,
            b"HMSET",
            key,
            h.iter().map(|(f, v)| vec![f.to_vec(), v.to_vec()]),
        ),
        Value::ZSet(z) => batched(
            out,
            b"ZADD",
            key,
            z.iter().map(|(m, score)| {
                let mut s = Vec::new();
                ferrite_protocol::number::format_double(score, &mut s);
                vec![s, m.to_vec()]
            }),
        ),
        Value::Stream(_) | Value::Bloom(_) => {
            // Raw: the base is read by this server or Redis, both fine
            // with either form, and holds every shard meanwhile.
            let payload = crate::commands::dump::dump_payload(value, false);
            encode(out, &[b"RESTORE", key, b"0", &payload]);
        }
    }
}

/// What a rewrite hands its thread.
struct Job {
    /// Sealed on the rewrite thread.
    base: BaseBytes,
    rdb: bool,
    generation: u64,
}

/// Starts a rewrite: the base serialized and, at the same instant under
/// every shard, later effects sent to a new incr file (a temporary one
/// when the AOF is being switched on); the base is written on a thread of
/// its own (`rewriteAppendOnlyFileBackground`).
fn start_rewrite(srv: &Shared) -> Result<(), AofError> {
    let aof = &srv.aof;
    if aof.rewrite_in_progress.swap(true, Ordering::AcqRel) {
        return Err(AofError::InProgress);
    }
    aof.rewrite_scheduled.store(false, Ordering::Relaxed);
    aof.rewrite_started_ms.store(unix_ms(), Ordering::Relaxed);
    // Counted when started, as Redis's `stat_aof_rewrites`.
    aof.rewrites.fetch_add(1, Ordering::Relaxed);
    let p = paths(srv);
    let rdb = srv.config.read().flag("aof-use-rdb-preamble");
    let ts = srv.config.read().flag("aof-timestamp-enabled");
    let bufs = rdb_buffers(srv, rdb);
    let mut all = LockSet::new();
    all.add_all();
    let job = srv.store.with_locked(&all, || {
        crate::scripting::functions::with_library_codes(srv, |libs| {
            let mut inner = aof.inner.lock();
            std::fs::create_dir_all(&p.dir)
                .map_err(io_err("Can't open or create append-only dir", &p.dir))?;
            switch_incr(srv, &p, &mut inner)?;
            let (base, _) = base_bytes(srv, libs, bufs, ts);
            Ok(Job {
                base,
                rdb,
                generation: inner.generation,
            })
        })
    });
    let job = match job {
        Ok(j) => j,
        Err(e) => {
            rewrite_failed(aof, &p.temp_incr());
            return Err(e);
        }
    };
    tracing::info!("Background append only file rewriting started");
    let aof2 = srv.aof.clone();
    let gc = auto_gc(srv);
    let spawned = std::thread::Builder::new()
        .name("ferrite-aofrw".into())
        .spawn(move || finish_rewrite(&aof2, p, job, gc));
    if let Err(e) = spawned {
        rewrite_failed(aof, &paths(srv).temp_incr());
        return Err(AofError::Io {
            what: "Can't start the rewrite thread",
            path: PathBuf::new(),
            source: e,
        });
    }
    Ok(())
}

/// Under every shard: what was fed so far goes to the current file, and
/// later effects to a new one (`openNewIncrAofForAppend`).
fn switch_incr(srv: &Shared, p: &Paths, inner: &mut Inner) -> Result<(), AofError> {
    match inner.state {
        State::Off => Ok(()),
        State::WaitRewrite => {
            // A retry after a failed first rewrite: the temporary file
            // starts again with the new snapshot.
            let file = open_empty(&p.temp_incr())?;
            let fed = srv.repl.take_aof(&mut Vec::new(), true);
            inner.pending.clear();
            inner.file = Some(Arc::new(file));
            inner.incr_size = 0;
            srv.aof.settle(fed);
            Ok(())
        }
        State::On => {
            flush_locked(
                srv,
                inner,
                srv.aof.fsync.load(Ordering::Relaxed) != FSYNC_NO,
            );
            let mut m = inner.manifest.clone();
            let name = m.new_incr(&p.filename);
            let path = p.dir.join(&name);
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io_err("Can't open the append-only file", &path))?;
            persist_manifest(p, &m)?;
            tracing::info!("Creating AOF incr file {name} on background rewrite");
            // Bytes a failed write left behind are dropped: their effects
            // are in the base about to be written, and appending them to
            // the new file would apply them twice. (Should that base fail
            // too, they are lost: the one case where a write error loses
            // acknowledged writes.) The new file owes nothing, so writes
            // are accepted again.
            inner.pending.clear();
            let fed = srv.repl.take_aof(&mut Vec::new(), true);
            srv.aof.last_write_ok.store(true, Ordering::Relaxed);
            if let Some(old) = inner.file.replace(Arc::new(file)) {
                let _ = old.sync_data();
            }
            inner.manifest = m;
            inner.incr_size = 0;
            inner.unsynced = false;
            srv.aof.settle(fed);
            Ok(())
        }
    }
}

/// The rewrite thread: writes the base, then installs it in the manifest.
fn finish_rewrite(aof: &Aof, p: Paths, job: Job, gc: bool) {
    let tmp = p.temp_base();
    let res = job.base.finish().and_then(|base| {
        write_synced(&tmp, &base)?;
        let mut inner = aof.inner.lock();
        if inner.generation != job.generation {
            return Err(AofError::Discarded);
        }
        let mut m = inner.manifest.clone();
        let name = m.new_base(&p.filename, job.rdb);
        std::fs::rename(&tmp, p.dir.join(&name)).map_err(io_err(
            "Error trying to rename the temporary AOF base file",
            &tmp,
        ))?;
        if inner.state == State::WaitRewrite {
            // The temporary incr file becomes the first incr file.
            let incr = m.new_incr(&p.filename);
            std::fs::rename(p.temp_incr(), p.dir.join(&incr)).map_err(io_err(
                "Error trying to rename the temporary AOF incr file",
                &p.temp_incr(),
            ))?;
        }
        m.retire_incrs(inner.state != State::Off);
        persist_manifest(&p, &m)?;
        // From here on the files on disk are the new ones.
        inner.manifest = m.clone();
        if inner.state == State::WaitRewrite {
            inner.state = State::On;
            tracing::info!("Background AOF rewrite finished successfully; the AOF is on");
        }
        let size = base.len() as u64 + inner.incr_size;
        aof.base_size.store(size, Ordering::Relaxed);
        aof.current_size.store(size, Ordering::Relaxed);
        inner.retry_delay_min = 0;
        drop(inner);
        // History files go without the lock; the manifest is updated
        // under it, from the latest state.
        if gc && !m.history.is_empty() {
            let mut inner = aof.inner.lock();
            let mut latest = inner.manifest.clone();
            delete_history(gc, &p, &mut latest);
            inner.manifest = latest;
        }
        Ok(())
    });
    let took = (unix_ms() - aof.rewrite_started_ms.load(Ordering::Relaxed)) / 1000;
    aof.last_rewrite_time_sec.store(took, Ordering::Relaxed);
    match res {
        Err(AofError::Discarded) => {
            // Killed by an `appendonly` switch, as Redis kills its child:
            // not a failure.
            let _ = std::fs::remove_file(&tmp);
            tracing::info!("Background AOF rewrite discarded: the AOF was switched meanwhile");
            aof.rewrite_in_progress.store(false, Ordering::Release);
        }
        Ok(()) => {
            aof.consecutive_failures.store(0, Ordering::Relaxed);
            aof.last_rewrite_ok.store(true, Ordering::Relaxed);
            tracing::info!("Background AOF rewrite terminated with success");
            aof.rewrite_in_progress.store(false, Ordering::Release);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(error = %e, "Background AOF rewrite terminated with error");
            rewrite_failed(aof, &p.temp_incr());
        }
    }
}

/// Records a failed rewrite; while the AOF waits for its first base, the
/// cron tries again, later after each failure from the third on
/// (`aofRewriteLimited`: 1, 2, 4 ... 60 minutes).
fn rewrite_failed(aof: &Aof, temp_incr: &Path) {
    let n = aof.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
    aof.last_rewrite_ok.store(false, Ordering::Relaxed);
    let mut inner = aof.inner.lock();
    if n >= 3 {
        inner.retry_delay_min = (inner.retry_delay_min * 2).clamp(1, 60);
        inner.retry_at_ms = unix_ms() + inner.retry_delay_min * 60_000;
        tracing::warn!(
            "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in {} minutes",
            inner.retry_delay_min
        );
    }
    if inner.state == State::WaitRewrite {
        // What the temporary incr file holds is in the next rewrite's
        // base; that rewrite starts a new one.
        tracing::info!(
            "Removing the temp incr aof file {} in the background",
            temp_incr.display()
        );
        let _ = std::fs::remove_file(temp_incr);
        aof.rewrite_scheduled.store(true, Ordering::Relaxed);
    }
    drop(inner);
    aof.rewrite_in_progress.store(false, Ordering::Release);
}

/// `BGREWRITEAOF`'s outcome.
pub enum Bgrewrite {
    Started,
    Scheduled,
}

/// `BGREWRITEAOF`: starts a rewrite, or schedules one while a background
/// save runs or inside a transaction (Redis's `bgrewriteaofCommand`).
pub fn bgrewriteaof(srv: &Shared) -> Result<Bgrewrite, AofError> {
    if srv.aof.rewrite_in_progress.load(Ordering::Acquire) {
        return Err(AofError::InProgress);
    }
    if srv.persist.bgsave_in_progress.load(Ordering::Acquire) || srv.store.in_locked_scope() {
        srv.aof.rewrite_scheduled.store(true, Ordering::Relaxed);
        srv.aof.consecutive_failures.store(0, Ordering::Relaxed);
        return Ok(Bgrewrite::Scheduled);
    }
    start_rewrite(srv).map(|()| Bgrewrite::Started)
}

/// Follows a `CONFIG SET appendonly` (Redis's `startAppendOnly` and
/// `stopAppendOnly`); an error leaves the AOF off.
pub fn set_enabled(srv: &Shared, on: bool) -> Result<(), AofError> {
    let aof = &srv.aof;
    if !on {
        let mut inner = aof.inner.lock();
        if inner.state == State::Off {
            return Ok(());
        }
        flush_locked(srv, &mut inner, true);
        inner.file = None;
        inner.state = State::Off;
        inner.generation += 1;
        inner.pending.clear();
        inner.incr_size = 0;
        aof.rewrite_scheduled.store(false, Ordering::Relaxed);
        srv.repl.set_aof(false);
        aof.settle(srv.repl.aof_fed());
        return Ok(());
    }
    let p = paths(srv);
    {
        let mut all = LockSet::new();
        all.add_all();
        let res = srv.store.with_locked(&all, || {
            let mut inner = aof.inner.lock();
            if inner.state != State::Off {
                return Ok(());
            }
            std::fs::create_dir_all(&p.dir)
                .map_err(io_err("Can't open or create append-only dir", &p.dir))?;
            let file = open_empty(&p.temp_incr())?;
            inner.file = Some(Arc::new(file));
            inner.state = State::WaitRewrite;
            inner.generation += 1;
            inner.incr_size = 0;
            inner.pending.clear();
            aof.last_fsync_ms.store(unix_ms(), Ordering::Relaxed);
            aof.last_write_ok.store(true, Ordering::Relaxed);
            srv.repl.set_aof(true);
            aof.settle(srv.repl.aof_fed());
            Ok(())
        });
        if let Err(e) = res {
            tracing::warn!(error = %e, "Redis needs to enable the AOF but can't trigger a background AOF rewrite operation.");
            return Err(e);
        }
    }
    // The first base: now, or from the cron when it cannot start here.
    if aof.rewrite_in_progress.load(Ordering::Acquire)
        || srv.persist.bgsave_in_progress.load(Ordering::Acquire)
        || srv.store.in_locked_scope()
    {
        tracing::warn!("AOF was enabled but there is already another background operation. An AOF background was scheduled to start when possible.");
        aof.rewrite_scheduled.store(true, Ordering::Relaxed);
        return Ok(());
    }
    match start_rewrite(srv) {
        Ok(()) => Ok(()),
        // One started meanwhile (the cron, BGREWRITEAOF): it was not
        // recording for this AOF, so another follows it.
        Err(AofError::InProgress) => {
            aof.rewrite_scheduled.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "Redis needs to enable the AOF but can't trigger a background AOF rewrite operation.");
            let _ = set_enabled(srv, false);
            Err(e)
        }
    }
}

/// From the server cron: a scheduled rewrite, or one that
/// `auto-aof-rewrite-percentage` asks for once the AOF passed
/// `auto-aof-rewrite-min-size`.
pub fn cron(srv: &Shared) {
    let aof = &srv.aof;
    if aof.rewrite_in_progress.load(Ordering::Relaxed)
        || srv.persist.bgsave_in_progress.load(Ordering::Relaxed)
    {
        return;
    }
    let limited = aof.consecutive_failures.load(Ordering::Relaxed) >= 3
        && unix_ms() < aof.inner.lock().retry_at_ms;
    if aof.rewrite_scheduled.load(Ordering::Relaxed) {
        if !limited {
            let _ = start_rewrite(srv);
        }
        return;
    }
    if !srv.repl.aof_on() || aof.inner.lock().state != State::On {
        return;
    }
    let (perc, min) = {
        let c = srv.config.read();
        let int = |n| c.value(n).parse::<u64>().unwrap_or(0);
        (
            int("auto-aof-rewrite-percentage"),
            int("auto-aof-rewrite-min-size"),
        )
    };
    let size = aof.current_size.load(Ordering::Relaxed);
    if perc == 0 || size <= min {
        return;
    }
    let base = aof.base_size.load(Ordering::Relaxed).max(1);
    let growth = (size * 100 / base).saturating_sub(100);
    if growth >= perc && !limited {
        tracing::info!("Starting automatic rewriting of AOF on {growth}% growth");
        let _ = start_rewrite(srv);
    }
}

/// `DEBUG LOADAOF`: the buffer written, the dataset replaced by what the
/// AOF files load to.
pub fn debug_loadaof(srv: &Shared) -> Result<(), AofError> {
    let p = paths(srv);
    let truncated_ok = srv.config.read().flag("aof-load-truncated");
    let mut all = LockSet::new();
    all.add_all();
    srv.store.with_locked(&all, || {
        // Under every shard, so no write falls between the flush and the
        // load (it would be in the file but not in the dataset).
        if srv.repl.aof_on() {
            flush(srv, true);
        }
        let m = srv.aof.inner.lock().manifest.clone();
        srv.store.flush_all();
        crate::scripting::functions::install_all(
            srv,
            crate::scripting::functions::Libraries::default(),
        );
        load_files(srv, &p, &m, truncated_ok)
    })?;
    tracing::warn!("Append Only File loaded by DEBUG LOADAOF");
    Ok(())
}

/// `INFO persistence`'s AOF fields.
pub fn info(srv: &Shared, out: &mut String) {
    use std::fmt::Write as _;
    let aof = &srv.aof;
    let (state, pending) = (aof.inner.lock().state, srv.repl.aof_pending());
    let running = aof.rewrite_in_progress.load(Ordering::Relaxed);
    let ok = |b: &AtomicBool| {
        if b.load(Ordering::Relaxed) {
            "ok"
        } else {
            "err"
        }
    };
    let _ = write!(
        out,
        "aof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\n\
         aof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{}\r\n\
         aof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\n\
         aof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\n\
         module_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        u8::from(state != State::Off),
        u8::from(running),
        u8::from(aof.rewrite_scheduled.load(Ordering::Relaxed)),
        aof.last_rewrite_time_sec.load(Ordering::Relaxed),
        if running {
            (unix_ms() - aof.rewrite_started_ms.load(Ordering::Relaxed)) / 1000
        } else {
            -1
        },
        ok(&aof.last_rewrite_ok),
        aof.rewrites.load(Ordering::Relaxed),
        aof.consecutive_failures.load(Ordering::Relaxed),
        ok(&aof.last_write_ok),
    );
    if state != State::Off {
        let _ = write!(
            out,
            "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:{}\r\n\
             aof_buffer_length:{pending}\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\n",
            aof.current_size.load(Ordering::Relaxed),
            aof.base_size.load(Ordering::Relaxed),
            u8::from(aof.rewrite_scheduled.load(Ordering::Relaxed)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_in_redis_format() {
        let text = "file appendonly.aof.2.base.rdb seq 2 type b\n\
                    file appendonly.aof.1.base.rdb seq 1 type h\n\
                    file appendonly.aof.3.incr.aof seq 3 type i\n\
                    file appendonly.aof.4.incr.aof seq 4 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.base_seq, 2);
        assert_eq!(m.incr_seq, 4);
        assert_eq!(m.history.len(), 1);
        assert_eq!(m.format(), text);
    }

    #[test]
    fn manifest_errors_are_redis_s() {
        let why = |t: &str| match Manifest::parse(t) {
            Err(AofError::Manifest { why, .. }) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(why(""), "Found an empty AOF manifest");
        assert_eq!(why("file a seq 1\n"), "Invalid AOF manifest file format");
        assert_eq!(
            why("file a seq 1 type b\nfile b seq 2 type b\n"),
            "Found duplicate base file information"
        );
        assert_eq!(
            why("file a seq 2 type i\nfile b seq 1 type i\n"),
            "Found a non-monotonic sequence number"
        );
        assert_eq!(why("file a seq 1 type x\n"), "Unknown AOF file type");
        assert_eq!(
            why("file ../a seq 1 type b\n"),
            "File can't be a path, just a filename"
        );
        // Comments are skipped; a line without its newline is refused.
        assert!(Manifest::parse("# c\nfile a seq 1 type b\n").is_ok());
        assert_eq!(
            why("file a seq 1 type b"),
            "The AOF manifest file contains too long line"
        );
    }

    #[test]
    fn a_rewrite_moves_the_old_files_to_history() {
        let mut m = Manifest::default();
        m.new_base("appendonly.aof", true);
        m.new_incr("appendonly.aof");
        // A rewrite opens incr 2, then installs base 2.
        m.new_incr("appendonly.aof");
        m.new_base("appendonly.aof", false);
        m.retire_incrs(true);
        assert_eq!(
            m.format(),
            "file appendonly.aof.2.base.aof seq 2 type b\n\
             file appendonly.aof.1.incr.aof seq 1 type h\n\
             file appendonly.aof.1.base.rdb seq 1 type h\n\
             file appendonly.aof.2.incr.aof seq 2 type i\n"
        );
    }
}
