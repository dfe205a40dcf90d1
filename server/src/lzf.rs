//! LZF, the compression of strings in RDB files (`rdbcompression yes`):
//! a port of the `lzf_compress` Redis ships (`src/lzf_c.c`, liblzf 3.6
//! with `HLOG 16` and `VERY_FAST`) and of `lzf_decompress`.
//!
//! Hand-written, not a crate: the `lzf` crate is deprecated and the other
//! port has no users yet, and the format is two short loops. Any valid LZF
//! stream loads the same in Redis; the bytes need not match Redis's (whose
//! hash table starts uninitialized, so its own output is not fixed either).

/// Hash table bits (`HLOG`).
const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
/// Longest literal run, back-reference distance and length.
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// The table of last positions by 3-byte hash, kept per thread: a fresh
/// 256 KB table per string would cost more than compressing it. Entries
/// left by earlier inputs are only candidates, checked against this input.
struct Table(Box<[u32]>);

thread_local! {
    static TABLE: std::cell::RefCell<Table> =
        std::cell::RefCell::new(Table(vec![0u32; HSIZE].into_boxed_slice()));
}

#[inline]
fn first(p: &[u8], i: usize) -> u32 {
    (u32::from(p[i]) << 8) | u32::from(p[i + 1])
}

#[inline]
fn next(v: u32, p: &[u8], i: usize) -> u32 {
    (v << 8) | u32::from(p[i + 2])
}

#[inline]
fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// Compresses `input` into `out`, appending at most `max` bytes; `false`
/// (and `out` unchanged) when the result would not fit, as
/// `lzf_compress` returns 0.
pub fn compress(input: &[u8], out: &mut Vec<u8>, max: usize) -> bool {
    if input.len() < 3 || max == 0 {
        return false;
    }
    let base = out.len();
    out.resize(base + max, 0);
    let n = TABLE.with(|t| compress_into(input, &mut out[base..], &mut t.borrow_mut().0));
    out.truncate(base + n);
    n > 0
}

fn compress_into(data: &[u8], o: &mut [u8], htab: &mut [u32]) -> usize {
    let in_len = data.len();
    let out_end = o.len();
    let mut ip = 0usize;
    let mut op = 1usize; // start run
    let mut lit = 0usize;
    let mut hval = first(data, ip);
    while ip + 2 < in_len {
        hval = next(hval, data, ip);
        let slot = idx(hval);
        let r = htab[slot] as usize;
        htab[slot] = ip as u32;
        let off = ip.wrapping_sub(r).wrapping_sub(1);
        if r > 0
            && off < MAX_OFF
            && data[r + 2] == data[ip + 2]
            && data[r] == data[ip]
            && data[r + 1] == data[ip + 1]
        {
            // A match at `r`.
            let mut len = 2usize;
            let maxlen = (in_len - ip - len).min(MAX_REF);
            if op + 3 + 1 >= out_end && op - usize::from(lit == 0) + 3 + 1 >= out_end {
                return 0;
            }
            o[op - lit - 1] = (lit as u8).wrapping_sub(1); // stop run
            op -= usize::from(lit == 0); // undo run if length is zero
            loop {
                len += 1;
                if len >= maxlen || data[r + len] != data[ip + len] {
                    break;
                }
            }
            len -= 2; // len is now #octets - 1
            ip += 1;
            if len < 7 {
                o[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                o[op] = ((off >> 8) + (7 << 5)) as u8;
                o[op + 1] = (len - 7) as u8;
                op += 2;
            }
            o[op] = off as u8;
            op += 1;
            lit = 0;
            op += 1; // start run
            ip += len + 1;
            if ip + 2 >= in_len {
                break;
            }
            // VERY_FAST: hash the last two positions of the match.
            ip -= 2;
            hval = first(data, ip);
            hval = next(hval, data, ip);
            htab[idx(hval)] = ip as u32;
            ip += 1;
            hval = next(hval, data, ip);
            htab[idx(hval)] = ip as u32;
            ip += 1;
        } else {
            // One more literal byte.
            if op >= out_end {
                return 0;
            }
            lit += 1;
            o[op] = data[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                o[op - lit - 1] = (lit - 1) as u8; // stop run
                lit = 0;
                op += 1; // start run
            }
        }
    }
    if op + 3 > out_end {
        // At most 3 bytes can be missing here.
        return 0;
    }
    while ip < in_len {
        lit += 1;
        o[op] = data[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            o[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    o[op - lit - 1] = (lit as u8).wrapping_sub(1); // end run
    op - usize::from(lit == 0)
}

/// Redis's `lzf_decompress`: literal runs and back references; `None`
/// for a stream that is malformed or does not give exactly `out_len`
/// bytes.
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(out_len.min(input.len().saturating_mul(64)));
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let lit = input.get(i..i + n)?;
            if out.len() + n > out_len {
                return None;
            }
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(i)?);
                i += 1;
            }
            let low = usize::from(*input.get(i)?);
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            let start = out.len().checked_sub(back)?;
            len += 2;
            if out.len() + len > out_len {
                return None;
            }
            for k in 0..len {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    (out.len() == out_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(data: &[u8]) -> Option<usize> {
        let mut out = b"prefix".to_vec();
        if !compress(data, &mut out, data.len().saturating_sub(4)) {
            assert_eq!(out, b"prefix", "a failed compression leaves out as it was");
            return None;
        }
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(decompress(&out[6..], data.len()).as_deref(), Some(data));
        Some(out.len() - 6)
    }

    #[test]
    fn repetitive_data_shrinks_and_random_data_does_not() {
        let zeros = vec![0u8; 100];
        let n = roundtrip(&zeros).expect("compresses");
        assert!(n < 10, "{n}");
        let text = b"value:12345 value:12346 value:12347 value:12348".repeat(20);
        assert!(roundtrip(&text).expect("compresses") < text.len() / 4);
        // Incompressible: no room within len - 4.
        let noise: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(roundtrip(&noise), None);
    }

    /// What Redis 7.0.15 wrote for `"value:12345 " x 8` (`DUMP`: `0xc3`,
    /// 20 compressed bytes, 96 bytes long).
    #[test]
    fn decompresses_what_redis_wrote() {
        let redis = [
            12, 118, 97, 108, 117, 101, 58, 49, 50, 51, 52, 53, 32, 118, 224, 72, 11, 1, 53, 32,
        ];
        let want = b"value:12345 ".repeat(8);
        assert_eq!(decompress(&redis, 96).as_deref(), Some(&want[..]));
        // Ours decodes to the same value. (Its bytes depend on what the
        // thread compressed before: stale table entries can add matches.)
        let mut ours = Vec::new();
        assert!(compress(&want, &mut ours, 92));
        assert_eq!(decompress(&ours, 96).as_deref(), Some(&want[..]));
    }

    #[test]
    fn back_references_and_malformed_streams() {
        // "aaaaaaaaaa": literal 'a', then a back reference of 9 at distance 1.
        let c = [0x00, b'a', 0xE0, 0x00, 0x00];
        assert_eq!(decompress(&c, 10).as_deref(), Some(&b"aaaaaaaaaa"[..]));
        assert_eq!(decompress(&c, 9), None);
        assert_eq!(decompress(&[0x20, 0x05], 3), None);
        assert_eq!(
            decompress(&[0x05, b'a'], 6),
            None,
            "literal run past the end"
        );
    }

    proptest! {
        #[test]
        fn any_input_round_trips(
            data in prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, b'a', b'b', 255]), 0..3000),
            noise in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            roundtrip(&data);
            roundtrip(&noise);
            let mut both = data.clone();
            both.extend_from_slice(&noise);
            both.extend_from_slice(&data);
            roundtrip(&both);
        }
    }
}
