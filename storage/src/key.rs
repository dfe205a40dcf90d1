//! Keys as the hash tables hold them (database keys, hash fields, set
//! members): up to [`INLINE`] bytes live inside the chain node itself,
//! longer ones in a heap allocation of their own.
//!
//! Why: a lookup that finds a node then compares its key; with the bytes in
//! a separate allocation that comparison is a second cache miss per lookup
//! (it showed as 11% `memcmp` in a pipelined SET profile), and each short
//! key costs an allocation of its own. Inline, a 16-byte key costs nothing
//! beyond the node, whose size class stays the same for the key table
//! (72 → 80 bytes, both in mimalloc's 80-byte class). Redis's embedded
//! strings (`OBJ_ENCODING_EMBSTR`) make the same trade.

use crate::mem::alloc_size;

/// Longest key kept inside the node: with the length byte and the enum's
/// tag, the type is as large as three words.
pub const INLINE: usize = 22;

/// A key's bytes, inline when short.
#[derive(Clone)]
pub enum Key {
    /// `len <= INLINE` bytes, in place.
    Inline { len: u8, buf: [u8; INLINE] },
    /// Longer keys.
    Heap(Box<[u8]>),
}

impl Key {
    /// The key's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, buf } => &buf[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }

    /// Heap bytes a key of `len` bytes costs beyond the node holding it,
    /// as allocated (memory accounting).
    #[inline]
    pub const fn heap_size(len: usize) -> usize {
        if len <= INLINE {
            0
        } else {
            alloc_size(len)
        }
    }

    /// The bytes as an owned boxed slice.
    pub fn into_boxed(self) -> Box<[u8]> {
        match self {
            Key::Inline { .. } => self.as_bytes().into(),
            Key::Heap(b) => b,
        }
    }
}

impl From<&[u8]> for Key {
    #[inline]
    fn from(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            Key::Heap(b.into())
        }
    }
}

impl From<Box<[u8]>> for Key {
    #[inline]
    fn from(b: Box<[u8]>) -> Self {
        if b.len() <= INLINE {
            Key::from(&*b)
        } else {
            Key::Heap(b)
        }
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_words() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
    }

    #[test]
    fn round_trips_at_every_length_around_the_limit() {
        for n in 0..=INLINE + 2 {
            let b: Vec<u8> = (0..n as u8).collect();
            let k = Key::from(&b[..]);
            assert_eq!(k.as_bytes(), &b[..]);
            assert_eq!(matches!(k, Key::Inline { .. }), n <= INLINE);
            let k2 = Key::from(b.clone().into_boxed_slice());
            assert_eq!(&*k2, &b[..]);
            assert_eq!(&*k2.into_boxed(), &b[..]);
            assert_eq!(Key::heap_size(n) == 0, n <= INLINE);
        }
    }
}
