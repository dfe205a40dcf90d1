//! One connection: read, parse every complete command in the buffer,
//! execute each, append each reply to one output buffer, then hand it to
//! the worker's queue, written once every ready connection has run
//! (`crate::deferred`), or write it at once where that cannot wait.
//!
//! Reads use a short-read rule: a read that returns less than it asked for
//! has drained the socket, so readiness is cleared at once instead of
//! paying one more `read` that would only return `EAGAIN`. Tokio clears
//! readiness by tick, so an edge that arrives meanwhile is never lost.
//!
//! Backpressure: while a write waits for the socket (its own, or the rest
//! of a queued reply that did not fit), the task reads nothing, so a client that does not read its replies holds at most one
//! batch of output. A batch is written early once its output reaches
//! [`OUT_FLUSH`], so one batch is never much more than that plus one reply.
//! The buffers' sizes go to the client's memory figure
//! ([`MemTracker`]) after each batch, which costs comparisons only while
//! they keep their size.

use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ferrite_protocol::{parse_command, Limits, Parsed, ReplyBuf};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::client::Client;
use crate::client_mem::{Buffers, MemTracker};
use crate::command::dispatch::execute;
use crate::deferred::Conn;
use crate::shared::Shared;

const READ_CHUNK: usize = 16 * 1024;

/// Output that is written before the rest of the batch runs: a pipeline of
/// large replies (or a client that never reads them) does not pile them up.
pub const OUT_FLUSH: usize = READ_CHUNK * 4;

/// Keeps the reply buffer at the size the clients cron chose for this
/// client (`crate::client_cron`, 16 KB at first): the growth a large reply
/// needed is given back once written, as Redis frees the reply blocks
/// beyond its static buffer. Output counts as client memory
/// (`used_memory`), so what an idle client keeps must not grow: capacity
/// retained by clients that once got a burst (invalidations, a large
/// reply) would otherwise make eviction free keys for memory no longer in
/// use. One load and a compare per batch; true when it reallocated.
#[inline]
fn fit_reply(out: &mut ReplyBuf, handle: &crate::client::ClientHandle) -> bool {
    let size = handle.rb_size.load(Ordering::Relaxed);
    if out.buf.capacity() != size && out.is_empty() {
        out.buf = BytesMut::with_capacity(size);
        true
    } else {
        false
    }
}

/// The sizes [`MemTracker`] counts. `qbuf_cap` is taken right after
/// `reserve`, where it is the whole allocation (after parsing, consumed
/// bytes are missing from `capacity()`).
#[inline]
fn buffers(qbuf_cap: usize, out: &ReplyBuf, client: &Client) -> Buffers {
    let (multi_argv, multi_cmds) = client
        .multi
        .as_ref()
        .map_or((0, 0), |m| (m.argv_bytes, m.queue.len()));
    Buffers {
        qbuf_cap,
        obuf_cap: out.buf.capacity(),
        multi_argv,
        multi_cmds,
    }
}

/// Moves what publishers queued for this subscriber into `out` (at most
/// about `max` bytes when `max` is set) and tells the accounting.
fn take_queued(srv: &Shared, client: &mut Client, out: &mut ReplyBuf, max: Option<usize>) {
    let Some(st) = client.sub.as_mut() else {
        return;
    };
    let mut took = 0usize;
    while max.is_none_or(|m| out.len() < m) {
        let Ok(m) = st.rx.try_recv() else { break };
        out.raw(&m);
        took += m.len();
    }
    if took > 0 {
        srv.pubsub.taken(&st.sub, took);
    }
}

/// A connection between two workers (`crate::workers`): its socket and
/// what its task held between batches.
pub struct Parked {
    pub stream: std::net::TcpStream,
    /// The worker it goes to.
    pub to: usize,
    state: State,
}

impl Parked {
    /// The connection's shared handle.
    pub fn handle(&self) -> &Arc<crate::client::ClientHandle> {
        &self.state.client.handle
    }

    /// Closes a connection that could not be handed over (shutdown).
    pub fn close(mut self, srv: &Shared) {
        forget(srv, &mut self.state.client);
    }
}

/// A connection task's state between batches. Its reply buffer is empty
/// then; it moves anyway for its protocol version.
struct State {
    client: Client,
    inbuf: BytesMut,
    out: ReplyBuf,
    argv: Vec<Bytes>,
    hint: usize,
    mem: MemTracker,
}

/// Serves one client until it quits, errs, is killed or the server stops,
/// or until it is asked to move to another worker: then it returns itself.
pub async fn serve(stream: TcpStream, srv: Arc<Shared>, client: Client) -> Option<Parked> {
    let inbuf = BytesMut::with_capacity(READ_CHUNK);
    let out = ReplyBuf::new();
    let mem = MemTracker::new(
        srv.clone(),
        client.handle.clone(),
        buffers(inbuf.capacity(), &out, &client),
    );
    let state = State {
        client,
        inbuf,
        out,
        argv: Vec::with_capacity(8),
        hint: 0,
        mem,
    };
    run(stream, srv, state).await
}

/// Goes on serving a connection that [`serve`] parked on another worker.
pub async fn resume(p: Parked, srv: Arc<Shared>) -> Option<Parked> {
    let Parked {
        stream, mut state, ..
    } = p;
    match TcpStream::from_std(stream) {
        Ok(stream) => run(stream, srv, state).await,
        Err(e) => {
            tracing::warn!(error = %e, "could not register a moved connection");
            forget(&srv, &mut state.client);
            None
        }
    }
}

/// What the server must forget of a closed connection: the shards its
/// watched keys, the registry its subscriptions.
fn forget(srv: &Shared, client: &mut Client) {
    crate::commands::multi::unwatch_all(srv, client);
    if let Some(st) = client.sub.as_mut() {
        srv.pubsub.remove_all(st);
    }
}

async fn run(stream: TcpStream, srv: Arc<Shared>, state: State) -> Option<Parked> {
    let conn = Conn::new(stream);
    let stream = &conn.stream;
    let State {
        mut client,
        mut inbuf,
        mut out,
        mut argv,
        mut hint,
        mut mem,
    } = state;
    let mut monitor_rx: Option<mpsc::UnboundedReceiver<Bytes>> = None;
    let handle = client.handle.clone();
    let mut qcap = inbuf.capacity();
    let mut eof = false;
    'conn: loop {
        if handle.killed.load(Ordering::Acquire) {
            break;
        }
        // Between batches, a connection the balancer moves leaves with its
        // state (a monitor keeps its feed here).
        if handle.move_to.load(Ordering::Relaxed) != crate::client::NO_MOVE && monitor_rx.is_none()
        {
            // Its queued replies go out here first: the socket leaves.
            if write_all(&srv, &conn, &handle, &mut out.buf).await.is_err() {
                break;
            }
            let to = handle
                .move_to
                .swap(crate::client::NO_MOVE, Ordering::Relaxed);
            debug_assert!(out.is_empty());
            let Ok(conn) = Rc::try_unwrap(conn) else {
                // Unreachable: settling emptied the queue of it.
                tracing::error!("a connection to move is still queued; closing it");
                forget(&srv, &mut client);
                return None;
            };
            return match conn.stream.into_std() {
                Ok(stream) => Some(Parked {
                    stream,
                    to,
                    state: State {
                        client,
                        inbuf,
                        out,
                        argv,
                        hint,
                        mem,
                    },
                }),
                Err(_) => {
                    forget(&srv, &mut client);
                    None
                }
            };
        }
        // Buffers the clients cron asked to resize (an idle client's).
        if handle.trim.load(Ordering::Relaxed) != 0 {
            let what = handle.trim.swap(0, Ordering::Relaxed);
            let mut changed =
                what & crate::client_cron::TRIM_REPLY != 0 && fit_reply(&mut out, &handle);
            if what & crate::client_cron::TRIM_QUERY != 0 && inbuf.is_empty() && hint == 0 {
                // Given back whole; the next read reserves a chunk again.
                inbuf = BytesMut::new();
                qcap = 0;
                changed = true;
            }
            if changed {
                let _ = mem.update(buffers(qcap, &out, &client));
            }
        }
        // Wait for input, a kill, or monitor output. Input is polled first
        // (`biased`): it is what is ready almost every time. Only this task
        // reads the socket, so it can use the socket's single reader waker
        // slot (`poll_read_ready`) instead of `readable()`, whose future
        // locks the waiter list to enter it and again to leave it (~250
        // instructions per request under callgrind).
        tokio::select! {
            biased;
            // A deferred reply the socket could not take whole: written
            // (with backpressure) before more input is read.
            _ = std::future::poll_fn(|cx| conn.poll_stuck(cx)), if conn.pending() => {
                // Until written, what did not fit counts as the client's
                // output (`maxmemory-clients`).
                let mut b = buffers(qcap, &out, &client);
                b.obuf_cap += conn.overflow_len();
                if mem.update(b) && handle.killed.load(Ordering::Acquire) {
                    break;
                }
                if write_all(&srv, &conn, &handle, &mut out.buf).await.is_err() {
                    break;
                }
                let _ = mem.update(buffers(qcap, &out, &client));
                continue;
            }
            r = std::future::poll_fn(|cx| stream.poll_read_ready(cx)) => {
                if r.is_err() {
                    break;
                }
            }
            _ = handle.on_kill_or_trim() => continue,
            m = async { client.sub.as_mut().expect("guarded").rx.recv().await }, if client.sub.is_some() => {
                let Some(m) = m else { continue };
                out.raw(&m);
                if let Some(st) = client.sub.as_ref() {
                    srv.pubsub.taken(&st.sub, m.len());
                }
                // Batch what else is queued into one write.
                take_queued(&srv, &mut client, &mut out, Some(OUT_FLUSH));
                if mem.update(buffers(qcap, &out, &client)) && handle.killed.load(Ordering::Acquire) {
                    break;
                }
                if write_all(&srv, &conn, &handle, &mut out.buf).await.is_err() {
                    break;
                }
                if fit_reply(&mut out, &handle) {
                    let _ = mem.update(buffers(qcap, &out, &client));
                }
                continue;
            }
            m = async { monitor_rx.as_mut().expect("guarded").recv().await }, if monitor_rx.is_some() => {
                match m {
                    Some(line) => {
                        out.raw(&line);
                        if write_all(&srv, &conn, &handle, &mut out.buf).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    None => break,
                }
            }
        }
        let want = READ_CHUNK.max(hint);
        inbuf.reserve(want);
        qcap = inbuf.capacity();
        let cap = inbuf.capacity() - inbuf.len();
        let mut got = 0usize;
        let round = crate::deferred::round();
        let res = stream.try_io(Interest::READABLE, || {
            let n = stream.try_read_buf(&mut inbuf)?;
            got = n;
            if n > 0 && n < cap {
                // Drained: clear readiness now (see the module doc).
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(n)
            }
        });
        // A short read drained the socket: the task waits for input after
        // this batch, so its replies may wait for the worker's round. After
        // a full read more input is likely there, and the task would read it
        // in the same round: then the batch is written before (backpressure).
        let drained = match res {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if got == 0 {
                    continue;
                }
                true
            }
            Err(_) => break,
        };
        crate::counters::add(crate::counters::Slot::NetIn, got as u64);
        // While the batch runs, `qbuf` is the whole buffer it came in, the
        // commands being run included, as Redis trims its query buffer
        // only after processing it (`CLIENT LIST` sees its own command).
        handle.qbuf.store(inbuf.len(), Ordering::Relaxed);
        let limits = Limits {
            max_bulk_len: srv.hot.proto_max_bulk_len.load(Ordering::Relaxed),
            authenticated: client.authenticated || !srv.acl.default_user_needs_auth(),
        };
        let mut ran = 0u64;
        loop {
            match parse_command(&mut inbuf, &mut argv, &limits) {
                Ok(Parsed::Command) => {
                    if argv.is_empty() {
                        continue;
                    }
                    // Messages that arrived first precede this reply.
                    take_queued(&srv, &mut client, &mut out, None);
                    if srv.scripts.running.load(Ordering::Relaxed) {
                        // A script holds the keyspace: wait for it, or
                        // past its time limit answer BUSY (in dispatch).
                        // Earlier batches' replies go out first.
                        if write_queued(&srv, &conn, &handle).await.is_err() {
                            break 'conn;
                        }
                        client.script_busy = crate::scripting::wait_turn(&srv).await;
                    }
                    execute(&srv, &mut client, &mut out, &argv);
                    while client.postponed {
                        // `CLIENT PAUSE` holds it back: replies so far go
                        // out, then the same command runs once the pause
                        // ends or eases (checked anew, it may wait again).
                        client.postponed = false;
                        if (!out.is_empty() || conn.pending())
                            && write_all(&srv, &conn, &handle, &mut out.buf).await.is_err()
                        {
                            break 'conn;
                        }
                        if wait_unpaused(&srv, stream, &client, &mut inbuf, &out, &mut mem)
                            .await
                            .is_err()
                        {
                            break 'conn;
                        }
                        execute(&srv, &mut client, &mut out, &argv);
                    }
                    ran += 1;
                    client.script_busy = false;
                    argv.clear();
                    if let Some(mut rx) = client.wait_acks.take() {
                        // WAIT: the count comes when enough replicas
                        // acknowledged or at the timeout; a client that
                        // hangs up or is killed meanwhile ends the wait.
                        // Replies before it go out first, as Redis writes
                        // a blocked client's replies.
                        if (!out.is_empty() || conn.pending())
                            && write_all(&srv, &conn, &handle, &mut out.buf).await.is_err()
                        {
                            break 'conn;
                        }
                        handle.blocked.store(true, Ordering::Relaxed);
                        srv.replicas.waiting(true);
                        let n = await_deferred(stream, &mut inbuf, &mut rx, handle.on_kill()).await;
                        srv.replicas.waiting(false);
                        handle.blocked.store(false, Ordering::Relaxed);
                        match n {
                            Some(n) => out.integer(n),
                            None => break 'conn,
                        }
                    }
                    if let Some(mut rx) = client.shutdown_wait.take() {
                        // SHUTDOWN waiting for replicas: an error reply if
                        // it fails or is aborted; the server stopping
                        // kills this connection. Replies before it in the
                        // pipeline go out first.
                        if (!out.is_empty() || conn.pending())
                            && write_all(&srv, &conn, &handle, &mut out.buf).await.is_err()
                        {
                            break 'conn;
                        }
                        handle.blocked.store(true, Ordering::Relaxed);
                        let reply =
                            await_deferred(stream, &mut inbuf, &mut rx, handle.on_kill()).await;
                        handle.blocked.store(false, Ordering::Relaxed);
                        match reply {
                            Some(r) => out.raw(&r),
                            None => break 'conn,
                        }
                    }
                    if let Some(rx) = client.script_wait.take() {
                        // Earlier batches' replies go out first.
                        if write_queued(&srv, &conn, &handle).await.is_err() {
                            break 'conn;
                        }
                        match rx.await {
                            Ok(reply) => out.raw(&reply),
                            Err(_) => out.error(b"ERR script engine stopped"),
                        }
                        // The script's effects went into the stream on the
                        // script thread: `WAIT` waits for its end now.
                        client.woff = srv.repl.offset();
                    }
                    if let Some(b) = client.blocked.take() {
                        // Replies so far go out before the client waits.
                        if (!out.is_empty() || conn.pending())
                            && write_all(&srv, &conn, &handle, &mut out.buf).await.is_err()
                        {
                            srv.blocking.cancel(&b.waiter);
                            break 'conn;
                        }
                        let waited =
                            wait_blocked(&srv, stream, &handle, &mut inbuf, &mut out, b, &mut mem)
                                .await;
                        if let Some(stats) = client.blocked_stats.take() {
                            if waited.is_ok() {
                                crate::command::dispatch::record_unblocked(&srv, &client, stats);
                            }
                        }
                        // A pop served for this client went into the stream
                        // on the pushing client's thread.
                        client.woff = srv.repl.offset();
                        if waited.is_err() {
                            // A reply served as the client hung up still
                            // goes out (the client may only have closed its
                            // write side).
                            if !out.is_empty() {
                                let _ = write_all(&srv, &conn, &handle, &mut out.buf).await;
                            }
                            break 'conn;
                        }
                    }
                    if client.close_after_reply || handle.killed.load(Ordering::Acquire) {
                        let _ = write_all(&srv, &conn, &handle, &mut out.buf).await;
                        break 'conn;
                    }
                    if client.start_monitor {
                        client.start_monitor = false;
                        let (tx, rx) = mpsc::unbounded_channel();
                        srv.monitors.lock().push(tx);
                        srv.monitors_active.store(true, Ordering::Relaxed);
                        monitor_rx = Some(rx);
                    }
                    if client.repl.start.is_some() {
                        if write_all(&srv, &conn, &handle, &mut out.buf).await.is_ok() {
                            // A replica link from now on: not a normal
                            // client's memory, never evicted.
                            handle.replica.store(true, Ordering::Relaxed);
                            mem.detach();
                            let rest = std::mem::take(&mut inbuf);
                            crate::replica::serve(&srv, stream, &mut client, rest).await;
                        }
                        break 'conn;
                    }
                    if out.len() >= OUT_FLUSH {
                        if mem.update(buffers(qcap, &out, &client))
                            && handle.killed.load(Ordering::Acquire)
                        {
                            break 'conn;
                        }
                        if write_all(&srv, &conn, &handle, &mut out.buf).await.is_err() {
                            break 'conn;
                        }
                    }
                }
                Ok(Parsed::Incomplete { hint: h }) => {
                    hint = h;
                    break;
                }
                Err(e) => {
                    let msg = format!("ERR {e}");
                    srv.stats.count_error(msg.as_bytes());
                    out.error(msg.as_bytes());
                    let _ = write_all(&srv, &conn, &handle, &mut out.buf).await;
                    tracing::debug!(client = client.id(), error = %e, "protocol error, closing");
                    break 'conn;
                }
            }
        }
        handle.qbuf.store(inbuf.len(), Ordering::Relaxed);
        if inbuf.len() as i64 > srv.hot.client_query_buffer_limit.load(Ordering::Relaxed) {
            tracing::warn!(
                client = client.id(),
                "closing client that reached max query buffer length"
            );
            break;
        }
        // Before the write, which may wait: a client that does not read
        // is counted with the output it holds. A client that grew past
        // `maxmemory-clients` may be evicted here, itself included.
        if mem.update(buffers(qcap, &out, &client)) && handle.killed.load(Ordering::Acquire) {
            break;
        }
        // The replies go out when the worker has served every ready
        // connection, together, as Redis writes them in `beforeSleep`
        // (`crate::deferred`). Not when the AOF must have their effects
        // first, nor a reply too large to copy.
        if !out.is_empty() {
            // A batch that awaited anything may have been passed by a
            // flush, and its socket found readable again: not drained.
            if drained
                && crate::deferred::round() == round
                && out.len() <= OUT_FLUSH
                && crate::deferred::enabled()
                && !srv.repl.aof_on()
                && !conn.stuck()
            {
                handle.note_reply(out.len());
                conn.defer(&out.buf);
                out.buf.clear();
            } else {
                // A pipelined batch lets the worker's other ready
                // connections run theirs first, so the replies still go
                // out together.
                if ran > 1 {
                    tokio::task::yield_now().await;
                }
                if write_all(&srv, &conn, &handle, &mut out.buf).await.is_err() {
                    break;
                }
            }
        }
        // The balancer's view of the load (`crate::workers`), and the
        // worker's own (`crate::nap`).
        if ran > 0 {
            crate::nap::count_batch(ran);
            if let Some(w) = srv.workers.get() {
                w.count_batch(handle.worker.load(Ordering::Relaxed), ran);
            }
        }
        // Expiry work that fell due while this batch ran (Redis's
        // `beforeSleep` fast cycle, which also runs before the replies are
        // written).
        if !srv.scripts.running.load(Ordering::Relaxed) {
            srv.expire_if_due();
        }
        // Give back what one large reply needed: the reply buffer goes back
        // to the size the clients cron chose, and a query buffer grown past
        // `OUT_FLUSH` to a chunk. Ordinary traffic never reallocates.
        if fit_reply(&mut out, &handle) {
            let _ = mem.update(buffers(qcap, &out, &client));
        }
        if inbuf.is_empty() && qcap > OUT_FLUSH {
            inbuf = BytesMut::with_capacity(READ_CHUNK);
            qcap = inbuf.capacity();
            let _ = mem.update(buffers(qcap, &out, &client));
        }
    }
    // After the client's FIN (it may only have closed its write side), the
    // rest of its replies is written before the socket closes. Otherwise
    // (killed, an error, the query buffer limit) what the queue holds is
    // written at its flush, and an overflow is dropped, as Redis drops a
    // closing client's output.
    if eof && !handle.killed.load(Ordering::Acquire) {
        let _ = write_queued(&srv, &conn, &handle).await;
    }
    forget(&srv, &mut client);
    None
}

/// Waits while `CLIENT PAUSE` holds the client's command back, until the
/// pause may have ended; counted in `blocked_clients` and flagged `b`, as
/// Redis's postponed clients. Input that arrives meanwhile is buffered.
/// `Err` means the connection must close (killed, hung up).
async fn wait_unpaused(
    srv: &Shared,
    stream: &TcpStream,
    client: &Client,
    inbuf: &mut BytesMut,
    out: &ReplyBuf,
    mem: &mut MemTracker,
) -> Result<(), ()> {
    let handle = &client.handle;
    handle.blocked.store(true, Ordering::Relaxed);
    srv.pause.postponed(true);
    let r = loop {
        if handle.killed.load(Ordering::Acquire) {
            break Err(());
        }
        tokio::select! {
            _ = srv.pause.changed() => break Ok(()),
            _ = handle.on_kill() => continue,
            r = stream.readable() => {
                if r.is_err() {
                    break Err(());
                }
                // Postponed inside MULTI, its queue still counts.
                let b = buffers(0, out, client);
                if !matches!(buffer_input(srv, stream, handle, inbuf, mem, b), Input::More) {
                    break Err(());
                }
            }
        }
    };
    srv.pause.postponed(false);
    handle.blocked.store(false, Ordering::Relaxed);
    r
}

/// What [`buffer_input`] found.
enum Input {
    /// Read (or nothing ready yet); the client goes on waiting.
    More,
    /// The client hung up (maybe only its write side).
    Eof,
    /// The connection must close: a read error, the query buffer limit,
    /// or the client evicted for its memory.
    Close,
}

/// Reads what arrived while the client waits (blocked or postponed) into
/// its query buffer, counted as its memory with the rest of `buffers`.
fn buffer_input(
    srv: &Shared,
    stream: &TcpStream,
    handle: &crate::client::ClientHandle,
    inbuf: &mut BytesMut,
    mem: &mut MemTracker,
    buffers: Buffers,
) -> Input {
    inbuf.reserve(READ_CHUNK);
    let qbuf_cap = inbuf.capacity();
    if mem.update(Buffers {
        qbuf_cap,
        ..buffers
    }) && handle.killed.load(Ordering::Acquire)
    {
        return Input::Close;
    }
    match stream.try_read_buf(inbuf) {
        Ok(0) => Input::Eof,
        Ok(_) if inbuf.len() as i64 > srv.hot.client_query_buffer_limit.load(Ordering::Relaxed) => {
            Input::Close
        }
        Ok(_) => Input::More,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Input::More,
        Err(_) => Input::Close,
    }
}

/// Waits while the client is blocked on keys: for the reply of whoever
/// serves it, its timeout, `CLIENT UNBLOCK`, a kill or EOF. Input that
/// arrives meanwhile is buffered, not executed, as Redis does. `Err` means
/// the connection must close.
async fn wait_blocked(
    srv: &Shared,
    stream: &TcpStream,
    handle: &crate::client::ClientHandle,
    inbuf: &mut BytesMut,
    out: &mut ReplyBuf,
    b: crate::blocking::Blocked,
    mem: &mut MemTracker,
) -> Result<(), ()> {
    let crate::blocking::Blocked {
        waiter,
        mut rx,
        deadline_ms,
    } = b;
    let deadline = async {
        if deadline_ms == 0 {
            std::future::pending::<()>().await;
        }
        let wait = deadline_ms - crate::command::ctx::unix_ms();
        if wait > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
        }
    };
    tokio::pin!(deadline);
    handle.blocked.store(true, Ordering::Relaxed);
    let r = wait_reply(
        srv, stream, handle, inbuf, out, &waiter, &mut rx, deadline, mem,
    )
    .await;
    handle.blocked.store(false, Ordering::Relaxed);
    r
}

#[allow(clippy::too_many_arguments)]
async fn wait_reply(
    srv: &Shared,
    stream: &TcpStream,
    handle: &crate::client::ClientHandle,
    inbuf: &mut BytesMut,
    out: &mut ReplyBuf,
    waiter: &std::sync::Arc<crate::blocking::Waiter>,
    rx: &mut tokio::sync::oneshot::Receiver<BytesMut>,
    mut deadline: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    mem: &mut MemTracker,
) -> Result<(), ()> {
    loop {
        if handle.killed.load(Ordering::Acquire) {
            srv.blocking.cancel(waiter);
            return Err(());
        }
        tokio::select! {
            r = &mut *rx => {
                match r {
                    Ok(reply) => out.raw(&reply),
                    Err(_) => out.buf.extend_from_slice(&waiter.timeout_reply()),
                }
                return Ok(());
            }
            _ = deadline.as_mut() => {
                if srv.blocking.cancel(waiter) {
                    out.raw(&waiter.timeout_reply());
                } else if let Ok(reply) = (&mut *rx).await {
                    // Served just as the timeout fired.
                    out.raw(&reply);
                }
                return Ok(());
            }
            _ = handle.on_kill() => continue,
            r = stream.readable() => {
                if r.is_err() {
                    srv.blocking.cancel(waiter);
                    return Err(());
                }
                // A blocked client is never inside MULTI.
                let b = Buffers {
                    qbuf_cap: 0,
                    obuf_cap: out.buf.capacity(),
                    multi_argv: 0,
                    multi_cmds: 0,
                };
                match buffer_input(srv, stream, handle, inbuf, mem, b) {
                    Input::More => {}
                    Input::Eof => {
                        // If it was served meanwhile, the popped element is
                        // in `rx`: hand it to the caller to write, or it is
                        // lost.
                        if !srv.blocking.cancel(waiter) {
                            if let Ok(reply) = (&mut *rx).await {
                                out.raw(&reply);
                            }
                        }
                        return Err(());
                    }
                    Input::Close => {
                        srv.blocking.cancel(waiter);
                        return Err(());
                    }
                }
            }
        }
    }
}

/// Waits for a reply another task produces (`WAIT`'s count, a waiting
/// `SHUTDOWN`'s outcome), reading what the client sends meanwhile into
/// `inbuf` so a hang-up ends the wait; `None` when the client left, the
/// producer dropped the reply, or `stop` fired first.
async fn await_deferred<T>(
    stream: &TcpStream,
    inbuf: &mut BytesMut,
    rx: &mut tokio::sync::oneshot::Receiver<T>,
    stop: impl std::future::Future,
) -> Option<T> {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = &mut *rx => return r.ok(),
            _ = &mut stop => return None,
            r = stream.readable() => {
                if r.is_err() {
                    return None;
                }
                match stream.try_read_buf(inbuf) {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return None,
                }
            }
        }
    }
}

/// Writes the whole buffer, waiting for writability when the socket is full.
/// A kill (`CLIENT KILL`, a subscriber over its output-buffer limit, client
/// eviction) ends the wait for a client that does not read. While it waits,
/// the unwritten bytes are published as `obuf_pending` (`omem`). The AOF
/// gets the effects behind these replies first.
async fn write_all(
    srv: &Shared,
    conn: &Conn,
    handle: &crate::client::ClientHandle,
    buf: &mut BytesMut,
) -> io::Result<()> {
    // Deferred replies of this connection go first.
    if conn.pending() {
        if let Some(mut rest) = conn.settle()? {
            write_raw(srv, &conn.stream, handle, &mut rest).await?;
        }
    }
    write_raw(srv, &conn.stream, handle, buf).await
}

/// Writes what this connection has in its worker's queue or overflow, if
/// anything, before the task waits for something else or closes.
async fn write_queued(
    srv: &Shared,
    conn: &Conn,
    handle: &crate::client::ClientHandle,
) -> io::Result<()> {
    if !conn.pending() {
        return Ok(());
    }
    write_all(srv, conn, handle, &mut BytesMut::new()).await
}

/// [`write_all`] without the deferred replies.
async fn write_raw(
    srv: &Shared,
    stream: &TcpStream,
    handle: &crate::client::ClientHandle,
    buf: &mut BytesMut,
) -> io::Result<()> {
    crate::aof::before_reply(srv, handle).await;
    let total = buf.len();
    handle.note_reply(total);
    let mut off = 0;
    let mut waited = false;
    let r = loop {
        if off >= total {
            break Ok(());
        }
        match stream.try_write(&buf[off..]) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                waited = true;
                handle.obuf_pending.store(total - off, Ordering::Relaxed);
                tokio::select! {
                    r = stream.writable() => {
                        if let Err(e) = r {
                            break Err(e);
                        }
                    }
                    _ = handle.on_kill() => {
                        if handle.killed.load(Ordering::Acquire) {
                            break Err(io::ErrorKind::ConnectionAborted.into());
                        }
                    }
                }
            }
            Err(e) => break Err(e),
        }
    };
    if waited {
        handle.obuf_pending.store(0, Ordering::Relaxed);
    }
    r?;
    crate::counters::add(crate::counters::Slot::NetOut, total as u64);
    buf.clear();
    Ok(())
}
