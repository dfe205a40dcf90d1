//! Sorted-set commands: ZADD options, ranges by rank/score/lex, stores,
//! pops, random members, set operations, ZSCAN, encodings and propagation.

use ferrite_tests::{cmd, err, text, TestServer};
use redis::Connection;

fn setup() -> (TestServer, Connection) {
    let server = TestServer::start();
    let con = server.client();
    (server, con)
}

fn strs(con: &mut Connection, args: &[&str]) -> Vec<String> {
    cmd(con, args)
}

fn encoding(con: &mut Connection, key: &str) -> String {
    cmd(con, &["OBJECT", "ENCODING", key])
}

fn repl_offset(con: &mut Connection) -> u64 {
    ferrite_tests::repl_offset(con) as u64
}

/// Length of a command encoded as a RESP array (what the stream appends).
fn resp_len(args: &[&str]) -> u64 {
    ferrite_tests::stream_len(args) as u64
}

#[test]
fn zadd_orders_by_score_then_member_bytes() {
    let (_s, mut con) = setup();
    assert_eq!(
        cmd::<i64>(
            &mut con,
            &["ZADD", "z", "2", "b", "1", "c", "2", "a", "-inf", "x", "+inf", "y"]
        ),
        5
    );
    assert_eq!(
        strs(&mut con, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        ["x", "-inf", "c", "1", "a", "2", "b", "2", "y", "inf"]
    );
    assert_eq!(cmd::<i64>(&mut con, &["ZCARD", "z"]), 5);
    assert_eq!(cmd::<i64>(&mut con, &["ZCARD", "missing"]), 0);
}

#[test]
fn zadd_options_follow_redis() {
    let (_s, mut con) = setup();
    cmd::<i64>(&mut con, &["ZADD", "z", "10", "a", "20", "b"]);
    assert_eq!(
        cmd::<i64>(&mut con, &["ZADD", "z", "NX", "1", "a", "1", "c"]),
        1
    );
    assert_eq!(cmd::<String>(&mut con, &["ZSCORE", "z", "a"]), "10");
    assert_eq!(
        cmd::<i64>(&mut con, &["ZADD", "z", "XX", "CH", "11", "a", "1", "d"]),
        1
    );
    assert_eq!(cmd::<Option<String>>(&mut con, &["ZSCORE", "z", "d"]), None);
    assert_eq!(
        cmd::<i64>(&mut con, &["ZADD", "z", "GT", "CH", "5", "a", "30", "b"]),
        1
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["ZADD", "z", "LT", "CH", "5", "a", "40", "b"]),
        1
    );
    assert_eq!(
        strs(&mut con, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        ["c", "1", "a", "5", "b", "30"]
    );
    assert_eq!(
        cmd::<String>(&mut con, &["ZADD", "z", "INCR", "2.5", "a"]),
        "7.5"
    );
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["ZADD", "z", "XX", "INCR", "1", "nope"]),
        None
    );
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["ZADD", "z", "GT", "INCR", "-1", "a"]),
        None
    );
    assert_eq!(
        err(&mut con, &["ZADD", "z", "NX", "XX", "1", "a"]),
        "ERR XX and NX options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut con, &["ZADD", "z", "GT", "LT", "1", "a"]),
        "ERR GT, LT, and/or NX options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut con, &["ZADD", "z", "INCR", "1", "a", "2", "b"]),
        "ERR INCR option supports a single increment-element pair"
    );
    assert_eq!(
        err(&mut con, &["ZADD", "z", "1", "a", "2"]),
        "ERR syntax error"
    );
    assert_eq!(err(&mut con, &["ZADD", "z", "NX", "1"]), "ERR syntax error");
    // A bad score anywhere refuses the whole command.
    assert_eq!(
        err(&mut con, &["ZADD", "z", "1", "new", "x", "b"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["ZSCORE", "z", "new"]),
        None
    );
    assert_eq!(cmd::<i64>(&mut con, &["ZADD", "nokey", "XX", "1", "a"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "nokey"]), 0);
}

#[test]
fn scores_parse_like_strtod_and_reply_like_percent_17g() {
    let (_s, mut con) = setup();
    for (arg, want) in [
        ("1.1", "1.1000000000000001"),
        ("0x10", "16"),
        ("1e-310", "9.9999999999999694e-311"),
        ("1e20", "1e+20"),
        (".5", "0.5"),
        ("-Infinity", "-inf"),
    ] {
        cmd::<i64>(&mut con, &["ZADD", "z", arg, "m"]);
        assert_eq!(
            cmd::<String>(&mut con, &["ZSCORE", "z", "m"]),
            want,
            "{arg}"
        );
    }
    for bad in ["nan", "1e500", "1e-400", " 1", "1 ", "", "abc", "1e"] {
        assert_eq!(
            err(&mut con, &["ZADD", "z", bad, "m"]),
            "ERR value is not a valid float",
            "{bad:?}"
        );
    }
    cmd::<i64>(&mut con, &["ZADD", "z", "inf", "m"]);
    assert_eq!(
        err(&mut con, &["ZINCRBY", "z", "-inf", "m"]),
        "ERR resulting score is not a number (NaN)"
    );
    assert_eq!(cmd::<String>(&mut con, &["ZSCORE", "z", "m"]), "inf");
    // -0 becomes 0 in a listpack (stored as an integer) but not in a skip list.
    cmd::<i64>(&mut con, &["ZADD", "small", "-0", "a"]);
    assert_eq!(cmd::<String>(&mut con, &["ZSCORE", "small", "a"]), "0");
    let long = "x".repeat(65);
    cmd::<i64>(&mut con, &["ZADD", "big", "-0", &long]);
    assert_eq!(cmd::<String>(&mut con, &["ZSCORE", "big", &long]), "-0");
}

#[test]
fn zincrby_creates_the_key_and_accumulates() {
    let (_s, mut con) = setup();
    assert_eq!(cmd::<String>(&mut con, &["ZINCRBY", "z", "2", "a"]), "2");
    assert_eq!(
        cmd::<String>(&mut con, &["ZINCRBY", "z", "-5.5", "a"]),
        "-3.5"
    );
    assert_eq!(
        err(&mut con, &["ZINCRBY", "z", "x", "a"]),
        "ERR value is not a valid float"
    );
}

#[test]
fn point_reads_on_missing_members_and_keys() {
    let (_s, mut con) = setup();
    cmd::<i64>(&mut con, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    assert_eq!(cmd::<Option<i64>>(&mut con, &["ZRANK", "z", "b"]), Some(1));
    assert_eq!(
        cmd::<Option<i64>>(&mut con, &["ZREVRANK", "z", "b"]),
        Some(1)
    );
    assert_eq!(
        cmd::<Option<i64>>(&mut con, &["ZREVRANK", "z", "a"]),
        Some(2)
    );
    assert_eq!(cmd::<Option<i64>>(&mut con, &["ZRANK", "z", "x"]), None);
    assert_eq!(cmd::<Option<i64>>(&mut con, &["ZRANK", "nokey", "x"]), None);
    assert_eq!(
        cmd::<Vec<Option<String>>>(&mut con, &["ZMSCORE", "z", "a", "x", "c"]),
        [Some("1".to_string()), None, Some("3".to_string())]
    );
    assert_eq!(
        cmd::<Vec<Option<String>>>(&mut con, &["ZMSCORE", "nokey", "a", "b"]),
        [None, None]
    );
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["ZSCORE", "nokey", "a"]),
        None
    );
}

#[test]
fn rank_ranges_clamp_like_redis() {
    let (_s, mut con) = setup();
    cmd::<i64>(
        &mut con,
        &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
    );
    assert_eq!(strs(&mut con, &["ZRANGE", "z", "-2", "-1"]), ["c", "d"]);
    assert_eq!(strs(&mut con, &["ZRANGE", "z", "-100", "1"]), ["a", "b"]);
    assert_eq!(strs(&mut con, &["ZRANGE", "z", "2", "100"]), ["c", "d"]);
    assert!(strs(&mut con, &["ZRANGE", "z", "3", "1"]).is_empty());
    assert!(strs(&mut con, &["ZRANGE", "z", "0", "-100"]).is_empty());
    assert_eq!(strs(&mut con, &["ZREVRANGE", "z", "0", "1"]), ["d", "c"]);
    assert_eq!(
        strs(&mut con, &["ZRANGE", "z", "1", "2", "REV"]),
        ["c", "b"]
    );
    let min = i64::MIN.to_string();
    let max = i64::MAX.to_string();
    assert_eq!(strs(&mut con, &["ZRANGE", "z", &min, &max]).len(), 4);
    assert!(strs(&mut con, &["ZRANGE", "z", &max, &min]).is_empty());
    assert_eq!(
        err(&mut con, &["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"]),
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
    );
    assert_eq!(
        err(&mut con, &["ZRANGE", "z", "a", "1"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut con, &["ZRANGE", "z", "0", "1", "BYSCORE", "BYLEX"]),
        "ERR syntax error"
    );
    assert!(strs(&mut con, &["ZRANGE", "nokey", "0", "-1"]).is_empty());
}

#[test]
fn score_ranges_with_exclusive_bounds_and_limits() {
    let (_s, mut con) = setup();
    cmd::<i64>(
        &mut con,
        &[
            "ZADD", "z", "-inf", "n", "1", "a", "2", "b", "3", "c", "inf", "p",
        ],
    );
    assert_eq!(
        strs(&mut con, &["ZRANGEBYSCORE", "z", "(1", "3"]),
        ["b", "c"]
    );
    assert_eq!(
        strs(&mut con, &["ZRANGEBYSCORE", "z", "1", "(3"]),
        ["a", "b"]
    );
    assert_eq!(
        strs(&mut con, &["ZRANGEBYSCORE", "z", "-inf", "+inf"]),
        ["n", "a", "b", "c", "p"]
    );
    assert_eq!(
        strs(
            &mut con,
            &["ZREVRANGEBYSCORE", "z", "+inf", "(1", "LIMIT", "1", "2"]
        ),
        ["c", "b"]
    );
    assert_eq!(
        strs(
            &mut con,
            &[
                "ZRANGE",
                "z",
                "(1",
                "+inf",
                "BYSCORE",
                "LIMIT",
                "1",
                "-1",
                "WITHSCORES"
            ]
        ),
        ["c", "3", "p", "inf"]
    );
    let min = i64::MIN.to_string();
    let max = i64::MAX.to_string();
    assert!(strs(
        &mut con,
        &["ZRANGEBYSCORE", "z", "-inf", "inf", "LIMIT", &min, "2"]
    )
    .is_empty());
    assert!(strs(
        &mut con,
        &["ZRANGEBYSCORE", "z", "-inf", "inf", "LIMIT", &max, "2"]
    )
    .is_empty());
    assert_eq!(
        strs(
            &mut con,
            &["ZRANGEBYSCORE", "z", "-inf", "inf", "LIMIT", "4", &max]
        ),
        ["p"]
    );
    assert!(strs(
        &mut con,
        &["ZRANGEBYSCORE", "z", "-inf", "inf", "LIMIT", "0", "0"]
    )
    .is_empty());
    assert!(strs(&mut con, &["ZRANGEBYSCORE", "z", "3", "1"]).is_empty());
    assert!(strs(&mut con, &["ZRANGEBYSCORE", "z", "(2", "(2"]).is_empty());
    assert_eq!(cmd::<i64>(&mut con, &["ZCOUNT", "z", "(1", "inf"]), 3);
    assert_eq!(cmd::<i64>(&mut con, &["ZCOUNT", "z", "-inf", "(-inf"]), 0);
    assert_eq!(
        err(&mut con, &["ZCOUNT", "z", "x", "1"]),
        "ERR min or max is not a float"
    );
    assert_eq!(
        err(&mut con, &["ZRANGEBYSCORE", "z", "(nan", "1"]),
        "ERR min or max is not a float"
    );
}

#[test]
fn lex_ranges_and_their_errors() {
    let (_s, mut con) = setup();
    cmd::<i64>(
        &mut con,
        &[
            "ZADD", "z", "0", "alpha", "0", "bar", "0", "cool", "0", "down", "0", "elephant",
        ],
    );
    assert_eq!(
        strs(&mut con, &["ZRANGEBYLEX", "z", "[bar", "(down"]),
        ["bar", "cool"]
    );
    assert_eq!(
        strs(
            &mut con,
            &["ZREVRANGEBYLEX", "z", "+", "(cool", "LIMIT", "1", "5"]
        ),
        ["down"]
    );
    assert_eq!(
        strs(&mut con, &["ZRANGE", "z", "-", "[b", "BYLEX"]),
        ["alpha"]
    );
    assert!(strs(&mut con, &["ZRANGEBYLEX", "z", "+", "-"]).is_empty());
    assert_eq!(
        cmd::<i64>(&mut con, &["ZLEXCOUNT", "z", "(alpha", "[down"]),
        3
    );
    assert_eq!(
        err(&mut con, &["ZRANGEBYLEX", "z", "bar", "+"]),
        "ERR min or max not valid string range item"
    );
    assert_eq!(
        err(&mut con, &["ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES"]),
        "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["ZREMRANGEBYLEX", "z", "[bar", "[cool"]),
        2
    );
    assert_eq!(
        strs(&mut con, &["ZRANGE", "z", "0", "-1"]),
        ["alpha", "down", "elephant"]
    );
}

#[test]
fn zremrange_removes_and_deletes_the_emptied_key() {
    let (_s, mut con) = setup();
    cmd::<i64>(
        &mut con,
        &[
            "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
        ],
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["ZREMRANGEBYSCORE", "z", "(1", "3"]),
        2
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["ZREMRANGEBYRANK", "z", "-1", "-1"]),
        1
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["ZREMRANGEBYRANK", "z", "5", "10"]),
        0
    );
    assert_eq!(strs(&mut con, &["ZRANGE", "z", "0", "-1"]), ["a", "d"]);
    assert_eq!(
        cmd::<i64>(&mut con, &["ZREMRANGEBYRANK", "z", "0", "-1"]),
        2
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "z"]), 0);
    assert_eq!(
        cmd::<i64>(&mut con, &["ZREMRANGEBYSCORE", "z", "0", "1"]),
        0
    );
    cmd::<i64>(&mut con, &["ZADD", "z", "1", "a", "2", "b"]);
    assert_eq!(cmd::<i64>(&mut con, &["ZREM", "z", "a", "x", "b"]), 2);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "z"]), 0);
}

#[test]
fn zrangestore_stores_or_deletes_the_destination() {
    let (_s, mut con) = setup();
    cmd::<i64>(
        &mut con,
        &["ZADD", "src", "1", "a", "2", "b", "3", "c", "4", "d"],
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["ZRANGESTORE", "dst", "src", "1", "2"]),
        2
    );
    assert_eq!(
        strs(&mut con, &["ZRANGE", "dst", "0", "-1", "WITHSCORES"]),
        ["b", "2", "c", "3"]
    );
    assert_eq!(
        cmd::<i64>(
            &mut con,
            &[
                "ZRANGESTORE",
                "dst",
                "src",
                "5",
                "(2",
                "BYSCORE",
                "REV",
                "LIMIT",
                "0",
                "2"
            ]
        ),
        2
    );
    assert_eq!(strs(&mut con, &["ZRANGE", "dst", "0", "-1"]), ["c", "d"]);
    assert_eq!(
        err(
            &mut con,
            &["ZRANGESTORE", "dst", "src", "0", "-1", "WITHSCORES"]
        ),
        "ERR syntax error"
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["ZRANGESTORE", "dst", "src", "10", "20"]),
        0
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "dst"]), 0);
    cmd::<String>(&mut con, &["SET", "dst", "string"]);
    assert_eq!(
        cmd::<i64>(&mut con, &["ZRANGESTORE", "dst", "missing", "0", "-1"]),
        0
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "dst"]), 0);
    // In place.
    assert_eq!(
        cmd::<i64>(&mut con, &["ZRANGESTORE", "src", "src", "0", "0"]),
        1
    );
    assert_eq!(strs(&mut con, &["ZRANGE", "src", "0", "-1"]), ["a"]);
}

#[test]
fn pops_reply_and_delete_like_redis() {
    let (_s, mut con) = setup();
    cmd::<i64>(
        &mut con,
        &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
    );
    assert_eq!(strs(&mut con, &["ZPOPMIN", "z"]), ["a", "1"]);
    assert_eq!(strs(&mut con, &["ZPOPMAX", "z", "2"]), ["d", "4", "c", "3"]);
    assert!(strs(&mut con, &["ZPOPMIN", "z", "0"]).is_empty());
    assert!(strs(&mut con, &["ZPOPMIN", "nokey"]).is_empty());
    assert_eq!(
        err(&mut con, &["ZPOPMIN", "z", "-1"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        err(&mut con, &["ZPOPMIN", "z", "1", "2"]),
        "ERR syntax error"
    );
    assert_eq!(strs(&mut con, &["ZPOPMIN", "z", "100"]), ["b", "2"]);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "z"]), 0);

    cmd::<i64>(&mut con, &["ZADD", "z2", "1", "a", "2", "b"]);
    let v: redis::Value = cmd(
        &mut con,
        &["ZMPOP", "2", "nokey", "z2", "MAX", "COUNT", "10"],
    );
    assert_eq!(
        format!("{v:?}"),
        format!(
            "{:?}",
            redis::Value::Array(vec![
                redis::Value::BulkString(b"z2".to_vec()),
                redis::Value::Array(vec![
                    redis::Value::Array(vec![
                        redis::Value::BulkString(b"b".to_vec()),
                        redis::Value::BulkString(b"2".to_vec())
                    ]),
                    redis::Value::Array(vec![
                        redis::Value::BulkString(b"a".to_vec()),
                        redis::Value::BulkString(b"1".to_vec())
                    ]),
                ]),
            ])
        )
    );
    assert_eq!(
        cmd::<redis::Value>(&mut con, &["ZMPOP", "1", "z2", "MIN"]),
        redis::Value::Nil
    );
    assert_eq!(
        err(&mut con, &["ZMPOP", "0", "z", "MIN"]),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        err(&mut con, &["ZMPOP", "1", "z", "MIN", "COUNT", "0"]),
        "ERR count should be greater than 0"
    );
    assert_eq!(
        err(&mut con, &["ZMPOP", "2", "z", "MIN"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["ZMPOP", &i64::MAX.to_string(), "z", "MIN"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["ZMPOP", "1", "z", "MID"]),
        "ERR syntax error"
    );
}

#[test]
fn zmpop_propagates_as_zpop_with_the_popped_count() {
    let (s, mut con) = setup();
    let _link = ferrite_tests::attach_replica(&s);
    cmd::<i64>(&mut con, &["ZADD", "z", "1", "a", "2", "b"]);
    let before = repl_offset(&mut con);
    cmd::<redis::Value>(&mut con, &["ZMPOP", "1", "z", "MIN", "COUNT", "10"]);
    assert_eq!(
        repl_offset(&mut con) - before,
        resp_len(&["ZPOPMIN", "z", "2"])
    );
    // Nothing popped, nothing propagated; a no-op ZADD neither.
    cmd::<i64>(&mut con, &["ZADD", "z", "1", "a"]);
    let before = repl_offset(&mut con);
    cmd::<redis::Value>(&mut con, &["ZPOPMIN", "nokey"]);
    cmd::<i64>(&mut con, &["ZADD", "z", "1", "a"]);
    cmd::<i64>(&mut con, &["ZREM", "z", "nope"]);
    cmd::<i64>(&mut con, &["ZREMRANGEBYSCORE", "z", "5", "6"]);
    assert_eq!(repl_offset(&mut con), before);
    // ZPOPMIN goes out as received; an empty STORE result as DEL.
    cmd::<redis::Value>(&mut con, &["ZPOPMIN", "z", "5"]);
    assert_eq!(
        repl_offset(&mut con) - before,
        resp_len(&["ZPOPMIN", "z", "5"])
    );
    cmd::<i64>(&mut con, &["ZADD", "d", "1", "a"]);
    let before = repl_offset(&mut con);
    cmd::<i64>(&mut con, &["ZUNIONSTORE", "d", "1", "nokey"]);
    assert_eq!(repl_offset(&mut con) - before, resp_len(&["DEL", "d"]));
}

#[test]
fn zrandmember_counts_follow_redis() {
    let (_s, mut con) = setup();
    for (key, member_len) in [("small", 1usize), ("big", 70)] {
        for i in 0..10 {
            let m = format!("{i}{}", "x".repeat(member_len));
            cmd::<i64>(&mut con, &["ZADD", key, &i.to_string(), &m]);
        }
        let all: Vec<String> = strs(&mut con, &["ZRANGE", key, "0", "-1"]);
        let picked = strs(&mut con, &["ZRANDMEMBER", key, "5"]);
        assert_eq!(picked.len(), 5);
        let mut uniq = picked.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(
            uniq.len(),
            5,
            "{key}: distinct members for a positive count"
        );
        assert!(picked.iter().all(|m| all.contains(m)));
        assert_eq!(strs(&mut con, &["ZRANDMEMBER", key, "100"]), all);
        let many = strs(&mut con, &["ZRANDMEMBER", key, "-50"]);
        assert_eq!(many.len(), 50);
        assert!(many.iter().all(|m| all.contains(m)));
        let with = strs(&mut con, &["ZRANDMEMBER", key, "-3", "WITHSCORES"]);
        assert_eq!(with.len(), 6);
        for pair in with.chunks(2) {
            let score: String = cmd(&mut con, &["ZSCORE", key, &pair[0]]);
            assert_eq!(pair[1], score);
        }
        let one: String = cmd(&mut con, &["ZRANDMEMBER", key]);
        assert!(all.contains(&one));
    }
    assert!(strs(&mut con, &["ZRANDMEMBER", "small", "0"]).is_empty());
    assert!(strs(&mut con, &["ZRANDMEMBER", "nokey", "5"]).is_empty());
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["ZRANDMEMBER", "nokey"]),
        None
    );
    assert_eq!(
        err(&mut con, &["ZRANDMEMBER", "small", &i64::MIN.to_string()]),
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    assert_eq!(
        err(
            &mut con,
            &["ZRANDMEMBER", "small", "-9223372036854770000", "WITHSCORES"]
        ),
        "ERR value is out of range"
    );
    assert_eq!(
        err(&mut con, &["ZRANDMEMBER", "small", "1", "SCORES"]),
        "ERR syntax error"
    );
}

#[test]
fn union_inter_diff_with_weights_and_aggregates() {
    let (_s, mut con) = setup();
    cmd::<i64>(&mut con, &["ZADD", "a", "1", "x", "2", "y", "3", "z"]);
    cmd::<i64>(&mut con, &["ZADD", "b", "10", "y", "20", "z", "30", "w"]);
    assert_eq!(
        strs(&mut con, &["ZUNION", "2", "a", "b", "WITHSCORES"]),
        ["x", "1", "y", "12", "z", "23", "w", "30"]
    );
    assert_eq!(
        strs(
            &mut con,
            &[
                "ZUNION",
                "2",
                "a",
                "b",
                "WEIGHTS",
                "2",
                "0.5",
                "AGGREGATE",
                "MAX",
                "WITHSCORES"
            ]
        ),
        ["x", "2", "y", "5", "z", "10", "w", "15"]
    );
    assert_eq!(
        strs(
            &mut con,
            &["ZINTER", "2", "a", "b", "AGGREGATE", "MIN", "WITHSCORES"]
        ),
        ["y", "2", "z", "3"]
    );
    assert_eq!(
        strs(&mut con, &["ZDIFF", "2", "a", "b", "WITHSCORES"]),
        ["x", "1"]
    );
    assert_eq!(cmd::<i64>(&mut con, &["ZINTERCARD", "2", "a", "b"]), 2);
    assert_eq!(
        cmd::<i64>(&mut con, &["ZINTERCARD", "2", "a", "b", "LIMIT", "1"]),
        1
    );
    assert_eq!(
        err(&mut con, &["ZINTERCARD", "2", "a", "b", "LIMIT", "-1"]),
        "ERR LIMIT can't be negative"
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["ZINTERSTORE", "dst", "2", "a", "b"]),
        2
    );
    assert_eq!(
        strs(&mut con, &["ZRANGE", "dst", "0", "-1", "WITHSCORES"]),
        ["y", "12", "z", "23"]
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["ZDIFFSTORE", "dst", "2", "a", "a"]),
        0
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "dst"]), 0);
    // inf * 0 and inf + -inf are 0, never NaN.
    cmd::<i64>(&mut con, &["ZADD", "i", "inf", "m"]);
    cmd::<i64>(&mut con, &["ZADD", "n", "-inf", "m"]);
    assert_eq!(
        strs(&mut con, &["ZUNION", "2", "i", "n", "WITHSCORES"]),
        ["m", "0"]
    );
    assert_eq!(
        strs(
            &mut con,
            &["ZUNION", "1", "i", "WEIGHTS", "0", "WITHSCORES"]
        ),
        ["m", "0"]
    );
    assert_eq!(
        err(&mut con, &["ZUNION", "0", "a"]),
        "ERR at least 1 input key is needed for 'zunion' command"
    );
    assert_eq!(
        err(&mut con, &["ZUNIONSTORE", "d", "0", "a"]),
        "ERR at least 1 input key is needed for 'zunionstore' command"
    );
    assert_eq!(
        err(&mut con, &["ZUNION", "3", "a", "b"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["ZUNION", "2", "a", "b", "WEIGHTS", "1", "x"]),
        "ERR weight value is not a float"
    );
    assert_eq!(
        err(&mut con, &["ZDIFF", "1", "a", "WEIGHTS", "1"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["ZUNIONSTORE", "d", "1", "a", "WITHSCORES"]),
        "ERR syntax error"
    );
    // Type errors come before option errors, as Redis looks keys up first.
    cmd::<String>(&mut con, &["SET", "s", "v"]);
    assert!(err(&mut con, &["ZUNION", "2", "a", "s", "AGGREGATE", "bad"]).starts_with("WRONGTYPE"));
}

#[test]
fn zscan_returns_every_member_in_both_encodings() {
    let (_s, mut con) = setup();
    for i in 0..5 {
        cmd::<i64>(
            &mut con,
            &["ZADD", "small", &i.to_string(), &format!("m{i}")],
        );
    }
    for i in 0..1000 {
        cmd::<i64>(&mut con, &["ZADD", "big", &i.to_string(), &format!("m{i}")]);
    }
    assert_eq!(encoding(&mut con, "small"), "listpack");
    assert_eq!(encoding(&mut con, "big"), "skiplist");
    for (key, n) in [("small", 5), ("big", 1000)] {
        let mut seen = std::collections::HashMap::new();
        let mut cursor = "0".to_string();
        loop {
            let (next, items): (String, Vec<String>) =
                cmd(&mut con, &["ZSCAN", key, &cursor, "COUNT", "50"]);
            for pair in items.chunks(2) {
                seen.insert(pair[0].clone(), pair[1].clone());
            }
            cursor = next;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), n, "{key}");
        assert_eq!(seen["m3"], "3");
    }
    let (_, items): (String, Vec<String>) = cmd(&mut con, &["ZSCAN", "small", "0", "MATCH", "*2"]);
    assert_eq!(items, ["m2", "2"]);
    assert_eq!(err(&mut con, &["ZSCAN", "big", "x"]), "ERR invalid cursor");
    assert_eq!(
        err(&mut con, &["ZSCAN", "big", "0", "COUNT", "0"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut con, &["ZSCAN", "big", "0", "TYPE", "zset"]),
        "ERR syntax error"
    );
    let (c, items): (String, Vec<String>) = cmd(&mut con, &["ZSCAN", "nokey", "0", "COUNT", "0"]);
    assert_eq!((c.as_str(), items.len()), ("0", 0));
}

#[test]
fn encodings_convert_at_redis_thresholds() {
    let (_s, mut con) = setup();
    for i in 0..128 {
        cmd::<i64>(&mut con, &["ZADD", "z", &i.to_string(), &format!("m{i}")]);
    }
    assert_eq!(encoding(&mut con, "z"), "listpack");
    cmd::<i64>(&mut con, &["ZADD", "z", "200", "one-more"]);
    assert_eq!(encoding(&mut con, "z"), "skiplist");
    // Removing members never converts back...
    cmd::<i64>(&mut con, &["ZREMRANGEBYRANK", "z", "0", "-3"]);
    assert_eq!(encoding(&mut con, "z"), "skiplist");
    // ...but a STORE result that fits is a listpack.
    cmd::<i64>(&mut con, &["ZUNIONSTORE", "u", "1", "z"]);
    assert_eq!(encoding(&mut con, "u"), "listpack");
    let long = "x".repeat(65);
    cmd::<i64>(&mut con, &["ZADD", "l", "1", &long]);
    assert_eq!(encoding(&mut con, "l"), "skiplist");
    cmd::<i64>(&mut con, &["ZADD", "s", "1", "a"]);
    cmd::<i64>(&mut con, &["ZADD", "s", "1", &long]);
    assert_eq!(encoding(&mut con, "s"), "skiplist");
    let _: String = cmd(
        &mut con,
        &["CONFIG", "SET", "zset-max-ziplist-entries", "0"],
    );
    cmd::<i64>(&mut con, &["ZADD", "zero", "1", "a"]);
    assert_eq!(encoding(&mut con, "zero"), "skiplist");
    let _: String = cmd(
        &mut con,
        &["CONFIG", "SET", "zset-max-listpack-entries", "1"],
    );
    cmd::<i64>(&mut con, &["ZADD", "src", "1", "a", "2", "b"]);
    cmd::<i64>(&mut con, &["ZRANGESTORE", "dst", "src", "0", "-1"]);
    assert_eq!(encoding(&mut con, "dst"), "skiplist");
}

#[test]
fn large_sets_keep_ranks_and_ranges_consistent() {
    let (_s, mut con) = setup();
    let n = 3000;
    let mut pipe = redis::pipe();
    for i in 0..n {
        // Scores with ties, members out of order.
        pipe.cmd("ZADD")
            .arg("z")
            .arg((i * 7919) % 97)
            .arg(format!("m{:05}", (i * 31) % n));
    }
    pipe.query::<()>(&mut con).unwrap();
    assert_eq!(cmd::<i64>(&mut con, &["ZCARD", "z"]), n as i64);
    let all = strs(&mut con, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]);
    let pairs: Vec<(f64, String)> = all
        .chunks(2)
        .map(|p| (p[1].parse().unwrap(), p[0].clone()))
        .collect();
    let mut sorted = pairs.clone();
    sorted.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
    assert_eq!(pairs, sorted);
    for probe in [0usize, 1, 1234, n - 1] {
        let m = &pairs[probe].1;
        assert_eq!(cmd::<i64>(&mut con, &["ZRANK", "z", m]), probe as i64);
        assert_eq!(
            cmd::<i64>(&mut con, &["ZREVRANK", "z", m]),
            (n - 1 - probe) as i64
        );
        let at = strs(
            &mut con,
            &["ZRANGE", "z", &probe.to_string(), &probe.to_string()],
        );
        assert_eq!(&at[0], m);
    }
    let count: i64 = cmd(&mut con, &["ZCOUNT", "z", "10", "(20"]);
    assert_eq!(
        count as usize,
        pairs.iter().filter(|p| p.0 >= 10.0 && p.0 < 20.0).count()
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["ZREMRANGEBYSCORE", "z", "10", "(20"]),
        count
    );
    assert_eq!(cmd::<i64>(&mut con, &["ZCARD", "z"]), n as i64 - count);
}

#[test]
fn every_command_refuses_a_key_of_another_type() {
    let (_s, mut con) = setup();
    cmd::<String>(&mut con, &["SET", "s", "v"]);
    for args in [
        &["ZADD", "s", "1", "a"][..],
        &["ZINCRBY", "s", "1", "a"],
        &["ZREM", "s", "a"],
        &["ZCARD", "s"],
        &["ZSCORE", "s", "a"],
        &["ZMSCORE", "s", "a"],
        &["ZCOUNT", "s", "0", "1"],
        &["ZLEXCOUNT", "s", "-", "+"],
        &["ZRANK", "s", "a"],
        &["ZRANGE", "s", "0", "1"],
        &["ZRANGESTORE", "d", "s", "0", "1"],
        &["ZRANGEBYSCORE", "s", "0", "1"],
        &["ZREVRANGEBYLEX", "s", "+", "-"],
        &["ZREMRANGEBYRANK", "s", "0", "1"],
        &["ZPOPMIN", "s"],
        &["ZMPOP", "1", "s", "MIN"],
        &["ZRANDMEMBER", "s"],
        &["ZRANDMEMBER", "s", "2"],
        &["ZUNIONSTORE", "d", "1", "s"],
        &["ZINTERCARD", "1", "s"],
        &["ZSCAN", "s", "0"],
    ] {
        assert_eq!(
            err(&mut con, args),
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "{args:?}"
        );
    }
    assert_eq!(cmd::<String>(&mut con, &["GET", "s"]), "v");
}

#[test]
fn resp3_replies_use_doubles_and_nested_pairs() {
    let server = TestServer::start();
    let mut c = server.raw_conn();
    c.hello3();
    c.send(b"ZADD z 1.5 a 2 b\r\nZRANGE z 0 -1 WITHSCORES\r\nZSCORE z a\r\nZPOPMIN z 1\r\nZPOPMAX z\r\nZSCORE z nope\r\n");
    let got = text(&c.read_idle());
    assert_eq!(
        got,
        ":2\r\n*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,2\r\n,1.5\r\n*1\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,2\r\n_\r\n"
    );
}
