//! The one stream of effects: every write is appended here, as the
//! deterministic command that reproduces it, while the shard locks of the
//! write are held, so per-key order equals execution order.
//!
//! Replicas, the replication backlog (partial resync) and the AOF consume
//! this stream; nothing else writes to them. The stream feeds two sinks
//! under one lock, so both see one order: the backlog, whose end is
//! `master_repl_offset`, and the AOF buffer ([`crate::aof`] drains it to
//! the file). As Redis creates its backlog with the first replica, the
//! backlog records only from the first [`Propagator::attach`] on, and the
//! AOF buffer only while `appendonly` is on: with neither, handlers still
//! produce every effect, and the propagator drops them (one relaxed load).
//! Each sink tracks its own `SELECT`ed database, as Redis's
//! `slaveseldb` and `aof_selected_db`; database-less commands
//! ([`Propagator::feed_global`]: the `PING`s and `GETACK`s of the
//! replication link) go to the backlog only.
//!
//! A transaction's effects reach the stream as one block: while
//! [`Propagator::transaction`] runs on a thread, that thread's effects are
//! captured instead of appended, and at its end they are appended in one
//! locked step, wrapped in `MULTI`/`EXEC` when there is more than one (as
//! Redis 7.0's `propagatePendingCommands`), so other threads' effects can
//! never interleave with them.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;

/// One captured effect: its database (`None` for database-less commands
/// such as `FLUSHALL`) and its arguments.
type Effect = (Option<usize>, Vec<Vec<u8>>);

thread_local! {
    /// Address of the propagator capturing this thread's effects, 0 when none.
    static CAPTURING: Cell<usize> = const { Cell::new(0) };
    static CAPTURED: RefCell<Vec<Effect>> = const { RefCell::new(Vec::new()) };
}

/// [`Propagator`]'s mode bits. `ACTIVE`: the backlog records (like Redis,
/// which creates its backlog when the first replica connects, effects are
/// dropped until then, which saves encoding every write).
const ACTIVE: u8 = 1;
/// This server is a replica: its own effects are not its backlog's stream
/// (the primary's stream is, fed through [`Propagator::feed_raw`]), as
/// Redis's `replicationFeedSlaves` returns at once on a replica. They still
/// reach the AOF, as Redis's `feedAppendOnlyFile` on a replica.
const SUPPRESSED: u8 = 2;
/// `appendonly` is on: effects go to the AOF buffer.
const AOF: u8 = 4;
/// A load (`DEBUG LOADAOF`) replays commands: nothing propagates, as
/// Redis's `shouldPropagate` while `server.loading`.
const LOADING: u8 = 8;
/// `aof-timestamp-enabled`: a `#TS:<unix seconds>` line precedes the
/// first AOF effect of each second.
const TIMESTAMPS: u8 = 16;

/// Whether a mode records anything.
#[inline]
fn records(m: u8) -> bool {
    m & LOADING == 0 && (m & AOF != 0 || m & (ACTIVE | SUPPRESSED) == ACTIVE)
}

/// The replication backlog (the last `repl-backlog-size` bytes of the
/// stream) and the AOF buffer.
pub struct Propagator {
    inner: Mutex<Backlog>,
    /// Attached replicas. Appends publish the new end only when this is
    /// non-zero, so a primary without replicas pays one relaxed load.
    replicas: AtomicUsize,
    /// The stream's end, published for replica links to wait on.
    end: watch::Sender<u64>,
    /// The mode bits above, in one byte so an append checks them with one
    /// relaxed load. Changed under the lock.
    mode: AtomicU8,
    /// [`Propagator::backlog_mem`], kept outside the lock: eviction reads
    /// `used_memory` before every command while `maxmemory` is set.
    resident: AtomicUsize,
    /// Bytes ever appended to the AOF buffer, published after each append
    /// so a connection can tell, without the lock, whether its reply must
    /// wait for the AOF to be written ([`crate::aof::before_reply`]).
    aof_fed: AtomicU64,
}

/// The stream's tail in one contiguous vector: appends are `memcpy`s, and
/// the front is cut only when the vector reaches twice the capacity, so each
/// byte is moved at most once (a `VecDeque<u8>` fed byte-wise was 20% of a
/// pipelined SET profile).
/// Room past twice the capacity for the command that crosses it, so the
/// buffer reserved up front does not grow for ordinary commands.
const WINDOW_SLACK: usize = 64 * 1024;

struct Backlog {
    buf: Vec<u8>,
    capacity: usize,
    /// Total bytes ever appended (`master_repl_offset`).
    offset: u64,
    /// Database the stream last `SELECT`ed; `usize::MAX` before the first write.
    selected: usize,
    /// Longest the vector has been: the part of its reservation that was
    /// ever written, hence resident.
    high_water: usize,
    /// Effects not yet written to the AOF file.
    aof: Vec<u8>,
    /// Database the AOF buffer last `SELECT`ed (Redis's `aof_selected_db`).
    aof_selected: usize,
    /// Bytes ever appended to `aof`.
    aof_fed: u64,
    /// The second of the last `#TS:` annotation.
    aof_ts: i64,
}

/// Appends `args` as a RESP array of bulk strings (how commands travel to
/// replicas, and `MIGRATE`'s `RESTORE`s to their target); returns the
/// bytes written.
pub(crate) fn encode(out: &mut Vec<u8>, args: &[&[u8]]) -> usize {
    let mut n = 0;
    let mut put = |b: &[u8]| {
        out.extend_from_slice(b);
        n += b.len();
    };
    let mut tmp = itoa::Buffer::new();
    put(b"*");
    put(tmp.format(args.len()).as_bytes());
    put(b"\r\n");
    for a in args {
        put(b"$");
        put(tmp.format(a.len()).as_bytes());
        put(b"\r\n");
        put(a);
        put(b"\r\n");
    }
    n
}

/// Ends a capture, also when the transaction unwinds.
struct CaptureScope {
    saved: Vec<Effect>,
}

impl Drop for CaptureScope {
    fn drop(&mut self) {
        CAPTURING.with(|c| c.set(0));
        let saved = std::mem::take(&mut self.saved);
        CAPTURED.with(|c| *c.borrow_mut() = saved);
    }
}

impl Propagator {
    /// A backlog keeping the last `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Propagator {
            inner: Mutex::new(Backlog {
                buf: Vec::new(),
                capacity: capacity.max(16 * 1024),
                offset: 0,
                selected: usize::MAX,
                high_water: 0,
                aof: Vec::new(),
                aof_selected: usize::MAX,
                aof_fed: 0,
                aof_ts: 0,
            }),
            replicas: AtomicUsize::new(0),
            resident: AtomicUsize::new(0),
            mode: AtomicU8::new(0),
            aof_fed: AtomicU64::new(0),
            end: watch::channel(0).0,
        }
    }

    /// Wakes the replica links after an append (nothing when none is attached).
    #[inline]
    fn publish(&self, end: u64) {
        LAST_FED.with(|c| c.set(end));
        if self.replicas.load(Ordering::Relaxed) > 0 {
            self.end.send_replace(end);
        }
    }

    /// Attaches a replica link at the current end of the stream: returns
    /// that offset (where the replica's snapshot stands) and a receiver that
    /// changes whenever the stream grows. The next database effect is
    /// preceded by a `SELECT`, as Redis resets `slaveseldb` for a new
    /// replica: the replica cannot know the stream's current database.
    ///
    /// Call it with every shard held, so no effect falls between the
    /// snapshot and the offset.
    pub fn attach(&self) -> (u64, watch::Receiver<u64>) {
        let mut b = self.inner.lock();
        b.selected = usize::MAX;
        // From now on every effect is recorded (Redis's
        // `createReplicationBacklog` on the first replica).
        self.mode.fetch_or(ACTIVE, Ordering::Relaxed);
        // Under the backlog lock: every append after this one sees it.
        self.replicas.fetch_add(1, Ordering::Relaxed);
        (b.offset, self.end.subscribe())
    }

    /// Attaches a replica link that continues from `offset` (a partial
    /// resync): `None` when the backlog does not exist or no longer holds
    /// every byte from there (Redis's check in
    /// `masterTryPartialResynchronization`). No `SELECT` is forced: the
    /// replica keeps the database the stream had selected at `offset`.
    pub fn attach_from(&self, offset: u64) -> Option<watch::Receiver<u64>> {
        let b = self.inner.lock();
        if self.mode.load(Ordering::Relaxed) & ACTIVE == 0 {
            return None;
        }
        let start = b.offset - b.held().len() as u64;
        if offset < start || offset > b.offset {
            return None;
        }
        self.replicas.fetch_add(1, Ordering::Relaxed);
        Some(self.end.subscribe())
    }

    /// Creates the backlog without attaching (a replica keeps one from its
    /// first sync on, as Redis's `createReplicationBacklog` after a sync,
    /// so that once promoted it can continue its own replicas' streams).
    pub fn activate(&self) {
        let _b = self.inner.lock();
        self.mode.fetch_or(ACTIVE, Ordering::Relaxed);
    }

    /// Frees the backlog when no replica is attached (`repl-backlog-ttl`,
    /// Redis's `freeReplicationBacklog`): effects are dropped again until
    /// the next replica attaches; the offset stays where it was. False
    /// when a replica attached meanwhile or there was none.
    /// `then` runs under the backlog lock once it is freed (the new
    /// replication id), so no replica can attach in between.
    pub fn free_backlog(&self, then: impl FnOnce()) -> bool {
        let mut b = self.inner.lock();
        if self.replicas.load(Ordering::Relaxed) != 0
            || self.mode.load(Ordering::Relaxed) & ACTIVE == 0
        {
            return false;
        }
        then();
        self.mode.fetch_and(!ACTIVE, Ordering::Relaxed);
        b.buf = Vec::new();
        b.high_water = 0;
        b.selected = usize::MAX;
        self.resident.store(0, Ordering::Relaxed);
        true
    }

    /// The database the backlog's stream has selected, if it has one
    /// (Redis's `slaveseldb`).
    pub fn selected_db(&self) -> Option<usize> {
        let b = self.inner.lock();
        (b.selected != usize::MAX).then_some(b.selected)
    }

    /// Whether the backlog exists (`repl_backlog_active`).
    pub fn backlog_active(&self) -> bool {
        self.mode.load(Ordering::Relaxed) & ACTIVE != 0
    }

    /// Undoes [`Propagator::attach`] when a replica link ends.
    pub fn detach(&self) {
        let _b = self.inner.lock();
        self.replicas.fetch_sub(1, Ordering::Relaxed);
    }

    /// Number of attached replica links.
    pub fn replica_count(&self) -> usize {
        self.replicas.load(Ordering::Relaxed)
    }

    /// Appends the effect `args` of a write in database `db`, preceded by a
    /// `SELECT` when a sink's database changes (as Redis does).
    pub fn feed(&self, db: usize, args: &[&[u8]]) {
        if !records(self.mode.load(Ordering::Relaxed)) {
            return;
        }
        if self.capture(Some(db), args) {
            return;
        }
        self.append(Some(db), args);
    }

    /// Appends a command of the replication link that is not tied to a
    /// database (`PING`, `REPLCONF GETACK`): the backlog only.
    pub fn feed_global(&self, args: &[&[u8]]) {
        if !records(self.mode.load(Ordering::Relaxed)) {
            return;
        }
        if self.capture(None, args) {
            return;
        }
        self.append(None, args);
    }

    /// Appends one effect to the sinks the mode selects.
    fn append(&self, db: Option<usize>, args: &[&[u8]]) {
        let mut b = self.inner.lock();
        let m = self.mode.load(Ordering::Relaxed);
        if m & AOF != 0 && m & LOADING == 0 && db.is_some() {
            b.annotate(m);
            b.push_aof(db, args);
            self.aof_fed.store(b.aof_fed, Ordering::Release);
        }
        if m & (ACTIVE | SUPPRESSED | LOADING) == ACTIVE {
            b.push(db, args);
            self.note_resident(&b);
            let end = b.offset;
            drop(b);
            self.publish(end);
        }
    }

    /// Keeps the effect for the end of the transaction if this thread runs
    /// one on this propagator; true if it did.
    #[inline]
    fn capture(&self, db: Option<usize>, args: &[&[u8]]) -> bool {
        if CAPTURING.with(Cell::get) != self as *const Propagator as usize {
            return false;
        }
        let effect = (db, args.iter().map(|a| a.to_vec()).collect());
        CAPTURED.with(|c| c.borrow_mut().push(effect));
        true
    }

    /// Runs `f` (a transaction's commands) with this thread's effects
    /// captured, then appends them as one block: nothing for none, the
    /// effect alone for one, `MULTI` ... `EXEC` for more. Call it with the
    /// transaction's shard locks held, so the block's place in the stream
    /// matches execution order. Nested calls join the outer block.
    pub fn transaction<R>(&self, f: impl FnOnce() -> R) -> R {
        let me = self as *const Propagator as usize;
        if CAPTURING.with(Cell::get) == me || !records(self.mode.load(Ordering::Relaxed)) {
            return f();
        }
        let saved = CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()));
        let scope = CaptureScope { saved };
        CAPTURING.with(|c| c.set(me));
        let r = f();
        let effects = CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()));
        drop(scope);
        self.append_block(&effects);
        r
    }

    fn append_block(&self, effects: &[Effect]) {
        if effects.is_empty() {
            return;
        }
        let mut b = self.inner.lock();
        // Checked at the end: a transaction that made this server a
        // replica (`REPLICAOF` inside `EXEC`) propagates nothing to the
        // backlog, as Redis.
        let m = self.mode.load(Ordering::Relaxed);
        if m & AOF != 0 && m & LOADING == 0 {
            let mut own = effects.iter().filter(|(db, _)| db.is_some());
            if let Some(first) = own.next() {
                b.annotate(m);
                let wrap = own.next().is_some();
                if wrap {
                    b.push_aof(first.0, &[b"MULTI"]);
                }
                for (db, args) in effects.iter().filter(|(db, _)| db.is_some()) {
                    let v: smallvec::SmallVec<[&[u8]; 8]> = args.iter().map(|a| &a[..]).collect();
                    b.push_aof(*db, &v);
                }
                if wrap {
                    b.push_aof(None, &[b"EXEC"]);
                }
                self.aof_fed.store(b.aof_fed, Ordering::Release);
            }
        }
        if m & (ACTIVE | SUPPRESSED | LOADING) != ACTIVE {
            return;
        }
        let wrap = effects.len() > 1;
        if wrap {
            // MULTI goes in the first effect's database, so its SELECT
            // comes first, as in Redis.
            b.push(effects[0].0, &[b"MULTI"]);
        }
        for (db, args) in effects {
            let v: smallvec::SmallVec<[&[u8]; 8]> = args.iter().map(|a| &a[..]).collect();
            b.push(*db, &v);
        }
        if wrap {
            b.push(None, &[b"EXEC"]);
        }
        self.note_resident(&b);
        let end = b.offset;
        drop(b);
        self.publish(end);
    }
}

impl Propagator {
    /// Stops (replica) or resumes (primary) recording this server's own
    /// effects.
    pub fn set_suppressed(&self, on: bool) {
        let mut b = self.inner.lock();
        self.set_mode(SUPPRESSED, on);
        // Whatever comes next, its database is not known to a reader.
        b.selected = usize::MAX;
    }

    fn set_mode(&self, bit: u8, on: bool) {
        if on {
            self.mode.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.mode.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// Starts or stops recording effects for the AOF. Either way the
    /// buffer starts empty and its next effect with a `SELECT`; the count
    /// of bytes fed goes on (it never goes back, so a reply waiting for an
    /// offset is never stranded). Call it with every shard held, so the
    /// switch falls between two effects that a snapshot taken under the
    /// same locks puts on either side.
    pub fn set_aof(&self, on: bool) {
        let mut b = self.inner.lock();
        self.set_mode(AOF, on);
        b.aof.clear();
        b.aof_selected = usize::MAX;
    }

    /// Follows `aof-timestamp-enabled`.
    pub fn set_aof_timestamps(&self, on: bool) {
        let _b = self.inner.lock();
        self.set_mode(TIMESTAMPS, on);
    }

    /// Stops every sink while a load replays commands (`DEBUG LOADAOF`).
    pub fn set_loading(&self, on: bool) {
        let _b = self.inner.lock();
        self.set_mode(LOADING, on);
    }

    /// Moves the AOF buffer's bytes to the end of `out` and makes the next
    /// effect start with a `SELECT` when `new_file` (it opens a file that a
    /// loader reads with a fresh client, in database 0). Returns the bytes
    /// fed so far, all of which are now in `out` or were moved before.
    pub fn take_aof(&self, out: &mut Vec<u8>, new_file: bool) -> u64 {
        let mut b = self.inner.lock();
        if out.is_empty() {
            std::mem::swap(out, &mut b.aof);
        } else {
            out.extend_from_slice(&b.aof);
            b.aof.clear();
        }
        if new_file {
            b.aof_selected = usize::MAX;
        }
        b.aof_fed
    }

    /// Bytes ever fed to the AOF buffer (see [`Propagator::set_aof`]).
    #[inline]
    pub fn aof_fed(&self) -> u64 {
        self.aof_fed.load(Ordering::Acquire)
    }

    /// Whether the AOF buffer records.
    #[inline]
    pub fn aof_on(&self) -> bool {
        self.mode.load(Ordering::Relaxed) & AOF != 0
    }

    /// Bytes waiting in the AOF buffer (`mem_aof_buffer`, `aof_buffer_length`).
    pub fn aof_pending(&self) -> usize {
        self.inner.lock().aof.len()
    }

    /// Appends bytes of the primary's stream as they are (a replica
    /// proxies them to its own replicas, so offsets match the primary's).
    /// The offset advances even while nothing is recorded: on a replica it
    /// is the processed offset of the primary's stream.
    pub fn feed_raw(&self, bytes: &[u8]) {
        let end = {
            let mut b = self.inner.lock();
            if self.mode.load(Ordering::Relaxed) & ACTIVE != 0 {
                if b.buf.capacity() == 0 {
                    let cap = 2 * b.capacity + WINDOW_SLACK;
                    b.buf.reserve_exact(cap);
                }
                b.buf.extend_from_slice(bytes);
                b.high_water = b.high_water.max(b.buf.len());
                b.trim();
                self.note_resident(&b);
            }
            b.offset += bytes.len() as u64;
            b.selected = usize::MAX;
            b.offset
        };
        self.publish(end);
    }

    /// Restarts the stream's history at `offset` (a replica's full sync:
    /// the primary's offset of the snapshot it loaded).
    pub fn reset_offset(&self, offset: u64) {
        let mut b = self.inner.lock();
        b.buf.clear();
        b.offset = offset;
        b.selected = usize::MAX;
        drop(b);
        self.publish(offset);
    }
}

/// Encodes one command into `out`, preceded by a `SELECT` when `db` is set
/// and differs from `selected`; returns the bytes written.
fn push_selecting(
    out: &mut Vec<u8>,
    selected: &mut usize,
    db: Option<usize>,
    args: &[&[u8]],
) -> usize {
    let mut n = 0;
    if let Some(db) = db {
        if *selected != db {
            let mut tmp = itoa::Buffer::new();
            n += encode(out, &[b"SELECT", tmp.format(db).as_bytes()]);
            *selected = db;
        }
    }
    n + encode(out, args)
}

impl Backlog {
    /// Appends one command, preceded by a `SELECT` when `db` is set and
    /// differs from the stream's.
    fn push(&mut self, db: Option<usize>, args: &[&[u8]]) {
        if self.buf.capacity() == 0 {
            // The whole window at once: growing by doubling would end at
            // twice what the trim rule needs and copy the stream at every
            // step. Pages are only touched as the stream fills them.
            self.buf.reserve_exact(2 * self.capacity + WINDOW_SLACK);
        }
        let n = push_selecting(&mut self.buf, &mut self.selected, db, args);
        self.offset += n as u64;
        self.high_water = self.high_water.max(self.buf.len());
        self.trim();
    }

    /// Writes a `#TS:` annotation when timestamps are on and the second
    /// changed since the last one (Redis's
    /// `genAofTimestampAnnotationIfNeeded`).
    fn annotate(&mut self, m: u8) {
        if m & TIMESTAMPS == 0 {
            return;
        }
        let now = crate::clock::unix_ms() / 1000;
        if now > self.aof_ts {
            self.aof_ts = now;
            let line = format!("#TS:{now}\r\n");
            self.aof.extend_from_slice(line.as_bytes());
            self.aof_fed += line.len() as u64;
        }
    }

    /// Appends one command to the AOF buffer, with its own `SELECT`s.
    fn push_aof(&mut self, db: Option<usize>, args: &[&[u8]]) {
        let n = push_selecting(&mut self.aof, &mut self.aof_selected, db, args);
        self.aof_fed += n as u64;
    }

    /// The bytes held: the last `capacity` of the vector.
    fn held(&self) -> &[u8] {
        &self.buf[self.buf.len().saturating_sub(self.capacity)..]
    }

    /// Cuts the front once the vector holds twice the capacity.
    fn trim(&mut self) {
        if self.buf.len() >= 2 * self.capacity {
            let cut = self.buf.len() - self.capacity;
            self.buf.drain(..cut);
        }
    }
}

thread_local! {
    /// The stream's end after the last effect this thread appended.
    static LAST_FED: Cell<u64> = const { Cell::new(0) };
}

/// The stream's end after the last effect appended on this thread. A
/// command runs on one thread without yielding, so a change across its
/// call means it propagated, and the new value is its write offset
/// (Redis's `c->woff`, what `WAIT` waits for).
#[inline]
pub fn last_fed() -> u64 {
    LAST_FED.with(Cell::get)
}

impl Propagator {
    /// `master_repl_offset`.
    pub fn offset(&self) -> u64 {
        self.inner.lock().offset
    }

    /// (first offset held, bytes held) for `INFO replication`.
    pub fn backlog_span(&self) -> (u64, usize) {
        let b = self.inner.lock();
        let held = b.held().len();
        (b.offset - held as u64 + 1, held)
    }

    /// Bytes the backlog's buffer holds (it keeps up to twice
    /// `repl-backlog-size` before cutting its front), for `used_memory` and
    /// `mem_replication_backlog`: the part of its reservation the stream
    /// has reached, in whole pages, since the rest was never touched.
    pub fn backlog_mem(&self) -> usize {
        self.resident.load(Ordering::Relaxed)
    }

    /// Publishes the backlog's resident size after an append (a relaxed
    /// load, and a store only when it grew).
    #[inline]
    fn note_resident(&self, b: &Backlog) {
        let r = b.high_water.min(b.buf.capacity()).div_ceil(4096) * 4096;
        if r != self.resident.load(Ordering::Relaxed) {
            self.resident.store(r, Ordering::Relaxed);
        }
    }

    /// The stream bytes from `offset` to the end, if still in the backlog.
    pub fn read_from(&self, offset: u64) -> Option<Vec<u8>> {
        let b = self.inner.lock();
        let held = b.held();
        let start = b.offset.checked_sub(held.len() as u64)?;
        if offset < start || offset > b.offset {
            return None;
        }
        Some(held[(offset - start) as usize..].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A propagator that records, as after a replica attached (the stream
    /// is dropped before that).
    fn recording(capacity: usize) -> Propagator {
        let p = Propagator::new(capacity);
        let _ = p.attach();
        p.detach();
        p
    }

    #[test]
    fn nothing_is_recorded_before_a_replica_attaches() {
        let p = Propagator::new(16 * 1024);
        p.feed(0, &[b"SET", b"k", b"v"]);
        p.transaction(|| p.feed(0, &[b"DEL", b"k"]));
        assert_eq!(p.offset(), 0);
        let _ = p.attach();
        p.feed(0, &[b"SET", b"k", b"v"]);
        assert!(p.offset() > 0);
    }

    #[test]
    fn stream_selects_databases_and_trims() {
        let p = recording(16 * 1024);
        p.feed(0, &[b"SET", b"k", b"v"]);
        p.feed(0, &[b"DEL", b"k"]);
        p.feed(3, &[b"DEL", b"x"]);
        let all = p.read_from(0).unwrap();
        assert_eq!(
            String::from_utf8(all).unwrap(),
            "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n\
             *2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*2\r\n$3\r\nDEL\r\n$1\r\nx\r\n"
        );
        let big = vec![b'x'; 20_000];
        p.feed(3, &[b"SET", b"k", &big]);
        assert!(p.read_from(0).is_none(), "trimmed past capacity");
        assert_eq!(p.backlog_span().1, 16 * 1024);
    }

    fn stream(p: &Propagator) -> String {
        String::from_utf8(p.read_from(0).unwrap())
            .unwrap()
            .replace("\r\n", " ")
    }

    #[test]
    fn transactions_are_one_block() {
        let p = recording(16 * 1024);
        // No effect: nothing.
        p.transaction(|| ());
        assert_eq!(p.offset(), 0);
        // One effect: not wrapped.
        p.transaction(|| p.feed(0, &[b"SET", b"a", b"1"]));
        assert_eq!(stream(&p), "*2 $6 SELECT $1 0 *3 $3 SET $1 a $1 1 ");
        // Several: MULTI in the first database, SELECTs inside, EXEC last.
        let p = recording(16 * 1024);
        p.transaction(|| {
            p.feed(2, &[b"SET", b"a", b"1"]);
            p.feed(3, &[b"DEL", b"b"]);
            p.feed_global(&[b"FLUSHALL"]);
        });
        assert_eq!(
            stream(&p),
            "*2 $6 SELECT $1 2 *1 $5 MULTI *3 $3 SET $1 a $1 1 *2 $6 SELECT $1 3 \
             *2 $3 DEL $1 b *1 $8 FLUSHALL *1 $4 EXEC "
        );
    }

    fn aof_text(p: &Propagator) -> String {
        let mut out = Vec::new();
        p.take_aof(&mut out, false);
        String::from_utf8(out).unwrap().replace("\r\n", " ")
    }

    #[test]
    fn the_aof_sink_has_its_own_selects_and_skips_link_commands() {
        let p = Propagator::new(16 * 1024);
        p.set_aof(true);
        p.feed(1, &[b"SET", b"a", b"1"]);
        // The link's PING is not a write: backlog only (none here).
        p.feed_global(&[b"PING"]);
        p.transaction(|| {
            p.feed(1, &[b"DEL", b"a"]);
            p.feed_global(&[b"REPLCONF", b"GETACK", b"*"]);
            p.feed(2, &[b"DEL", b"b"]);
        });
        assert_eq!(
            aof_text(&p),
            "*2 $6 SELECT $1 1 *3 $3 SET $1 a $1 1 *1 $5 MULTI *2 $3 DEL $1 a \
             *2 $6 SELECT $1 2 *2 $3 DEL $1 b *1 $4 EXEC "
        );
        // No backlog was recorded: no replica ever attached.
        assert_eq!(p.offset(), 0);
        // A new file starts with a SELECT again; a load records nothing.
        p.take_aof(&mut Vec::new(), true);
        p.set_loading(true);
        p.feed(2, &[b"DEL", b"c"]);
        p.set_loading(false);
        p.feed(2, &[b"DEL", b"d"]);
        assert_eq!(aof_text(&p), "*2 $6 SELECT $1 2 *2 $3 DEL $1 d ");
        assert!(p.aof_fed() > 0);
        p.set_aof(false);
        p.feed(2, &[b"DEL", b"e"]);
        assert_eq!(aof_text(&p), "");
    }

    #[test]
    fn other_threads_do_not_interleave_with_a_transaction() {
        let p = std::sync::Arc::new(recording(1 << 20));
        p.transaction(|| {
            p.feed(0, &[b"SET", b"a", b"1"]);
            let q = p.clone();
            std::thread::spawn(move || q.feed(0, &[b"SET", b"other", b"x"]))
                .join()
                .unwrap();
            p.feed(0, &[b"SET", b"b", b"2"]);
        });
        assert_eq!(
            stream(&p),
            "*2 $6 SELECT $1 0 *3 $3 SET $5 other $1 x *1 $5 MULTI *3 $3 SET $1 a $1 1 \
             *3 $3 SET $1 b $1 2 *1 $4 EXEC "
        );
    }
}
