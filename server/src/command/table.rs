//! The command table: metadata joined with handlers, built once.
//!
//! Lookup is case-insensitive without allocating (names are lowercased into
//! a stack buffer). Per-command counters for `INFO commandstats` live here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use bytes::Bytes;

use super::meta::{BeginSearch, CommandMeta, FindKeys};
use super::Handler;

/// The key positions (with their key-spec flags) of one call.
pub type KeyRefs = Vec<(usize, &'static [&'static str])>;

/// A command's own key finder, for commands whose key specs cannot name
/// every key (Redis's `getkeys_proc`, e.g. `SORT ... STORE dst`).
pub type GetKeysFn = fn(&[Bytes]) -> KeyRefs;

/// Flag bits computed from the metadata's flag words, for the dispatcher.
pub mod flag {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MOVABLEKEYS: u32 = 1 << 13;
    pub const NO_MULTI: u32 = 1 << 14;
    pub const ALLOW_BUSY: u32 = 1 << 15;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 16;
    /// Redis's `CMD_MAY_REPLICATE`: not a write, but may feed the
    /// replication stream, so `CLIENT PAUSE WRITE` holds it back.
    /// `COMMAND` does not report it; [`MAY_REPLICATE_COMMANDS`] lists it.
    pub const MAY_REPLICATE: u32 = 1 << 17;

    /// The commands Redis 7.0 flags `MAY_REPLICATE` (its
    /// `src/commands/*.json`), which the metadata taken from `COMMAND`
    /// cannot carry.
    pub const MAY_REPLICATE_COMMANDS: &[&str] =
        &["eval", "evalsha", "fcall", "pfcount", "publish", "spublish"];

    /// The bit of one flag word.
    pub fn from_word(w: &str) -> u32 {
        match w {
            "write" => WRITE,
            "readonly" => READONLY,
            "denyoom" => DENYOOM,
            "admin" => ADMIN,
            "pubsub" => PUBSUB,
            "noscript" => NOSCRIPT,
            "blocking" => BLOCKING,
            "loading" => LOADING,
            "stale" => STALE,
            "skip_monitor" => SKIP_MONITOR,
            "skip_slowlog" => SKIP_SLOWLOG,
            "fast" => FAST,
            "no_auth" => NO_AUTH,
            "movablekeys" => MOVABLEKEYS,
            "no_multi" => NO_MULTI,
            "allow_busy" => ALLOW_BUSY,
            "no_mandatory_keys" => NO_MANDATORY_KEYS,
            _ => 0,
        }
    }
}

/// `INFO commandstats` counters of one command.
#[derive(Default)]
/// (`calls` and `usec` are per thread: `crate::counters`.)
pub struct CommandStats {
    pub rejected_calls: AtomicU64,
    pub failed_calls: AtomicU64,
}

/// A dispatchable command or subcommand.
pub struct Command {
    pub meta: &'static CommandMeta,
    /// `None` for a container command (`CONFIG`), whose subcommands run.
    pub handler: Option<Handler>,
    pub flags: u32,
    pub subcommands: NameMap<Command>,
    pub stats: CommandStats,
    /// Position in [`Table::names`] plus one (`CLIENT LIST` `cmd=` without a lock).
    pub id: u32,
    /// The command's own key finder, if it has one.
    pub getkeys: Option<GetKeysFn>,
}

impl Command {
    /// The keys of one call, as Redis's `getKeysFromCommand` finds them: the
    /// command's own finder, else its key specs, else (for commands without
    /// movable keys) the legacy first/last/step triple. `COMMAND GETKEYS`
    /// and `EXEC`'s lock set both use it.
    pub fn keys(&self, argv: &[Bytes]) -> KeyRefs {
        if let Some(f) = self.getkeys {
            return f(argv);
        }
        let keys = keys_of(self.meta, argv);
        if !keys.is_empty() || self.has(flag::MOVABLEKEYS) {
            return keys;
        }
        self.key_positions(argv.len())
            .into_iter()
            .map(|i| (i, &[][..]))
            .collect()
    }

    /// The lowercase full name (`get`, `config|get`).
    pub fn name(&self) -> &'static str {
        self.meta.name
    }

    /// Whether `argc` (command name included) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.meta.arity;
        (a >= 0 && argc == a as usize) || (a < 0 && argc >= (-a) as usize)
    }

    /// Whether the command has a flag bit.
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    /// Looks up a subcommand case-insensitively.
    pub fn subcommand(&self, name: &[u8]) -> Option<&Command> {
        lookup_in(&self.subcommands, name)
    }

    /// Key positions by the legacy (first, last, step) triple, for `COMMAND GETKEYS`
    /// and shard locking; `argc` is the full argument count.
    pub fn key_positions(&self, argc: usize) -> Vec<usize> {
        let m = self.meta;
        if m.first_key <= 0 {
            return Vec::new();
        }
        let last = if m.last_key < 0 {
            argc as i32 + m.last_key
        } else {
            m.last_key
        };
        let step = m.step.max(1) as usize;
        let mut v = Vec::new();
        let mut i = m.first_key as usize;
        while (i as i32) <= last && i < argc {
            v.push(i);
            i += step;
        }
        v
    }
}

/// A multiply-rotate hasher for command names: names are short and not
/// attacker-chosen keys of a growing map (the table is fixed at start), so
/// SipHash's flooding resistance buys nothing and it showed up at 2% of a
/// pipelined SET profile.
#[derive(Default, Clone, Copy)]
pub struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The command map's hasher.
pub type NameMap<V> = HashMap<&'static [u8], V, std::hash::BuildHasherDefault<NameHasher>>;

/// Looks `name` up case-insensitively, lowering it on the stack (on the
/// heap only past 64 bytes: no table name is that long, a renamed one may
/// be, `super::rename`).
pub(crate) fn lookup_in<'a, V>(map: &'a NameMap<V>, name: &[u8]) -> Option<&'a V> {
    let mut buf = [0u8; 64];
    if name.len() > buf.len() {
        return map.get(&name.to_ascii_lowercase()[..]);
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    map.get(&buf[..name.len()])
}

/// Every command.
pub struct Table {
    pub commands: NameMap<Command>,
    /// Every command and subcommand name, indexed by `Command::id - 1`.
    pub names: Vec<&'static str>,
}

impl Table {
    /// Looks a command up case-insensitively.
    pub fn lookup(&self, name: &[u8]) -> Option<&Command> {
        lookup_in(&self.commands, name)
    }

    /// The command or subcommand `argv` names (Redis's `lookupCommand`):
    /// a container with a second argument resolves to that subcommand, or
    /// to nothing if it has none of that name.
    pub fn lookup_argv(&self, argv: &[Bytes]) -> Option<&Command> {
        let cmd = self.lookup(argv.first()?)?;
        match argv.get(1) {
            Some(sub) if !cmd.subcommands.is_empty() => cmd.subcommand(sub),
            _ => Some(cmd),
        }
    }

    /// Builds the table from metadata and handlers. Metadata without a
    /// handler is skipped (the command is not served); the coverage test
    /// asserts that does not happen for the commands we claim.
    pub fn build(metas: &[&'static [CommandMeta]], handlers: &[(&'static str, Handler)]) -> Table {
        let hmap: HashMap<&str, Handler> = handlers.iter().copied().collect();
        let mut commands = NameMap::default();
        for m in metas.iter().flat_map(|s| s.iter()) {
            if let Some(c) = make(m, &hmap) {
                commands.insert(m.name.as_bytes(), c);
            }
        }
        let mut names = Vec::new();
        for c in commands.values_mut() {
            names.push(c.meta.name);
            c.id = names.len() as u32;
            for sc in c.subcommands.values_mut() {
                names.push(sc.meta.name);
                sc.id = names.len() as u32;
            }
        }
        Table { commands, names }
    }

    /// The name of the command with id `id` (`NULL` for 0, as Redis shows a
    /// client that has run nothing).
    pub fn name_of(&self, id: u32) -> &'static str {
        id.checked_sub(1)
            .and_then(|i| self.names.get(i as usize))
            .copied()
            .unwrap_or("NULL")
    }

    /// All commands, sorted by name.
    pub fn sorted(&self) -> Vec<&Command> {
        let mut v: Vec<&Command> = self.commands.values().collect();
        v.sort_by_key(|c| c.meta.name);
        v
    }

    /// Calls every command's counters back to zero (`CONFIG RESETSTAT`).
    pub fn reset_stats(&self) {
        fn reset(c: &Command) {
            for s in [&c.stats.rejected_calls, &c.stats.failed_calls] {
                s.store(0, Ordering::Relaxed);
            }
            c.subcommands.values().for_each(reset);
        }
        self.commands.values().for_each(reset);
    }
}

fn make(m: &'static CommandMeta, handlers: &HashMap<&str, Handler>) -> Option<Command> {
    let mut flags = m.flags.iter().fold(0, |acc, w| acc | flag::from_word(w));
    if flag::MAY_REPLICATE_COMMANDS.contains(&m.name) {
        flags |= flag::MAY_REPLICATE;
    }
    let mut subs = NameMap::default();
    for s in m.subcommands {
        if let Some(c) = make(s, handlers) {
            let short = s.name.split('|').nth(1).unwrap_or(s.name);
            subs.insert(short.as_bytes(), c);
        }
    }
    let handler = handlers.get(m.name).copied();
    if handler.is_none() && subs.is_empty() {
        return None;
    }
    Some(Command {
        meta: m,
        handler,
        flags,
        subcommands: subs,
        stats: CommandStats::default(),
        id: 0,
        getkeys: crate::commands::getkeys_proc(m.name),
    })
}

/// Key positions (with their key-spec flags) of `argv` by the command's key
/// specs (Redis's `getKeysUsingKeySpecs`).
pub fn keys_of(meta: &CommandMeta, argv: &[Bytes]) -> Vec<(usize, &'static [&'static str])> {
    let argc = argv.len() as i32;
    let mut out = Vec::new();
    if meta.key_specs.is_empty() {
        return out;
    }
    for ks in meta.key_specs {
        let begin = match ks.begin_search {
            BeginSearch::Index(i) => i,
            BeginSearch::Keyword { keyword, startfrom } => {
                let (mut i, end, step) = if startfrom >= 0 {
                    (startfrom, argc, 1)
                } else {
                    (argc + startfrom, 0, -1)
                };
                let mut found = None;
                while (step > 0 && i < end) || (step < 0 && i > end) {
                    if i >= 1
                        && i < argc
                        && argv[i as usize].eq_ignore_ascii_case(keyword.as_bytes())
                    {
                        found = Some(i + 1);
                        break;
                    }
                    i += step;
                }
                match found {
                    Some(f) => f,
                    None => continue,
                }
            }
            BeginSearch::Unknown => continue,
        };
        let (first, last, step) = match ks.find_keys {
            FindKeys::Range {
                lastkey,
                step,
                limit,
            } => {
                let last = if lastkey >= 0 {
                    begin + lastkey
                } else if limit > 0 {
                    begin + (argc - begin) / limit + lastkey
                } else {
                    argc + lastkey
                };
                (begin, last, step.max(1))
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                step,
            } => {
                let idx = begin + keynumidx;
                if idx >= argc {
                    continue;
                }
                let n = ferrite_protocol::parse_i64(&argv[idx as usize]).unwrap_or(0);
                if n <= 0 {
                    continue;
                }
                let first = begin + firstkey;
                let step = step.max(1);
                let last = first + (n as i32 - 1) * step;
                if last >= argc {
                    // More keys announced than given: a syntax error the
                    // command reports; no keys (Redis's `invalid_spec`,
                    // then `genericGetKeys`'s sanity check).
                    return Vec::new();
                }
                (first, last, step)
            }
            FindKeys::Unknown => continue,
        };
        let mut i = first;
        while i <= last && i < argc {
            if i >= 1 {
                out.push((i as usize, ks.flags));
            }
            i += step;
        }
    }
    out
}

/// The server's table: Redis's metadata and the built-in module commands'
/// metadata, joined with our handlers.
pub static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::build(
        &[
            super::meta_redis::REDIS_COMMANDS,
            super::meta_modules::MODULE_COMMANDS,
        ],
        &crate::commands::handlers(),
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    /// The commands the spine serves; each must be in the table with a handler.
    const SPINE: &[&str] = &[
        "ping",
        "echo",
        "quit",
        "reset",
        "hello",
        "auth",
        "select",
        "swapdb",
        "client|id",
        "client|setname",
        "client|getname",
        "client|list",
        "client|info",
        "client|kill",
        "client|no-evict",
        "client|reply",
        "get",
        "set",
        "setnx",
        "setex",
        "psetex",
        "getset",
        "getdel",
        "getex",
        "mget",
        "mset",
        "msetnx",
        "append",
        "strlen",
        "getrange",
        "setrange",
        "incr",
        "decr",
        "incrby",
        "decrby",
        "incrbyfloat",
        "setbit",
        "getbit",
        "bitcount",
        "bitpos",
        "bitop",
        "bitfield",
        "del",
        "unlink",
        "exists",
        "type",
        "rename",
        "renamenx",
        "copy",
        "move",
        "touch",
        "keys",
        "scan",
        "randomkey",
        "dbsize",
        "flushdb",
        "flushall",
        "expire",
        "pexpire",
        "expireat",
        "pexpireat",
        "ttl",
        "pttl",
        "expiretime",
        "pexpiretime",
        "persist",
        "object|encoding",
        "object|refcount",
        "object|idletime",
        "object|freq",
        "object|help",
        "info",
        "config|get",
        "config|set",
        "config|resetstat",
        "config|rewrite",
        "command|count",
        "command|info",
        "command|docs",
        "command|getkeys",
        "command|list",
        "time",
        "lastsave",
        "slowlog|get",
        "slowlog|len",
        "slowlog|reset",
        "monitor",
        "shutdown",
        "memory|usage",
        "latency|latest",
        "latency|reset",
        "debug",
    ];

    fn find(name: &str) -> Option<&'static Command> {
        let mut parts = name.split('|');
        let top = TABLE.lookup(parts.next()?.as_bytes())?;
        match parts.next() {
            Some(sub) => top.subcommand(sub.as_bytes()),
            None => Some(top),
        }
    }

    #[test]
    fn every_spine_command_is_served() {
        let missing: Vec<&str> = SPINE
            .iter()
            .copied()
            .filter(|n| find(n).and_then(|c| c.handler).is_none())
            .collect();
        assert!(missing.is_empty(), "declared but not served: {missing:?}");
    }

    #[test]
    fn every_handler_has_metadata() {
        fn declared(name: &str) -> bool {
            super::super::meta_redis::REDIS_COMMANDS
                .iter()
                .chain(super::super::meta_modules::MODULE_COMMANDS)
                .any(|m| m.name == name || m.subcommands.iter().any(|s| s.name == name))
        }
        let orphans: Vec<&str> = crate::commands::handlers()
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !declared(n))
            .collect();
        assert!(orphans.is_empty(), "handlers without metadata: {orphans:?}");
    }

    #[test]
    fn key_positions_are_valid() {
        fn check(c: &Command) {
            let m = c.meta;
            if m.first_key > 0 {
                assert!(m.step > 0, "{}: step", m.name);
                assert!(
                    m.last_key < 0 || m.last_key >= m.first_key,
                    "{}: last key",
                    m.name
                );
                if m.arity > 0 {
                    assert!(m.first_key < m.arity, "{}: first key beyond arity", m.name);
                }
            } else {
                assert_eq!((m.first_key, m.last_key, m.step), (0, 0, 0), "{}", m.name);
            }
            c.subcommands.values().for_each(check);
        }
        TABLE.commands.values().for_each(check);
    }

    #[test]
    fn container_commands_serve_subcommands() {
        for c in TABLE.commands.values() {
            if !c.meta.subcommands.is_empty() {
                // Only COMMAND is both a command and a container, as in Redis.
                assert!(
                    c.handler.is_none() || c.meta.name == "command",
                    "{}",
                    c.meta.name
                );
                assert!(!c.subcommands.is_empty(), "{}", c.meta.name);
            }
        }
    }
}
