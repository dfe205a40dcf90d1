//! Which arguments the slow log and `MONITOR` show as `(redacted)`: the
//! passwords and user names that Redis 7.0's commands hide with
//! `redactClientCommandArgument` (`AUTH`, `HELLO ... AUTH`, `CONFIG SET`
//! of a sensitive parameter, `MIGRATE ... AUTH/AUTH2`, `ACL SETUSER`). Only those slow paths ask, so
//! the command path pays nothing.

use bytes::Bytes;

/// What a hidden argument is shown as.
pub const REDACTED: &[u8] = b"(redacted)";

/// `CONFIG SET` parameters whose value is hidden (Redis's
/// `SENSITIVE_CONFIG`).
const SENSITIVE_CONFIGS: [&str; 3] = ["requirepass", "masterauth", "masteruser"];

/// `argv` with its sensitive arguments replaced, or `None` when nothing is
/// hidden (the common case: no copy).
///
/// Where Redis redacts only once the command got far enough (`AUTH` with
/// too many arguments answers a syntax error before it redacts; so does
/// `HELLO` with a bad protocol version), we redact anyway: what may be a
/// mistyped password is not shown either.
pub fn redacted(argv: &[Bytes]) -> Option<Vec<Bytes>> {
    let is = |i: usize, s: &str| {
        argv.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(s.as_bytes()))
    };
    let mut hide = Vec::new();
    if is(0, "auth") {
        hide.extend(1..argv.len());
    } else if is(0, "hello") {
        let mut j = 2;
        while j < argv.len() {
            let more = argv.len() - 1 - j;
            if is(j, "auth") && more >= 2 {
                hide.extend([j + 1, j + 2]);
                j += 3;
            } else if is(j, "setname") && more >= 1 {
                j += 2;
            } else {
                break;
            }
        }
    } else if is(0, "config") && is(1, "set") {
        for j in (2..argv.len().saturating_sub(1)).step_by(2) {
            if SENSITIVE_CONFIGS.iter().any(|c| is(j, c)) {
                hide.push(j + 1);
            }
        }
    } else if is(0, "migrate") {
        let mut j = 6;
        while j < argv.len() {
            let more = argv.len() - 1 - j;
            if is(j, "auth") && more >= 1 {
                hide.push(j + 1);
                j += 2;
            } else if is(j, "auth2") && more >= 2 {
                hide.extend([j + 1, j + 2]);
                j += 3;
            } else if is(j, "copy") || is(j, "replace") {
                j += 1;
            } else {
                break;
            }
        }
    } else if is(0, "acl") && is(1, "setuser") {
        hide.extend(2..argv.len());
    }
    if hide.is_empty() {
        return None;
    }
    let mut out = argv.to_vec();
    for i in hide {
        out[i] = Bytes::from_static(REDACTED);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(args: &[&str]) -> Vec<String> {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::from(a.to_string())).collect();
        redacted(&argv)
            .unwrap_or(argv)
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn sensitive_arguments_are_hidden_as_redis_hides_them() {
        assert_eq!(shown(&["AUTH", "pw"]), ["AUTH", "(redacted)"]);
        assert_eq!(
            shown(&["auth", "u", "pw"]),
            ["auth", "(redacted)", "(redacted)"]
        );
        assert_eq!(
            shown(&["hello", "2", "SETNAME", "n", "AUTH", "u", "p"]),
            [
                "hello",
                "2",
                "SETNAME",
                "n",
                "AUTH",
                "(redacted)",
                "(redacted)"
            ]
        );
        // SETNAME's value is a name, not a secret; AUTH with one argument
        // is an error in Redis and not redacted there either.
        assert_eq!(
            shown(&["hello", "3", "setname", "auth"]),
            ["hello", "3", "setname", "auth"]
        );
        assert_eq!(
            shown(&["hello", "3", "AUTH", "u"]),
            ["hello", "3", "AUTH", "u"]
        );
        assert_eq!(
            shown(&[
                "config",
                "set",
                "maxmemory",
                "1",
                "MasterAuth",
                "x",
                "requirepass",
                "y"
            ]),
            [
                "config",
                "set",
                "maxmemory",
                "1",
                "MasterAuth",
                "(redacted)",
                "requirepass",
                "(redacted)"
            ]
        );
        assert_eq!(
            shown(&["config", "set", "requirepass"]),
            ["config", "set", "requirepass"]
        );
        assert_eq!(
            shown(&["config", "get", "requirepass"]),
            ["config", "get", "requirepass"]
        );
        assert_eq!(
            shown(&["acl", "setuser", "u", "on", ">pw"]),
            ["acl", "setuser", "(redacted)", "(redacted)", "(redacted)"]
        );
        assert_eq!(
            shown(&["migrate", "h", "1", "k", "0", "9", "COPY", "AUTH2", "u", "p", "KEYS", "auth"]),
            [
                "migrate",
                "h",
                "1",
                "k",
                "0",
                "9",
                "COPY",
                "AUTH2",
                "(redacted)",
                "(redacted)",
                "KEYS",
                "auth"
            ]
        );
        assert_eq!(shown(&["set", "auth", "pw"]), ["set", "auth", "pw"]);
        assert_eq!(shown(&["ping"]), ["ping"]);
    }
}
