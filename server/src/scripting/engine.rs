//! The Lua 5.1 interpreter of `EVAL`, set up as Redis 7.0's `script_lua.c`
//! and `eval.c` do: the `redis` library, read-only globals, Redis's
//! deterministic `math.random`, and the RESP <-> Lua conversions.
//!
//! One [`Engine`] lives per thread that runs scripts (the script thread,
//! and a worker running `EVAL` inline inside `EXEC`); `mlua::Lua` is not
//! `Send`, so an engine never leaves its thread. Compiled functions are
//! cached per engine; the script bodies are shared ([`super::Scripts`]),
//! and `SCRIPT FLUSH` bumps a generation that makes every engine start over.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use ferrite_protocol::ReplyBuf;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use super::{flags, Job};
use crate::client::Client;
use crate::command::ctx::unix_ms;
use crate::command::table::flag;
use crate::shared::Shared;
use mlua::LuaString;

/// The chunk name of internal helpers: error positions skip them.
const INTERNAL: &str = "=redis_internal";

/// Lua code run once per interpreter: the protections Redis applies to
/// globals and library tables (reads of unknown globals fail, writes fail).
/// It returns the scripts' environment and a switch that, while a library
/// loads, makes that environment show only the load API (Redis's
/// `LIBRARY_API`: `redis.register_function`, `redis.log` and the version
/// fields); `register_function` is not part of the run-time `redis`.
const PRELUDE: &str = r#"
local G = ...
local rawget, rawset, error, tostring, type = rawget, rawset, error, tostring, type
local setmt, getmt = setmetatable, getmetatable
local protected = {}
local function missing(k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 3)
end
local raw_redis = rawget(G, "redis")
local load_redis = {}
for _, k in ipairs({"register_function", "log", "LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE",
                    "LOG_WARNING", "REDIS_VERSION", "REDIS_VERSION_NUM"}) do
  load_redis[k] = rawget(raw_redis, k)
end
rawset(raw_redis, "register_function", nil)
local strict_redis = {}
local strict_mt = {
  __index = function(_, k)
    local v = rawget(load_redis, k)
    if v == nil then missing(k) end
    return v
  end,
  __newindex = function() error("Attempt to modify a readonly table", 2) end,
  __metatable = false,
}
setmt(strict_redis, strict_mt)
protected[strict_redis] = true
local load_api = {redis = strict_redis}
local loading = false
local function readonly(t)
  local proxy = {}
  local mt = {
    __index = t,
    __newindex = function() error("Attempt to modify a readonly table", 2) end,
  }
  mt.__metatable = false
  setmt(proxy, mt)
  protected[proxy] = true
  return proxy
end
local env = {}
local envmt = {
  __index = function(_, k)
    if loading then
      local v = rawget(load_api, k)
      if v == nil then missing(k) end
      return v
    end
    if k == "_G" then return env end
    local v = rawget(G, k)
    if v == nil then missing(k) end
    return v
  end,
  __newindex = function() error("Attempt to modify a readonly table", 2) end,
}
envmt.__metatable = readonly(envmt)
setmt(env, envmt)
protected[env] = true
for _, name in ipairs({"redis", "string", "table", "math", "cjson", "bit", "cmsgpack", "struct", "coroutine"}) do
  if rawget(G, name) ~= nil then rawset(G, name, readonly(rawget(G, name))) end
end
rawset(G, "setmetatable", function(t, m)
  if protected[t] then error("Attempt to modify a readonly table", 2) end
  return setmt(t, m)
end)
local loadstring_ = loadstring
rawset(G, "loadstring", function(code, name)
  if type(code) == "string" and code:byte(1) == 27 then return nil end
  return loadstring_(code, name)
end)
rawset(G, "loadfile", nil)
rawset(G, "dofile", nil)
rawset(G, "print", nil)
return env, function(on) loading = on end
"#;

/// Runs `f` under `h` (`xpcall`), returning `ok, result`.
const RUNNER: &str = "local f, h = ... return xpcall(f, h)";

/// An error reply raised by `redis.call`: the reply as `luaPushErrorBuff`
/// words it (`-CODE msg`, or a bare message that gets `ERR`).
#[derive(Debug)]
struct CallError(Vec<u8>);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl std::error::Error for CallError {}

/// The raw reply of a `redis.call` error, however deep mlua wrapped it.
fn call_error(e: &mlua::Error) -> Option<&[u8]> {
    match e {
        mlua::Error::ExternalError(x) => x.downcast_ref::<CallError>().map(|c| &c.0[..]),
        mlua::Error::CallbackError { cause, .. } => call_error(cause),
        mlua::Error::WithContext { cause, .. } => call_error(cause),
        _ => None,
    }
}

/// Makes a `redis.call` error caught by the script's own `pcall` answer
/// `e.err` like Redis's error table does.
const ERR_FIELD: &str = r#"
local probe, errmsg = ...
local ok, e = pcall(probe)
local mt = getmetatable(e)
if type(mt) == "table" then
  local old = mt.__index
  mt.__index = function(u, k)
    if k == "err" then return errmsg(u) end
    if type(old) == "function" then return old(u, k) end
    if type(old) == "table" then return old[k] end
    return nil
  end
end
"#;

/// What `redis.call` needs while a script runs.
struct RunCtx {
    srv: Arc<Shared>,
    client: Client,
    /// Writes refused (`EVAL_RO`, `no-writes`).
    read_only: bool,
    /// `allow-oom` or `no-writes`: denyoom commands run above maxmemory.
    allow_oom: bool,
    /// Used memory was above `maxmemory` when the script started.
    oom: bool,
    wrote: bool,
    /// RESP version of `redis.call` replies (`redis.setresp`).
    resp: u8,
    /// On the script thread: subject to `busy-reply-threshold` and `SCRIPT KILL`.
    timed: bool,
    start: Instant,
    /// Unix ms at the start: time stands still for the whole script, so
    /// a key does not expire between two of its commands (7.0).
    now: i64,
    /// The calling client, for key tracking.
    caller: Arc<crate::client::ClientHandle>,
    /// The keys the caller declared, remembered for it when the script
    /// first calls a read-only command.
    keys: Vec<Bytes>,
    tracked: bool,
}

/// One interpreter and its compiled scripts.
pub struct Engine {
    lua: Lua,
    env: Table,
    /// Switches `env` to the load API while a library's code runs.
    set_loading: Function,
    runner: Function,
    handler: Function,
    compiled: HashMap<String, Function>,
    generation: u64,
    /// Function callbacks by name, as of `fn_generation`.
    functions: HashMap<String, Function>,
    fn_generation: u64,
    fcall: Function,
}

/// What `redis.register_function` collects while a library loads.
struct LoadCtx {
    funcs: Vec<(super::functions::FnMeta, Function)>,
    start: Instant,
}

/// Calls a function callback with `KEYS` and `ARGV` under `xpcall`.
const FCALL_RUNNER: &str = "local f, h, k, a = ... return xpcall(function() return f(k, a) end, h)";

/// Checks `redis.register_function`'s arguments and records the function.
fn register_function(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    use super::functions::FnMeta;
    let fail = |m: &str| Err(rt(format!("ERR {m}")));
    if lua.app_data_ref::<LoadCtx>().is_none() {
        return fail("redis.register_function can only be called on FUNCTION LOAD command");
    }
    let (name, callback, flags, desc) = match args.len() {
        // `luaRegisterFunctionReadPositionalArgs`: a name (a string or
        // a number, as `lua_isstring`) and a function.
        2 => {
            let Some(name) = lua_string_arg(&args[0]) else {
                return fail("first argument to redis.register_function must be a string");
            };
            let Value::Function(f) = &args[1] else {
                return fail("second argument to redis.register_function must be a function");
            };
            (name, f.clone(), 0, None)
        }
        1 => {
            let Value::Table(t) = &args[0] else {
                return fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).");
            };
            let mut name = None;
            let mut callback = None;
            let mut flags = 0u32;
            let mut desc = None;
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let Value::String(k) = k else {
                    return fail(
                        "named argument key given to redis.register_function is not a string",
                    );
                };
                // Argument names and flags ignore case (`strcasecmp`).
                match &*k.as_bytes().to_ascii_lowercase() {
                    b"function_name" => match lua_string_arg(&v) {
                        Some(s) => name = Some(s),
                        None => return fail("function_name argument given to redis.register_function must be a string"),
                    },
                    b"description" => match lua_string_arg(&v) {
                        Some(s) => desc = Some(String::from_utf8_lossy(&s).into_owned()),
                        None => return fail("description argument given to redis.register_function must be a string"),
                    },
                    b"callback" => match v {
                        Value::Function(f) => callback = Some(f),
                        _ => return fail("callback argument given to redis.register_function must be a function"),
                    },
                    b"flags" => {
                        let Value::Table(ft) = v else {
                            return fail("flags argument to redis.register_function must be a table representing function flags");
                        };
                        for f in ft.sequence_values::<Value>() {
                            let Value::String(f) = f? else {
                                return fail("unknown flag given");
                            };
                            flags |= match &*f.as_bytes().to_ascii_lowercase() {
                                b"no-writes" => flags::NO_WRITES,
                                b"allow-oom" => flags::ALLOW_OOM,
                                b"allow-stale" => flags::ALLOW_STALE,
                                b"no-cluster" => flags::NO_CLUSTER,
                                b"allow-cross-slot-keys" => flags::ALLOW_CROSS_SLOT,
                                _ => return fail("unknown flag given"),
                            };
                        }
                    }
                    _ => return fail("unknown argument given to redis.register_function"),
                }
            }
            let Some(name) = name else {
                return fail("redis.register_function must get a function name argument");
            };
            let Some(callback) = callback else {
                return fail("redis.register_function must get a callback argument");
            };
            (name, callback, flags, desc)
        }
        _ => return fail("wrong number of arguments to redis.register_function"),
    };
    if !super::functions::valid_name(&name) {
        return fail("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long");
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    let Some(mut ctx) = lua.app_data_mut::<LoadCtx>() else {
        return fail("redis.register_function can only be called on FUNCTION LOAD command");
    };
    if ctx.funcs.iter().any(|(m, _)| m.name == name) {
        return fail("Function already exists in the library");
    }
    ctx.funcs.push((FnMeta { name, desc, flags }, callback));
    Ok(())
}

/// A string argument as `luaGetStringSds` takes it: a string or a number.
fn lua_string_arg(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(i) => Some(i.to_string().into_bytes()),
        Value::Number(n) => Some(lua_number_string(*n).into_bytes()),
        _ => None,
    }
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// Runs `job` on this thread's engine (created on first use, recreated
/// after `SCRIPT FLUSH`) and returns the RESP reply for the caller.
pub fn run_here(srv: &Arc<Shared>, job: Job, timed: bool) -> BytesMut {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let generation = srv.scripts.generation.load(Ordering::Acquire);
        if slot.as_ref().is_none_or(|e| e.generation != generation) {
            *slot = None;
            match Engine::new(generation) {
                Ok(e) => *slot = Some(e),
                Err(e) => {
                    let mut out = ReplyBuf::new();
                    out.resp3 = job.resp3;
                    out.error(format!("ERR Lua engine unavailable: {e}").as_bytes());
                    return out.buf;
                }
            }
        }
        match slot.as_mut() {
            Some(engine) => engine.run(srv, job, timed),
            None => BytesMut::new(),
        }
    })
}

/// Compiles a script on this thread's engine (`SCRIPT LOAD`), returning
/// the compiler's message on failure.
pub fn compile_check(
    srv: &Arc<Shared>,
    sha: &str,
    body: &[u8],
    shebang_len: usize,
) -> Result<(), String> {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let generation = srv.scripts.generation.load(Ordering::Acquire);
        if slot.as_ref().is_none_or(|e| e.generation != generation) {
            *slot = Engine::new(generation).ok();
        }
        match slot.as_mut() {
            Some(engine) => engine.compile(sha, body, shebang_len).map(|_| ()),
            None => Err("Lua engine unavailable".into()),
        }
    })
}

/// Loads a library on this thread's engine (`FUNCTION LOAD`): the
/// functions it registers, or the error text.
pub fn load_library_check(
    srv: &Arc<Shared>,
    code: &[u8],
    shebang_len: usize,
) -> Result<Vec<super::functions::FnMeta>, String> {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let generation = srv.scripts.generation.load(Ordering::Acquire);
        if slot.as_ref().is_none_or(|e| e.generation != generation) {
            *slot = Engine::new(generation).ok();
        }
        match slot.as_mut() {
            Some(engine) => engine
                .load_library(code, shebang_len)
                .map(|v| v.into_iter().map(|(m, _)| m).collect()),
            None => Err("Lua engine unavailable".into()),
        }
    })
}

/// Drops this thread's interpreter (after a panic left it in doubt).
pub fn reset_here() {
    ENGINE.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = None;
        }
    });
}

/// Used memory of this thread's interpreter (`used_memory_lua`).
pub fn memory_here() -> usize {
    ENGINE.with(|cell| {
        cell.try_borrow()
            .ok()
            .and_then(|s| s.as_ref().map(|e| e.lua.used_memory()))
            .unwrap_or(0)
    })
}

fn rt(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

/// An error table `{err = msg}` as `luaPushErrorBuff` builds it: a message
/// starting with `-` carries its own code, any other gets `ERR`.
fn error_table(lua: &Lua, msg: &[u8]) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let text: Vec<u8> = if let Some(rest) = msg.strip_prefix(b"-") {
        match rest.iter().position(|&b| b == b' ') {
            Some(sp) => {
                let mut v = rest[..sp].to_vec();
                v.push(b' ');
                v.extend_from_slice(trim_crlf(&rest[sp + 1..]));
                v
            }
            None => {
                let mut v = b"ERR ".to_vec();
                v.extend_from_slice(trim_crlf(rest));
                v
            }
        }
    } else {
        let mut v = b"ERR ".to_vec();
        v.extend_from_slice(trim_crlf(msg));
        v
    };
    t.raw_set("err", lua.create_string(&text)?)?;
    Ok(t)
}

/// An error table from `redis.call`/`redis.pcall`: the error was counted
/// when the command failed, so the script's reply does not count it again.
fn call_error_table(lua: &Lua, msg: &[u8]) -> mlua::Result<Table> {
    let t = error_table(lua, msg)?;
    t.raw_set("ignore_error_stats_update", true)?;
    Ok(t)
}

fn trim_crlf(mut s: &[u8]) -> &[u8] {
    while let Some((&l, rest)) = s.split_last() {
        if l == b'\r' || l == b'\n' {
            s = rest;
        } else {
            break;
        }
    }
    while let Some((&f, rest)) = s.split_first() {
        if f == b'\r' || f == b'\n' {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// The message of an error mlua carries as a value (a Rust callback or
/// hook error), without mlua's decorations.
fn plain_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => plain_message(cause),
        mlua::Error::WithContext { cause, .. } => plain_message(cause),
        other => other.to_string(),
    }
}

/// The `%.14g` formatting Lua 5.1 gives numbers converted to strings.
pub(crate) fn lua_number_string(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf" } else { "-inf" }.into();
    }
    if n == n.trunc() && n.abs() < 1e15 {
        return format!("{}", n as i64);
    }
    let exp = n.abs().log10().floor() as i32;
    if (-5..14).contains(&exp) {
        let decimals = (13 - exp).max(0) as usize;
        let s = format!("{n:.decimals$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        return s;
    }
    let s = format!("{n:.13e}");
    let (mant, e) = s.split_once('e').unwrap_or((&s, "0"));
    let mant = if mant.contains('.') {
        mant.trim_end_matches('0').trim_end_matches('.')
    } else {
        mant
    };
    let e: i32 = e.parse().unwrap_or(0);
    format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// Arguments of `redis.call` as Redis's `luaArgsToRedisArgv` takes them:
/// strings and numbers only.
fn lua_args(args: &MultiValue) -> Option<Vec<Bytes>> {
    let mut v = Vec::with_capacity(args.len());
    for a in args.iter() {
        match a {
            Value::String(s) => v.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(i) => v.push(Bytes::from(i.to_string())),
            Value::Number(n) => v.push(Bytes::from(fpconv(*n))),
            _ => return None,
        }
    }
    Some(v)
}

/// `fpconv_dtoa`: the shortest representation that reads back the same.
fn fpconv(n: f64) -> String {
    if n == n.trunc() && n.abs() < 1e17 {
        return format!("{}", n as i64);
    }
    let s = format!("{n:e}");
    let plain = format!("{n}");
    if plain.len() <= s.len() + 2 {
        plain
    } else {
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        format!("{m}e{}{}", if e < 0 { '-' } else { '+' }, e.abs())
    }
}

impl Engine {
    fn new(generation: u64) -> mlua::Result<Engine> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        let g = lua.globals();
        // `loadstring`, `pcall` and friends are in the base library, which
        // is always open.
        super::libs::install(&lua, &g)?;
        install_redis(&lua, &g)?;
        let redis: Table = g.get("redis")?;
        redis.raw_set("register_function", lua.create_function(register_function)?)?;
        install_random(&lua, &g)?;
        let probe = lua.create_function(|_, ()| -> mlua::Result<()> {
            Err(mlua::Error::external(CallError(b"-ERR probe".to_vec())))
        })?;
        let errmsg = lua.create_function(|lua, v: Value| {
            Ok(match v {
                Value::Error(e) => match call_error(&e) {
                    Some(m) => Some(error_table(lua, m)?.raw_get::<Value>("err")?),
                    None => Some(Value::String(lua.create_string(plain_message(&e))?)),
                },
                _ => None,
            })
        })?;
        lua.load(ERR_FIELD)
            .set_name(INTERNAL)
            .call::<()>((probe, errmsg))?;
        let handler = lua.create_function(error_handler)?;
        let (env, set_loading): (Table, Function) =
            lua.load(PRELUDE).set_name(INTERNAL).call(g.clone())?;
        let runner = lua.load(RUNNER).set_name(INTERNAL).into_function()?;
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(100_000),
            |lua, _| hook(lua),
        )?;
        let fcall = lua.load(FCALL_RUNNER).set_name(INTERNAL).into_function()?;
        Ok(Engine {
            lua,
            env,
            set_loading,
            runner,
            handler,
            compiled: HashMap::new(),
            generation,
            functions: HashMap::new(),
            fn_generation: u64::MAX,
            fcall,
        })
    }

    /// Compiles a script body (its shebang line skipped, its newline kept
    /// so line numbers stay right). Returns the error text on failure.
    fn compile(&mut self, sha: &str, body: &[u8], shebang_len: usize) -> Result<Function, String> {
        if let Some(f) = self.compiled.get(sha) {
            return Ok(f.clone());
        }
        let code = &body[shebang_len..];
        match self
            .lua
            .load(code)
            .set_name("@user_script")
            .set_environment(self.env.clone())
            .into_function()
        {
            Ok(f) => {
                self.compiled.insert(sha.to_string(), f.clone());
                Ok(f)
            }
            Err(e) => Err(match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => plain_message(&other),
            }),
        }
    }

    /// Runs a library's code (its shebang line blanked) and returns the
    /// functions it registered, or the error text for `FUNCTION LOAD`.
    fn load_library(
        &mut self,
        code: &[u8],
        shebang_len: usize,
    ) -> Result<Vec<(super::functions::FnMeta, Function)>, String> {
        let f = self
            .lua
            .load(&code[shebang_len..])
            .set_name("@user_function")
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| match e {
                mlua::Error::SyntaxError { message, .. } => {
                    format!("Error compiling function: {message}")
                }
                other => plain_message(&other),
            })?;
        self.lua.set_app_data(LoadCtx {
            funcs: Vec::new(),
            start: Instant::now(),
        });
        let _ = self.set_loading.call::<()>(true);
        let r: mlua::Result<(bool, Value)> = self.runner.call((f, self.handler.clone()));
        let _ = self.set_loading.call::<()>(false);
        let ctx = self.lua.remove_app_data::<LoadCtx>();
        let funcs = ctx.map(|c| c.funcs).unwrap_or_default();
        match r {
            Ok((true, _)) => {}
            Ok((false, v)) => {
                let msg = match v {
                    Value::Table(t) => t
                        .raw_get::<LuaString>("err")
                        .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned())
                        .unwrap_or_else(|_| "ERR unknown error".into()),
                    _ => "ERR unknown error".into(),
                };
                return Err(format!("Error registering functions: {msg}"));
            }
            Err(e) => {
                return Err(format!(
                    "Error registering functions: {}",
                    plain_message(&e)
                ))
            }
        }
        if funcs.is_empty() {
            return Err("No functions registered".into());
        }
        Ok(funcs)
    }

    /// Loads every registered library into this engine if the function
    /// registry changed since it last did.
    fn sync_functions(&mut self, srv: &Shared) {
        let gen = srv.scripts.fn_generation.load(Ordering::Acquire);
        if gen == self.fn_generation {
            return;
        }
        self.functions.clear();
        let libs = srv.scripts.functions.lock().codes();
        for (code, shebang_len) in libs {
            if let Ok(funcs) = self.load_library(&code, shebang_len) {
                for (m, f) in funcs {
                    self.functions.insert(m.name, f);
                }
            }
        }
        self.fn_generation = gen;
    }

    fn run(&mut self, srv: &Arc<Shared>, job: Job, timed: bool) -> BytesMut {
        let mut out = ReplyBuf::new();
        out.resp3 = job.resp3;
        let shebang_len = if job.flags & flags::EVAL_COMPAT != 0 {
            0
        } else {
            job.shebang_len
        };
        let compiled = if let Some(name) = &job.function {
            self.sync_functions(srv);
            self.functions
                .get(name)
                .cloned()
                .ok_or_else(|| "Function not found".to_string())
        } else {
            self.compile(&job.sha, &job.body, shebang_len)
        };
        let f = match compiled {
            Ok(f) => f,
            Err(msg) if job.function.is_some() => {
                let m = format!("ERR {msg}");
                srv.stats.count_error(m.as_bytes());
                out.error(m.as_bytes());
                return out.buf;
            }
            Err(msg) => {
                let m = format!("ERR Error compiling script (new function): {msg}");
                srv.stats.count_error(m.as_bytes());
                out.error(m.as_bytes());
                return out.buf;
            }
        };
        if job.from_eval {
            srv.scripts
                .remember(&job.sha, &job.body, job.flags, job.shebang_len);
        }
        let g = self.lua.globals();
        let set_args = |name: &str, items: &[Bytes]| -> mlua::Result<()> {
            let t = self.lua.create_table_with_capacity(items.len(), 0)?;
            for (i, a) in items.iter().enumerate() {
                t.raw_set(i + 1, self.lua.create_string(a)?)?;
            }
            g.raw_set(name, t)
        };
        if let Err(e) = set_args("KEYS", &job.keys).and_then(|_| set_args("ARGV", &job.args)) {
            out.error(format!("ERR {}", plain_message(&e)).as_bytes());
            return out.buf;
        }
        // The script's own client (Redis's `lua_client`): a handle of its
        // own, so its reads are not remembered for the caller one by one;
        // the caller's declared keys are (see `redis_call`).
        let script_handle = Arc::new(crate::client::ClientHandle::new(
            0,
            String::new(),
            String::new(),
            -1,
            unix_ms(),
        ));
        let mut client = Client::new(script_handle, true);
        // A script runs as its caller's ACL user (Redis's `scriptPrepareForRun`).
        client.user = job.handle.user.lock().clone();
        client.db = job.db;
        client.deny_blocking = true;
        client.in_script = true;
        let no_writes = job.flags & flags::EVAL_COMPAT == 0 && job.flags & flags::NO_WRITES != 0;
        let ctx = RunCtx {
            srv: srv.clone(),
            client,
            read_only: job.ro || no_writes,
            allow_oom: job.flags & flags::EVAL_COMPAT == 0
                && job.flags & (flags::ALLOW_OOM | flags::NO_WRITES) != 0,
            oom: job.oom,
            wrote: false,
            resp: 2,
            timed,
            start: Instant::now(),
            now: unix_ms(),
            caller: job.handle.clone(),
            keys: job.keys.clone(),
            tracked: false,
        };
        if self.lua.remove_app_data::<LineHook>().is_some() {
            let _ = self.lua.set_hook(
                HookTriggers::new().every_nth_instruction(100_000),
                |lua, _| hook(lua),
            );
        }
        self.lua.set_app_data(ctx);
        let last_cmd = job.handle.last_cmd.load(Ordering::Relaxed);
        let result: mlua::Result<(bool, Value)> = if job.function.is_some() {
            let mk = |items: &[Bytes]| -> mlua::Result<Table> {
                let t = self.lua.create_table_with_capacity(items.len(), 0)?;
                for (i, a) in items.iter().enumerate() {
                    t.raw_set(i + 1, self.lua.create_string(a)?)?;
                }
                Ok(t)
            };
            match (mk(&job.keys), mk(&job.args)) {
                (Ok(k), Ok(a)) => self.fcall.call((f, self.handler.clone(), k, a)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        } else {
            self.runner.call((f, self.handler.clone()))
        };
        job.handle.last_cmd.store(last_cmd, Ordering::Relaxed);
        let script_resp = self.lua.remove_app_data::<RunCtx>().map_or(2, |c| c.resp);
        let _ = g.raw_set("KEYS", Value::Nil);
        let _ = g.raw_set("ARGV", Value::Nil);
        let funcname = job.function.clone().unwrap_or_else(|| job.sha.clone());
        match result {
            Ok((true, v)) => {
                reply_from_lua(srv, &mut out, &v, 0, script_resp);
                // A returned error table is a failed call too.
                if out.buf.first() == Some(&b'-') {
                    job.cmd.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok((false, v)) => {
                job.cmd.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                error_reply(srv, &mut out, &v, &funcname)
            }
            Err(e) => {
                let m = format!(
                    "ERR Error running script {funcname}, {:.100}",
                    plain_message(&e)
                );
                srv.stats.count_error(m.as_bytes());
                out.error(m.as_bytes());
            }
        }
        // A full collection now and then keeps the interpreter small, as
        // Redis's `lua_gc` step after each script.
        let _ = self.lua.gc_step();
        out.buf
    }
}

/// The error a script ended with, as `luaCallFunction` replies it.
fn error_reply(srv: &Shared, out: &mut ReplyBuf, v: &Value, funcname: &str) {
    let counted = matches!(v, Value::Table(t) if t.raw_get::<bool>("ignore_error_stats_update").unwrap_or(false));
    let msg = match v {
        Value::Table(t) => {
            let err: Option<mlua::LuaString> = t.raw_get("err").ok();
            let mut m = match err {
                Some(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                None => "ERR unknown error".into(),
            };
            let source: Option<mlua::LuaString> = t.raw_get("source").ok();
            let line: Option<i64> = t.raw_get("line").ok();
            if let (Some(src), Some(line)) = (source, line) {
                m.push_str(&format!(
                    " script: {funcname}, on {}:{line}.",
                    String::from_utf8_lossy(&src.as_bytes())
                ));
            }
            m
        }
        Value::String(s) => format!(
            "ERR Error running script {funcname}, {:.100}",
            String::from_utf8_lossy(&s.as_bytes())
        ),
        _ => format!("ERR Error running script {funcname}, execution failure"),
    };
    if !counted {
        srv.stats.count_error(msg.as_bytes());
    }
    out.error(msg.as_bytes());
}

/// The `xpcall` handler (Redis's `__redis__err__handler`): turns the error
/// into a table and records the user-code position it was raised at.
fn error_handler(lua: &Lua, err: Value) -> mlua::Result<Table> {
    let t = match err {
        Value::Table(t) => t,
        Value::Error(e) if call_error(&e).is_some() => {
            call_error_table(lua, call_error(&e).unwrap_or_default())?
        }
        Value::Error(e) => {
            let t = lua.create_table()?;
            let m = plain_message(&e);
            let m = if m.starts_with("ERR ") || m.starts_with("BUSY") {
                m
            } else {
                format!("ERR {m}")
            };
            t.raw_set("err", m)?;
            t
        }
        other => {
            let t = lua.create_table()?;
            let s = match &other {
                Value::String(s) => {
                    let mut v = b"ERR ".to_vec();
                    v.extend_from_slice(&s.as_bytes());
                    lua.create_string(&v)?
                }
                Value::Integer(i) => lua.create_string(format!("ERR {i}"))?,
                Value::Number(n) => lua.create_string(format!("ERR {}", lua_number_string(*n)))?,
                Value::Nil => lua.create_string("ERR nil")?,
                Value::Boolean(b) => lua.create_string(format!("ERR {b}"))?,
                _ => lua.create_string("ERR (non-string error)")?,
            };
            t.raw_set("err", s)?;
            t
        }
    };
    // Level 0 is this handler; find the innermost user-code frame.
    for level in 1..20 {
        let found = lua.inspect_stack(level, |d| {
            let s = d.source();
            let what = s.what;
            let src = s.source.as_deref().unwrap_or("").to_string();
            (what, src, d.current_line())
        });
        let Some((what, src, line)) = found else {
            break;
        };
        if what == "C" || src == INTERNAL {
            continue;
        }
        t.raw_set("source", src)?;
        if let Some(l) = line {
            t.raw_set("line", l as i64)?;
        }
        break;
    }
    Ok(t)
}

/// Marks an interpreter whose hook runs on every line (after a kill).
struct LineHook;

/// The count hook: past `busy-reply-threshold` other clients get `BUSY`;
/// after `SCRIPT KILL` the script stops (Redis's `luaMaskCountHook`).
fn hook(lua: &Lua) -> mlua::Result<VmState> {
    if let Some(l) = lua.app_data_ref::<LoadCtx>() {
        if l.start.elapsed() > std::time::Duration::from_millis(500) {
            return Err(rt("ERR FUNCTION LOAD timeout"));
        }
    }
    let Some(ctx) = lua.app_data_ref::<RunCtx>() else {
        return Ok(VmState::Continue);
    };
    if !ctx.timed {
        return Ok(VmState::Continue);
    }
    let s = &ctx.srv.scripts;
    if !s.timedout.load(Ordering::Acquire) {
        let limit = ctx.srv.config.read().busy_reply_threshold;
        let elapsed = ctx.start.elapsed().as_millis() as i64;
        if elapsed >= limit {
            tracing::warn!(
                "Slow script detected: still in execution after {elapsed} milliseconds. You can try killing the script using the SCRIPT KILL command."
            );
            s.set_timedout();
        }
    }
    if s.kill_requested() {
        tracing::warn!("Lua script killed by user with SCRIPT KILL.");
        // From now on every line raises, so a `pcall` cannot swallow it.
        if lua.app_data_ref::<LineHook>().is_none() {
            drop(ctx);
            lua.set_app_data(LineHook);
            let _ = lua.set_hook(HookTriggers::EVERY_LINE, |lua, _| hook(lua));
        }
        return Err(rt("ERR Script killed by user with SCRIPT KILL..."));
    }
    Ok(VmState::Continue)
}

/// Which protocol a parsed reply came in, for the Lua conversion.
fn install_redis(lua: &Lua, g: &Table) -> mlua::Result<()> {
    let redis = lua.create_table()?;
    let call = lua.create_function(|lua, args: MultiValue| match redis_call(lua, args)? {
        Ok(v) => Ok(v),
        Err(msg) => Err(mlua::Error::external(CallError(msg))),
    })?;
    let pcall = lua.create_function(|lua, args: MultiValue| match redis_call(lua, args)? {
        Ok(v) => Ok(v),
        Err(msg) => Ok(Value::Table(call_error_table(lua, &msg)?)),
    })?;
    redis.raw_set("call", call)?;
    redis.raw_set("pcall", pcall)?;
    redis.raw_set(
        "error_reply",
        lua.create_function(|lua, msg: Value| {
            let Value::String(s) = msg else {
                return Err(rt("ERR wrong number or type of arguments"));
            };
            let b = s.as_bytes();
            let mut v = Vec::with_capacity(b.len() + 1);
            if !b.starts_with(b"-") {
                v.push(b'-');
            }
            v.extend_from_slice(&b);
            error_table(lua, &v)
        })?,
    )?;
    redis.raw_set(
        "status_reply",
        lua.create_function(|lua, msg: Value| {
            let Value::String(s) = msg else {
                return Err(rt("ERR wrong number or type of arguments"));
            };
            let t = lua.create_table()?;
            t.raw_set("ok", s)?;
            Ok(t)
        })?,
    )?;
    redis.raw_set(
        "sha1hex",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(rt("ERR wrong number of arguments"));
            }
            let bytes: Vec<u8> = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Integer(i) => i.to_string().into_bytes(),
                Value::Number(n) => lua_number_string(*n).into_bytes(),
                _ => Vec::new(),
            };
            Ok(super::sha1hex(&bytes))
        })?,
    )?;
    redis.raw_set(
        "log",
        lua.create_function(|_, args: MultiValue| {
            if args.len() < 2 {
                return Err(rt("ERR redis.log() requires two arguments or more."));
            }
            let level = match &args[0] {
                Value::Integer(i) => *i,
                Value::Number(n) => *n as i64,
                _ => return Err(rt("ERR First argument must be a number (log level).")),
            };
            if !(0..=3).contains(&level) {
                return Err(rt("ERR Invalid debug level."));
            }
            let msg: Vec<String> = args
                .iter()
                .skip(1)
                .map(|v| match v {
                    Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                    Value::Integer(i) => i.to_string(),
                    Value::Number(n) => lua_number_string(*n),
                    _ => String::new(),
                })
                .collect();
            let msg = msg.join(" ");
            match level {
                0 => tracing::debug!("{msg}"),
                1 => tracing::info!("{msg}"),
                2 => tracing::info!("{msg}"),
                _ => tracing::warn!("{msg}"),
            }
            Ok(())
        })?,
    )?;
    for (name, v) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        redis.raw_set(name, v)?;
    }
    redis.raw_set(
        "setresp",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(rt("ERR redis.setresp() requires one argument."));
            }
            let v = match &args[0] {
                Value::Integer(i) => *i,
                Value::Number(n) => *n as i64,
                _ => -1,
            };
            if v != 2 && v != 3 {
                return Err(rt("ERR RESP version must be 2 or 3."));
            }
            if let Some(mut ctx) = lua.app_data_mut::<RunCtx>() {
                ctx.resp = v as u8;
            }
            Ok(())
        })?,
    )?;
    redis.raw_set(
        "set_repl",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(rt("ERR redis.set_repl() requires one argument."));
            }
            let v = match &args[0] {
                Value::Integer(i) => *i,
                Value::Number(n) => *n as i64,
                _ => -1,
            };
            if !(0..=3).contains(&v) {
                return Err(rt("ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."));
            }
            Ok(())
        })?,
    )?;
    redis.raw_set(
        "acl_check_cmd",
        lua.create_function(|lua, args: MultiValue| {
            if args.is_empty() {
                return Err(rt(
                    "ERR Please specify at least one argument for this redis lib call",
                ));
            }
            let Some(argv) = lua_args(&args) else {
                return Err(rt(
                    "ERR Lua redis lib command arguments must be strings or integers",
                ));
            };
            let Some(ctx) = lua.app_data_ref::<RunCtx>() else {
                return Err(rt(
                    "ERR redis.acl_check_cmd can only be called inside a script invocation",
                ));
            };
            let cmd = crate::command::rename::lookup_argv(&argv)
                .ok_or_else(|| rt("ERR Invalid command passed to redis.acl_check_cmd()"))?;
            Ok(match &ctx.client.user {
                Some(u) => crate::acl::check(&u.rules(), cmd, &argv).is_ok(),
                None => true,
            })
        })?,
    )?;
    redis.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.raw_set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    redis.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    redis.raw_set("REDIS_VERSION", super::REDIS_VERSION)?;
    redis.raw_set("REDIS_VERSION_NUM", super::REDIS_VERSION_NUM)?;
    g.raw_set("redis", redis)?;
    Ok(())
}

/// Redis's `redisLrand48` state: `drand48` arithmetic, so scripts get the
/// same sequence on every platform.
struct Rand48(u64);

impl Rand48 {
    fn next(&mut self) -> i32 {
        self.0 = (self.0.wrapping_mul(0x5DEE_CE66D).wrapping_add(0xB)) & 0xFFFF_FFFF_FFFF;
        (self.0 >> 17) as i32
    }
    fn seed(&mut self, s: i32) {
        self.0 = ((s as u32 as u64) << 16) | 0x330E;
    }
}

fn install_random(lua: &Lua, g: &Table) -> mlua::Result<()> {
    let math: Table = g.get("math")?;
    let state = Arc::new(parking_lot::Mutex::new(Rand48(0x1234_ABCD_330E)));
    let st = state.clone();
    math.raw_set(
        "random",
        lua.create_function(move |_, args: MultiValue| {
            let r = {
                let mut s = st.lock();
                f64::from(s.next() % i32::MAX) / f64::from(i32::MAX)
            };
            let int = |v: &Value, n: usize| -> mlua::Result<i64> {
                match v {
                    Value::Integer(i) => Ok(*i),
                    Value::Number(x) => Ok(*x as i64),
                    _ => Err(rt(format!(
                        "bad argument #{n} to 'random' (number expected)"
                    ))),
                }
            };
            match args.len() {
                0 => Ok(r),
                1 => {
                    let u = int(&args[0], 1)?;
                    if u < 1 {
                        return Err(rt("bad argument #1 to 'random' (interval is empty)"));
                    }
                    Ok((r * u as f64).floor() + 1.0)
                }
                2 => {
                    let l = int(&args[0], 1)?;
                    let u = int(&args[1], 2)?;
                    if l > u {
                        return Err(rt("bad argument #2 to 'random' (interval is empty)"));
                    }
                    Ok((r * (u - l + 1) as f64).floor() + l as f64)
                }
                _ => Err(rt("wrong number of arguments")),
            }
        })?,
    )?;
    math.raw_set(
        "randomseed",
        lua.create_function(move |_, v: Value| {
            let s = match v {
                Value::Integer(i) => i as i32,
                Value::Number(n) => n as i32,
                Value::String(s) => std::str::from_utf8(&s.as_bytes())
                    .ok()
                    .and_then(|t| t.trim().parse::<f64>().ok())
                    .map(|n| n as i32)
                    .ok_or_else(|| {
                        rt("bad argument #1 to 'randomseed' (number expected, got string)")
                    })?,
                _ => return Err(rt("bad argument #1 to 'randomseed' (number expected)")),
            };
            state.lock().seed(s);
            Ok(())
        })?,
    )?;
    Ok(())
}

/// The native half of `redis.call`/`redis.pcall` (Redis's
/// `luaRedisGenericCommand` + `scriptCall`): returns `(reply, nil)` or
/// `(nil, error table)`.
fn redis_call(lua: &Lua, args: MultiValue) -> mlua::Result<Result<Value, Vec<u8>>> {
    let err = |msg: &[u8]| -> mlua::Result<Result<Value, Vec<u8>>> { Ok(Err(msg.to_vec())) };
    if args.is_empty() {
        return err(b"Please specify at least one argument for this redis lib call");
    }
    let Some(argv) = lua_args(&args) else {
        return err(b"Lua redis lib command arguments must be strings or integers");
    };
    let Some(mut ctx) = lua.app_data_mut::<RunCtx>() else {
        return err(b"redis.call/pcall can only be called inside a script invocation");
    };
    let Some(mut cmd) = crate::command::rename::lookup(&argv[0]) else {
        return err(b"Unknown Redis command called from script");
    };
    if cmd.handler.is_none() || (argv.len() >= 2 && !cmd.subcommands.is_empty()) {
        match argv.get(1).and_then(|a| cmd.subcommand(a)) {
            Some(s) => cmd = s,
            None if cmd.handler.is_none() => {
                return err(b"Unknown Redis command called from script");
            }
            None => {}
        }
    }
    let reject = |msg: &[u8]| {
        cmd.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
        // Counted here, as Redis's `scriptCall` does; the script's own
        // error reply then does not count it again.
        let full = error_table(lua, msg)?.raw_get::<LuaString>("err")?;
        ctx.srv.stats.count_error(&full.as_bytes());
        err(msg)
    };
    if !cmd.arity_ok(argv.len()) {
        return reject(b"Wrong number of args calling Redis command from script");
    }
    if cmd.has(flag::NOSCRIPT) && !ctx.srv.scripts.disable_deny.load(Ordering::Relaxed) {
        return reject(b"This Redis command is not allowed from script");
    }
    if let Some(user) = ctx.client.user.as_ref().filter(|u| !u.open()).cloned() {
        let context = crate::acl::log::Context::Lua;
        let checked = crate::acl::enforce(
            &ctx.srv,
            &ctx.caller,
            &user,
            &user.rules(),
            context,
            cmd,
            &argv,
        );
        if let Err(d) = checked {
            return reject(
                format!("The user executing the script {}", d.script_message()).as_bytes(),
            );
        }
    }
    // May-replicate commands count as writes (`PUBLISH` in an RO script
    // would slip past `CLIENT PAUSE WRITE`), as `scriptVerifyWriteCommandAllow`.
    if cmd.has(flag::WRITE | flag::MAY_REPLICATE) && ctx.read_only {
        return reject(b"Write commands are not allowed from read-only scripts.");
    }
    if cmd.has(flag::WRITE) && !ctx.wrote {
        // The server's state may refuse a script's first write (Redis's
        // `scriptVerifyWriteCommandAllow`); once it wrote, it goes on.
        let srv = &ctx.srv;
        let replica = srv.upstream.is_replica.load(Ordering::Relaxed);
        if replica && srv.hot.replica_read_only.load(Ordering::Relaxed) {
            return reject(b"-READONLY You can't write against a read only replica.");
        }
        if !srv.enough_good_replicas() {
            return reject(b"-NOREPLICAS Not enough good replicas to write.");
        }
    }
    if !ctx.allow_oom && !ctx.wrote && ctx.oom && cmd.has(flag::DENYOOM) {
        return reject(format!("-{}", crate::evict::OOM_ERROR).as_bytes());
    }
    if cmd.has(flag::WRITE) {
        ctx.wrote = true;
        if ctx.timed {
            ctx.srv.scripts.wrote.store(true, Ordering::Release);
        }
    }
    if cmd.has(flag::READONLY)
        && !ctx.tracked
        && crate::tracking::remembers(ctx.caller.tracking.load(Ordering::Relaxed))
    {
        // 7.0 tracks the script's declared keys once it reads anything.
        ctx.tracked = true;
        ctx.srv
            .tracking
            .remember(&ctx.caller, ctx.keys.iter().cloned());
    }
    let mut out = ReplyBuf::new();
    out.resp3 = ctx.resp == 3;
    let ctx = &mut *ctx;
    let now = ctx.now;
    if ctx.srv.monitors_active.load(Ordering::Relaxed) && !cmd.has(flag::SKIP_MONITOR | flag::ADMIN)
    {
        ctx.srv.feed_monitors_as(ctx.client.db, "lua", &argv);
    }
    let start_us = crate::clock::unix_us();
    crate::command::dispatch::call(
        &ctx.srv,
        &mut ctx.client,
        &mut out,
        cmd,
        &argv,
        now,
        start_us,
    );
    // The script client's own push frames (keyspace events to itself) go nowhere.
    ctx.client.push.get_mut().buf.clear();
    let bytes = out.buf;
    if bytes.first() == Some(&b'-') {
        let end = bytes.len().saturating_sub(2);
        return Ok(Err(bytes[..end].to_vec()));
    }
    let mut pos = 0;
    Ok(Ok(resp_to_lua(lua, &bytes, &mut pos)?))
}

fn line<'a>(b: &'a [u8], pos: &mut usize) -> mlua::Result<&'a [u8]> {
    let start = *pos;
    let rel = b[start..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or_else(|| rt("ERR bad reply"))?;
    *pos = start + rel + 2;
    Ok(&b[start..start + rel])
}

fn int_of(s: &[u8]) -> i64 {
    ferrite_protocol::parse_i64(s).unwrap_or(0)
}

/// Converts one RESP reply at `pos` to Lua (Redis's
/// `redisProtocolToLuaType`).
fn resp_to_lua(lua: &Lua, b: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    let Some(&kind) = b.get(*pos) else {
        return Ok(Value::Nil);
    };
    *pos += 1;
    let l = line(b, pos)?;
    Ok(match kind {
        b':' => Value::Number(int_of(l) as f64),
        b'$' => {
            let n = int_of(l);
            if n < 0 {
                Value::Boolean(false)
            } else {
                let n = n as usize;
                let s = lua.create_string(&b[*pos..*pos + n])?;
                *pos += n + 2;
                Value::String(s)
            }
        }
        b'+' => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(l)?)?;
            Value::Table(t)
        }
        b'-' => {
            let t = lua.create_table()?;
            t.raw_set("err", lua.create_string(l)?)?;
            Value::Table(t)
        }
        b'*' | b'~' | b'>' => {
            let n = int_of(l);
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let items = lua.create_table()?;
            for i in 0..n as usize {
                let v = resp_to_lua(lua, b, pos)?;
                if kind == b'~' {
                    items.raw_set(v, true)?;
                } else {
                    items.raw_set(i + 1, v)?;
                }
            }
            if kind == b'~' {
                let t = lua.create_table()?;
                t.raw_set("set", items)?;
                Value::Table(t)
            } else {
                Value::Table(items)
            }
        }
        b'%' => {
            let n = int_of(l);
            let m = lua.create_table()?;
            for _ in 0..n.max(0) {
                let k = resp_to_lua(lua, b, pos)?;
                let v = resp_to_lua(lua, b, pos)?;
                m.raw_set(k, v)?;
            }
            let t = lua.create_table()?;
            t.raw_set("map", m)?;
            Value::Table(t)
        }
        b'_' => Value::Nil,
        b'|' => {
            // Attributes are skipped: the reply that follows is the value.
            for _ in 0..int_of(l).max(0) * 2 {
                resp_to_lua(lua, b, pos)?;
            }
            return resp_to_lua(lua, b, pos);
        }
        b'#' => Value::Boolean(l == b"t"),
        b',' => {
            let d = std::str::from_utf8(l)
                .ok()
                .and_then(|s| match s {
                    "inf" => Some(f64::INFINITY),
                    "-inf" => Some(f64::NEG_INFINITY),
                    _ => s.parse().ok(),
                })
                .unwrap_or(0.0);
            let t = lua.create_table()?;
            t.raw_set("double", d)?;
            Value::Table(t)
        }
        b'(' => {
            let t = lua.create_table()?;
            t.raw_set("big_number", lua.create_string(l)?)?;
            Value::Table(t)
        }
        b'=' => {
            let n = int_of(l).max(0) as usize;
            let body = &b[*pos..*pos + n];
            *pos += n + 2;
            let (fmt, s) = if n >= 4 {
                (&body[..3], &body[4..])
            } else {
                (&b""[..], body)
            };
            let v = lua.create_table()?;
            v.raw_set("format", lua.create_string(fmt)?)?;
            v.raw_set("string", lua.create_string(s)?)?;
            let t = lua.create_table()?;
            t.raw_set("verbatim_string", v)?;
            Value::Table(t)
        }
        _ => Value::Nil,
    })
}

/// How deep a script's reply may nest (a self-referencing table ends here).
const MAX_REPLY_DEPTH: usize = 1000;

/// Converts a script's result to the caller's reply (Redis's
/// `luaReplyToRedisReply`).
fn reply_from_lua(srv: &Shared, out: &mut ReplyBuf, v: &Value, depth: usize, resp: u8) {
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        // As Redis: the script's protocol (`redis.setresp`) decides.
        Value::Boolean(b) => {
            if resp == 3 {
                out.boolean(*b);
            } else if *b {
                out.integer(1);
            } else {
                out.null();
            }
        }
        Value::Integer(i) => out.integer(*i),
        Value::Number(n) => out.integer(*n as i64),
        // Redis stops where `lua_checkstack` fails on a self-referencing table.
        Value::Table(_) if depth >= MAX_REPLY_DEPTH => {
            let m = b"ERR reached lua stack limit";
            srv.stats.count_error(m);
            out.error(m);
        }
        Value::Table(t) => table_reply(srv, out, t, depth, resp),
        _ => out.null(),
    }
}

fn table_reply(srv: &Shared, out: &mut ReplyBuf, t: &Table, depth: usize, resp: u8) {
    if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
        let m = e.as_bytes().to_vec();
        if !t
            .raw_get::<bool>("ignore_error_stats_update")
            .unwrap_or(false)
        {
            srv.stats.count_error(&m);
        }
        out.error(&m);
        return;
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
        out.simple(&s.as_bytes());
        return;
    }
    if let Ok(d) = t.raw_get::<Value>("double") {
        if let Some(d) = match d {
            Value::Number(n) => Some(n),
            Value::Integer(i) => Some(i as f64),
            _ => None,
        } {
            out.double(d);
            return;
        }
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("big_number") {
        let clean: Vec<u8> = s
            .as_bytes()
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect();
        if out.resp3 {
            out.raw(b"(");
            out.raw(&clean);
            out.raw(b"\r\n");
        } else {
            out.bulk(&clean);
        }
        return;
    }
    if let Ok(Value::Table(v)) = t.raw_get::<Value>("verbatim_string") {
        let fmt: Option<LuaString> = v.raw_get("format").ok();
        let text: Option<LuaString> = v.raw_get("string").ok();
        if let (Some(fmt), Some(text)) = (fmt, text) {
            let text = text.as_bytes();
            if out.resp3 {
                let fmt = fmt.as_bytes();
                let mut f = [b' '; 3];
                for (d, s) in f.iter_mut().zip(fmt.iter()) {
                    *d = *s;
                }
                out.raw(format!("={}\r\n", text.len() + 4).as_bytes());
                out.raw(&f);
                out.raw(b":");
                out.raw(&text);
                out.raw(b"\r\n");
            } else {
                out.bulk(&text);
            }
            return;
        }
    }
    // Values are converted as iterated: holding them all would exhaust
    // mlua's reference slots on large tables.
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let n = m.pairs::<Value, Value>().count();
        if out.resp3 {
            out.map(n);
        } else {
            out.array(n * 2);
        }
        for (k, v) in m.pairs::<Value, Value>().filter_map(Result::ok) {
            reply_from_lua(srv, out, &k, depth + 1, resp);
            reply_from_lua(srv, out, &v, depth + 1, resp);
        }
        return;
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("set") {
        let n = m.pairs::<Value, Value>().count();
        if out.resp3 {
            out.set(n);
        } else {
            out.array(n);
        }
        for (k, _) in m.pairs::<Value, Value>().filter_map(Result::ok) {
            reply_from_lua(srv, out, &k, depth + 1, resp);
        }
        return;
    }
    let mut n = 0usize;
    while !matches!(t.raw_get::<Value>(n + 1), Ok(Value::Nil) | Err(_)) {
        n += 1;
    }
    out.array(n);
    for i in 1..=n {
        let v = t.raw_get::<Value>(i).unwrap_or(Value::Nil);
        reply_from_lua(srv, out, &v, depth + 1, resp);
    }
}
