//! Reply encoding into one output buffer per connection.
//!
//! Every reply of a pipelined batch is appended here and the connection
//! writes the buffer once when its input is drained. The protocol version
//! (RESP2 or RESP3, chosen by `HELLO`) decides how nulls, maps, sets,
//! doubles and booleans are spelled.

use bytes::{BufMut, BytesMut};

use crate::number::format_double;

/// A connection's output buffer plus the protocol version it speaks.
#[derive(Debug, Default)]
pub struct ReplyBuf {
    /// The encoded bytes waiting to be written.
    pub buf: BytesMut,
    /// `true` after `HELLO 3`.
    pub resp3: bool,
}

impl ReplyBuf {
    /// An empty RESP2 buffer.
    pub fn new() -> Self {
        ReplyBuf {
            buf: BytesMut::with_capacity(16 * 1024),
            resp3: false,
        }
    }

    fn int_line(&mut self, prefix: u8, n: i64) {
        let mut b = itoa::Buffer::new();
        self.buf.put_u8(prefix);
        self.buf.put_slice(b.format(n).as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.buf.put_slice(b"+OK\r\n");
    }

    /// A simple string; CR/LF in it would break the protocol, so they become spaces.
    pub fn simple(&mut self, s: &[u8]) {
        self.buf.put_u8(b'+');
        self.put_sanitized(s);
        self.buf.put_slice(b"\r\n");
    }

    /// An error reply. `msg` is the full text after `-`, code included,
    /// e.g. `ERR syntax error` or `WRONGTYPE ...`.
    pub fn error(&mut self, msg: &[u8]) {
        self.buf.put_u8(b'-');
        self.put_sanitized(msg);
        self.buf.put_slice(b"\r\n");
    }

    fn put_sanitized(&mut self, s: &[u8]) {
        if s.iter().any(|&b| b == b'\r' || b == b'\n') {
            for &b in s {
                self.buf
                    .put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
            }
        } else {
            self.buf.put_slice(s);
        }
    }

    /// `:n`.
    pub fn integer(&mut self, n: i64) {
        self.int_line(b':', n);
    }

    /// A bulk string.
    pub fn bulk(&mut self, s: &[u8]) {
        // The whole item at once: growing for the value and then again for
        // its CRLF would double the buffer for one large value.
        self.buf.reserve(s.len() + 24);
        self.int_line(b'$', s.len() as i64);
        self.buf.put_slice(s);
        self.buf.put_slice(b"\r\n");
    }

    /// An integer sent as a bulk string (`INCRBYFLOAT`-style replies, `CONFIG GET`).
    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        self.bulk(b.format(n).as_bytes());
    }

    /// The null bulk string (`$-1` in RESP2, `_` in RESP3).
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.put_slice(b"_\r\n");
        } else {
            self.buf.put_slice(b"$-1\r\n");
        }
    }

    /// The null array (`*-1` in RESP2, `_` in RESP3).
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.put_slice(b"_\r\n");
        } else {
            self.buf.put_slice(b"*-1\r\n");
        }
    }

    /// An array header of `n` elements.
    pub fn array(&mut self, n: usize) {
        self.int_line(b'*', n as i64);
    }

    /// A map header of `n` pairs (`%n` in RESP3, `*2n` in RESP2).
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.int_line(b'%', n as i64);
        } else {
            self.int_line(b'*', 2 * n as i64);
        }
    }

    /// A set header (`~n` in RESP3, `*n` in RESP2).
    pub fn set(&mut self, n: usize) {
        if self.resp3 {
            self.int_line(b'~', n as i64);
        } else {
            self.int_line(b'*', n as i64);
        }
    }

    /// A push header (`>n` in RESP3, `*n` in RESP2).
    pub fn push(&mut self, n: usize) {
        if self.resp3 {
            self.int_line(b'>', n as i64);
        } else {
            self.int_line(b'*', n as i64);
        }
    }

    /// A double: a bulk string in RESP2, `,` in RESP3, formatted like `%.17g`.
    pub fn double(&mut self, d: f64) {
        let mut tmp = Vec::with_capacity(32);
        format_double(d, &mut tmp);
        if self.resp3 {
            self.buf.put_u8(b',');
            self.buf.put_slice(&tmp);
            self.buf.put_slice(b"\r\n");
        } else {
            self.bulk(&tmp);
        }
    }

    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf.put_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.integer(i64::from(b));
        }
    }

    /// Verbatim text (`=` with a `txt:` prefix in RESP3, a bulk string in RESP2),
    /// used by `INFO`, `CLIENT LIST` and friends.
    pub fn verbatim(&mut self, s: &[u8]) {
        if self.resp3 {
            self.int_line(b'=', s.len() as i64 + 4);
            self.buf.put_slice(b"txt:");
            self.buf.put_slice(s);
            self.buf.put_slice(b"\r\n");
        } else {
            self.bulk(s);
        }
    }

    /// Raw bytes that are already valid RESP.
    pub fn raw(&mut self, s: &[u8]) {
        self.buf.put_slice(s);
    }

    /// Bytes encoded so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Nothing encoded yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_values_per_protocol() {
        let mut r = ReplyBuf::new();
        r.null();
        r.map(1);
        r.double(1.5);
        r.boolean(true);
        r.error(b"ERR syntax error");
        r.error(b"WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(
            &r.buf[..],
            &b"$-1\r\n*2\r\n$3\r\n1.5\r\n:1\r\n-ERR syntax error\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"[..]
        );
        let mut r = ReplyBuf {
            resp3: true,
            ..ReplyBuf::new()
        };
        r.null();
        r.map(1);
        r.double(1.5);
        r.boolean(false);
        assert_eq!(&r.buf[..], &b"_\r\n%1\r\n,1.5\r\n#f\r\n"[..]);
    }
}
