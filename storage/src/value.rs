//! The values a key can hold.
//!
//! Throttle state (`CL.THROTTLE`) is an ordinary string with a TTL, as
//! redis-cell stores it, so it needs no variant of its own.

use crate::bloom::Bloom;
use crate::hash::Hash;
use crate::list::List;
use crate::mem::alloc_size;
use crate::set::Set;
use crate::strbuf::StrBuf;
use crate::stream::Stream;
use crate::zset::ZSet;

/// A stored value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string. `raw` records that it was modified in place (`APPEND`,
    /// `SETRANGE`, `SETBIT`), after which Redis reports the `raw` encoding
    /// whatever its length.
    Str { bytes: StrBuf, raw: bool },
    /// A list.
    List(List),
    /// A hash.
    Hash(Hash),
    /// A set.
    Set(Set),
    /// A sorted set.
    ZSet(ZSet),
    /// A scalable Bloom filter (RedisBloom's `MBbloom--` type), boxed so
    /// the enum stays as small as its most common variants.
    Bloom(Box<Bloom>),
    /// A stream, boxed: its header (IDs, counters, maps) is far larger
    /// than the other variants.
    Stream(Box<Stream>),
}

/// Redis keeps strings up to this length in one allocation with the object
/// header (`OBJ_ENCODING_EMBSTR_SIZE_LIMIT`).
pub const EMBSTR_LIMIT: usize = 44;

impl Value {
    /// A string value as `SET` creates it.
    pub fn string(bytes: impl Into<StrBuf>) -> Value {
        Value::Str {
            bytes: bytes.into(),
            raw: false,
        }
    }

    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str { .. } => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            // RedisBloom's module type name, which TYPE reports.
            Value::Bloom(_) => "MBbloom--",
            Value::Stream(_) => "stream",
        }
    }

    /// The name `OBJECT ENCODING` answers, by Redis 7.0's rules.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str { bytes, raw } => {
                // A string modified in place stays raw even when its bytes
                // read as an integer (Redis only re-encodes on SET/INCR).
                if *raw || bytes.len() > EMBSTR_LIMIT {
                    "raw"
                } else if bytes.len() <= 20 && ferrite_protocol_int(bytes) {
                    "int"
                } else {
                    "embstr"
                }
            }
            Value::List(_) => "quicklist",
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            // Module values are OBJ_ENCODING_RAW in Redis.
            Value::Bloom(_) => "raw",
            Value::Stream(_) => "stream",
        }
    }

    /// Heap bytes the value holds as the allocator serves them (the value
    /// itself sits in its key's node), for `used_memory` and `MEMORY
    /// USAGE`. O(1): collections keep their sizes as they change.
    pub fn mem_usage(&self) -> usize {
        match self {
            Value::Str { bytes, .. } => bytes.heap_size(),
            Value::List(l) => l.mem_usage(),
            Value::Hash(h) => h.mem_usage(),
            Value::Set(s) => s.mem_usage(),
            Value::ZSet(z) => z.mem_usage(),
            Value::Bloom(b) => b.mem_usage() + alloc_size(std::mem::size_of::<Bloom>()),
            Value::Stream(s) => s.mem_usage() + alloc_size(std::mem::size_of::<Stream>()),
        }
    }

    /// The string bytes, if this is a string.
    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            Value::Str { bytes, .. } => Some(bytes),
            _ => None,
        }
    }

    /// Whether a client blocked on this key could be served by it (lists,
    /// sorted sets and streams, Redis's `signalKeyAsReady` types).
    pub fn is_blockable(&self) -> bool {
        matches!(self, Value::List(_) | Value::ZSet(_) | Value::Stream(_))
    }

    /// Number of elements of a collection (1 for a string).
    pub fn len(&self) -> usize {
        match self {
            Value::Str { .. } => 1,
            Value::List(l) => l.len(),
            Value::Hash(h) => h.len(),
            Value::Set(s) => s.len(),
            Value::ZSet(z) => z.len(),
            Value::Bloom(_) => 1,
            Value::Stream(s) => s.len(),
        }
    }

    /// How many allocations freeing the value takes (Redis's
    /// `lazyfreeGetFreeEffort`): what decides whether `UNLINK` frees it in
    /// the background. A compact encoding, a string or a Bloom filter is one
    /// block (or a few); a table, a skip list or a list costs one per
    /// element; a stream one per node plus its groups' pending entries,
    /// estimated from the first group's as Redis does.
    pub fn free_effort(&self) -> usize {
        match self {
            Value::Str { .. } => 1,
            Value::Bloom(b) => 1 + b.filters().len(),
            Value::List(l) => l.len(),
            Value::Hash(h) if h.is_listpack() => 1,
            Value::Hash(h) => h.len(),
            Value::Set(s) if s.encoding() == "intset" => 1,
            Value::Set(s) => s.len(),
            Value::ZSet(z) if z.is_listpack() => 1,
            Value::ZSet(z) => z.len(),
            Value::Stream(s) => {
                let groups = s.groups.len();
                let pel = s.groups.values().next().map_or(0, |g| g.pel.len());
                s.node_count() + groups * (1 + pel)
            }
        }
    }

    /// A collection with no elements (such a key must be deleted).
    pub fn is_empty(&self) -> bool {
        !matches!(self, Value::Str { .. } | Value::Bloom(_) | Value::Stream(_)) && self.len() == 0
    }
}

/// Whether `s` is a canonical 64-bit integer (Redis's `string2l`).
fn ferrite_protocol_int(s: &[u8]) -> bool {
    crate::number::is_canonical_i64(s)
}
