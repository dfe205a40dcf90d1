//! The command table seen from ACL rules: each command id's full name,
//! category bits and subcommands, built once from [`TABLE`].

use std::sync::LazyLock;

use crate::command::table::{Command, TABLE};

/// Redis 7.0's ACL categories, in its order (bit `j` is `CATEGORIES[j]`).
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// One command or subcommand, at its id.
#[derive(Default)]
pub struct CmdInfo {
    /// False for id 0 (the "future commands" bit).
    pub exists: bool,
    /// `get`, `config|get`.
    pub name: &'static str,
    /// Category bits; none for module commands, as Redis 7.0 gives them none.
    pub cats: u32,
    pub module: bool,
    /// A subcommand (`config|get`).
    pub parent: bool,
    /// A container's subcommand ids.
    pub subs: Vec<u32>,
}

struct Index {
    by_id: Vec<CmdInfo>,
    /// Ids sorted by name, each container followed by its subcommands:
    /// the order rules are described and `ACL CAT` lists in.
    order: Vec<u32>,
}

static INDEX: LazyLock<Index> = LazyLock::new(|| {
    let mut by_id: Vec<CmdInfo> = (0..=TABLE.names.len())
        .map(|_| CmdInfo::default())
        .collect();
    let mut order = Vec::new();
    let info = |c: &Command, parent: bool| {
        let module = c.meta.doc.group == "module";
        let cats = if module {
            0
        } else {
            c.meta
                .acl_categories
                .iter()
                .filter_map(|a| super::rules::category(a.trim_start_matches('@').as_bytes()))
                .fold(0, |acc, b| acc | b)
        };
        CmdInfo {
            exists: true,
            name: c.meta.name,
            cats,
            module,
            parent,
            subs: Vec::new(),
        }
    };
    for c in TABLE.sorted() {
        let mut me = info(c, false);
        let mut subs: Vec<&Command> = c.subcommands.values().collect();
        subs.sort_by_key(|s| s.meta.name);
        order.push(c.id);
        for s in subs {
            me.subs.push(s.id);
            by_id[s.id as usize] = info(s, true);
            order.push(s.id);
        }
        by_id[c.id as usize] = me;
    }
    Index { by_id, order }
});

/// Every id's entry; index 0 is the reserved bit.
pub fn index() -> &'static [CmdInfo] {
    &INDEX.by_id
}

/// Ids in description order.
pub fn order() -> &'static [u32] {
    &INDEX.order
}

/// The id of `get` or `config|get`, case-insensitively (Redis's
/// `ACLLookupCommand`: one level of subcommands, and `x|y` only where `x`
/// has subcommands).
pub fn lookup(name: &[u8]) -> Option<u32> {
    let mut parts = name.split(|&b| b == b'|');
    let base = TABLE.lookup(parts.next()?)?;
    match (parts.next(), parts.next()) {
        (None, _) => Some(base.id),
        (Some(sub), None) if !base.subcommands.is_empty() => base.subcommand(sub).map(|s| s.id),
        _ => None,
    }
}
