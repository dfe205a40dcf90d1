//! Argument parsing shared by `SCAN`, `HSCAN`, `SSCAN` and `ZSCAN`: the
//! cursor and the `MATCH` / `COUNT` (and, for `SCAN`, `TYPE`) options, as
//! Redis's `parseScanCursorOrReply` and `scanGenericCommand` read them.

use bytes::Bytes;

use super::ctx::{int_arg, is};
use super::error::CmdError;

/// Parses a cursor like `strtoul`: an optional sign (a negative cursor
/// wraps, as in C), then digits and nothing else; `None` otherwise.
pub fn parse_cursor(arg: &[u8]) -> Option<u64> {
    let (neg, digits) = match arg.first() {
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// The cursor argument, or `ERR invalid cursor`.
pub fn cursor_arg(arg: &[u8]) -> Result<u64, CmdError> {
    parse_cursor(arg).ok_or_else(|| CmdError::err("invalid cursor"))
}

/// The options of a scan.
pub struct ScanOptions<'a> {
    /// `COUNT` (default 10, at least 1).
    pub count: i64,
    /// `MATCH`, `None` for no pattern or a lone `*` (which matches all).
    pub pattern: Option<&'a [u8]>,
    /// `TYPE` (`SCAN` only).
    pub typename: Option<&'a [u8]>,
}

/// Parses the options from `args[from..]`; `TYPE` is accepted only when
/// `with_type` (it is a syntax error for the per-key scans, as in Redis).
pub fn scan_options(
    args: &[Bytes],
    from: usize,
    with_type: bool,
) -> Result<ScanOptions<'_>, CmdError> {
    let mut o = ScanOptions {
        count: 10,
        pattern: None,
        typename: None,
    };
    let mut i = from;
    while i < args.len() {
        let more = args.len() - i;
        if is(&args[i], "count") && more >= 2 {
            o.count = int_arg(&args[i + 1])?;
            if o.count < 1 {
                return Err(CmdError::Syntax);
            }
        } else if is(&args[i], "match") && more >= 2 {
            let p = &args[i + 1][..];
            o.pattern = if p == b"*" { None } else { Some(p) };
        } else if with_type && is(&args[i], "type") && more >= 2 {
            o.typename = Some(&args[i + 1][..]);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_parse() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b""), None);
        assert_eq!(parse_cursor(b" 1"), None);
        assert_eq!(parse_cursor(b"1x"), None);
    }

    #[test]
    fn options() {
        let args: Vec<Bytes> = ["SCAN", "0", "MATCH", "*", "COUNT", "5", "TYPE", "set"]
            .iter()
            .map(|s| Bytes::from(s.as_bytes().to_vec()))
            .collect();
        let o = scan_options(&args, 2, true).unwrap();
        assert_eq!(
            (o.count, o.pattern, o.typename),
            (5, None, Some(&b"set"[..]))
        );
        assert_eq!(scan_options(&args, 2, false).err(), Some(CmdError::Syntax));
        let bad: Vec<Bytes> = ["SCAN", "0", "COUNT", "0"]
            .iter()
            .map(|s| Bytes::from(s.as_bytes().to_vec()))
            .collect();
        assert_eq!(scan_options(&bad, 2, true).err(), Some(CmdError::Syntax));
    }
}
