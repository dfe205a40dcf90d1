//! `rename-command`: the names clients call commands by, when a config
//! file renames or removes some (`rename-command FLUSHALL ""`, a common
//! way to lock down a production Redis).
//!
//! As in Redis, a renamed command answers only to its new name, for
//! clients, `MULTI`, scripts and the `COMMAND` family, which still
//! describes it under its real name; a removed one is an unknown command.
//! ACL rules, `INFO commandstats` and the propagation stream keep the real
//! names (a command called by a new name is propagated by its real one).
//! The primary's stream and the AOF are replayed by real name first (then
//! by new name, for a Redis primary with the same renames), as Redis's
//! `lookupCommandOrOriginal` does for the commands it rewrites, so a
//! replica or a restart never loses a write to a rename, even when renames
//! swap names.
//!
//! Renames are read from the configuration once, before the server
//! serves; `CONFIG SET` cannot change them (nor can it in Redis).

use std::sync::OnceLock;

use super::table::{lookup_in, Command, NameMap, TABLE};

/// The client-visible names, once a rename was configured.
static NAMES: OnceLock<NameMap<&'static Command>> = OnceLock::new();

/// Applies `renames` (old, new) in order to a namespace that starts as
/// the command table, with Redis's errors: the first that fails is
/// returned. `new` empty removes the command.
pub fn namespace(renames: &[(String, String)]) -> Result<NameMap<&'static Command>, String> {
    let mut names: NameMap<&'static Command> = TABLE
        .commands
        .iter()
        .map(|(name, cmd)| (*name, cmd))
        .collect();
    for (old, new) in renames {
        let old = old.to_ascii_lowercase();
        let Some(cmd) = names.remove(old.as_bytes()) else {
            return Err("No such command in rename-command".into());
        };
        if new.is_empty() {
            continue;
        }
        let new = new.to_ascii_lowercase();
        if names.contains_key(new.as_bytes()) {
            return Err("Target command name already exists".into());
        }
        // Leaked once per configured rename, at start-up.
        let key: &'static [u8] = Box::leak(new.into_bytes().into_boxed_slice());
        names.insert(key, cmd);
    }
    Ok(names)
}

/// Installs the renames before the server starts serving; without any,
/// lookups stay on the command table. A second call changes nothing.
pub fn install(renames: &[(String, String)]) -> Result<(), String> {
    if renames.is_empty() {
        return Ok(());
    }
    let names = namespace(renames)?;
    let _ = NAMES.set(names);
    Ok(())
}

/// The command a client's `name` calls (Redis's `lookupCommand`). One
/// atomic load more than a table lookup when nothing is renamed.
#[inline]
pub fn lookup(name: &[u8]) -> Option<&'static Command> {
    match NAMES.get() {
        None => TABLE.lookup(name),
        Some(names) => lookup_in(names, name).copied(),
    }
}

/// The command or subcommand `argv` names for a client (`ACL DRYRUN`),
/// as [`super::table::Table::lookup_argv`] does by real name.
pub fn lookup_argv(argv: &[bytes::Bytes]) -> Option<&'static Command> {
    let cmd = lookup(argv.first()?)?;
    match argv.get(1) {
        Some(sub) if !cmd.subcommands.is_empty() => cmd.subcommand(sub),
        _ => Some(cmd),
    }
}

/// The command `name` calls in the primary's stream or the AOF: a real
/// name first (what Ferrite writes there), else a client-visible one (what
/// a Redis primary with the same renames sends for commands it does not
/// rewrite).
#[inline]
pub fn lookup_internal(name: &[u8]) -> Option<&'static Command> {
    TABLE.lookup(name).or_else(|| lookup(name))
}

/// The real name of the command a client called by a new name; `None`
/// for a real name or when nothing is renamed.
#[inline]
pub fn real_name(name: &[u8]) -> Option<&'static str> {
    let names = NAMES.get()?;
    let cmd = *lookup_in(names, name)?;
    (!cmd.meta.name.as_bytes().eq_ignore_ascii_case(name)).then_some(cmd.meta.name)
}

/// The commands clients can call, sorted by real name (what `COMMAND`,
/// `COMMAND COUNT`, `COMMAND DOCS` and `COMMAND LIST` list).
pub fn visible() -> Vec<&'static Command> {
    match NAMES.get() {
        None => TABLE.sorted(),
        Some(names) => {
            let mut v: Vec<&'static Command> = names.values().copied().collect();
            v.sort_by_key(|c| c.meta.name);
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn error_of(p: &[(&str, &str)]) -> String {
        namespace(&pairs(p)).err().unwrap_or_default()
    }

    #[test]
    fn a_renamed_command_answers_to_its_new_name_only() {
        let Ok(n) = namespace(&pairs(&[("FLUSHALL", ""), ("config", "MyConfig")])) else {
            panic!("renames refused")
        };
        assert!(!n.contains_key(&b"flushall"[..]));
        assert!(!n.contains_key(&b"config"[..]));
        assert_eq!(n[&b"myconfig"[..]].meta.name, "config");
        assert_eq!(n.len(), TABLE.commands.len() - 1);
    }

    #[test]
    fn renames_apply_in_order_with_redis_errors() {
        assert!(namespace(&pairs(&[("get", "g1"), ("g1", "g2")])).is_ok());
        assert_eq!(
            error_of(&[("get", "g1"), ("get", "g2")]),
            "No such command in rename-command"
        );
        assert_eq!(
            error_of(&[("get", "set")]),
            "Target command name already exists"
        );
        assert_eq!(
            error_of(&[("nosuch", "x")]),
            "No such command in rename-command"
        );
    }
}
