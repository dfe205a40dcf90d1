//! `MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
//! [AUTH password | AUTH2 username password] [KEYS key ...]`, as Redis
//! 7.0's `migrateCommand`: the keys are serialized as `DUMP` does, sent to
//! the target as `RESTORE` commands (after `AUTH` and `SELECT`), and, unless
//! `COPY`, deleted here once the target acknowledged them; what was deleted
//! propagates as one `DEL`.
//!
//! Like Redis, the command blocks while it talks to the target (up to
//! `timeout` ms per operation), with the keys' shards held, so nothing
//! changes a key between its serialization and its deletion. Redis keeps
//! the connection to a target for 10 seconds for the next `MIGRATE`; here
//! each call connects anew.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use ferrite_storage::NO_EXPIRE;

use crate::command::ctx::{int_arg, is};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::propagate::encode;
use crate::pubsub::notify::GENERIC;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[("migrate", migrate)];

/// Parsed options.
struct Options<'a> {
    copy: bool,
    replace: bool,
    username: Option<&'a [u8]>,
    password: Option<&'a [u8]>,
    keys: &'a [Bytes],
}

fn options(args: &[Bytes]) -> Result<Options<'_>, CmdError> {
    let mut o = Options {
        copy: false,
        replace: false,
        username: None,
        password: None,
        keys: &args[3..4],
    };
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let a = &args[j][..];
        if is(a, "copy") {
            o.copy = true;
        } else if is(a, "replace") {
            o.replace = true;
        } else if is(a, "auth") {
            if more == 0 {
                return Err(CmdError::Syntax);
            }
            j += 1;
            o.password = Some(&args[j]);
        } else if is(a, "auth2") {
            if more < 2 {
                return Err(CmdError::Syntax);
            }
            o.username = Some(&args[j + 1]);
            o.password = Some(&args[j + 2]);
            j += 2;
        } else if is(a, "keys") {
            if !args[3].is_empty() {
                return Err(CmdError::err(
                    "When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            o.keys = &args[j + 1..];
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// How talking to the target failed (Redis's `socket_err` texts).
enum Io {
    Connect,
    Write(std::io::Error),
    Read(std::io::Error),
}

impl Io {
    fn is_timeout(&self) -> bool {
        match self {
            Io::Connect => false,
            Io::Write(e) | Io::Read(e) => matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
        }
    }

    fn error(&self) -> CmdError {
        CmdError::Other(match self {
            Io::Connect => "IOERR error or timeout connecting to the client".into(),
            Io::Write(_) => "IOERR error or timeout writing to target instance".into(),
            Io::Read(_) => "IOERR error or timeout reading to target instance".into(),
        })
    }
}

/// Sends `payload` and reads `replies` reply lines; the lines read so far
/// on a read error (so acknowledged keys are still known).
fn exchange(
    host: &str,
    port: u16,
    timeout: Duration,
    payload: &[u8],
    replies: usize,
) -> Result<Vec<String>, (Io, Vec<String>)> {
    let addr = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or((Io::Connect, Vec::new()))?;
    let stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|_| (Io::Connect, Vec::new()))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|_| stream.set_read_timeout(Some(timeout)))
        .map_err(|_| (Io::Connect, Vec::new()))?;
    (&stream)
        .write_all(payload)
        .map_err(|e| (Io::Write(e), Vec::new()))?;
    let mut reader = BufReader::new(&stream);
    let mut lines = Vec::with_capacity(replies);
    for _ in 0..replies {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => {
                let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                return Err((Io::Read(eof), lines));
            }
            Ok(_) => lines.push(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => return Err((Io::Read(e), lines)),
        }
    }
    Ok(lines)
}

fn migrate(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let o = options(args)?;
    let mut timeout = int_arg(&args[5])?;
    let dbid = int_arg(&args[4])?;
    if timeout <= 0 {
        timeout = 1000;
    }
    let timeout = Duration::from_millis(timeout as u64);
    let host = String::from_utf8_lossy(&args[1]).into_owned();
    let port = int_arg(&args[2])
        .ok()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    let c = &*ctx;
    let now = c.now;
    enum Outcome {
        NoKey,
        Done(Result<(), CmdError>),
    }
    let keys = o.keys;
    let compress = c.srv.config.read().flag("rdbcompression");
    let outcome = c.db().with_shards(keys.iter().map(|k| &k[..]), |g| {
        // The keys to send, with their payloads and remaining TTLs.
        let mut found: Vec<(&[u8], Vec<u8>, i64)> = Vec::new();
        for k in keys {
            match g.shard(k).get(k, now) {
                Some(e) => {
                    c.srv.stats.hit();
                    let ttl = if e.expire_at == NO_EXPIRE {
                        0
                    } else {
                        (e.expire_at - now).max(1)
                    };
                    found.push((k, super::dump::dump_payload(&e.value, compress), ttl));
                }
                None => c.srv.stats.miss(),
            }
        }
        if found.is_empty() {
            return Outcome::NoKey;
        }
        let mut payload = Vec::new();
        if let Some(pw) = o.password {
            match o.username {
                Some(u) => encode(&mut payload, &[b"AUTH", u, pw]),
                None => encode(&mut payload, &[b"AUTH", pw]),
            };
        }
        encode(&mut payload, &[b"SELECT", dbid.to_string().as_bytes()]);
        for (k, dump, ttl) in &found {
            let ttl = ttl.to_string();
            let mut cmd: Vec<&[u8]> = vec![b"RESTORE", k, ttl.as_bytes(), dump];
            if o.replace {
                cmd.push(b"REPLACE");
            }
            encode(&mut payload, &cmd);
        }
        let before = usize::from(o.password.is_some()) + 1;
        let want = before + found.len();
        let mut result = exchange(&host, port, timeout, &payload, want);
        if let Err((e, lines)) = &result {
            // One retry when nothing was acknowledged and it was not a
            // timeout (a stale connection in Redis's cache).
            if lines.len() <= before && !e.is_timeout() {
                result = exchange(&host, port, timeout, &payload, want);
            }
        }
        let (lines, io_err) = match result {
            Ok(l) => (l, None),
            Err((e, l)) => (l, Some(e)),
        };
        let mut target_err: Option<String> = lines
            .iter()
            .take(before)
            .find(|l| l.starts_with('-'))
            .map(|l| l[1..].to_string());
        let mut deleted: Vec<&[u8]> = Vec::new();
        for ((k, _, _), line) in found.iter().zip(lines.iter().skip(before)) {
            if target_err.is_some() || line.starts_with('-') {
                if target_err.is_none() {
                    target_err = Some(line[1..].to_string());
                }
            } else if !o.copy && g.shard(k).delete(k, now) {
                c.notify(GENERIC, "del", k);
                deleted.push(k);
            }
        }
        if !deleted.is_empty() {
            let mut del: Vec<&[u8]> = vec![b"DEL"];
            del.extend(deleted);
            c.propagate(&del);
        }
        Outcome::Done(match (target_err, io_err) {
            (Some(msg), _) => Err(CmdError::err(format!(
                "Target instance replied with error: {msg}"
            ))),
            (None, Some(e)) => Err(e.error()),
            (None, None) => Ok(()),
        })
    });
    match outcome {
        Outcome::NoKey => ctx.out.simple(b"NOKEY"),
        Outcome::Done(r) => {
            r?;
            ctx.out.ok();
        }
    }
    Ok(())
}
