//! Glob matching identical to Redis's `stringmatchlen` (util.c).
//!
//! `KEYS`, `SCAN MATCH`, `CONFIG GET` and pub/sub patterns all use it, and
//! clients depend on its corner cases: `\` escapes, `[^a-z]` classes with
//! reversed ranges, a lone `[` and the early exit that keeps `a*a*a*…b`
//! patterns from going exponential.

/// Whether `string` matches `pattern`; `nocase` folds ASCII case.
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    matches(pattern, string, nocase, &mut skip_longer)
}

#[inline]
fn at(p: &[u8], i: usize) -> u8 {
    // Redis reads the NUL terminator past the end in a few places.
    p.get(i).copied().unwrap_or(0)
}

fn lower(c: u8, nocase: bool) -> u8 {
    if nocase {
        c.to_ascii_lowercase()
    } else {
        c
    }
}

fn matches(pat: &[u8], s: &[u8], nocase: bool, skip_longer: &mut bool) -> bool {
    let (mut p, mut plen) = (0usize, pat.len() as isize);
    let (mut si, mut slen) = (0usize, s.len() as isize);
    while plen > 0 && slen > 0 {
        match pat[p] {
            b'*' => {
                while plen > 0 && at(pat, p + 1) == b'*' {
                    p += 1;
                    plen -= 1;
                }
                if plen == 1 {
                    return true;
                }
                while slen > 0 {
                    if matches(&pat[p + 1..], &s[si..], nocase, skip_longer) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    si += 1;
                    slen -= 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                si += 1;
                slen -= 1;
            }
            b'[' => {
                p += 1;
                plen -= 1;
                let not = at(pat, p) == b'^';
                if not {
                    p += 1;
                    plen -= 1;
                }
                let c = s[si];
                let mut matched = false;
                loop {
                    if at(pat, p) == b'\\' && plen >= 2 {
                        p += 1;
                        plen -= 1;
                        if at(pat, p) == c {
                            matched = true;
                        }
                    } else if at(pat, p) == b']' {
                        break;
                    } else if plen <= 0 {
                        p -= 1;
                        plen += 1;
                        break;
                    } else if plen >= 3 && at(pat, p + 1) == b'-' {
                        // C compares plain `char`s, which are signed on x86.
                        let mut start = at(pat, p) as i8 as i32;
                        let mut end = at(pat, p + 2) as i8 as i32;
                        let mut ch = c as i8 as i32;
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            start = lower(start as u8, true) as i8 as i32;
                            end = lower(end as u8, true) as i8 as i32;
                            ch = lower(ch as u8, true) as i8 as i32;
                        }
                        p += 2;
                        plen -= 2;
                        if ch >= start && ch <= end {
                            matched = true;
                        }
                    } else if lower(at(pat, p), nocase) == lower(c, nocase) {
                        matched = true;
                    }
                    p += 1;
                    plen -= 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
            other => {
                let mut pc = other;
                if other == b'\\' && plen >= 2 {
                    p += 1;
                    plen -= 1;
                    pc = pat[p];
                }
                if lower(pc, nocase) != lower(s[si], nocase) {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
        }
        p += 1;
        plen -= 1;
        if slen == 0 {
            while at(pat, p) == b'*' && plen > 0 {
                p += 1;
                plen -= 1;
            }
            break;
        }
    }
    plen == 0 && slen == 0
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }

    #[test]
    fn matches_like_stringmatchlen() {
        assert!(!m("*", ""), "callers special-case a lone * (KEYS does)");
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges are swapped");
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("foo*", "foo"));
        assert!(m("foo**", "foo"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(glob_match(b"HELLO", b"hello", true));
        assert!(!m(
            "a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ));
    }
}
