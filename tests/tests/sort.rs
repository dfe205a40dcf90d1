//! SORT and SORT_RO: numeric and ALPHA order, LIMIT clamping, BY and GET
//! patterns (`*`, `#`, `->`), BY nosort, STORE into a list, errors.
//!
//! Inputs are built with sets; lists come from `SORT ... STORE`, so the
//! list code paths (native order under BY nosort) are covered without the
//! list commands. Hash and sorted-set inputs are exercised when the server
//! has HSET / ZADD.

use ferrite_tests::{cmd, err, resp, TestServer};
use redis::Connection;

fn setup() -> (TestServer, Connection) {
    let server = TestServer::start();
    let con = server.client();
    (server, con)
}

fn sadd(con: &mut Connection, key: &str, items: &[&str]) {
    let mut args = vec!["SADD", key];
    args.extend_from_slice(items);
    let _: i64 = cmd(con, &args);
}

fn sort(con: &mut Connection, args: &[&str]) -> Vec<String> {
    let mut a = vec!["SORT"];
    a.extend_from_slice(args);
    cmd(con, &a)
}

/// Whether the server knows a command (families are added independently).
fn has_command(con: &mut Connection, name: &str) -> bool {
    let info: Vec<redis::Value> = cmd(con, &["COMMAND", "INFO", name]);
    !matches!(info.first(), None | Some(redis::Value::Nil))
}

#[test]
fn numeric_sort_orders_by_value_and_breaks_ties_by_bytes() {
    let (_s, mut con) = setup();
    sadd(
        &mut con,
        "s",
        &["10", "9", "-2", "1.5", "1e1", "01", "1", "inf", "-inf"],
    );
    assert_eq!(
        sort(&mut con, &["s"]),
        ["-inf", "-2", "01", "1", "1.5", "9", "10", "1e1", "inf"]
    );
    assert_eq!(
        sort(&mut con, &["s", "DESC"]),
        ["inf", "1e1", "10", "9", "1.5", "1", "01", "-2", "-inf"]
    );
    assert_eq!(
        sort(&mut con, &["s", "ALPHA"]),
        ["-2", "-inf", "01", "1", "1.5", "10", "1e1", "9", "inf"]
    );
}

#[test]
fn limit_is_clamped_like_redis() {
    let (_s, mut con) = setup();
    sadd(&mut con, "s", &["1", "2", "3", "4", "5"]);
    assert_eq!(sort(&mut con, &["s", "LIMIT", "1", "2"]), ["2", "3"]);
    assert_eq!(sort(&mut con, &["s", "LIMIT", "-10", "2"]), ["1", "2"]);
    assert_eq!(sort(&mut con, &["s", "LIMIT", "3", "-1"]), ["4", "5"]);
    assert_eq!(
        sort(&mut con, &["s", "LIMIT", "2", "9223372036854775807"]),
        ["3", "4", "5"]
    );
    assert!(sort(&mut con, &["s", "LIMIT", "5", "1"]).is_empty());
    assert!(sort(&mut con, &["s", "LIMIT", "0", "0"]).is_empty());
    assert_eq!(
        sort(&mut con, &["s", "DESC", "LIMIT", "0", "2"]),
        ["5", "4"]
    );
    assert!(sort(&mut con, &["missing", "LIMIT", "0", "10"]).is_empty());
}

#[test]
fn bad_doubles_are_an_error_unless_alpha() {
    let (_s, mut con) = setup();
    sadd(&mut con, "s", &["1", "2", "not-a-double"]);
    let msg = "ERR One or more scores can't be converted into double";
    assert_eq!(err(&mut con, &["SORT", "s"]), msg);
    assert_eq!(sort(&mut con, &["s", "ALPHA"]), ["1", "2", "not-a-double"]);
    // A BY weight that is not a double fails too; a missing weight is 0.
    sadd(&mut con, "n", &["1", "2", "3"]);
    let _: () = cmd(&mut con, &["MSET", "w_1", "10", "w_2", "x"]);
    assert_eq!(err(&mut con, &["SORT", "n", "BY", "w_*"]), msg);
    let _: () = cmd(&mut con, &["SET", "w_2", "-5"]);
    assert_eq!(sort(&mut con, &["n", "BY", "w_*"]), ["2", "3", "1"]);
    // NaN is refused, as strtod gives it and Redis rejects it.
    let _: () = cmd(&mut con, &["SET", "w_3", "nan"]);
    assert_eq!(err(&mut con, &["SORT", "n", "BY", "w_*"]), msg);
    // The error wins over STORE: nothing is stored.
    assert_eq!(
        err(&mut con, &["SORT", "n", "BY", "w_*", "STORE", "d"]),
        msg
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "d"]), 0);
}

#[test]
fn by_and_get_patterns() {
    let (_s, mut con) = setup();
    sadd(&mut con, "s", &["a", "b", "c"]);
    let _: () = cmd(
        &mut con,
        &[
            "MSET", "w_a", "3", "w_b", "1", "w_c", "2", "n_a", "A", "n_c", "C",
        ],
    );
    assert_eq!(sort(&mut con, &["s", "BY", "w_*"]), ["b", "c", "a"]);
    assert_eq!(sort(&mut con, &["s", "BY", "w_*", "DESC"]), ["a", "c", "b"]);
    assert_eq!(
        sort(&mut con, &["s", "BY", "w_*", "LIMIT", "1", "1"]),
        ["c"]
    );
    // GET: # is the element, a missing key is nil, a constant is always nil.
    let got: Vec<Option<String>> = cmd(
        &mut con,
        &[
            "SORT", "s", "BY", "w_*", "GET", "#", "GET", "n_*", "GET", "const",
        ],
    );
    let want = [
        Some("b"),
        None,
        None,
        Some("c"),
        Some("C"),
        None,
        Some("a"),
        Some("A"),
        None,
    ];
    assert_eq!(got, want.map(|x| x.map(String::from)));
    // BY ALPHA compares the weights as strings; missing weights sort first.
    let _: () = cmd(&mut con, &["MSET", "t_a", "b10", "t_b", "b9"]);
    assert_eq!(
        sort(&mut con, &["s", "BY", "t_*", "ALPHA"]),
        ["c", "a", "b"]
    );
    // Only the first * is replaced.
    let _: () = cmd(&mut con, &["SET", "x_b_*", "1"]);
    let got: Vec<Option<String>> = cmd(&mut con, &["SORT", "s", "ALPHA", "GET", "x_*_*"]);
    assert_eq!(got, [None, Some("1".to_string()), None]);
    // A weight of another type counts as missing.
    let _: () = cmd(&mut con, &["DEL", "w_c"]);
    sadd(&mut con, "w_c", &["x"]);
    assert_eq!(sort(&mut con, &["s", "BY", "w_*"]), ["c", "b", "a"]);
}

#[test]
fn arrow_patterns_without_a_field_read_a_plain_key() {
    let (_s, mut con) = setup();
    sadd(&mut con, "s", &["a"]);
    let _: () = cmd(&mut con, &["SET", "x:a->", "100"]);
    let got: Vec<String> = cmd(&mut con, &["SORT", "s", "BY", "num", "GET", "x:*->"]);
    assert_eq!(got, ["100"]);
    let got: Vec<String> = cmd(&mut con, &["SORT_RO", "s", "BY", "nosort", "GET", "x:*->"]);
    assert_eq!(got, ["100"]);
    // With a field, a string key is the wrong type: nil.
    let _: () = cmd(&mut con, &["SET", "x:a", "str"]);
    let got: Vec<Option<String>> = cmd(&mut con, &["SORT", "s", "BY", "nosort", "GET", "x:*->f"]);
    assert_eq!(got, [None]);
}

#[test]
fn hash_fields_as_weights_and_values() {
    let (_s, mut con) = setup();
    if !has_command(&mut con, "hset") {
        eprintln!("skipped: this server has no HSET yet");
        return;
    }
    sadd(&mut con, "s", &["1", "2", "3"]);
    for (id, w) in [("1", "30"), ("2", "10"), ("3", "20")] {
        let _: i64 = cmd(
            &mut con,
            &[
                "HSET",
                &format!("o_{id}"),
                "w",
                w,
                "name",
                &format!("n{id}"),
            ],
        );
    }
    assert_eq!(sort(&mut con, &["s", "BY", "o_*->w"]), ["2", "3", "1"]);
    let got: Vec<Option<String>> = cmd(
        &mut con,
        &[
            "SORT",
            "s",
            "BY",
            "o_*->w",
            "GET",
            "o_*->name",
            "GET",
            "o_*->nofield",
        ],
    );
    let want = [Some("n2"), None, Some("n3"), None, Some("n1"), None];
    assert_eq!(got, want.map(|x| x.map(String::from)));
}

#[test]
fn sorted_sets_sort_and_keep_their_order_under_nosort() {
    let (_s, mut con) = setup();
    if !has_command(&mut con, "zadd") {
        eprintln!("skipped: this server has no ZADD yet");
        return;
    }
    for (score, m) in [("1", "a"), ("5", "b"), ("2", "c"), ("10", "d"), ("3", "e")] {
        let _: i64 = cmd(&mut con, &["ZADD", "z", score, m]);
    }
    assert_eq!(
        sort(&mut con, &["z", "ALPHA", "DESC"]),
        ["e", "d", "c", "b", "a"]
    );
    assert_eq!(
        sort(&mut con, &["z", "BY", "nosort"]),
        ["a", "c", "e", "b", "d"]
    );
    assert_eq!(
        sort(&mut con, &["z", "BY", "nosort", "DESC"]),
        ["d", "b", "e", "c", "a"]
    );
    assert_eq!(
        sort(&mut con, &["z", "BY", "nosort", "DESC", "LIMIT", "1", "2"]),
        ["b", "e"]
    );
    assert_eq!(
        sort(&mut con, &["z", "BY", "nosort", "LIMIT", "-10", "100"]),
        ["a", "c", "e", "b", "d"]
    );
}

#[test]
fn store_makes_a_list_and_lists_keep_native_order_under_nosort() {
    let (_s, mut con) = setup();
    sadd(&mut con, "s", &["5", "3", "4", "1", "2"]);
    let _: () = cmd(
        &mut con,
        &[
            "MSET", "w_1", "5", "w_2", "4", "w_3", "3", "w_4", "2", "w_5", "1",
        ],
    );
    let _: () = cmd(&mut con, &["SET", "l", "old", "EX", "100"]);
    assert_eq!(
        cmd::<i64>(&mut con, &["SORT", "s", "BY", "w_*", "STORE", "l"]),
        5
    );
    assert_eq!(cmd::<String>(&mut con, &["TYPE", "l"]), "list");
    assert_eq!(
        cmd::<String>(&mut con, &["OBJECT", "ENCODING", "l"]),
        "quicklist"
    );
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "l"]), -1);

    // The list is [5 4 3 2 1]: BY nosort keeps that order, DESC reverses it,
    // LIMIT counts in that direction.
    assert_eq!(
        sort(&mut con, &["l", "BY", "nosort"]),
        ["5", "4", "3", "2", "1"]
    );
    assert_eq!(
        sort(&mut con, &["l", "BY", "nosort", "DESC"]),
        ["1", "2", "3", "4", "5"]
    );
    assert_eq!(
        sort(&mut con, &["l", "BY", "nosort", "LIMIT", "1", "2"]),
        ["4", "3"]
    );
    assert_eq!(
        sort(&mut con, &["l", "BY", "nosort", "DESC", "LIMIT", "1", "2"]),
        ["2", "3"]
    );
    assert!(sort(&mut con, &["l", "BY", "nosort", "LIMIT", "5", "2"]).is_empty());
    // Sorting the list itself.
    assert_eq!(sort(&mut con, &["l"]), ["1", "2", "3", "4", "5"]);
    assert_eq!(
        sort(&mut con, &["l", "LIMIT", "0", "2", "DESC"]),
        ["5", "4"]
    );
    // Storing a list into another, with BY nosort and a LIMIT.
    assert_eq!(
        cmd::<i64>(
            &mut con,
            &["SORT", "l", "BY", "nosort", "LIMIT", "0", "3", "STORE", "l2"]
        ),
        3
    );
    assert_eq!(sort(&mut con, &["l2", "BY", "nosort"]), ["5", "4", "3"]);
}

#[test]
fn store_with_get_stores_empty_strings_for_missing_values() {
    let (_s, mut con) = setup();
    sadd(&mut con, "s", &["1", "2"]);
    let _: () = cmd(&mut con, &["SET", "v_2", "two"]);
    assert_eq!(
        cmd::<i64>(
            &mut con,
            &["SORT", "s", "GET", "#", "GET", "v_*", "STORE", "d"]
        ),
        4
    );
    assert_eq!(
        sort(&mut con, &["d", "BY", "nosort"]),
        ["1", "", "2", "two"]
    );
}

#[test]
fn a_set_under_by_nosort_is_sorted_alphabetically_when_stored() {
    let (_s, mut con) = setup();
    sadd(&mut con, "s", &["b", "aa", "c", "a", "azz", "aaa"]);
    assert_eq!(
        cmd::<i64>(&mut con, &["SORT", "s", "BY", "_", "STORE", "d"]),
        6
    );
    assert_eq!(
        sort(&mut con, &["d", "BY", "nosort"]),
        ["a", "aa", "aaa", "azz", "b", "c"]
    );
    // Without STORE an intset comes out in its (ascending) order.
    sadd(&mut con, "i", &["3", "1", "2"]);
    assert_eq!(sort(&mut con, &["i", "BY", "nosort"]), ["1", "2", "3"]);
    assert_eq!(
        sort(&mut con, &["i", "BY", "nosort", "DESC"]),
        ["1", "2", "3"]
    );
}

#[test]
fn empty_results_do_not_create_and_do_delete_the_destination() {
    let (_s, mut con) = setup();
    assert_eq!(cmd::<i64>(&mut con, &["SORT", "missing", "STORE", "d"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "d"]), 0);
    sadd(&mut con, "s", &["x"]);
    assert_eq!(
        cmd::<i64>(
            &mut con,
            &["SORT", "s", "ALPHA", "LIMIT", "10", "10", "STORE", "d"]
        ),
        0
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "d"]), 0);
    let _: () = cmd(&mut con, &["SET", "d", "old"]);
    assert_eq!(cmd::<i64>(&mut con, &["SORT", "missing", "STORE", "d"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "d"]), 0);
}

#[test]
fn errors() {
    let (_s, mut con) = setup();
    let _: () = cmd(&mut con, &["SET", "str", "x"]);
    sadd(&mut con, "s", &["1"]);
    assert_eq!(
        err(&mut con, &["SORT", "str"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        err(&mut con, &["SORT_RO", "s", "STORE", "d"]),
        "ERR syntax error"
    );
    assert_eq!(err(&mut con, &["SORT", "s", "FOO"]), "ERR syntax error");
    assert_eq!(
        err(&mut con, &["SORT", "s", "LIMIT", "1"]),
        "ERR syntax error"
    );
    assert_eq!(err(&mut con, &["SORT", "s", "BY"]), "ERR syntax error");
    assert_eq!(err(&mut con, &["SORT", "s", "STORE"]), "ERR syntax error");
    assert_eq!(
        err(&mut con, &["SORT", "s", "LIMIT", "x", "1"]),
        "ERR value is not an integer or out of range"
    );
    // Options are parsed before the key is read.
    assert_eq!(err(&mut con, &["SORT", "str", "FOO"]), "ERR syntax error");
    assert_eq!(
        sort(&mut con, &["s", "asc", "ASC", "desc", "DESC", "alpha"]),
        ["1"]
    );
}

#[test]
fn store_propagates_as_received_and_plain_sort_does_not() {
    let (server, mut con) = setup();
    let _link = ferrite_tests::attach_replica(&server);
    let offset = |con: &mut Connection| -> i64 {
        let info: String = cmd(con, &["INFO", "replication"]);
        info.lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("master_repl_offset")
    };
    sadd(&mut con, "s", &["2", "1"]);
    let o = offset(&mut con);
    sort(&mut con, &["s"]);
    cmd::<i64>(&mut con, &["SORT", "missing", "STORE", "d"]);
    assert_eq!(offset(&mut con), o);
    cmd::<i64>(&mut con, &["SORT", "s", "STORE", "d"]);
    let stream = resp(&[b"SORT", b"s", b"STORE", b"d"]);
    assert_eq!(offset(&mut con), o + stream.len() as i64);
    drop(server);
}
