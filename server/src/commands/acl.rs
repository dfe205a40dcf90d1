//! `ACL`: users and their permissions (Redis's `aclCommand`); the rules
//! themselves live in `crate::acl`.

use std::sync::Arc;

use bytes::Bytes;
use rand::RngCore;

use super::connection::write_help;
use crate::acl::index::{index, order, CATEGORIES};
use crate::acl::rules::{category, has_spaces, uflag, Selector};
use crate::acl::{User, UserCell};
use crate::command::ctx::is;
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::shared::Shared;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("acl|cat", cat),
    ("acl|deluser", deluser),
    ("acl|dryrun", dryrun),
    ("acl|genpass", genpass),
    ("acl|getuser", getuser),
    ("acl|help", help),
    ("acl|list", list),
    ("acl|load", load),
    ("acl|log", log),
    ("acl|save", save),
    ("acl|setuser", setuser),
    ("acl|users", users),
    ("acl|whoami", whoami),
];

/// Disconnects every client logged in as `user` (Redis's
/// `ACLFreeUserAndKillClients`); the calling client closes after its reply.
fn kill_clients_of(ctx: &mut Ctx<'_>, user: &Arc<UserCell>) {
    for c in ctx.srv.clients.all() {
        if !c.runs_as(user) {
            continue;
        }
        if c.id == ctx.client.id() {
            ctx.client.close_after_reply = true;
        } else {
            c.kill();
        }
    }
}

/// Disconnects the user's pub/sub clients subscribed to a channel or
/// pattern its new rules no longer allow (Redis's
/// `ACLKillPubsubClientsIfNeeded`).
fn kill_revoked_subscribers(srv: &Shared, cell: &Arc<UserCell>, before: &User) {
    let after = cell.rules();
    let Some(allowed) = crate::acl::revoked_channels(before, &after) else {
        return;
    };
    for c in srv.clients.all() {
        if !c.runs_as(cell) || c.client_type() != "pubsub" {
            continue;
        }
        let (channels, patterns) = srv.pubsub.subscriptions_of(c.id);
        let lost = patterns
            .iter()
            .any(|p| !crate::acl::channel_in(&allowed, p, true))
            || channels
                .iter()
                .any(|ch| !crate::acl::channel_in(&allowed, ch, false));
        if lost {
            c.kill();
        }
    }
}

fn setuser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = &args[2];
    if has_spaces(name) {
        return Err(CmdError::err(
            "Usernames can't contain spaces or null characters",
        ));
    }
    let ops: Vec<&[u8]> = args[3..].iter().map(|a| a.as_ref()).collect();
    let (before, cell) = ctx.srv.acl.set_user(name, &ops).map_err(CmdError::err)?;
    if let Some(before) = before {
        kill_revoked_subscribers(ctx.srv, &cell, &before);
    }
    ctx.out.ok();
    Ok(())
}

fn deluser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args[2..].iter().any(|n| n.as_ref() == b"default") {
        return Err(CmdError::err("The 'default' user cannot be removed"));
    }
    let removed = ctx.srv.acl.delete(&args[2..]);
    for u in &removed {
        kill_clients_of(ctx, u);
    }
    ctx.out.integer(removed.len() as i64);
    Ok(())
}

/// One selector's `commands`, `keys` and `channels` fields.
fn describe_selector(ctx: &mut Ctx<'_>, s: &Selector) {
    ctx.out.bulk(b"commands");
    ctx.out.bulk(s.describe_commands().as_bytes());
    ctx.out.bulk(b"keys");
    ctx.out.bulk(&s.keys_text());
    ctx.out.bulk(b"channels");
    ctx.out.bulk(&s.channels_text());
}

fn getuser(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(cell) = ctx.srv.acl.get(&args[2]) else {
        ctx.out.null();
        return Ok(());
    };
    let u = cell.rules();
    ctx.out.map(6);
    ctx.out.bulk(b"flags");
    let flags: Vec<&str> = uflag::NAMES
        .iter()
        .filter(|(f, _)| u.has(*f))
        .map(|(_, n)| *n)
        .collect();
    ctx.out.set(flags.len());
    for f in flags {
        ctx.out.bulk(f.as_bytes());
    }
    ctx.out.bulk(b"passwords");
    ctx.out.array(u.passwords.len());
    for p in &u.passwords {
        ctx.out.bulk(p.as_bytes());
    }
    describe_selector(ctx, &u.selectors[0]);
    ctx.out.bulk(b"selectors");
    ctx.out.array(u.selectors.len() - 1);
    for s in &u.selectors[1..] {
        ctx.out.map(3);
        describe_selector(ctx, s);
    }
    Ok(())
}

fn list(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let lines = ctx.srv.acl.list();
    ctx.out.array(lines.len());
    for l in lines {
        ctx.out.bulk(&l);
    }
    Ok(())
}

fn users(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let users = ctx.srv.acl.users();
    ctx.out.array(users.len());
    for u in users {
        ctx.out.bulk(&u.name);
    }
    Ok(())
}

fn whoami(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    match &ctx.client.user {
        Some(u) => {
            let name = u.name.clone();
            ctx.out.bulk(&name);
        }
        None => ctx.out.null(),
    }
    Ok(())
}

fn aclfile(ctx: &Ctx<'_>) -> Result<String, CmdError> {
    let path = ctx.srv.config.read().value("aclfile");
    if path.is_empty() {
        return Err(CmdError::err("This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration."));
    }
    Ok(path)
}

fn load(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let path = aclfile(ctx)?;
    let old = ctx.srv.acl.load_file(&path).map_err(CmdError::err)?;
    for u in &old {
        kill_clients_of(ctx, u);
    }
    ctx.out.ok();
    Ok(())
}

fn save(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let path = aclfile(ctx)?;
    if let Err(e) = ctx.srv.acl.save_file(&path) {
        tracing::warn!(error = %e, "Writing ACL file for ACL SAVE");
        return Err(CmdError::err("There was an error trying to save the ACLs. Please check the server logs for more information"));
    }
    ctx.out.ok();
    Ok(())
}

fn cat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args.len() {
        2 => {
            ctx.out.array(CATEGORIES.len());
            for c in CATEGORIES {
                ctx.out.bulk(c.as_bytes());
            }
        }
        3 => {
            let Some(bit) = category(&args[2]) else {
                let name = &args[2][..args[2].len().min(128)];
                return Err(CmdError::err(format!(
                    "Unknown category '{}'",
                    String::from_utf8_lossy(name)
                )));
            };
            let names: Vec<&str> = order()
                .iter()
                .map(|&id| &index()[id as usize])
                .filter(|c| !c.module && c.cats & bit != 0)
                .map(|c| c.name)
                .collect();
            ctx.out.array(names.len());
            for n in names {
                ctx.out.bulk(n.as_bytes());
            }
        }
        _ => return Err(CmdError::subcommand_syntax(args)),
    }
    Ok(())
}

fn genpass(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    const MAX_BITS: i64 = 4096;
    if args.len() > 3 {
        return Err(CmdError::subcommand_syntax(args));
    }
    let bits = match args.get(2) {
        Some(a) => ferrite_protocol::parse_i64(a).ok_or(CmdError::NotInteger)?,
        None => 256,
    };
    if bits <= 0 || bits > MAX_BITS {
        return Err(CmdError::err(format!("ACL GENPASS argument must be the number of bits for the output password, a positive number up to {MAX_BITS}")));
    }
    let chars = ((bits + 3) / 4) as usize;
    let mut raw = vec![0u8; chars.div_ceil(2)];
    rand::thread_rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    ctx.out.bulk(&hex.as_bytes()[..chars]);
    Ok(())
}

fn log(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::subcommand_syntax(args));
    }
    let mut count = 10i64;
    if let Some(a) = args.get(2) {
        if is(a, "reset") {
            ctx.srv.acl.log.lock().entries.clear();
            ctx.out.ok();
            return Ok(());
        }
        count = ferrite_protocol::parse_i64(a)
            .ok_or(CmdError::NotInteger)?
            .max(0);
    }
    let entries: Vec<_> = {
        let log = ctx.srv.acl.log.lock();
        log.entries.iter().take(count as usize).cloned().collect()
    };
    let now = crate::clock::unix_ms();
    ctx.out.array(entries.len());
    for e in entries {
        ctx.out.map(7);
        ctx.out.bulk(b"count");
        ctx.out.integer(e.count as i64);
        ctx.out.bulk(b"reason");
        ctx.out.bulk(e.reason.name().as_bytes());
        ctx.out.bulk(b"context");
        ctx.out.bulk(e.context.name().as_bytes());
        ctx.out.bulk(b"object");
        ctx.out.bulk(&e.object);
        ctx.out.bulk(b"username");
        ctx.out.bulk(&e.username);
        ctx.out.bulk(b"age-seconds");
        ctx.out.double((now - e.ctime_ms) as f64 / 1000.0);
        ctx.out.bulk(b"client-info");
        ctx.out.bulk(e.client_info.as_bytes());
    }
    Ok(())
}

fn dryrun(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(cell) = ctx.srv.acl.get(&args[2]) else {
        return Err(CmdError::err(format!(
            "User '{}' not found",
            String::from_utf8_lossy(&args[2])
        )));
    };
    let argv = &args[3..];
    let not_found = || {
        CmdError::err(format!(
            "Command '{}' not found",
            String::from_utf8_lossy(&argv[0])
        ))
    };
    let cmd = crate::command::rename::lookup_argv(argv).ok_or_else(not_found)?;
    if !cmd.arity_ok(argv.len()) {
        return Err(CmdError::err(format!(
            "wrong number of arguments for '{}' command",
            cmd.name()
        )));
    }
    match crate::acl::check(&cell.rules(), cmd, argv) {
        Ok(()) => ctx.out.ok(),
        Err(d) => {
            let text = match d {
                crate::acl::Denied::Command => format!(
                    "This user has no permissions to run the '{}' command",
                    cmd.name()
                ),
                crate::acl::Denied::Key(i) => format!(
                    "This user has no permissions to access the '{}' key",
                    String::from_utf8_lossy(&argv[i])
                ),
                crate::acl::Denied::Channel(i) => format!(
                    "This user has no permissions to access the '{}' channel",
                    String::from_utf8_lossy(&argv[i])
                ),
            };
            ctx.out.bulk(text.as_bytes());
        }
    }
    Ok(())
}

fn help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    write_help(
        ctx,
        "acl",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    );
    Ok(())
}
