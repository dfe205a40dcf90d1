//! Replication commands. Primary side: `SYNC`, `PSYNC`, `REPLCONF`; the
//! handlers only validate and record, and the connection hands itself to
//! [`crate::replica::serve`] once the command's turn is over, because the
//! full resync (snapshot, transfer, then the stream) outlives one command.
//! Replica side: `REPLICAOF`/`SLAVEOF` (the link itself is
//! [`crate::upstream`]) and `ROLE`.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::command::ctx::is;
use crate::command::{CmdError, CmdResult, Ctx, Handler};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("sync", sync),
    ("psync", psync),
    ("replconf", replconf),
    ("replicaof", replicaof),
    ("slaveof", replicaof),
    ("role", role),
    ("wait", wait),
    ("failover", failover),
];

/// # Format
/// `FAILOVER [TO host port [FORCE]] [TIMEOUT ms]` | `FAILOVER ABORT`:
/// hands the primary role to a replica once it has every write
/// ([`crate::failover`]); the reply comes at the start, the rest follows
/// in the background and shows in `master_failover_state`.
fn failover(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let srv = ctx.srv;
    if args.len() == 2 && is(&args[1], "abort") {
        if !crate::failover::abort(srv, "Failover manually aborted") {
            return Err(CmdError::err("No failover in progress."));
        }
        ctx.out.ok();
        return Ok(());
    }
    let mut timeout_ms = 0;
    let mut force = false;
    let mut target: Option<(String, i64)> = None;
    let mut j = 1;
    while j < args.len() {
        if is(&args[j], "timeout") && j + 1 < args.len() && timeout_ms == 0 {
            timeout_ms = crate::command::ctx::int_arg(&args[j + 1])?;
            if timeout_ms <= 0 {
                return Err(CmdError::err("FAILOVER timeout must be greater than 0"));
            }
            j += 2;
        } else if is(&args[j], "to") && j + 2 < args.len() && target.is_none() {
            let port = crate::command::ctx::int_arg(&args[j + 2])?;
            target = Some((String::from_utf8_lossy(&args[j + 1]).into_owned(), port));
            j += 3;
        } else if is(&args[j], "force") && !force {
            force = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let target = target.as_ref().map(|(h, p)| (h.as_str(), *p));
    crate::failover::start(srv, target, timeout_ms, force).map_err(CmdError::err)?;
    ctx.out.ok();
    Ok(())
}

/// # Format
/// `WAIT numreplicas timeout`: how many replicas acknowledged every write
/// made so far, waiting up to `timeout` ms (0: forever) for `numreplicas`
/// of them, as Redis's `waitCommand`: the writes waited for end at the
/// client's last command that propagated (its `woff`). Replicas are asked
/// for an acknowledgement at once (`REPLCONF GETACK *` in the stream). In a transaction or a script it
/// does not wait.
fn wait(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let srv = ctx.srv;
    if srv.upstream.is_replica.load(Ordering::Relaxed) {
        return Err(CmdError::err(
            "WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        ));
    }
    let want = crate::command::ctx::int_arg(&args[1])?;
    let timeout = match ferrite_protocol::parse_i64(&args[2]) {
        Some(t) if t < 0 => return Err(CmdError::err("timeout is negative")),
        Some(t) => t,
        None => return Err(CmdError::err("timeout is not an integer or out of range")),
    };
    // Never past the stream's end (its offsets restart on a full sync).
    let target = ctx.client.woff.min(srv.repl.offset());
    let replicas = srv.replicas.online();
    let now_acked = crate::replica::acked(&replicas, target);
    if now_acked >= want || ctx.client.deny_blocking() {
        ctx.out.integer(now_acked);
        return Ok(());
    }
    crate::replica::ask_for_acks(srv, crate::command::ctx::unix_ms());
    let (mut tx, rx) = tokio::sync::oneshot::channel();
    let deadline = (timeout > 0)
        .then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(timeout as u64));
    tokio::spawn(async move {
        loop {
            let acks = crate::replica::ACKS.notified();
            let n = crate::replica::acked(&replicas, target);
            if n >= want || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                let _ = tx.send(n);
                return;
            }
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = acks => {}
                _ = timer => {}
                // The client went away.
                _ = tx.closed() => return,
            }
        }
    });
    ctx.client.wait_acks = Some(rx);
    Ok(())
}

/// No replica syncs with a primary that is handing its role over, and a
/// replica serves replicas only while its own link is up.
fn refuse_stale_sync(ctx: &Ctx<'_>) -> CmdResult {
    if ctx.srv.failover.state() != crate::failover::State::None {
        return Err(CmdError::Other(
            "NOMASTERLINK Can't SYNC while failing over".into(),
        ));
    }
    if ctx.srv.upstream.link_down() {
        return Err(CmdError::Other(
            "NOMASTERLINK Can't SYNC while not connected with my master".into(),
        ));
    }
    Ok(())
}

/// # Format
/// `REPLICAOF host port` | `REPLICAOF NO ONE` (also `SLAVEOF`)
fn replicaof(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Checked and done with no failover able to start in between.
    crate::failover::unless_failing_over(ctx.srv, || replicaof_now(ctx, args))
        .unwrap_or_else(|| Err(CmdError::err("REPLICAOF not allowed while failing over.")))
}

fn replicaof_now(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let srv = ctx.srv;
    if is(&args[1], "no") && is(&args[2], "one") {
        if srv.upstream.is_replica.load(Ordering::Relaxed) {
            crate::upstream::unset_master(srv);
            tracing::info!(
                "MASTER MODE enabled (user request from '{}')",
                ctx.client.handle.addr
            );
        }
        ctx.out.ok();
        return Ok(());
    }
    if ctx.client.handle.replica.load(Ordering::Relaxed) {
        return Err(CmdError::err(
            "Command is not valid when client is a replica.",
        ));
    }
    let port = ferrite_protocol::parse_i64(&args[2])
        .filter(|p| (0..=65535).contains(p))
        .ok_or_else(|| CmdError::err("Invalid master port"))? as u16;
    let host = String::from_utf8_lossy(&args[1]).into_owned();
    if let Some((h, p)) = srv.upstream.target() {
        if h.eq_ignore_ascii_case(&host) && p == port {
            tracing::info!("REPLICAOF would result into synchronization with the master we are already connected with. No operation performed.");
            ctx.out.simple(b"OK Already connected to specified master");
            return Ok(());
        }
    }
    crate::upstream::set_master(srv, &host, port);
    tracing::info!(
        "REPLICAOF {host}:{port} enabled (user request from '{}')",
        ctx.client.handle.addr
    );
    ctx.out.ok();
    Ok(())
}

/// # Format
/// `ROLE`: `master offset [[ip port offset] ...]` or
/// `slave host port state offset`.
fn role(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let srv = ctx.srv;
    let out = &mut *ctx.out;
    match srv.upstream.target() {
        None => {
            // Online replicas only, as Redis's `roleCommand`.
            let list = srv.replicas.online();
            out.array(3);
            out.bulk(b"master");
            out.integer(srv.repl.offset() as i64);
            out.array(list.len());
            for r in &list {
                out.array(3);
                out.bulk(r.ip.as_bytes());
                out.bulk(r.port.to_string().as_bytes());
                out.bulk(r.ack_offset.load(Ordering::Relaxed).to_string().as_bytes());
            }
        }
        Some((host, port)) => {
            let up = &srv.upstream;
            out.array(5);
            out.bulk(b"slave");
            out.bulk(host.as_bytes());
            out.integer(i64::from(port));
            out.bulk(up.state().role_name().as_bytes());
            out.integer(if up.has_master.load(Ordering::Relaxed) {
                up.offset.load(Ordering::Relaxed)
            } else {
                -1
            });
        }
    }
    Ok(())
}

fn sync(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    refuse_stale_sync(ctx)?;
    // `SYNC` has no reply of its own: the payload follows directly.
    ctx.client.repl.start = Some(false);
    Ok(())
}

/// # Format
/// `PSYNC replid offset [FAILOVER]`: continue from the backlog when it
/// holds the replica's history from `offset` on (`+CONTINUE`), else a
/// full resync (`+FULLRESYNC`, written with the payload once the
/// snapshot's offset is known); [`crate::replica::serve`] decides.
/// `FAILOVER` comes from a primary handing its role over (`FAILOVER`):
/// a replica of that history becomes a primary first, then answers.
fn psync(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let srv = ctx.srv;
    if args.len() > 3 && is(&args[3], "failover") {
        let replid = String::from_utf8_lossy(&args[1]);
        tracing::warn!("Failover request received for replid {replid}.");
        if !srv.upstream.is_replica.load(Ordering::Relaxed) {
            return Err(CmdError::err("PSYNC FAILOVER can't be sent to a master."));
        }
        if !replid.eq_ignore_ascii_case(&srv.replid.lock()) {
            return Err(CmdError::err("PSYNC FAILOVER replid must match my replid."));
        }
        crate::upstream::unset_master(srv);
        tracing::info!(
            "MASTER MODE enabled (failover request from '{}')",
            ctx.client.handle.addr
        );
    }
    refuse_stale_sync(ctx)?;
    let offset = ferrite_protocol::parse_i64(&args[2])
        .ok_or_else(|| CmdError::err("value is not an integer or out of range"))?;
    ctx.client.repl.psync = Some((String::from_utf8_lossy(&args[1]).into_owned(), offset));
    ctx.client.repl.start = Some(true);
    Ok(())
}

fn replconf(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    for pair in args[1..].chunks(2) {
        let (opt, val) = (&pair[0], &pair[1]);
        if is(opt, "listening-port") {
            let port = std::str::from_utf8(val)
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| CmdError::err("value is not an integer or out of range"))?;
            ctx.client.repl.listening_port = Some(port);
        } else if is(opt, "ip-address") {
            ctx.client.repl.announced_ip = Some(String::from_utf8_lossy(val).into_owned());
        } else if is(opt, "rdb-only") {
            ctx.client.repl.rdb_only = val.as_ref() == b"1";
        } else if is(opt, "ack") || is(opt, "getack") {
            // From a client that is not (yet) a replica link: ignored,
            // without a reply, as Redis.
            return Ok(());
        } else if is(opt, "capa") {
            // `eof` (diskless payloads) changes nothing: we send plain ones.
            if is(val, "psync2") {
                ctx.client.repl.capa_psync2 = true;
            }
        } else if is(opt, "rdb-filter-only") {
            // Accepted, unfiltered: the payload holds every key.
        } else {
            return Err(CmdError::err(format!(
                "Unrecognized REPLCONF option: {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    ctx.out.ok();
    Ok(())
}
