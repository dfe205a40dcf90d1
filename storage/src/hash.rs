//! Hashes: a listpack-like flat vector while small, a [`Dict`] past
//! `hash-max-listpack-entries` / `hash-max-listpack-value` (Redis 7.0's
//! conversion points). Filled in by the hash command family.

use crate::dict::Dict;

/// One field and its value.
pub type Pair = (Box<[u8]>, Box<[u8]>);

/// A hash value.
#[derive(Debug, Clone)]
pub enum Hash {
    /// Field/value pairs in insertion order (`OBJECT ENCODING` `listpack`).
    Listpack(Vec<Pair>),
    /// A table (`hashtable`).
    Table(Dict<Box<[u8]>>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Listpack(Vec::new())
    }
}

impl Hash {
    /// An empty hash in the compact encoding.
    pub fn new() -> Self {
        Hash::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match self {
            Hash::Listpack(v) => v.len(),
            Hash::Table(d) => d.len(),
        }
    }

    /// No fields.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name `OBJECT ENCODING` answers.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Listpack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    /// Approximate heap bytes.
    pub fn mem_usage(&self) -> usize {
        match self {
            Hash::Listpack(v) => v.iter().map(|(f, x)| f.len() + x.len() + 32).sum(),
            Hash::Table(d) => d.iter().map(|(f, x)| f.len() + x.len() + 64).sum(),
        }
    }
}
