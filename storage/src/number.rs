//! Integer checks shared by the value encodings.

/// Whether `s` parses as a canonical `i64` (no sign `+`, no leading zeros).
pub fn is_canonical_i64(s: &[u8]) -> bool {
    if s.is_empty() || s.len() > 20 {
        return false;
    }
    if s == b"0" {
        return true;
    }
    let digits = if s[0] == b'-' { &s[1..] } else { s };
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let Ok(t) = std::str::from_utf8(s) else {
        return false;
    };
    t.parse::<i64>().is_ok()
}
