//! `MEMORY USAGE|STATS|DOCTOR|MALLOC-STATS|PURGE|HELP` and the `# Memory`
//! section of `INFO`, with Redis 7.0's field names, order and derived
//! ratios (`getMemoryOverheadData`, `getMemoryDoctorReport`).
//!
//! `used_memory` is what the server accounts for, not an allocator
//! counter: the keyspace's running sum (keys, values, nodes and bucket
//! arrays, each as the allocator serves it: `ferrite_storage::mem`), the
//! replication backlog, the clients' query buffers, and the keyspace's fixed
//! structures as the startup figure. The allocator (mimalloc) keeps no
//! allocation statistics in a release build, so the `allocator_*` fields
//! take Redis's fallback for such an allocator: allocated = `used_memory`,
//! active = resident = the process's RSS.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use ferrite_protocol::ReplyBuf;
use ferrite_storage::entry_mem;

use super::connection::write_help;
use crate::command::ctx::{int_arg, is};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::config::Config;
use crate::shared::Shared;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("memory|usage", memory_usage),
    ("memory|stats", memory_stats),
    ("memory|doctor", memory_doctor),
    ("memory|malloc-stats", memory_malloc_stats),
    ("memory|purge", memory_purge),
    ("memory|help", memory_help),
];

/// `mem_allocator`: the global allocator `main.rs` installs.
const ALLOCATOR: &str = "mimalloc";

/// Below this `used_memory` the doctor declines to judge (Redis's 5 MB).
const DOCTOR_MIN_USED: i64 = 5 * 1024 * 1024;

/// Redis's `bytesToHuman`.
pub fn bytes_to_human(n: i64) -> String {
    let d = n as f64;
    const K: f64 = 1024.0;
    if n < 1024 {
        format!("{n}B")
    } else if d < K * K {
        format!("{:.2}K", d / K)
    } else if d < K * K * K {
        format!("{:.2}M", d / (K * K))
    } else if d < K * K * K * K {
        format!("{:.2}G", d / (K * K * K))
    } else if d < K * K * K * K * K {
        format!("{:.2}T", d / (K * K * K * K))
    } else {
        format!("{:.2}P", d / (K * K * K * K * K))
    }
}

/// The process's resident set size (`used_memory_rss`), from `VmRSS` in
/// `/proc/self/status`, which is in kB whatever the page size; 0 where
/// there is no procfs.
pub fn rss_bytes() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_vm_rss(&s))
        .unwrap_or(0)
}

/// `VmRSS:   1234 kB` → bytes.
fn parse_vm_rss(status: &str) -> Option<i64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: i64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

/// The parts `used_memory` adds up, read together.
struct Parts {
    /// The keyspace's fixed structures (`used_memory_startup`).
    startup: i64,
    /// The replication backlog (`mem_replication_backlog`).
    backlog: i64,
    /// Normal and pub/sub clients' buffers (`mem_clients_normal`, kept by
    /// `crate::client_mem`).
    clients: i64,
    /// Replica links (`mem_clients_slaves`).
    replicas: i64,
    /// The keyspace's running sum.
    keyspace: i64,
}

impl Parts {
    /// Reads only atomics: eviction calls it before every command.
    fn read(srv: &Shared) -> Parts {
        Parts {
            startup: srv.store.structure_mem() as i64,
            backlog: srv.repl.backlog_mem() as i64,
            clients: crate::client_mem::normal_clients_memory(srv),
            replicas: crate::client_mem::replica_clients_memory(srv),
            keyspace: srv.store.stats().used_memory.load(Ordering::Relaxed).max(0),
        }
    }

    fn total(&self) -> i64 {
        self.startup + self.backlog + self.clients + self.replicas + self.keyspace
    }

    /// `used_memory`, recorded as the peak if it is one.
    fn used(&self, srv: &Shared) -> i64 {
        let used = self.total();
        srv.store
            .stats()
            .used_memory_peak
            .fetch_max(used, Ordering::Relaxed);
        used
    }
}

/// `used_memory`: startup structures, replication backlog, client buffers
/// and the keyspace. Records a new peak.
pub fn used_memory(srv: &Shared) -> i64 {
    Parts::read(srv).used(srv)
}

/// `used_memory` without recording the peak (no shared write), for the
/// check eviction makes before every command.
pub fn used_memory_now(srv: &Shared) -> i64 {
    Parts::read(srv).total()
}

/// Samples `used_memory` so `used_memory_peak` catches peaks between
/// `INFO` calls (Redis's `cronUpdateMemoryStats`); called by the cron.
pub fn track_peak(srv: &Shared) {
    used_memory(srv);
}

/// One database's table overheads (`MEMORY STATS` `db.N`).
struct DbOverhead {
    index: usize,
    main: i64,
    expires: i64,
}

/// One reading of every figure, taken together so the ratios agree
/// (Redis's `redisMemOverhead`).
struct Report {
    used: i64,
    peak: i64,
    startup: i64,
    backlog: i64,
    clients: i64,
    replicas: i64,
    rss: i64,
    overhead_total: i64,
    dataset: i64,
    keys: i64,
    dbs: Vec<DbOverhead>,
    clients_count: i64,
}

impl Report {
    fn take(srv: &Shared) -> Report {
        let parts = Parts::read(srv);
        let used = parts.used(srv);
        let peak = srv
            .store
            .stats()
            .used_memory_peak
            .load(Ordering::Relaxed)
            .max(used);
        let rss = rss_bytes();
        let mut dbs = Vec::new();
        let mut keys = 0;
        for index in 0..srv.store.db_count() {
            let db = srv.store.db(index);
            let n = db.len();
            if n == 0 {
                continue;
            }
            keys += n as i64;
            let (main, expires) = db.table_overhead();
            dbs.push(DbOverhead {
                index,
                main: main as i64,
                expires: expires as i64,
            });
        }
        let tables: i64 = dbs.iter().map(|d| d.main + d.expires).sum();
        let overhead_total =
            parts.startup + parts.backlog + parts.clients + parts.replicas + tables;
        Report {
            used,
            peak,
            startup: parts.startup,
            backlog: parts.backlog,
            clients: parts.clients,
            replicas: parts.replicas,
            rss,
            overhead_total,
            dataset: used - overhead_total,
            keys,
            dbs,
            clients_count: srv.clients.len() as i64,
        }
    }

    /// `used_memory_peak_perc`.
    fn peak_perc(&self) -> f64 {
        self.used as f64 * 100.0 / self.peak.max(1) as f64
    }

    /// `used_memory` beyond the startup figure, at least 1 (Redis's `net_usage`).
    fn net_usage(&self) -> i64 {
        (self.used - self.startup).max(1)
    }

    /// `used_memory_dataset_perc`.
    fn dataset_perc(&self) -> f64 {
        self.dataset as f64 * 100.0 / self.net_usage() as f64
    }

    /// `keys.bytes-per-key`.
    fn bytes_per_key(&self) -> i64 {
        if self.keys > 0 {
            self.net_usage() / self.keys
        } else {
            0
        }
    }

    /// RSS over what is accounted for (`mem_fragmentation_ratio`): Redis's
    /// `total_frag`, also its `allocator_frag` with an allocator that
    /// reports no statistics, where active is the RSS.
    fn frag(&self) -> f64 {
        self.rss as f64 / self.used.max(1) as f64
    }

    fn frag_bytes(&self) -> i64 {
        self.rss - self.used
    }
}

/// Writes the `# Memory` section body (the caller writes the header).
pub fn info_section(srv: &Shared, cfg: &Config, out: &mut String) {
    let r = Report::take(srv);
    let sys = total_system_memory();
    let mut line = |args: std::fmt::Arguments<'_>| {
        let _ = out.write_fmt(args);
        out.push_str("\r\n");
    };
    line(format_args!("used_memory:{}", r.used));
    line(format_args!("used_memory_human:{}", bytes_to_human(r.used)));
    line(format_args!("used_memory_rss:{}", r.rss));
    line(format_args!(
        "used_memory_rss_human:{}",
        bytes_to_human(r.rss)
    ));
    line(format_args!("used_memory_peak:{}", r.peak));
    line(format_args!(
        "used_memory_peak_human:{}",
        bytes_to_human(r.peak)
    ));
    line(format_args!("used_memory_peak_perc:{:.2}%", r.peak_perc()));
    line(format_args!("used_memory_overhead:{}", r.overhead_total));
    line(format_args!("used_memory_startup:{}", r.startup));
    line(format_args!("used_memory_dataset:{}", r.dataset));
    line(format_args!(
        "used_memory_dataset_perc:{:.2}%",
        r.dataset_perc()
    ));
    line(format_args!("allocator_allocated:{}", r.used));
    line(format_args!("allocator_active:{}", r.rss));
    line(format_args!("allocator_resident:{}", r.rss));
    line(format_args!("total_system_memory:{sys}"));
    line(format_args!(
        "total_system_memory_human:{}",
        bytes_to_human(sys)
    ));
    let sc = &srv.scripts;
    let lua = sc.lua_memory();
    let scripts_eval = sc.cache_memory();
    let (libs, funcs, fn_mem) = sc.function_counts();
    let vm_functions = 32 * 1024 + fn_mem;
    line(format_args!("used_memory_lua:{lua}"));
    line(format_args!("used_memory_vm_eval:{lua}"));
    line(format_args!(
        "used_memory_lua_human:{}",
        bytes_to_human(lua as i64)
    ));
    line(format_args!("used_memory_scripts_eval:{scripts_eval}"));
    line(format_args!("number_of_cached_scripts:{}", sc.cached()));
    line(format_args!("number_of_functions:{funcs}"));
    line(format_args!("number_of_libraries:{libs}"));
    line(format_args!("used_memory_vm_functions:{vm_functions}"));
    let vm_total = lua + vm_functions;
    line(format_args!("used_memory_vm_total:{vm_total}"));
    line(format_args!(
        "used_memory_vm_total_human:{}",
        bytes_to_human(vm_total as i64)
    ));
    line(format_args!("used_memory_functions:{fn_mem}"));
    let scripts = scripts_eval + fn_mem;
    line(format_args!("used_memory_scripts:{scripts}"));
    line(format_args!(
        "used_memory_scripts_human:{}",
        bytes_to_human(scripts as i64)
    ));
    line(format_args!("maxmemory:{}", cfg.maxmemory));
    line(format_args!(
        "maxmemory_human:{}",
        bytes_to_human(cfg.maxmemory)
    ));
    line(format_args!("maxmemory_policy:{}", cfg.maxmemory_policy));
    line(format_args!("allocator_frag_ratio:{:.2}", r.frag()));
    line(format_args!("allocator_frag_bytes:{}", r.frag_bytes()));
    line(format_args!("allocator_rss_ratio:1.00"));
    line(format_args!("allocator_rss_bytes:0"));
    line(format_args!("rss_overhead_ratio:1.00"));
    line(format_args!("rss_overhead_bytes:0"));
    line(format_args!("mem_fragmentation_ratio:{:.2}", r.frag()));
    line(format_args!("mem_fragmentation_bytes:{}", r.frag_bytes()));
    line(format_args!(
        "mem_not_counted_for_evict:{}",
        crate::client_mem::not_counted_for_evict(srv)
    ));
    line(format_args!("mem_replication_backlog:{}", r.backlog));
    // Replicas read the stream from the backlog: it is the whole
    // replication buffer.
    line(format_args!("mem_total_replication_buffers:{}", r.backlog));
    line(format_args!("mem_clients_slaves:{}", r.replicas));
    line(format_args!("mem_clients_normal:{}", r.clients));
    line(format_args!("mem_cluster_links:0"));
    line(format_args!("mem_aof_buffer:{}", srv.repl.aof_pending()));
    line(format_args!("mem_allocator:{ALLOCATOR}"));
    line(format_args!("active_defrag_running:0"));
    line(format_args!(
        "lazyfree_pending_objects:{}",
        crate::lazyfree::pending()
    ));
    line(format_args!(
        "lazyfreed_objects:{}",
        crate::lazyfree::freed()
    ));
}

fn total_system_memory() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            l.split_whitespace().nth(1)?.parse::<i64>().ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `MEMORY USAGE key [SAMPLES count]`: the bytes the key's accounting
/// charges (its node, key bytes, value and TTL entry). Redis samples
/// `count` nested values (default 5, 0 for all) because it has no running
/// total; every value here keeps its size as it changes, so the answer is
/// exact for any count. The count is still checked as Redis checks it.
fn memory_usage(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "samples") && i + 1 < args.len() {
            if int_arg(&args[i + 1])? < 0 {
                return Err(CmdError::Syntax);
            }
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let now = ctx.now;
    let key = &args[2];
    let size = ctx
        .db()
        .with_shard(key, |s| s.peek(key, now).map(|e| entry_mem(key, e)));
    match size {
        Some(n) => ctx.out.integer(n as i64),
        None => ctx.out.null(),
    }
    Ok(())
}

fn memory_stats(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let r = Report::take(ctx.srv);
    let out = &mut *ctx.out;
    let int = |out: &mut ReplyBuf, k: &str, v: i64| {
        out.bulk(k.as_bytes());
        out.integer(v);
    };
    let double = |out: &mut ReplyBuf, k: &str, v: f64| {
        out.bulk(k.as_bytes());
        out.double(v);
    };
    out.map(27 + r.dbs.len());
    int(out, "peak.allocated", r.peak);
    int(out, "total.allocated", r.used);
    int(out, "startup.allocated", r.startup);
    int(out, "replication.backlog", r.backlog);
    int(out, "clients.slaves", r.replicas);
    int(out, "clients.normal", r.clients);
    int(out, "cluster.links", 0);
    int(out, "aof.buffer", 0);
    int(out, "lua.caches", 0);
    int(out, "functions.caches", 0);
    for d in &r.dbs {
        out.bulk(format!("db.{}", d.index).as_bytes());
        out.map(3);
        int(out, "overhead.hashtable.main", d.main);
        int(out, "overhead.hashtable.expires", d.expires);
        int(out, "overhead.hashtable.slot-to-keys", 0);
    }
    int(out, "overhead.total", r.overhead_total);
    int(out, "keys.count", r.keys);
    int(out, "keys.bytes-per-key", r.bytes_per_key());
    int(out, "dataset.bytes", r.dataset);
    double(out, "dataset.percentage", r.dataset_perc());
    double(out, "peak.percentage", r.peak_perc());
    int(out, "allocator.allocated", r.used);
    int(out, "allocator.active", r.rss);
    int(out, "allocator.resident", r.rss);
    double(out, "allocator-fragmentation.ratio", r.frag());
    int(out, "allocator-fragmentation.bytes", r.frag_bytes());
    double(out, "allocator-rss.ratio", 1.0);
    int(out, "allocator-rss.bytes", 0);
    double(out, "rss-overhead.ratio", 1.0);
    int(out, "rss-overhead.bytes", 0);
    double(out, "fragmentation", r.frag());
    int(out, "fragmentation.bytes", r.frag_bytes());
    Ok(())
}

const DOCTOR_EMPTY: &str = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n";
const DOCTOR_FINE: &str = "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n";
const DOCTOR_PEAK: &str = " * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n";
const DOCTOR_CLIENTS: &str = " * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.\n\n";

/// The findings of Redis's memory doctor that apply here, in its order.
#[derive(Debug, Default, PartialEq)]
struct Findings {
    empty: bool,
    big_peak: bool,
    high_frag: bool,
    big_client_buf: bool,
}

impl Findings {
    /// Redis's `getMemoryDoctorReport` checks. The allocator-level ones
    /// (external fragmentation, allocator RSS) collapse into the total
    /// fragmentation check without allocator statistics; there are no
    /// scripts and replicas are served from the backlog.
    fn of(used: i64, peak: i64, rss: i64, clients: i64, clients_count: i64) -> Findings {
        if used < DOCTOR_MIN_USED {
            return Findings {
                empty: true,
                ..Findings::default()
            };
        }
        let frag = rss as f64 / used as f64;
        Findings {
            empty: false,
            big_peak: peak as f64 / used as f64 > 1.5,
            high_frag: frag > 1.4 && rss - used > 10 << 20,
            big_client_buf: clients_count > 0 && clients / clients_count > 200 * 1024,
        }
    }

    fn text(&self) -> String {
        if self.empty {
            return DOCTOR_EMPTY.to_string();
        }
        if !(self.big_peak || self.high_frag || self.big_client_buf) {
            return DOCTOR_FINE.to_string();
        }
        let mut s = String::from(
            "Sam, I detected a few issues in this Redis instance memory implants:\n\n",
        );
        if self.big_peak {
            s.push_str(DOCTOR_PEAK);
        }
        if self.high_frag {
            let _ = write!(
                s,
                " * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"{ALLOCATOR}\".\n\n"
            );
        }
        if self.big_client_buf {
            s.push_str(DOCTOR_CLIENTS);
        }
        s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
        s
    }
}

fn memory_doctor(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let r = Report::take(ctx.srv);
    let f = Findings::of(r.used, r.peak, r.rss, r.clients, r.clients_count);
    ctx.out.verbatim(f.text().as_bytes());
    Ok(())
}

/// What Redis answers without jemalloc: the allocator keeps no statistics
/// in a release build.
fn memory_malloc_stats(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.out
        .bulk(b"Stats not supported for the current allocator");
    Ok(())
}

/// `OK`, as Redis answers when its allocator has nothing to purge on request.
fn memory_purge(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.out.ok();
    Ok(())
}

fn memory_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    write_help(
        ctx,
        "memory",
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(1024), "1.00K");
        assert_eq!(bytes_to_human(1_506_592), "1.44M");
        assert_eq!(bytes_to_human(25_276_514_304), "23.54G");
    }

    #[test]
    fn vm_rss_is_read_in_kilobytes() {
        let status = "Name:\tferrite\nVmPeak:\t  9000 kB\nVmRSS:\t    6512 kB\nRssAnon:\t 100 kB\n";
        assert_eq!(parse_vm_rss(status), Some(6512 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert!(rss_bytes() > 0, "this test process has a resident set");
    }

    #[test]
    fn doctor_declines_below_five_megabytes() {
        let f = Findings::of(4 << 20, 40 << 20, 400 << 20, 0, 1);
        assert!(f.empty);
        assert_eq!(f.text(), DOCTOR_EMPTY);
    }

    #[test]
    fn doctor_finds_nothing_in_a_healthy_instance() {
        let f = Findings::of(100 << 20, 110 << 20, 120 << 20, 1 << 10, 3);
        assert_eq!(f, Findings::default());
        assert_eq!(f.text(), DOCTOR_FINE);
    }

    #[test]
    fn doctor_reports_peak_fragmentation_and_client_buffers() {
        // Peak at twice the current use; RSS 2x used and 100 MB over.
        let f = Findings::of(100 << 20, 200 << 20, 200 << 20, 0, 1);
        assert!(f.big_peak && f.high_frag && !f.big_client_buf);
        let t = f.text();
        assert!(t.starts_with("Sam, I detected a few issues"), "{t}");
        assert!(t.contains(" * Peak memory:"));
        assert!(t.contains(" * High total RSS:"));
        assert!(t.contains("The currently used allocator is \"mimalloc\"."));
        assert!(t.ends_with("I'm here to keep you safe, Sam. I want to help you.\n"));
        // A ratio over 1.4 but under 10 MB of difference is not reported.
        let f = Findings::of(6 << 20, 6 << 20, 9 << 20, 0, 1);
        assert!(!f.high_frag);
        // 300 KB of buffered input per client on average.
        let f = Findings::of(100 << 20, 100 << 20, 100 << 20, 600 << 10, 2);
        assert!(f.big_client_buf && !f.big_peak && !f.high_frag);
        assert!(f.text().contains(" * Big client buffers:"));
    }
}
