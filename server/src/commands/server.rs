//! Server and admin commands: `COMMAND INFO CONFIG TIME LASTSAVE SLOWLOG
//! MONITOR SHUTDOWN MEMORY LATENCY DEBUG`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use ferrite_storage::{glob_match, idle_seconds, Value};

use super::connection::{write_help, REDIS_VERSION};
use crate::command::ctx::{is, unix_ms, unix_us};
use crate::command::render::{write_docs, write_info};
use crate::command::{CmdError, CmdResult, Command, Ctx, Handler, TABLE};
use crate::config::{find_param, params, Kind};
use crate::shared::Shared;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("command", command),
    ("command|count", command_count),
    ("command|info", command_info),
    ("command|docs", command_docs),
    ("command|getkeys", command_getkeys),
    ("command|getkeysandflags", command_getkeysandflags),
    ("command|list", command_list),
    ("command|help", command_help),
    ("info", info),
    ("config|get", config_get),
    ("config|set", config_set),
    ("config|resetstat", config_resetstat),
    ("config|rewrite", config_rewrite),
    ("config|help", config_help),
    ("time", time),
    ("lastsave", lastsave),
    ("slowlog|get", slowlog_get),
    ("slowlog|len", slowlog_len),
    ("slowlog|reset", slowlog_reset),
    ("slowlog|help", slowlog_help),
    ("monitor", monitor),
    ("shutdown", shutdown),
    ("latency|latest", latency_latest),
    ("latency|reset", latency_reset),
    ("latency|history", latency_history),
    ("latency|graph", latency_graph),
    ("latency|doctor", latency_doctor),
    ("latency|help", latency_help),
    ("latency|histogram", latency_histogram),
    ("debug", debug),
];

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---------------------------------------------------------------- COMMAND

fn command(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let cmds = crate::command::rename::visible();
    ctx.out.array(cmds.len());
    for c in cmds {
        write_info(c.meta, ctx.out);
    }
    Ok(())
}

fn command_count(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.out
        .integer(crate::command::rename::visible().len() as i64);
    Ok(())
}

/// Finds a command or `container|sub` by its full name.
fn lookup_full(name: &[u8]) -> Option<&'static Command> {
    let mut parts = name.splitn(2, |&b| b == b'|');
    let first = parts.next()?;
    let c = crate::command::rename::lookup(first)?;
    match parts.next() {
        None => Some(c),
        Some(sub) => c.subcommand(sub),
    }
}

fn command_info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() == 2 {
        return command(ctx, args);
    }
    ctx.out.array(args.len() - 2);
    for a in &args[2..] {
        match lookup_full(a) {
            Some(c) => write_info(c.meta, ctx.out),
            None => ctx.out.null_array(),
        }
    }
    Ok(())
}

fn command_docs(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() == 2 {
        let cmds = crate::command::rename::visible();
        ctx.out.map(cmds.len());
        for c in cmds {
            ctx.out.bulk(c.meta.name.as_bytes());
            write_docs(c.meta, ctx.out);
        }
        return Ok(());
    }
    let found: Vec<&Command> = args[2..].iter().filter_map(|a| lookup_full(a)).collect();
    ctx.out.map(found.len());
    for c in found {
        ctx.out.bulk(c.meta.name.as_bytes());
        write_docs(c.meta, ctx.out);
    }
    Ok(())
}

fn getkeys_common(args: &[Bytes]) -> Result<Vec<(usize, &'static [&'static str])>, CmdError> {
    let argv = &args[2..];
    let mut cmd =
        lookup_full(&argv[0]).ok_or_else(|| CmdError::err("Invalid command specified"))?;
    let mut cmd_argv_ok = true;
    if cmd.handler.is_none() || !cmd.subcommands.is_empty() {
        match argv.get(1).and_then(|s| cmd.subcommand(s)) {
            Some(s) => cmd = s,
            None => cmd_argv_ok = cmd.handler.is_some(),
        }
    }
    if !cmd_argv_ok || !cmd.arity_ok(argv.len()) {
        return Err(CmdError::err(
            "Invalid number of arguments specified for command",
        ));
    }
    let mut keys = cmd.keys(argv);
    if keys.is_empty() {
        // EVAL with no keys and the like: an empty list (Redis 7.0's
        // `CMD_NO_MANDATORY_KEYS`).
        if cmd.has(crate::command::flag::NO_MANDATORY_KEYS) {
            return Ok(keys);
        }
        return Err(CmdError::err("The command has no key arguments"));
    }
    for k in &mut keys {
        if k.1.contains(&"variable_flags") {
            k.1 = variable_key_flags(cmd.meta.name, argv);
        }
    }
    Ok(keys)
}

/// The key flags of a command whose key spec says `variable_flags`, from
/// its arguments, as Redis's `setGetKeys` and `bitfieldGetKeys` give them.
fn variable_key_flags(name: &str, argv: &[Bytes]) -> &'static [&'static str] {
    const RW: &[&str] = &["RW", "access", "update"];
    match name {
        "set" => {
            if argv[3.min(argv.len())..].iter().any(|a| is(a, "get")) {
                RW
            } else {
                &["OW", "update"]
            }
        }
        "bitfield" => {
            let mut i = 2;
            while i < argv.len() {
                let left = argv.len() - i - 1;
                let a = &argv[i];
                if is(a, "get") && left >= 2 {
                    i += 3;
                } else if is(a, "overflow") && left >= 1 {
                    i += 2;
                } else {
                    // SET, INCRBY or a syntax error: assume it writes.
                    return RW;
                }
            }
            &["RO", "access"]
        }
        _ => RW,
    }
}

fn command_getkeys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let keys = getkeys_common(args)?;
    ctx.out.array(keys.len());
    for (i, _) in keys {
        ctx.out.bulk(&args[2 + i]);
    }
    Ok(())
}

fn command_getkeysandflags(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let keys = getkeys_common(args)?;
    ctx.out.array(keys.len());
    for (i, flags) in keys {
        ctx.out.array(2);
        ctx.out.bulk(&args[2 + i]);
        ctx.out.set(flags.len());
        for f in flags {
            ctx.out.simple(f.as_bytes());
        }
    }
    Ok(())
}

fn command_list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    enum Filter {
        All,
        Module,
        Acl(String),
        Pattern(Bytes),
    }
    let filter = match args.len() {
        2 => Filter::All,
        5 if is(&args[2], "filterby") => {
            let v = &args[4];
            if is(&args[3], "module") {
                Filter::Module
            } else if is(&args[3], "aclcat") {
                Filter::Acl(format!("@{}", lossy(v).to_ascii_lowercase()))
            } else if is(&args[3], "pattern") {
                Filter::Pattern(v.clone())
            } else {
                return Err(CmdError::Syntax);
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    let mut names: Vec<&'static str> = Vec::new();
    for c in crate::command::rename::visible() {
        let mut all = vec![c];
        let mut subs: Vec<&Command> = c.subcommands.values().collect();
        subs.sort_by_key(|s| s.meta.name);
        all.extend(subs);
        for x in all {
            let keep = match &filter {
                Filter::All => true,
                Filter::Module => false,
                Filter::Acl(cat) => x.meta.acl_categories.iter().any(|a| a == cat),
                Filter::Pattern(p) => glob_match(p, x.meta.name.as_bytes(), true),
            };
            if keep {
                names.push(x.meta.name);
            }
        }
    }
    ctx.out.array(names.len());
    for n in names {
        ctx.out.bulk(n.as_bytes());
    }
    Ok(())
}

fn command_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    write_help(
        ctx,
        "command",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    );
    Ok(())
}

// ---------------------------------------------------------------- INFO

/// (user, system, children user, children system) CPU seconds from `/proc/self/stat`.
fn cpu_times() -> (f64, f64, f64, f64) {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0, 0.0, 0.0);
    };
    parse_proc_stat(&s)
}

/// Parses utime, stime, cutime, cstime (clock ticks of 1/100 s) from a `stat` line.
pub fn parse_proc_stat(s: &str) -> (f64, f64, f64, f64) {
    // The command name (field 2) may contain spaces: start after its ')'.
    let rest = s.rfind(')').map(|i| &s[i + 1..]).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11.
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (tick(11), tick(12), tick(13), tick(14))
}

fn machine() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "Linux {} {}",
        read("/proc/sys/kernel/osrelease"),
        std::env::consts::ARCH
    )
}

fn section_wanted(all: bool, set: &HashSet<String>, names: &[&str]) -> bool {
    all || names.iter().any(|n| set.contains(*n))
}

/// `INFO latencystats`: each command's latency percentiles in µs
/// (`latency-tracking-info-percentiles`), for commands called since the
/// last reset, subcommands after their container.
fn latencystats(srv: &Shared, out: &mut String) {
    let labels = srv
        .config
        .read()
        .value("latency-tracking-info-percentiles")
        .to_string();
    let ps: Vec<f64> = labels
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let one = |out: &mut String, c: &Command| {
        let Some(values) = crate::counters::percentiles(c.id, &ps) else {
            return;
        };
        let _ = write!(out, "latency_percentiles_usec_{}:", c.name());
        for (i, (label, v)) in labels.split_whitespace().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "p{label}={:.3}", v as f64 / 1000.0);
        }
        out.push_str("\r\n");
    };
    for c in crate::command::rename::visible() {
        one(out, c);
        let mut subs: Vec<&Command> = c.subcommands.values().collect();
        subs.sort_by_key(|s| s.meta.name);
        for sub in subs {
            one(out, sub);
        }
    }
}

/// Builds the `INFO` text for the requested section names (lowercased).
pub fn info_text(srv: &Shared, now_ms: i64, sections: &[String]) -> String {
    let mut set: HashSet<String> = HashSet::new();
    let mut all = false;
    let mut everything = false;
    let defaults = [
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "cpu",
        "module_list",
        "errorstats",
        "cluster",
        "keyspace",
    ];
    if sections.is_empty() {
        set.extend(defaults.iter().map(|s| s.to_string()));
    }
    for s in sections {
        match s.as_str() {
            "default" => set.extend(defaults.iter().map(|s| s.to_string())),
            "all" => all = true,
            "everything" => {
                all = true;
                everything = true;
            }
            _ => {
                set.insert(s.clone());
            }
        }
    }
    let _ = everything;
    let mut out = String::new();
    let header = |out: &mut String, name: &str| {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = write!(out, "# {name}\r\n");
    };
    macro_rules! line {
        ($out:expr, $($arg:tt)*) => {{
            let _ = write!($out, $($arg)*);
            $out.push_str("\r\n");
        }};
    }
    let cfg = srv.config.read();
    let uptime = ((now_ms - srv.start_ms) / 1000).max(0);

    if section_wanted(all, &set, &["server"]) {
        header(&mut out, "Server");
        line!(out, "redis_version:{REDIS_VERSION}");
        line!(out, "ferrite_version:{}", env!("CARGO_PKG_VERSION"));
        line!(out, "redis_git_sha1:00000000");
        line!(out, "redis_git_dirty:0");
        line!(out, "redis_build_id:0");
        line!(out, "redis_mode:standalone");
        line!(out, "os:{}", machine());
        line!(out, "arch_bits:64");
        line!(out, "monotonic_clock:POSIX clock_gettime");
        line!(out, "multiplexing_api:epoll");
        line!(out, "atomicvar_api:c11-builtin");
        line!(out, "gcc_version:0.0.0");
        line!(out, "process_id:{}", std::process::id());
        line!(out, "process_supervised:no");
        line!(out, "run_id:{}", srv.run_id);
        line!(out, "tcp_port:{}", srv.port.load(Ordering::Relaxed));
        line!(out, "server_time_usec:{}", unix_us());
        line!(out, "uptime_in_seconds:{uptime}");
        line!(out, "uptime_in_days:{}", uptime / 86400);
        line!(out, "hz:{}", cfg.hz);
        line!(out, "configured_hz:{}", cfg.hz);
        line!(out, "lru_clock:{}", ferrite_storage::lru_clock(now_ms));
        line!(
            out,
            "executable:{}",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        line!(
            out,
            "config_file:{}",
            cfg.config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        line!(out, "io_threads_active:0");
        if let Some(left) = crate::shutdown::remaining_ms(srv) {
            line!(out, "shutdown_in_milliseconds:{left}");
        }
    }
    if section_wanted(all, &set, &["clients"]) {
        header(&mut out, "Clients");
        line!(out, "connected_clients:{}", srv.clients.len());
        line!(out, "cluster_connections:0");
        line!(out, "maxclients:{}", cfg.maxclients);
        line!(out, "client_recent_max_input_buffer:0");
        line!(out, "client_recent_max_output_buffer:0");
        // Postponed by `CLIENT PAUSE` too, as Redis counts them.
        line!(
            out,
            "blocked_clients:{}",
            srv.blocking.blocked_clients()
                + srv.pause.postponed_clients()
                + crate::shutdown::blocked_clients(srv)
                + srv.replicas.waiting_clients()
        );
        line!(out, "tracking_clients:{}", srv.tracking.clients());
        line!(out, "clients_in_timeout_table:0");
    }
    if section_wanted(all, &set, &["memory"]) {
        header(&mut out, "Memory");
        super::memory::info_section(srv, &cfg, &mut out);
    }
    if section_wanted(all, &set, &["persistence"]) {
        header(&mut out, "Persistence");
        for l in [
            "loading:0",
            "async_loading:0",
            "current_cow_peak:0",
            "current_cow_size:0",
            "current_cow_size_age:0",
            "current_fork_perc:0.00",
            "current_save_keys_processed:0",
            "current_save_keys_total:0",
        ] {
            line!(out, "{l}");
        }
        let p = &srv.persist;
        let bg = p.bgsave_in_progress.load(Ordering::Relaxed);
        line!(
            out,
            "rdb_changes_since_last_save:{}",
            crate::persist::changes_since_save(srv)
        );
        line!(out, "rdb_bgsave_in_progress:{}", u8::from(bg));
        line!(
            out,
            "rdb_last_save_time:{}",
            p.lastsave_s.load(Ordering::Relaxed)
        );
        line!(
            out,
            "rdb_last_bgsave_status:{}",
            if p.last_bgsave_ok.load(Ordering::Relaxed) {
                "ok"
            } else {
                "err"
            }
        );
        line!(
            out,
            "rdb_last_bgsave_time_sec:{}",
            p.last_bgsave_time_sec.load(Ordering::Relaxed)
        );
        line!(
            out,
            "rdb_current_bgsave_time_sec:{}",
            if bg {
                (unix_ms() - p.bgsave_started_ms.load(Ordering::Relaxed)) / 1000
            } else {
                -1
            }
        );
        line!(out, "rdb_saves:{}", p.saves.load(Ordering::Relaxed));
        line!(out, "rdb_last_cow_size:0");
        line!(
            out,
            "rdb_last_load_keys_expired:{}",
            p.last_load_keys_expired.load(Ordering::Relaxed)
        );
        line!(
            out,
            "rdb_last_load_keys_loaded:{}",
            p.last_load_keys_loaded.load(Ordering::Relaxed)
        );
        crate::aof::info(srv, &mut out);
    }
    if section_wanted(all, &set, &["stats"]) {
        let st = &srv.stats;
        let ss = srv.store.stats();
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        header(&mut out, "Stats");
        line!(
            out,
            "total_connections_received:{}",
            g(&st.total_connections_received)
        );
        line!(out, "total_commands_processed:{}", st.commands_processed());
        line!(out, "instantaneous_ops_per_sec:{}", st.ops_sample.lock().2);
        line!(out, "total_net_input_bytes:{}", st.net_input());
        line!(out, "total_net_output_bytes:{}", st.net_output());
        line!(out, "total_net_repl_input_bytes:0");
        line!(out, "total_net_repl_output_bytes:0");
        line!(out, "instantaneous_input_kbps:0.00");
        line!(out, "instantaneous_output_kbps:0.00");
        line!(out, "instantaneous_input_repl_kbps:0.00");
        line!(out, "instantaneous_output_repl_kbps:0.00");
        line!(out, "rejected_connections:{}", g(&st.rejected_connections));
        line!(out, "sync_full:{}", g(&st.sync_full));
        line!(out, "sync_partial_ok:{}", g(&st.sync_partial_ok));
        line!(out, "sync_partial_err:{}", g(&st.sync_partial_err));
        line!(out, "expired_keys:{}", g(&ss.expired_keys));
        line!(
            out,
            "expired_stale_perc:{:.2}",
            ss.expired_stale_perc() * 100.0
        );
        line!(
            out,
            "expired_time_cap_reached_count:{}",
            g(&ss.expired_time_cap_reached_count)
        );
        line!(
            out,
            "expire_cycle_cpu_milliseconds:{}",
            g(&ss.expire_cycle_time_used_us) / 1000
        );
        line!(out, "evicted_keys:{}", g(&st.evicted_keys));
        line!(out, "evicted_clients:{}", g(&st.evicted_clients));
        let (exceeded_total, exceeded_now) = srv.evictor.exceeded_ms();
        line!(out, "total_eviction_exceeded_time:{exceeded_total}");
        line!(out, "current_eviction_exceeded_time:{exceeded_now}");
        line!(out, "keyspace_hits:{}", st.hits());
        line!(out, "keyspace_misses:{}", st.misses());
        let ps = &srv.pubsub;
        line!(
            out,
            "pubsub_channels:{}",
            ps.num_channels(crate::pubsub::Kind::Global)
        );
        line!(out, "pubsub_patterns:{}", ps.numpat());
        line!(
            out,
            "pubsubshard_channels:{}",
            ps.num_channels(crate::pubsub::Kind::Shard)
        );
        for l in [
            "latest_fork_usec:0",
            "total_forks:0",
            "migrate_cached_sockets:0",
            "slave_expires_tracked_keys:0",
            "active_defrag_hits:0",
            "active_defrag_misses:0",
            "active_defrag_key_hits:0",
            "active_defrag_key_misses:0",
            "total_active_defrag_time:0",
            "current_active_defrag_time:0",
        ] {
            line!(out, "{l}");
        }
        let (keys, items, prefixes) = srv.tracking.totals();
        line!(out, "tracking_total_keys:{keys}");
        line!(out, "tracking_total_items:{items}");
        line!(out, "tracking_total_prefixes:{prefixes}");
        line!(
            out,
            "unexpected_error_replies:{}",
            g(&st.unexpected_error_replies)
        );
        line!(out, "total_error_replies:{}", g(&st.total_error_replies));
        line!(out, "dump_payload_sanitizations:0");
        line!(out, "total_reads_processed:{}", st.commands_processed());
        line!(out, "total_writes_processed:{}", st.commands_processed());
        line!(out, "io_threaded_reads_processed:0");
        line!(out, "io_threaded_writes_processed:0");
        let cc = &srv.client_cron;
        line!(
            out,
            "reply_buffer_shrinks:{}",
            cc.shrinks.load(Ordering::Relaxed)
        );
        line!(
            out,
            "reply_buffer_expands:{}",
            cc.expands.load(Ordering::Relaxed)
        );
    }
    if section_wanted(all, &set, &["replication"]) {
        let offset = srv.repl.offset();
        let (first, held) = srv.repl.backlog_span();
        header(&mut out, "Replication");
        let up = &srv.upstream;
        let now = unix_ms();
        match up.target() {
            None => line!(out, "role:master"),
            Some((host, port)) => {
                let st = up.state();
                line!(out, "role:slave");
                line!(out, "master_host:{host}");
                line!(out, "master_port:{port}");
                line!(
                    out,
                    "master_link_status:{}",
                    if st == crate::upstream::LinkState::Connected {
                        "up"
                    } else {
                        "down"
                    }
                );
                let has_master = up.has_master.load(Ordering::Relaxed);
                line!(
                    out,
                    "master_last_io_seconds_ago:{}",
                    if has_master {
                        (now - up.last_io_ms.load(Ordering::Relaxed)).max(0) / 1000
                    } else {
                        -1
                    }
                );
                let transfer = st == crate::upstream::LinkState::Transfer;
                line!(out, "master_sync_in_progress:{}", u8::from(transfer));
                line!(
                    out,
                    "slave_read_repl_offset:{}",
                    up.read_offset.load(Ordering::Relaxed)
                );
                line!(
                    out,
                    "slave_repl_offset:{}",
                    up.offset.load(Ordering::Relaxed)
                );
                if transfer {
                    let size = up.transfer_size.load(Ordering::Relaxed).max(0);
                    let read = up.transfer_read.load(Ordering::Relaxed);
                    let perc = if size > 0 {
                        read as f64 / size as f64 * 100.0
                    } else {
                        0.0
                    };
                    line!(out, "master_sync_total_bytes:{size}");
                    line!(out, "master_sync_read_bytes:{read}");
                    line!(out, "master_sync_left_bytes:{}", size - read);
                    line!(out, "master_sync_perc:{perc:.2}");
                    line!(
                        out,
                        "master_sync_last_io_seconds_ago:{}",
                        (now - up.transfer_last_io_ms.load(Ordering::Relaxed)).max(0) / 1000
                    );
                }
                if st != crate::upstream::LinkState::Connected {
                    let since = up.down_since_ms.load(Ordering::Relaxed);
                    line!(
                        out,
                        "master_link_down_since_seconds:{}",
                        if since > 0 {
                            (now - since).max(0) / 1000
                        } else {
                            -1
                        }
                    );
                }
                line!(out, "slave_priority:{}", cfg.replica_priority);
                line!(out, "slave_read_only:{}", u8::from(cfg.replica_read_only));
                line!(out, "replica_announced:{}", u8::from(cfg.replica_announced));
            }
        }
        out.push_str(&crate::replica::info_lines(srv));
        line!(out, "master_failover_state:{}", srv.failover.state().name());
        line!(out, "master_replid:{}", srv.replid.lock());
        line!(out, "master_replid2:{}", srv.replid2.lock());
        line!(out, "master_repl_offset:{offset}");
        line!(
            out,
            "second_repl_offset:{}",
            srv.second_repl_offset.load(Ordering::Relaxed)
        );
        let active = srv.repl.backlog_active();
        line!(out, "repl_backlog_active:{}", u8::from(active));
        line!(out, "repl_backlog_size:{}", cfg.repl_backlog_size);
        line!(
            out,
            "repl_backlog_first_byte_offset:{}",
            if active { first } else { 0 }
        );
        line!(out, "repl_backlog_histlen:{held}");
    }
    if section_wanted(all, &set, &["cpu"]) {
        let (u, s, cu, cs) = cpu_times();
        header(&mut out, "CPU");
        line!(out, "used_cpu_sys:{s:.6}");
        line!(out, "used_cpu_user:{u:.6}");
        line!(out, "used_cpu_sys_children:{cs:.6}");
        line!(out, "used_cpu_user_children:{cu:.6}");
        line!(out, "used_cpu_sys_main_thread:{s:.6}");
        line!(out, "used_cpu_user_main_thread:{u:.6}");
    }
    if section_wanted(all, &set, &["module_list", "modules"]) {
        header(&mut out, "Modules");
    }
    if section_wanted(all, &set, &["commandstats"]) {
        header(&mut out, "Commandstats");
        fn one(out: &mut String, c: &Command, snap: &crate::counters::Snapshot) {
            let s = &c.stats;
            let (calls, usec) = snap.command(c.id);
            let rej = s.rejected_calls.load(Ordering::Relaxed);
            let failed = s.failed_calls.load(Ordering::Relaxed);
            if calls != 0 || rej != 0 || failed != 0 {
                let per = if calls > 0 {
                    usec as f64 / calls as f64
                } else {
                    0.0
                };
                let _ = write!(
                    out,
                    "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rej},failed_calls={failed}\r\n",
                    c.name()
                );
            }
            let mut subs: Vec<&Command> = c.subcommands.values().collect();
            subs.sort_by_key(|s| s.meta.name);
            for sub in subs {
                one(out, sub, snap);
            }
        }
        let snap = crate::counters::snapshot();
        for c in crate::command::rename::visible() {
            one(&mut out, c, &snap);
        }
    }
    if section_wanted(all, &set, &["errorstats"]) {
        header(&mut out, "Errorstats");
        for (code, n) in srv.stats.errors.lock().iter() {
            line!(out, "errorstat_{code}:count={n}");
        }
    }
    if section_wanted(all, &set, &["latencystats"]) {
        header(&mut out, "Latencystats");
        if srv.config.read().latency_tracking {
            latencystats(srv, &mut out);
        }
    }
    if section_wanted(all, &set, &["cluster"]) {
        header(&mut out, "Cluster");
        line!(out, "cluster_enabled:0");
    }
    if section_wanted(all, &set, &["keyspace"]) {
        header(&mut out, "Keyspace");
        for i in 0..srv.store.db_count() {
            let db = srv.store.db(i);
            let keys = db.len();
            if keys > 0 {
                line!(
                    out,
                    "db{i}:keys={keys},expires={},avg_ttl=0",
                    db.volatile_len()
                );
            }
        }
    }
    out
}

fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sections: Vec<String> = args[1..]
        .iter()
        .map(|a| lossy(a).to_ascii_lowercase())
        .collect();
    let text = info_text(ctx.srv, ctx.now, &sections);
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

// ---------------------------------------------------------------- CONFIG

fn config_get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let cfg = ctx.srv.config.read();
    // The names already in the reply, as shown.
    let mut seen: HashSet<String> = HashSet::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pat in &args[2..] {
        let has_glob = pat.iter().any(|b| matches!(b, b'*' | b'?' | b'['));
        if !has_glob {
            let name = lossy(pat);
            if let Some(p) = find_param(&name) {
                if seen.insert(name.clone()) {
                    pairs.push((name.clone(), p.get(&cfg)));
                }
            }
            continue;
        }
        // Redis matches names and aliases alike (both are keys of its
        // config dict), so `*of` gives `replicaof` and `slaveof`.
        for p in params().filter(|p| !p.hidden()) {
            for n in std::iter::once(p.name).chain(p.alias) {
                if glob_match(pat, n.as_bytes(), true) && seen.insert(n.to_string()) {
                    pairs.push((n.to_string(), p.get(&cfg)));
                }
            }
        }
    }
    ctx.out.map(pairs.len());
    for (k, v) in pairs {
        ctx.out.bulk(k.as_bytes());
        ctx.out.bulk(v.as_bytes());
    }
    Ok(())
}

/// Binds the listening socket a `CONFIG SET` of `port` or `bind` asks for
/// and hands it to the accept loop, before any parameter changes (Redis's
/// apply step, `changeListenPort` / `changeBindAddr`): on failure the
/// parameter's name and Redis's reason, and nothing was changed.
fn listen_anew(
    srv: &crate::shared::Shared,
    cfg: &crate::config::Config,
    changes: &[(&'static crate::config::Param, String)],
) -> Result<(), (&'static str, &'static str)> {
    let mut next = cfg.clone();
    for (p, v) in changes {
        p.apply(&mut next, v.clone());
    }
    if next.port == cfg.port && next.bind == cfg.bind {
        return Ok(());
    }
    let port = u16::try_from(next.port).unwrap_or(0);
    match crate::listen::bind(&next.bind, port) {
        Ok(l) => {
            srv.rebind.offer(l);
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, port, bind = ?next.bind, "CONFIG SET: could not listen");
            Err(if next.port != cfg.port {
                ("port", "Unable to listen on this port. Check server logs.")
            } else {
                ("bind", "Failed to bind to specified addresses.")
            })
        }
    }
}

fn config_set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(ctx.arity_error());
    }
    let fail = |name: &str, why: &str| {
        CmdError::err(format!(
            "CONFIG SET failed (possibly related to argument '{name}') - {why}"
        ))
    };
    let mut changes = Vec::new();
    let mut seen: HashSet<&'static str> = HashSet::new();
    for pair in args[2..].chunks(2) {
        let name = lossy(&pair[0]);
        let value = lossy(&pair[1]);
        let p = find_param(&name).ok_or_else(|| {
            CmdError::err(format!(
                "Unknown option or number of arguments for CONFIG SET - '{name}'"
            ))
        })?;
        if p.immutable {
            return Err(fail(&name, "can't set immutable config"));
        }
        if !seen.insert(p.name) {
            return Err(fail(&name, "duplicate parameter"));
        }
        let vals: Vec<String> = match p.kind {
            // Redis's MULTI_ARG_CONFIG parameters take one space-separated value.
            Kind::List | Kind::Save | Kind::Flags(_) | Kind::IntList { .. } | Kind::Percentiles => {
                value.split_whitespace().map(String::from).collect()
            }
            _ => vec![value],
        };
        let v = p.normalise(&vals).map_err(|e| match e {
            crate::config::ConfigError::Unknown => fail(&name, "wrong number of arguments"),
            other => fail(&name, &other.to_string()),
        })?;
        changes.push((p, v));
    }
    {
        let mut cfg = ctx.srv.config.write();
        if changes
            .iter()
            .any(|(p, _)| matches!(p.name, "port" | "bind"))
        {
            listen_anew(ctx.srv, &cfg, &changes).map_err(|(name, why)| fail(name, why))?;
        }
        for (p, v) in changes {
            p.apply(&mut cfg, v);
        }
    }
    ctx.srv.apply_config();
    // Redis's `updateAppendonly`: the switch acts at once; a failure to
    // start restores the old value.
    let want = ctx.srv.config.read().appendonly;
    if want != ctx.srv.aof.enabled() {
        if let Err(e) = crate::aof::set_enabled(ctx.srv, want) {
            tracing::warn!(error = %e, "CONFIG SET appendonly");
            ctx.srv.config.write().appendonly = !want;
            return Err(fail(
                "appendonly",
                "Unable to turn on AOF. Check server logs.",
            ));
        }
    }
    ctx.out.ok();
    Ok(())
}

fn config_resetstat(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let srv = ctx.srv;
    srv.stats.reset();
    srv.client_cron.reset_stats();
    TABLE.reset_stats();
    srv.store.stats().reset_expire_stats();
    srv.evictor.reset_stats();
    ctx.out.ok();
    Ok(())
}

fn config_rewrite(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    // With an ACL file the users live there, and `user` lines are dropped.
    let users = if ctx.srv.config.read().value("aclfile").is_empty() {
        ctx.srv.acl.list()
    } else {
        Vec::new()
    };
    let res = ctx.srv.config.read().rewrite(&users);
    match res {
        Ok(()) => {
            ctx.out.ok();
            Ok(())
        }
        Err(e) => Err(CmdError::Other(e)),
    }
}

fn config_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    write_help(
        ctx,
        "config",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    );
    Ok(())
}

// ---------------------------------------------------------------- misc

fn time(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let us = unix_us();
    ctx.out.array(2);
    ctx.out.bulk_int(us / 1_000_000);
    ctx.out.bulk_int(us % 1_000_000);
    Ok(())
}

fn lastsave(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.out
        .integer(ctx.srv.persist.lastsave_s.load(Ordering::Relaxed));
    Ok(())
}

fn slowlog_get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let log = ctx.srv.slowlog.lock();
    let n = match args.get(2) {
        None => 10,
        Some(a) => {
            let n = ferrite_protocol::parse_i64(a)
                .filter(|&n| n >= -1)
                .ok_or_else(|| CmdError::err("count should be greater than or equal to -1"))?;
            if n == -1 {
                log.entries.len()
            } else {
                n as usize
            }
        }
    };
    let n = n.min(log.entries.len());
    ctx.out.array(n);
    for e in log.entries.iter().take(n) {
        ctx.out.array(6);
        ctx.out.integer(e.id as i64);
        ctx.out.integer(e.time_s);
        ctx.out.integer(e.duration_us as i64);
        ctx.out.array(e.args.len());
        for a in &e.args {
            ctx.out.bulk(a);
        }
        ctx.out.bulk(e.addr.as_bytes());
        ctx.out.bulk(&e.name);
    }
    Ok(())
}

fn slowlog_len(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let n = ctx.srv.slowlog.lock().entries.len();
    ctx.out.integer(n as i64);
    Ok(())
}

fn slowlog_reset(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.srv.slowlog.lock().entries.clear();
    ctx.out.ok();
    Ok(())
}

fn slowlog_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    write_help(
        ctx,
        "slowlog",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    );
    Ok(())
}

fn monitor(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    // Inside EXEC the client expects one reply per command (as Redis).
    if ctx.client.deny_blocking() {
        return Err(CmdError::err(
            "MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    ctx.client.start_monitor = true;
    ctx.client.handle.monitor.store(true, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

fn shutdown(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut save, mut nosave, mut now, mut force, mut abort) = (false, false, false, false, false);
    for a in &args[1..] {
        if is(a, "nosave") {
            nosave = true;
        } else if is(a, "save") {
            save = true;
        } else if is(a, "now") {
            now = true;
        } else if is(a, "force") {
            force = true;
        } else if is(a, "abort") {
            abort = true;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if (abort && args.len() > 2) || (save && nosave) {
        return Err(CmdError::Syntax);
    }
    if abort {
        if crate::shutdown::abort(ctx.srv) {
            ctx.out.ok();
            return Ok(());
        }
        return Err(CmdError::err("No shutdown in progress."));
    }
    if !now && ctx.client.deny_blocking() {
        return Err(CmdError::err(
            "SHUTDOWN without NOW or ABORT isn't allowed for DENY BLOCKING client",
        ));
    }
    // Redis's `prepareForShutdown`: wait for lagging replicas unless
    // `NOW`, then save when told to, or by default when `save` points are
    // configured; a failed save keeps the server up.
    let srv = ctx.srv;
    let flags = crate::persist::ShutdownFlags {
        save,
        nosave,
        now,
        force,
    };
    tracing::warn!("User requested shutdown...");
    match crate::shutdown::initiate(srv, flags, true, false) {
        crate::shutdown::Outcome::Stopping => {}
        crate::shutdown::Outcome::Waiting(rx) => {
            ctx.client.shutdown_wait = rx;
            return Ok(());
        }
        crate::shutdown::Outcome::Failed => {
            return Err(CmdError::err("Errors trying to SHUTDOWN. Check logs."));
        }
    }
    if ctx
        .srv
        .scripts
        .running
        .load(std::sync::atomic::Ordering::Acquire)
    {
        // A script holds every shard and cannot be stopped: exit at once,
        // as Redis does for SHUTDOWN NOSAVE during a busy script.
        tracing::warn!("Redis is now ready to exit, bye bye...");
        std::process::exit(0);
    }
    ctx.srv.request_shutdown();
    ctx.client.close_after_reply = true;
    Ok(())
}

// ---------------------------------------------------------------- LATENCY

fn latency_latest(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let lat = ctx.srv.latency.lock();
    let rows: Vec<_> = lat
        .events
        .iter()
        .filter_map(|(name, (samples, max))| samples.back().map(|l| (name, *l, *max)))
        .collect();
    ctx.out.array(rows.len());
    for (name, (t, ms), max) in rows {
        ctx.out.array(4);
        ctx.out.bulk(name.as_bytes());
        ctx.out.integer(t);
        ctx.out.integer(ms as i64);
        ctx.out.integer(max as i64);
    }
    Ok(())
}

fn latency_history(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let lat = ctx.srv.latency.lock();
    match lat.events.get(&lossy(&args[2])) {
        Some((samples, _)) => {
            ctx.out.array(samples.len());
            for (t, ms) in samples {
                ctx.out.array(2);
                ctx.out.integer(*t);
                ctx.out.integer(*ms as i64);
            }
        }
        None => ctx.out.array(0),
    }
    Ok(())
}

/// `LATENCY GRAPH event`: the event's samples as an ASCII sparkline,
/// labelled with how long ago each was (Redis's
/// `latencyCommandGenSparkeline`).
fn latency_graph(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    const COLS: usize = 80;
    let event = lossy(&args[2]);
    let graph = {
        let lat = ctx.srv.latency.lock();
        let Some((samples, all_time_max)) = lat.events.get(&event) else {
            return Err(CmdError::err(format!(
                "No samples available for event '{event}'"
            )));
        };
        let now = unix_ms() / 1000;
        let (mut low, mut high) = (u64::MAX, 0);
        let seq: Vec<crate::sparkline::Sample> = samples
            .iter()
            .map(|&(t, ms)| {
                low = low.min(ms);
                high = high.max(ms);
                let ago = now - t;
                let label = match ago {
                    a if a < 60 => format!("{a}s"),
                    a if a < 3600 => format!("{}m", a / 60),
                    a if a < 86400 => format!("{}h", a / 3600),
                    a => format!("{}d", a / 86400),
                };
                crate::sparkline::Sample {
                    value: ms as f64,
                    label: Some(label),
                }
            })
            .collect();
        if seq.is_empty() {
            low = 0;
        }
        let mut g =
            format!("{event} - high {high} ms, low {low} ms (all time high {all_time_max} ms)\n");
        g.push_str(&"-".repeat(COLS));
        g.push('\n');
        g.push_str(&crate::sparkline::render(&seq, COLS, 4));
        g
    };
    ctx.out.verbatim(graph.as_bytes());
    Ok(())
}

fn latency_reset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut lat = ctx.srv.latency.lock();
    let n = if args.len() == 2 {
        let n = lat.events.len();
        lat.events.clear();
        n
    } else {
        args[2..]
            .iter()
            .filter(|a| lat.events.remove(&lossy(a)).is_some())
            .count()
    };
    ctx.out.integer(n as i64);
    Ok(())
}

fn latency_doctor(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let threshold = ctx.srv.hot.latency_threshold_ms.load(Ordering::Relaxed);
    let lat = ctx.srv.latency.lock();
    let mut text = String::new();
    if threshold == 0 && lat.events.is_empty() {
        text.push_str("I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n");
    } else if lat.events.is_empty() {
        text.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sleep better tonight.\n");
    } else {
        text.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        for (i, (name, (samples, max))) in lat.events.iter().enumerate() {
            let avg = samples.iter().map(|s| s.1).sum::<u64>() / samples.len().max(1) as u64;
            let _ = writeln!(
                text,
                "{}. {}: {} latency spikes (average {}ms, mean deviation 0ms, period 0 sec). Worst all time event {}ms.",
                i + 1,
                name,
                samples.len(),
                avg,
                max
            );
        }
        text.push_str("\nI have a few advices for you:\n\n- Check your system for slow commands using SLOWLOG GET.\n");
    }
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

/// `LATENCY HISTOGRAM [command ...]`: each command's calls and the
/// cumulative count at each latency level (Redis's `fillCommandCDF`), for
/// every command with calls, or for the named ones (a container names its
/// subcommands; unknown names are skipped).
fn latency_histogram(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut rows: Vec<(&'static str, u64, [u64; crate::counters::LEVELS])> = Vec::new();
    let push = |c: &'static Command, rows: &mut Vec<_>| {
        let h = crate::counters::histogram(c.id);
        let calls: u64 = h.iter().sum();
        if calls > 0 {
            rows.push((c.name(), calls, h));
        }
    };
    fn with_subs(c: &'static Command) -> Vec<&'static Command> {
        let mut subs: Vec<&'static Command> = c.subcommands.values().collect();
        subs.sort_by_key(|s| s.meta.name);
        subs
    }
    if args.len() == 2 {
        for c in crate::command::rename::visible() {
            push(c, &mut rows);
            for s in with_subs(c) {
                push(s, &mut rows);
            }
        }
    } else {
        for a in &args[2..] {
            let Some(c) = lookup_full(a) else { continue };
            push(c, &mut rows);
            for s in with_subs(c) {
                push(s, &mut rows);
            }
        }
    }
    let out = &mut *ctx.out;
    out.map(rows.len());
    for (name, calls, h) in rows {
        out.bulk(name.as_bytes());
        out.map(2);
        out.bulk(b"calls");
        out.integer(calls as i64);
        out.bulk(b"histogram_usec");
        let used = h.iter().filter(|&&n| n > 0).count();
        out.map(used);
        let mut cumulative = 0;
        for (k, n) in h.iter().enumerate() {
            if *n > 0 {
                cumulative += n;
                out.integer(crate::counters::level_usec(k) as i64);
                out.integer(cumulative as i64);
            }
        }
    }
    Ok(())
}

fn latency_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    write_help(
        ctx,
        "latency",
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    );
    Ok(())
}

// ---------------------------------------------------------------- DEBUG

/// Whether the client connects from this host (`enable-*-command local`).
pub fn is_local(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>()
        .is_ok_and(|a| is_local_ip(a.ip()))
}

/// Exactly the loopback addresses Redis's `islocalClient` accepts, not all
/// of 127.0.0.0/8: a client bound to 127.0.0.2 counts as remote, for
/// protected mode too. The IPv4-mapped form is what a dual-stack listener
/// reports for 127.0.0.1.
pub fn is_local_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(ip) => {
            ip == std::net::Ipv6Addr::LOCALHOST
                || ip.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

/// Redis's `CMD_PROTECTED` commands (`COMMAND INFO` does not show the
/// flag, so they are named here): refused unless `enable-debug-command` /
/// `enable-module-command` allow the client, before authentication and
/// ACL, as `processCommand` does. `Some(message)` refuses.
pub fn protected_refusal(srv: &Shared, name: &str, addr: &str) -> Option<&'static str> {
    let (param, msg) = match name {
        "debug" => ("enable-debug-command", "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server."),
        "module|load" | "module|loadex" | "module|unload" => ("enable-module-command", "ERR MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server."),
        _ => return None,
    };
    let setting = srv.config.read().value(param);
    match setting.as_str() {
        "yes" => None,
        "local" if is_local(addr) => None,
        _ => Some(msg),
    }
}

/// Redis's RDB length of a string value, for `serializedlength`.
fn serialized_len(v: &Value) -> usize {
    let Some(b) = v.as_str() else {
        return v.mem_usage();
    };
    if let Some(n) = ferrite_protocol::parse_i64(b).filter(|_| b.len() <= 11) {
        if i8::try_from(n).is_ok() {
            return 2;
        } else if i16::try_from(n).is_ok() {
            return 3;
        } else if i32::try_from(n).is_ok() {
            return 5;
        }
    }
    let prefix = if b.len() < 64 {
        1
    } else if b.len() < 16384 {
        2
    } else {
        5
    };
    prefix + b.len()
}

/// `enable-debug-command` is checked by the dispatcher (`protected_refusal`).
fn debug(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = lossy(&args[1]).to_ascii_lowercase();
    let unknown = || CmdError::subcommand_syntax(args);
    match (sub.as_str(), args.len()) {
        ("help", 2) => {
            write_help(
                ctx,
                "debug",
                &[
                    "CHANGE-REPL-ID",
                    "    Change the replication IDs of the instance.",
                    "    Dangerous: should be used only for testing the replication subsystem.",
                    "LOG <message>",
                    "    Write <message> to the server log.",
                    "OBJECT <key>",
                    "    Show low level info about the `key` and associated value.",
                    "PAUSE-CRON <0|1>",
                    "    Stop periodic cron job processing.",
                    "POPULATE <count> [<prefix>] [<size>]",
                    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
                    "    it is used instead of the 'key' prefix. These are not propagated to",
                    "    replicas. Cluster slots are not respected so keys not belonging to the",
                    "    current node can be created in cluster mode.",
                    "PROTOCOL <type>",
                    "    Reply with a test value of the specified type. <type> can be: string,",
                    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
                    "    true, false.",
                    "REPLYBUFFER PEAK-RESET-TIME <NEVER||RESET|time>",
                    "    Sets the time (in milliseconds) to wait between client reply buffer peak resets.",
                    "    In case NEVER is provided the last observed peak will never be reset",
                    "    In case RESET is provided the peak reset time will be restored to the default value",
                    "REPLYBUFFER RESIZING <0|1>",
                    "    Enable or disable the reply buffer resize cron job",
                    "SET-ACTIVE-EXPIRE <0|1>",
                    "    Setting it to 0 disables expiring keys in background when they are not",
                    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
                    "    default.",
                    "SET-ACTIVE-WORKERS <count>",
                    "    (Ferrite) Serve connections on <count> worker threads, moving connections",
                    "    between them; 0 gives the count back to the load balancer.",
                    "SLEEP <seconds>",
                    "    Stop the server for <seconds>. Decimals allowed.",
                    "WORKERS",
                    "    (Ferrite) The number of connections on each worker thread.",
                ],
            );
            Ok(())
        }
        ("reload", _) => {
            // DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: save, then load the
            // file back in place of the dataset, or with NOFLUSH added to
            // it (MERGE: the file's keys and libraries win).
            let (mut save, mut flush, mut merge) = (true, true, false);
            for a in &args[2..] {
                if is(a, "nosave") {
                    save = false;
                } else if is(a, "merge") {
                    merge = true;
                } else if is(a, "noflush") {
                    flush = false;
                } else {
                    return Err(CmdError::err(
                        "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
                    ));
                }
            }
            match crate::persist::debug_reload(ctx.srv, save, flush, merge) {
                Ok(()) => {
                    ctx.out.ok();
                    Ok(())
                }
                Err(
                    e @ (crate::persist::PersistError::Load { .. }
                    | crate::persist::PersistError::Conflict { .. }),
                ) => {
                    tracing::warn!(error = %e, "DEBUG RELOAD");
                    Err(CmdError::err(
                        "Error trying to load the RDB dump, check server logs.",
                    ))
                }
                Err(_) => Err(CmdError::Other("ERR".into())),
            }
        }
        ("loadaof", 2) => {
            // Redis exits when the files do not load; here the error is
            // the reply, and the dataset holds what loaded before it.
            match crate::aof::debug_loadaof(ctx.srv) {
                Ok(()) => {
                    ctx.out.ok();
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "DEBUG LOADAOF");
                    Err(CmdError::err(format!("Error loading the AOF: {e}")))
                }
            }
        }
        ("set-active-workers", 3) => {
            let k = crate::command::ctx::int_arg(&args[2])?;
            let Some(w) = ctx.srv.workers.get() else {
                return Err(CmdError::err("no worker threads"));
            };
            if k < 0 || k as usize > w.len() {
                return Err(CmdError::err(format!(
                    "count must be between 0 and the number of workers ({})",
                    w.len()
                )));
            }
            w.set_manual(ctx.srv, (k > 0).then_some(k as usize));
            ctx.out.ok();
            Ok(())
        }
        ("workers", 2) => {
            let counts = ctx
                .srv
                .workers
                .get()
                .map(|w| w.connections(ctx.srv))
                .unwrap_or_default();
            ctx.out.array(counts.len());
            for c in counts {
                ctx.out.integer(c as i64);
            }
            Ok(())
        }
        ("sleep", 3) => {
            let s = ferrite_protocol::parse_f64(&args[2]).unwrap_or(0.0);
            if s > 0.0 && s.is_finite() {
                std::thread::sleep(std::time::Duration::from_secs_f64(s));
            }
            ctx.out.ok();
            Ok(())
        }
        ("set-disable-deny-scripts", 3) => {
            let on = crate::command::ctx::int_arg(&args[2])? != 0;
            ctx.srv
                .scripts
                .disable_deny
                .store(on, std::sync::atomic::Ordering::Relaxed);
            ctx.out.ok();
            Ok(())
        }
        ("replybuffer", 4) => {
            let cc = &ctx.srv.client_cron;
            if is(&args[2], "peak-reset-time") {
                let ms = if is(&args[3], "never") {
                    -1
                } else if is(&args[3], "reset") {
                    crate::client_cron::DEFAULT_PEAK_RESET_MS
                } else {
                    crate::command::ctx::int_arg(&args[3])?
                };
                cc.peak_reset_ms.store(ms, Ordering::Relaxed);
            } else if is(&args[2], "resizing") {
                // atoi, as Redis.
                let on = ferrite_protocol::parse_i64(&args[3]).unwrap_or(0) != 0;
                cc.resizing.store(on, Ordering::Relaxed);
            } else {
                return Err(unknown());
            }
            ctx.out.ok();
            Ok(())
        }
        ("pause-cron", 3) => {
            // atoi, as Redis: anything that does not start with a non-zero
            // number resumes the cron.
            let on = ferrite_protocol::parse_i64(&args[2]).unwrap_or(0) != 0;
            ctx.srv.cron_paused.store(on, Ordering::Relaxed);
            ctx.out.ok();
            Ok(())
        }
        ("set-active-expire", 3) => {
            let on = ferrite_protocol::parse_i64(&args[2]).unwrap_or(0) != 0;
            ctx.srv.store.set_active_expire(on);
            ctx.out.ok();
            Ok(())
        }
        ("log", 3) => {
            tracing::warn!("DEBUG LOG: {}", lossy(&args[2]));
            ctx.out.ok();
            Ok(())
        }
        ("change-repl-id", 2) => {
            ctx.srv.new_replication_id();
            ctx.out.ok();
            Ok(())
        }
        ("object", 3) => {
            let now = ctx.now;
            let key = &args[2];
            // The stored entry even past its TTL, as Redis's `dictFind`.
            let line = ctx.db().with_shard(key, |s| {
                s.peek_raw(key).map(|e| {
                    format!(
                        "Value at:{:p} refcount:1 encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
                        e as *const _,
                        e.value.encoding(),
                        serialized_len(&e.value),
                        e.atime,
                        idle_seconds(e.atime, now)
                    )
                })
            });
            match line {
                Some(l) => {
                    ctx.out.simple(l.as_bytes());
                    Ok(())
                }
                None => Err(CmdError::NoSuchKey),
            }
        }
        ("protocol", 3) => debug_protocol(ctx, &args[2]),
        ("populate", 3..=5) => debug_populate(ctx, args),
        ("digest", 2) => {
            use crate::digest;
            let mut acc = [0u8; 20];
            let mut any = false;
            for i in 0..ctx.srv.store.db_count() {
                let db = ctx.srv.store.db(i);
                for sh in 0..db.shard_count() {
                    db.with_shard_at(sh, |s| {
                        for (k, e) in s.iter() {
                            if e.expire_at != ferrite_storage::NO_EXPIRE && e.expire_at <= ctx.now {
                                continue;
                            }
                            any = true;
                            digest::accumulate(
                                &mut acc,
                                &digest::key_digest(i, k, &e.value, e.expire_at),
                            );
                        }
                    });
                }
            }
            // Redis answers all zeros for an empty dataset.
            let text = if any {
                digest::hex(&acc)
            } else {
                "0".repeat(40)
            };
            ctx.out.simple(text.as_bytes());
            Ok(())
        }
        ("digest-value", n) if n >= 2 => {
            let now = ctx.now;
            let db = ctx.db();
            ctx.out.array(n - 2);
            for key in &args[2..] {
                let d = db.with_shard(key, |s| {
                    s.peek(key, now)
                        .map(|e| crate::digest::value_digest(&e.value))
                });
                let text = match d {
                    Some(d) => crate::digest::hex(&d),
                    None => "0".repeat(40),
                };
                ctx.out.simple(text.as_bytes());
            }
            Ok(())
        }
        ("quicklist-packed-threshold", 3) => {
            // Redis stores list elements above this size in their own
            // "plain" quicklist node. Our lists keep every element in its own
            // allocation whatever its size, so there is nothing to switch;
            // the argument is validated as Redis does.
            let ok = std::str::from_utf8(&args[2])
                .ok()
                .and_then(crate::config::parse_memory)
                .is_some_and(|n| (0..=(1i64 << 32) - (1 << 20)).contains(&n));
            if !ok {
                return Err(CmdError::err(
                    "argument must be a memory value bigger than 1 and smaller than 4gb",
                ));
            }
            ctx.out.ok();
            Ok(())
        }
        _ => Err(unknown()),
    }
}

/// `DEBUG POPULATE count [prefix] [size]`: `prefix:N` keys (default
/// `key`) holding `value:N`, padded with zero bytes or cut to `size`;
/// existing keys are left alone. Not propagated, as in Redis.
fn debug_populate(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    use crate::command::ctx::{positive_arg, MUST_BE_POSITIVE};
    let count = positive_arg(&args[2], MUST_BE_POSITIVE)?;
    let size = match args.get(4) {
        Some(a) => positive_arg(a, MUST_BE_POSITIVE)? as usize,
        None => 0,
    };
    let prefix: &[u8] = args.get(3).map_or(b"key", |p| &p[..]);
    let now = ctx.now;
    let db = ctx.db();
    let mut key = Vec::with_capacity(prefix.len() + 21);
    for j in 0..count {
        key.clear();
        key.extend_from_slice(prefix);
        key.push(b':');
        key.extend_from_slice(j.to_string().as_bytes());
        db.with_shard(&key, |s| {
            if s.contains(&key, now) {
                return;
            }
            let mut val = format!("value:{j}").into_bytes();
            if size > 0 {
                val.resize(size, 0);
            }
            s.set(&key, Value::string(val), ferrite_storage::NO_EXPIRE, now);
        });
    }
    ctx.out.ok();
    Ok(())
}

fn debug_protocol(ctx: &mut Ctx<'_>, name: &[u8]) -> CmdResult {
    let out = &mut *ctx.out;
    if is(name, "string") {
        out.bulk(b"Hello World");
    } else if is(name, "integer") {
        out.integer(12345);
    } else if is(name, "double") {
        // Redis's own test value, not an approximation of pi.
        #[allow(clippy::approx_constant)]
        out.double(3.141);
    } else if is(name, "bignum") {
        let n = b"1234567999999999999999999999999999999";
        if out.resp3 {
            out.raw(b"(");
            out.raw(n);
            out.raw(b"\r\n");
        } else {
            out.bulk(n);
        }
    } else if is(name, "null") {
        out.null();
    } else if is(name, "array") {
        out.array(3);
        (0..3).for_each(|j| out.integer(j));
    } else if is(name, "set") {
        out.set(3);
        (0..3).for_each(|j| out.integer(j));
    } else if is(name, "map") {
        out.map(3);
        for j in 0..3 {
            out.integer(j);
            out.boolean(j == 1);
        }
    } else if is(name, "attrib") {
        if out.resp3 {
            out.raw(b"|1\r\n");
            out.bulk(b"key-popularity");
            out.array(2);
            out.bulk(b"key:123");
            out.integer(90);
        }
        out.bulk(b"Some real reply following the attribute");
    } else if is(name, "push") {
        if !out.resp3 {
            return Err(CmdError::err("RESP2 is not supported by this command"));
        }
        out.push(2);
        out.bulk(b"server-cpu-usage");
        out.integer(42);
        out.bulk(b"Some real reply following the push reply");
    } else if is(name, "true") {
        out.boolean(true);
    } else if is(name, "false") {
        out.boolean(false);
    } else if is(name, "verbatim") {
        out.verbatim(b"This is a verbatim\nstring");
    } else {
        return Err(CmdError::err("Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_parsing() {
        let line = "123 (my prog) S 1 2 3 4 5 6 7 8 9 10 250 75 3 4 20 0 1 0";
        let (u, s, cu, cs) = parse_proc_stat(line);
        assert_eq!((u, s, cu, cs), (2.5, 0.75, 0.03, 0.04));
    }

    #[test]
    fn string_serialized_len() {
        assert_eq!(serialized_len(&Value::string("12")), 2);
        assert_eq!(serialized_len(&Value::string("1000")), 3);
        assert_eq!(serialized_len(&Value::string("bar")), 4);
    }

    #[test]
    fn getkeys_by_key_specs() {
        let argv: Vec<Bytes> = ["mset", "a", "1", "b", "2"]
            .iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        let m = crate::command::meta_redis::REDIS_COMMANDS
            .iter()
            .find(|m| m.name == "mset")
            .unwrap();
        let k: Vec<usize> = crate::command::table::keys_of(m, &argv)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(k, vec![1, 3]);
    }
}
