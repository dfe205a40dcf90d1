//! Bloom filter commands (RedisBloom's `BF.*`): replies, errors, and the
//! filter behaving like any key (TYPE, OBJECT ENCODING, DEL, EXPIRE,
//! RENAME, COPY, MEMORY USAGE, DEBUG DIGEST-VALUE, COMMAND INFO).

use ferrite_tests::{cmd, err, resp, text, TestServer};
use redis::Value;

fn setup() -> (TestServer, redis::Connection) {
    let s = TestServer::start();
    let c = s.client();
    (s, c)
}

#[test]
fn add_exists_madd_mexists_card() {
    let (_s, mut c) = setup();
    assert_eq!(cmd::<i64>(&mut c, &["BF.ADD", "bf", "a"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["BF.ADD", "bf", "a"]), 0);
    assert_eq!(cmd::<i64>(&mut c, &["BF.EXISTS", "bf", "a"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["BF.EXISTS", "bf", "zz"]), 0);
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.MADD", "bf", "a", "b", "c"]),
        vec![0, 1, 1]
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.MEXISTS", "bf", "a", "b", "nope"]),
        vec![1, 1, 0]
    );
    assert_eq!(cmd::<i64>(&mut c, &["BF.CARD", "bf"]), 3);
    assert_eq!(cmd::<i64>(&mut c, &["BF.CARD", "missing"]), 0);
    // A missing key is "not there" for EXISTS, not an error.
    assert_eq!(cmd::<i64>(&mut c, &["BF.EXISTS", "missing", "a"]), 0);
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.MEXISTS", "missing", "a", "b"]),
        vec![0, 0]
    );
    assert_eq!(cmd::<String>(&mut c, &["TYPE", "bf"]), "MBbloom--");
    assert_eq!(cmd::<String>(&mut c, &["OBJECT", "ENCODING", "bf"]), "raw");
}

#[test]
fn reserve_and_info() {
    let (_s, mut c) = setup();
    assert_eq!(
        cmd::<String>(
            &mut c,
            &["BF.RESERVE", "bf", "0.001", "1000", "EXPANSION", "4"]
        ),
        "OK"
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.INFO", "bf", "CAPACITY"]),
        vec![1000]
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.INFO", "bf", "expansion"]),
        vec![4]
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.INFO", "bf", "FILTERS"]),
        vec![1]
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.INFO", "bf", "ITEMS"]),
        vec![0]
    );
    let v: Vec<Value> = cmd(&mut c, &["BF.INFO", "bf"]);
    assert_eq!(v.len(), 10);
    assert_eq!(v[0], Value::SimpleString("Capacity".into()));
    assert_eq!(v[1], Value::Int(1000));
    assert_eq!(v[2], Value::SimpleString("Size".into()));
    assert_eq!(v[4], Value::SimpleString("Number of filters".into()));
    assert_eq!(v[6], Value::SimpleString("Number of items inserted".into()));
    assert_eq!(v[8], Value::SimpleString("Expansion rate".into()));
    assert_eq!(v[9], Value::Int(4));
    // The default filter's size is RedisBloom's 240 bytes.
    let _: i64 = cmd(&mut c, &["BF.ADD", "d", "x"]);
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.INFO", "d", "SIZE"]),
        vec![240]
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.INFO", "d", "CAPACITY"]),
        vec![100]
    );
    // A non-scaling filter reports a nil expansion.
    let _: String = cmd(&mut c, &["BF.RESERVE", "n", "0.01", "10", "NONSCALING"]);
    let v: Vec<Value> = cmd(&mut c, &["BF.INFO", "n", "EXPANSION"]);
    assert_eq!(v, vec![Value::Nil]);
    assert_eq!(
        err(&mut c, &["BF.INFO", "n", "BOGUS"]),
        "ERR Invalid information value"
    );
    assert_eq!(err(&mut c, &["BF.INFO", "missing"]), "ERR not found");
}

#[test]
fn reserve_errors() {
    let (_s, mut c) = setup();
    let e = |c: &mut redis::Connection, a: &[&str]| err(c, a);
    assert_eq!(
        e(&mut c, &["BF.RESERVE", "k", "abc", "10"]),
        "ERR bad error rate"
    );
    for bad in ["0", "1", "1.5", "-0.1"] {
        assert_eq!(
            e(&mut c, &["BF.RESERVE", "k", bad, "10"]),
            "ERR (0 < error rate range < 1)"
        );
    }
    assert_eq!(
        e(&mut c, &["BF.RESERVE", "k", "0.01", "x"]),
        "ERR bad capacity"
    );
    assert_eq!(
        e(&mut c, &["BF.RESERVE", "k", "0.01", "0"]),
        "ERR (capacity should be larger than 0)"
    );
    assert_eq!(
        e(&mut c, &["BF.RESERVE", "k", "0.01", "10", "EXPANSION", "0"]),
        "ERR (expansion should be greater or equal to 1)"
    );
    assert_eq!(
        e(&mut c, &["BF.RESERVE", "k", "0.01", "10", "EXPANSION", "x"]),
        "ERR bad expansion"
    );
    assert_eq!(
        e(&mut c, &["BF.RESERVE", "k", "0.01", "10", "EXPANSION"]),
        "ERR no expansion"
    );
    assert_eq!(
        e(
            &mut c,
            &[
                "BF.RESERVE",
                "k",
                "0.01",
                "10",
                "NONSCALING",
                "EXPANSION",
                "2"
            ]
        ),
        "ERR nonscaling filters cannot expand"
    );
    assert_eq!(
        e(&mut c, &["BF.RESERVE", "k", "0.01"]),
        "ERR wrong number of arguments for 'bf.reserve' command"
    );
    // Huge filters are refused, not allocated.
    assert_eq!(
        e(
            &mut c,
            &["BF.RESERVE", "k", "0.0000001", "9000000000000000000"]
        ),
        "ERR could not create filter"
    );
    let _: String = cmd(&mut c, &["BF.RESERVE", "k", "0.01", "10"]);
    assert_eq!(
        e(&mut c, &["BF.RESERVE", "k", "0.01", "10"]),
        "ERR item exists"
    );
    let _: String = cmd(&mut c, &["SET", "s", "v"]);
    assert!(e(&mut c, &["BF.RESERVE", "s", "0.01", "10"]).starts_with("WRONGTYPE"));
}

#[test]
fn wrong_type_and_arity() {
    let (_s, mut c) = setup();
    let _: String = cmd(&mut c, &["SET", "s", "v"]);
    for a in [
        &["BF.ADD", "s", "x"][..],
        &["BF.MADD", "s", "x"],
        &["BF.INSERT", "s", "ITEMS", "x"],
        &["BF.INFO", "s"],
        &["BF.CARD", "s"],
    ] {
        assert!(err(&mut c, a).starts_with("WRONGTYPE"), "{a:?}");
    }
    // RedisBloom answers 0 rather than WRONGTYPE for EXISTS on another type.
    assert_eq!(cmd::<i64>(&mut c, &["BF.EXISTS", "s", "x"]), 0);
    assert_eq!(
        err(&mut c, &["BF.ADD", "k"]),
        "ERR wrong number of arguments for 'bf.add' command"
    );
    assert_eq!(
        err(&mut c, &["BF.EXISTS", "k", "a", "b"]),
        "ERR wrong number of arguments for 'bf.exists' command"
    );
}

#[test]
fn insert_options_and_errors() {
    let (_s, mut c) = setup();
    assert_eq!(
        cmd::<Vec<i64>>(
            &mut c,
            &[
                "BF.INSERT",
                "bf",
                "CAPACITY",
                "50",
                "ERROR",
                "0.001",
                "EXPANSION",
                "3",
                "ITEMS",
                "a",
                "b",
                "a"
            ]
        ),
        vec![1, 1, 0]
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.INFO", "bf", "CAPACITY"]),
        vec![50]
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.INFO", "bf", "EXPANSION"]),
        vec![3]
    );
    // NOCREATE on a missing key.
    assert_eq!(
        err(&mut c, &["BF.INSERT", "missing", "NOCREATE", "ITEMS", "a"]),
        "ERR not found"
    );
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "missing"]), 0);
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.INSERT", "bf", "NOCREATE", "ITEMS", "c"]),
        vec![1]
    );
    assert_eq!(
        err(&mut c, &["BF.INSERT", "x", "CAPACITY", "0", "ITEMS", "a"]),
        "ERR Bad argument received"
    );
    assert_eq!(
        err(&mut c, &["BF.INSERT", "x", "ERROR", "2", "ITEMS", "a"]),
        "ERR Bad argument received"
    );
    assert_eq!(
        err(&mut c, &["BF.INSERT", "x", "ERROR", "zz", "ITEMS", "a"]),
        "ERR Bad error rate"
    );
    assert_eq!(
        err(&mut c, &["BF.INSERT", "x", "CAPACITY", "zz", "ITEMS", "a"]),
        "ERR Bad capacity"
    );
    assert_eq!(
        err(&mut c, &["BF.INSERT", "x", "BOGUS", "ITEMS", "a"]),
        "ERR Unknown argument received"
    );
    assert_eq!(
        err(&mut c, &["BF.INSERT", "x", "CAPACITY", "10", "ITEMS"]),
        "ERR wrong number of arguments for 'bf.insert' command"
    );
}

#[test]
fn nonscaling_filter_fills_and_reports_per_item() {
    let s = TestServer::start();
    let mut c = s.client();
    let _: String = cmd(&mut c, &["BF.RESERVE", "n", "0.001", "2", "NONSCALING"]);
    let out = s.raw(&resp(&[b"BF.MADD", b"n", b"a", b"b", b"c", b"d"]));
    assert_eq!(
        text(&out),
        "*3\r\n:1\r\n:1\r\n-ERR non scaling filter is full\r\n"
    );
    assert_eq!(
        err(&mut c, &["BF.ADD", "n", "e"]),
        "ERR non scaling filter is full"
    );
    // Items already there still answer 0, not an error.
    assert_eq!(cmd::<i64>(&mut c, &["BF.ADD", "n", "a"]), 0);
}

#[test]
fn scaling_filter_grows() {
    let (_s, mut c) = setup();
    let _: String = cmd(&mut c, &["BF.RESERVE", "g", "0.01", "10"]);
    let items: Vec<String> = (0..100).map(|i| format!("i{i}")).collect();
    let mut args = vec!["BF.MADD", "g"];
    args.extend(items.iter().map(String::as_str));
    let added: Vec<i64> = cmd(&mut c, &args);
    let n: i64 = added.iter().sum();
    assert!(n >= 95, "{n}");
    assert_eq!(cmd::<i64>(&mut c, &["BF.CARD", "g"]), n);
    let filters: Vec<i64> = cmd(&mut c, &["BF.INFO", "g", "FILTERS"]);
    assert_eq!(filters, vec![4]); // 10 + 20 + 40 + 80
    assert_eq!(
        cmd::<Vec<i64>>(&mut c, &["BF.INFO", "g", "CAPACITY"]),
        vec![150]
    );
    let mut args = vec!["BF.MEXISTS", "g"];
    args.extend(items.iter().map(String::as_str));
    assert!(cmd::<Vec<i64>>(&mut c, &args).iter().all(|&x| x == 1));
}

#[test]
fn filters_are_ordinary_keys() {
    let (_s, mut c) = setup();
    let _: i64 = cmd(&mut c, &["BF.ADD", "bf", "a"]);
    let mem: i64 = cmd(&mut c, &["MEMORY", "USAGE", "bf"]);
    assert!(mem >= 120, "{mem}");
    assert_eq!(cmd::<i64>(&mut c, &["COPY", "bf", "bf2"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["BF.EXISTS", "bf2", "a"]), 1);
    let d1: Vec<String> = cmd(&mut c, &["DEBUG", "DIGEST-VALUE", "bf"]);
    let d2: Vec<String> = cmd(&mut c, &["DEBUG", "DIGEST-VALUE", "bf2"]);
    assert_eq!(d1, d2);
    let _: i64 = cmd(&mut c, &["BF.ADD", "bf2", "b"]);
    let d3: Vec<String> = cmd(&mut c, &["DEBUG", "DIGEST-VALUE", "bf2"]);
    assert_ne!(d1, d3);
    let _: String = cmd(&mut c, &["RENAME", "bf2", "bf3"]);
    assert_eq!(cmd::<i64>(&mut c, &["BF.EXISTS", "bf3", "b"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["EXPIRE", "bf3", "100"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["TTL", "bf3"]), 100);
    assert_eq!(cmd::<i64>(&mut c, &["DEL", "bf", "bf3"]), 2);
    assert_eq!(cmd::<i64>(&mut c, &["BF.CARD", "bf"]), 0);
}

#[test]
fn command_info_lists_module_commands() {
    let (_s, mut c) = setup();
    let v: Vec<Value> = cmd(&mut c, &["COMMAND", "INFO", "bf.add", "cl.throttle"]);
    assert_eq!(v.len(), 2);
    let Value::Array(add) = &v[0] else {
        panic!("{v:?}")
    };
    assert_eq!(add[0], Value::BulkString(b"bf.add".to_vec()));
    assert_eq!(add[1], Value::Int(-1));
    assert_eq!(
        add[2],
        Value::Array(vec![
            Value::SimpleString("write".into()),
            Value::SimpleString("denyoom".into()),
            Value::SimpleString("module".into()),
        ])
    );
    assert_eq!(&add[3..6], &[Value::Int(1), Value::Int(1), Value::Int(1)]);
    let keys: Vec<String> = cmd(&mut c, &["COMMAND", "GETKEYS", "BF.ADD", "k", "x"]);
    assert_eq!(keys, vec!["k"]);
}
