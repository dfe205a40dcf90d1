//! `SAVE`, `BGSAVE` (see [`crate::persist`]) and `BGREWRITEAOF` (see
//! [`crate::aof`]).

use bytes::Bytes;

use crate::command::ctx::is;
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::persist::{self, PersistError};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("save", save),
    ("bgsave", bgsave),
    ("bgrewriteaof", bgrewriteaof),
];

fn bgrewriteaof(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    use crate::aof::{AofError, Bgrewrite};
    match crate::aof::bgrewriteaof(ctx.srv) {
        Ok(Bgrewrite::Started) => ctx
            .out
            .simple(b"Background append only file rewriting started"),
        Ok(Bgrewrite::Scheduled) => ctx
            .out
            .simple(b"Background append only file rewriting scheduled"),
        Err(e @ AofError::InProgress) => return Err(CmdError::err(e.to_string())),
        Err(e) => {
            tracing::warn!(error = %e, "BGREWRITEAOF");
            return Err(CmdError::err(
                "Can't execute an AOF background rewriting. Please check the server logs for more information.",
            ));
        }
    }
    Ok(())
}

fn save(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    match persist::save(ctx.srv) {
        Ok(()) => {
            ctx.out.ok();
            Ok(())
        }
        Err(PersistError::InProgress) => Err(CmdError::err("Background save already in progress")),
        // Redis answers a failed SAVE with a bare `-ERR` (the log says why).
        Err(_) => Err(CmdError::Other("ERR".into())),
    }
}

fn bgsave(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let schedule = match args.get(1) {
        None => false,
        Some(a) if args.len() == 2 && is(a, "schedule") => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    match persist::bgsave(ctx.srv) {
        Ok(()) => {
            ctx.out.simple(b"Background saving started");
            Ok(())
        }
        Err(PersistError::InProgress) if schedule => {
            // The running save covers what a scheduled one would write
            // only up to its snapshot; Redis starts another one after it,
            // which the `save` points here do as soon as it ends.
            ctx.out.simple(b"Background saving scheduled");
            Ok(())
        }
        Err(PersistError::InProgress) => Err(CmdError::err("Background save already in progress")),
        Err(e) => Err(CmdError::err(e.to_string())),
    }
}
