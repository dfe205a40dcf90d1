//! Replies written after the worker has run every ready connection, as
//! Redis writes every client's replies in `beforeSleep`.
//!
//! A connection task that ends a batch does not write its reply at once:
//! it copies it into its worker's queue ([`Conn::defer`]) and goes back to
//! waiting for input. The worker's event loop (`crate::server`) calls
//! [`flush_all`] after each poll of its connection tasks (all that are
//! ready, up to tokio's per-tick budget of 61), before it polls for I/O
//! again or sleeps in `epoll_wait`.
//!
//! Why: written one by one, each reply wakes its client while the worker
//! is still serving the others, so the client side (one `redis-benchmark`
//! thread, one event loop of a client library) takes one wake-up per reply
//! and the worker one `epoll_wait` per request or two. Written back to back
//! at the end of the round, the clients find several replies ready per
//! wake-up and answer together, so the next round starts with more sockets
//! ready. On 2 cores with 50 clients Ferrite made twice Redis's
//! `epoll_wait` calls and 2.8× its context switches per request before
//! this (`perf stat`, 200k SET). Yielding the task before each write
//! batched the replies as well, but every yield costs the runtime an extra
//! non-blocking poll of the driver; this costs a copy of the reply.
//! tokio's `on_thread_park` hook would run only before a blocking park,
//! never while new input keeps arriving, so replies could wait for as long
//! as the load lasts.
//!
//! A task defers only when its read drained the socket and no flush ran
//! since (it awaited nothing), so that it waits for input next and queues
//! at most one batch per round; a batch read
//! from a full buffer (more input waiting) is written at once, before more
//! is read, which keeps backpressure on a client that sends without
//! reading.
//!
//! Ordering: a task that writes its socket itself ([`Conn::settle`], called
//! by every direct write) first writes the whole queue, so replies never
//! overtake each other. A queued reply the socket cannot take whole (a
//! client that does not read) goes to that connection's own overflow
//! buffer and wakes its task, which writes it with backpressure as any
//! other reply, before it reads more input.
//!
//! The queue is per worker thread; a thread whose event loop does not
//! flush ([`install`] not called) never defers.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::nap::Flushed;

thread_local! {
    static HOOKED: Cell<bool> = const { Cell::new(false) };
    static ROUND: Cell<u64> = const { Cell::new(0) };
    static EPOCH: Cell<u64> = const { Cell::new(0) };
    static FLUSHED: Cell<Flushed> = const { Cell::new(Flushed { batches: 0, fresh: 0 }) };
    static QUEUE: RefCell<Queue> = RefCell::new(Queue::default());
}

/// The queue's capacity kept between rounds. A round holds at most one
/// batch of each connection that ran in it (a connection defers only when
/// it waits for input next), at most [`crate::connection::OUT_FLUSH`]
/// each, and tokio runs at most 61 tasks per poll of the worker's set.
const KEEP_BYTES: usize = 1 << 20;
const KEEP_ENTRIES: usize = 1024;

/// One worker's queued replies: their bytes back to back, and for each
/// reply its connection and where its bytes end.
#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    entries: Vec<(Rc<Conn>, usize)>,
}

/// Marks this thread as one whose event loop calls [`flush_all`] after
/// each poll of its connections: connections served here may defer their
/// replies.
pub fn install() {
    HOOKED.with(|h| h.set(true));
}

/// Whether replies may be deferred on this thread.
#[inline]
pub fn enabled() -> bool {
    HOOKED.with(|h| h.get())
}

/// Counts this thread's flushes. A task that awaited anything since its
/// read may have been passed by a flush, after which its socket's
/// readiness may be set again: it compares rounds before deferring.
#[inline]
pub fn round() -> u64 {
    ROUND.with(|r| r.get())
}

/// Starts a new epoch of [`crate::nap::Moderator`]: every connection
/// counts as fresh at its next flush.
pub fn new_epoch() {
    EPOCH.with(|e| e.set(e.get().wrapping_add(1)));
}

/// What the flushes on this thread wrote since the last call, those run
/// by a task's [`Conn::settle`] included.
pub fn take_flushed() -> Flushed {
    FLUSHED.with(|f| f.take())
}

/// Writes every queued reply of this thread, in the order they were queued.
pub fn flush_all() {
    ROUND.with(|r| r.set(r.get().wrapping_add(1)));
    let (bytes, mut entries) = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        if q.entries.is_empty() {
            return (Vec::new(), Vec::new());
        }
        (std::mem::take(&mut q.bytes), std::mem::take(&mut q.entries))
    });
    if entries.is_empty() {
        return;
    }
    let epoch = EPOCH.with(|e| e.get());
    let mut done = FLUSHED.with(|f| f.get());
    done.batches += entries.len() as u64;
    let mut start = 0;
    let mut written = 0u64;
    for (conn, end) in entries.drain(..) {
        let chunk = &bytes[start..end];
        start = end;
        conn.queued.set(false);
        if conn.epoch.replace(epoch) != epoch {
            done.fresh += 1;
        }
        if conn.failed.get() {
            continue;
        }
        if conn.stuck.get() {
            // An earlier chunk did not fit: this one waits behind it.
            conn.overflow.borrow_mut().extend_from_slice(chunk);
            continue;
        }
        let mut off = 0;
        let res = loop {
            match conn.stream.try_write(&chunk[off..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    off += n;
                    if off == chunk.len() {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        written += off as u64;
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.overflow.borrow_mut().extend_from_slice(&chunk[off..]);
                conn.stuck.set(true);
                conn.wake();
            }
            Err(_) => {
                conn.failed.set(true);
                conn.wake();
            }
        }
    }
    FLUSHED.with(|f| f.set(done));
    if written > 0 {
        crate::counters::add(crate::counters::Slot::NetOut, written);
    }
    // The containers go back with their capacity (a round's size), unless
    // a burst made them larger than rounds usually need.
    if bytes.capacity() > KEEP_BYTES || entries.capacity() > KEEP_ENTRIES {
        return;
    }
    let mut bytes = bytes;
    bytes.clear();
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        if q.entries.is_empty() && q.bytes.is_empty() {
            q.bytes = bytes;
            q.entries = entries;
        }
    });
}

/// A connection's socket, shared by its task and its worker's queue.
pub struct Conn {
    pub stream: TcpStream,
    /// Some of its output is in the queue.
    queued: Cell<bool>,
    /// A queued reply did not fit the socket: the rest is in `overflow`,
    /// for the task to write.
    stuck: Cell<bool>,
    /// A queued write failed: the connection must close.
    failed: Cell<bool>,
    overflow: RefCell<BytesMut>,
    waker: RefCell<Option<Waker>>,
    /// The epoch of its last flushed reply ([`new_epoch`]).
    epoch: Cell<u64>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Rc<Conn> {
        Rc::new(Conn {
            stream,
            queued: Cell::new(false),
            stuck: Cell::new(false),
            failed: Cell::new(false),
            overflow: RefCell::new(BytesMut::new()),
            waker: RefCell::new(None),
            epoch: Cell::new(u64::MAX),
        })
    }

    /// Queues `reply` to be written before the worker sleeps.
    pub fn defer(self: &Rc<Self>, reply: &[u8]) {
        QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            q.bytes.extend_from_slice(reply);
            let end = q.bytes.len();
            q.entries.push((self.clone(), end));
        });
        self.queued.set(true);
    }

    /// Whether output of this connection waits in the queue or overflow:
    /// its task must watch [`Conn::poll_stuck`], and write nothing before
    /// [`Conn::settle`].
    #[inline]
    pub fn pending(&self) -> bool {
        self.queued.get() || self.stuck.get() || self.failed.get()
    }

    /// Whether a queued reply did not fit the socket: the task writes
    /// itself until that rest is out.
    #[inline]
    pub fn stuck(&self) -> bool {
        self.stuck.get() || self.failed.get()
    }

    /// Bytes that did not fit the socket, waiting for the task to write.
    pub fn overflow_len(&self) -> usize {
        self.overflow.borrow().len()
    }

    /// Ready when the task has queued output to deal with: an overflow to
    /// write or a failed write.
    pub fn poll_stuck(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.stuck.get() || self.failed.get() {
            return Poll::Ready(());
        }
        let mut w = self.waker.borrow_mut();
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }

    /// Makes the queue empty of this connection's output, so the task may
    /// write or hand its socket over: writes the worker's queue, then
    /// returns what did not fit, if anything, for the task to write
    /// (`Err` when a queued write failed).
    pub fn settle(&self) -> io::Result<Option<BytesMut>> {
        if self.queued.get() {
            flush_all();
        }
        if self.failed.get() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if self.stuck.replace(false) {
            return Ok(Some(std::mem::take(&mut *self.overflow.borrow_mut())));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A connected pair: the server side as a [`Conn`], the client side.
    async fn pair() -> (Rc<Conn>, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (Conn::new(server), client)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn queued_replies_go_out_in_order_at_the_flush() {
        runtime().block_on(async {
            let (a, mut ca) = pair().await;
            let (b, mut cb) = pair().await;
            a.stream.writable().await.unwrap();
            b.stream.writable().await.unwrap();
            a.defer(b"+1\r\n");
            b.defer(b"+x\r\n");
            a.defer(b"+2\r\n");
            assert!(a.pending() && b.pending());
            flush_all();
            assert!(!a.pending() && !b.pending());
            // Two connections, three batches; each is fresh once an epoch.
            let f = |batches, fresh| Flushed { batches, fresh };
            assert_eq!(take_flushed(), f(3, 2));
            let mut buf = [0u8; 8];
            ca.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"+1\r\n+2\r\n");
            cb.read_exact(&mut buf[..4]).await.unwrap();
            assert_eq!(&buf[..4], b"+x\r\n");
            a.defer(b"+3\r\n");
            flush_all();
            assert_eq!(take_flushed(), f(1, 0));
            new_epoch();
            // A task's settle flushes too, and counts.
            a.defer(b"+4\r\n");
            b.defer(b"+y\r\n");
            assert!(b.settle().unwrap().is_none());
            flush_all();
            assert_eq!(take_flushed(), f(2, 2));
            assert_eq!(take_flushed(), f(0, 0));
        });
    }

    #[test]
    fn what_a_full_socket_cannot_take_waits_in_the_overflow_in_order() {
        runtime().block_on(async {
            let (a, mut ca) = pair().await;
            a.stream.writable().await.unwrap();
            // Fill the socket while the client reads nothing.
            let chunk = vec![b'.'; 64 * 1024];
            let mut filled = 0usize;
            loop {
                match a.stream.try_write(&chunk) {
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            a.defer(b"first");
            a.defer(b"second");
            flush_all();
            assert!(a.stuck());
            assert_eq!(a.overflow_len(), 11);
            // The task takes the rest to write itself, and is stuck no more.
            let rest = a.settle().unwrap().expect("overflow");
            assert_eq!(&rest[..], b"firstsecond");
            assert!(!a.pending());
            // Nothing of it went out before: the client sees the fill, then
            // nothing more.
            let mut got = vec![0u8; filled];
            ca.read_exact(&mut got).await.unwrap();
            assert!(got.iter().all(|&c| c == b'.'));
        });
    }

    #[test]
    fn a_failed_queued_write_fails_the_settle() {
        runtime().block_on(async {
            let (a, ca) = pair().await;
            a.stream.writable().await.unwrap();
            drop(ca);
            // The first write after the peer's close may still succeed;
            // the peer's RST then fails a later one.
            let mut failed = false;
            for _ in 0..50 {
                a.defer(b"+OK\r\n");
                flush_all();
                if a.settle().is_err() {
                    failed = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert!(failed);
            assert!(a.stuck(), "a failed connection stays failed");
        });
    }
}
