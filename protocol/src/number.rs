//! Number parsing and formatting with Redis's exact rules.
//!
//! Redis accepts integers only in canonical form (`string2ll`): no `+`, no
//! leading zeros, no spaces. Clients rely on that (`INCR` on `"01"` is an
//! error), so we match it rather than use `str::parse`.

/// Parses a signed 64-bit integer exactly as Redis's `string2ll` does.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s.len() == 1 && s[0] == b'0' {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// Parses an unsigned 64-bit integer in canonical form (`string2ull`).
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.len() == 1 && s[0] == b'0' {
        return Some(0);
    }
    if s.is_empty() || s.len() > 20 || !(b'1'..=b'9').contains(&s[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// Parses a double the way Redis's `string2d`/`strtod` does for scores and
/// increments: no surrounding spaces, `inf`/`-inf`/`+inf` accepted, NaN refused.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s.len() > 5000 {
        return None;
    }
    if s[0].is_ascii_whitespace() || s[s.len() - 1].is_ascii_whitespace() {
        return None;
    }
    let t = std::str::from_utf8(s).ok()?;
    let lower = t.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            // strtod accepts hex floats and more, but Rust's grammar covers what
            // clients send; refuse words like "nan" explicitly.
            if lower.contains("nan") || lower.contains("inf") {
                return None;
            }
            t.parse::<f64>().ok()?
        }
    };
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

/// Formats a double like C's `printf("%.17g")`, which Redis 7.0 uses for
/// double replies (`ZSCORE`, RESP3 doubles). `inf`/`-inf` spelled as Redis does.
pub fn format_double(d: f64, out: &mut Vec<u8>) {
    if d.is_infinite() {
        out.extend_from_slice(if d > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    if d.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if d == 0.0 {
        out.extend_from_slice(if d.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    // 17 significant digits, correctly rounded, in scientific form.
    let sci = format!("{:.16e}", d);
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    if neg {
        out.push(b'-');
    }
    if !(-4..17).contains(&exp) {
        // d.ddddde+XX with trailing zeros removed.
        let mut last = digits.len();
        while last > 1 && digits[last - 1] == b'0' {
            last -= 1;
        }
        out.push(digits[0]);
        if last > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..last]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(e.to_string().as_bytes());
    } else {
        let mut s: Vec<u8> = Vec::with_capacity(24);
        if exp < 0 {
            s.extend_from_slice(b"0.");
            s.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            s.extend_from_slice(&digits);
        } else {
            let int_len = (exp + 1) as usize;
            s.extend_from_slice(&digits[..int_len]);
            s.push(b'.');
            s.extend_from_slice(&digits[int_len..]);
        }
        if s.contains(&b'.') {
            while s.last() == Some(&b'0') {
                s.pop();
            }
            if s.last() == Some(&b'.') {
                s.pop();
            }
        }
        out.extend_from_slice(&s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(d: f64) -> String {
        let mut v = Vec::new();
        format_double(d, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b"01"[..], b"+1", b" 1", b"1 ", b"", b"-", b"-0", b"1a"] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn doubles_format_like_percent_17g() {
        assert_eq!(g(1.5), "1.5");
        assert_eq!(g(1.1), "1.1000000000000001");
        assert_eq!(g(10.0), "10");
        assert_eq!(g(-3.0), "-3");
        assert_eq!(g(1e20), "1e+20");
        assert_eq!(g(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(g(0.0001), "0.0001");
        assert_eq!(g(123456789012345680.0), "1.2345678901234568e+17");
        assert_eq!(g(f64::INFINITY), "inf");
    }

    #[test]
    fn doubles_parse_like_strtod() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b""), None);
    }
}
