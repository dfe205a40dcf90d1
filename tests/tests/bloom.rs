//! Bloom filter commands (RedisBloom's `BF.*`): replies, errors, and the
//! filter behaving like any key (TYPE, OBJECT ENCODING, DEL, EXPIRE,
//! RENAME, COPY, MEMORY USAGE, DEBUG DIGEST-VALUE, COMMAND INFO).

use ferrite_tests::{cmd, err, error_text, resp, text, TestServer};
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

/// Every `(iterator, data)` pair `BF.SCANDUMP` gives for `key`, header
/// first, up to (not including) the final `[0, ""]`.
fn scandump(c: &mut redis::Connection, key: &str) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut iter = 0i64;
    loop {
        let (next, data): (i64, Vec<u8>) = redis::cmd("BF.SCANDUMP")
            .arg(key)
            .arg(iter)
            .query(c)
            .unwrap();
        if next == 0 {
            assert!(data.is_empty());
            return out;
        }
        out.push((next, data));
        iter = next;
    }
}

fn loadchunk(
    c: &mut redis::Connection,
    key: &str,
    iter: i64,
    data: &[u8],
) -> redis::RedisResult<String> {
    redis::cmd("BF.LOADCHUNK")
        .arg(key)
        .arg(iter)
        .arg(data)
        .query(c)
}

#[test]
fn scandump_loadchunk_round_trip() {
    let (_s, mut c) = setup();
    let _: String = cmd(&mut c, &["BF.RESERVE", "a", "0.01", "20", "EXPANSION", "3"]);
    let items: Vec<String> = (0..500).map(|i| format!("item:{i}")).collect();
    let mut madd = redis::cmd("BF.MADD");
    madd.arg("a").arg(&items);
    let _: Vec<i64> = madd.query(&mut c).unwrap();
    let chunks = scandump(&mut c, "a");
    assert!(chunks.len() >= 2);
    // The header reply is iterator 1; RedisBloom's layout: 20 + 53 per filter.
    let filters: i64 = cmd::<Vec<i64>>(&mut c, &["BF.INFO", "a", "FILTERS"])[0];
    assert!(filters >= 3, "{filters}");
    assert_eq!(chunks[0].0, 1);
    assert_eq!(chunks[0].1.len() as i64, 20 + 53 * filters);
    for (iter, data) in &chunks {
        assert_eq!(loadchunk(&mut c, "b", *iter, data).unwrap(), "OK");
    }
    let info_a: Vec<Value> = cmd(&mut c, &["BF.INFO", "a"]);
    let info_b: Vec<Value> = cmd(&mut c, &["BF.INFO", "b"]);
    assert_eq!(info_a, info_b);
    let probes: Vec<String> = (0..2000).map(|i| format!("item:{i}")).collect();
    let mut ex = |k: &str| {
        let mut m = redis::cmd("BF.MEXISTS");
        m.arg(k).arg(&probes);
        m.query::<Vec<i64>>(&mut c).unwrap()
    };
    let (ea, eb) = (ex("a"), ex("b"));
    assert_eq!(ea, eb);
    assert!(ea[..500].iter().all(|&x| x == 1));
    assert_eq!(chunks, scandump(&mut c, "b"));
    assert_eq!(cmd::<String>(&mut c, &["TYPE", "b"]), "MBbloom--");
    // Past the end, and below the start: [0, ""].
    let v: (i64, Vec<u8>) = redis::cmd("BF.SCANDUMP")
        .arg("a")
        .arg(1i64 << 40)
        .query(&mut c)
        .unwrap();
    assert_eq!(v, (0, vec![]));
    let v: (i64, Vec<u8>) = redis::cmd("BF.SCANDUMP")
        .arg("a")
        .arg(-3)
        .query(&mut c)
        .unwrap();
    assert_eq!(v, (0, vec![]));
    // A non-scaling filter keeps its flag.
    let _: String = cmd(&mut c, &["BF.RESERVE", "n", "0.01", "10", "NONSCALING"]);
    let _: i64 = cmd(&mut c, &["BF.ADD", "n", "x"]);
    for (iter, data) in scandump(&mut c, "n") {
        assert_eq!(loadchunk(&mut c, "n2", iter, &data).unwrap(), "OK");
    }
    let v: Vec<Value> = cmd(&mut c, &["BF.INFO", "n2", "EXPANSION"]);
    assert_eq!(v, vec![Value::Nil]);
    assert_eq!(cmd::<i64>(&mut c, &["BF.EXISTS", "n2", "x"]), 1);
}

#[test]
fn scandump_loadchunk_errors() {
    let (_s, mut c) = setup();
    let e = |c: &mut redis::Connection, k: &str, iter: i64, data: &[u8]| {
        error_text(&loadchunk(c, k, iter, data).unwrap_err())
    };
    assert_eq!(
        err(&mut c, &["BF.SCANDUMP", "missing", "0"]),
        "ERR not found"
    );
    let _: i64 = cmd(&mut c, &["BF.ADD", "bf", "a"]);
    assert_eq!(
        err(&mut c, &["BF.SCANDUMP", "bf", "x"]),
        "Second argument must be numeric"
    );
    assert_eq!(
        err(&mut c, &["BF.LOADCHUNK", "bf", "x", "d"]),
        "ERR Second argument must be numeric"
    );
    assert_eq!(
        err(&mut c, &["BF.SCANDUMP", "bf"]),
        "ERR wrong number of arguments for 'bf.scandump' command"
    );
    assert_eq!(
        err(&mut c, &["BF.LOADCHUNK", "bf", "1"]),
        "ERR wrong number of arguments for 'bf.loadchunk' command"
    );
    let chunks = scandump(&mut c, "bf");
    let hdr = chunks[0].1.clone();
    // A missing key needs the header first.
    assert_eq!(e(&mut c, "new", 121, &chunks[1].1), "ERR not found");
    // Truncated, padded or garbage headers.
    assert_eq!(
        e(&mut c, "new", 1, &hdr[..hdr.len() - 1]),
        "ERR received bad data"
    );
    assert_eq!(e(&mut c, "new", 1, b""), "ERR received bad data");
    assert_eq!(e(&mut c, "new", 1, &[0xff; 73]), "ERR received bad data");
    let mut long = hdr.clone();
    long.push(0);
    assert_eq!(e(&mut c, "new", 1, &long), "ERR received bad data");
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "new"]), 0);
    // A header sent to an existing key is a (bad) chunk, as in RedisBloom.
    assert_eq!(e(&mut c, "bf", 1, &hdr), "ERR received bad data");
    assert_eq!(e(&mut c, "bf", 0, b""), "ERR received bad data");
    assert_eq!(e(&mut c, "bf", -7, b"x"), "ERR received bad data");
    assert_eq!(
        e(&mut c, "bf", i64::MAX, b"x"),
        "ERR invalid offset - no link found"
    );
    assert_eq!(
        e(&mut c, "bf", 130, &[0u8; 125]),
        "ERR invalid chunk - Too big for current filter"
    );
    // Failed loads changed nothing.
    assert_eq!(cmd::<i64>(&mut c, &["BF.EXISTS", "bf", "a"]), 1);
    // Wrong type.
    let _: String = cmd(&mut c, &["SET", "s", "v"]);
    assert!(err(&mut c, &["BF.SCANDUMP", "s", "0"]).starts_with("WRONGTYPE"));
    assert!(e(&mut c, "s", 1, &hdr).starts_with("WRONGTYPE"));
    assert!(e(&mut c, "s", 121, b"x").starts_with("WRONGTYPE"));
    // COMMAND INFO knows both.
    let v: Vec<Value> = cmd(&mut c, &["COMMAND", "INFO", "bf.scandump", "bf.loadchunk"]);
    assert!(v.iter().all(|x| matches!(x, Value::Array(_))), "{v:?}");
}

#[test]
fn info_is_a_map_in_resp3() {
    let s = TestServer::start();
    let mut c = s.raw_conn();
    c.send(&resp(&[b"BF.RESERVE", b"bf", b"0.01", b"100"]));
    assert_eq!(text(&c.read_idle()), "+OK\r\n");
    c.hello3();
    c.send(&resp(&[b"BF.INFO", b"bf"]));
    assert_eq!(
        text(&c.read_idle()),
        "%5\r\n+Capacity\r\n:100\r\n+Size\r\n:240\r\n+Number of filters\r\n:1\r\n\
         +Number of items inserted\r\n:0\r\n+Expansion rate\r\n:2\r\n"
    );
    c.send(&resp(&[b"BF.INFO", b"bf", b"ITEMS"]));
    assert_eq!(
        text(&c.read_idle()),
        "%1\r\n+Number of items inserted\r\n:0\r\n"
    );
    c.send(&resp(&[b"HELLO", b"2"]));
    let _ = c.read_idle();
    c.send(&resp(&[b"BF.INFO", b"bf", b"ITEMS"]));
    assert_eq!(text(&c.read_idle()), "*1\r\n:0\r\n");
}
