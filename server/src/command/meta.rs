//! Command metadata: the single declaration of every command's arity,
//! flags, key positions, ACL categories, tips, key specs and docs.
//!
//! Dispatch, arity errors, `COMMAND`/`COMMAND INFO`/`COMMAND DOCS`/
//! `COMMAND GETKEYS`, shard locking and propagation all read it. Rows for
//! commands Redis also has are generated from real Redis 7.0's own
//! `COMMAND INFO`/`COMMAND DOCS` replies (`tools/gen_command_meta.py`), so
//! what clients see matches it byte for byte; Ferrite-only commands are
//! declared by hand in the same form.

/// One command or subcommand.
#[derive(Debug)]
pub struct CommandMeta {
    /// Lowercase full name; subcommands are `container|sub` (`config|get`).
    pub name: &'static str,
    /// Redis convention: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    /// Flags as `COMMAND INFO` spells them (`write`, `readonly`, `denyoom`, ...).
    pub flags: &'static [&'static str],
    /// Legacy key positions (1-based, `-1` = last argument, 0 = none): the first key.
    pub first_key: i32,
    /// The last key (negative: counted from the end).
    pub last_key: i32,
    /// The distance between keys.
    pub step: i32,
    /// ACL categories with their `@` (`@write`, `@string`, ...).
    pub acl_categories: &'static [&'static str],
    /// Command tips (`nondeterministic_output`, `request_policy:all_shards`, ...).
    pub tips: &'static [&'static str],
    /// Redis 7 key specifications.
    pub key_specs: &'static [KeySpec],
    /// Subcommands of a container command (`CONFIG`, `CLIENT`, ...).
    pub subcommands: &'static [CommandMeta],
    /// What `COMMAND DOCS` answers.
    pub doc: Doc,
}

/// A Redis 7 key specification.
#[derive(Debug)]
pub struct KeySpec {
    /// `notes`, usually empty (empty = not sent).
    pub notes: &'static str,
    /// Flags as Redis spells them (`RW`, `RO`, `OW`, `RM`, `access`, `update`, `insert`, `delete`, ...).
    pub flags: &'static [&'static str],
    /// Where the key search starts.
    pub begin_search: BeginSearch,
    /// How keys are found from there.
    pub find_keys: FindKeys,
}

/// Where the search for keys starts.
#[derive(Debug)]
pub enum BeginSearch {
    /// At a fixed argument index.
    Index(i32),
    /// After a keyword, searching from `startfrom` (negative = from the end).
    Keyword {
        /// The keyword (`STREAMS`, ...).
        keyword: &'static str,
        /// The argument index the search starts from.
        startfrom: i32,
    },
    /// Not describable (the command has the `movablekeys` flag).
    Unknown,
}

/// How keys are found once the search began.
#[derive(Debug)]
pub enum FindKeys {
    /// A range: `lastkey` relative to the begin (negative = from the end), every `step`, up to `limit`.
    Range {
        /// The last key, relative to the begin (negative = from the end).
        lastkey: i32,
        /// The distance between keys (`keystep`).
        step: i32,
        /// With `lastkey` -1: only the first 1/limit of the remaining arguments (0 = all).
        limit: i32,
    },
    /// A key count at `keynumidx`, the first key at `firstkey`, every `step`.
    Keynum {
        /// Index of the key count, relative to the begin.
        keynumidx: i32,
        /// Index of the first key, relative to the begin.
        firstkey: i32,
        /// The distance between keys (`keystep`).
        step: i32,
    },
    /// Not describable.
    Unknown,
}

/// `COMMAND DOCS` content. An empty string or slice is a field Redis does not send.
#[derive(Debug)]
pub struct Doc {
    /// One-line description.
    pub summary: &'static str,
    /// The Redis version that introduced the command.
    pub since: &'static str,
    /// `string`, `generic`, `server`, `connection`, ... (always sent).
    pub group: &'static str,
    /// Time complexity text.
    pub complexity: &'static str,
    /// `deprecated`, `syscmd`.
    pub doc_flags: &'static [&'static str],
    /// The version that deprecated the command.
    pub deprecated_since: &'static str,
    /// What to use instead of a deprecated command.
    pub replaced_by: &'static str,
    /// (version, description) pairs.
    pub history: &'static [(&'static str, &'static str)],
    /// The command's arguments, in order.
    pub arguments: &'static [Arg],
}

/// One argument in `COMMAND DOCS`. An empty string or slice is a field Redis does not send.
#[derive(Debug)]
pub struct Arg {
    /// The argument's name.
    pub name: &'static str,
    /// `string`, `integer`, `double`, `key`, `pattern`, `unix-time`, `pure-token`, `oneof`, `block`.
    pub type_: &'static str,
    /// Index into the command's key specs for `key` arguments, else -1.
    pub key_spec_index: i32,
    /// The literal token that introduces the argument (`EX`, `GET`, ...); always sent for `pure-token` arguments, even empty.
    pub token: &'static str,
    /// One-line description.
    pub summary: &'static str,
    /// The Redis version that introduced the argument.
    pub since: &'static str,
    /// `optional`, `multiple`, `multiple_token`.
    pub flags: &'static [&'static str],
    /// The version that deprecated the argument.
    pub deprecated_since: &'static str,
    /// Display text for help output. Redis 7.0's `COMMAND DOCS` never sends it
    /// (7.2 added it as `display`), so the renderer ignores it; generated rows leave it empty.
    pub display: &'static str,
    /// Nested arguments of a `oneof` or `block` argument (sent for those types, even when empty).
    pub arguments: &'static [Arg],
}
