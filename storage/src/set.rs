//! Sets: a sorted integer array (`intset`) while every member is an integer
//! and there are at most `set-max-intset-entries`, else a [`Dict`]
//! (`hashtable`), as in Redis 7.0. Filled in by the set command family.

use crate::dict::Dict;

/// A set value.
#[derive(Debug, Clone)]
pub enum Set {
    /// Sorted distinct integers.
    Intset(Vec<i64>),
    /// Members as keys of a table.
    Table(Dict<()>),
}

impl Default for Set {
    fn default() -> Self {
        Set::Intset(Vec::new())
    }
}

impl Set {
    /// An empty set in the compact encoding.
    pub fn new() -> Self {
        Set::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match self {
            Set::Intset(v) => v.len(),
            Set::Table(d) => d.len(),
        }
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name `OBJECT ENCODING` answers.
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Intset(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }

    /// Approximate heap bytes.
    pub fn mem_usage(&self) -> usize {
        match self {
            Set::Intset(v) => v.capacity() * 8,
            Set::Table(d) => d.iter().map(|(m, _)| m.len() + 48).sum(),
        }
    }
}
