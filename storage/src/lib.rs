//! Ferrite's keyspace: databases split into shards, values, TTLs with lazy
//! and active expiry, memory accounting.
//!
//! This crate must not depend on sockets, the protocol or the server: it is
//! driven through closures that run with shard locks held, and it reports
//! effects (expiries) through the [`Observer`] hook.

pub mod bloom;
pub mod db;
pub mod dict;
pub mod evict;
pub mod expire;
pub mod geohash;
pub mod glob;
pub mod hash;
pub mod held;
pub mod hll;
pub mod key;
pub mod limits;
pub mod list;
pub mod mem;
mod number;
pub mod set;
pub mod shard;
pub mod skiplist;
pub mod store;
pub mod strbuf;
pub mod stream;
pub mod value;
pub mod watch;
pub mod zlistpack;
pub mod zset;

pub use bloom::{Bloom, BloomError, DumpError};
pub use db::{Db, ShardGroup, MAX_SHARDS};
pub use dict::{hash_key, Dict};
pub use evict::{EvictionPool, Policy};
pub use expire::{
    ActiveExpire, CycleKind, CycleOutcome, ExpireDriver, ExpireEffort, Runner, Tick, IDLE_GRACE,
};
pub use glob::glob_match;
pub use hash::Hash;
pub use held::{LockSet, ShardRef};
pub use limits::EncodingLimits;
pub use list::List;
pub use number::is_canonical_i64;
pub use set::Set;
pub use shard::{entry_mem, idle_seconds, lru_clock, Capture, Entry, Shard, NO_EXPIRE};
pub use store::{
    applying_primary, set_applying_primary, Databases, Disposal, NoObserver, Observer, Store,
    StoreStats,
};
pub use strbuf::StrBuf;
pub use stream::{ConsumerGroup, Stream, StreamId};
pub use value::{Value, EMBSTR_LIMIT};
pub use watch::WatchFlag;
pub use zset::{AddFlags, AddOutcome, LexBound, LexRange, ScoreRange, ZSet};
