//! Geospatial commands against the numbers real Redis 7.0 gives for the
//! same input (its documentation's Sicily example), their errors, the
//! stores, and what `GEOADD` propagates (the `ZADD` it runs as).

use ferrite_tests::{cmd, err, TestServer};
use redis::{Connection, Value};

fn setup() -> (TestServer, Connection) {
    let server = TestServer::start();
    let mut con = server.client();
    let added: i64 = cmd(
        &mut con,
        &[
            "GEOADD",
            "Sicily",
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania",
        ],
    );
    assert_eq!(added, 2);
    (server, con)
}

fn strs(con: &mut Connection, args: &[&str]) -> Vec<String> {
    cmd(con, args)
}

#[test]
fn positions_hashes_and_distances_are_redis_s() {
    let (_s, mut c) = setup();
    assert_eq!(
        cmd::<String>(&mut c, &["ZSCORE", "Sicily", "Palermo"]),
        "3479099956230698"
    );
    assert_eq!(
        cmd::<Option<String>>(&mut c, &["GEODIST", "Sicily", "Palermo", "Catania"]).as_deref(),
        Some("166274.1516")
    );
    assert_eq!(
        cmd::<Option<String>>(&mut c, &["GEODIST", "Sicily", "Palermo", "Catania", "km"])
            .as_deref(),
        Some("166.2742")
    );
    assert_eq!(
        cmd::<Option<String>>(&mut c, &["GEODIST", "Sicily", "Palermo", "nope"]),
        None
    );
    assert_eq!(
        strs(&mut c, &["GEOHASH", "Sicily", "Palermo", "Catania"]),
        ["sqc8b49rny0", "sqdtr74hyu0"]
    );
    let pos: Vec<Option<Vec<String>>> = cmd(&mut c, &["GEOPOS", "Sicily", "Palermo", "nope"]);
    assert_eq!(
        pos,
        [
            Some(vec![
                "13.36138933897018433".to_string(),
                "38.11555639549629859".to_string()
            ]),
            None
        ]
    );
}

#[test]
fn searches_by_radius_and_box() {
    let (_s, mut c) = setup();
    let near: Value = cmd(
        &mut c,
        &[
            "GEORADIUS",
            "Sicily",
            "15",
            "37",
            "200",
            "km",
            "WITHDIST",
            "WITHCOORD",
            "WITHHASH",
            "ASC",
        ],
    );
    let Value::Array(rows) = near else {
        panic!("{near:?}")
    };
    let first: (String, String, i64, Vec<String>) = redis::from_redis_value(&rows[0]).expect("row");
    assert_eq!(
        first,
        (
            "Catania".into(),
            "56.4413".into(),
            3479447370796909,
            vec!["15.08726745843887329".into(), "37.50266842333162032".into()]
        )
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(
        strs(&mut c, &["GEORADIUS", "Sicily", "15", "37", "100", "km"]),
        ["Catania"]
    );
    assert_eq!(
        strs(
            &mut c,
            &[
                "GEORADIUSBYMEMBER",
                "Sicily",
                "Palermo",
                "200",
                "km",
                "DESC"
            ]
        ),
        ["Catania", "Palermo"]
    );
    assert_eq!(
        strs(
            &mut c,
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "400",
                "400",
                "km",
                "ASC",
                "COUNT",
                "1"
            ]
        ),
        ["Catania"]
    );
    assert_eq!(
        strs(
            &mut c,
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMMEMBER",
                "Palermo",
                "BYRADIUS",
                "1",
                "m"
            ]
        ),
        ["Palermo"]
    );
    assert!(strs(
        &mut c,
        &[
            "GEOSEARCH",
            "nokey",
            "FROMLONLAT",
            "0",
            "0",
            "BYRADIUS",
            "1",
            "m"
        ]
    )
    .is_empty());
}

#[test]
fn stores_write_scores_or_distances() {
    let (_s, mut c) = setup();
    let n: i64 = cmd(
        &mut c,
        &[
            "GEOSEARCHSTORE",
            "dst",
            "Sicily",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
            "STOREDIST",
        ],
    );
    assert_eq!(n, 2);
    assert_eq!(
        strs(&mut c, &["ZRANGE", "dst", "0", "-1", "WITHSCORES"]),
        [
            "Catania",
            "56.441257870158204",
            "Palermo",
            "190.44242984775784"
        ]
    );
    let n: i64 = cmd(
        &mut c,
        &[
            "GEORADIUS",
            "Sicily",
            "15",
            "37",
            "200",
            "km",
            "STORE",
            "copy",
        ],
    );
    assert_eq!(n, 2);
    assert_eq!(
        cmd::<String>(&mut c, &["ZSCORE", "copy", "Palermo"]),
        "3479099956230698"
    );
    // Nothing found: the destination is deleted.
    let n: i64 = cmd(
        &mut c,
        &["GEORADIUS", "Sicily", "0", "0", "1", "km", "STORE", "copy"],
    );
    assert_eq!(n, 0);
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "copy"]), 0);
}

#[test]
fn errors_are_redis_texts() {
    let (_s, mut c) = setup();
    assert_eq!(
        err(&mut c, &["GEOADD", "Sicily", "200", "100", "x"]),
        "ERR invalid longitude,latitude pair 200.000000,100.000000"
    );
    assert_eq!(
        err(&mut c, &["GEOADD", "Sicily", "NX", "XX", "1", "1", "x"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["GEORADIUS", "Sicily", "15", "37", "-1", "km"]),
        "ERR radius cannot be negative"
    );
    assert_eq!(
        err(&mut c, &["GEORADIUS", "Sicily", "15", "37", "1", "parsec"]),
        "ERR unsupported unit provided. please use M, KM, FT, MI"
    );
    assert_eq!(
        err(&mut c, &["GEORADIUSBYMEMBER", "Sicily", "nope", "1", "km"]),
        "ERR could not decode requested zset member"
    );
    assert_eq!(
        err(
            &mut c,
            &[
                "GEOSEARCH",
                "Sicily",
                "BYRADIUS",
                "1",
                "km",
                "ASC",
                "WITHDIST"
            ]
        ),
        "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCH"
    );
    assert_eq!(
        err(
            &mut c,
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "1",
                "1",
                "BYRADIUS",
                "1",
                "km",
                "ANY"
            ]
        ),
        "ERR the ANY argument requires COUNT argument"
    );
    assert_eq!(
        err(&mut c, &["GEORADIUS", "Sicily", "15", "37", "1", "km", "WITHDIST", "STORE", "x"]),
        "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
    );
    assert_eq!(
        err(
            &mut c,
            &[
                "GEORADIUS_RO",
                "Sicily",
                "15",
                "37",
                "1",
                "km",
                "STORE",
                "x"
            ]
        ),
        "ERR syntax error"
    );
    let _: () = cmd(&mut c, &["SET", "str", "v"]);
    assert!(err(&mut c, &["GEOPOS", "str", "a"]).starts_with("WRONGTYPE"));
}

/// `GEOADD` goes to replicas as the `ZADD` it ran as; its no-op does not.
#[test]
fn geoadd_propagates_as_zadd() {
    let (s, mut c) = setup();
    let mut link = ferrite_tests::attach_replica(&s);
    let _: i64 = cmd(
        &mut c,
        &["GEOADD", "g", "CH", "13.361389", "38.115556", "Palermo"],
    );
    let _: i64 = cmd(
        &mut c,
        &["GEOADD", "g", "13.361389", "38.115556", "Palermo"],
    );
    let _: () = cmd(&mut c, &["SET", "marker", "1"]);
    let got = link.read_until(
        |b| b.windows(6).any(|w| w == b"marker"),
        std::time::Duration::from_secs(5),
    );
    let got = ferrite_tests::text(&got);
    assert!(
        got.contains("*5\r\n$4\r\nzadd\r\n$1\r\ng\r\n$2\r\nCH\r\n$16\r\n3479099956230698\r\n$7\r\nPalermo\r\n"),
        "{got:?}"
    );
    assert_eq!(got.matches("zadd").count(), 1, "{got:?}");
}
