//! `MODULE`: Ferrite loads no Redis modules (its Bloom filters and
//! `CL.THROTTLE` are built in), so the list is empty and a load fails as
//! Redis's does for a library it cannot open. `LOAD`, `LOADEX` and
//! `UNLOAD` are protected (`enable-module-command`), checked by the
//! dispatcher.

use bytes::Bytes;

use super::connection::write_help;
use crate::command::{CmdError, CmdResult, Ctx, Handler};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("module|help", help),
    ("module|list", list),
    ("module|load", load),
    ("module|loadex", load),
    ("module|unload", unload),
];

fn help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    write_help(
        ctx,
        "module",
        &[
            "LIST",
            "    Return a list of loaded modules.",
            "LOAD <path> [<arg> ...]",
            "    Load a module library from <path>, passing to it any optional arguments.",
            "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
            "    Load a module library from <path>, while passing it module configurations and optional arguments.",
            "UNLOAD <name>",
            "    Unload a module.",
        ],
    );
    Ok(())
}

fn list(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.out.array(0);
    Ok(())
}

fn load(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    tracing::warn!(
        path = %String::from_utf8_lossy(&args[2]),
        "Module failed to load: Ferrite does not load Redis modules (Bloom filters and CL.THROTTLE are built in)"
    );
    Err(CmdError::err(
        "Error loading the extension. Please check the server logs.",
    ))
}

fn unload(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Err(CmdError::err(
        "Error unloading module: no such module with that name",
    ))
}
