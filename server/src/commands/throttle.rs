//! `CL.THROTTLE key max_burst count_per_period period [quantity]`:
//! redis-cell's GCRA rate limiter, built in.
//!
//! State is what redis-cell keeps: the key's theoretical arrival time (TAT)
//! in unix nanoseconds, as an ordinary string whose TTL is the time until
//! the bucket is full again, so idle limiters disappear on their own and a
//! million of them cost memory only while they are active. An allowed call
//! propagates the state it wrote (`SET key <tat> PXAT <expiry>`), never the
//! command: a replica or the AOF replaying it gets the primary's decision,
//! not one recomputed at a later time.
//!
//! The algorithm is [`gcra`], a pure function of the stored TAT, the time
//! and the parameters, so tests can drive any clock through it.

use bytes::Bytes;
use ferrite_storage::Value;

use crate::command::{CmdError, CmdResult, Ctx, Handler};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[("cl.throttle", throttle)];

const NS_PER_SEC: i128 = 1_000_000_000;
const NS_PER_MS: i128 = 1_000_000;

/// The parsed arguments of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Requests allowed at once beyond the steady rate.
    pub max_burst: i64,
    /// Requests per `period`.
    pub count: i64,
    /// The period in seconds.
    pub period: i64,
    /// Tokens this call takes (0 peeks).
    pub quantity: i64,
}

/// The five integers of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// 1 when the call is refused.
    pub limited: i64,
    /// `max_burst + 1`.
    pub limit: i64,
    /// Tokens left.
    pub remaining: i64,
    /// Seconds until a refused call could succeed, -1 when allowed.
    pub retry_after: i64,
    /// Seconds until the bucket is full again.
    pub reset_after: i64,
}

/// The state an allowed call writes: the new TAT and how long it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewState {
    /// Theoretical arrival time, unix nanoseconds.
    pub tat_ns: i64,
    /// Time to live in milliseconds (redis-cell truncates to whole ms).
    pub ttl_ms: i64,
}

/// redis-cell reports its own errors as `Cell error: ...`.
fn cell_error(msg: &str) -> CmdError {
    CmdError::Other(format!("Cell error: Store error: {msg}"))
}

/// Whole seconds of a duration, rounded up when its millisecond part is
/// positive (redis-cell: a caller must not retry too early).
fn ceil_secs(ns: i128) -> i64 {
    let whole = ns / NS_PER_SEC;
    let sub_ms = (ns % NS_PER_SEC) / NS_PER_MS;
    clamp(whole + i128::from(sub_ms > 0))
}

fn clamp(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// GCRA as redis-cell computes it. `tat_ns` is the stored TAT (`None` when
/// the key is absent), `now_ns` the current unix time in nanoseconds.
/// Returns the reply and, when the call is allowed, the state to store.
pub fn gcra(
    tat_ns: Option<i64>,
    now_ns: i64,
    p: &Params,
) -> Result<(Reply, Option<NewState>), CmdError> {
    // Rate::per_period: the emission interval, truncated to whole ns.
    let period_ns = i128::from(p.period) * NS_PER_SEC;
    let emission: i128 = if p.count == 0 || period_ns == 0 {
        0
    } else {
        ((period_ns as f64) / (p.count as f64)) as i64 as i128
    };
    if emission == 0 {
        return Err(cell_error("Zero rates are not supported"));
    }
    let limit = p.max_burst.saturating_add(1);
    let dvt = emission * i128::from(limit);
    let increment = emission * i128::from(p.quantity);
    let now = i128::from(now_ns);
    let tat = tat_ns.map_or(now, i128::from);
    let new_tat = now.max(tat) + increment;
    let diff = now - (new_tat - dvt);
    let (limited, ttl, retry) = if diff < 0 {
        let retry = (increment <= dvt).then_some(-diff);
        (true, tat - now, retry)
    } else {
        (false, new_tat - now, None)
    };
    let next = dvt - ttl;
    let remaining = if next > -emission {
        // Whole microseconds divided as floats, then truncated, as redis-cell.
        ((next / 1000) as f64 / (emission / 1000) as f64) as i64
    } else {
        0
    };
    let reply = Reply {
        limited: i64::from(limited),
        limit,
        remaining,
        retry_after: retry.map_or(-1, ceil_secs),
        reset_after: ceil_secs(ttl),
    };
    let state = (!limited).then(|| NewState {
        tat_ns: clamp(new_tat),
        ttl_ms: clamp(ttl / NS_PER_MS),
    });
    Ok((reply, state))
}

fn parse_arg(arg: &[u8]) -> Result<i64, CmdError> {
    let n = std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            cell_error(&format!(
                "Couldn't parse as integer: {}",
                String::from_utf8_lossy(arg)
            ))
        })?;
    if n < 0 {
        // redis-cell lets negatives through into nonsense (a negative
        // emission interval, a key that never expires); refuse them.
        return Err(cell_error("Negative values are not supported"));
    }
    Ok(n)
}

/// Parses `CL.THROTTLE`'s arguments (after the key).
pub fn parse(args: &[Bytes]) -> Result<Params, CmdError> {
    if args.len() != 5 && args.len() != 6 {
        return Err(cell_error(
            "Usage: cl.throttle <key> <max_burst> <count per period> <period> [<quantity>]",
        ));
    }
    Ok(Params {
        max_burst: parse_arg(&args[2])?,
        count: parse_arg(&args[3])?,
        period: parse_arg(&args[4])?,
        quantity: args.get(5).map_or(Ok(1), |a| parse_arg(a))?,
    })
}

fn throttle(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let p = parse(args)?;
    let key = &args[1];
    let now = ctx.now;
    let now_ns = now.saturating_mul(1_000_000);
    ctx.db().with_shard(key, |s| {
        let stored = match s.peek(key, now) {
            None => None,
            Some(e) => {
                let raw = e.value.as_str().ok_or(CmdError::WrongType)?;
                let text = std::str::from_utf8(raw).unwrap_or("x");
                Some(
                    text.parse::<i64>()
                        .map_err(|e| CmdError::Other(format!("Cell error: {e}")))?,
                )
            }
        };
        let (reply, state) = gcra(stored, now_ns, &p)?;
        if let Some(st) = state {
            let expire_at = now.saturating_add(st.ttl_ms);
            if st.ttl_ms > 0 {
                let tat = itoa::Buffer::new().format(st.tat_ns).as_bytes().to_vec();
                let mut b = itoa::Buffer::new();
                let at = b.format(expire_at).as_bytes();
                ctx.propagate(&[b"SET", key, &tat, b"PXAT", at]);
                s.set(key, Value::string(tat), expire_at, now);
            } else if stored.is_some() {
                // Expiring at once: the key is gone (redis-cell sets a 0 ms TTL).
                s.remove(key, now);
                ctx.propagate(&[b"DEL", key]);
            }
        }
        ctx.out.array(5);
        for v in [
            reply.limited,
            reply.limit,
            reply.remaining,
            reply.retry_after,
            reply.reset_after,
        ] {
            ctx.out.integer(v);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const MS: i64 = 1_000_000;

    fn p(max_burst: i64, count: i64, period: i64, quantity: i64) -> Params {
        Params {
            max_burst,
            count,
            period,
            quantity,
        }
    }

    /// redis-cell's own table (`it_rate_limits`): limit 5, 1 per second;
    /// (offset ns, quantity, remaining, reset_after ns, retry_after ns, limited).
    #[test]
    fn redis_cell_reference_cases() {
        let start = 1_700_000_000 * S;
        let cases: &[(i64, i64, i64, i64, i64, bool)] = &[
            (0, 6, 5, 0, -1, true),
            (0, 1, 4, S, -1, false),
            (0, 1, 3, 2 * S, -1, false),
            (0, 1, 2, 3 * S, -1, false),
            (0, 1, 1, 4 * S, -1, false),
            (0, 1, 0, 5 * S, -1, false),
            (0, 1, 0, 5 * S, S, true),
            (3000 * MS, 1, 2, 3000 * MS, -1, false),
            (3100 * MS, 1, 1, 3900 * MS, -1, false),
            (4000 * MS, 1, 1, 4000 * MS, -1, false),
            (8000 * MS, 1, 4, 1000 * MS, -1, false),
            (9500 * MS, 1, 4, 1000 * MS, -1, false),
            (9500 * MS, 0, 4, S, -1, false),
            (9500 * MS, 2, 2, 3 * S, -1, false),
            (9500 * MS, 5, 2, 3 * S, 3 * S, true),
        ];
        let mut tat = None;
        for (i, &(off, q, remaining, reset, retry, limited)) in cases.iter().enumerate() {
            let (r, st) = gcra(tat, start + off, &p(4, 1, 1, q)).unwrap();
            assert_eq!(r.limited, i64::from(limited), "case {i}");
            assert_eq!(r.limit, 5, "case {i}");
            assert_eq!(r.remaining, remaining, "case {i}");
            assert_eq!(r.reset_after, ceil_secs(i128::from(reset)), "case {i}");
            let want_retry = if retry < 0 {
                -1
            } else {
                ceil_secs(i128::from(retry))
            };
            assert_eq!(r.retry_after, want_retry, "case {i}");
            if let Some(s) = st {
                tat = Some(s.tat_ns);
            }
        }
    }

    /// An independent model: a leaky bucket holding up to `limit` tokens
    /// worth of time, draining one emission interval per token; its level
    /// is the time until it is empty. (Integer ns: absolute unix times in
    /// f64 would lose 256 ns of precision.)
    struct Model {
        /// When the bucket is empty again (unix ns).
        empty_at: i128,
    }

    impl Model {
        fn call(&mut self, now: i64, burst: i64, count: i64, period: i64, q: i64) -> Reply {
            let now = i128::from(now);
            // Rate::per_period's rounding, the one float step of redis-cell.
            let t = ((period as f64 * 1e9) / count as f64) as i128;
            let cap = t * i128::from(burst + 1);
            let level = (self.empty_at - now).max(0);
            let need = t * i128::from(q);
            let secs = |ns: i128| {
                let ms = (ns % 1_000_000_000) / 1_000_000;
                (ns / 1_000_000_000) as i64 + i64::from(ms > 0)
            };
            let rem = |level: i128| {
                let free = cap - level;
                if free > -t {
                    ((free / 1000) as f64 / (t / 1000) as f64) as i64
                } else {
                    0
                }
            };
            if level + need > cap {
                Reply {
                    limited: 1,
                    limit: burst + 1,
                    remaining: rem(level),
                    retry_after: if need <= cap {
                        secs(level + need - cap)
                    } else {
                        -1
                    },
                    reset_after: secs(level),
                }
            } else {
                self.empty_at = now + level + need;
                Reply {
                    limited: 0,
                    limit: burst + 1,
                    remaining: rem(level + need),
                    retry_after: -1,
                    reset_after: secs(level + need),
                }
            }
        }
    }

    /// Drives a clock through bursts, steady rates at and above the limit,
    /// idle gaps and mixed quantities; every reply field must match the model.
    #[test]
    fn matches_an_independent_model_over_bursts_and_steady_rates() {
        for &(burst, count, period) in &[(4, 1, 1), (0, 1, 2), (9, 10, 1), (14, 30, 60), (2, 3, 7)]
        {
            let mut model = Model { empty_at: 0 };
            let mut tat = None;
            let mut now = 1_700_000_000 * S;
            let interval = period * S / count;
            // Script: (gap before the call in ns, quantity), repeated phases.
            let mut script: Vec<(i64, i64)> = Vec::new();
            script.extend((0..(burst + 3)).map(|_| (0, 1))); // a burst past the limit
            script.extend((0..20).map(|_| (interval, 1))); // exactly the rate
            script.extend((0..20).map(|_| (interval / 2, 1))); // twice the rate
            script.push((interval * (burst + 2), 0)); // idle, then peek
            script.extend((0..10).map(|i| (interval / 3 + i * 7 * MS, 1 + i % 3))); // mixed
            script.push((0, burst + 5)); // larger than the bucket
            script.extend((0..15).map(|i| (i * 137 * MS, 1)));
            for (i, &(gap, q)) in script.iter().enumerate() {
                now += gap;
                // The stored key expires when the bucket has drained.
                if tat.is_some_and(|t| t <= now) {
                    tat = None;
                }
                let (got, st) = gcra(tat, now, &p(burst, count, period, q)).unwrap();
                let want = model.call(now, burst, count, period, q);
                assert_eq!(
                    got, want,
                    "params ({burst},{count},{period}) step {i} q={q}"
                );
                if let Some(s) = st {
                    tat = Some(s.tat_ns);
                    assert_eq!(s.ttl_ms, (s.tat_ns - now) / MS);
                }
            }
        }
    }

    #[test]
    fn errors_are_worded_as_redis_cell() {
        let args = |v: &[&str]| -> Vec<Bytes> {
            v.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect()
        };
        assert_eq!(
            parse(&args(&["cl.throttle", "k", "x", "1", "1"])).unwrap_err(),
            cell_error("Couldn't parse as integer: x")
        );
        assert!(parse(&args(&["cl.throttle", "k", "1"])).is_err());
        assert_eq!(
            gcra(None, 0, &p(1, 0, 1, 1)).unwrap_err(),
            cell_error("Zero rates are not supported")
        );
    }
}
