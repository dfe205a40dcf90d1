//! `MODULE`: Ferrite loads no Redis modules (its Bloom filters and
//! `CL.THROTTLE` are built in), so the list is empty and a load fails as
//! Redis's does for a library it cannot open.

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

/// `MODULE` is a protected command (`enable-module-command`).
fn allowed(ctx: &Ctx<'_>) -> CmdResult {
    let setting = ctx.srv.config.read().value("enable-module-command");
    let ok = match setting.as_str() {
        "yes" => true,
        "local" => super::server::is_local(&ctx.client.handle.addr),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(CmdError::err("MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server."))
    }
}

fn help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    allowed(ctx)?;
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
    allowed(ctx)?;
    ctx.out.array(0);
    Ok(())
}

fn load(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    allowed(ctx)?;
    tracing::warn!(
        path = %String::from_utf8_lossy(&args[2]),
        "Module failed to load: Ferrite does not load Redis modules (Bloom filters and CL.THROTTLE are built in)"
    );
    Err(CmdError::err(
        "Error loading the extension. Please check the server logs.",
    ))
}

fn unload(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    allowed(ctx)?;
    Err(CmdError::err(
        "Error unloading module: no such module with that name",
    ))
}
