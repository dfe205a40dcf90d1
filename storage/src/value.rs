//! The values a key can hold.
//!
//! Strings are the only type of the spine; lists, hashes, sets, sorted sets,
//! Bloom filters and throttle state join this enum in their own issues.

/// A stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string. `raw` records that it was modified in place (`APPEND`,
    /// `SETRANGE`, `SETBIT`), after which Redis reports the `raw` encoding
    /// whatever its length.
    Str { bytes: Vec<u8>, raw: bool },
}

/// Redis keeps strings up to this length in one allocation with the object
/// header (`OBJ_ENCODING_EMBSTR_SIZE_LIMIT`).
pub const EMBSTR_LIMIT: usize = 44;

impl Value {
    /// A string value as `SET` creates it.
    pub fn string(bytes: impl Into<Vec<u8>>) -> Value {
        Value::Str {
            bytes: bytes.into(),
            raw: false,
        }
    }

    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str { .. } => "string",
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
        }
    }

    /// Approximate heap bytes owned by the value, for `used_memory`.
    pub fn mem_usage(&self) -> usize {
        match self {
            Value::Str { bytes, .. } => bytes.capacity(),
        }
    }

    /// The string bytes, if this is a string.
    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            Value::Str { bytes, .. } => Some(bytes),
        }
    }
}

/// Whether `s` is a canonical 64-bit integer (Redis's `string2l`).
fn ferrite_protocol_int(s: &[u8]) -> bool {
    crate::number::is_canonical_i64(s)
}
