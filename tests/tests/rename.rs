//! `rename-command` in a config file, checked against what Redis 7.0.15
//! replies: renamed commands answer to their new name only, removed ones
//! are unknown, the `COMMAND` family describes them by their real name,
//! ACL rules keep real names, and writes made under a new name survive a
//! restart from the AOF and reach a replica with the same renames.

use std::path::{Path, PathBuf};

use ferrite_tests::{cmd, err, tempdir, wait_value, TestServer};

const RENAMES: &str =
    "rename-command FLUSHALL \"\"\nrename-command config myconfig\nrename-command SET store\n";

/// A new name longer than the 64 bytes of the table's lookup buffer.
const LONG: &str = "echo_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn conf(dir: &Path, extra: &str) -> PathBuf {
    let file = dir.join("renames.conf");
    std::fs::write(&file, format!("{RENAMES}{extra}")).unwrap();
    file
}

#[test]
fn renamed_commands_answer_to_their_new_names_only() {
    let dir = tempdir("rename-names");
    let extra = format!("rename-command ECHO {LONG}\n");
    let s = TestServer::with_file(&conf(&dir, &extra), &["--dir", dir.to_str().unwrap()]);
    let mut c = s.client();
    assert_eq!(
        err(&mut c, &["FLUSHALL"]),
        "ERR unknown command 'FLUSHALL', with args beginning with: "
    );
    assert_eq!(
        err(&mut c, &["CONFIG", "GET", "port"]),
        "ERR unknown command 'CONFIG', with args beginning with: 'GET' 'port' "
    );
    let port: Vec<String> = cmd(&mut c, &["MYCONFIG", "GET", "port"]);
    assert_eq!(port, ["port", s.port().to_string().as_str()]);
    let _: () = cmd(&mut c, &["store", "k", "v"]);
    let v: String = cmd(&mut c, &["GET", "k"]);
    assert_eq!(v, "v");
    let echoed: String = cmd(&mut c, &[LONG, "hi"]);
    assert_eq!(echoed, "hi");

    // The COMMAND family finds them by their new names and describes
    // them by their real ones; removed ones are gone from it.
    let info: redis::Value = cmd(
        &mut c,
        &["COMMAND", "INFO", "myconfig", "config", "flushall"],
    );
    let redis::Value::Array(rows) = info else {
        panic!("{info:?}")
    };
    assert!(
        matches!(&rows[0], redis::Value::Array(r) if r[0] == redis::Value::BulkString(b"config".to_vec()))
    );
    assert_eq!(rows[1], redis::Value::Nil);
    assert_eq!(rows[2], redis::Value::Nil);
    let names: Vec<String> = cmd(&mut c, &["COMMAND", "LIST"]);
    assert!(names.iter().any(|n| n == "config"));
    assert!(!names.iter().any(|n| n == "flushall" || n == "myconfig"));
    let count: usize = cmd(&mut c, &["COMMAND", "COUNT"]);
    let top = names.iter().filter(|n| !n.contains('|')).count();
    assert_eq!(count, top);
    let keys: Vec<String> = cmd(&mut c, &["COMMAND", "GETKEYS", "store", "a", "b"]);
    assert_eq!(keys, ["a"]);

    // Scripts call by client names too; ACL rules name real commands.
    assert!(
        err(&mut c, &["EVAL", "return redis.call('set','x','1')", "0"])
            .starts_with("ERR Unknown Redis command called from script")
    );
    let ok: String = cmd(&mut c, &["EVAL", "return redis.call('store','x','1')", "0"]);
    assert_eq!(ok, "OK");
    let _: () = cmd(
        &mut c,
        &["ACL", "SETUSER", "u", "on", "nopass", "~*", "+set"],
    );
    let ok: String = cmd(&mut c, &["ACL", "DRYRUN", "u", "store", "k", "v"]);
    assert_eq!(ok, "OK");
    assert_eq!(
        err(&mut c, &["ACL", "SETUSER", "u", "+store"]),
        "ERR Error in ACL SETUSER modifier '+store': Unknown command or category name in ACL"
    );

    // MULTI queues by client name, as any client call.
    let _: () = cmd(&mut c, &["MULTI"]);
    assert!(err(&mut c, &["SET", "t", "1"]).starts_with("ERR unknown command 'SET'"));
    assert!(err(&mut c, &["EXEC"]).starts_with("EXECABORT"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn writes_under_new_names_survive_a_restart_and_reach_a_replica() {
    let dir = tempdir("rename-aof");
    // `store` is SET; GETSET now answers to SET, a swap that only real
    // names in the stream and the AOF can replay.
    let swap = "rename-command GETSET SET\n";
    let file = conf(&dir, &format!("{swap}appendonly yes\n"));
    let args = ["--dir", dir.to_str().unwrap()];
    {
        let s = TestServer::with_file(&file, &args);
        let mut c = s.client();
        let _: () = cmd(&mut c, &["store", "a", "1"]);
        let _: () = cmd(&mut c, &["store", "b", "2", "EX", "1000"]);

        // A replica with the same renames applies the stream, which
        // carries real names.
        let rdir = tempdir("rename-replica");
        let rfile = conf(&rdir, swap);
        let r = TestServer::with_file(&rfile, &["--dir", rdir.to_str().unwrap()]);
        let mut rc = r.client();
        let _: String = cmd(&mut rc, &["REPLICAOF", "127.0.0.1", &s.port().to_string()]);
        let _: () = cmd(&mut c, &["store", "c", "3"]);
        wait_value(&mut rc, "c", "3");
        let v: String = cmd(&mut rc, &["GET", "a"]);
        assert_eq!(v, "1");
        let _ = std::fs::remove_dir_all(&rdir);
    }
    let s = TestServer::with_file(&file, &args);
    let mut c = s.client();
    let v: Vec<Option<String>> = cmd(&mut c, &["MGET", "a", "b", "c"]);
    assert_eq!(v, [Some("1".into()), Some("2".into()), Some("3".into())]);
    let ttl: i64 = cmd(&mut c, &["TTL", "b"]);
    assert!(ttl > 900, "{ttl}");
    let old: String = cmd(&mut c, &["SET", "a", "10"]);
    assert_eq!(old, "1", "SET is GETSET here");
    let _ = std::fs::remove_dir_all(&dir);
}
