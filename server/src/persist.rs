//! RDB persistence: `SAVE`, `BGSAVE`, the `save` points, `DEBUG RELOAD`,
//! loading `dbfilename` at start-up and saving at shutdown.
//!
//! A snapshot is serialized with every shard of every database held (the
//! same point-in-time rule as a replica's full resync, see
//! [`crate::replica`]), into memory; the file is then written without any
//! lock: `SAVE` on the calling connection, `BGSAVE` and the `save` points
//! on a thread of their own. Either way the bytes go to `temp-<pid>.rdb`
//! next to the target, are synced, and the temporary file is renamed over
//! `dbfilename`, as Redis's `rdbSave` does, so a crash mid-write never
//! leaves a torn file behind.
//!
//! Without `fork()` the serialization itself pauses every client for its
//! duration (Redis only pays the fork); what a copy-on-write snapshot would
//! need is noted in ARCHITECTURE.md.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use ferrite_storage::LockSet;
use thiserror::Error;

use crate::command::ctx::unix_ms;
use crate::shared::Shared;

/// Why a save or a load failed.
#[derive(Debug, Error)]
pub enum PersistError {
    #[error("Background save already in progress")]
    InProgress,
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("loading {path}: {source}")]
    Load {
        path: PathBuf,
        source: crate::rdb_load::LoadError,
    },
    /// `DEBUG RELOAD NOFLUSH` without `MERGE` met a key or library that
    /// is already there.
    #[error("loading {path} without flushing: {what}")]
    Conflict { path: PathBuf, what: String },
    #[error(transparent)]
    Snapshot(#[from] crate::rdb::Incomplete),
}

/// Persistence state for `INFO persistence` and the `save` points.
pub struct Persistence {
    /// A `BGSAVE` thread is writing.
    pub bgsave_in_progress: AtomicBool,
    /// When the running `BGSAVE` started, unix ms.
    pub bgsave_started_ms: AtomicI64,
    /// Whether the last background save succeeded (`rdb_last_bgsave_status`).
    pub last_bgsave_ok: AtomicBool,
    /// Seconds the last background save took, -1 before the first.
    pub last_bgsave_time_sec: AtomicI64,
    /// When the last background save was attempted, unix ms (a failed one
    /// is retried by the `save` points only after 5 s, as Redis).
    pub last_try_ms: AtomicI64,
    /// Successful saves since start (`rdb_saves`).
    pub saves: AtomicU64,
    /// The store's change counter as of the last successful save's
    /// snapshot: `rdb_changes_since_last_save` counts from it.
    pub dirty_at_save: AtomicU64,
    /// Keys loaded by the last load, and keys it skipped as expired.
    pub last_load_keys_loaded: AtomicU64,
    pub last_load_keys_expired: AtomicU64,
    /// `SHUTDOWN` already saved (or was told not to): the server does not
    /// save again on its way out.
    pub shutdown_handled: AtomicBool,
    /// When the last successful save happened, unix seconds (`LASTSAVE`;
    /// the start time before the first).
    pub lastsave_s: AtomicI64,
    /// How to give up the running `BGSAVE` ([`cancel_bgsave`]): its flag,
    /// checked before it writes, and its snapshot's canceller.
    running: parking_lot::Mutex<Option<(Arc<AtomicBool>, crate::rdb::Canceller)>>,
    /// Held while a save checks that it is still wanted and writes the
    /// file, so a given-up `BGSAVE` cannot write after the save that
    /// replaced it.
    file_lock: parking_lot::Mutex<()>,
}

impl Persistence {
    /// State of a server started at `now_s`.
    pub fn new(now_s: i64) -> Self {
        Persistence {
            lastsave_s: AtomicI64::new(now_s),
            bgsave_in_progress: AtomicBool::new(false),
            bgsave_started_ms: AtomicI64::new(0),
            last_bgsave_ok: AtomicBool::new(true),
            last_bgsave_time_sec: AtomicI64::new(-1),
            last_try_ms: AtomicI64::new(0),
            saves: AtomicU64::new(0),
            dirty_at_save: AtomicU64::new(0),
            last_load_keys_loaded: AtomicU64::new(0),
            last_load_keys_expired: AtomicU64::new(0),
            shutdown_handled: AtomicBool::new(false),
            running: parking_lot::Mutex::new(None),
            file_lock: parking_lot::Mutex::new(()),
        }
    }
}

/// Delay before the `save` points retry a failed background save
/// (Redis's `CONFIG_BGSAVE_RETRY_DELAY`).
const RETRY_DELAY_MS: i64 = 5000;

/// The file snapshots go to: `dbfilename` in `dir`.
pub fn rdb_path(srv: &Shared) -> PathBuf {
    let cfg = srv.config.read();
    Path::new(&cfg.dir).join(&cfg.dbfilename)
}

/// Writes changes since the last save (`rdb_changes_since_last_save`).
pub fn changes_since_save(srv: &Shared) -> u64 {
    srv.store
        .stats()
        .dirty
        .load(Ordering::Relaxed)
        .saturating_sub(srv.persist.dirty_at_save.load(Ordering::Relaxed))
}

/// Arms a snapshot of the dataset as it is now ([`crate::rdb::arm`], every
/// shard held for that moment only); returns it with the change counter
/// it includes. The file records where it stands in the replication
/// stream ([`crate::upstream::save_info`]); on a replica, the link's apply
/// lock keeps the primary's commands and their offset on one side of that
/// moment.
fn snapshot(srv: &Shared) -> (crate::rdb::Pending, u64) {
    let mut all = LockSet::new();
    all.add_all();
    let used = srv.store.stats().used_memory.load(Ordering::Relaxed).max(0) as u64;
    let bufs = crate::rdb::buffers(&srv.store, used);
    let compress = srv.config.read().flag("rdbcompression");
    // Inside `EXEC` (which holds every shard) the link may be waiting for
    // a shard while it holds the apply lock: without the lock the file
    // records no history (a restart then resyncs in full).
    let applying = if srv.store.in_locked_scope() {
        srv.upstream.try_apply_lock()
    } else {
        Some(srv.upstream.apply_lock())
    };
    srv.store.with_locked(&all, || {
        crate::scripting::functions::with_library_codes(srv, |libraries| {
            let dirty = srv.store.stats().dirty.load(Ordering::Relaxed);
            let repl = applying
                .as_ref()
                .and_then(|_| crate::upstream::save_info(srv));
            (
                crate::rdb::arm(
                    &srv.store,
                    bufs,
                    compress,
                    unix_ms(),
                    used,
                    libraries,
                    repl.as_ref(),
                ),
                dirty,
            )
        })
    })
}

/// Writes `data` to `path` through a synced temporary file and a rename.
fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_file_name(format!("temp-{}.rdb", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn saved(p: &Persistence, dirty: u64) {
    // A good save of either kind clears `-MISCONF` (Redis's `rdbSave`).
    p.last_bgsave_ok.store(true, Ordering::Relaxed);
    p.dirty_at_save.store(dirty, Ordering::Relaxed);
    p.saves.fetch_add(1, Ordering::Relaxed);
    p.lastsave_s.store(unix_ms() / 1000, Ordering::Relaxed);
}

/// `SAVE`: a snapshot written before returning.
pub fn save(srv: &Shared) -> Result<(), PersistError> {
    if srv.persist.bgsave_in_progress.load(Ordering::Acquire) {
        return Err(PersistError::InProgress);
    }
    save_now(srv)
}

/// Gives up the running `BGSAVE`, if any, as Redis's `killRDBChild`: its
/// file is not written, its status stays as it was. Returns whether one
/// was running.
pub fn cancel_bgsave(srv: &Shared) -> bool {
    let Some((flag, canceller)) = srv.persist.running.lock().take() else {
        return false;
    };
    {
        let _file = srv.persist.file_lock.lock();
        flag.store(true, Ordering::Release);
    }
    canceller.cancel();
    tracing::info!("Killing RDB child");
    true
}

/// After `FLUSHALL` (Redis's `flushAllDataAndResetRDB`): a running
/// `BGSAVE` would write the data back, so it is given up, and with `save`
/// points set the empty dataset is saved at once, so that a restart, even
/// after a crash, does not bring the keys back.
pub fn after_flushall(srv: &Shared) {
    cancel_bgsave(srv);
    if !save_points(&srv.config.read().save).is_empty() {
        if let Err(e) = save_now(srv) {
            tracing::warn!(error = %e, "Saving the flushed dataset failed");
        }
    }
}

/// A snapshot taken and written now, whatever else runs.
fn save_now(srv: &Shared) -> Result<(), PersistError> {
    let path = rdb_path(srv);
    let (pending, dirty) = snapshot(srv);
    let data = pending.collect()?.seal();
    let _file = srv.persist.file_lock.lock();
    write_file(&path, &data).map_err(|source| {
        tracing::warn!(error = %source, path = %path.display(), "Failed saving the DB");
        PersistError::Write {
            path: path.clone(),
            source,
        }
    })?;
    saved(&srv.persist, dirty);
    tracing::info!("DB saved on disk");
    Ok(())
}

/// `BGSAVE`: snapshot now, write on a thread of its own.
pub fn bgsave(srv: &Shared) -> Result<(), PersistError> {
    let p = &srv.persist;
    if p.bgsave_in_progress.swap(true, Ordering::AcqRel) {
        return Err(PersistError::InProgress);
    }
    let start = unix_ms();
    p.bgsave_started_ms.store(start, Ordering::Relaxed);
    p.last_try_ms.store(start, Ordering::Relaxed);
    let path = rdb_path(srv);
    let (pending, dirty) = snapshot(srv);
    let cancelled = Arc::new(AtomicBool::new(false));
    *p.running.lock() = Some((cancelled.clone(), pending.canceller()));
    tracing::info!("Background saving started");
    let p2 = p.clone();
    let spawned = std::thread::Builder::new()
        .name("ferrite-bgsave".into())
        .spawn(move || {
            let p = &p2;
            let collected = pending.collect();
            let file = p.file_lock.lock();
            if cancelled.load(Ordering::Acquire) {
                drop(file);
                tracing::info!("Background saving terminated by FLUSHALL");
                p.bgsave_in_progress.store(false, Ordering::Release);
                return;
            }
            let written = collected
                .map_err(io::Error::other)
                .and_then(|u| write_file(&path, &u.seal()));
            drop(file);
            p.running.lock().take();
            let ok = match written {
                Ok(()) => {
                    saved(p, dirty);
                    tracing::info!("Background saving terminated with success");
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "Background saving error");
                    false
                }
            };
            p.last_bgsave_ok.store(ok, Ordering::Relaxed);
            p.last_bgsave_time_sec
                .store((unix_ms() - start) / 1000, Ordering::Relaxed);
            p.bgsave_in_progress.store(false, Ordering::Release);
        });
    if let Err(e) = spawned {
        p.running.lock().take();
        p.bgsave_in_progress.store(false, Ordering::Release);
        p.last_bgsave_ok.store(false, Ordering::Relaxed);
        return Err(PersistError::Write {
            path: rdb_path(srv),
            source: e,
        });
    }
    Ok(())
}

/// The `save` config as (seconds, changes) pairs.
pub fn save_points(spec: &str) -> Vec<(i64, u64)> {
    let words: Vec<&str> = spec.split_whitespace().collect();
    words
        .chunks_exact(2)
        .filter_map(|c| Some((c[0].parse().ok()?, c[1].parse().ok()?)))
        .collect()
}

/// Run from the server's cron: starts a background save when a `save`
/// point is reached (at least `changes` writes and `seconds` since the
/// last save), as Redis's `serverCron`.
pub fn cron(srv: &Shared) {
    if srv.persist.bgsave_in_progress.load(Ordering::Relaxed) {
        return;
    }
    let points = save_points(&srv.config.read().save);
    if points.is_empty() {
        return;
    }
    let changes = changes_since_save(srv);
    if changes == 0 {
        return;
    }
    let now = unix_ms();
    let since_save_s = now / 1000 - srv.persist.lastsave_s.load(Ordering::Relaxed);
    let p = &srv.persist;
    let may_retry = p.last_bgsave_ok.load(Ordering::Relaxed)
        || now - p.last_try_ms.load(Ordering::Relaxed) > RETRY_DELAY_MS;
    if !may_retry {
        return;
    }
    if let Some((secs, n)) = points
        .iter()
        .find(|(secs, n)| changes >= *n && since_save_s >= *secs)
    {
        tracing::info!("{n} changes in {secs} seconds. Saving...");
        if let Err(e) = bgsave(srv) {
            tracing::warn!(error = %e, "could not start a background save");
        }
    }
}

/// Replaces the dataset with the snapshot in `data` (start-up and
/// `DEBUG RELOAD`), every shard held; returns (loaded, skipped as expired).
///
/// Only a start-up load continues the file's replication history (Redis's
/// `loadDataFromDisk`; `DEBUG RELOAD` does not). Then, as in Redis, a
/// primary puts a `DEL` for each key that expired while it was down into
/// the restored backlog, so replicas that continue get it, and a replica
/// keeps such keys until its primary deletes them.
pub fn load_bytes(
    srv: &Shared,
    data: &[u8],
    path: &Path,
    startup: bool,
) -> Result<(u64, u64), PersistError> {
    let loaded = crate::rdb_load::load_for(srv, data).map_err(|source| PersistError::Load {
        path: path.to_path_buf(),
        source,
    })?;
    let replica = srv.config.read().replicaof.is_some();
    let mut expiry = Expired::Skip;
    if startup {
        if let Some(info) = loaded.repl.clone() {
            if crate::upstream::restore(srv, info) {
                expiry = if replica {
                    Expired::Keep
                } else {
                    Expired::SkipAndDelete
                };
            }
        }
    }
    let mut all = LockSet::new();
    all.add_all();
    let now = unix_ms();
    let (loaded, expired) = srv.store.with_locked(&all, || {
        srv.store.flush_all();
        crate::scripting::functions::install_all(srv, loaded.libraries);
        install_keys(srv, loaded.keys, now, expiry)
    });
    let p = &srv.persist;
    p.last_load_keys_loaded.store(loaded, Ordering::Relaxed);
    p.last_load_keys_expired.store(expired, Ordering::Relaxed);
    // What was just loaded is what is on disk.
    p.dirty_at_save.store(
        srv.store.stats().dirty.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    Ok((loaded, expired))
}

/// Loads `dbfilename` from `dir` if it exists (start-up). A missing file
/// is an empty dataset; an unreadable or corrupt one is an error, on which
/// the server refuses to start, as Redis does.
pub fn load_at_startup(srv: &Shared) -> Result<(), PersistError> {
    let path = rdb_path(srv);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(PersistError::Read { path, source }),
    };
    let start = std::time::Instant::now();
    let (loaded, expired) = load_bytes(srv, &data, &path, true)?;
    tracing::info!(
        "DB loaded from disk: {:.3} seconds ({loaded} keys loaded, {expired} expired keys skipped)",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `DEBUG RELOAD`: save (unless `NOSAVE`), then load the file back in
/// place of the dataset.
pub fn debug_reload(
    srv: &Shared,
    save_first: bool,
    flush: bool,
    merge: bool,
) -> Result<(), PersistError> {
    if save_first {
        save(srv)?;
    }
    let path = rdb_path(srv);
    let data = std::fs::read(&path).map_err(|source| PersistError::Read {
        path: path.clone(),
        source,
    })?;
    if flush {
        load_bytes(srv, &data, &path, false)?;
    } else {
        load_merging(srv, &data, &path, merge)?;
    }
    Ok(())
}

/// `DEBUG RELOAD NOFLUSH [MERGE]`: adds the file's keys and libraries to
/// the dataset instead of replacing it. Without `MERGE` a key or library
/// already there is an error, found before anything changes; with it the
/// file's replace them.
fn load_merging(srv: &Shared, data: &[u8], path: &Path, merge: bool) -> Result<(), PersistError> {
    let loaded = crate::rdb_load::load_for(srv, data).map_err(|source| PersistError::Load {
        path: path.to_path_buf(),
        source,
    })?;
    let conflict = |what: String| PersistError::Conflict {
        path: path.to_path_buf(),
        what,
    };
    let mut all = LockSet::new();
    all.add_all();
    let now = unix_ms();
    srv.store.with_locked(&all, || {
        if !merge {
            for k in &loaded.keys {
                let there = srv
                    .store
                    .db(k.db)
                    .with_shard(&k.key, |s| s.contains(&k.key, now));
                if there {
                    return Err(conflict(format!(
                        "duplicate key {:?}",
                        String::from_utf8_lossy(&k.key)
                    )));
                }
            }
        }
        crate::scripting::functions::merge_libraries(srv, loaded.libraries, merge)
            .map_err(conflict)?;
        install_keys(srv, loaded.keys, now, Expired::Skip);
        Ok(())
    })
}

/// What a load does with keys whose TTL passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Skip,
    /// Skip, with a `DEL` into the replication stream.
    SkipAndDelete,
    /// Keep (a replica continuing its history: its primary deletes them).
    Keep,
}

/// Stores loaded keys (the caller holds every shard); `expiry` says what
/// becomes of those whose TTL passed. Returns (stored, left out).
fn install_keys(
    srv: &Shared,
    keys: Vec<crate::rdb_load::LoadedKey>,
    now: i64,
    expiry: Expired,
) -> (u64, u64) {
    let (mut n, mut expired) = (0u64, 0u64);
    for k in keys {
        if expiry != Expired::Keep
            && k.expire_at != ferrite_storage::NO_EXPIRE
            && k.expire_at <= now
        {
            expired += 1;
            if expiry == Expired::SkipAndDelete {
                srv.repl.feed(k.db, &[b"DEL", &k.key]);
            }
            continue;
        }
        n += 1;
        srv.store
            .db(k.db)
            .with_shard(&k.key, |s| s.set(&k.key, k.value, k.expire_at, now));
    }
    (n, expired)
}

/// How a shutdown saves: `SHUTDOWN`'s flags, or a signal's
/// (`shutdown-on-sigint`, `shutdown-on-sigterm`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownFlags {
    pub save: bool,
    pub nosave: bool,
    /// Do not wait for lagging replicas (`shutdown-timeout`).
    pub now: bool,
    /// Exit even if the save fails.
    pub force: bool,
}

impl ShutdownFlags {
    /// From a `shutdown-on-sig*` value (`default`, `save now`, ...).
    pub fn from_config(v: &str) -> Self {
        let bits = crate::config::flag_bits(crate::config::SHUTDOWN_FLAGS, v).unwrap_or(0);
        ShutdownFlags {
            save: bits & 1 != 0,
            nosave: bits & 2 != 0,
            now: bits & 4 != 0,
            force: bits & 8 != 0,
        }
    }
}

/// The save step of Redis's `prepareForShutdown`: with `save`, or unless
/// `nosave` when `save` points are configured. A failed save is an error
/// (the server stays up) unless `force`. Either way a later [`at_exit`]
/// saves nothing more.
pub fn save_for_shutdown(srv: &Shared, f: ShutdownFlags) -> Result<(), PersistError> {
    crate::aof::shutdown(srv);
    if f.save || (!f.nosave && !save_points(&srv.config.read().save).is_empty()) {
        tracing::info!("Saving the final RDB snapshot before exiting.");
        // Wait for a background save to end rather than race its rename.
        while srv.persist.bgsave_in_progress.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if let Err(e) = save(srv) {
            if !f.force {
                tracing::warn!(error = %e, "Error trying to save the DB, can't exit.");
                return Err(e);
            }
            tracing::warn!(error = %e, "Error trying to save the DB, exiting anyway (FORCE).");
        }
    }
    srv.persist.shutdown_handled.store(true, Ordering::Release);
    Ok(())
}

/// On the way out: save when `save` points are configured and `SHUTDOWN`
/// did not already decide (Redis's `prepareForShutdown` for a signal).
pub fn at_exit(srv: &Shared) {
    if srv.persist.shutdown_handled.load(Ordering::Acquire) {
        return;
    }
    // Nothing is left to refuse the exit: a failed save is logged only.
    let _ = save_for_shutdown(
        srv,
        ShutdownFlags {
            force: true,
            ..ShutdownFlags::default()
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_points_parse_pairs() {
        assert_eq!(
            save_points("3600 1 300 100 60 10000"),
            vec![(3600, 1), (300, 100), (60, 10000)]
        );
        assert!(save_points("").is_empty());
    }
}
