//! Metadata of the commands Ferrite builds in from Redis modules:
//! RedisBloom's `BF.*` and redis-cell's `CL.THROTTLE`. Written by hand,
//! since a Redis without modules cannot report them.
//!
//! The rows reproduce what a Redis 7.0 with the module loaded answers to
//! `COMMAND INFO`: modules register with `RedisModule_CreateCommand(name,
//! handler, flags, firstkey, lastkey, keystep)`, which takes no arity (Redis
//! reports -1 and the module checks the argument count itself: the handlers
//! here do the same, with the same error), adds the `module` flag, gives
//! no ACL categories, and derives one key spec from the legacy key triple
//! with full-access flags. `COMMAND DOCS` of a module command carries only
//! its group, `module`.

use super::meta::*;

/// The key spec Redis 7.0 derives for a module command with keys (1, 1, 1).
static FIRST_KEY: &[KeySpec] = &[KeySpec {
    notes: "",
    flags: &["RW", "access", "update"],
    begin_search: BeginSearch::Index(1),
    find_keys: FindKeys::Range {
        lastkey: 0,
        step: 1,
        limit: 0,
    },
}];

/// RedisBloom's `CREATE_WRCMD`: "write deny-oom".
const WRITE_DENYOOM: &[&str] = &["write", "denyoom", "module"];
/// RedisBloom's `CREATE_ROCMD`: "readonly fast".
const READONLY_FAST: &[&str] = &["readonly", "fast", "module"];
/// redis-cell's "write".
const WRITE: &[&str] = &["write", "module"];

const fn module_cmd(name: &'static str, flags: &'static [&'static str]) -> CommandMeta {
    CommandMeta {
        name,
        arity: -1,
        flags,
        first_key: 1,
        last_key: 1,
        step: 1,
        acl_categories: &[],
        tips: &[],
        key_specs: FIRST_KEY,
        subcommands: &[],
        doc: Doc {
            summary: "",
            since: "",
            group: "module",
            complexity: "",
            doc_flags: &[],
            deprecated_since: "",
            replaced_by: "",
            history: &[],
            arguments: &[],
        },
    }
}

/// Every built-in module command, sorted by name.
pub static MODULE_COMMANDS: &[CommandMeta] = &[
    module_cmd("bf.add", WRITE_DENYOOM),
    module_cmd("bf.card", READONLY_FAST),
    module_cmd("bf.exists", READONLY_FAST),
    module_cmd("bf.info", READONLY_FAST),
    module_cmd("bf.insert", WRITE_DENYOOM),
    module_cmd("bf.loadchunk", WRITE_DENYOOM),
    module_cmd("bf.madd", WRITE_DENYOOM),
    module_cmd("bf.mexists", READONLY_FAST),
    module_cmd("bf.reserve", WRITE_DENYOOM),
    module_cmd("bf.scandump", READONLY_FAST),
    module_cmd("cl.throttle", WRITE),
];
