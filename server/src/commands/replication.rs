//! Replication commands, primary side: `SYNC`, `PSYNC`, `REPLCONF`.
//!
//! The handlers only validate and record; the connection hands itself to
//! [`crate::replica::serve`] once the command's turn is over, because the
//! full resync (snapshot, transfer, then the stream) outlives one command.

use bytes::Bytes;

use crate::command::ctx::is;
use crate::command::{CmdError, CmdResult, Ctx, Handler};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] =
    &[("sync", sync), ("psync", psync), ("replconf", replconf)];

fn sync(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    // `SYNC` has no reply of its own: the payload follows directly.
    ctx.client.repl.start = Some(false);
    Ok(())
}

fn psync(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    // No partial resync yet: every PSYNC gets a full one (+FULLRESYNC is
    // written with the payload, once the snapshot's offset is known).
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
        } else if is(opt, "capa") || is(opt, "rdb-filter-only") {
            // Capabilities (eof, psync2): we send plain payloads either way.
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
