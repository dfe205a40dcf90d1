//! Lua scripting: EVAL/EVALSHA and the script cache, the `redis` library
//! and its conversions, error texts as Redis 7.0 words them, atomicity,
//! BUSY and SCRIPT KILL, and how a script's writes are propagated.

use std::time::{Duration, Instant};

use ferrite_tests::{cmd, err, text, TestServer};
use redis::{Connection, Value};

fn setup() -> (TestServer, Connection) {
    let server = TestServer::start();
    let con = server.client();
    (server, con)
}

#[test]
fn eval_returns_converted_values() {
    let (_s, mut con) = setup();
    assert_eq!(cmd::<i64>(&mut con, &["EVAL", "return 1", "0"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["EVAL", "return 3.99", "0"]), 3);
    assert_eq!(
        cmd::<String>(
            &mut con,
            &["EVAL", "return KEYS[1]..ARGV[1]", "1", "k", "a"]
        ),
        "ka"
    );
    assert_eq!(
        cmd::<Value>(&mut con, &["EVAL", "return {1,2,nil,4}", "0"]),
        Value::Array(vec![Value::Int(1), Value::Int(2)])
    );
    assert_eq!(
        cmd::<Value>(&mut con, &["EVAL", "return false", "0"]),
        Value::Nil
    );
    assert_eq!(cmd::<i64>(&mut con, &["EVAL", "return true", "0"]), 1);
    assert_eq!(
        cmd::<String>(&mut con, &["EVAL", "return {ok='fine'}", "0"]),
        "fine"
    );
    assert_eq!(
        err(&mut con, &["EVAL", "return {err='MY error'}", "0"]),
        "MY error"
    );
    assert_eq!(
        err(
            &mut con,
            &["EVAL", "return redis.error_reply('My Error')", "0"]
        ),
        "My Error"
    );
}

#[test]
fn redis_call_converts_replies_to_lua_and_back() {
    let (_s, mut con) = setup();
    cmd::<()>(&mut con, &["RPUSH", "l", "a", "b"]);
    let script = "local t = redis.call('lrange', KEYS[1], 0, -1) \
                  local missing = redis.call('get', 'nokey') \
                  local st = redis.call('set', 'x', '1') \
                  return {#t, t[2], tostring(missing), st['ok'], redis.call('incr', 'x')}";
    assert_eq!(
        cmd::<Value>(&mut con, &["EVAL", script, "1", "l"]),
        Value::Array(vec![
            Value::Int(2),
            Value::BulkString(b"b".to_vec()),
            Value::BulkString(b"false".to_vec()),
            Value::BulkString(b"OK".to_vec()),
            Value::Int(2),
        ])
    );
    let t = "local r = redis.pcall('incr', KEYS[1]) return r['err']";
    cmd::<()>(&mut con, &["SET", "s", "abc"]);
    assert_eq!(
        cmd::<String>(&mut con, &["EVAL", t, "1", "s"]),
        "ERR value is not an integer or out of range"
    );
}

#[test]
fn evalsha_and_the_script_cache() {
    let (_s, mut con) = setup();
    let sha: String = cmd(&mut con, &["SCRIPT", "LOAD", "return 'hi'"]);
    assert_eq!(sha.len(), 40);
    assert_eq!(cmd::<String>(&mut con, &["EVALSHA", &sha, "0"]), "hi");
    assert_eq!(
        cmd::<String>(&mut con, &["EVALSHA", &sha.to_uppercase(), "0"]),
        "hi"
    );
    assert_eq!(
        cmd::<Vec<i64>>(&mut con, &["SCRIPT", "EXISTS", &sha, "ffff"]),
        vec![1, 0]
    );
    assert_eq!(cmd::<String>(&mut con, &["SCRIPT", "FLUSH"]), "OK");
    assert_eq!(
        err(&mut con, &["EVALSHA", &sha, "0"]),
        "NOSCRIPT No matching script. Please use EVAL."
    );
    // EVAL caches what it ran.
    cmd::<String>(&mut con, &["EVAL", "return 'hi'", "0"]);
    assert_eq!(cmd::<String>(&mut con, &["EVALSHA", &sha, "0"]), "hi");

    // redis::Script: EVALSHA first, EVAL on NOSCRIPT.
    cmd::<String>(&mut con, &["SCRIPT", "FLUSH"]);
    let script = redis::Script::new("return redis.call('incrby', KEYS[1], ARGV[1])");
    let v: i64 = script
        .key("counter")
        .arg(5)
        .invoke(&mut con)
        .expect("invoke");
    assert_eq!(v, 5);
    let v: i64 = script
        .key("counter")
        .arg(2)
        .invoke(&mut con)
        .expect("invoke");
    assert_eq!(v, 7);
}

#[test]
fn errors_are_worded_as_redis() {
    let (_s, mut con) = setup();
    cmd::<()>(&mut con, &["SET", "s", "abc"]);
    assert_eq!(
        err(&mut con, &["EVAL", "return redis.call('incr','s')", "0"]),
        "ERR value is not an integer or out of range script: c243b9f46db13ba8f69da41b45a77708832babed, on @user_script:1."
    );
    assert_eq!(
        err(&mut con, &["EVAL", "return x", "0"]),
        "ERR user_script:1: Script attempted to access nonexistent global variable 'x' script: 03c387736bb5cc009ff35151572cee04677aa374, on @user_script:1."
    );
    assert_eq!(
        err(&mut con, &["EVAL", "x=1", "0"]),
        "ERR user_script:1: Attempt to modify a readonly table script: 7caf6056913504f0508c65faf2dc3f94ff65bcfd, on @user_script:1."
    );
    assert_eq!(
        err(&mut con, &["EVAL", "return foo(", "0"]),
        "ERR Error compiling script (new function): user_script:1: unexpected symbol near '<eof>'"
    );
    assert_eq!(
        err(&mut con, &["EVAL", "return 1", "-1"]),
        "ERR Number of keys can't be negative"
    );
    assert_eq!(
        err(&mut con, &["EVAL", "return 1", "3", "a"]),
        "ERR Number of keys can't be greater than number of args"
    );
    assert!(err(
        &mut con,
        &["EVAL", "return redis.call('eval','return 1',0)", "0"]
    )
    .starts_with("ERR This Redis command is not allowed from script script: "));
    assert!(err(
        &mut con,
        &["EVAL_RO", "return redis.call('set','a',1)", "1", "a"]
    )
    .starts_with("ERR Write commands are not allowed from read-only scripts. script: "));
    assert!(err(
        &mut con,
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('set','a',1)",
            "1",
            "a"
        ]
    )
    .ends_with("on @user_script:2."));
    assert_eq!(
        err(&mut con, &["EVAL", "#!lua flags=bad\nreturn 1", "0"]),
        "ERR Unexpected flag in script shebang: bad"
    );
    assert_eq!(
        err(&mut con, &["EVAL_RO", "#!lua\nreturn 1", "0"]),
        "ERR Can not execute a script with write flag using *_ro command."
    );
    let sha: String = cmd(&mut con, &["SCRIPT", "LOAD", "return loadfile"]);
    assert_eq!(
        err(&mut con, &["EVALSHA", &sha, "0"]),
        format!("ERR user_script:1: Script attempted to access nonexistent global variable 'loadfile' script: {sha}, on @user_script:1.")
    );
}

#[test]
fn libraries_and_determinism() {
    let (_s, mut con) = setup();
    assert_eq!(
        cmd::<String>(&mut con, &["EVAL", "return cjson.encode({1,2,{a=1}})", "0"]),
        "[1,2,{\"a\":1}]"
    );
    assert_eq!(
        cmd::<i64>(
            &mut con,
            &["EVAL", "return cjson.decode('[1,{\"b\":5}]')[2].b", "0"]
        ),
        5
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["EVAL", "return bit.band(7, 3)", "0"]),
        3
    );
    assert_eq!(
        cmd::<String>(&mut con, &["EVAL", "return redis.sha1hex('')", "0"]),
        "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    );
    // Redis's drand48: the first draws of a fresh server are fixed.
    assert_eq!(
        cmd::<i64>(&mut con, &["EVAL", "return math.random()", "0"]),
        0
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["EVAL", "return math.random(100)", "0"]),
        85
    );
}

#[test]
fn select_inside_a_script_does_not_change_the_callers_db() {
    let (_s, mut con) = setup();
    cmd::<()>(&mut con, &["SET", "k", "db0"]);
    let v: String = cmd(
        &mut con,
        &[
            "EVAL",
            "redis.call('select', 1) redis.call('set', 'k', 'db1') return redis.call('get', 'k')",
            "0",
        ],
    );
    assert_eq!(v, "db1");
    assert_eq!(cmd::<String>(&mut con, &["GET", "k"]), "db0");
}

#[test]
fn busy_script_and_script_kill() {
    let (s, mut con) = setup();
    cmd::<()>(&mut con, &["CONFIG", "SET", "lua-time-limit", "50"]);
    assert_eq!(
        err(&mut con, &["SCRIPT", "KILL"]),
        "NOTBUSY No scripts in execution right now."
    );
    let mut runner = s.raw_conn();
    runner.send(b"*3\r\n$4\r\nEVAL\r\n$20\r\nwhile true do end   \r\n$1\r\n0\r\n");
    // Other clients wait, then get BUSY once the limit passed.
    let start = Instant::now();
    loop {
        match redis::cmd("PING").query::<String>(&mut con) {
            Err(e) if ferrite_tests::error_text(&e).starts_with("BUSY ") => break,
            _ => {
                assert!(start.elapsed() < Duration::from_secs(10), "never BUSY");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    assert_eq!(
        err(&mut con, &["GET", "x"]),
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    );
    assert_eq!(cmd::<String>(&mut con, &["SCRIPT", "KILL"]), "OK");
    let got = runner.read_until(|b| b.ends_with(b"\r\n"), Duration::from_secs(5));
    assert!(
        text(&got).starts_with("-ERR Script killed by user with SCRIPT KILL..."),
        "{}",
        text(&got)
    );
    assert_eq!(cmd::<String>(&mut con, &["PING"]), "PONG");

    // A script that wrote cannot be killed.
    runner.send(
        b"*3\r\n$4\r\nEVAL\r\n$46\r\nredis.call('set','w','1') while true do end   \r\n$1\r\n0\r\n",
    );
    let start = Instant::now();
    loop {
        match redis::cmd("SCRIPT").arg("KILL").query::<String>(&mut con) {
            Err(e) if ferrite_tests::error_text(&e).starts_with("UNKILLABLE ") => break,
            _ => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "never UNKILLABLE"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Whether a PING is answered `BUSY` (a script passed its time limit).
fn busy(con: &mut Connection) -> bool {
    match redis::cmd("PING").query::<String>(con) {
        Err(e) => ferrite_tests::error_text(&e).starts_with("BUSY "),
        Ok(_) => false,
    }
}

/// `FUNCTION STATS` names the running function and the command that
/// called it; while an `EVAL` script runs it answers `BUSY`.
#[test]
fn function_stats_shows_the_running_function_and_its_call() {
    let (s, mut con) = setup();
    cmd::<()>(&mut con, &["CONFIG", "SET", "busy-reply-threshold", "10"]);
    let lib = "#!lua name=spin\nredis.register_function('spin', function() local a = 1 while true do a = a + 1 end end)";
    cmd::<String>(&mut con, &["FUNCTION", "LOAD", lib]);
    let mut runner = s.raw_conn();
    runner.send(b"FCALL Spin 0\r\n");
    let start = Instant::now();
    while !busy(&mut con) {
        assert!(start.elapsed() < Duration::from_secs(10), "never BUSY");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats: Value = cmd(&mut con, &["FUNCTION", "STATS"]);
    let Value::Array(top) = stats else {
        panic!("{stats:?}")
    };
    let Value::Array(running) = &top[1] else {
        panic!("{top:?}")
    };
    let texts: Vec<String> = running
        .iter()
        .filter_map(|v| redis::from_redis_value::<String>(v).ok())
        .collect();
    assert_eq!(&texts[..3], ["name", "spin", "command"], "{running:?}");
    assert_eq!(
        redis::from_redis_value::<Vec<String>>(&running[3]).expect("command"),
        ["FCALL", "Spin", "0"]
    );
    assert_eq!(cmd::<String>(&mut con, &["FUNCTION", "KILL"]), "OK");
    runner.read_until(|b| b.ends_with(b"\r\n"), Duration::from_secs(5));

    let mut runner = s.raw_conn();
    runner.send(b"EVAL \"while true do end\" 0\r\n");
    let start = Instant::now();
    while !busy(&mut con) {
        assert!(start.elapsed() < Duration::from_secs(10), "never BUSY");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        err(&mut con, &["FUNCTION", "STATS"]),
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    );
    assert_eq!(cmd::<String>(&mut con, &["SCRIPT", "KILL"]), "OK");
}

/// A library's code runs with only the load API (`redis.register_function`,
/// `redis.log`, the version fields), as Redis's `LIBRARY_API`; functions
/// run with the full one, without `register_function`. The shebang is
/// split as `sdssplitargs` splits it.
#[test]
fn libraries_load_with_the_load_api_only() {
    let (_s, mut con) = setup();
    let load = |con: &mut Connection, body: &str| {
        let code = format!("#!lua name=t\n{body}");
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(code)
            .query::<String>(con)
            .map_err(|e| ferrite_tests::error_text(&e))
    };
    for (body, missing) in [
        ("return math.random()", "math"),
        ("return redis.call('ping')", "call"),
        ("local mt = getmetatable(_G)", "getmetatable"),
    ] {
        let e = load(&mut con, body).expect_err(body);
        assert!(
            e.contains(&format!(
                "Script attempted to access nonexistent global variable '{missing}'"
            )),
            "{body}: {e}"
        );
    }
    let e = load(&mut con, "redis.register_function(nil, function() end)").expect_err("nil name");
    assert!(
        e.contains("first argument to redis.register_function must be a string"),
        "{e}"
    );
    assert_eq!(
        load(
            &mut con,
            "redis.log(redis.LOG_NOTICE, redis.REDIS_VERSION) redis.register_function{FUNCTION_NAME='inner', CALLBACK=function() return redis.register_function('x', function() end) end, FLAGS={'NO-WRITES'}}"
        ),
        Ok("t".into())
    );
    assert!(err(&mut con, &["FCALL", "inner", "0"])
        .contains("attempt to call field 'register_function' (a nil value)"));
    let quoted = "#!lua name=\"q\"\nredis.register_function('q', function() return 1 end)";
    assert_eq!(cmd::<String>(&mut con, &["FUNCTION", "LOAD", quoted]), "q");
    assert_eq!(
        err(
            &mut con,
            &["FUNCTION", "LOAD", "#!lua name=a name=b\nreturn"]
        ),
        "ERR Invalid metadata value, name argument was given multiple times"
    );
    assert_eq!(
        err(&mut con, &["FUNCTION", "LOAD", "#! name=e\nreturn"]),
        "ERR Engine '' not found"
    );
}

/// `MONITOR` shows a script's call, then the commands it ran as `lua`.
#[test]
fn monitor_shows_scripts_and_their_commands() {
    let (s, mut con) = setup();
    let mut mon = s.raw_conn();
    mon.send(b"MONITOR\r\n");
    assert_eq!(
        text(&mon.read_until(|b| b.ends_with(b"\r\n"), Duration::from_secs(5))),
        "+OK\r\n"
    );
    cmd::<()>(
        &mut con,
        &[
            "EVAL",
            "redis.call('set',KEYS[1],ARGV[1])",
            "1",
            "foo",
            "bar",
        ],
    );
    let got = text(&mon.read_until(
        |b| b.windows(2).filter(|w| w == b"\r\n").count() >= 2,
        Duration::from_secs(5),
    ));
    let lines: Vec<&str> = got.lines().collect();
    assert!(
        lines[0].contains(r#"] "EVAL" "redis.call('set',KEYS[1],ARGV[1])" "1" "foo" "bar""#),
        "{got}"
    );
    assert!(lines[1].ends_with(r#" [0 lua] "set" "foo" "bar""#), "{got}");
}

/// `FUNCTION DUMP` / `FUNCTION RESTORE` with the APPEND, REPLACE and
/// FLUSH policies, their errors as Redis 7.0 words them, and a payload
/// carried to another server.
#[test]
fn function_dump_and_restore() {
    let (_s, mut con) = setup();
    let lib = "#!lua name=lib1\nredis.register_function('f1', function() return 1 end)";
    let _: String = cmd(&mut con, &["FUNCTION", "LOAD", lib]);
    let payload: Vec<u8> = cmd(&mut con, &["FUNCTION", "DUMP"]);
    let restore = |con: &mut Connection, policy: Option<&str>| {
        let mut c = redis::cmd("FUNCTION");
        c.arg("RESTORE").arg(&payload[..]);
        if let Some(p) = policy {
            c.arg(p);
        }
        c.query::<String>(con)
            .map_err(|e| ferrite_tests::error_text(&e))
    };
    assert_eq!(
        restore(&mut con, None),
        Err("ERR Library lib1 already exists".into())
    );
    assert_eq!(restore(&mut con, Some("REPLACE")), Ok("OK".into()));
    assert_eq!(
        restore(&mut con, Some("BAD")),
        Err(
            "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
                .into()
        )
    );
    let other = "#!lua name=lib2\nredis.register_function('f2', function() return 2 end)";
    let _: String = cmd(&mut con, &["FUNCTION", "LOAD", other]);
    assert_eq!(restore(&mut con, Some("FLUSH")), Ok("OK".into()));
    assert_eq!(
        err(&mut con, &["FCALL", "f2", "0"]),
        "ERR Function not found"
    );
    assert_eq!(cmd::<i64>(&mut con, &["FCALL", "f1", "0"]), 1);

    let mut broken = payload.clone();
    *broken.last_mut().expect("payload") ^= 1;
    let e: redis::RedisError = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(broken)
        .query::<String>(&mut con)
        .expect_err("bad checksum");
    assert_eq!(
        ferrite_tests::error_text(&e),
        "ERR DUMP payload version or checksum are wrong"
    );

    // Another server takes the payload as it is.
    let (_s2, mut con2) = setup();
    assert_eq!(restore(&mut con2, None), Ok("OK".into()));
    assert_eq!(cmd::<i64>(&mut con2, &["FCALL", "f1", "0"]), 1);
    let again: Vec<u8> = cmd(&mut con2, &["FUNCTION", "DUMP"]);
    assert_eq!(again, payload);
}

#[test]
fn scripts_are_atomic() {
    let (s, mut con) = setup();
    let mut other = s.client();
    let h = std::thread::spawn(move || {
        for _ in 0..200 {
            cmd::<i64>(&mut other, &["INCR", "n"]);
        }
    });
    // A script reading the counter twice never sees it change in between.
    for _ in 0..100 {
        let same: i64 = cmd(
            &mut con,
            &["EVAL", "local a = redis.call('get','n') for i=1,2000 do end local b = redis.call('get','n') if a == b then return 1 else return 0 end", "0"],
        );
        assert_eq!(same, 1);
    }
    h.join().expect("writer");
}

#[test]
fn script_writes_are_propagated_as_one_transaction() {
    let (s, mut con) = setup();
    let mut link = ferrite_tests::attach_replica(&s);
    cmd::<()>(&mut con, &["SET", "warm", "up"]);
    let _ = link.read_until(|b| b.ends_with(b"up\r\n"), Duration::from_secs(5));
    cmd::<()>(
        &mut con,
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 'a') redis.call('incr', 'n') redis.call('get', 'n')",
            "1",
            "k",
        ],
    );
    let got = link.read_until(|b| b.ends_with(b"EXEC\r\n"), Duration::from_secs(5));
    assert_eq!(
        text(&got),
        "*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\na\r\n*2\r\n$4\r\nincr\r\n$1\r\nn\r\n*1\r\n$4\r\nEXEC\r\n"
    );
    // One write alone needs no wrapping; SCRIPT LOAD propagates nothing.
    cmd::<String>(&mut con, &["SCRIPT", "LOAD", "return 1"]);
    cmd::<()>(&mut con, &["EVAL", "redis.call('del', 'k')", "0"]);
    let got = link.read_until(|b| b.ends_with(b"k\r\n"), Duration::from_secs(5));
    assert_eq!(text(&got), "*2\r\n$3\r\ndel\r\n$1\r\nk\r\n");
}

#[test]
fn eval_inside_multi_runs_in_exec() {
    let (_s, mut con) = setup();
    cmd::<()>(&mut con, &["MULTI"]);
    cmd::<()>(
        &mut con,
        &["EVAL", "return redis.call('incr', KEYS[1])", "1", "c"],
    );
    cmd::<()>(&mut con, &["INCR", "c"]);
    let v: Vec<i64> = cmd(&mut con, &["EXEC"]);
    assert_eq!(v, vec![1, 2]);
}

#[test]
fn functions_load_call_list_and_delete() {
    let (_s, mut con) = setup();
    let lib = "#!lua name=mylib\n\
               redis.register_function('echo1', function(keys, args) return args[1] end)\n\
               redis.register_function{function_name='get1', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";
    assert_eq!(cmd::<String>(&mut con, &["FUNCTION", "LOAD", lib]), "mylib");
    assert_eq!(
        err(&mut con, &["FUNCTION", "LOAD", lib]),
        "ERR Library 'mylib' already exists"
    );
    assert_eq!(
        cmd::<String>(&mut con, &["FUNCTION", "LOAD", "REPLACE", lib]),
        "mylib"
    );
    assert_eq!(
        cmd::<String>(&mut con, &["FCALL", "echo1", "0", "hi"]),
        "hi"
    );
    cmd::<()>(&mut con, &["SET", "k", "v"]);
    assert_eq!(
        cmd::<String>(&mut con, &["FCALL_RO", "get1", "1", "k"]),
        "v"
    );
    assert_eq!(
        err(&mut con, &["FCALL_RO", "echo1", "0"]),
        "ERR Can not execute a script with write flag using *_ro command."
    );
    assert_eq!(
        err(&mut con, &["FCALL", "nosuch", "0"]),
        "ERR Function not found"
    );
    // Function names ignore case; the function is looked up before the
    // key count is read.
    assert_eq!(
        cmd::<String>(&mut con, &["FCALL", "ECHO1", "0", "hi"]),
        "hi"
    );
    assert_eq!(
        err(&mut con, &["FCALL", "echo1", "bad"]),
        "ERR Bad number of keys provided"
    );
    assert_eq!(
        err(&mut con, &["FCALL", "nosuch", "bad"]),
        "ERR Function not found"
    );
    assert_eq!(
        err(&mut con, &["FUNCTION", "LOAD", "#!lua name=bad\nx = 1"]),
        "ERR Error registering functions: ERR user_function:2: Attempt to modify a readonly table"
    );
    let list: Value = cmd(&mut con, &["FUNCTION", "LIST"]);
    assert!(matches!(&list, Value::Array(libs) if libs.len() == 1));
    assert_eq!(
        cmd::<String>(&mut con, &["FUNCTION", "DELETE", "mylib"]),
        "OK"
    );
    assert_eq!(
        err(&mut con, &["FCALL", "echo1", "0"]),
        "ERR Function not found"
    );
    assert_eq!(cmd::<String>(&mut con, &["FUNCTION", "FLUSH"]), "OK");
}

#[test]
fn cmsgpack_round_trips_as_lua_cmsgpack_encodes() {
    let (_s, mut con) = setup();
    let script = "local e = cmsgpack.pack(0.1, -1099511627776, 'abc', {1,2}, {a=1}) \
                  local h = '' for i = 1, #e do h = h .. string.format('%02x', string.byte(e, i)) end \
                  local a, b, c, d = cmsgpack.unpack(e) \
                  return {h, c, d[2]}";
    assert_eq!(
        cmd::<Value>(&mut con, &["EVAL", script, "0"]),
        Value::Array(vec![
            Value::BulkString(
                b"cb3fb999999999999ad3ffffff0000000000a361626392010281a16101".to_vec()
            ),
            Value::BulkString(b"abc".to_vec()),
            Value::Int(2),
        ])
    );
}

#[test]
fn script_info_fields() {
    let (_s, mut con) = setup();
    cmd::<String>(&mut con, &["SCRIPT", "LOAD", "return 1"]);
    cmd::<String>(&mut con, &["SCRIPT", "LOAD", "return 2"]);
    assert_eq!(
        ferrite_tests::info_int(&mut con, "memory", "number_of_cached_scripts"),
        2
    );
    assert!(ferrite_tests::info_int(&mut con, "memory", "used_memory_lua") > 0);
    cmd::<String>(&mut con, &["SCRIPT", "FLUSH", "ASYNC"]);
    assert_eq!(
        ferrite_tests::info_int(&mut con, "memory", "number_of_cached_scripts"),
        0
    );
}

#[test]
fn scripts_follow_min_replicas_and_refuse_blocking_stream_reads() {
    let (_s, mut c) = setup();
    let _: () = cmd(&mut c, &["set", "x", "some value"]);
    let _: () = cmd(&mut c, &["config", "set", "min-replicas-to-write", "1"]);
    let get = "return redis.call('get','x')";
    // A no-writes script and a script without flags may read.
    let v: String = cmd(
        &mut c,
        &["eval", &format!("#!lua flags=no-writes\n{get}"), "1", "x"],
    );
    assert_eq!(v, "some value");
    let v: String = cmd(&mut c, &["eval", get, "1", "x"]);
    assert_eq!(v, "some value");
    // A script with flags that may write is refused up front, a script
    // without flags at its first write.
    assert!(err(&mut c, &["eval", &format!("#!lua\n{get}"), "1", "x"])
        .starts_with("NOREPLICAS Not enough good replicas to write."));
    assert!(err(
        &mut c,
        &["eval", "return redis.call('set','x',1)", "1", "x"]
    )
    .starts_with("NOREPLICAS Not enough good replicas to write."));
    let _: () = cmd(&mut c, &["config", "set", "min-replicas-to-write", "0"]);
    assert_eq!(cmd::<String>(&mut c, &["get", "x"]), "some value");
    assert!(err(
        &mut c,
        &[
            "eval",
            "return redis.call('XREAD','BLOCK','0','STREAMS','s','$')",
            "0"
        ]
    )
    .starts_with("ERR XREAD command is not allowed with BLOCK option from scripts"));
}
