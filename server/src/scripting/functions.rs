//! Redis 7.0 functions: `FUNCTION LOAD/DELETE/FLUSH/LIST/STATS/KILL` and
//! `FCALL`/`FCALL_RO`, after `functions.c` and `function_lua.c`.
//!
//! The registry of libraries (code and the functions each registered) is
//! shared; every interpreter loads the libraries itself when the registry's
//! generation changes, so `FCALL` runs on the script thread like `EVAL`.
//! `FUNCTION LOAD/DELETE/FLUSH/RESTORE` are propagated as received, as
//! Redis does. Libraries are saved in RDB files (`FUNCTION2` records) and
//! sent to replicas with the snapshot; `FUNCTION DUMP` writes the same
//! records with `DUMP`'s version and CRC-64 footer.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use bytes::Bytes;

use super::{engine, flags};
use crate::command::ctx::is;
use crate::command::{CmdError, CmdResult, Ctx};

/// One registered function.
#[derive(Clone, Debug)]
pub struct FnMeta {
    pub name: String,
    pub desc: Option<String>,
    pub flags: u32,
}

#[derive(Clone)]
pub struct Library {
    code: Bytes,
    shebang_len: usize,
    funcs: Vec<FnMeta>,
}

/// The libraries, by name.
#[derive(Default)]
pub struct Registry {
    libs: BTreeMap<String, Library>,
}

impl Registry {
    /// Adds `new` (`FUNCTION RESTORE` APPEND or REPLACE, Redis's
    /// `libraryJoin`): a library already here fails unless `replace`, and
    /// no function name may then be taken twice. All or nothing.
    fn join(&mut self, new: Libraries, replace: bool) -> Result<(), String> {
        let mut next = self.libs.clone();
        for (name, _) in &new.0 {
            if next.remove(name).is_some() && !replace {
                return Err(format!("Library {name} already exists"));
            }
        }
        for (_, lib) in &new.0 {
            for f in &lib.funcs {
                let taken = next
                    .values()
                    .any(|l| l.funcs.iter().any(|g| g.name.eq_ignore_ascii_case(&f.name)));
                if taken {
                    return Err(format!("Function {} already exists", f.name));
                }
            }
        }
        next.extend(new.0);
        self.libs = next;
        Ok(())
    }

    /// Every library's code, for an interpreter to load.
    pub fn codes(&self) -> Vec<(Bytes, usize)> {
        self.libs
            .values()
            .map(|l| (l.code.clone(), l.shebang_len))
            .collect()
    }

    /// Libraries, functions and code bytes (`INFO memory`).
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.libs.len(),
            self.libs.values().map(|l| l.funcs.len()).sum(),
            self.libs.values().map(|l| l.code.len()).sum(),
        )
    }

    /// The flags function `fname` declares, if it exists.
    pub fn flags_of(&self, fname: &str) -> Option<u32> {
        self.find(fname).map(|f| f.flags)
    }

    fn find(&self, fname: &str) -> Option<&FnMeta> {
        self.libs
            .values()
            .flat_map(|l| l.funcs.iter())
            .find(|f| f.name.eq_ignore_ascii_case(fname))
    }
}

/// Libraries read from an RDB file or a `FUNCTION RESTORE` payload,
/// compiled and checked, ready to install.
#[derive(Default)]
pub struct Libraries(Vec<(String, Library)>);

impl Libraries {
    /// Compiles each library (Redis's `rdbFunctionLoad` into a fresh
    /// context): one that does not load, a library given twice or a
    /// function name taken twice fails the whole set.
    pub fn compile(srv: &crate::shared::Shared, codes: Vec<Bytes>) -> Result<Libraries, String> {
        if codes.is_empty() {
            return Ok(Libraries::default());
        }
        let me: Arc<crate::shared::Shared> = srv
            .scripts
            .me
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| "scripting is not available".to_string())?;
        let mut out: Vec<(String, Library)> = Vec::with_capacity(codes.len());
        for code in codes {
            let (name, shebang_len) = lib_metadata(&code)?;
            if out.iter().any(|(n, _)| *n == name) {
                return Err(format!("Library '{name}' already exists"));
            }
            let funcs = engine::load_library_check(&me, &code, shebang_len)?;
            for f in &funcs {
                let taken = out
                    .iter()
                    .any(|(_, l)| l.funcs.iter().any(|g| g.name.eq_ignore_ascii_case(&f.name)));
                if taken {
                    return Err(format!("Function {} already exists", f.name));
                }
            }
            out.push((
                name,
                Library {
                    code,
                    shebang_len,
                    funcs,
                },
            ));
        }
        Ok(Libraries(out))
    }
}

/// Replaces every library with `libs`: a whole dataset loaded (start-up,
/// `DEBUG RELOAD`, a replica's full sync) drops the functions it had, as
/// Redis's `emptyData` does.
pub fn install_all(srv: &crate::shared::Shared, libs: Libraries) {
    let s = &srv.scripts;
    s.functions.lock().libs = libs.0.into_iter().collect();
    s.fn_generation.fetch_add(1, Ordering::AcqRel);
}

/// Adds `libs` to the libraries there are (`DEBUG RELOAD NOFLUSH`):
/// one already there is an error unless `replace` (`MERGE`).
pub fn merge_libraries(
    srv: &crate::shared::Shared,
    libs: Libraries,
    replace: bool,
) -> Result<(), String> {
    let s = &srv.scripts;
    s.functions.lock().join(libs, replace)?;
    s.fn_generation.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// The code of every library, for `FUNCTION DUMP`.
pub fn library_codes(srv: &crate::shared::Shared) -> Vec<Bytes> {
    srv.scripts
        .functions
        .lock()
        .libs
        .values()
        .map(|l| l.code.clone())
        .collect()
}

/// Runs `f` on the code of every library with the registry held. The
/// FUNCTION commands change the registry and propagate the change under
/// the same lock, so a snapshot that takes its stream offset inside `f`
/// holds each library either in its `FUNCTION2` records or in the stream
/// after that offset, never in both or neither.
pub fn with_library_codes<R>(srv: &crate::shared::Shared, f: impl FnOnce(&[Bytes]) -> R) -> R {
    let reg = srv.scripts.functions.lock();
    let codes: Vec<Bytes> = reg.libs.values().map(|l| l.code.clone()).collect();
    let out = f(&codes);
    drop(reg);
    out
}

/// `FUNCTION DUMP`: every library as a `FUNCTION2` record, then `DUMP`'s
/// footer (RDB version, CRC-64).
pub(super) fn function_dump(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let mut out = Vec::new();
    for code in library_codes(ctx.srv) {
        out.push(crate::rdb::OPCODE_FUNCTION2);
        crate::rdb::put_string(&mut out, &code);
    }
    crate::commands::dump::put_footer(&mut out);
    ctx.out.bulk(&out);
    Ok(())
}

/// `FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]` (Redis's
/// `functionRestoreCommand`).
pub(super) fn function_restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 4 {
        return Err(CmdError::subcommand_syntax(args));
    }
    #[derive(PartialEq)]
    enum Policy {
        Append,
        Replace,
        Flush,
    }
    let policy = match args.get(3) {
        None => Policy::Append,
        Some(a) if is(a, "append") => Policy::Append,
        Some(a) if is(a, "replace") => Policy::Replace,
        Some(a) if is(a, "flush") => Policy::Flush,
        Some(_) => {
            return Err(CmdError::err(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ))
        }
    };
    let body = crate::commands::dump::verify_payload(&args[2])
        .ok_or_else(|| CmdError::err("DUMP payload version or checksum are wrong"))?;
    let codes = crate::rdb_load::function_payload(body).map_err(CmdError::err)?;
    let codes = codes.into_iter().map(Bytes::from).collect();
    let libs = Libraries::compile(ctx.srv, codes).map_err(CmdError::err)?;
    let s = &ctx.srv.scripts;
    // Changed and propagated under one lock (see `with_library_codes`).
    let mut reg = s.functions.lock();
    if policy == Policy::Flush {
        reg.libs = libs.0.into_iter().collect();
    } else {
        reg.join(libs, policy == Policy::Replace)
            .map_err(CmdError::err)?;
    }
    s.fn_generation.fetch_add(1, Ordering::AcqRel);
    ctx.propagate_argv(args);
    drop(reg);
    ctx.out.ok();
    Ok(())
}

/// Letters, digits and `_`, at least one (library and function names).
pub fn valid_name(n: &[u8]) -> bool {
    !n.is_empty() && n.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `#!lua name=<lib>`: the library name and the shebang length.
fn lib_metadata(code: &[u8]) -> Result<(String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    // The first line, split as `sdssplitargs` (quotes allowed), as
    // `functionExtractLibMetaData`; the engine is checked after the rest.
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let parts = ferrite_protocol::split_args(&code[..end])
        .filter(|p| !p.is_empty())
        .ok_or_else(|| "Invalid library metadata".to_string())?;
    let engine = &parts[0][2.min(parts[0].len())..];
    let mut name = None;
    for p in &parts[1..] {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(String::from_utf8_lossy(&p[5..]).into_owned());
        } else {
            return Err(format!(
                "Invalid metadata value given: {}",
                String::from_utf8_lossy(p)
            ));
        }
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    if !valid_name(name.as_bytes()) {
        return Err("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(format!(
            "Engine '{}' not found",
            String::from_utf8_lossy(engine)
        ));
    }
    Ok((name, end))
}

pub(super) fn function_load(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut i = 2;
    while i < args.len() - 1 {
        if is(&args[i], "replace") {
            replace = true;
            i += 1;
        } else {
            return Err(CmdError::err(format!(
                "Unknown option given: {}",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    if i != args.len() - 1 {
        return Err(CmdError::err("Function code was not given"));
    }
    let code = args[i].clone();
    let (name, shebang_len) = lib_metadata(&code).map_err(CmdError::err)?;
    let s = &ctx.srv.scripts;
    if !replace && s.functions.lock().libs.contains_key(&name) {
        return Err(CmdError::err(format!("Library '{name}' already exists")));
    }
    let me = s.me.get().and_then(Weak::upgrade);
    let Some(me) = me else {
        return Err(CmdError::err("scripting is not available"));
    };
    let funcs = engine::load_library_check(&me, &code, shebang_len).map_err(CmdError::err)?;
    let mut reg = s.functions.lock();
    if !replace && reg.libs.contains_key(&name) {
        return Err(CmdError::err(format!("Library '{name}' already exists")));
    }
    for f in &funcs {
        let owner = reg
            .libs
            .iter()
            .find(|(_, l)| l.funcs.iter().any(|g| g.name.eq_ignore_ascii_case(&f.name)));
        if let Some((lib, _)) = owner {
            if *lib != name {
                return Err(CmdError::err(format!("Function {} already exists", f.name)));
            }
        }
    }
    reg.libs.insert(
        name.clone(),
        Library {
            code,
            shebang_len,
            funcs,
        },
    );
    s.fn_generation.fetch_add(1, Ordering::AcqRel);
    // Replicas and the AOF load the library too (Redis propagates it),
    // under the registry lock (see `with_library_codes`).
    ctx.propagate_argv(args);
    drop(reg);
    ctx.out.bulk(name.as_bytes());
    Ok(())
}

pub(super) fn function_delete(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[2]).into_owned();
    let s = &ctx.srv.scripts;
    let mut reg = s.functions.lock();
    if reg.libs.remove(&name).is_none() {
        return Err(CmdError::err("Library not found"));
    }
    s.fn_generation.fetch_add(1, Ordering::AcqRel);
    ctx.propagate_argv(args);
    drop(reg);
    ctx.out.ok();
    Ok(())
}

pub(super) fn function_flush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::subcommand_syntax(args));
    }
    match args.get(2) {
        None => {}
        Some(a) if is(a, "sync") || is(a, "async") => {}
        Some(_) => {
            return Err(CmdError::err(
                "FUNCTION FLUSH only supports SYNC|ASYNC option",
            ))
        }
    }
    let s = &ctx.srv.scripts;
    let mut reg = s.functions.lock();
    reg.libs.clear();
    s.fn_generation.fetch_add(1, Ordering::AcqRel);
    ctx.propagate_argv(args);
    drop(reg);
    ctx.out.ok();
    Ok(())
}

fn flag_names(f: u32) -> Vec<&'static str> {
    let mut v = Vec::new();
    for (bit, name) in [
        (flags::NO_WRITES, "no-writes"),
        (flags::ALLOW_OOM, "allow-oom"),
        (flags::ALLOW_STALE, "allow-stale"),
        (flags::NO_CLUSTER, "no-cluster"),
        (flags::ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
    ] {
        if f & bit != 0 {
            v.push(name);
        }
    }
    v
}

pub(super) fn function_list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut with_code = false;
    let mut pattern: Option<Bytes> = None;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "withcode") && !with_code {
            with_code = true;
            i += 1;
        } else if is(&args[i], "libraryname") && pattern.is_none() {
            let Some(p) = args.get(i + 1) else {
                return Err(CmdError::err("library name argument was not given"));
            };
            pattern = Some(p.clone());
            i += 2;
        } else {
            return Err(CmdError::err(format!(
                "Unknown argument {}",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    let reg = ctx.srv.scripts.functions.lock();
    let libs: Vec<(&String, &Library)> = reg
        .libs
        .iter()
        .filter(|(n, _)| {
            pattern
                .as_ref()
                .is_none_or(|p| ferrite_storage::glob_match(p, n.as_bytes(), false))
        })
        .collect();
    let out = &mut *ctx.out;
    out.array(libs.len());
    for (name, lib) in libs {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.funcs.len());
        for f in &lib.funcs {
            out.map(3);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"description");
            match &f.desc {
                Some(d) => out.bulk(d.as_bytes()),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names = flag_names(f.flags);
            out.set(names.len());
            for n in names {
                out.bulk(n.as_bytes());
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
    Ok(())
}

pub(super) fn function_stats(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let s = &ctx.srv.scripts;
    let (libs, funcs) = {
        let reg = s.functions.lock();
        (
            reg.libs.len(),
            reg.libs.values().map(|l| l.funcs.len()).sum::<usize>(),
        )
    };
    let running = match s.running_now() {
        // Redis's `slowevalerr`: an `EVAL` script, not a function, runs.
        super::RunningNow::Eval => return Err(CmdError::Other(super::BUSY_ERROR.into())),
        super::RunningNow::Nothing => None,
        super::RunningNow::Function { name, call, ms } => Some((name, call, ms)),
    };
    let out = &mut *ctx.out;
    out.map(2);
    out.bulk(b"running_script");
    match running {
        Some((name, call, ms)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(call.len());
            for a in &call {
                out.bulk(a);
            }
            out.bulk(b"duration_ms");
            out.integer(ms);
        }
        None => out.null(),
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.integer(libs as i64);
    out.bulk(b"functions_count");
    out.integer(funcs as i64);
    Ok(())
}

/// Redis 7.0's text.
pub(super) fn function_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    const HELP: &[&str] = &[
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries:",
        "    * Library name",
        "    * The engine used to run the Library",
        "    * Library description",
        "    * Functions list",
        "    * Library code (if WITHCODE is given)",
        "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
        "STATS",
        "    Return information about the current function running:",
        "    * Function name",
        "    * Command used to run the function",
        "    * Duration in MS that the function is running",
        "    If no function is running, return nil",
        "    In addition, returns a list of available engines.",
        "KILL",
        "    Kill the current running function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the libraries.",
        "    * SYNC: Synchronously flush the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
        "    control how to handle existing libraries (default APPEND):",
        "    * FLUSH: delete all existing libraries.",
        "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
        "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
        "      libraries with the new libraries (notice that even on this option there is a chance of failure",
        "      in case of functions name collision with another library).",
    ];
    crate::commands::connection::write_help(ctx, "FUNCTION", HELP);
    Ok(())
}

/// The name (as registered: lookups ignore case) and flags of function
/// `name`, or `ERR Function not found`.
pub(super) fn lookup(ctx: &Ctx<'_>, name: &str) -> Result<(String, u32), CmdError> {
    ctx.srv
        .scripts
        .functions
        .lock()
        .find(name)
        .map(|f| (f.name.clone(), f.flags))
        .ok_or_else(|| CmdError::err("Function not found"))
}
