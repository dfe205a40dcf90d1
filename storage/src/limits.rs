//! The size thresholds at which collections leave their compact encoding.
//!
//! They are configuration (`hash-max-listpack-entries` and friends), owned by
//! the server; storage receives them per call so a `CONFIG SET` applies to
//! the next write, exactly as in Redis.

/// Redis 7.0's encoding thresholds, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodingLimits {
    /// `list-max-listpack-size` (negative: a size class in KB, Redis's -2 = 8 KB).
    pub list_max_listpack_size: i64,
    /// `hash-max-listpack-entries`.
    pub hash_max_listpack_entries: usize,
    /// `hash-max-listpack-value`: longest field or value kept in a listpack.
    pub hash_max_listpack_value: usize,
    /// `set-max-intset-entries`.
    pub set_max_intset_entries: usize,
    /// `zset-max-listpack-entries`.
    pub zset_max_listpack_entries: usize,
    /// `zset-max-listpack-value`: longest member kept in a listpack.
    pub zset_max_listpack_value: usize,
    /// `stream-node-max-entries`: entries per stream node (0 = unlimited).
    pub stream_node_max_entries: usize,
    /// `stream-node-max-bytes`: bytes per stream node (0 = unlimited).
    pub stream_node_max_bytes: usize,
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits {
            list_max_listpack_size: -2,
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            stream_node_max_entries: 100,
            stream_node_max_bytes: 4096,
        }
    }
}
