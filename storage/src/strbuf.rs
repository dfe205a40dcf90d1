//! A string value's bytes: up to [`INLINE`] bytes inside the value itself,
//! longer (or modified in place) in a `Vec` of their own.
//!
//! Why: a string read (`GET`) finds the key's node and then reads the
//! value's bytes; kept apart, those bytes are one more cache miss and one
//! more allocation per key. Redis keeps strings up to 44 bytes in one
//! allocation with their object header (`OBJ_ENCODING_EMBSTR`) for the same
//! reason. Here the inline form costs nothing: [`crate::value::Value`] is
//! 48 bytes for its collection variants anyway, and a string with its
//! inline buffer fits in the same 48.
//!
//! A string modified in place (`APPEND`, `SETRANGE`, `SETBIT`, ...) moves to
//! the heap form ([`StrBuf::make_mut`]), which can grow without copying
//! again, as Redis turns such a string into `raw`.

use crate::mem::alloc_size;

/// Longest string held inline: with the length byte and the tag, the type
/// takes four words, which with the `raw` flag still leaves
/// [`crate::value::Value`] at 48 bytes (at 38 inline bytes it grew to 56).
pub const INLINE: usize = 30;

/// A string value's bytes.
#[derive(Clone)]
pub enum StrBuf {
    /// `len <= INLINE` bytes, in place.
    Inline { len: u8, buf: [u8; INLINE] },
    /// Longer strings, and strings modified in place.
    Heap(Vec<u8>),
}

impl Default for StrBuf {
    fn default() -> Self {
        StrBuf::Inline {
            len: 0,
            buf: [0; INLINE],
        }
    }
}

impl StrBuf {
    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match self {
            StrBuf::Inline { len, buf } => &buf[..usize::from(*len)],
            StrBuf::Heap(v) => v,
        }
    }

    /// The bytes as a growable vector, moving inline bytes to the heap
    /// first (in-place modification).
    pub fn make_mut(&mut self) -> &mut Vec<u8> {
        if let StrBuf::Inline { .. } = self {
            *self = StrBuf::Heap(self.as_slice().to_vec());
        }
        match self {
            StrBuf::Heap(v) => v,
            // Just replaced by the heap form.
            StrBuf::Inline { .. } => unreachable!("inline string after make_mut"),
        }
    }

    /// Heap bytes held, as allocated (memory accounting).
    #[inline]
    pub fn heap_size(&self) -> usize {
        match self {
            StrBuf::Inline { .. } => 0,
            StrBuf::Heap(v) => alloc_size(v.capacity()),
        }
    }

    /// Whether the bytes live in a heap allocation of their own.
    pub fn is_heap(&self) -> bool {
        matches!(self, StrBuf::Heap(_))
    }
}

impl From<&[u8]> for StrBuf {
    #[inline]
    fn from(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            StrBuf::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            StrBuf::Heap(b.to_vec())
        }
    }
}

impl From<Vec<u8>> for StrBuf {
    #[inline]
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= INLINE {
            StrBuf::from(&v[..])
        } else {
            StrBuf::Heap(v)
        }
    }
}

impl From<&Vec<u8>> for StrBuf {
    fn from(v: &Vec<u8>) -> Self {
        StrBuf::from(&v[..])
    }
}

impl From<&str> for StrBuf {
    fn from(s: &str) -> Self {
        StrBuf::from(s.as_bytes())
    }
}

impl From<String> for StrBuf {
    fn from(s: String) -> Self {
        StrBuf::from(s.into_bytes())
    }
}

impl From<&bytes::Bytes> for StrBuf {
    fn from(b: &bytes::Bytes) -> Self {
        StrBuf::from(&b[..])
    }
}

impl From<bytes::Bytes> for StrBuf {
    fn from(b: bytes::Bytes) -> Self {
        StrBuf::from(&b[..])
    }
}

impl std::ops::Deref for StrBuf {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for StrBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_in_a_value() {
        assert_eq!(std::mem::size_of::<StrBuf>(), 32);
        assert_eq!(std::mem::size_of::<crate::value::Value>(), 48);
    }

    #[test]
    fn round_trips_and_moves_to_the_heap_when_modified() {
        for n in 0..=INLINE + 2 {
            let b: Vec<u8> = (0..n as u8).collect();
            let mut s = StrBuf::from(&b[..]);
            assert_eq!(s.as_slice(), &b[..]);
            assert_eq!(s.is_heap(), n > INLINE);
            assert_eq!(s.heap_size() == 0, n <= INLINE);
            assert_eq!(&*StrBuf::from(b.clone()), &b[..]);
            s.make_mut().push(7);
            assert!(s.is_heap());
            assert_eq!(s.len(), n + 1);
            assert_eq!(s[n], 7);
        }
    }
}
