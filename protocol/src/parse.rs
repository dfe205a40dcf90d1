//! Request parsing: RESP multibulk and inline commands, as Redis's
//! `processMultibulkBuffer` / `processInlineBuffer` read them.
//!
//! A command is parsed in two passes over the buffer: the first finds where a
//! complete command ends (or that it is incomplete), validates it and notes
//! where its arguments lie; the second, over the bytes split off and
//! frozen, pushes each argument as a zero-copy `Bytes` slice. Nothing is
//! allocated per command for multibulk requests; the caller reuses its
//! argument vector.

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::number::parse_i64;

/// Longest inline request or count line Redis accepts (`PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX_SIZE: usize = 64 * 1024;

/// Arguments whose place the first pass remembers (see `parse_multibulk`).
const SPANS: usize = 16;

/// A bulk length: canonical and not negative, as `string2ll` plus Redis's
/// `ll < 0` check accept. Lengths of up to 18 digits cannot overflow and
/// take the short loop; longer ones go through [`parse_i64`].
#[inline]
fn parse_len(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 18 {
        return parse_i64(s).filter(|&n| n >= 0);
    }
    if s[0] == b'0' {
        return (s.len() == 1).then_some(0);
    }
    let mut v: i64 = 0;
    for &c in s {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + i64::from(d);
    }
    Some(v)
}

/// Per-connection limits that change what is valid.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `proto-max-bulk-len`.
    pub max_bulk_len: i64,
    /// Unauthenticated clients get the tight limits Redis gives them.
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            authenticated: true,
        }
    }
}

/// What one call to [`parse_command`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A command's arguments were pushed into the vector (possibly none, for
    /// an empty line or `*0`; the caller skips those, as Redis does).
    Command,
    /// More bytes are needed; `hint` is how many more are known to be needed,
    /// so a large bulk string can be read with one reservation.
    Incomplete { hint: usize },
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    // Redis looks for '\r' and then assumes '\n' follows.
    buf[from..]
        .iter()
        .position(|&b| b == b'\r')
        .map(|p| p + from)
}

/// Parses one command from the front of `buf`, consuming its bytes and
/// pushing its arguments into `argv` (cleared first).
pub fn parse_command(
    buf: &mut BytesMut,
    argv: &mut Vec<Bytes>,
    limits: &Limits,
) -> Result<Parsed, ProtocolError> {
    argv.clear();
    if buf.is_empty() {
        return Ok(Parsed::Incomplete { hint: 0 });
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, argv, limits)
    } else {
        parse_inline(buf, argv)
    }
}

fn parse_multibulk(
    buf: &mut BytesMut,
    argv: &mut Vec<Bytes>,
    limits: &Limits,
) -> Result<Parsed, ProtocolError> {
    let data: &[u8] = buf;
    let Some(nl) = find_crlf(data, 1) else {
        if data.len() > INLINE_MAX_SIZE {
            return Err(ProtocolError::TooBigMbulkCount);
        }
        return Ok(Parsed::Incomplete { hint: 0 });
    };
    if nl + 1 >= data.len() {
        return Ok(Parsed::Incomplete { hint: 0 });
    }
    let count = match parse_i64(&data[1..nl]) {
        Some(n) if n <= i64::from(i32::MAX) => n,
        _ => return Err(ProtocolError::InvalidMultibulkLength),
    };
    if !limits.authenticated && count > 10 {
        return Err(ProtocolError::UnauthenticatedMultibulkLength);
    }
    let mut pos = nl + 2;
    if count <= 0 {
        let _ = buf.split_to(pos);
        return Ok(Parsed::Command);
    }
    // First pass: validate, find the end, and remember where the first
    // `SPANS` arguments lie so the second pass need not parse their headers
    // again (almost every command has fewer).
    let mut spans = [(0usize, 0usize); SPANS];
    for i in 0..count as usize {
        if pos >= data.len() {
            return Ok(Parsed::Incomplete { hint: 0 });
        }
        let Some(nl) = find_crlf(data, pos) else {
            if data.len() - pos > INLINE_MAX_SIZE {
                return Err(ProtocolError::TooBigBulkCount);
            }
            return Ok(Parsed::Incomplete { hint: 0 });
        };
        if data[pos] != b'$' {
            return Err(ProtocolError::ExpectedDollar(data[pos]));
        }
        let len = match parse_len(&data[pos + 1..nl]) {
            Some(n) if n <= limits.max_bulk_len => n as usize,
            _ => return Err(ProtocolError::InvalidBulkLength),
        };
        if !limits.authenticated && len > 16384 {
            return Err(ProtocolError::UnauthenticatedBulkLength);
        }
        let start = nl + 2;
        let end = start + len + 2;
        if end > data.len() {
            return Ok(Parsed::Incomplete {
                hint: end - data.len(),
            });
        }
        if let Some(span) = spans.get_mut(i) {
            *span = (start, len);
        }
        pos = end;
    }
    // Second pass: slice the frozen frame.
    let frame = buf.split_to(pos).freeze();
    argv.reserve(count as usize);
    let known = (count as usize).min(SPANS);
    for &(start, len) in &spans[..known] {
        argv.push(frame.slice(start..start + len));
    }
    if count as usize > SPANS {
        let (start, len) = spans[SPANS - 1];
        let mut p = start + len + 2;
        for _ in SPANS..count as usize {
            let nl = find_crlf(&frame, p).unwrap_or(p);
            let len = parse_len(&frame[p + 1..nl]).unwrap_or(0) as usize;
            let start = nl + 2;
            argv.push(frame.slice(start..start + len));
            p = start + len + 2;
        }
    }
    Ok(Parsed::Command)
}

fn parse_inline(buf: &mut BytesMut, argv: &mut Vec<Bytes>) -> Result<Parsed, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(Parsed::Incomplete { hint: 0 });
    };
    let line = buf.split_to(nl + 1);
    let mut l: &[u8] = &line[..nl];
    if l.last() == Some(&b'\r') {
        l = &l[..l.len() - 1];
    }
    match split_args(l) {
        Some(args) => {
            argv.extend(args.into_iter().map(Bytes::from));
            Ok(Parsed::Command)
        }
        None => Err(ProtocolError::UnbalancedQuotes),
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits a line into arguments exactly like Redis's `sdssplitargs`: spaces
/// separate, double quotes allow `\n \r \t \b \a \xHH` escapes, single quotes
/// allow only `\'`, and a closing quote must be followed by a space or the end.
/// `None` means unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    // Redis walks a C string: a NUL ends the input (inside quotes that makes
    // them unbalanced, exactly as truncating here does).
    let line = match line.iter().position(|&b| b == 0) {
        Some(z) => &line[..z],
        None => line,
    };
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut inq = false;
        let mut insq = false;
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex(line[i + 2]).is_some()
                    && hex(line[i + 3]).is_some()
                {
                    cur.push(hex(line[i + 2])? * 16 + hex(line[i + 3])?);
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' => {
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
        let mut buf = BytesMut::from(input);
        let mut argv = Vec::new();
        let mut cmds = Vec::new();
        loop {
            match parse_command(&mut buf, &mut argv, &Limits::default()) {
                Ok(Parsed::Command) => {
                    cmds.push(argv.iter().map(|b| b.to_vec()).collect());
                }
                Ok(Parsed::Incomplete { .. }) => return (cmds, None),
                Err(e) => return (cmds, Some(e)),
            }
        }
    }

    #[test]
    fn multibulk_and_pipeline() {
        let (cmds, err) =
            parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET");
        assert!(err.is_none());
        assert_eq!(
            cmds,
            vec![vec![b"GET".to_vec(), b"k".to_vec()], vec![b"PING".to_vec()]]
        );
    }

    #[test]
    fn inline_commands_split_like_sdssplitargs() {
        let (cmds, _) = parse_all(b"set k \"a b\\x41\\n\"\r\nget 'it\\'s'\n\r\n");
        assert_eq!(
            cmds[0],
            vec![b"set".to_vec(), b"k".to_vec(), b"a bA\n".to_vec()]
        );
        assert_eq!(cmds[1], vec![b"get".to_vec(), b"it's".to_vec()]);
        assert_eq!(cmds[2], Vec::<Vec<u8>>::new());
        assert_eq!(
            parse_all(b"set \"a\"b\r\n").1,
            Some(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(
            parse_all(b"set \"ab\r\n").1,
            Some(ProtocolError::UnbalancedQuotes)
        );
    }

    #[test]
    fn malformed_requests_get_redis_errors() {
        assert_eq!(
            parse_all(b"*3000000000\r\n").1,
            Some(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse_all(b"*x\r\n").1,
            Some(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse_all(b"*1\r\nfoo\r\n").1,
            Some(ProtocolError::ExpectedDollar(b'f'))
        );
        assert_eq!(
            parse_all(b"*1\r\n$-1\r\n").1,
            Some(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            parse_all(b"*1\r\n$600000000\r\n").1,
            Some(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(b'f').to_string(),
            "Protocol error: expected '$', got 'f'"
        );
        let big = vec![b'a'; INLINE_MAX_SIZE + 1];
        assert_eq!(parse_all(&big).1, Some(ProtocolError::TooBigInline));
    }

    #[test]
    fn incomplete_bulk_reports_how_much_is_missing() {
        let mut buf = BytesMut::from(&b"*1\r\n$10\r\nabc"[..]);
        let mut argv = Vec::new();
        let r = parse_command(&mut buf, &mut argv, &Limits::default()).unwrap();
        assert_eq!(r, Parsed::Incomplete { hint: 9 });
        assert_eq!(buf.len(), 12, "nothing consumed");
    }

    proptest! {
        // Any byte sequence: no panic, and whatever is consumed is a prefix.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_all(&data);
        }

        // The bulk-length fast path accepts exactly what `string2ll` does,
        // less the negatives.
        #[test]
        fn parse_len_matches_string2ll(s in "-?[0-9]{0,21}|[0-9a-z+ -]{0,6}") {
            prop_assert_eq!(parse_len(s.as_bytes()), parse_i64(s.as_bytes()).filter(|&n| n >= 0));
        }

        // Well-formed commands, split at any point, parse back to themselves.
        #[test]
        fn encoded_commands_round_trip(
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..40),
            split in 0usize..1200,
        ) {
            let mut wire = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                wire.extend_from_slice(a);
                wire.extend_from_slice(b"\r\n");
            }
            let split = split.min(wire.len());
            let mut buf = BytesMut::from(&wire[..split]);
            let mut argv = Vec::new();
            let first = parse_command(&mut buf, &mut argv, &Limits::default()).unwrap();
            if split < wire.len() {
                let incomplete = matches!(first, Parsed::Incomplete { .. });
                prop_assert!(incomplete);
                buf.extend_from_slice(&wire[split..]);
                prop_assert_eq!(parse_command(&mut buf, &mut argv, &Limits::default()).unwrap(), Parsed::Command);
            } else {
                prop_assert_eq!(first, Parsed::Command);
            }
            let got: Vec<Vec<u8>> = argv.iter().map(|b| b.to_vec()).collect();
            prop_assert_eq!(got, args);
            prop_assert!(buf.is_empty());
        }
    }
}
