//! Lua scripting: `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO` and `SCRIPT`,
//! after Redis 7.0's `eval.c` and `script.c`.
//!
//! Scripts run on one dedicated thread that owns the interpreter
//! ([`engine`]), so a long script never stalls the worker threads that
//! serve connections. The `EVAL` handler parses and checks its arguments,
//! hands a [`Job`] to that thread and leaves the reply receiver in
//! [`Client::script_wait`](crate::client::Client); the connection task
//! awaits it. The script holds every shard for its whole run (atomic as
//! `EXEC`), and its writes reach the propagation stream as one
//! `MULTI`/`EXEC` block (7.0 replicates effects, never the script).
//!
//! While a script runs, [`Scripts::running`] is set: a connection about to
//! run a command waits (asynchronously) for the script to end, until the
//! script passes `busy-reply-threshold`; from then on commands are refused
//! with `BUSY` except the few Redis allows (`allow_busy`: `SCRIPT KILL`,
//! `SHUTDOWN`, `MULTI`...). `SCRIPT KILL` stops a script that wrote nothing.
//!
//! Inside `MULTI`/`EXEC` a script runs inline on the worker, under the
//! transaction's locks (which then cover every shard), with its own
//! interpreter on that thread; such a run is not subject to the time limit.

pub mod engine;
pub mod functions;
pub mod libs;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrite_storage::LockSet;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::client::ClientHandle;
use crate::command::ctx::is;
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::shared::Shared;

/// `redis.REDIS_VERSION`.
pub use crate::commands::connection::REDIS_VERSION;
/// `redis.REDIS_VERSION_NUM`.
pub const REDIS_VERSION_NUM: i64 = 0x0007_000f;

/// `BUSY` while an `EVAL` script runs past the threshold.
pub const BUSY_ERROR: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// `BUSY` while a function runs past the threshold.
pub const BUSY_FUNCTION_ERROR: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// Shebang flags (`#!lua flags=...`), as Redis's `SCRIPT_FLAG_*`.
pub mod flags {
    pub const NO_WRITES: u32 = 1;
    pub const ALLOW_OOM: u32 = 1 << 1;
    pub const ALLOW_STALE: u32 = 1 << 2;
    pub const NO_CLUSTER: u32 = 1 << 3;
    /// No shebang: Redis's backward-compatible eval mode.
    pub const EVAL_COMPAT: u32 = 1 << 4;
    pub const ALLOW_CROSS_SLOT: u32 = 1 << 5;
}

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("eval", eval),
    ("evalsha", evalsha),
    ("eval_ro", eval_ro),
    ("evalsha_ro", evalsha_ro),
    ("script|load", script_load),
    ("script|exists", script_exists),
    ("script|flush", script_flush),
    ("script|kill", script_kill),
    ("script|help", script_help),
    ("script|debug", script_debug),
    ("fcall", fcall),
    ("fcall_ro", fcall_ro),
    ("function|load", functions::function_load),
    ("function|delete", functions::function_delete),
    ("function|flush", functions::function_flush),
    ("function|list", functions::function_list),
    ("function|stats", functions::function_stats),
    ("function|kill", function_kill),
    ("function|help", functions::function_help),
    ("function|dump", functions::function_dump),
    ("function|restore", functions::function_restore),
];

/// A cached script body.
struct Cached {
    body: Bytes,
    flags: u32,
    shebang_len: usize,
}

/// One script run for the script thread.
pub struct Job {
    /// The command that submitted the job (`failed_calls` of a script error).
    cmd: &'static crate::command::Command,
    /// `FCALL`: the function to call (the body fields are unused).
    function: Option<String>,
    sha: String,
    body: Bytes,
    flags: u32,
    shebang_len: usize,
    /// From `EVAL`: cache the body once it compiled.
    from_eval: bool,
    keys: Vec<Bytes>,
    args: Vec<Bytes>,
    /// `FCALL`'s whole command line (`FUNCTION STATS` shows it).
    call: Vec<Bytes>,
    db: usize,
    resp3: bool,
    handle: Arc<ClientHandle>,
    ro: bool,
    oom: bool,
}

/// A job and where its reply goes.
type JobAndReply = (Job, tokio::sync::oneshot::Sender<BytesMut>);

/// Scripting state shared by every connection.
#[derive(Default)]
pub struct Scripts {
    /// A script is running on the script thread.
    pub running: AtomicBool,
    /// The running script passed `busy-reply-threshold`: others get `BUSY`.
    pub timedout: AtomicBool,
    kill: AtomicBool,
    /// The running script wrote (`SCRIPT KILL` answers `UNKILLABLE`).
    wrote: AtomicBool,
    /// Signalled when a script ends or times out.
    pub changed: Notify,
    jobs: Mutex<Option<std::sync::mpsc::Sender<JobAndReply>>>,
    cache: Mutex<HashMap<String, Cached>>,
    /// Body bytes of the cached scripts (`used_memory_scripts_eval`).
    cache_mem: AtomicUsize,
    /// Bumped by `SCRIPT FLUSH`: every interpreter starts over.
    generation: AtomicU64,
    me: OnceLock<Weak<Shared>>,
    /// `used_memory_lua` of the script thread's interpreter, as of its last run.
    lua_mem: AtomicUsize,
    /// `DEBUG SET-DISABLE-DENY-SCRIPTS`: `noscript` commands allowed in scripts.
    pub disable_deny: AtomicBool,
    /// The function libraries (`FUNCTION LOAD`).
    functions: Mutex<functions::Registry>,
    /// Bumped when the libraries change: interpreters reload them.
    fn_generation: AtomicU64,
    /// The running script, for `FUNCTION STATS` and the `BUSY` wording.
    current: Mutex<Option<Running>>,
}

/// What [`Scripts::running_now`] finds.
pub enum RunningNow {
    Nothing,
    /// An `EVAL` script (`FUNCTION STATS` then answers `BUSY`).
    Eval,
    /// A function: its name, the command that called it, ms it has run.
    Function {
        name: String,
        call: Vec<Bytes>,
        ms: i64,
    },
}

/// What `FUNCTION STATS` tells of the running script.
struct Running {
    /// The sha or the function's name.
    name: String,
    start: std::time::Instant,
    /// The caller's command line, for a function (`FCALL`); empty for `EVAL`.
    call: Vec<Bytes>,
    function: bool,
}

impl Scripts {
    fn set_timedout(&self) {
        self.timedout.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// What runs now, for `FUNCTION STATS`.
    pub fn running_now(&self) -> RunningNow {
        if !self.running.load(Ordering::Acquire) {
            return RunningNow::Nothing;
        }
        match self.current.lock().as_ref() {
            Some(r) if !r.function => RunningNow::Eval,
            Some(r) => RunningNow::Function {
                name: r.name.clone(),
                call: r.call.clone(),
                ms: r.start.elapsed().as_millis() as i64,
            },
            None => RunningNow::Nothing,
        }
    }

    /// The `BUSY` error for the running script (`EVAL` or function).
    pub fn busy_error(&self) -> &'static str {
        if self.current.lock().as_ref().is_some_and(|c| c.function) {
            BUSY_FUNCTION_ERROR
        } else {
            BUSY_ERROR
        }
    }

    fn kill_requested(&self) -> bool {
        self.kill.load(Ordering::Acquire)
    }

    fn remember(&self, sha: &str, body: &Bytes, flags: u32, shebang_len: usize) {
        let mut c = self.cache.lock();
        if !c.contains_key(sha) {
            self.cache_mem
                .fetch_add(body.len() + sha.len(), Ordering::Relaxed);
            c.insert(
                sha.to_string(),
                Cached {
                    body: body.clone(),
                    flags,
                    shebang_len,
                },
            );
        }
    }

    /// `number_of_cached_scripts`.
    pub fn cached(&self) -> usize {
        self.cache.lock().len()
    }

    /// `used_memory_scripts_eval`.
    pub fn cache_memory(&self) -> usize {
        self.cache_mem.load(Ordering::Relaxed) + self.cached() * 64
    }

    /// Libraries, functions and the bytes of their code.
    pub fn function_counts(&self) -> (usize, usize, usize) {
        self.functions.lock().counts()
    }

    /// `used_memory_lua`: the interpreter's memory (an empty Lua 5.1 state
    /// is about 30 KB, Redis reports the same order).
    pub fn lua_memory(&self) -> usize {
        self.lua_mem.load(Ordering::Relaxed).max(31 * 1024)
    }
}

/// Lets scripting reach the server state it belongs to (`Shared::new`).
pub fn attach(srv: &Arc<Shared>) {
    let _ = srv.scripts.me.set(Arc::downgrade(srv));
}

/// Starts the script thread for `srv`.
pub fn start(srv: &Arc<Shared>) {
    attach(srv);
    let (tx, rx) = std::sync::mpsc::channel::<JobAndReply>();
    *srv.scripts.jobs.lock() = Some(tx);
    let weak = Arc::downgrade(srv);
    let spawned = std::thread::Builder::new()
        .name("ferrite-script".into())
        // Deeply nested replies and Lua's C calls recurse on this stack.
        .stack_size(64 << 20)
        .spawn(move || {
            while let Ok((job, reply)) = rx.recv() {
                let Some(srv) = weak.upgrade() else { break };
                let resp3 = job.resp3;
                // A bug must not leave every client waiting on `running`.
                let out =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_timed(&srv, job)))
                        .unwrap_or_else(|_| {
                            engine::reset_here();
                            let s = &srv.scripts;
                            s.running.store(false, Ordering::SeqCst);
                            s.timedout.store(false, Ordering::SeqCst);
                            s.changed.notify_waiters();
                            let mut out = ferrite_protocol::ReplyBuf::new();
                            out.resp3 = resp3;
                            out.error(b"ERR internal error running the script");
                            out.buf
                        });
                let _ = reply.send(out);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the script thread; scripts run inline");
        *srv.scripts.jobs.lock() = None;
    }
}

/// Runs a job on the script thread: every shard held, effects as one
/// block, `BUSY`/`SCRIPT KILL` in force.
fn run_timed(srv: &Arc<Shared>, job: Job) -> BytesMut {
    let s = &srv.scripts;
    s.kill.store(false, Ordering::Release);
    s.wrote.store(false, Ordering::Release);
    s.timedout.store(false, Ordering::Release);
    *s.current.lock() = Some(Running {
        name: job.function.clone().unwrap_or_else(|| job.sha.clone()),
        start: std::time::Instant::now(),
        call: job.call.clone(),
        function: job.function.is_some(),
    });
    s.running.store(true, Ordering::SeqCst);
    let mut set = LockSet::new();
    set.add_all();
    // Invalidations are attributed to the caller (NOLOOP), and those for
    // its own keys surround its reply as for any command.
    let caller = job.handle.id;
    let tracking = crate::tracking::enter(&srv.tracking, caller);
    if tracking {
        crate::tracking::set_in_call(true);
    }
    let mut out = srv.store.with_locked(&set, || {
        srv.repl.transaction(|| engine::run_here(srv, job, true))
    });
    if tracking {
        crate::tracking::set_in_call(false);
        if let Some(mut before) = crate::tracking::take_before() {
            before.unsplit(out);
            out = before;
        }
        if let Some(after) = crate::tracking::leave() {
            out.unsplit(after);
        }
    }
    s.lua_mem.store(engine::memory_here(), Ordering::Relaxed);
    s.running.store(false, Ordering::SeqCst);
    s.timedout.store(false, Ordering::SeqCst);
    s.kill.store(false, Ordering::Release);
    s.changed.notify_waiters();
    if srv.blocking.has_ready() {
        crate::commands::list::serve_ready(srv);
    }
    srv.tracking.broadcast();
    out
}

/// Called by a connection before running a command while a script runs:
/// waits until the script ends or passes `busy-reply-threshold`. Returns
/// whether it is still running (then only `allow_busy` commands run).
pub async fn wait_turn(srv: &Shared) -> bool {
    let s = &srv.scripts;
    loop {
        if !s.running.load(Ordering::Acquire) {
            return false;
        }
        if s.timedout.load(Ordering::Acquire) {
            return true;
        }
        let n = s.changed.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if !s.running.load(Ordering::Acquire) {
            return false;
        }
        if s.timedout.load(Ordering::Acquire) {
            return true;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), n).await;
    }
}

/// SHA1 of `data` in lowercase hex (`redis.sha1hex`, script ids).
pub fn sha1hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

/// Whether a script call may write, by the flags its script declares
/// (Redis's `evalGetCommandFlags` / `fcallGetCommandFlags`, asked before
/// the call, so that `CLIENT PAUSE WRITE` holds back only scripts that
/// may write). `None` for other commands and where the command's own
/// flags decide: a script without a shebang, an unknown SHA or function.
pub fn declared_writes(srv: &Shared, name: &str, argv: &[Bytes]) -> Option<bool> {
    let script_flags = match name {
        "fcall" | "fcall_ro" => {
            let fname = std::str::from_utf8(argv.get(1)?).ok()?;
            srv.scripts.functions.lock().flags_of(fname)?
        }
        "eval" | "eval_ro" => {
            let body = argv.get(1)?;
            let cached = srv
                .scripts
                .cache
                .lock()
                .get(&sha1hex(body))
                .map(|c| c.flags);
            match cached {
                Some(f) => f,
                None => shebang_flags(body).ok()?.0,
            }
        }
        "evalsha" | "evalsha_ro" => {
            let sha = argv.get(1)?;
            if sha.len() != 40 {
                return None;
            }
            let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
            srv.scripts.cache.lock().get(&sha)?.flags
        }
        _ => return None,
    };
    if script_flags & flags::EVAL_COMPAT != 0 {
        return None;
    }
    Some(script_flags & flags::NO_WRITES == 0)
}

/// Parses the shebang of a script (Redis's `evalExtractShebangFlags`):
/// the flags and the length of the shebang line.
pub fn shebang_flags(body: &[u8]) -> Result<(u32, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((flags::EVAL_COMPAT, 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let parts = match ferrite_protocol::split_args(&body[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid engine in script shebang".into()),
    };
    if parts[0] != b"#!lua" {
        return Err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        ));
    }
    let mut f = 0;
    for p in &parts[1..] {
        if let Some(list) = p.strip_prefix(b"flags=") {
            if list.is_empty() {
                continue;
            }
            for name in list.split(|&b| b == b',') {
                f |= match name {
                    b"no-writes" => flags::NO_WRITES,
                    b"allow-oom" => flags::ALLOW_OOM,
                    b"allow-stale" => flags::ALLOW_STALE,
                    b"no-cluster" => flags::NO_CLUSTER,
                    b"allow-cross-slot-keys" => flags::ALLOW_CROSS_SLOT,
                    other => {
                        return Err(format!(
                            "Unexpected flag in script shebang: {}",
                            String::from_utf8_lossy(other)
                        ))
                    }
                };
            }
        } else {
            return Err(format!(
                "Unknown lua shebang option: {}",
                String::from_utf8_lossy(p)
            ));
        }
    }
    Ok((f, end))
}

fn eval(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, false, false)
}

fn evalsha(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, true, false)
}

fn eval_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, false, true)
}

fn evalsha_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    eval_generic(ctx, args, true, true)
}

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// Scripts skip `MONITOR` in the dispatcher (`skip_monitor`) and are fed
/// here, before the commands they run, as Redis's `evalCommand` does.
fn feed_monitors(ctx: &Ctx<'_>, args: &[Bytes]) {
    if ctx.srv.monitors_active.load(Ordering::Relaxed) {
        ctx.srv.feed_monitors(ctx.client, args);
    }
}

fn eval_generic(ctx: &mut Ctx<'_>, args: &[Bytes], by_sha: bool, ro: bool) -> CmdResult {
    feed_monitors(ctx, args);
    let numkeys = numkeys_arg(args)?;
    let srv = ctx.srv;
    let (sha, body, script_flags, shebang_len, from_eval) = if by_sha {
        let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        let cache = srv.scripts.cache.lock();
        match cache.get(&sha) {
            Some(c) => (sha, c.body.clone(), c.flags, c.shebang_len, false),
            None => return Err(CmdError::Other(NOSCRIPT.into())),
        }
    } else {
        let sha = sha1hex(&args[1]);
        let cached = srv
            .scripts
            .cache
            .lock()
            .get(&sha)
            .map(|c| (c.flags, c.shebang_len));
        match cached {
            Some((f, l)) => (sha, args[1].clone(), f, l, false),
            None => {
                let (f, l) =
                    shebang_flags(&args[1]).map_err(|e| CmdError::Other(format!("ERR {e}")))?;
                (sha, args[1].clone(), f, l, true)
            }
        }
    };
    let job = Job {
        cmd: static_cmd(ctx),
        function: None,
        sha,
        body,
        flags: script_flags,
        shebang_len,
        from_eval,
        keys: args[3..3 + numkeys].to_vec(),
        args: args[3 + numkeys..].to_vec(),
        call: Vec::new(),
        db: ctx.client.db,
        resp3: ctx.out.resp3,
        handle: ctx.client.handle.clone(),
        ro,
        oom: false,
    };
    submit(ctx, job)
}

/// The running command's table entry (`EVAL`... are top-level commands).
fn static_cmd(ctx: &Ctx<'_>) -> &'static crate::command::Command {
    crate::command::TABLE
        .lookup(ctx.cmd.name().as_bytes())
        .unwrap_or_else(|| {
            crate::command::TABLE
                .lookup(b"eval")
                .expect("eval is declared")
        })
}

/// `numkeys` of `EVAL`/`FCALL`, checked against the arguments.
fn numkeys_arg(args: &[Bytes]) -> Result<usize, CmdError> {
    let numkeys = crate::command::ctx::int_arg(&args[2])?;
    if numkeys > (args.len() - 3) as i64 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    Ok(numkeys as usize)
}

fn fcall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, args, false)
}

fn fcall_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, args, true)
}

fn fcall_generic(ctx: &mut Ctx<'_>, args: &[Bytes], ro: bool) -> CmdResult {
    feed_monitors(ctx, args);
    // The function first, then the key count, as `fcallCommandGeneric`.
    let (name, fn_flags) = functions::lookup(ctx, &String::from_utf8_lossy(&args[1]))?;
    if ferrite_protocol::parse_i64(&args[2]).is_none() {
        return Err(CmdError::err("Bad number of keys provided"));
    }
    let numkeys = numkeys_arg(args)?;
    let job = Job {
        cmd: static_cmd(ctx),
        function: Some(name),
        sha: String::new(),
        body: Bytes::new(),
        flags: fn_flags,
        shebang_len: 0,
        from_eval: false,
        keys: args[3..3 + numkeys].to_vec(),
        args: args[3 + numkeys..].to_vec(),
        call: args.to_vec(),
        db: ctx.client.db,
        resp3: ctx.out.resp3,
        handle: ctx.client.handle.clone(),
        ro,
        oom: false,
    };
    submit(ctx, job)
}

/// The checks of `scriptPrepareForRun`, then the run: on the script
/// thread, or inline inside `EXEC`.
fn submit(ctx: &mut Ctx<'_>, mut job: Job) -> CmdResult {
    let srv = ctx.srv;
    let script_flags = job.flags;
    let ro = job.ro;
    let inline = ctx.client.deny_blocking;
    let maxmemory = srv.hot.maxmemory.load(Ordering::Relaxed);
    let oom = !inline
        && maxmemory != 0
        && crate::evict::perform_evictions(srv) == crate::evict::Outcome::Fail;
    let replica = srv.upstream.is_replica.load(Ordering::Relaxed);
    let running_stale = replica
        && srv.upstream.link_down()
        && !srv.hot.replica_serve_stale_data.load(Ordering::Relaxed);
    if script_flags & flags::EVAL_COMPAT == 0 {
        if running_stale && script_flags & flags::ALLOW_STALE == 0 {
            return Err(CmdError::Other(
                "MASTERDOWN Link with MASTER is down, replica-serve-stale-data is set to 'no' and 'allow-stale' flag is not set on the script.".into(),
            ));
        }
        if script_flags & flags::NO_WRITES == 0 {
            // A script that may write is refused up front where a write
            // would be (Redis's `scriptPrepareForRun`).
            if replica && srv.hot.replica_read_only.load(Ordering::Relaxed) {
                return Err(CmdError::Other(
                    "READONLY Can not run script with write flag on readonly replica".into(),
                ));
            }
            if ro {
                return Err(CmdError::err(
                    "Can not execute a script with write flag using *_ro command.",
                ));
            }
            if !replica && !srv.enough_good_replicas() {
                return Err(CmdError::Other(
                    "NOREPLICAS Not enough good replicas to write.".into(),
                ));
            }
        }
        if oom && script_flags & (flags::ALLOW_OOM | flags::NO_WRITES) == 0 {
            return Err(CmdError::Other(
                "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'".into(),
            ));
        }
    } else if running_stale {
        return Err(CmdError::Other(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                .into(),
        ));
    }
    job.oom = oom;
    let me = srv.scripts.me.get().and_then(Weak::upgrade);
    let Some(me) = me else {
        return Err(CmdError::err("scripting is not available"));
    };
    if !inline {
        let tx = srv.scripts.jobs.lock().clone();
        if let Some(tx) = tx {
            let (rtx, rrx) = tokio::sync::oneshot::channel();
            if tx.send((job, rtx)).is_ok() {
                ctx.client.script_wait = Some(rrx);
                return Ok(());
            }
            return Err(CmdError::err("scripting is not available"));
        }
    }
    // Inside EXEC (or without a script thread): run here, under the
    // transaction's locks.
    let out = engine::run_here(&me, job, false);
    ctx.out.raw(&out);
    Ok(())
}

fn script_load(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let body = &args[2];
    let sha = sha1hex(body);
    let known = ctx.srv.scripts.cache.lock().contains_key(&sha);
    if !known {
        let (f, l) = shebang_flags(body).map_err(|e| CmdError::Other(format!("ERR {e}")))?;
        // Compile it now so errors are reported, on this thread's engine.
        let me = ctx.srv.scripts.me.get().and_then(Weak::upgrade);
        let Some(me) = me else {
            return Err(CmdError::err("scripting is not available"));
        };
        let check = engine::compile_check(&me, &sha, body, l);
        if let Err(msg) = check {
            return Err(CmdError::Other(format!(
                "ERR Error compiling script (new function): {msg}"
            )));
        }
        ctx.srv.scripts.remember(&sha, body, f, l);
    }
    ctx.out.bulk(sha.as_bytes());
    Ok(())
}

fn script_exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let cache = ctx.srv.scripts.cache.lock();
    let found: Vec<bool> = args[2..]
        .iter()
        .map(|a| cache.contains_key(&String::from_utf8_lossy(a).to_ascii_lowercase()))
        .collect();
    drop(cache);
    ctx.out.array(found.len());
    for f in found {
        ctx.out.integer(i64::from(f));
    }
    Ok(())
}

fn script_flush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args.get(2) {
        None => {}
        Some(a) if args.len() == 3 && (is(a, "sync") || is(a, "async")) => {}
        Some(_) => return Err(CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option")),
    }
    let s = &ctx.srv.scripts;
    s.cache.lock().clear();
    s.cache_mem.store(0, Ordering::Relaxed);
    s.generation.fetch_add(1, Ordering::AcqRel);
    ctx.out.ok();
    Ok(())
}

fn script_kill(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    kill(ctx, true)
}

fn function_kill(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    kill(ctx, false)
}

/// `SCRIPT KILL` / `FUNCTION KILL` (Redis's `scriptKill`).
fn kill(ctx: &mut Ctx<'_>, is_eval: bool) -> CmdResult {
    let s = &ctx.srv.scripts;
    // A script not yet past `busy-reply-threshold` started after this
    // command was let through (in Redis no command runs then): as far as
    // this command is concerned, it came before the script.
    if !s.running.load(Ordering::Acquire) || !s.timedout.load(Ordering::Acquire) {
        return Err(CmdError::Other(
            "NOTBUSY No scripts in execution right now.".into(),
        ));
    }
    if s.wrote.load(Ordering::Acquire) {
        return Err(CmdError::Other("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into()));
    }
    let is_function = s.current.lock().as_ref().is_some_and(|c| c.function);
    if is_eval && is_function {
        return Err(CmdError::Other(BUSY_FUNCTION_ERROR.into()));
    }
    if !is_eval && !is_function {
        return Err(CmdError::Other(BUSY_ERROR.into()));
    }
    s.kill.store(true, Ordering::Release);
    ctx.out.ok();
    Ok(())
}

/// `SCRIPT DEBUG NO` is the mode scripts always run in; Ferrite has no
/// Lua debugger, so `YES` and `SYNC` are refused rather than accepted and
/// ignored.
fn script_debug(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Replies of earlier commands still unsent (a pipeline, or EXEC's own
    // reply), as Redis's `clientHasPendingReplies`.
    if !ctx.out.is_empty() || ctx.client.in_exec {
        return Err(CmdError::err(
            "SCRIPT DEBUG must be called outside a pipeline",
        ));
    }
    if is(&args[2], "no") {
        ctx.out.ok();
        Ok(())
    } else if is(&args[2], "yes") || is(&args[2], "sync") {
        Err(CmdError::err(
            "Ferrite has no Lua debugger: SCRIPT DEBUG YES/SYNC is not supported",
        ))
    } else {
        Err(CmdError::err("Use SCRIPT DEBUG YES/SYNC/NO"))
    }
}

fn script_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    const HELP: &[&str] = &[
        "DEBUG (YES|SYNC|NO)",
        "    Set the debug mode for subsequent scripts executed.",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache. Very dangerous on replicas.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the scripts cache.",
        "    * SYNC: Synchronously flush the scripts cache.",
        "KILL",
        "    Kill the currently executing Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
    ];
    crate::commands::connection::write_help(ctx, "SCRIPT", HELP);
    Ok(())
}
