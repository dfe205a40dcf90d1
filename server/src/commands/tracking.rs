//! Client-side caching commands: `CLIENT TRACKING`, `CLIENT CACHING`,
//! `CLIENT GETREDIR`, `CLIENT TRACKINGINFO` (the mechanics live in
//! `crate::tracking`).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::command::ctx::is;
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::pubsub::SubState;
use crate::tracking::flag;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("client|tracking", client_tracking),
    ("client|caching", client_caching),
    ("client|getredir", client_getredir),
    ("client|trackinginfo", client_trackinginfo),
];

/// Gives the connection a message feed if it has none, so invalidations
/// from other connections can reach it (`HELLO 3`, `CLIENT TRACKING on`).
pub fn ensure_feed(ctx: &mut Ctx<'_>) {
    if ctx.client.sub.is_none() {
        ctx.client.sub = Some(SubState::new(ctx.client.handle.clone()));
    }
}

/// `CLIENT TRACKING <ON|OFF> [REDIRECT id] [BCAST] [PREFIX p ...] [OPTIN]
/// [OPTOUT] [NOLOOP]`, with Redis's checks in Redis's order.
fn client_tracking(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut redirect = 0i64;
    let mut options = 0u32;
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        let a = &args[j];
        if is(a, "redirect") && more {
            j += 1;
            if redirect != 0 {
                return Err(CmdError::err(
                    "A client can only redirect to a single other client",
                ));
            }
            redirect = crate::command::ctx::int_arg(&args[j])?;
            // The target must exist now, though it may leave later.
            let exists = u64::try_from(redirect)
                .ok()
                .and_then(|id| ctx.srv.clients.get(id))
                .is_some();
            if !exists {
                return Err(CmdError::err(
                    "The client ID you want redirect to does not exist",
                ));
            }
        } else if is(a, "bcast") {
            options |= flag::BCAST;
        } else if is(a, "optin") {
            options |= flag::OPTIN;
        } else if is(a, "optout") {
            options |= flag::OPTOUT;
        } else if is(a, "noloop") {
            options |= flag::NOLOOP;
        } else if is(a, "prefix") && more {
            j += 1;
            prefixes.push(args[j].clone());
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let handle = ctx.client.handle.clone();
    if is(&args[2], "on") {
        if options & flag::BCAST == 0 && !prefixes.is_empty() {
            return Err(CmdError::err(
                "PREFIX option requires BCAST mode to be enabled",
            ));
        }
        let bits = handle.tracking.load(Ordering::Relaxed);
        if bits & flag::ON != 0 && (bits & flag::BCAST != 0) != (options & flag::BCAST != 0) {
            return Err(CmdError::err("You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."));
        }
        if options & flag::BCAST != 0 && options & (flag::OPTIN | flag::OPTOUT) != 0 {
            return Err(CmdError::err(
                "OPTIN and OPTOUT are not compatible with BCAST",
            ));
        }
        if options & flag::OPTIN != 0 && options & flag::OPTOUT != 0 {
            return Err(CmdError::err(
                "You can't specify both OPTIN mode and OPTOUT mode",
            ));
        }
        if (options & flag::OPTIN != 0 && bits & flag::OPTOUT != 0)
            || (options & flag::OPTOUT != 0 && bits & flag::OPTIN != 0)
        {
            return Err(CmdError::err("You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."));
        }
        if options & flag::BCAST != 0 {
            // Redis 7.0 also answers +OK (a second reply) after this error
            // when the overlap is between two new prefixes past the first;
            // one reply per command is kept here and nothing changes.
            if let Some(msg) = ctx.srv.tracking.prefix_collision(handle.id, &prefixes) {
                return Err(CmdError::Other(msg));
            }
        }
        ensure_feed(ctx);
        ctx.srv
            .tracking
            .enable(&handle, redirect as u64, options, &prefixes);
    } else if is(&args[2], "off") {
        ctx.srv.tracking.disable(&handle);
    } else {
        return Err(CmdError::Syntax);
    }
    ctx.out.ok();
    Ok(())
}

/// `CLIENT CACHING <YES|NO>`: track (`OPTIN`) or skip (`OPTOUT`) the keys
/// of the next command or transaction.
fn client_caching(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let h = &ctx.client.handle;
    let bits = h.tracking.load(Ordering::Relaxed);
    if bits & flag::ON == 0 {
        return Err(CmdError::err("CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"));
    }
    if is(&args[2], "yes") {
        if bits & flag::OPTIN == 0 {
            return Err(CmdError::err(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if is(&args[2], "no") {
        if bits & flag::OPTOUT == 0 {
            return Err(CmdError::err(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(CmdError::Syntax);
    }
    h.tracking.fetch_or(flag::CACHING, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

/// `CLIENT GETREDIR`: the redirect id, 0 without one, -1 when not tracking.
fn client_getredir(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let h = &ctx.client.handle;
    let bits = h.tracking.load(Ordering::Relaxed);
    ctx.out
        .integer(crate::tracking::list_redir(bits, &h.tracking_redir));
    Ok(())
}

/// `CLIENT TRACKINGINFO`: a map of `flags` (a set), `redirect` and
/// `prefixes`, as Redis builds it.
fn client_trackinginfo(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let h = ctx.client.handle.clone();
    let bits = h.tracking.load(Ordering::Relaxed);
    let mut flags: Vec<&[u8]> = vec![if bits & flag::ON != 0 { b"on" } else { b"off" }];
    if bits & flag::BCAST != 0 {
        flags.push(b"bcast");
    }
    if bits & flag::OPTIN != 0 {
        flags.push(b"optin");
        if bits & flag::CACHING != 0 {
            flags.push(b"caching-yes");
        }
    }
    if bits & flag::OPTOUT != 0 {
        flags.push(b"optout");
        if bits & flag::CACHING != 0 {
            flags.push(b"caching-no");
        }
    }
    if bits & flag::NOLOOP != 0 {
        flags.push(b"noloop");
    }
    if bits & flag::BROKEN_REDIR != 0 {
        flags.push(b"broken_redirect");
    }
    let prefixes = ctx.srv.tracking.prefixes_of(h.id).unwrap_or_default();
    let out = &mut *ctx.out;
    out.map(3);
    out.bulk(b"flags");
    out.set(flags.len());
    for f in flags {
        out.bulk(f);
    }
    out.bulk(b"redirect");
    out.integer(crate::tracking::list_redir(bits, &h.tracking_redir));
    out.bulk(b"prefixes");
    out.array(prefixes.len());
    for p in &prefixes {
        out.bulk(p);
    }
    Ok(())
}
