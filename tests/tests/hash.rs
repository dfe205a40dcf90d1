//! Hash commands: replies and error texts as Redis 7.0 sends them, WRONGTYPE,
//! listpack → hashtable conversion, deletion of emptied keys, HRANDFIELD
//! and HSCAN, and what each write propagates.

use std::collections::{BTreeMap, BTreeSet};

use ferrite_tests::{cmd, err, resp, text, TestServer};
use redis::Connection;

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

fn setup() -> (TestServer, Connection) {
    let server = TestServer::start();
    let con = server.client();
    (server, con)
}

fn encoding(con: &mut Connection, key: &str) -> String {
    cmd(con, &["OBJECT", "ENCODING", key])
}

fn hgetall(con: &mut Connection, key: &str) -> BTreeMap<String, String> {
    cmd(con, &["HGETALL", key])
}

/// `master_repl_offset`: the length of the propagation stream so far.
fn repl_offset(con: &mut Connection) -> usize {
    ferrite_tests::repl_offset(con) as usize
}

#[test]
fn hset_hget_and_friends_on_a_small_hash() {
    let (_s, mut con) = setup();
    assert_eq!(cmd::<i64>(&mut con, &["HSET", "h", "a", "1", "b", "2"]), 2);
    // Updating counts nothing, only new fields count.
    assert_eq!(cmd::<i64>(&mut con, &["HSET", "h", "a", "10", "c", "3"]), 1);
    assert_eq!(cmd::<String>(&mut con, &["HGET", "h", "a"]), "10");
    assert_eq!(cmd::<Option<String>>(&mut con, &["HGET", "h", "zz"]), None);
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["HGET", "nokey", "a"]),
        None
    );
    assert_eq!(cmd::<i64>(&mut con, &["HLEN", "h"]), 3);
    assert_eq!(cmd::<i64>(&mut con, &["HLEN", "nokey"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["HEXISTS", "h", "b"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["HEXISTS", "h", "zz"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["HEXISTS", "nokey", "b"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["HSTRLEN", "h", "a"]), 2);
    assert_eq!(cmd::<i64>(&mut con, &["HSTRLEN", "h", "zz"]), 0);
    assert_eq!(
        cmd::<Vec<Option<String>>>(&mut con, &["HMGET", "h", "a", "zz", "c"]),
        vec![Some("10".to_string()), None, Some("3".to_string())]
    );
    assert_eq!(
        cmd::<Vec<Option<String>>>(&mut con, &["HMGET", "nokey", "a", "b"]),
        vec![None, None]
    );
    // The compact encoding keeps insertion order, as a listpack does.
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["HKEYS", "h"]),
        ["a", "b", "c"]
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["HVALS", "h"]),
        ["10", "2", "3"]
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["HGETALL", "h"]),
        ["a", "10", "b", "2", "c", "3"]
    );
    assert!(cmd::<Vec<String>>(&mut con, &["HKEYS", "nokey"]).is_empty());
    assert!(hgetall(&mut con, "nokey").is_empty());
    assert_eq!(cmd::<String>(&mut con, &["TYPE", "h"]), "hash");
    assert_eq!(encoding(&mut con, "h"), "listpack");
}

#[test]
fn hmset_replies_ok_and_hsetnx_only_sets_missing_fields() {
    let (_s, mut con) = setup();
    assert_eq!(
        cmd::<String>(&mut con, &["HMSET", "h", "a", "1", "b", "2"]),
        "OK"
    );
    assert_eq!(cmd::<i64>(&mut con, &["HSETNX", "h", "a", "9"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["HSETNX", "h", "c", "3"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["HSETNX", "new", "f", "v"]), 1);
    let all = hgetall(&mut con, "h");
    assert_eq!(all.get("a").map(String::as_str), Some("1"));
    assert_eq!(all.get("c").map(String::as_str), Some("3"));
    assert_eq!(cmd::<String>(&mut con, &["HGET", "new", "f"]), "v");
}

#[test]
fn odd_pair_counts_are_arity_errors() {
    let (_s, mut con) = setup();
    assert_eq!(
        err(&mut con, &["HSET", "h", "a", "1", "b"]),
        "ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(
        err(&mut con, &["HMSET", "h", "a", "1", "b"]),
        "ERR wrong number of arguments for 'hmset' command"
    );
    assert_eq!(
        err(&mut con, &["HSET", "h", "a"]),
        "ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "h"]), 0);
}

#[test]
fn every_hash_command_refuses_other_types() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["SET", "s", "v"]);
    let cases: &[&[&str]] = &[
        &["HSET", "s", "a", "1"],
        &["HMSET", "s", "a", "1"],
        &["HSETNX", "s", "a", "1"],
        &["HGET", "s", "a"],
        &["HMGET", "s", "a"],
        &["HDEL", "s", "a"],
        &["HEXISTS", "s", "a"],
        &["HLEN", "s"],
        &["HSTRLEN", "s", "a"],
        &["HKEYS", "s"],
        &["HVALS", "s"],
        &["HGETALL", "s"],
        &["HINCRBY", "s", "a", "1"],
        &["HINCRBYFLOAT", "s", "a", "1"],
        &["HRANDFIELD", "s"],
        &["HRANDFIELD", "s", "0"],
        &["HSCAN", "s", "0"],
    ];
    for c in cases {
        assert_eq!(err(&mut con, c), WRONGTYPE, "{c:?}");
    }
    assert_eq!(cmd::<String>(&mut con, &["GET", "s"]), "v");
}

#[test]
fn hdel_counts_removed_fields_and_deletes_the_emptied_key() {
    let (_s, mut con) = setup();
    let _: i64 = cmd(&mut con, &["HSET", "h", "a", "1", "b", "2", "c", "3"]);
    assert_eq!(cmd::<i64>(&mut con, &["HDEL", "h", "x", "y"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["HDEL", "h", "a", "c", "a", "f"]), 2);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "h"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["HDEL", "h", "b", "z"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "h"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["HDEL", "nokey", "a"]), 0);
    // The same in the table encoding.
    for i in 0..200 {
        let f = format!("f{i}");
        let _: i64 = cmd(&mut con, &["HSET", "big", &f, "v"]);
    }
    assert_eq!(encoding(&mut con, "big"), "hashtable");
    let fields: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
    let mut args = vec!["HDEL", "big"];
    args.extend(fields.iter().map(String::as_str));
    args.push("extra");
    assert_eq!(cmd::<i64>(&mut con, &args), 200);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "big"]), 0);
}

#[test]
fn hincrby_counts_and_refuses_non_integers_and_overflow() {
    let (_s, mut con) = setup();
    assert_eq!(cmd::<i64>(&mut con, &["HINCRBY", "h", "n", "5"]), 5);
    assert_eq!(cmd::<i64>(&mut con, &["HINCRBY", "h", "n", "-7"]), -2);
    assert_eq!(cmd::<String>(&mut con, &["HGET", "h", "n"]), "-2");
    let _: i64 = cmd(&mut con, &["HSET", "h", "s", " 11", "t", "1.5"]);
    assert_eq!(
        err(&mut con, &["HINCRBY", "h", "s", "1"]),
        "ERR hash value is not an integer"
    );
    assert_eq!(
        err(&mut con, &["HINCRBY", "h", "t", "1"]),
        "ERR hash value is not an integer"
    );
    assert_eq!(
        err(&mut con, &["HINCRBY", "h", "n", "x"]),
        "ERR value is not an integer or out of range"
    );
    let _: i64 = cmd(&mut con, &["HSET", "h", "big", "9223372036854775800"]);
    assert_eq!(
        err(&mut con, &["HINCRBY", "h", "big", "8"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["HINCRBY", "h", "big", "7"]),
        i64::MAX
    );
    let _: i64 = cmd(&mut con, &["HSET", "h", "small", "-9223372036854775800"]);
    assert_eq!(
        err(&mut con, &["HINCRBY", "h", "small", "-9"]),
        "ERR increment or decrement would overflow"
    );
    // A failed increment on a missing key creates nothing.
    assert_eq!(
        err(&mut con, &["HINCRBY", "nokey", "f", "1.5"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "nokey"]), 0);
}

#[test]
fn hincrbyfloat_formats_like_redis_and_refuses_nan_and_infinity() {
    let (_s, mut con) = setup();
    assert_eq!(
        cmd::<String>(&mut con, &["HINCRBYFLOAT", "h", "f", "1.23"]),
        "1.23"
    );
    assert_eq!(
        cmd::<String>(&mut con, &["HINCRBYFLOAT", "h", "f", "0.77"]),
        "2"
    );
    assert_eq!(
        cmd::<String>(&mut con, &["HINCRBYFLOAT", "h", "f", "-0.1"]),
        "1.9"
    );
    assert_eq!(
        cmd::<String>(&mut con, &["HINCRBYFLOAT", "h", "f", "5.0e3"]),
        "5001.9"
    );
    assert_eq!(cmd::<String>(&mut con, &["HGET", "h", "f"]), "5001.9");
    let _: i64 = cmd(&mut con, &["HSET", "h", "i", "17179869184"]);
    assert_eq!(
        cmd::<String>(&mut con, &["HINCRBYFLOAT", "h", "i", "17179869184"]),
        "34359738368"
    );
    let _: i64 = cmd(&mut con, &["HSET", "h", "s", "11 ", "z", "1\u{0}2"]);
    for f in ["s", "z"] {
        assert_eq!(
            err(&mut con, &["HINCRBYFLOAT", "h", f, "1"]),
            "ERR hash value is not a float"
        );
    }
    assert_eq!(
        err(&mut con, &["HINCRBYFLOAT", "h", "f", "abc"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut con, &["HINCRBYFLOAT", "h", "f", "nan"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut con, &["HINCRBYFLOAT", "hfoo", "f", "+inf"]),
        "ERR value is NaN or Infinity"
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "hfoo"]), 0);
    let _: i64 = cmd(&mut con, &["HSET", "h", "inf", "inf"]);
    assert_eq!(
        err(&mut con, &["HINCRBYFLOAT", "h", "inf", "1"]),
        "ERR increment would produce NaN or Infinity"
    );
    assert_eq!(cmd::<String>(&mut con, &["HGET", "h", "inf"]), "inf");
}

#[test]
fn listpack_converts_past_the_entry_limit_and_never_back() {
    let (_s, mut con) = setup();
    for i in 0..128 {
        let f = format!("f{i}");
        let _: i64 = cmd(&mut con, &["HSET", "h", &f, "v"]);
    }
    assert_eq!(encoding(&mut con, "h"), "listpack");
    // Updating an existing field adds nothing.
    let _: i64 = cmd(&mut con, &["HSET", "h", "f0", "w"]);
    assert_eq!(encoding(&mut con, "h"), "listpack");
    let _: i64 = cmd(&mut con, &["HSET", "h", "f128", "v"]);
    assert_eq!(encoding(&mut con, "h"), "hashtable");
    for i in 0..120 {
        let f = format!("f{i}");
        let _: i64 = cmd(&mut con, &["HDEL", "h", &f]);
    }
    assert_eq!(cmd::<i64>(&mut con, &["HLEN", "h"]), 9);
    assert_eq!(encoding(&mut con, "h"), "hashtable");
}

#[test]
fn listpack_converts_on_a_long_field_or_value_with_the_configured_limits() {
    let (_s, mut con) = setup();
    let v64 = "x".repeat(64);
    let v65 = "x".repeat(65);
    let _: i64 = cmd(&mut con, &["HSET", "a", "f", &v64]);
    assert_eq!(encoding(&mut con, "a"), "listpack");
    let _: i64 = cmd(&mut con, &["HSET", "a", "f", &v65]);
    assert_eq!(encoding(&mut con, "a"), "hashtable");
    let _: i64 = cmd(&mut con, &["HSET", "b", &v65, "v"]);
    assert_eq!(encoding(&mut con, "b"), "hashtable");
    // HSETNX on an existing field writes nothing, so nothing converts.
    let _: i64 = cmd(&mut con, &["HSET", "c", "f", "v"]);
    assert_eq!(cmd::<i64>(&mut con, &["HSETNX", "c", "f", &v65]), 0);
    assert_eq!(encoding(&mut con, "c"), "listpack");

    // The thresholds are read per write, under either config name.
    let _: String = cmd(
        &mut con,
        &["CONFIG", "SET", "hash-max-ziplist-entries", "2"],
    );
    let _: String = cmd(&mut con, &["CONFIG", "SET", "hash-max-listpack-value", "8"]);
    let _: i64 = cmd(&mut con, &["HSET", "d", "a", "1", "b", "2"]);
    assert_eq!(encoding(&mut con, "d"), "listpack");
    let _: i64 = cmd(&mut con, &["HSET", "d", "c", "3"]);
    assert_eq!(encoding(&mut con, "d"), "hashtable");
    // HINCRBYFLOAT converts when its result is longer than the limit.
    let _: i64 = cmd(&mut con, &["HSET", "e", "tmp", "0"]);
    let _: String = cmd(&mut con, &["HINCRBYFLOAT", "e", "tmp", "0.000005"]);
    assert_eq!(encoding(&mut con, "e"), "listpack");
    let _: String = cmd(&mut con, &["HINCRBYFLOAT", "e", "tmp", "0.0000005"]);
    assert_eq!(encoding(&mut con, "e"), "hashtable");
    let _: String = cmd(&mut con, &["HINCRBYFLOAT", "f", "abcdefgh", "1"]);
    assert_eq!(encoding(&mut con, "f"), "listpack");
    let _: String = cmd(&mut con, &["HINCRBYFLOAT", "g", "abcdefghi", "1"]);
    assert_eq!(encoding(&mut con, "g"), "hashtable");
    // A limit of zero entries converts on the first field.
    let _: String = cmd(
        &mut con,
        &["CONFIG", "SET", "hash-max-listpack-entries", "0"],
    );
    let _: i64 = cmd(&mut con, &["HSET", "z", "a", "1"]);
    assert_eq!(encoding(&mut con, "z"), "hashtable");
}

#[test]
fn big_hash_keeps_every_field() {
    let (_s, mut con) = setup();
    let mut want = BTreeMap::new();
    for i in 0..1000 {
        let (f, v) = (format!("field:{i}"), format!("value:{}", i * 7));
        let _: i64 = cmd(&mut con, &["HSET", "h", &f, &v]);
        want.insert(f, v);
    }
    assert_eq!(encoding(&mut con, "h"), "hashtable");
    assert_eq!(hgetall(&mut con, "h"), want);
    assert_eq!(cmd::<i64>(&mut con, &["HLEN", "h"]), 1000);
    let keys: BTreeSet<String> = cmd(&mut con, &["HKEYS", "h"]);
    assert_eq!(keys, want.keys().cloned().collect());
    assert_eq!(
        cmd::<String>(&mut con, &["HGET", "h", "field:999"]),
        "value:6993"
    );
}

#[test]
fn hrandfield_argument_errors_and_empty_replies() {
    let (s, mut con) = setup();
    let _: i64 = cmd(&mut con, &["HSET", "h", "a", "1", "b", "2"]);
    assert_eq!(
        err(&mut con, &["HRANDFIELD", "h", "-9223372036854775808"]),
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    assert_eq!(
        err(
            &mut con,
            &["HRANDFIELD", "h", "-9223372036854770000", "WITHVALUES"]
        ),
        "ERR value is out of range"
    );
    assert_eq!(
        err(&mut con, &["HRANDFIELD", "h", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut con, &["HRANDFIELD", "h", "1", "foo"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["HRANDFIELD", "h", "1", "withvalues", "x"]),
        "ERR syntax error"
    );
    // A null bulk without a count, an empty array with one.
    assert_eq!(text(&s.raw(&resp(&[b"HRANDFIELD", b"nokey"]))), "$-1\r\n");
    assert_eq!(
        text(&s.raw(&resp(&[b"HRANDFIELD", b"nokey", b"100"]))),
        "*0\r\n"
    );
    assert_eq!(text(&s.raw(&resp(&[b"HRANDFIELD", b"h", b"0"]))), "*0\r\n");
}

#[test]
fn hrandfield_counts_follow_redis_cases() {
    let (_s, mut con) = setup();
    let _: String = cmd(
        &mut con,
        &["CONFIG", "SET", "hash-max-listpack-value", "10"],
    );
    let long = "y".repeat(70);
    let small: Vec<(String, String)> = (0..10).map(|i| (format!("k{i}"), format!("{i}"))).collect();
    let mut big = small.clone();
    big[9].0 = long;
    for (key, pairs, enc) in [("lp", &small, "listpack"), ("ht", &big, "hashtable")] {
        for (f, v) in pairs {
            let _: i64 = cmd(&mut con, &["HSET", key, f, v]);
        }
        assert_eq!(encoding(&mut con, key), enc);
        let all: BTreeMap<String, String> = pairs.iter().cloned().collect();

        // Without a count: one field, and every field eventually.
        let mut seen = BTreeSet::new();
        for _ in 0..300 {
            seen.insert(cmd::<String>(&mut con, &["HRANDFIELD", key]));
        }
        assert_eq!(seen, all.keys().cloned().collect(), "{enc}");

        // Negative: exactly that many, repetitions allowed, all members.
        let r: Vec<String> = cmd(&mut con, &["HRANDFIELD", key, "-1001"]);
        assert_eq!(r.len(), 1001);
        assert!(r.iter().all(|f| all.contains_key(f)));
        let r: Vec<String> = cmd(&mut con, &["HRANDFIELD", key, "-20", "WITHVALUES"]);
        assert_eq!(r.len(), 40);
        for p in r.chunks(2) {
            assert_eq!(all.get(&p[0]), Some(&p[1]), "{enc}");
        }

        // Positive at or past the size: the whole hash.
        for n in ["10", "20"] {
            let r: BTreeSet<String> = cmd(&mut con, &["HRANDFIELD", key, n]);
            assert_eq!(r, all.keys().cloned().collect());
            let r: BTreeMap<String, String> = cmd(&mut con, &["HRANDFIELD", key, n, "WITHVALUES"]);
            assert_eq!(r, all);
        }
        // Positive below the size: distinct fields with their values.
        for n in [8usize, 2] {
            let r: Vec<String> = cmd(&mut con, &["HRANDFIELD", key, &n.to_string()]);
            assert_eq!(r.len(), n);
            assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), n);
            let r: Vec<String> = cmd(&mut con, &["HRANDFIELD", key, &n.to_string(), "WITHVALUES"]);
            assert_eq!(r.len(), 2 * n);
            let fields: BTreeSet<&String> = r.iter().step_by(2).collect();
            assert_eq!(fields.len(), n);
            for p in r.chunks(2) {
                assert_eq!(all.get(&p[0]), Some(&p[1]), "{enc}");
            }
        }
    }
}

#[test]
fn hrandfield_withvalues_in_resp3_is_an_array_of_pairs() {
    let (s, _con) = setup();
    let mut c = s.raw_conn();
    c.send(&resp(&[b"HSET", b"h", b"a", b"1"]));
    assert_eq!(text(&c.read_idle()), ":1\r\n");
    c.hello3();
    c.send(&resp(&[b"HRANDFIELD", b"h", b"-2", b"WITHVALUES"]));
    assert_eq!(
        text(&c.read_idle()),
        "*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n"
    );
    c.send(&resp(&[b"HRANDFIELD", b"h", b"5", b"WITHVALUES"]));
    assert_eq!(text(&c.read_idle()), "*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n");
    c.send(&resp(&[b"HRANDFIELD", b"h", b"5"]));
    assert_eq!(text(&c.read_idle()), "*1\r\n$1\r\na\r\n");
    c.send(&resp(&[b"HGETALL", b"h"]));
    assert_eq!(text(&c.read_idle()), "%1\r\n$1\r\na\r\n$1\r\n1\r\n");
    c.send(&resp(&[b"HGETALL", b"nokey"]));
    assert_eq!(text(&c.read_idle()), "%0\r\n");
    c.send(&resp(&[b"HRANDFIELD", b"nokey"]));
    assert_eq!(text(&c.read_idle()), "_\r\n");
    c.send(&resp(&[b"HGET", b"h", b"zz"]));
    assert_eq!(text(&c.read_idle()), "_\r\n");
}

#[test]
fn hscan_on_a_listpack_returns_everything_at_once() {
    let (s, mut con) = setup();
    let _: i64 = cmd(&mut con, &["HSET", "h", "a", "1", "b", "2", "ab", "3"]);
    let (cursor, items): (String, Vec<String>) = cmd(&mut con, &["HSCAN", "h", "0", "COUNT", "1"]);
    assert_eq!(cursor, "0");
    assert_eq!(items, ["a", "1", "b", "2", "ab", "3"]);
    let (cursor, items): (String, Vec<String>) = cmd(&mut con, &["HSCAN", "h", "0", "MATCH", "a*"]);
    assert_eq!(cursor, "0");
    assert_eq!(items, ["a", "1", "ab", "3"]);
    assert_eq!(
        text(&s.raw(&resp(&[b"HSCAN", b"nokey", b"0", b"whatever"]))),
        "*2\r\n$1\r\n0\r\n*0\r\n"
    );
    assert_eq!(err(&mut con, &["HSCAN", "h", "x"]), "ERR invalid cursor");
    assert_eq!(
        err(&mut con, &["HSCAN", "h", "0", "COUNT", "0"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["HSCAN", "h", "0", "MATCH"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["HSCAN", "h", "0", "COUNT", "x"]),
        "ERR value is not an integer or out of range"
    );
}

#[test]
fn hscan_on_a_hashtable_visits_every_field_with_a_cursor() {
    let (_s, mut con) = setup();
    let mut want = BTreeMap::new();
    for i in 0..500 {
        let (f, v) = (format!("f{i}"), format!("v{i}"));
        let _: i64 = cmd(&mut con, &["HSET", "h", &f, &v]);
        want.insert(f, v);
    }
    assert_eq!(encoding(&mut con, "h"), "hashtable");
    let mut got = BTreeMap::new();
    let mut matched = BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let (next, items): (String, Vec<String>) =
            cmd(&mut con, &["HSCAN", "h", &cursor, "COUNT", "20"]);
        calls += 1;
        for p in items.chunks(2) {
            got.insert(p[0].clone(), p[1].clone());
        }
        let (_, items): (String, Vec<String>) = cmd(
            &mut con,
            &["HSCAN", "h", &cursor, "MATCH", "f1*", "COUNT", "20"],
        );
        for p in items.chunks(2) {
            assert!(p[0].starts_with("f1"), "{p:?}");
            matched.insert(p[0].clone());
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert!(calls > 5, "a table is scanned in steps ({calls})");
    assert_eq!(got, want);
    let want_matched: BTreeSet<String> = want
        .keys()
        .filter(|k| k.starts_with("f1"))
        .cloned()
        .collect();
    assert_eq!(matched, want_matched);
}

#[test]
fn writes_propagate_their_effect_and_no_ops_propagate_nothing() {
    let (s, mut con) = setup();
    let _link = ferrite_tests::attach_replica(&s);
    // The first write also selects the database in the stream.
    let _: i64 = cmd(&mut con, &["HSET", "h", "a", "1"]);
    let step = |con: &mut Connection, args: &[&str]| -> usize {
        let before = repl_offset(con);
        let _: redis::Value = redis::cmd(args[0])
            .arg(&args[1..])
            .query(con)
            .unwrap_or(redis::Value::Nil);
        repl_offset(con) - before
    };
    let len = |args: &[&str]| -> usize {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        resp(&v).len()
    };
    let hset = ["HSET", "h", "b", "2", "c", "3"];
    assert_eq!(step(&mut con, &hset), len(&hset));
    let hmset = ["HMSET", "h", "b", "5"];
    assert_eq!(step(&mut con, &hmset), len(&hmset));
    let incr = ["HINCRBY", "h", "a", "41"];
    assert_eq!(step(&mut con, &incr), len(&incr));
    // HINCRBYFLOAT propagates the HSET of its result.
    assert_eq!(
        step(&mut con, &["HINCRBYFLOAT", "h", "f", "1.50"]),
        len(&["HSET", "h", "f", "1.5"])
    );
    let nx = ["HSETNX", "h", "n", "v"];
    assert_eq!(step(&mut con, &nx), len(&nx));
    assert_eq!(step(&mut con, &["HSETNX", "h", "n", "w"]), 0);
    assert_eq!(step(&mut con, &["HDEL", "h", "nothing"]), 0);
    let del = ["HDEL", "h", "n", "nothing"];
    assert_eq!(step(&mut con, &del), len(&del));
    assert_eq!(step(&mut con, &["HINCRBY", "h", "f", "1"]), 0);
    assert_eq!(step(&mut con, &["HGETALL", "h"]), 0);
}

#[test]
fn expired_hashes_are_gone() {
    let (_s, mut con) = setup();
    let _: i64 = cmd(&mut con, &["HSET", "h", "a", "1"]);
    let _: i64 = cmd(&mut con, &["PEXPIRE", "h", "30"]);
    std::thread::sleep(std::time::Duration::from_millis(80));
    assert_eq!(cmd::<Option<String>>(&mut con, &["HGET", "h", "a"]), None);
    // A write after expiry starts a fresh hash without the old TTL.
    assert_eq!(cmd::<i64>(&mut con, &["HSET", "h", "b", "2"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["HLEN", "h"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "h"]), -1);
    // Writes to a live hash keep its TTL.
    let _: i64 = cmd(&mut con, &["EXPIRE", "h", "100"]);
    let _: i64 = cmd(&mut con, &["HSET", "h", "c", "3"]);
    let _: i64 = cmd(&mut con, &["HDEL", "h", "c"]);
    let _: i64 = cmd(&mut con, &["HINCRBY", "h", "n", "1"]);
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "h"]), 100);
}
