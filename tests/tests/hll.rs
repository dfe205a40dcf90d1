//! HyperLogLog commands: Redis's byte layout (an empty value, the cached
//! cardinality), sparse → dense promotion at `hll-sparse-max-bytes`,
//! unions, the error texts for non-HLL and corrupt strings, and what is
//! propagated.

use ferrite_tests::{cmd, err, TestServer};
use redis::Connection;

fn setup() -> (TestServer, Connection) {
    let server = TestServer::start();
    let con = server.client();
    (server, con)
}

fn bytes(c: &mut Connection, key: &str) -> Vec<u8> {
    cmd(c, &["GET", key])
}

#[test]
fn values_are_redis_strings() {
    let (_s, mut c) = setup();
    assert_eq!(cmd::<i64>(&mut c, &["PFADD", "h"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["PFADD", "h"]), 0);
    // What Redis 7.0 stores for an empty HLL: header, then XZERO:16384.
    let mut empty = b"HYLL\x01".to_vec();
    empty.extend_from_slice(&[0; 11]);
    empty.extend_from_slice(b"\x7f\xff");
    assert_eq!(bytes(&mut c, "h"), empty);
    assert_eq!(cmd::<String>(&mut c, &["TYPE", "h"]), "string");
    assert_eq!(cmd::<i64>(&mut c, &["PFCOUNT", "h"]), 0);
    assert_eq!(cmd::<i64>(&mut c, &["PFADD", "h", "a", "b", "c"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["PFADD", "h", "a"]), 0);
    assert_eq!(cmd::<i64>(&mut c, &["PFCOUNT", "h"]), 3);
    // The count is cached in the header (little endian, valid).
    assert_eq!(bytes(&mut c, "h")[8..16], [3, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        cmd::<String>(&mut c, &["PFDEBUG", "ENCODING", "h"]),
        "sparse"
    );
    let decoded: String = cmd(&mut c, &["PFDEBUG", "DECODE", "h"]);
    assert_eq!(decoded.matches("v:").count(), 3, "{decoded}");
    assert_eq!(cmd::<i64>(&mut c, &["PFDEBUG", "TODENSE", "h"]), 1);
    assert_eq!(
        cmd::<String>(&mut c, &["PFDEBUG", "ENCODING", "h"]),
        "dense"
    );
    assert_eq!(bytes(&mut c, "h").len(), 16 + 12288);
    assert_eq!(cmd::<i64>(&mut c, &["PFCOUNT", "h"]), 3);
    let regs: Vec<i64> = cmd(&mut c, &["PFDEBUG", "GETREG", "h"]);
    assert_eq!(regs.len(), 16384);
    assert_eq!(regs.iter().filter(|&&r| r > 0).count(), 3);
}

#[test]
fn sparse_values_turn_dense_past_the_configured_size() {
    let (_s, mut c) = setup();
    let _: () = cmd(&mut c, &["CONFIG", "SET", "hll-sparse-max-bytes", "100"]);
    let mut n = 0;
    loop {
        let _: i64 = cmd(&mut c, &["PFADD", "h", &format!("e{n}")]);
        n += 1;
        if cmd::<String>(&mut c, &["PFDEBUG", "ENCODING", "h"]) == "dense" {
            break;
        }
        assert!(cmd::<i64>(&mut c, &["STRLEN", "h"]) <= 100);
        assert!(n < 200, "never turned dense");
    }
    assert!(n > 10, "turned dense after {n}");
    let card: i64 = cmd(&mut c, &["PFCOUNT", "h"]);
    assert!((card - n).abs() <= 2, "{card} for {n}");
}

#[test]
fn unions_count_and_merge() {
    let (_s, mut c) = setup();
    for i in 0..1000 {
        let _: i64 = cmd(&mut c, &["PFADD", "a", &format!("x{i}")]);
        let _: i64 = cmd(&mut c, &["PFADD", "b", &format!("x{}", i + 500)]);
    }
    let union: i64 = cmd(&mut c, &["PFCOUNT", "a", "b", "missing"]);
    assert!((union - 1500).abs() < 1500 * 2 / 100, "{union}");
    assert_eq!(cmd::<String>(&mut c, &["PFMERGE", "u", "a", "b"]), "OK");
    assert_eq!(cmd::<i64>(&mut c, &["PFCOUNT", "u"]), union);
    // The destination is an input too.
    assert_eq!(cmd::<String>(&mut c, &["PFMERGE", "a", "b"]), "OK");
    assert_eq!(cmd::<i64>(&mut c, &["PFCOUNT", "a"]), union);
}

#[test]
fn errors_are_redis_texts() {
    let (_s, mut c) = setup();
    let _: () = cmd(&mut c, &["SET", "str", "not an hll"]);
    let _: i64 = cmd(&mut c, &["LPUSH", "list", "x"]);
    let not_hll = "WRONGTYPE Key is not a valid HyperLogLog string value.";
    assert_eq!(err(&mut c, &["PFADD", "str", "a"]), not_hll);
    assert_eq!(err(&mut c, &["PFCOUNT", "str"]), not_hll);
    assert_eq!(err(&mut c, &["PFMERGE", "dst", "str"]), not_hll);
    assert!(err(&mut c, &["PFADD", "list", "a"]).starts_with("WRONGTYPE Operation"));
    assert_eq!(
        err(&mut c, &["PFDEBUG", "ENCODING", "nokey"]),
        "ERR The specified key does not exist"
    );
    let _: i64 = cmd(&mut c, &["PFADD", "h", "a", "b", "c"]);
    assert_eq!(
        err(&mut c, &["PFDEBUG", "NOPE", "h"]),
        "ERR Unknown PFDEBUG subcommand 'NOPE'"
    );
    // Bytes appended after the last opcode: the registers overflow.
    let _: i64 = cmd(&mut c, &["APPEND", "h", "hello"]);
    assert_eq!(
        err(&mut c, &["PFCOUNT", "h"]),
        "INVALIDOBJ Corrupted HLL object detected"
    );
    let _: i64 = cmd(&mut c, &["SETRANGE", "h", "4", "x"]);
    assert_eq!(err(&mut c, &["PFCOUNT", "h"]), not_hll);
}

/// PFADD goes out as received when it changed something; PFCOUNT when it
/// wrote the cached count into the value (Redis's `may_replicate`).
#[test]
fn propagation_follows_redis() {
    let (s, mut c) = setup();
    let mut link = ferrite_tests::attach_replica(&s);
    let _: i64 = cmd(&mut c, &["PFADD", "h", "a"]);
    let _: i64 = cmd(&mut c, &["PFADD", "h", "a"]);
    let _: i64 = cmd(&mut c, &["PFCOUNT", "h"]);
    let _: i64 = cmd(&mut c, &["PFCOUNT", "h"]);
    let _: () = cmd(&mut c, &["SET", "marker", "1"]);
    let got = link.read_until(
        |b| b.windows(6).any(|w| w == b"marker"),
        std::time::Duration::from_secs(5),
    );
    let got = ferrite_tests::text(&got);
    assert_eq!(got.matches("PFADD").count(), 1, "{got:?}");
    assert_eq!(got.matches("PFCOUNT").count(), 1, "{got:?}");
}
