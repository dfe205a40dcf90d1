//! Set commands: replies, errors, encodings (intset / hashtable) and their
//! conversion points, the SPOP / SRANDMEMBER code paths, the multi-key
//! algebra and its STORE forms, SSCAN, RESP3 set replies, propagation.

use std::collections::BTreeSet;

use ferrite_tests::{cmd, err, text, TestServer};
use redis::Connection;

fn setup() -> (TestServer, Connection) {
    let server = TestServer::start();
    let con = server.client();
    (server, con)
}

fn members(con: &mut Connection, key: &str) -> BTreeSet<String> {
    cmd(con, &["SMEMBERS", key])
}

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn encoding(con: &mut Connection, key: &str) -> String {
    cmd(con, &["OBJECT", "ENCODING", key])
}

fn sadd(con: &mut Connection, key: &str, items: &[&str]) -> i64 {
    let mut args = vec!["SADD", key];
    args.extend_from_slice(items);
    cmd(con, &args)
}

fn repl_offset(con: &mut Connection) -> i64 {
    ferrite_tests::repl_offset(con)
}

/// Bytes of a command in the propagation stream.
fn stream_len(args: &[&str]) -> i64 {
    ferrite_tests::stream_len(args)
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn sadd_scard_sismember_smismember_smembers() {
    let (_s, mut con) = setup();
    assert_eq!(sadd(&mut con, "s", &["a", "b", "a"]), 2);
    assert_eq!(sadd(&mut con, "s", &["b", "c"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["SCARD", "s"]), 3);
    assert_eq!(cmd::<i64>(&mut con, &["SCARD", "missing"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["SISMEMBER", "s", "a"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["SISMEMBER", "s", "z"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["SISMEMBER", "missing", "a"]), 0);
    assert_eq!(
        cmd::<Vec<i64>>(&mut con, &["SMISMEMBER", "s", "a", "z", "c"]),
        [1, 0, 1]
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut con, &["SMISMEMBER", "missing", "a", "b"]),
        [0, 0]
    );
    assert_eq!(members(&mut con, "s"), set_of(&["a", "b", "c"]));
    assert!(members(&mut con, "missing").is_empty());
}

#[test]
fn intset_converts_to_hashtable_exactly_where_redis_does() {
    let (_s, mut con) = setup();
    sadd(&mut con, "ints", &["3", "1", "2"]);
    assert_eq!(encoding(&mut con, "ints"), "intset");
    // Intsets reply in ascending order.
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["SMEMBERS", "ints"]),
        ["1", "2", "3"]
    );
    sadd(&mut con, "ints", &["a"]);
    assert_eq!(encoding(&mut con, "ints"), "hashtable");
    // Removing the string does not convert back.
    cmd::<i64>(&mut con, &["SREM", "ints", "a"]);
    assert_eq!(encoding(&mut con, "ints"), "hashtable");

    // Non-canonical or out-of-range integers are strings.
    for m in ["01", "+1", "-0", "9223372036854775808", "1.0", " 1"] {
        cmd::<i64>(&mut con, &["DEL", "x"]);
        sadd(&mut con, "x", &[m]);
        assert_eq!(encoding(&mut con, "x"), "hashtable", "{m:?}");
        assert_eq!(cmd::<i64>(&mut con, &["SISMEMBER", "x", m]), 1);
    }
    cmd::<i64>(&mut con, &["DEL", "x"]);
    sadd(
        &mut con,
        "x",
        &["-9223372036854775808", "9223372036854775807"],
    );
    assert_eq!(encoding(&mut con, "x"), "intset");

    // The 513th integer converts (set-max-intset-entries 512).
    let many: Vec<String> = (0..512).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    sadd(&mut con, "big", &refs);
    assert_eq!(encoding(&mut con, "big"), "intset");
    sadd(&mut con, "big", &["512"]);
    assert_eq!(encoding(&mut con, "big"), "hashtable");

    // The threshold is read per write.
    let _: () = cmd(&mut con, &["CONFIG", "SET", "set-max-intset-entries", "2"]);
    sadd(&mut con, "small", &["1", "2"]);
    assert_eq!(encoding(&mut con, "small"), "intset");
    sadd(&mut con, "small", &["3"]);
    assert_eq!(encoding(&mut con, "small"), "hashtable");
}

#[test]
fn srem_counts_and_deletes_the_emptied_key() {
    let (_s, mut con) = setup();
    sadd(&mut con, "s", &["a", "b", "c"]);
    assert_eq!(cmd::<i64>(&mut con, &["SREM", "s", "x", "a", "a"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["SREM", "s", "b", "c", "d"]), 2);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "s"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["SREM", "s", "a"]), 0);
    sadd(&mut con, "i", &["1", "2"]);
    assert_eq!(cmd::<i64>(&mut con, &["SREM", "i", "01", "1"]), 1);
    assert_eq!(members(&mut con, "i"), set_of(&["2"]));
}

#[test]
fn every_set_command_refuses_other_types() {
    let (_s, mut con) = setup();
    let _: () = cmd(&mut con, &["SET", "str", "x"]);
    sadd(&mut con, "s", &["a"]);
    for args in [
        &["SADD", "str", "a"][..],
        &["SREM", "str", "a"],
        &["SMEMBERS", "str"],
        &["SISMEMBER", "str", "a"],
        &["SMISMEMBER", "str", "a"],
        &["SCARD", "str"],
        &["SPOP", "str"],
        &["SPOP", "str", "2"],
        &["SRANDMEMBER", "str"],
        &["SRANDMEMBER", "str", "2"],
        &["SMOVE", "str", "s", "a"],
        &["SMOVE", "s", "str", "a"],
        &["SINTER", "s", "str"],
        &["SINTERCARD", "2", "s", "str"],
        &["SINTERSTORE", "d", "s", "str"],
        &["SUNION", "s", "str"],
        &["SUNIONSTORE", "d", "s", "str"],
        &["SDIFF", "s", "str"],
        &["SDIFF", "missing", "str"],
        &["SDIFFSTORE", "d", "s", "str"],
        &["SSCAN", "str", "0"],
    ] {
        assert_eq!(err(&mut con, args), WRONGTYPE, "{args:?}");
    }
    // A failed write changed nothing.
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "d"]), 0);
    assert_eq!(members(&mut con, "s"), set_of(&["a"]));
    // A missing source makes SMOVE answer 0 before checking the destination.
    assert_eq!(cmd::<i64>(&mut con, &["SMOVE", "missing", "str", "a"]), 0);
    // SINTER stops at the first non-set even after a missing key...
    assert_eq!(err(&mut con, &["SINTER", "missing", "str"]), WRONGTYPE);
}

#[test]
fn spop_without_count_removes_what_it_returns() {
    let (_s, mut con) = setup();
    for (key, contents) in [("h", ["a", "b", "c"]), ("i", ["1", "2", "3"])] {
        sadd(&mut con, key, &contents);
        let mut popped = BTreeSet::new();
        for _ in 0..3 {
            let m: String = cmd(&mut con, &["SPOP", key]);
            assert!(popped.insert(m));
        }
        assert_eq!(popped, set_of(&contents));
        assert_eq!(cmd::<i64>(&mut con, &["EXISTS", key]), 0);
        assert_eq!(cmd::<Option<String>>(&mut con, &["SPOP", key]), None);
    }
    assert_eq!(err(&mut con, &["SPOP", "h", "1", "2"]), "ERR syntax error");
}

#[test]
fn spop_with_count_covers_its_three_code_paths() {
    let (_s, mut con) = setup();
    let all: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    // Path 2 (few), path 3 (most), path 1 (all).
    for (count, left) in [(2, 18), (18, 2), (30, 0)] {
        cmd::<i64>(&mut con, &["DEL", "s"]);
        sadd(&mut con, "s", &refs);
        let popped: Vec<String> = cmd(&mut con, &["SPOP", "s", &count.to_string()]);
        assert_eq!(popped.len(), 20 - left);
        let rest = members(&mut con, "s");
        assert_eq!(rest.len(), left);
        let mut union: BTreeSet<String> = popped.into_iter().collect();
        union.extend(rest);
        assert_eq!(
            union.len(),
            20,
            "popped members are distinct and left the set"
        );
    }
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "s"]), 0);

    sadd(&mut con, "s", &["a"]);
    assert!(cmd::<Vec<String>>(&mut con, &["SPOP", "s", "0"]).is_empty());
    assert!(cmd::<Vec<String>>(&mut con, &["SPOP", "missing", "5"]).is_empty());
    for bad in ["-1", "x", "1.5"] {
        assert_eq!(
            err(&mut con, &["SPOP", "s", bad]),
            "ERR value is out of range, must be positive"
        );
    }
}

#[test]
fn spop_path_three_rebuilds_the_survivors_as_a_new_set() {
    let (_s, mut con) = setup();
    let _: () = cmd(&mut con, &["CONFIG", "SET", "set-max-intset-entries", "8"]);
    let all: Vec<String> = (1..=12).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    sadd(&mut con, "s", &refs);
    assert_eq!(encoding(&mut con, "s"), "hashtable");
    // Path 2 keeps the table.
    cmd::<Vec<String>>(&mut con, &["SPOP", "s", "1"]);
    assert_eq!(encoding(&mut con, "s"), "hashtable");
    // 11 left: popping 9 is still path 2 (2 * 5 > 9)...
    let mut again = vec!["SADD", "s"];
    again.extend_from_slice(&refs);
    let _: i64 = cmd(&mut con, &again);
    cmd::<Vec<String>>(&mut con, &["SPOP", "s", "9"]);
    assert_eq!(encoding(&mut con, "s"), "hashtable");
    // ...path 3 (remaining * 5 <= count) moves the survivors into a fresh
    // set, which is an intset again.
    let _: i64 = cmd(&mut con, &again);
    cmd::<Vec<String>>(&mut con, &["SPOP", "s", "10"]);
    assert_eq!(cmd::<i64>(&mut con, &["SCARD", "s"]), 2);
    assert_eq!(encoding(&mut con, "s"), "intset");
}

#[test]
fn srandmember_count_cases() {
    let (_s, mut con) = setup();
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["SRANDMEMBER", "missing"]),
        None
    );
    assert!(cmd::<Vec<String>>(&mut con, &["SRANDMEMBER", "missing", "5"]).is_empty());
    let contents: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = contents.iter().map(String::as_str).collect();
    sadd(&mut con, "s", &refs);
    let all: BTreeSet<String> = contents.iter().cloned().collect();
    assert!(cmd::<Vec<String>>(&mut con, &["SRANDMEMBER", "s", "0"]).is_empty());

    // Negative: repeats allowed, exactly |count| members.
    let many: Vec<String> = cmd(&mut con, &["SRANDMEMBER", "s", "-500"]);
    assert_eq!(many.len(), 500);
    assert!(many.iter().all(|m| all.contains(m)));
    let distinct: BTreeSet<&String> = many.iter().collect();
    assert!(distinct.len() < 500);

    // Whole set, most of it (path 3), a little of it (path 4): distinct members.
    for (count, want) in [(50, 50), (100, 50), (45, 45), (5, 5), (1, 1)] {
        let got: Vec<String> = cmd(&mut con, &["SRANDMEMBER", "s", &count.to_string()]);
        assert_eq!(got.len(), want, "count {count}");
        let d: BTreeSet<String> = got.into_iter().collect();
        assert_eq!(d.len(), want, "count {count} returns distinct members");
        assert!(d.is_subset(&all));
    }
    // Reads do not change the set.
    assert_eq!(cmd::<i64>(&mut con, &["SCARD", "s"]), 50);

    assert_eq!(
        err(&mut con, &["SRANDMEMBER", "s", "-9223372036854775808"]),
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    assert_eq!(
        err(&mut con, &["SRANDMEMBER", "s", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut con, &["SRANDMEMBER", "s", "1", "2"]),
        "ERR syntax error"
    );
}

#[test]
fn srandmember_eventually_returns_every_member_of_both_encodings() {
    let (_s, mut con) = setup();
    sadd(&mut con, "i", &["1", "2", "3", "4", "5"]);
    sadd(&mut con, "h", &["a", "b", "c", "d", "e"]);
    for key in ["i", "h"] {
        let want = members(&mut con, key);
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            seen.insert(cmd::<String>(&mut con, &["SRANDMEMBER", key]));
            if seen == want {
                break;
            }
        }
        assert_eq!(seen, want, "{key}");
    }
}

#[test]
fn smove_moves_between_encodings() {
    let (_s, mut con) = setup();
    sadd(&mut con, "src", &["1", "a", "b"]);
    sadd(&mut con, "dst", &["2", "3"]);
    assert_eq!(cmd::<i64>(&mut con, &["SMOVE", "src", "dst", "1"]), 1);
    assert_eq!(encoding(&mut con, "dst"), "intset");
    assert_eq!(cmd::<i64>(&mut con, &["SMOVE", "src", "dst", "a"]), 1);
    assert_eq!(encoding(&mut con, "dst"), "hashtable");
    assert_eq!(members(&mut con, "dst"), set_of(&["1", "2", "3", "a"]));
    assert_eq!(members(&mut con, "src"), set_of(&["b"]));
    // Not a member; same key.
    assert_eq!(cmd::<i64>(&mut con, &["SMOVE", "src", "dst", "zzz"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["SMOVE", "src", "src", "b"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["SMOVE", "src", "src", "zzz"]), 0);
    // A member already in the destination still leaves the source.
    sadd(&mut con, "src", &["2"]);
    assert_eq!(cmd::<i64>(&mut con, &["SMOVE", "src", "dst", "2"]), 1);
    assert_eq!(members(&mut con, "src"), set_of(&["b"]));
    // The last member: the source goes, a new destination is created in
    // the encoding its first member needs.
    assert_eq!(cmd::<i64>(&mut con, &["SMOVE", "src", "new", "b"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "src"]), 0);
    assert_eq!(encoding(&mut con, "new"), "hashtable");
    sadd(&mut con, "n1", &["7"]);
    assert_eq!(cmd::<i64>(&mut con, &["SMOVE", "n1", "n2", "7"]), 1);
    assert_eq!(encoding(&mut con, "n2"), "intset");
    assert_eq!(cmd::<i64>(&mut con, &["SMOVE", "missing", "n2", "7"]), 0);
}

#[test]
fn sinter_sunion_sdiff_with_missing_keys() {
    let (_s, mut con) = setup();
    sadd(&mut con, "a", &["1", "2", "3", "x"]);
    sadd(&mut con, "b", &["2", "3", "4", "x", "y"]);
    sadd(&mut con, "c", &["3", "x", "z"]);
    let get = |con: &mut Connection, args: &[&str]| -> BTreeSet<String> { cmd(con, args) };
    assert_eq!(
        get(&mut con, &["SINTER", "a", "b", "c"]),
        set_of(&["3", "x"])
    );
    assert_eq!(get(&mut con, &["SINTER", "a", "a"]), members(&mut con, "a"));
    assert!(get(&mut con, &["SINTER", "a", "missing"]).is_empty());
    assert_eq!(
        get(&mut con, &["SUNION", "a", "missing", "c"]),
        set_of(&["1", "2", "3", "x", "z"])
    );
    assert_eq!(get(&mut con, &["SDIFF", "a", "b"]), set_of(&["1"]));
    assert_eq!(
        get(&mut con, &["SDIFF", "b", "a", "c"]),
        set_of(&["4", "y"])
    );
    assert_eq!(
        get(&mut con, &["SDIFF", "a", "missing"]),
        members(&mut con, "a")
    );
    assert!(get(&mut con, &["SDIFF", "missing", "a"]).is_empty());
    assert!(get(&mut con, &["SDIFF", "a", "b", "a"]).is_empty());
}

#[test]
fn sdiff_agrees_with_a_model_for_both_algorithms() {
    let (_s, mut con) = setup();
    // Big first set and small others (algorithm 1), or a small first set
    // and big others (algorithm 2): the result is the same set difference.
    for (first, others) in [(200usize, 5usize), (5, 200)] {
        let _: () = cmd(&mut con, &["FLUSHALL"]);
        let a: Vec<String> = (0..first).map(|i| (i * 3).to_string()).collect();
        let b: Vec<String> = (0..others).map(|i| (i * 2).to_string()).collect();
        let c: Vec<String> = (0..others).map(|i| format!("{}", i * 5)).collect();
        for (k, v) in [("a", &a), ("b", &b), ("c", &c)] {
            let refs: Vec<&str> = v.iter().map(String::as_str).collect();
            sadd(&mut con, k, &refs);
        }
        let mut want: BTreeSet<String> = a.iter().cloned().collect();
        for x in b.iter().chain(&c) {
            want.remove(x);
        }
        let got: BTreeSet<String> = cmd(&mut con, &["SDIFF", "a", "b", "c"]);
        assert_eq!(got, want);
        let n: i64 = cmd(&mut con, &["SDIFFSTORE", "d", "a", "b", "c"]);
        assert_eq!(n as usize, want.len());
        assert_eq!(members(&mut con, "d"), want);
    }
}

#[test]
fn store_forms_set_encoding_delete_empty_results_and_clear_ttl() {
    let (_s, mut con) = setup();
    sadd(&mut con, "i1", &["1", "2", "3"]);
    sadd(&mut con, "i2", &["2", "3", "4"]);
    sadd(&mut con, "h1", &["2", "3", "a"]);
    // A result of integers is an intset even when a source was a table.
    assert_eq!(cmd::<i64>(&mut con, &["SINTERSTORE", "d", "h1", "i1"]), 2);
    assert_eq!(encoding(&mut con, "d"), "intset");
    assert_eq!(members(&mut con, "d"), set_of(&["2", "3"]));
    assert_eq!(cmd::<i64>(&mut con, &["SUNIONSTORE", "d", "i1", "h1"]), 4);
    assert_eq!(encoding(&mut con, "d"), "hashtable");
    assert_eq!(cmd::<i64>(&mut con, &["SDIFFSTORE", "d", "h1", "i2"]), 1);
    assert_eq!(members(&mut con, "d"), set_of(&["a"]));
    assert_eq!(cmd::<i64>(&mut con, &["SDIFFSTORE", "d", "i1", "h1"]), 1);
    assert_eq!(encoding(&mut con, "d"), "intset");

    // The destination may be a source, and may hold any type before.
    assert_eq!(cmd::<i64>(&mut con, &["SUNIONSTORE", "i1", "i1", "i2"]), 4);
    assert_eq!(members(&mut con, "i1"), set_of(&["1", "2", "3", "4"]));
    let _: () = cmd(&mut con, &["SET", "str", "x", "EX", "100"]);
    assert_eq!(cmd::<i64>(&mut con, &["SINTERSTORE", "str", "i1", "i2"]), 3);
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "str"]), -1);

    // Empty results delete the destination, whatever it held.
    for args in [
        &["SINTERSTORE", "str", "i1", "missing"][..],
        &["SUNIONSTORE", "str", "missing1", "missing2"],
        &["SDIFFSTORE", "str", "i1", "i1"],
        &["SDIFFSTORE", "str", "missing", "i1"],
    ] {
        let _: () = cmd(&mut con, &["SET", "str", "x"]);
        assert_eq!(cmd::<i64>(&mut con, args), 0, "{args:?}");
        assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "str"]), 0, "{args:?}");
    }
}

#[test]
fn sintercard_limits_and_argument_errors() {
    let (_s, mut con) = setup();
    let a: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let b: Vec<String> = (100..400).map(|i| i.to_string()).collect();
    for (k, v) in [("a", &a), ("b", &b)] {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        sadd(&mut con, k, &refs);
    }
    assert_eq!(cmd::<i64>(&mut con, &["SINTERCARD", "2", "a", "b"]), 200);
    assert_eq!(
        cmd::<i64>(&mut con, &["SINTERCARD", "2", "a", "b", "LIMIT", "0"]),
        200
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["SINTERCARD", "2", "a", "b", "limit", "7"]),
        7
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["SINTERCARD", "2", "a", "b", "LIMIT", "1000"]),
        200
    );
    assert_eq!(cmd::<i64>(&mut con, &["SINTERCARD", "1", "missing"]), 0);
    assert_eq!(
        cmd::<i64>(&mut con, &["SINTERCARD", "2", "a", "missing"]),
        0
    );
    let numkeys = "ERR numkeys should be greater than 0";
    assert_eq!(err(&mut con, &["SINTERCARD", "0", "a"]), numkeys);
    assert_eq!(err(&mut con, &["SINTERCARD", "x", "a"]), numkeys);
    assert_eq!(err(&mut con, &["SINTERCARD", "-1", "a"]), numkeys);
    assert_eq!(
        err(&mut con, &["SINTERCARD", "3", "a", "b"]),
        "ERR Number of keys can't be greater than number of args"
    );
    let neg = "ERR LIMIT can't be negative";
    assert_eq!(err(&mut con, &["SINTERCARD", "1", "a", "LIMIT", "-1"]), neg);
    assert_eq!(err(&mut con, &["SINTERCARD", "1", "a", "LIMIT", "x"]), neg);
    assert_eq!(
        err(&mut con, &["SINTERCARD", "1", "a", "LIMIT"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["SINTERCARD", "1", "a", "b"]),
        "ERR syntax error"
    );
}

#[test]
fn sscan_returns_an_intset_at_once_and_walks_a_table() {
    let (_s, mut con) = setup();
    sadd(&mut con, "i", &["3", "1", "2", "10"]);
    let (cursor, got): (String, Vec<String>) = cmd(&mut con, &["SSCAN", "i", "0", "COUNT", "1"]);
    assert_eq!(cursor, "0");
    assert_eq!(got, ["1", "2", "3", "10"]);
    let (_, got): (String, Vec<String>) = cmd(&mut con, &["SSCAN", "i", "0", "MATCH", "1*"]);
    assert_eq!(got, ["1", "10"]);

    let want: BTreeSet<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = want.iter().map(String::as_str).collect();
    sadd(&mut con, "h", &refs);
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let (next, got): (String, Vec<String>) =
            cmd(&mut con, &["SSCAN", "h", &cursor, "COUNT", "20"]);
        seen.extend(got);
        calls += 1;
        cursor = next;
        if cursor == "0" {
            break;
        }
        assert!(calls < 10_000);
    }
    assert!(calls > 1, "a table is scanned over several calls");
    assert_eq!(seen, want);

    let (_, got): (String, Vec<String>) = cmd(&mut con, &["SSCAN", "missing", "0"]);
    assert!(got.is_empty());
    assert_eq!(err(&mut con, &["SSCAN", "h", "x"]), "ERR invalid cursor");
    assert_eq!(err(&mut con, &["SSCAN", "h", " 1"]), "ERR invalid cursor");
    assert_eq!(
        err(&mut con, &["SSCAN", "h", "0", "COUNT", "0"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["SSCAN", "h", "0", "TYPE", "set"]),
        "ERR syntax error"
    );
    // Options are only parsed once the key is known to be a set.
    let (cursor, _): (String, Vec<String>) =
        cmd(&mut con, &["SSCAN", "missing", "0", "COUNT", "0"]);
    assert_eq!(cursor, "0");
}

#[test]
fn resp3_uses_the_set_type_where_redis_does() {
    let server = TestServer::start();
    let mut con = server.client();
    sadd(&mut con, "s", &["1", "2"]);
    let reply = server.raw(
        b"HELLO 3\r\nSMEMBERS s\r\nSINTER s missing\r\nSRANDMEMBER s 2\r\nSPOP missing 1\r\nSRANDMEMBER missing\r\n",
    );
    let t = text(&reply);
    let after_hello = &t[t
        .find("~2\r\n")
        .unwrap_or_else(|| panic!("no set reply in {t:?}"))..];
    assert_eq!(
        after_hello,
        "~2\r\n$1\r\n1\r\n$1\r\n2\r\n~0\r\n*2\r\n$1\r\n1\r\n$1\r\n2\r\n~0\r\n_\r\n"
    );
}

#[test]
fn writes_propagate_their_effect() {
    let (s, mut con) = setup();
    let _link = ferrite_tests::attach_replica(&s);
    sadd(
        &mut con,
        "s",
        &["1", "2", "3", "4", "5", "6", "7", "8", "9"],
    );
    // No change: nothing propagated. Reads: nothing propagated.
    let o = repl_offset(&mut con);
    sadd(&mut con, "s", &["1"]);
    cmd::<i64>(&mut con, &["SREM", "s", "x"]);
    cmd::<Vec<String>>(&mut con, &["SRANDMEMBER", "s", "3"]);
    cmd::<i64>(&mut con, &["SMOVE", "s", "t", "x"]);
    assert_eq!(repl_offset(&mut con), o);

    // SPOP: the SREM of the popped member.
    let m: String = cmd(&mut con, &["SPOP", "s"]);
    assert_eq!(repl_offset(&mut con), o + stream_len(&["SREM", "s", &m]));

    // SPOP with a count: one SREM of every popped member (single digits).
    let o = repl_offset(&mut con);
    let popped: Vec<String> = cmd(&mut con, &["SPOP", "s", "2"]);
    let mut want = vec!["SREM", "s"];
    want.extend(popped.iter().map(String::as_str));
    assert_eq!(repl_offset(&mut con), o + stream_len(&want));

    // SPOP taking everything: DEL.
    let o = repl_offset(&mut con);
    cmd::<Vec<String>>(&mut con, &["SPOP", "s", "100"]);
    assert_eq!(repl_offset(&mut con), o + stream_len(&["DEL", "s"]));

    // *STORE as received, or nothing when it changed nothing.
    let o = repl_offset(&mut con);
    cmd::<i64>(&mut con, &["SUNIONSTORE", "d", "missing"]);
    assert_eq!(repl_offset(&mut con), o);
    sadd(&mut con, "a", &["x"]);
    let o = repl_offset(&mut con);
    cmd::<i64>(&mut con, &["SUNIONSTORE", "d", "a"]);
    assert_eq!(
        repl_offset(&mut con),
        o + stream_len(&["SUNIONSTORE", "d", "a"])
    );
    let o = repl_offset(&mut con);
    cmd::<i64>(&mut con, &["SINTERSTORE", "d", "missing"]);
    assert_eq!(
        repl_offset(&mut con),
        o + stream_len(&["SINTERSTORE", "d", "missing"])
    );
}
