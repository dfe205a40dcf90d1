//! `MIGRATE` between two servers: keys move (or are copied) with their TTL,
//! the target's errors come back in Redis's words, the moved keys leave as
//! one `DEL`, and an unreachable target is an `IOERR`.

use ferrite_tests::{cmd, err, TestServer};

fn pair() -> (TestServer, TestServer, redis::Connection, redis::Connection) {
    let a = TestServer::start();
    let b = TestServer::with_args(&["--requirepass", "secret"]);
    let ca = a.client();
    let mut cb = b.client();
    let _: () = cmd(&mut cb, &["AUTH", "secret"]);
    (a, b, ca, cb)
}

#[test]
fn keys_move_with_their_ttl_or_are_copied() {
    let (_a, b, mut ca, mut cb) = pair();
    let port = b.port().to_string();
    let _: () = cmd(&mut ca, &["SET", "k", "v", "EX", "1000"]);
    let _: i64 = cmd(&mut ca, &["RPUSH", "l", "1", "2", "3"]);
    let _: () = cmd(&mut ca, &["SET", "c", "copy me"]);
    let mig = |ca: &mut redis::Connection, extra: &[&str]| -> Result<String, String> {
        let mut q = redis::cmd("MIGRATE");
        q.arg("127.0.0.1").arg(&port);
        for a in extra {
            q.arg(*a);
        }
        q.query::<String>(ca)
            .map_err(|e| ferrite_tests::error_text(&e))
    };
    assert_eq!(
        mig(&mut ca, &["k", "3", "5000", "AUTH", "secret"]).as_deref(),
        Ok("OK")
    );
    assert_eq!(cmd::<i64>(&mut ca, &["EXISTS", "k"]), 0);
    let _: () = cmd(&mut cb, &["SELECT", "3"]);
    assert_eq!(cmd::<String>(&mut cb, &["GET", "k"]), "v");
    let ttl: i64 = cmd(&mut cb, &["TTL", "k"]);
    assert!((990..=1000).contains(&ttl), "ttl {ttl}");
    let _: () = cmd(&mut cb, &["SELECT", "0"]);

    assert_eq!(
        mig(
            &mut ca,
            &["", "0", "5000", "COPY", "AUTH", "secret", "KEYS", "l", "c", "missing"]
        )
        .as_deref(),
        Ok("OK")
    );
    assert_eq!(cmd::<i64>(&mut ca, &["EXISTS", "l", "c"]), 2);
    assert_eq!(
        cmd::<Vec<String>>(&mut cb, &["LRANGE", "l", "0", "-1"]),
        ["1", "2", "3"]
    );
    // The target refuses an existing key unless REPLACE.
    assert_eq!(
        mig(&mut ca, &["c", "0", "5000", "AUTH", "secret"]),
        Err(
            "ERR Target instance replied with error: BUSYKEY Target key name already exists."
                .into()
        )
    );
    assert_eq!(
        cmd::<i64>(&mut ca, &["EXISTS", "c"]),
        1,
        "kept after an error"
    );
    assert_eq!(
        mig(&mut ca, &["c", "0", "5000", "REPLACE", "AUTH", "secret"]).as_deref(),
        Ok("OK")
    );
    assert_eq!(cmd::<i64>(&mut ca, &["EXISTS", "c"]), 0);
    assert_eq!(
        mig(&mut ca, &["nokey", "0", "5000"]).as_deref(),
        Ok("NOKEY")
    );
}

#[test]
fn errors_are_redis_texts() {
    let (_a, b, mut ca, _cb) = pair();
    let port = b.port().to_string();
    let _: () = cmd(&mut ca, &["SET", "k", "v"]);
    assert_eq!(
        err(&mut ca, &["MIGRATE", "127.0.0.1", &port, "k", "0", "5000", "AUTH", "wrong"]),
        "ERR Target instance replied with error: WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        err(
            &mut ca,
            &["MIGRATE", "127.0.0.1", &port, "k", "0", "5000", "KEYS", "k"]
        ),
        "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"
    );
    assert_eq!(
        err(
            &mut ca,
            &["MIGRATE", "127.0.0.1", &port, "k", "0", "5000", "AUTH"]
        ),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut ca, &["MIGRATE", "127.0.0.1", &port, "k", "x", "5000"]),
        "ERR value is not an integer or out of range"
    );
    // Nobody listens there.
    let dead = ferrite_tests::free_port().to_string();
    assert_eq!(
        err(&mut ca, &["MIGRATE", "127.0.0.1", &dead, "k", "0", "500"]),
        "IOERR error or timeout connecting to the client"
    );
    assert_eq!(cmd::<i64>(&mut ca, &["EXISTS", "k"]), 1);
}

/// What moved leaves the source's replicas as one `DEL`.
#[test]
fn moved_keys_propagate_as_del() {
    let (a, b, mut ca, _cb) = pair();
    let mut link = ferrite_tests::attach_replica(&a);
    let _: () = cmd(&mut ca, &["MSET", "x", "1", "y", "2"]);
    let port = b.port().to_string();
    let ok: String = cmd(
        &mut ca,
        &[
            "MIGRATE",
            "127.0.0.1",
            &port,
            "",
            "0",
            "5000",
            "AUTH",
            "secret",
            "KEYS",
            "x",
            "y",
        ],
    );
    assert_eq!(ok, "OK");
    let _: () = cmd(&mut ca, &["SET", "marker", "1"]);
    let got = link.read_until(
        |b| b.windows(6).any(|w| w == b"marker"),
        std::time::Duration::from_secs(5),
    );
    let got = ferrite_tests::text(&got);
    assert!(
        got.contains("*3\r\n$3\r\nDEL\r\n$1\r\nx\r\n$1\r\ny\r\n"),
        "{got:?}"
    );
    assert!(
        !got.contains("MIGRATE") && !got.contains("secret"),
        "{got:?}"
    );
}
