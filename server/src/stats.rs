//! Server-wide counters (`INFO stats`), the slow log and latency events.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::counters::{self, Slot};

/// Counters read by `INFO`.
#[derive(Default)]
pub struct Stats {
    pub total_connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    /// Replication links' traffic; clients' is in `crate::counters`.
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub total_error_replies: AtomicU64,
    pub unexpected_error_replies: AtomicU64,
    pub evicted_keys: AtomicU64,
    /// Clients disconnected by `maxmemory-clients` (`evicted_clients`).
    pub evicted_clients: AtomicU64,
    /// Full resyncs served, partial resyncs accepted and refused
    /// (`sync_full`, `sync_partial_ok`, `sync_partial_err`).
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// Error code (`ERR`, `WRONGTYPE`, ...) → count, for `INFO errorstats`.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Commands processed at the last cron tick and its time, for `instantaneous_ops_per_sec`.
    pub ops_sample: Mutex<(u64, i64, u64)>,
}

impl Stats {
    /// Counts one error reply under its code (the first word).
    pub fn count_error(&self, msg: &[u8]) {
        self.total_error_replies.fetch_add(1, Ordering::Relaxed);
        let code = msg.split(|&b| b == b' ').next().unwrap_or(b"ERR");
        let code = String::from_utf8_lossy(code).into_owned();
        let mut m = self.errors.lock();
        // Redis stops adding new error codes past 128 distinct ones.
        if m.len() < 128 || m.contains_key(&code) {
            *m.entry(code).or_insert(0) += 1;
        }
    }

    /// Keyspace hit (`keyspace_hits`).
    #[inline]
    pub fn hit(&self) {
        counters::add(Slot::Hits, 1);
    }

    /// Keyspace miss (`keyspace_misses`).
    #[inline]
    pub fn miss(&self) {
        counters::add(Slot::Misses, 1);
    }

    /// `keyspace_hits`.
    pub fn hits(&self) -> u64 {
        counters::get(Slot::Hits)
    }

    /// `keyspace_misses`.
    pub fn misses(&self) -> u64 {
        counters::get(Slot::Misses)
    }

    /// `total_commands_processed`.
    pub fn commands_processed(&self) -> u64 {
        counters::get(Slot::Commands)
    }

    /// `total_net_input_bytes`: clients and replication links.
    pub fn net_input(&self) -> u64 {
        counters::get(Slot::NetIn) + self.net_input_bytes.load(Ordering::Relaxed)
    }

    /// `total_net_output_bytes`: clients and replication links.
    pub fn net_output(&self) -> u64 {
        counters::get(Slot::NetOut) + self.net_output_bytes.load(Ordering::Relaxed)
    }

    /// Zeroes what `CONFIG RESETSTAT` zeroes.
    pub fn reset(&self) {
        for c in [
            &self.total_connections_received,
            &self.rejected_connections,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.total_error_replies,
            &self.unexpected_error_replies,
            &self.evicted_keys,
            &self.evicted_clients,
            &self.sync_full,
            &self.sync_partial_ok,
            &self.sync_partial_err,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.errors.lock().clear();
        counters::reset();
        crate::lazyfree::reset();
    }
}

/// One slow log entry.
#[derive(Debug, Clone)]
pub struct SlowEntry {
    pub id: u64,
    pub time_s: i64,
    pub duration_us: u64,
    pub args: Vec<Bytes>,
    pub addr: String,
    pub name: Bytes,
}

/// The slow log (`SLOWLOG GET/LEN/RESET`).
#[derive(Default)]
pub struct SlowLog {
    pub entries: VecDeque<SlowEntry>,
    pub next_id: u64,
}

impl SlowLog {
    /// Records a command that took `duration_us`, keeping at most `max_len`
    /// entries; arguments are trimmed the way Redis trims them.
    pub fn push(&mut self, mut e: SlowEntry, max_len: usize) {
        const MAX_ARGC: usize = 32;
        const MAX_STRING: usize = 128;
        let argc = e.args.len();
        if argc > MAX_ARGC {
            e.args.truncate(MAX_ARGC - 1);
            e.args.push(Bytes::from(format!(
                "... ({} more arguments)",
                argc - MAX_ARGC + 1
            )));
        }
        for a in e.args.iter_mut() {
            if a.len() > MAX_STRING {
                let mut v = a[..MAX_STRING].to_vec();
                v.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes(),
                );
                *a = Bytes::from(v);
            }
        }
        e.id = self.next_id;
        self.next_id += 1;
        self.entries.push_front(e);
        while self.entries.len() > max_len {
            self.entries.pop_back();
        }
    }
}

/// Latency samples per event (`LATENCY LATEST/HISTORY/RESET`).
#[derive(Default)]
pub struct Latency {
    /// event → (samples of (unix s, ms), max ms)
    pub events: BTreeMap<String, (VecDeque<(i64, u64)>, u64)>,
}

impl Latency {
    /// Records `ms` for `event` at unix second `t` (one sample per second, 160 kept, like Redis).
    pub fn add(&mut self, event: &str, t: i64, ms: u64) {
        let (samples, max) = self.events.entry(event.to_string()).or_default();
        *max = (*max).max(ms);
        if let Some(last) = samples.back_mut() {
            if last.0 == t {
                last.1 = last.1.max(ms);
                return;
            }
        }
        samples.push_back((t, ms));
        while samples.len() > 160 {
            samples.pop_front();
        }
    }
}
