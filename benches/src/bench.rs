//! One server under test: its connection, `INFO`/`CONFIG` access, the
//! per-server `maxmemory` sizing and the cache-aside replay of the stream.
//!
//! Speaks only plain RESP commands every Redis-compatible server has
//! (`GET`, `SET`, `INFO`, `CONFIG GET/SET`, `FLUSHALL`, `DBSIZE`), so the same
//! code measures Ferrite and real Redis.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::{ConnectionLike, RedisError, Value};
use thiserror::Error;
use tracing::{info, warn};

use crate::args::Options;
use crate::zipf::{Rng, Zipf};

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one reply may take; generous for a `FLUSHALL` on a loaded machine.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a server could not be measured.
#[derive(Debug, Error)]
pub enum BenchError {
    /// The connection or a command failed.
    #[error("{addr}: {source}")]
    Redis {
        /// The server.
        addr: String,
        /// The client's error.
        #[source]
        source: RedisError,
    },
    /// `INFO` lacks a field the benchmark needs.
    #[error("{addr}: INFO {section} has no {field} field")]
    MissingInfo {
        /// The server.
        addr: String,
        /// The `INFO` section asked for.
        section: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A reply of a type the command never returns on Redis.
    #[error("{addr}: unexpected reply to {command}: {reply}")]
    Unexpected {
        /// The server.
        addr: String,
        /// The command.
        command: &'static str,
        /// The reply, debug-printed.
        reply: String,
    },
    /// The server holds data the benchmark would destroy.
    #[error("{addr} already holds keys ({keyspace}); the benchmark runs FLUSHALL, pass --allow-flush to run anyway")]
    NotEmpty {
        /// The server.
        addr: String,
        /// Its `INFO keyspace` lines.
        keyspace: String,
    },
    /// Loading keys did not raise `used_memory`, so per-key memory is unknown.
    #[error("{addr}: loading {keys} keys did not raise used_memory ({before} -> {after}); cannot size maxmemory")]
    NoGrowth {
        /// The server.
        addr: String,
        /// Keys loaded.
        keys: usize,
        /// `used_memory` when empty.
        before: u64,
        /// `used_memory` when loaded.
        after: u64,
    },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, BenchError>;

/// Key names and the value of the stream: every key has the same length
/// (ranks zero-padded), so per-key memory is the same for all of them.
#[derive(Debug, Clone)]
pub struct Shape {
    width: usize,
    value: Vec<u8>,
}

impl Shape {
    /// Keys `key:<rank>` for ranks `0..keys`, values of `value_size` bytes.
    pub fn new(keys: usize, value_size: usize) -> Self {
        let width = keys.saturating_sub(1).to_string().len();
        Self {
            width,
            value: vec![b'v'; value_size],
        }
    }

    /// The key name of a rank.
    pub fn key(&self, rank: usize) -> String {
        format!("key:{rank:0width$}", width = self.width)
    }
}

/// How `maxmemory` was chosen for one server.
#[derive(Debug, Clone)]
pub struct Sizing {
    /// `used_memory` of the flushed server.
    pub empty: u64,
    /// Measured bytes per key of the stream's shape.
    pub per_key: f64,
    /// Keys loaded to measure `per_key`.
    pub sample_keys: usize,
    /// The limit set: `empty + target_keys * per_key`.
    pub maxmemory: u64,
}

/// What one replay of the stream under one policy showed.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// GETs sent, warm-up included.
    pub requests: u64,
    /// GETs counted in the hit ratio.
    pub measured: u64,
    /// Counted GETs that found their key.
    pub hits: u64,
    /// `DBSIZE` at the end.
    pub keys_held: u64,
    /// Keys evicted during the run (`evicted_keys` delta), if the server reports it.
    pub evicted: Option<u64>,
    /// The largest `used_memory` sampled during the run.
    pub max_used: u64,
    /// SETs answered with an error (e.g. `-OOM`).
    pub set_errors: u64,
    /// The first such error's text.
    pub first_set_error: Option<String>,
    /// Wall time of the replay.
    pub elapsed: Duration,
}

impl RunResult {
    /// Hits over measured GETs.
    pub fn hit_ratio(&self) -> f64 {
        if self.measured == 0 {
            0.0
        } else {
            self.hits as f64 / self.measured as f64
        }
    }
}

/// A connection to one server under test.
pub struct Server {
    addr: String,
    con: redis::Connection,
}

/// `INFO` text as `field -> value`.
/// The memory `maxmemory` limits: `used_memory` less
/// `mem_not_counted_for_evict` (replica buffers; 0 in this benchmark, which
/// attaches no replica), so both servers are measured the way their
/// eviction measures them.
fn evictable_used(info: &HashMap<String, String>) -> Option<u64> {
    let used = info.get("used_memory")?.parse::<u64>().ok()?;
    let not_counted = info
        .get("mem_not_counted_for_evict")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Some(used.saturating_sub(not_counted))
}

fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

impl Server {
    /// Connects to `addr` (`HOST:PORT`).
    pub fn connect(addr: &str) -> Result<Self> {
        let wrap = |source| BenchError::Redis {
            addr: addr.to_owned(),
            source,
        };
        let client = redis::Client::open(format!("redis://{addr}/")).map_err(wrap)?;
        let con = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(wrap)?;
        con.set_read_timeout(Some(READ_TIMEOUT)).map_err(wrap)?;
        Ok(Self {
            addr: addr.to_owned(),
            con,
        })
    }

    fn err(&self, source: RedisError) -> BenchError {
        BenchError::Redis {
            addr: self.addr.clone(),
            source,
        }
    }

    fn unexpected(&self, command: &'static str, reply: &Value) -> BenchError {
        BenchError::Unexpected {
            addr: self.addr.clone(),
            command,
            reply: format!("{reply:?}"),
        }
    }

    fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T> {
        cmd.query(&mut self.con).map_err(|e| self.err(e))
    }

    /// Sends a packed pipeline of `count` commands and returns every reply,
    /// error replies included (the client's `query` would stop at the first).
    fn pipeline(&mut self, pipe: &redis::Pipeline, count: usize) -> Result<Vec<Value>> {
        let packed = pipe.get_packed_pipeline();
        self.con
            .req_packed_commands(&packed, 0, count)
            .map_err(|e| self.err(e))
    }

    /// The server's `redis_version` (Ferrite reports the Redis version it follows).
    pub fn version(&mut self) -> Result<String> {
        Ok(self
            .info("server")?
            .remove("redis_version")
            .unwrap_or_else(|| "?".into()))
    }

    fn info(&mut self, section: &'static str) -> Result<HashMap<String, String>> {
        let text: String = self.query(redis::cmd("INFO").arg(section))?;
        Ok(parse_info(&text))
    }

    fn info_u64(&mut self, section: &'static str, field: &'static str) -> Result<Option<u64>> {
        Ok(self
            .info(section)?
            .get(field)
            .and_then(|v| v.parse::<u64>().ok()))
    }

    fn used_memory(&mut self) -> Result<u64> {
        evictable_used(&self.info("memory")?).ok_or_else(|| BenchError::MissingInfo {
            addr: self.addr.clone(),
            section: "memory",
            field: "used_memory",
        })
    }

    /// `used_memory` once it has stopped moving: a hash table may still be
    /// rehashing (two tables allocated) right after a bulk load.
    fn settled_used_memory(&mut self) -> Result<u64> {
        let mut last = self.used_memory()?;
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.used_memory()?;
            if now == last {
                return Ok(now);
            }
            last = now;
        }
        warn!(addr = %self.addr, "used_memory still moving after 3 s; using the last reading");
        Ok(last)
    }

    fn evicted_keys(&mut self) -> Result<Option<u64>> {
        self.info_u64("stats", "evicted_keys")
    }

    /// One `CONFIG GET` value.
    pub fn config_get(&mut self, name: &str) -> Result<String> {
        let reply: Value = self.query(redis::cmd("CONFIG").arg("GET").arg(name))?;
        let value = match &reply {
            Value::Array(items) if items.len() == 2 => match &items[1] {
                Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            },
            Value::Map(pairs) if pairs.len() == 1 => match &pairs[0].1 {
                Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            },
            _ => None,
        };
        value.ok_or_else(|| self.unexpected("CONFIG GET", &reply))
    }

    /// One `CONFIG SET`.
    pub fn config_set(&mut self, name: &str, value: &str) -> Result<()> {
        self.query::<()>(redis::cmd("CONFIG").arg("SET").arg(name).arg(value))
    }

    /// `FLUSHALL` (synchronous, so memory is back when it answers).
    pub fn flushall(&mut self) -> Result<()> {
        self.query::<()>(redis::cmd("FLUSHALL").arg("SYNC"))
    }

    /// Fails unless every database is empty or `allow_flush` is set.
    pub fn check_empty(&mut self, allow_flush: bool) -> Result<()> {
        if allow_flush {
            return Ok(());
        }
        let text: String = self.query(redis::cmd("INFO").arg("keyspace"))?;
        let dbs: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("db"))
            .map(str::trim)
            .collect();
        if dbs.is_empty() {
            Ok(())
        } else {
            Err(BenchError::NotEmpty {
                addr: self.addr.clone(),
                keyspace: dbs.join(" "),
            })
        }
    }

    /// SETs ranks `0..keys` in pipelines, without a memory limit.
    fn load(&mut self, shape: &Shape, keys: usize, batch: usize) -> Result<()> {
        let mut start = 0;
        while start < keys {
            let end = (start + batch).min(keys);
            let mut pipe = redis::pipe();
            for rank in start..end {
                pipe.cmd("SET").arg(shape.key(rank)).arg(&shape.value[..]);
            }
            for reply in self.pipeline(&pipe, end - start)? {
                if reply != Value::Okay {
                    return Err(self.unexpected("SET", &reply));
                }
            }
            start = end;
        }
        Ok(())
    }

    /// Measures this server's own memory per key of the stream's shape
    /// (load `sample_keys` keys with no limit, read the `used_memory` delta,
    /// flush) and derives the `maxmemory` that holds `target_keys` of them.
    pub fn size(&mut self, opts: &Options, shape: &Shape) -> Result<Sizing> {
        let target = opts.target_keys();
        // Ranks past N would have longer names than the stream's keys.
        let sample_keys = opts.sizing_keys.unwrap_or(target).min(opts.keys);
        self.config_set("maxmemory", "0")?;
        self.flushall()?;
        let empty = self.settled_used_memory()?;
        self.load(shape, sample_keys, opts.batch)?;
        let loaded = self.settled_used_memory()?;
        self.flushall()?;
        if loaded <= empty {
            return Err(BenchError::NoGrowth {
                addr: self.addr.clone(),
                keys: sample_keys,
                before: empty,
                after: loaded,
            });
        }
        let per_key = (loaded - empty) as f64 / sample_keys as f64;
        let maxmemory = empty + (target as f64 * per_key).round() as u64;
        Ok(Sizing {
            empty,
            per_key,
            sample_keys,
            maxmemory,
        })
    }

    /// Replays the stream once under `policy` with `maxmemory` from
    /// `sizing`: for each GET that misses, SET the key (cache-aside).
    pub fn run(
        &mut self,
        opts: &Options,
        zipf: &Zipf,
        shape: &Shape,
        policy: &str,
        sizing: &Sizing,
    ) -> Result<RunResult> {
        self.config_set("maxmemory", "0")?;
        self.flushall()?;
        self.config_set("maxmemory-policy", policy)?;
        let evicted_before = self.evicted_keys()?;
        self.config_set("maxmemory", &sizing.maxmemory.to_string())?;

        let started = Instant::now();
        let warmup = opts.warmup_requests();
        let progress_step = (opts.requests / 10).max(1);
        let mut next_progress = progress_step;
        let mut rng = Rng::new(opts.seed);
        let mut result = RunResult {
            requests: 0,
            measured: 0,
            hits: 0,
            keys_held: 0,
            evicted: None,
            max_used: self.used_memory()?,
            set_errors: 0,
            first_set_error: None,
            elapsed: Duration::ZERO,
        };
        let mut ranks = Vec::with_capacity(opts.batch);
        let mut batch_no: u64 = 0;
        while result.requests < opts.requests {
            let n = (opts.requests - result.requests).min(opts.batch as u64) as usize;
            ranks.clear();
            ranks.extend((0..n).map(|_| zipf.sample(&mut rng)));

            let mut gets = redis::pipe();
            for &rank in &ranks {
                gets.cmd("GET").arg(shape.key(rank));
            }
            let replies = self.pipeline(&gets, n)?;
            let mut sets = redis::pipe();
            let mut set_count = 0;
            for (i, reply) in replies.iter().enumerate() {
                let hit = match reply {
                    Value::BulkString(_) => true,
                    Value::Nil => false,
                    other => return Err(self.unexpected("GET", other)),
                };
                if result.requests + i as u64 >= warmup {
                    result.measured += 1;
                    result.hits += u64::from(hit);
                }
                if !hit {
                    sets.cmd("SET")
                        .arg(shape.key(ranks[i]))
                        .arg(&shape.value[..]);
                    set_count += 1;
                }
            }
            result.requests += n as u64;
            batch_no += 1;

            // The memory sample rides at the end of the SET pipeline, so it
            // sees the server right after the writes that could overshoot.
            let sample =
                batch_no.is_multiple_of(opts.sample_every) || result.requests == opts.requests;
            if sample {
                sets.cmd("INFO").arg("memory");
            }
            let total = set_count + usize::from(sample);
            if total == 0 {
                continue;
            }
            let replies = self.pipeline(&sets, total)?;
            for reply in &replies[..set_count] {
                match reply {
                    Value::Okay => {}
                    Value::ServerError(e) => {
                        result.set_errors += 1;
                        // The crate does not export the error type, only its methods.
                        result
                            .first_set_error
                            .get_or_insert_with(|| match e.details() {
                                Some(d) => format!("{} {d}", e.code()),
                                None => e.code().to_owned(),
                            });
                    }
                    other => return Err(self.unexpected("SET", other)),
                }
            }
            if sample {
                let used = match &replies[set_count] {
                    Value::BulkString(b) => {
                        evictable_used(&parse_info(&String::from_utf8_lossy(b)))
                    }
                    Value::VerbatimString { text, .. } => evictable_used(&parse_info(text)),
                    other => return Err(self.unexpected("INFO", other)),
                };
                let used = used.ok_or_else(|| BenchError::MissingInfo {
                    addr: self.addr.clone(),
                    section: "memory",
                    field: "used_memory",
                })?;
                result.max_used = result.max_used.max(used);
            }
            if result.requests >= next_progress {
                info!(
                    addr = %self.addr,
                    policy,
                    done = result.requests,
                    of = opts.requests,
                    hit_ratio = format_args!("{:.4}", result.hit_ratio()),
                    set_errors = result.set_errors,
                    "progress"
                );
                next_progress += progress_step;
            }
        }
        result.elapsed = started.elapsed();
        result.keys_held = self.query(&redis::cmd("DBSIZE"))?;
        result.max_used = result.max_used.max(self.used_memory()?);
        result.evicted = match (evicted_before, self.evicted_keys()?) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_one_length() {
        let shape = Shape::new(1_000_000, 100);
        assert_eq!(shape.key(0), "key:000000");
        assert_eq!(shape.key(999_999), "key:999999");
        assert_eq!(shape.value.len(), 100);
        assert_eq!(Shape::new(1, 1).key(0), "key:0");
    }

    #[test]
    fn info_text_parses_into_fields() {
        let info =
            parse_info("# Memory\r\nused_memory:1234\r\nmaxmemory_policy:allkeys-lru\r\n\r\n");
        assert_eq!(info.get("used_memory").map(String::as_str), Some("1234"));
        assert_eq!(
            info.get("maxmemory_policy").map(String::as_str),
            Some("allkeys-lru")
        );
        assert_eq!(info.len(), 2);
    }
}
