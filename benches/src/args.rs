//! Command-line options of `hit-ratio`, parsed with `std` only (a handful
//! of `--name value` flags do not warrant a parser dependency).

use thiserror::Error;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Ferrite's `HOST:PORT`, if it is to be measured.
    pub ferrite: Option<String>,
    /// Real Redis's `HOST:PORT`, if it is to be measured.
    pub redis: Option<String>,
    /// Size of the key universe (N).
    pub keys: usize,
    /// Total GETs in the stream, warm-up included.
    pub requests: u64,
    /// Zipf exponent of the key popularity.
    pub zipf: f64,
    /// Eviction policies to run, each on a freshly flushed server.
    pub policies: Vec<String>,
    /// Share of the N keys that `maxmemory` is sized to hold.
    pub cache_fraction: f64,
    /// Bytes of each value SET on a miss.
    pub value_size: usize,
    /// GETs per pipeline.
    pub batch: usize,
    /// Share of the stream, from its start, left out of the hit ratio.
    pub warmup: f64,
    /// Seed of the key stream; equal seeds give equal streams.
    pub seed: u64,
    /// Read `used_memory` after every this many batches.
    pub sample_every: u64,
    /// Keys loaded to measure per-key memory (default: the cache's target key count).
    pub sizing_keys: Option<usize>,
    /// Largest allowed max(used_memory) / maxmemory.
    pub max_overshoot: f64,
    /// Run even when the server already holds keys (they are flushed).
    pub allow_flush: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ferrite: None,
            redis: None,
            keys: 1_000_000,
            requests: 5_000_000,
            zipf: 0.99,
            policies: vec!["allkeys-lru".into(), "allkeys-lfu".into()],
            cache_fraction: 0.10,
            value_size: 100,
            batch: 256,
            warmup: 0.20,
            seed: 20_240_601,
            sample_every: 4,
            sizing_keys: None,
            max_overshoot: 1.05,
            allow_flush: false,
        }
    }
}

/// The usage text printed by `--help` and after a usage error.
pub const USAGE: &str = "\
usage: hit-ratio [--ferrite HOST:PORT] [--redis HOST:PORT] [options]

Replays one deterministic Zipf key stream, cache-aside (GET; SET on a miss),
against each server with maxmemory sized to hold a fraction of the keys,
and prints the hit ratio per server and eviction policy. Each server is
FLUSHALLed and its maxmemory/maxmemory-policy are changed during the run
(and restored after it).

options (defaults in brackets):
  --ferrite HOST:PORT      Ferrite server to measure
  --redis HOST:PORT        real Redis server to measure
  --keys N                 key universe size [1000000]
  --requests N             GETs in the stream, warm-up included [5000000]
  --zipf S                 Zipf exponent [0.99]
  --policies P1,P2         maxmemory policies [allkeys-lru,allkeys-lfu]
  --cache-fraction F       share of the keys maxmemory must hold [0.10]
  --value-size BYTES       size of each value [100]
  --batch N                GETs per pipeline [256]
  --warmup F               share of the stream left out of the hit ratio [0.20]
  --seed N                 stream seed [20240601]
  --sample-every N         read used_memory every N batches [4]
  --sizing-keys N          keys loaded to measure per-key memory [keys * cache-fraction]
  --max-overshoot R        fail when max used_memory / maxmemory > R [1.05]
  --allow-flush            run even if the server already holds keys
  -h, --help               this text

exit status: 0 all checks passed; 1 a check failed (memory ceiling
exceeded, SET refused, Ferrite's hit ratio below Redis's) or a run failed;
2 usage error.";

/// A command line that cannot be run.
#[derive(Debug, Error, PartialEq)]
pub enum ArgsError {
    /// `--help` was given: print the usage and stop.
    #[error("help requested")]
    Help,
    /// An option the benchmark does not know.
    #[error("unknown option {0}")]
    Unknown(String),
    /// An option given without its value.
    #[error("{0} needs a value")]
    MissingValue(String),
    /// A value that does not parse or is out of range.
    #[error("bad value for {flag}: {value:?} ({why})")]
    BadValue {
        /// The option.
        flag: String,
        /// What was given.
        value: String,
        /// What was expected.
        why: &'static str,
    },
    /// Nothing to measure.
    #[error("give --ferrite HOST:PORT and/or --redis HOST:PORT")]
    NoServer,
}

fn bad(flag: &str, value: &str, why: &'static str) -> ArgsError {
    ArgsError::BadValue {
        flag: flag.to_owned(),
        value: value.to_owned(),
        why,
    }
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(
    flag: &str,
    value: &str,
) -> Result<T, ArgsError> {
    match value.parse::<T>() {
        Ok(v) if v > T::default() => Ok(v),
        _ => Err(bad(flag, value, "a positive integer")),
    }
}

fn fraction(flag: &str, value: &str, lo_inclusive: bool) -> Result<f64, ArgsError> {
    match value.parse::<f64>() {
        Ok(v) if v < 1.0 && (v > 0.0 || (lo_inclusive && v == 0.0)) => Ok(v),
        _ => Err(bad(flag, value, "a fraction below 1")),
    }
}

fn address(flag: &str, value: &str) -> Result<String, ArgsError> {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(value.to_owned())
        }
        _ => Err(bad(flag, value, "HOST:PORT")),
    }
}

impl Options {
    /// Parses the arguments after the program name.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, ArgsError> {
        let mut o = Options::default();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                return Err(ArgsError::Help);
            }
            if flag == "--allow-flush" {
                o.allow_flush = true;
                continue;
            }
            let f = flag.as_str();
            let mut value = || {
                it.next()
                    .ok_or_else(|| ArgsError::MissingValue(flag.clone()))
            };
            match f {
                "--ferrite" => o.ferrite = Some(address(f, &value()?)?),
                "--redis" => o.redis = Some(address(f, &value()?)?),
                "--keys" => o.keys = positive(f, &value()?)?,
                "--requests" => o.requests = positive(f, &value()?)?,
                "--zipf" => {
                    let v = value()?;
                    o.zipf = match v.parse::<f64>() {
                        Ok(s) if s.is_finite() && s >= 0.0 => s,
                        _ => return Err(bad(f, &v, "a finite number >= 0")),
                    }
                }
                "--policies" => {
                    let v = value()?;
                    o.policies = v
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if o.policies.is_empty() {
                        return Err(bad(f, &v, "a comma-separated list of policies"));
                    }
                }
                "--cache-fraction" => o.cache_fraction = fraction(f, &value()?, false)?,
                "--value-size" => o.value_size = positive(f, &value()?)?,
                "--batch" => o.batch = positive(f, &value()?)?,
                "--warmup" => o.warmup = fraction(f, &value()?, true)?,
                "--seed" => {
                    let v = value()?;
                    o.seed = v
                        .parse()
                        .map_err(|_| bad(f, &v, "an unsigned 64-bit integer"))?
                }
                "--sample-every" => o.sample_every = positive(f, &value()?)?,
                "--sizing-keys" => o.sizing_keys = Some(positive(f, &value()?)?),
                "--max-overshoot" => {
                    let v = value()?;
                    o.max_overshoot = match v.parse::<f64>() {
                        Ok(r) if r >= 1.0 && r.is_finite() => r,
                        _ => return Err(bad(f, &v, "a ratio >= 1")),
                    }
                }
                _ => return Err(ArgsError::Unknown(flag.clone())),
            }
        }
        if o.ferrite.is_none() && o.redis.is_none() {
            return Err(ArgsError::NoServer);
        }
        Ok(o)
    }

    /// The number of keys the cache should hold: `keys * cache_fraction`, at least 1.
    pub fn target_keys(&self) -> usize {
        ((self.keys as f64 * self.cache_fraction).round() as usize).max(1)
    }

    /// GETs at the start of the stream left out of the hit ratio.
    pub fn warmup_requests(&self) -> u64 {
        (self.requests as f64 * self.warmup).floor() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, ArgsError> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_are_the_issue_s_setup() {
        let o = parse(&["--redis", "127.0.0.1:7000"]).unwrap();
        assert_eq!(o.keys, 1_000_000);
        assert_eq!(o.zipf, 0.99);
        assert_eq!(o.target_keys(), 100_000);
        assert_eq!(o.policies, ["allkeys-lru", "allkeys-lfu"]);
        assert_eq!(o.warmup_requests(), 1_000_000);
        assert_eq!(o.ferrite, None);
    }

    #[test]
    fn flags_override_defaults() {
        let o = parse(&[
            "--ferrite",
            "localhost:1",
            "--keys",
            "1000",
            "--requests",
            "5000",
            "--zipf",
            "1.2",
            "--policies",
            "allkeys-lfu",
            "--warmup",
            "0",
            "--allow-flush",
        ])
        .unwrap();
        assert_eq!(o.ferrite.as_deref(), Some("localhost:1"));
        assert_eq!((o.keys, o.requests, o.zipf), (1000, 5000, 1.2));
        assert_eq!(o.policies, ["allkeys-lfu"]);
        assert_eq!(o.warmup_requests(), 0);
        assert!(o.allow_flush);
    }

    #[test]
    fn rejects_bad_command_lines() {
        assert_eq!(parse(&[]).unwrap_err(), ArgsError::NoServer);
        assert_eq!(parse(&["--help"]).unwrap_err(), ArgsError::Help);
        assert!(matches!(
            parse(&["--redis", "nohost"]),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            parse(&["--redis", "h:1", "--keys", "0"]),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            parse(&["--redis", "h:1", "--warmup", "1"]),
            Err(ArgsError::BadValue { .. })
        ));
        assert_eq!(
            parse(&["--redis"]).unwrap_err(),
            ArgsError::MissingValue("--redis".into())
        );
        assert_eq!(
            parse(&["--frobnicate", "1"]).unwrap_err(),
            ArgsError::Unknown("--frobnicate".into())
        );
    }
}
