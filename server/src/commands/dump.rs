//! `DUMP` and `RESTORE`: a value serialized as Redis's `createDumpPayload`
//! does (RDB type byte, the value as the RDB writer encodes it, the RDB
//! version as two little-endian bytes, then a little-endian CRC-64 of all
//! that), so payloads move both ways between Ferrite and real Redis 7.0.
//!
//! The value encoding itself lives in `crate::rdb` (writer) and
//! `crate::rdb_load` (reader); this module only frames and checks it.

use bytes::Bytes;
use ferrite_storage::{evict, Value, NO_EXPIRE};

use crate::command::ctx::{int_arg, is};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::pubsub::notify::GENERIC;
use crate::rdb;

/// Handlers of this family.
/// `RESTORE-ASKING` is `RESTORE` for a cluster slot being imported; with
/// no cluster mode it acts as `RESTORE`, as Redis's does outside one.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("dump", dump),
    ("restore", restore),
    ("restore-asking", restore),
];

/// The RDB version written in the footer and the highest one accepted
/// (`RDB_VERSION` of Redis 7.0).
const DUMP_RDB_VERSION: u16 = 10;

/// Serializes `value` as `DUMP` replies it; `compress`: `rdbcompression`.
pub fn dump_payload(value: &Value, compress: bool) -> Vec<u8> {
    let mut out = vec![0u8];
    out[0] = rdb::put_value_packed(&mut out, value, compress);
    put_footer(&mut out);
    out
}

/// Appends the footer of a `DUMP` (or `FUNCTION DUMP`) payload: the RDB
/// version, then the CRC-64 of everything before it.
pub fn put_footer(out: &mut Vec<u8>) {
    out.extend_from_slice(&DUMP_RDB_VERSION.to_le_bytes());
    let crc = rdb::crc64(0, out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Checks a payload's footer as Redis's `verifyDumpPayload` does and returns
/// the serialized value before it.
pub fn verify_payload(p: &[u8]) -> Option<&[u8]> {
    if p.len() < 10 {
        return None;
    }
    let (body, footer) = p.split_at(p.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > DUMP_RDB_VERSION {
        return None;
    }
    let crc = rdb::crc64(0, &p[..p.len() - 8]);
    (crc.to_le_bytes()[..] == footer[2..]).then_some(body)
}

/// # Format
/// `DUMP key`
fn dump(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let c = &*ctx;
    let compress = c.srv.config.read().flag("rdbcompression");
    let payload = c.db().with_shard(key, |s| {
        let found = s.get(key, c.now).map(|e| dump_payload(&e.value, compress));
        if found.is_some() {
            c.srv.stats.hit();
        } else {
            c.srv.stats.miss();
        }
        found
    });
    match payload {
        None => ctx.out.null(),
        Some(p) => ctx.out.bulk(&p),
    }
    Ok(())
}

/// `RESTORE`'s options.
struct RestoreOptions {
    replace: bool,
    absttl: bool,
    /// Seconds of idle time to set (`IDLETIME`), under a non-LFU policy.
    idle: Option<i64>,
    /// Access frequency to set (`FREQ`), under an LFU policy.
    freq: Option<u8>,
}

/// Parses the options after the payload as `restoreCommand` does, in
/// order: `IDLETIME` after `FREQ` (and the reverse) is a syntax error.
fn restore_options(opts: &[Bytes]) -> Result<RestoreOptions, CmdError> {
    let mut o = RestoreOptions {
        replace: false,
        absttl: false,
        idle: None,
        freq: None,
    };
    let mut j = 0;
    while j < opts.len() {
        let more = opts.len() - j - 1;
        let a = &opts[j][..];
        if is(a, "replace") {
            o.replace = true;
        } else if is(a, "absttl") {
            o.absttl = true;
        } else if is(a, "idletime") && more >= 1 && o.freq.is_none() {
            let n = int_arg(&opts[j + 1])?;
            if n < 0 {
                return Err(CmdError::err("Invalid IDLETIME value, must be >= 0"));
            }
            o.idle = Some(n);
            j += 1;
        } else if is(a, "freq") && more >= 1 && o.idle.is_none() {
            let n = int_arg(&opts[j + 1])?;
            let f = u8::try_from(n)
                .map_err(|_| CmdError::err("Invalid FREQ value, must be >= 0 and <= 255"))?;
            o.freq = Some(f);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// Everything `RESTORE` checks after `BUSYKEY`, in Redis's order: the TTL,
/// then the footer, then the value. Run before taking the lock, so a large
/// payload is decoded outside it; its error is only reported once the key
/// is known not to be busy.
fn restore_parse(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<(i64, Value), CmdError> {
    let ttl = int_arg(&args[2])?;
    if ttl < 0 {
        return Err(CmdError::err("Invalid TTL value, must be >= 0"));
    }
    verify_payload(&args[3])
        .ok_or_else(|| CmdError::err("DUMP payload version or checksum are wrong"))?;
    // Redis decodes from the whole argument, footer included: a value cut
    // short reads into the footer rather than failing, and we do the same.
    let value = crate::rdb_load::load_value(&args[3], &ctx.enc())
        .map_err(|_| CmdError::err("Bad data format"))?;
    Ok((ttl, value))
}

/// # Format
/// `RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]`
fn restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let o = restore_options(&args[4..])?;
    let parsed = restore_parse(ctx, args);
    let key = &args[1][..];
    let now = ctx.now;
    let lfu = ctx.srv.store.stats().access.lfu();
    // Redis's `checkAlreadyExpired`: a replica keeps what its primary sent.
    let replica = ctx
        .srv
        .upstream
        .is_replica
        .load(std::sync::atomic::Ordering::Relaxed);
    let c = &*ctx;
    c.db().with_shard(key, |s| {
        if !o.replace && s.contains(key, now) {
            return Err(CmdError::Other(
                "BUSYKEY Target key name already exists.".into(),
            ));
        }
        let (ttl, value) = parsed?;
        let deleted = o.replace && s.delete(key, now);
        let when = if ttl != 0 && !o.absttl {
            ttl.saturating_add(now)
        } else {
            ttl
        };
        if when != 0 && when <= now && !replica {
            if deleted {
                c.propagate(&[b"DEL", key]);
                c.notify(GENERIC, "del", key);
            }
            return Ok(());
        }
        s.set(key, value, if when == 0 { NO_EXPIRE } else { when }, now);
        // Redis's `objectSetLRUOrLFU`: only the option matching the policy.
        if lfu {
            if let Some(f) = o.freq {
                s.set_access(key, None, Some(evict::lfu_minutes(now) << 8 | u32::from(f)));
            }
        } else if let Some(idle) = o.idle {
            let ticks = i128::from(idle) * 1000 / i128::from(evict::LRU_RESOLUTION_MS);
            let atime = evict::access_clock(now).wrapping_sub(ticks as u32);
            s.set_access(key, Some(atime), None);
        }
        if when != 0 && !o.absttl {
            // Propagated with the absolute expiry, as Redis rewrites it.
            let mut buf = itoa::Buffer::new();
            let mut v: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            v[2] = buf.format(when).as_bytes();
            v.push(b"ABSTTL");
            c.propagate(&v);
        } else {
            c.propagate_argv(args);
        }
        c.notify(GENERIC, "restore", key);
        Ok(())
    })?;
    ctx.out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_roundtrip_and_footer_checks() {
        let p = dump_payload(&Value::string(b"hello".to_vec()), true);
        // Redis 7.0.15: DUMP of "hello".
        assert_eq!(p, b"\x00\x05hello\x0a\x00cr\xdfve4 \x0a".to_vec());
        let body = verify_payload(&p).expect("valid");
        assert_eq!(body, b"\x00\x05hello");
        let mut bad = p.clone();
        bad[2] ^= 1;
        assert!(verify_payload(&bad).is_none());
        let mut newer = p[..p.len() - 10].to_vec();
        newer.extend_from_slice(&11u16.to_le_bytes());
        let crc = rdb::crc64(0, &newer);
        newer.extend_from_slice(&crc.to_le_bytes());
        assert!(verify_payload(&newer).is_none());
        assert!(verify_payload(b"short").is_none());
    }

    #[test]
    fn option_order() {
        let b = |v: &[&str]| -> Vec<Bytes> {
            v.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect()
        };
        assert!(restore_options(&b(&["idletime", "1", "freq", "2"])).is_err());
        assert!(restore_options(&b(&["freq", "2", "idletime", "1"])).is_err());
        assert!(restore_options(&b(&["freq", "256"])).is_err());
        assert!(restore_options(&b(&["idletime"])).is_err());
        let o = restore_options(&b(&["REPLACE", "absttl", "IDLETIME", "5"])).expect("ok");
        assert!(o.replace && o.absttl && o.idle == Some(5) && o.freq.is_none());
    }

    /// Every one-byte corruption and every truncation of real Redis
    /// payloads (compact encodings) decodes or fails; none panics.
    #[test]
    fn corrupt_values_never_panic() {
        let limits = ferrite_storage::EncodingLimits::default();
        // Redis 7.0.15: DUMP of a listpack hash {f: v, g: 1}, an intset
        // {1, 2, -5} and a quicklist ["a", "b", "1"].
        let samples: [&[u8]; 3] = [
            b"\x10\x12\x12\x00\x00\x00\x04\x00\x81f\x02\x81v\x02\x81g\x02\x01\x01\xff",
            b"\x0b\x0e\x02\x00\x00\x00\x03\x00\x00\x00\xfb\xff\x01\x00\x02\x00",
            b"\x12\x01\x02\x0f\x0f\x00\x00\x00\x03\x00\x81a\x02\x81b\x02\x01\x01\xff",
        ];
        for body in samples {
            assert!(crate::rdb_load::load_value(body, &limits).is_ok());
            for i in 0..body.len() {
                for bit in 0..8 {
                    let mut b = body.to_vec();
                    b[i] ^= 1 << bit;
                    let _ = crate::rdb_load::load_value(&b, &limits);
                }
                let _ = crate::rdb_load::load_value(&body[..i], &limits);
            }
        }
    }
}
