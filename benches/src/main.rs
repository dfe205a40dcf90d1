//! `hit-ratio`: the cache hit-ratio benchmark of issue 6.
//!
//! Replays one deterministic Zipf(s) key stream over N keys, cache-aside
//! (GET; SET on a miss), against Ferrite and/or real Redis with
//! `maxmemory` sized, per server, to hold a fraction of the keys, under each
//! eviction policy asked for. Prints the hit ratio, keys held, evictions and
//! the largest sampled `used_memory / maxmemory` per server and policy, then
//! a verdict: Ferrite's hit ratio must be at least Redis's, and neither may
//! exceed the memory ceiling by more than the allowed overshoot. Talks plain
//! RESP, so it runs against any Redis-compatible server.

mod args;
mod bench;
mod zipf;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use tracing::{error, info};

use args::{ArgsError, Options, USAGE};
use bench::{BenchError, RunResult, Server, Shape, Sizing};
use zipf::Zipf;

/// One server and policy's outcome.
struct Row {
    server: &'static str,
    policy: String,
    outcome: Result<(Sizing, RunResult), String>,
}

/// Runs every policy on one server, restoring its memory settings and
/// flushing it afterwards. A failure before the runs fails all its rows.
fn measure_server(
    label: &'static str,
    addr: &str,
    opts: &Options,
    zipf: &Zipf,
    shape: &Shape,
) -> Vec<Row> {
    let fail_all = |e: BenchError| {
        error!(server = label, "{e}");
        opts.policies
            .iter()
            .map(|p| Row {
                server: label,
                policy: p.clone(),
                outcome: Err(e.to_string()),
            })
            .collect()
    };
    let mut server = match Server::connect(addr) {
        Ok(s) => s,
        Err(e) => return fail_all(e),
    };
    let setup = (|| {
        server.check_empty(opts.allow_flush)?;
        let version = server.version()?;
        let maxmemory = server.config_get("maxmemory")?;
        let policy = server.config_get("maxmemory-policy")?;
        Ok::<_, BenchError>((version, maxmemory, policy))
    })();
    let (version, orig_maxmemory, orig_policy) = match setup {
        Ok(s) => s,
        Err(e) => return fail_all(e),
    };
    info!(server = label, addr, version, "sizing maxmemory");
    let sizing = match server.size(opts, shape) {
        Ok(s) => s,
        Err(e) => return fail_all(e),
    };
    println!(
        "sizing {label} {addr} (redis_version {version}): empty used_memory {} B, {:.1} B/key measured over {} keys, maxmemory {} B for {} of {} keys",
        sizing.empty,
        sizing.per_key,
        sizing.sample_keys,
        sizing.maxmemory,
        opts.target_keys(),
        opts.keys
    );
    let mut rows = Vec::new();
    for policy in &opts.policies {
        info!(server = label, addr, policy, "replaying the stream");
        let outcome = server
            .run(opts, zipf, shape, policy, &sizing)
            .map(|r| (sizing.clone(), r))
            .map_err(|e| e.to_string());
        match &outcome {
            Ok((_, r)) => info!(
                server = label,
                policy,
                hit_ratio = format_args!("{:.4}", r.hit_ratio()),
                seconds = format_args!("{:.1}", r.elapsed.as_secs_f64()),
                "done"
            ),
            Err(e) => error!(server = label, policy, "{e}"),
        }
        rows.push(Row {
            server: label,
            policy: policy.clone(),
            outcome,
        });
    }
    let restore = (|| {
        server.config_set("maxmemory", "0")?;
        server.flushall()?;
        server.config_set("maxmemory-policy", &orig_policy)?;
        server.config_set("maxmemory", &orig_maxmemory)
    })();
    if let Err(e) = restore {
        error!(server = label, "could not restore maxmemory settings: {e}");
    }
    rows
}

/// The table header, matching [`print_row`]'s columns.
fn print_header() {
    println!(
        "{:<8} {:<14} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>10} {:>13} {:>10}",
        "server",
        "policy",
        "requests",
        "measured",
        "hit_ratio",
        "keys_held",
        "target",
        "evicted",
        "maxmemory",
        "max_used/max",
        "set_errors"
    );
}

fn print_row(row: &Row, opts: &Options) {
    match &row.outcome {
        Ok((sizing, r)) => {
            println!(
                "{:<8} {:<14} {:>9} {:>9} {:>9.4} {:>9} {:>8} {:>9} {:>10} {:>13.4} {:>10}",
                row.server,
                row.policy,
                r.requests,
                r.measured,
                r.hit_ratio(),
                r.keys_held,
                opts.target_keys(),
                r.evicted
                    .map_or_else(|| "n/a".to_owned(), |e| e.to_string()),
                sizing.maxmemory,
                r.max_used as f64 / sizing.maxmemory as f64,
                r.set_errors
            );
            if let Some(e) = &r.first_set_error {
                println!("{:<8} {:<14} first SET error: {e}", row.server, row.policy);
            }
        }
        Err(e) => println!("{:<8} {:<14} error: {e}", row.server, row.policy),
    }
}

/// Checks one server's run on its own: completed, no SET refused, ceiling kept.
/// Returns the verdict fragment and whether it passed.
fn own_checks(row: Option<&Row>, opts: &Options) -> (String, bool) {
    let Some(row) = row else {
        return (String::new(), true);
    };
    match &row.outcome {
        Err(_) => (format!("{} run failed", row.server), false),
        Ok((sizing, r)) => {
            let ratio = r.max_used as f64 / sizing.maxmemory as f64;
            let ceiling_ok = ratio <= opts.max_overshoot;
            let mut s = format!(
                "{} max used/maxmemory {ratio:.4} {}",
                row.server,
                if ceiling_ok { "ok" } else { "EXCEEDED" }
            );
            if r.set_errors > 0 {
                s.push_str(&format!(", {} SETs refused", r.set_errors));
            }
            (s, ceiling_ok && r.set_errors == 0)
        }
    }
}

/// Prints the verdict line of one policy; returns whether every check passed.
fn verdict(policy: &str, rows: &[Row], opts: &Options) -> bool {
    let find = |server: &str| {
        rows.iter()
            .find(|r| r.server == server && r.policy == policy)
    };
    let (ferrite, redis) = (find("ferrite"), find("redis"));
    let ratio = |row: Option<&Row>| match row.map(|r| &r.outcome) {
        Some(Ok((_, r))) => Some(r.hit_ratio()),
        _ => None,
    };
    let (compare, compare_ok) = match (ratio(ferrite), ratio(redis)) {
        (Some(f), Some(r)) => {
            let ok = f >= r;
            (
                format!(
                    "hit ratio ferrite {f:.4} vs redis {r:.4} ({:+.2} points) {}",
                    (f - r) * 100.0,
                    if ok { "ok" } else { "BELOW REDIS" }
                ),
                ok,
            )
        }
        _ if ferrite.is_some() && redis.is_some() => ("no comparison (a run failed)".into(), false),
        (Some(f), None) => (
            format!("hit ratio ferrite {f:.4} (no Redis run to compare)"),
            true,
        ),
        (None, Some(r)) => (
            format!("hit ratio redis {r:.4} (no Ferrite run to compare)"),
            true,
        ),
        (None, None) => ("no run completed".into(), false),
    };
    let (f_checks, f_ok) = own_checks(ferrite, opts);
    let (r_checks, r_ok) = own_checks(redis, opts);
    let checks: Vec<String> = [f_checks, r_checks]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let ok = compare_ok && f_ok && r_ok;
    println!(
        "verdict {policy}: {compare}; {}: {}",
        checks.join(", "),
        if ok { "PASS" } else { "FAIL" }
    );
    ok
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(ArgsError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("hit-ratio: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let built = Instant::now();
    let zipf = match Zipf::new(opts.keys, opts.zipf) {
        Ok(z) => z,
        Err(e) => {
            eprintln!("hit-ratio: {e}");
            return ExitCode::from(2);
        }
    };
    info!(
        keys = zipf.len(),
        s = opts.zipf,
        ms = built.elapsed().as_millis() as u64,
        "Zipf table built"
    );
    let shape = Shape::new(opts.keys, opts.value_size);
    println!(
        "stream: {} GETs ({} warm-up not counted) over {} keys, Zipf {}, seed {}, {}-byte values, batches of {}; cache sized for {} keys ({:.0}%), which take {:.4} of the draws (an ideal cache's hit ratio)",
        opts.requests,
        opts.warmup_requests(),
        opts.keys,
        opts.zipf,
        opts.seed,
        opts.value_size,
        opts.batch,
        opts.target_keys(),
        opts.cache_fraction * 100.0,
        zipf.head_mass(opts.target_keys())
    );

    let mut rows = Vec::new();
    let servers = [("ferrite", &opts.ferrite), ("redis", &opts.redis)];
    for (label, addr) in servers {
        if let Some(addr) = addr {
            rows.extend(measure_server(label, addr, &opts, &zipf, &shape));
        }
    }

    println!();
    print_header();
    for row in &rows {
        print_row(row, &opts);
    }
    println!();
    let mut all_ok = true;
    for policy in &opts.policies {
        all_ok &= verdict(policy, &rows, &opts);
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
