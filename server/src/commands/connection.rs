//! Connection commands: `PING ECHO QUIT RESET HELLO AUTH SELECT SWAPDB CLIENT`.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::client::ReplyMode;
use crate::command::ctx::{int_arg, is};
use crate::command::{CmdError, CmdResult, Ctx, Handler};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("ping", ping),
    ("echo", echo),
    ("quit", quit),
    ("reset", reset),
    ("hello", hello),
    ("auth", auth),
    ("select", select),
    ("swapdb", swapdb),
    ("client|id", client_id),
    ("client|setname", client_setname),
    ("client|getname", client_getname),
    ("client|list", client_list),
    ("client|info", client_info),
    ("client|kill", client_kill),
    ("client|no-evict", client_no_evict),
    ("client|reply", client_reply),
    ("client|help", client_help),
    ("client|unblock", client_unblock),
    ("client|pause", client_pause),
    ("client|unpause", client_unpause),
];

/// The version we answer as: clients gate features on it.
pub const REDIS_VERSION: &str = "7.0.15";

fn ping(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        return Err(ctx.arity_error());
    }
    if ctx.client.pubsub && !ctx.out.resp3 {
        // RESP2 subscribers can only read arrays (Redis's pingCommand).
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(args.get(1).map_or(&b""[..], |m| &m[..]));
        return Ok(());
    }
    match args.get(1) {
        Some(m) => ctx.out.bulk(m),
        None => ctx.out.simple(b"PONG"),
    }
    Ok(())
}

fn echo(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    ctx.out.bulk(&args[1]);
    Ok(())
}

fn quit(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.out.ok();
    ctx.client.close_after_reply = true;
    // Gone at once, as Redis frees it right after this reply: tracking
    // redirected to it sees the broken redirect from now on, and it no
    // longer counts as a tracking client.
    ctx.srv.clients.remove(ctx.client.id());
    ctx.srv.tracking.disable(&ctx.client.handle);
    Ok(())
}

fn reset(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    crate::commands::multi::discard_transaction(ctx.srv, ctx.client);
    ctx.srv.tracking.disable(&ctx.client.handle);
    if let Some(st) = ctx.client.sub.as_mut() {
        ctx.srv.pubsub.remove_all(st);
    }
    ctx.client.pubsub = false;
    let c = &mut *ctx.client;
    c.db = 0;
    c.handle.db.store(0, Ordering::Relaxed);
    c.reply_mode = ReplyMode::On;
    *c.handle.name.lock() = None;
    c.handle.no_evict.store(false, Ordering::Relaxed);
    // Back to the default user (Redis's `clientSetDefaultAuth`).
    let user = ctx.srv.acl.default_user();
    c.authenticated = !user.needs_auth();
    if c.user.is_some() {
        c.set_user(user);
    }
    ctx.out.resp3 = false;
    c.handle.resp.store(2, Ordering::Relaxed);
    ctx.out.simple(b"RESET");
    Ok(())
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Logs the client in as `user` if `pass` opens it (Redis's
/// `ACLAuthenticateUser`); a failure is logged in the ACL log under the
/// command's name as typed.
fn authenticate(
    ctx: &mut Ctx<'_>,
    cmd_name: &[u8],
    user: &[u8],
    pass: &[u8],
) -> Result<(), CmdError> {
    match ctx.srv.acl.authenticate(user, pass) {
        Some(cell) => {
            let previous = ctx.client.user.clone();
            ctx.client.set_user(cell.clone());
            // `ACL DELUSER`/`LOAD` marks a user removed before it looks for
            // its clients: either it finds this one or this sees the mark.
            if cell.removed() {
                match previous {
                    Some(p) => ctx.client.set_user(p),
                    None => {
                        ctx.client.user = None;
                        *ctx.client.handle.user.lock() = None;
                    }
                }
                return Err(CmdError::Other(WRONGPASS.into()));
            }
            ctx.client.authenticated = true;
            Ok(())
        }
        None => {
            let context = ctx.client.acl_context();
            crate::acl::log_denial(
                ctx.srv,
                &ctx.client.handle,
                crate::acl::log::Reason::Auth,
                context,
                cmd_name.to_vec(),
                user.to_vec(),
            );
            Err(CmdError::Other(WRONGPASS.into()))
        }
    }
}

fn auth(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    if args.len() == 2 && ctx.srv.acl.default_user_nopass() {
        return Err(CmdError::err(
            "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ));
    }
    let (user, pass): (&[u8], &[u8]) = if args.len() == 3 {
        (&args[1], &args[2])
    } else {
        (b"default", &args[1])
    };
    authenticate(ctx, &args[0], user, pass)?;
    ctx.out.ok();
    Ok(())
}

fn hello(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut proto = None;
    let mut i = 1;
    if args.len() > 1 {
        let v = ferrite_protocol::parse_i64(&args[1])
            .ok_or_else(|| CmdError::err("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(CmdError::Other(
                "NOPROTO unsupported protocol version".into(),
            ));
        }
        proto = Some(v);
        i = 2;
    }
    let mut setname = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "auth") && more >= 2 {
            authenticate(ctx, &args[0], &args[i + 1], &args[i + 2])?;
            i += 3;
        } else if is(&args[i], "setname") && more >= 1 {
            setname = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(CmdError::err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    if !ctx.client.authenticated {
        return Err(CmdError::Other("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into()));
    }
    if let Some(name) = setname {
        validate_name(&name)?;
        *ctx.client.handle.name.lock() = if name.is_empty() { None } else { Some(name) };
    }
    if let Some(p) = proto {
        ctx.out.resp3 = p == 3;
        ctx.client.handle.resp.store(p as usize, Ordering::Relaxed);
        if p == 3 {
            // RESP3 connections can receive tracking pushes from others.
            crate::commands::tracking::ensure_feed(ctx);
        }
    }
    let out = &mut *ctx.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.integer(if out.resp3 { 3 } else { 2 });
    out.bulk(b"id");
    out.integer(ctx.client.id() as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(if ctx.srv.upstream.is_replica.load(Ordering::Relaxed) {
        b"replica".as_slice()
    } else {
        b"master".as_slice()
    });
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

fn select(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let idx = int_arg(&args[1])?;
    if idx < 0 || idx as usize >= ctx.srv.store.db_count() {
        return Err(CmdError::DbIndexOutOfRange);
    }
    ctx.client.db = idx as usize;
    ctx.client.handle.db.store(idx as usize, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

fn swapdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let a = ferrite_protocol::parse_i64(&args[1])
        .ok_or_else(|| CmdError::err("invalid first DB index"))?;
    let b = ferrite_protocol::parse_i64(&args[2])
        .ok_or_else(|| CmdError::err("invalid second DB index"))?;
    let n = ctx.srv.store.db_count() as i64;
    if a < 0 || b < 0 || a >= n || b >= n {
        return Err(CmdError::DbIndexOutOfRange);
    }
    ctx.srv.store.swap_dbs(a as usize, b as usize, ctx.now);
    // Clients blocked in either database may now find their keys.
    ctx.srv.blocking.db_ready(a as usize);
    ctx.srv.blocking.db_ready(b as usize);
    ctx.propagate(&[b"SWAPDB", &args[1], &args[2]]);
    ctx.out.ok();
    Ok(())
}

/// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: ends another client's blocking
/// command as if it timed out, or with an `UNBLOCKED` error.
fn client_unblock(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let id = crate::command::ctx::int_arg(&args[2])?;
    let error = match args.get(3) {
        None => false,
        Some(a) if a.eq_ignore_ascii_case(b"timeout") => false,
        Some(a) if a.eq_ignore_ascii_case(b"error") => true,
        Some(_) => {
            return Err(CmdError::err(
                "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ))
        }
    };
    let done = id > 0 && ctx.srv.blocking.unblock(id as u64, error);
    ctx.out.integer(i64::from(done));
    Ok(())
}

/// `CLIENT PAUSE timeout [WRITE|ALL]`: holds clients' commands back for
/// `timeout` ms (see `crate::pause`).
fn client_pause(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 4 {
        return Err(CmdError::subcommand_syntax(args));
    }
    let kind = match args.get(3) {
        None => crate::pause::Kind::All,
        Some(a) if a.eq_ignore_ascii_case(b"write") => crate::pause::Kind::Write,
        Some(a) if a.eq_ignore_ascii_case(b"all") => crate::pause::Kind::All,
        Some(_) => return Err(CmdError::err("CLIENT PAUSE mode must be WRITE or ALL")),
    };
    let ms = ferrite_protocol::parse_i64(&args[2])
        .ok_or_else(|| CmdError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    let now = crate::command::ctx::unix_ms();
    let end = if ms > 0 { ms.saturating_add(now) } else { 0 };
    ctx.srv.pause.pause(&ctx.srv.store, end, kind, now);
    ctx.out.ok();
    Ok(())
}

/// `CLIENT UNPAUSE`: ends a pause; the commands it held back run.
fn client_unpause(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.srv.pause.unpause(&ctx.srv.store);
    ctx.out.ok();
    Ok(())
}

fn client_id(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.out.integer(ctx.client.id() as i64);
    Ok(())
}

fn validate_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn client_setname(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    validate_name(&args[2])?;
    *ctx.client.handle.name.lock() = if args[2].is_empty() {
        None
    } else {
        Some(args[2].clone())
    };
    ctx.out.ok();
    Ok(())
}

fn client_getname(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    match ctx.client.handle.name.lock().as_ref() {
        Some(n) => ctx.out.bulk(n),
        None => ctx.out.null(),
    }
    Ok(())
}

/// A `TYPE` argument as [`crate::client::ClientHandle::client_type`]
/// names it.
fn client_type_arg(t: &[u8]) -> Result<&'static str, CmdError> {
    Ok(if is(t, "normal") {
        "normal"
    } else if is(t, "master") {
        "master"
    } else if is(t, "replica") || is(t, "slave") {
        "slave"
    } else if is(t, "pubsub") {
        "pubsub"
    } else {
        return Err(CmdError::err(format!(
            "Unknown client type '{}'",
            String::from_utf8_lossy(t)
        )));
    })
}

fn client_list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut ids: Option<Vec<u64>> = None;
    let mut ctype: Option<&'static str> = None;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "type") && i + 1 < args.len() {
            ctype = Some(client_type_arg(&args[i + 1])?);
            i += 2;
        } else if is(&args[i], "id") && i + 1 < args.len() {
            let mut v = ids.take().unwrap_or_default();
            for a in &args[i + 1..] {
                match ferrite_protocol::parse_i64(a) {
                    Some(n) if n > 0 => v.push(n as u64),
                    _ => return Err(CmdError::err("Invalid client ID")),
                }
            }
            ids = Some(v);
            i = args.len();
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let now = ctx.now;
    let mut text = String::new();
    for c in ctx.srv.clients.all() {
        if ids.as_ref().is_some_and(|v| !v.contains(&c.id))
            || ctype.is_some_and(|t| t != c.client_type())
        {
            continue;
        }
        text.push_str(&c.info_line(now));
        text.push('\n');
    }
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

fn client_info(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let mut line = ctx.client.handle.info_line(ctx.now);
    line.push('\n');
    ctx.out.verbatim(line.as_bytes());
    Ok(())
}

fn client_kill(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Old form: CLIENT KILL addr:port
    if args.len() == 3 {
        let addr = String::from_utf8_lossy(&args[2]).into_owned();
        let victim = ctx.srv.clients.all().into_iter().find(|c| c.addr == addr);
        return match victim {
            Some(c) => {
                if c.id == ctx.client.id() {
                    ctx.client.close_after_reply = true;
                } else {
                    c.kill();
                }
                ctx.out.ok();
                Ok(())
            }
            None => Err(CmdError::err("No such client")),
        };
    }
    if !args.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut skipme = true;
    let mut ctype: Option<&'static str> = None;
    let mut user: Option<std::sync::Arc<crate::acl::UserCell>> = None;
    let mut i = 2;
    while i + 1 < args.len() {
        let (k, v) = (&args[i], &args[i + 1]);
        if is(k, "id") {
            id = Some(
                ferrite_protocol::parse_i64(v)
                    .filter(|&n| n > 0)
                    .ok_or_else(|| CmdError::err("client-id should be greater than 0"))?
                    as u64,
            );
        } else if is(k, "addr") {
            addr = Some(String::from_utf8_lossy(v).into_owned());
        } else if is(k, "laddr") {
            laddr = Some(String::from_utf8_lossy(v).into_owned());
        } else if is(k, "type") {
            ctype = Some(client_type_arg(v)?);
        } else if is(k, "user") {
            user = Some(ctx.srv.acl.get(v).ok_or_else(|| {
                CmdError::err(format!("No such user '{}'", String::from_utf8_lossy(v)))
            })?);
        } else if is(k, "skipme") {
            if is(v, "yes") {
                skipme = true;
            } else if is(v, "no") {
                skipme = false;
            } else {
                return Err(CmdError::Syntax);
            }
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let mut killed = 0;
    {
        for c in ctx.srv.clients.all() {
            if id.is_some_and(|x| x != c.id)
                || addr.as_ref().is_some_and(|a| *a != c.addr)
                || laddr.as_ref().is_some_and(|a| *a != c.laddr)
                || ctype.is_some_and(|t| t != c.client_type())
                || user.as_ref().is_some_and(|u| !c.runs_as(u))
            {
                continue;
            }
            if c.id == ctx.client.id() {
                if skipme {
                    continue;
                }
                ctx.client.close_after_reply = true;
            } else {
                c.kill();
            }
            killed += 1;
        }
    }
    ctx.out.integer(killed);
    Ok(())
}

fn client_no_evict(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let on = if is(&args[2], "on") {
        true
    } else if is(&args[2], "off") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    ctx.client.handle.no_evict.store(on, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

fn client_reply(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if is(&args[2], "on") {
        ctx.client.reply_mode = ReplyMode::On;
        ctx.out.ok();
    } else if is(&args[2], "off") {
        ctx.client.reply_mode = ReplyMode::Off;
    } else if is(&args[2], "skip") {
        if ctx.client.reply_mode != ReplyMode::Off {
            ctx.client.reply_mode = ReplyMode::SkipNext;
        }
    } else {
        return Err(CmdError::Syntax);
    }
    Ok(())
}

/// Writes a `HELP` reply: the header line then the lines, as Redis's `addReplyHelp`.
pub fn write_help(ctx: &mut Ctx<'_>, container: &str, lines: &[&str]) {
    ctx.out.array(lines.len() + 3);
    ctx.out.simple(
        format!(
            "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            container.to_ascii_uppercase()
        )
        .as_bytes(),
    );
    for l in lines {
        ctx.out.simple(l.as_bytes());
    }
    ctx.out.simple(b"HELP");
    ctx.out.simple(b"    Prints this help.");
}

/// Redis 7.0's text (which leaves `KILL ID` unlisted).
fn client_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    write_help(
        ctx,
        "client",
        &[
            "CACHING (YES|NO)",
            "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
            "GETREDIR",
            "    Return the client ID we are redirecting to when tracking is enabled.",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
            "         [OPTIN] [OPTOUT] [NOLOOP]",
            "    Control server assisted client side caching.",
            "TRACKINGINFO",
            "    Report tracking status for the current connection.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
        ],
    );
    Ok(())
}
