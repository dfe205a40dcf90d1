//! `COMMAND` / `COMMAND INFO` / `COMMAND DOCS` replies built from
//! [`CommandMeta`], spelled exactly as Redis 7.0.15 spells them in RESP2 and
//! RESP3 (including its quirks: key specs are a *set* in RESP3, and a
//! command without subcommands answers an empty set where one with
//! subcommands answers an array).

use ferrite_protocol::ReplyBuf;

use super::meta::*;

/// The row COMMAND / COMMAND INFO answers for one command.
pub fn write_info(m: &CommandMeta, out: &mut ReplyBuf) {
    out.array(10);
    out.bulk(m.name.as_bytes());
    out.integer(i64::from(m.arity));
    simple_set(m.flags, out);
    out.integer(i64::from(m.first_key));
    out.integer(i64::from(m.last_key));
    out.integer(i64::from(m.step));
    simple_set(m.acl_categories, out);
    out.set(m.tips.len());
    for tip in m.tips {
        out.bulk(tip.as_bytes());
    }
    out.set(m.key_specs.len());
    for ks in m.key_specs {
        write_key_spec(ks, out);
    }
    if m.subcommands.is_empty() {
        out.set(0);
    } else {
        out.array(m.subcommands.len());
        for sub in m.subcommands {
            write_info(sub, out);
        }
    }
}

/// The (name, docs-map) pair COMMAND DOCS answers for one command: writes the docs map value only (caller writes the name).
pub fn write_docs(m: &CommandMeta, out: &mut ReplyBuf) {
    let d = &m.doc;
    let present = |s: &str| usize::from(!s.is_empty());
    // `group` is always there.
    let len = 1
        + present(d.summary)
        + present(d.since)
        + present(d.complexity)
        + usize::from(!d.doc_flags.is_empty())
        + present(d.deprecated_since)
        + present(d.replaced_by)
        + usize::from(!d.history.is_empty())
        + usize::from(!d.arguments.is_empty())
        + usize::from(!m.subcommands.is_empty());
    out.map(len);
    bulk_field(b"summary", d.summary, out);
    bulk_field(b"since", d.since, out);
    out.bulk(b"group");
    out.bulk(d.group.as_bytes());
    bulk_field(b"complexity", d.complexity, out);
    if !d.doc_flags.is_empty() {
        out.bulk(b"doc_flags");
        simple_set(d.doc_flags, out);
    }
    bulk_field(b"deprecated_since", d.deprecated_since, out);
    bulk_field(b"replaced_by", d.replaced_by, out);
    if !d.history.is_empty() {
        out.bulk(b"history");
        out.set(d.history.len());
        for (version, change) in d.history {
            out.array(2);
            out.bulk(version.as_bytes());
            out.bulk(change.as_bytes());
        }
    }
    if !d.arguments.is_empty() {
        out.bulk(b"arguments");
        write_args(d.arguments, out);
    }
    if !m.subcommands.is_empty() {
        out.bulk(b"subcommands");
        out.map(m.subcommands.len());
        for sub in m.subcommands {
            out.bulk(sub.name.as_bytes());
            write_docs(sub, out);
        }
    }
}

fn simple_set(items: &[&str], out: &mut ReplyBuf) {
    out.set(items.len());
    for item in items {
        out.simple(item.as_bytes());
    }
}

/// `key` then `value` as bulk strings, unless `value` is empty (absent).
fn bulk_field(key: &[u8], value: &str, out: &mut ReplyBuf) {
    if !value.is_empty() {
        out.bulk(key);
        out.bulk(value.as_bytes());
    }
}

fn write_key_spec(ks: &KeySpec, out: &mut ReplyBuf) {
    out.map(if ks.notes.is_empty() { 3 } else { 4 });
    bulk_field(b"notes", ks.notes, out);
    out.bulk(b"flags");
    simple_set(ks.flags, out);

    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    match ks.begin_search {
        BeginSearch::Index(index) => {
            out.bulk(b"index");
            out.bulk(b"spec");
            out.map(1);
            out.bulk(b"index");
            out.integer(i64::from(index));
        }
        BeginSearch::Keyword { keyword, startfrom } => {
            out.bulk(b"keyword");
            out.bulk(b"spec");
            out.map(2);
            out.bulk(b"keyword");
            out.bulk(keyword.as_bytes());
            out.bulk(b"startfrom");
            out.integer(i64::from(startfrom));
        }
        BeginSearch::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
    }

    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    match ks.find_keys {
        FindKeys::Range {
            lastkey,
            step,
            limit,
        } => {
            out.bulk(b"range");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"lastkey");
            out.integer(i64::from(lastkey));
            out.bulk(b"keystep");
            out.integer(i64::from(step));
            out.bulk(b"limit");
            out.integer(i64::from(limit));
        }
        FindKeys::Keynum {
            keynumidx,
            firstkey,
            step,
        } => {
            out.bulk(b"keynum");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"keynumidx");
            out.integer(i64::from(keynumidx));
            out.bulk(b"firstkey");
            out.integer(i64::from(firstkey));
            out.bulk(b"keystep");
            out.integer(i64::from(step));
        }
        FindKeys::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
    }
}

fn write_args(args: &[Arg], out: &mut ReplyBuf) {
    out.array(args.len());
    for a in args {
        let present = |s: &str| usize::from(!s.is_empty());
        // Redis lists nested arguments for every `oneof`/`block`, even none.
        let nested = a.type_ == "oneof" || a.type_ == "block";
        // A pure token always has its token, even an empty one (MIGRATE's `""`).
        let token = !a.token.is_empty() || a.type_ == "pure-token";
        let len = 2
            + usize::from(a.key_spec_index >= 0)
            + usize::from(token)
            + present(a.summary)
            + present(a.since)
            + present(a.deprecated_since)
            + usize::from(!a.flags.is_empty())
            + usize::from(nested);
        out.map(len);
        out.bulk(b"name");
        out.bulk(a.name.as_bytes());
        out.bulk(b"type");
        out.bulk(a.type_.as_bytes());
        if a.key_spec_index >= 0 {
            out.bulk(b"key_spec_index");
            out.integer(i64::from(a.key_spec_index));
        }
        if token {
            out.bulk(b"token");
            out.bulk(a.token.as_bytes());
        }
        bulk_field(b"summary", a.summary, out);
        bulk_field(b"since", a.since, out);
        bulk_field(b"deprecated_since", a.deprecated_since, out);
        if !a.flags.is_empty() {
            out.bulk(b"flags");
            simple_set(a.flags, out);
        }
        if nested {
            out.bulk(b"arguments");
            write_args(a.arguments, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::meta_redis::REDIS_COMMANDS;
    use super::*;

    const INFO: &[u8] = include_bytes!("../../tests/data/redis-7.0-command-info.resp");
    const DOCS: &[u8] = include_bytes!("../../tests/data/redis-7.0-command-docs.resp");
    const INFO3: &[u8] = include_bytes!("../../tests/data/redis-7.0-command-info-resp3.resp");
    const DOCS3: &[u8] = include_bytes!("../../tests/data/redis-7.0-command-docs-resp3.resp");
    /// The commands recorded in the RESP3 files, in their order
    /// (`RESP3_SAMPLE` in tools/gen_command_meta.py).
    const RESP3_SAMPLE: &[&str] = &["config", "get", "set"];

    /// End offset of the RESP value starting at `pos`.
    fn skip(b: &[u8], pos: usize) -> usize {
        let eol = pos
            + b[pos..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("CRLF");
        let n: i64 = std::str::from_utf8(&b[pos + 1..eol])
            .unwrap()
            .parse()
            .unwrap_or(0);
        let mut end = eol + 2;
        match b[pos] {
            b'$' | b'=' | b'!' if n >= 0 => end += n as usize + 2,
            b'*' | b'~' | b'>' | b'%' if n > 0 => {
                let count = if b[pos] == b'%' { 2 * n } else { n };
                for _ in 0..count {
                    end = skip(b, end);
                }
            }
            _ => {}
        }
        end
    }

    /// The concatenated replies of a recording, one slice each.
    fn replies(mut b: &[u8]) -> Vec<&[u8]> {
        let mut v = Vec::new();
        while !b.is_empty() {
            let end = skip(b, 0);
            v.push(&b[..end]);
            b = &b[end..];
        }
        v
    }

    fn info_reply(m: &CommandMeta, resp3: bool) -> Vec<u8> {
        let mut out = ReplyBuf {
            resp3,
            ..ReplyBuf::new()
        };
        out.array(1);
        write_info(m, &mut out);
        out.buf.to_vec()
    }

    fn docs_reply(m: &CommandMeta, resp3: bool) -> Vec<u8> {
        let mut out = ReplyBuf {
            resp3,
            ..ReplyBuf::new()
        };
        out.map(1);
        out.bulk(m.name.as_bytes());
        write_docs(m, &mut out);
        out.buf.to_vec()
    }

    fn assert_same(what: &str, got: &[u8], want: &[u8]) {
        if got == want {
            return;
        }
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let from = at.saturating_sub(80);
        panic!(
            "{what}: differs from Redis 7.0 at byte {at}\n  ours:  {:?}\n  redis: {:?}",
            String::from_utf8_lossy(&got[from..(at + 80).min(got.len())]),
            String::from_utf8_lossy(&want[from..(at + 80).min(want.len())]),
        );
    }

    fn find(name: &str) -> &'static CommandMeta {
        REDIS_COMMANDS
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn table_is_sorted_and_nested_names_are_qualified() {
        assert!(REDIS_COMMANDS.windows(2).all(|w| w[0].name < w[1].name));
        for m in REDIS_COMMANDS {
            assert!(
                m.subcommands.windows(2).all(|w| w[0].name < w[1].name),
                "{}",
                m.name
            );
            for sub in m.subcommands {
                assert!(
                    sub.name.starts_with(&format!("{}|", m.name)),
                    "{}",
                    sub.name
                );
            }
        }
    }

    #[test]
    fn command_info_matches_redis_resp2() {
        let want = replies(INFO);
        assert_eq!(
            want.len(),
            REDIS_COMMANDS.len(),
            "one recorded reply per command"
        );
        for (m, want) in REDIS_COMMANDS.iter().zip(want) {
            assert_same(
                &format!("COMMAND INFO {} (RESP2)", m.name),
                &info_reply(m, false),
                want,
            );
        }
    }

    #[test]
    fn command_docs_matches_redis_resp2() {
        let want = replies(DOCS);
        assert_eq!(
            want.len(),
            REDIS_COMMANDS.len(),
            "one recorded reply per command"
        );
        for (m, want) in REDIS_COMMANDS.iter().zip(want) {
            assert_same(
                &format!("COMMAND DOCS {} (RESP2)", m.name),
                &docs_reply(m, false),
                want,
            );
        }
    }

    #[test]
    fn command_info_matches_redis_resp3() {
        let want = replies(INFO3);
        assert_eq!(want.len(), RESP3_SAMPLE.len());
        for (name, want) in RESP3_SAMPLE.iter().zip(want) {
            assert_same(
                &format!("COMMAND INFO {name} (RESP3)"),
                &info_reply(find(name), true),
                want,
            );
        }
    }

    #[test]
    fn command_docs_matches_redis_resp3() {
        let want = replies(DOCS3);
        assert_eq!(want.len(), RESP3_SAMPLE.len());
        for (name, want) in RESP3_SAMPLE.iter().zip(want) {
            assert_same(
                &format!("COMMAND DOCS {name} (RESP3)"),
                &docs_reply(find(name), true),
                want,
            );
        }
    }
}
