//! Keyspace commands: existence, types, renames, moves, patterns, SCAN,
//! expiry (lazy and active), flushing and encodings.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ferrite_tests::{cmd, err, TestServer};
use redis::Connection;

fn setup() -> (TestServer, Connection) {
    let server = TestServer::start();
    let con = server.client();
    (server, con)
}

#[test]
fn del_and_exists_count_keys() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["MSET", "a", "1", "b", "2", "c", "3"]);
    assert_eq!(cmd::<i64>(&mut con, &["DEL", "a", "b", "nope"]), 2);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "c", "c", "nope"]), 2);
}

#[test]
fn type_names_the_value_kind() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["SET", "s", "1"]);
    assert_eq!(cmd::<String>(&mut con, &["TYPE", "s"]), "string");
    assert_eq!(cmd::<String>(&mut con, &["TYPE", "nope"]), "none");
}

#[test]
fn rename_moves_the_value_and_fails_on_a_missing_key() {
    let (_s, mut con) = setup();
    assert_eq!(err(&mut con, &["RENAME", "nope", "x"]), "ERR no such key");
    let _: String = cmd(&mut con, &["SET", "c", "3"]);
    assert_eq!(cmd::<String>(&mut con, &["RENAME", "c", "d"]), "OK");
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["GET", "d"]).as_deref(),
        Some("3")
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "c"]), 0);
    assert_eq!(cmd::<String>(&mut con, &["RENAME", "d", "d"]), "OK");
    let _: String = cmd(&mut con, &["SET", "e", "x"]);
    assert_eq!(cmd::<i64>(&mut con, &["RENAMENX", "d", "e"]), 0);
}

#[test]
fn copy_copies_and_respects_replace_and_db() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["SET", "d", "3"]);
    assert_eq!(cmd::<i64>(&mut con, &["COPY", "d", "e"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["COPY", "d", "e"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["COPY", "d", "e", "REPLACE"]), 1);
    assert_eq!(
        err(&mut con, &["COPY", "d", "e", "DB", "16"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        err(&mut con, &["COPY", "d", "d"]),
        "ERR source and destination objects are the same"
    );
    assert_eq!(cmd::<i64>(&mut con, &["COPY", "d", "d", "DB", "1"]), 1);
    let _: String = cmd(&mut con, &["SELECT", "1"]);
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["GET", "d"]).as_deref(),
        Some("3")
    );
}

#[test]
fn move_transfers_a_key_to_another_database() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["SET", "d", "1"]);
    assert_eq!(cmd::<i64>(&mut con, &["MOVE", "d", "1"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["MOVE", "d", "1"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["MOVE", "nope", "1"]), 0);
    assert_eq!(
        err(&mut con, &["MOVE", "d", "0"]),
        "ERR source and destination objects are the same"
    );
    assert_eq!(
        err(&mut con, &["MOVE", "d", "99"]),
        "ERR DB index is out of range"
    );
    // Target already has the key: not moved.
    let _: String = cmd(&mut con, &["SET", "d", "2"]);
    assert_eq!(cmd::<i64>(&mut con, &["MOVE", "d", "1"]), 0);
    let _: String = cmd(&mut con, &["SELECT", "1"]);
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["GET", "d"]).as_deref(),
        Some("1")
    );
}

#[test]
fn keys_matches_glob_patterns() {
    let (_s, mut con) = setup();
    let _: String = cmd(
        &mut con,
        &[
            "MSET", "one", "1", "hello", "1", "hallo", "1", "hxllo", "1", "hllo", "1", "heeeello",
            "1",
        ],
    );
    let keys = |con: &mut Connection, p: &str| {
        let mut v: Vec<String> = cmd(con, &["KEYS", p]);
        v.sort();
        v
    };
    assert_eq!(keys(&mut con, "h?llo"), ["hallo", "hello", "hxllo"]);
    assert_eq!(
        keys(&mut con, "h*llo"),
        ["hallo", "heeeello", "hello", "hllo", "hxllo"]
    );
    assert_eq!(keys(&mut con, "h[ae]llo"), ["hallo", "hello"]);
    assert_eq!(keys(&mut con, "h[^e]llo"), ["hallo", "hxllo"]);
    assert_eq!(keys(&mut con, "*").len(), 6);
}

#[test]
fn scan_full_iteration_returns_every_key_with_match_and_count() {
    let (_s, mut con) = setup();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(i).ignore();
    }
    for i in 0..100 {
        pipe.cmd("SET").arg(format!("other:{i}")).arg(i).ignore();
    }
    let () = pipe.query(&mut con).expect("fill");
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut rounds = 0;
    loop {
        let (next, batch): (String, Vec<String>) = cmd(
            &mut con,
            &["SCAN", &cursor, "MATCH", "key:*", "COUNT", "37"],
        );
        for k in batch {
            assert!(k.starts_with("key:"), "MATCH let {k} through");
            seen.insert(k);
        }
        rounds += 1;
        assert!(rounds < 10_000, "SCAN does not terminate");
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 1000);
    assert!(rounds > 1, "COUNT 37 should need several rounds");
    assert_eq!(err(&mut con, &["SCAN", "x"]), "ERR invalid cursor");
    assert_eq!(err(&mut con, &["SCAN", "0", "FOO"]), "ERR syntax error");
}

#[test]
fn expire_options_nx_xx_gt_lt_behave_like_redis() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["SET", "t", "v"]);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "t", "100", "XX"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "t", "100", "GT"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "t", "100", "NX"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "t", "200", "NX"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "t", "50", "GT"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "t", "200", "GT"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "t", "300", "LT"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "t", "100", "LT"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "t"]), 100);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "t", "100", "XX"]), 1);
    assert_eq!(
        err(&mut con, &["EXPIRE", "t", "100", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut con, &["EXPIRE", "t", "100", "GT", "LT"]),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut con, &["EXPIRE", "t", "100", "FOO"]),
        "ERR Unsupported option FOO"
    );
    assert_eq!(
        err(&mut con, &["EXPIRE", "t", "x"]),
        "ERR value is not an integer or out of range"
    );
}

#[test]
fn ttl_and_pttl_are_minus_two_for_missing_and_minus_one_for_persistent() {
    let (_s, mut con) = setup();
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "nope"]), -2);
    assert_eq!(cmd::<i64>(&mut con, &["PTTL", "nope"]), -2);
    let _: String = cmd(&mut con, &["SET", "t", "v"]);
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "t"]), -1);
    assert_eq!(cmd::<i64>(&mut con, &["PTTL", "t"]), -1);
}

#[test]
fn persist_removes_a_ttl_once() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["SET", "t", "v", "EX", "100"]);
    assert_eq!(cmd::<i64>(&mut con, &["PERSIST", "t"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["PERSIST", "t"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "t"]), -1);
    assert_eq!(cmd::<i64>(&mut con, &["PERSIST", "nope"]), 0);
}

#[test]
fn expire_with_a_negative_time_deletes_the_key() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["SET", "t", "v"]);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "t", "-1"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "t"]), 0);
}

#[test]
fn an_expired_key_is_not_returned_when_read() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["SET", "k", "v", "PX", "50"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "k"]), None);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "k"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "k"]), -2);
}

#[test]
fn active_expiry_removes_keys_that_are_never_read() {
    let (_s, mut con) = setup();
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("SET")
            .arg(format!("e:{i}"))
            .arg("v")
            .arg("PX")
            .arg(100)
            .ignore();
    }
    let () = pipe.query(&mut con).expect("fill");
    assert_eq!(cmd::<i64>(&mut con, &["DBSIZE"]), 500);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let n: i64 = cmd(&mut con, &["DBSIZE"]);
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} keys still present after 2 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats: String = cmd(&mut con, &["INFO", "stats"]);
    let expired: i64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("expired_keys:"))
        .expect("expired_keys in INFO stats")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(expired, 500, "{stats}");
}

#[test]
fn flushdb_empties_one_database_and_flushall_every_one() {
    let (_s, mut con) = setup();
    let _: String = cmd(&mut con, &["SET", "a", "1"]);
    let _: String = cmd(&mut con, &["SELECT", "1"]);
    let _: String = cmd(&mut con, &["SET", "b", "1"]);
    assert_eq!(cmd::<String>(&mut con, &["FLUSHDB"]), "OK");
    assert_eq!(cmd::<i64>(&mut con, &["DBSIZE"]), 0);
    let _: String = cmd(&mut con, &["SELECT", "0"]);
    assert_eq!(cmd::<i64>(&mut con, &["DBSIZE"]), 1);
    assert_eq!(cmd::<String>(&mut con, &["FLUSHALL", "ASYNC"]), "OK");
    assert_eq!(cmd::<i64>(&mut con, &["DBSIZE"]), 0);
    assert_eq!(err(&mut con, &["FLUSHDB", "FOO"]), "ERR syntax error");
}

#[test]
fn object_encoding_reports_int_embstr_and_raw() {
    let (_s, mut con) = setup();
    let _: String = cmd(
        &mut con,
        &[
            "MSET",
            "n",
            "12345",
            "s",
            "hello",
            "big",
            "123456789012345678901",
        ],
    );
    let _: String = cmd(&mut con, &["SET", "r", &"a".repeat(48)]);
    let enc =
        |con: &mut Connection, k: &str| cmd::<Option<String>>(con, &["OBJECT", "ENCODING", k]);
    assert_eq!(enc(&mut con, "n").as_deref(), Some("int"));
    assert_eq!(enc(&mut con, "s").as_deref(), Some("embstr"));
    assert_eq!(enc(&mut con, "big").as_deref(), Some("embstr"));
    assert_eq!(enc(&mut con, "r").as_deref(), Some("raw"));
    let _: i64 = cmd(&mut con, &["APPEND", "s", "x"]);
    assert_eq!(enc(&mut con, "s").as_deref(), Some("raw"));
    assert_eq!(enc(&mut con, "nope"), None);
}
#[test]
fn swapdb_exchanges_the_contents_of_two_databases() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(cmd::<String>(&mut con, &["SET", "k", "in-db0"]), "OK");
    assert_eq!(cmd::<String>(&mut con, &["SWAPDB", "0", "1"]), "OK");
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "k"]), None);
    assert_eq!(cmd::<String>(&mut con, &["SELECT", "1"]), "OK");
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["GET", "k"]).as_deref(),
        Some("in-db0")
    );
}

/// `UNLINK` frees a large value in the background and counts it in
/// `lazyfreed_objects` (reset by `CONFIG RESETSTAT`); a small one is freed
/// in place and not counted.
#[test]
fn unlink_frees_large_values_in_the_background() {
    let s = ferrite_tests::TestServer::start();
    let mut c = s.client();
    let _: () = cmd(&mut c, &["CONFIG", "RESETSTAT"]);
    let members: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let mut sadd = vec!["SADD", "big"];
    sadd.extend(members.iter().map(String::as_str));
    let _: i64 = cmd(&mut c, &sadd);
    let _: () = cmd(&mut c, &["SET", "small", "v"]);
    assert_eq!(
        cmd::<i64>(&mut c, &["UNLINK", "big", "small", "missing"]),
        2
    );
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "big", "small"]), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let freed = ferrite_tests::info_int(&mut c, "memory", "lazyfreed_objects");
        let pending = ferrite_tests::info_int(&mut c, "memory", "lazyfree_pending_objects");
        if freed == 1 && pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "freed {freed} pending {pending}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _: () = cmd(&mut c, &["CONFIG", "RESETSTAT"]);
    assert_eq!(
        ferrite_tests::info_int(&mut c, "memory", "lazyfreed_objects"),
        0
    );
}

/// Under `lazyfree-lazy-server-del`, a large value that a command
/// overwrites (`SET`, `RENAME` onto it, a `*STORE` destination) or deletes
/// as a side effect (an empty `*STORE` result) is freed in the background,
/// as real Redis 7.0 counts it; with the option off it is freed in place.
#[test]
fn lazy_server_del_frees_replaced_values_in_the_background() {
    let s = ferrite_tests::TestServer::start();
    let mut c = s.client();
    let members: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    let big = |c: &mut redis::Connection, key: &str| {
        let _: i64 = cmd(c, &["DEL", key]);
        let mut sadd = vec!["SADD", key];
        sadd.extend(members.iter().map(String::as_str));
        let _: i64 = cmd(c, &sadd);
    };
    let freed = |c: &mut redis::Connection, want: i64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let got = ferrite_tests::info_int(c, "memory", "lazyfreed_objects");
            if got == want && ferrite_tests::info_int(c, "memory", "lazyfree_pending_objects") == 0
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "freed {got}, want {want}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    let _: () = cmd(
        &mut c,
        &["CONFIG", "SET", "lazyfree-lazy-server-del", "yes"],
    );
    let _: () = cmd(&mut c, &["CONFIG", "RESETSTAT"]);
    big(&mut c, "a");
    let _: () = cmd(&mut c, &["SET", "a", "x"]);
    freed(&mut c, 1);
    big(&mut c, "a");
    big(&mut c, "b");
    let _: () = cmd(&mut c, &["RENAME", "a", "b"]);
    freed(&mut c, 2);
    big(&mut c, "a");
    assert_eq!(cmd::<i64>(&mut c, &["SINTERSTORE", "a", "nokey"]), 0);
    freed(&mut c, 3);
    big(&mut c, "a");
    big(&mut c, "c");
    assert_eq!(cmd::<i64>(&mut c, &["SUNIONSTORE", "a", "c"]), 1000);
    freed(&mut c, 4);
    // Small values and strings are freed in place.
    let _: i64 = cmd(&mut c, &["SADD", "small", "1", "2"]);
    let _: () = cmd(&mut c, &["SET", "small", "x"]);
    let _: () = cmd(&mut c, &["SET", "small", "y"]);
    freed(&mut c, 4);
    let _: () = cmd(&mut c, &["CONFIG", "SET", "lazyfree-lazy-server-del", "no"]);
    big(&mut c, "a");
    let _: () = cmd(&mut c, &["SET", "a", "x"]);
    freed(&mut c, 4);
    assert_eq!(cmd::<i64>(&mut c, &["SCARD", "b"]), 1000);
}

/// `FLUSHALL ASYNC` and `FLUSHDB ASYNC` empty at once and free the keys in
/// the background, counted in `lazyfreed_objects` as Redis counts them
/// (one per key); `SYNC` frees in place.
#[test]
fn flush_async_frees_in_the_background() {
    let s = ferrite_tests::TestServer::start();
    let mut c = s.client();
    let _: () = cmd(&mut c, &["CONFIG", "RESETSTAT"]);
    let freed = |c: &mut redis::Connection, want: i64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while ferrite_tests::info_int(c, "memory", "lazyfreed_objects") != want
            || ferrite_tests::info_int(c, "memory", "lazyfree_pending_objects") != 0
        {
            assert!(std::time::Instant::now() < deadline, "never freed {want}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    let _: () = cmd(&mut c, &["MSET", "a", "1", "b", "2", "c", "3"]);
    let _: () = cmd(&mut c, &["FLUSHDB", "SYNC"]);
    assert_eq!(
        ferrite_tests::info_int(&mut c, "memory", "lazyfreed_objects"),
        0
    );
    let _: () = cmd(&mut c, &["MSET", "a", "1", "b", "2", "c", "3"]);
    let _: () = cmd(&mut c, &["SELECT", "1"]);
    let _: () = cmd(&mut c, &["SET", "d", "4"]);
    let _: () = cmd(&mut c, &["FLUSHALL", "ASYNC"]);
    assert_eq!(cmd::<i64>(&mut c, &["DBSIZE"]), 0);
    freed(&mut c, 4);
    let _: () = cmd(&mut c, &["SET", "e", "5"]);
    let _: () = cmd(&mut c, &["FLUSHDB", "ASYNC"]);
    assert_eq!(cmd::<i64>(&mut c, &["DBSIZE"]), 0);
    freed(&mut c, 5);
}

/// Under `lazyfree-lazy-expire` and `lazyfree-lazy-eviction` the values of
/// expired and evicted keys are freed in the background too.
#[test]
fn lazy_expire_and_eviction_free_in_the_background() {
    let s = ferrite_tests::TestServer::start();
    let mut c = s.client();
    let _: () = cmd(&mut c, &["CONFIG", "SET", "lazyfree-lazy-expire", "yes"]);
    let _: () = cmd(&mut c, &["CONFIG", "SET", "lazyfree-lazy-eviction", "yes"]);
    let _: () = cmd(&mut c, &["CONFIG", "RESETSTAT"]);
    let members: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let big = |c: &mut redis::Connection, key: &str| {
        let mut sadd = vec!["SADD", key];
        sadd.extend(members.iter().map(String::as_str));
        let _: i64 = cmd(c, &sadd);
    };
    let freed = |c: &mut redis::Connection, want: i64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while ferrite_tests::info_int(c, "memory", "lazyfreed_objects") != want {
            assert!(std::time::Instant::now() < deadline, "never freed {want}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    big(&mut c, "expiring");
    let _: i64 = cmd(&mut c, &["PEXPIRE", "expiring", "10"]);
    freed(&mut c, 1);
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "expiring"]), 0);
    big(&mut c, "evicted");
    let _: () = cmd(
        &mut c,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-random"],
    );
    let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory", "1"]);
    let _: Option<String> = redis::cmd("SET")
        .arg("x")
        .arg("y")
        .query(&mut c)
        .unwrap_or(None);
    let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory", "0"]);
    freed(&mut c, 2);
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "evicted"]), 0);
}
