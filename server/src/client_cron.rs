//! The clients' share of the cron (Redis's `clientsCron`): sizes each
//! connection's reply buffer to what it recently needed and gives back
//! the query buffer of a client idle for over 2 seconds, so an idle
//! connection counts about a kilobyte of buffers (`mem_clients_normal`,
//! what `maxmemory-clients` and key eviction see) instead of two 16 KB
//! chunks. Visits `max(clients / hz, 5)` clients per tick in id
//! order, so each is seen about once a second, every tick when few.
//!
//! The cron only decides; a connection applies the sizes itself between
//! batches ([`ClientHandle::ask_trim`]), as only its task owns the buffers.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::client::ClientHandle;
use crate::shared::Shared;

/// The reply buffer a connection starts with, and the largest the cron
/// grows it to (Redis's `PROTO_REPLY_CHUNK_BYTES`).
pub const REPLY_CHUNK: usize = 16 * 1024;
/// The smallest the cron shrinks a reply buffer to (`PROTO_REPLY_MIN_BYTES`).
pub const REPLY_MIN: usize = 1024;
/// How often a client's peak is forgotten by default, in ms
/// (`REPLY_BUFFER_DEFAULT_PEAK_RESET_TIME`).
pub const DEFAULT_PEAK_RESET_MS: i64 = 5000;
/// A query buffer is given back after this many seconds idle...
const QUERY_IDLE_S: i64 = 2;
/// ...when it has at least this much room to give.
const QUERY_SLACK: usize = 4 * 1024;
/// Clients visited per tick at least (`CLIENTS_CRON_MIN_ITERATIONS`).
const MIN_ITERATIONS: usize = 5;

/// Bits of [`ClientHandle::trim`]: what the connection should resize.
pub const TRIM_REPLY: u8 = 1;
pub const TRIM_QUERY: u8 = 2;

/// Settings `DEBUG REPLYBUFFER` changes, the counters `INFO stats` shows
/// (`reply_buffer_shrinks`, `reply_buffer_expands`), and where the
/// rotation over clients stands.
pub struct ClientCron {
    /// Ms between peak resets; negative: never (`DEBUG REPLYBUFFER
    /// PEAK-RESET-TIME`).
    pub peak_reset_ms: AtomicI64,
    /// `DEBUG REPLYBUFFER RESIZING 0` stops reply buffer resizing.
    pub resizing: AtomicBool,
    pub shrinks: AtomicU64,
    pub expands: AtomicU64,
    /// The id of the last client visited.
    cursor: Mutex<u64>,
}

impl Default for ClientCron {
    fn default() -> Self {
        ClientCron {
            peak_reset_ms: AtomicI64::new(DEFAULT_PEAK_RESET_MS),
            resizing: AtomicBool::new(true),
            shrinks: AtomicU64::new(0),
            expands: AtomicU64::new(0),
            cursor: Mutex::new(0),
        }
    }
}

/// A resize of a reply buffer of `size` bytes whose recent peak was
/// `peak`: shrink to just above the peak when it used less than half,
/// double when it filled up (at most to [`REPLY_CHUNK`]). Redis's
/// `clientsCronResizeOutputBuffer`.
pub fn resize_reply(size: usize, peak: usize) -> Option<Resize> {
    let shrink_to = size / 2;
    let grow_to = size * 2;
    if shrink_to >= REPLY_MIN && peak < shrink_to {
        Some(Resize::Shrink(REPLY_MIN.max(peak + 1)))
    } else if grow_to < REPLY_CHUNK * 2 && peak >= size {
        Some(Resize::Expand(REPLY_CHUNK.min(grow_to)))
    } else {
        None
    }
}

/// What [`resize_reply`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    Shrink(usize),
    Expand(usize),
}

impl Resize {
    fn size(self) -> usize {
        match self {
            Resize::Shrink(n) | Resize::Expand(n) => n,
        }
    }
}

impl ClientCron {
    /// One tick: visits the next clients in the rotation.
    pub fn tick(&self, srv: &Shared, now_ms: i64, hz: usize) {
        let n = srv.clients.len();
        if n == 0 {
            return;
        }
        let iterations = (n / hz.max(1)).max(MIN_ITERATIONS.min(n));
        let batch = {
            let mut cursor = self.cursor.lock();
            let batch = srv.clients.after(*cursor, iterations);
            if let Some(last) = batch.last() {
                *cursor = last.id;
            }
            batch
        };
        for c in batch {
            // Replica links and the primary's link write from buffers of
            // their own.
            if c.replica.load(Ordering::Relaxed) || c.primary.load(Ordering::Relaxed) {
                continue;
            }
            let mut trim = 0;
            if self.query_wasted(&c, now_ms) {
                trim |= TRIM_QUERY;
            }
            if self.resizing.load(Ordering::Relaxed) && self.reply_resized(&c, now_ms) {
                trim |= TRIM_REPLY;
            }
            if trim != 0 {
                c.ask_trim(trim);
            }
        }
    }

    /// Whether `c`'s query buffer has sat idle and empty, with room to
    /// give back. One holding part of a command is left alone: the room
    /// is for the rest of it (a large value arriving slowly; the idle time
    /// counts from the last command).
    fn query_wasted(&self, c: &ClientHandle, now_ms: i64) -> bool {
        let idle_s = (now_ms - c.last_interaction_ms.load(Ordering::Relaxed)) / 1000;
        let used = c.qbuf.load(Ordering::Relaxed);
        let cap = c.qbuf_cap.load(Ordering::Relaxed);
        idle_s > QUERY_IDLE_S && used == 0 && cap >= QUERY_SLACK
    }

    /// Decides `c`'s reply buffer size from its peak and resets the peak
    /// when due; true when the size changed.
    fn reply_resized(&self, c: &ClientHandle, now_ms: i64) -> bool {
        let size = c.rb_size.load(Ordering::Relaxed);
        let peak = c.rb_peak.load(Ordering::Relaxed);
        let resize = resize_reply(size, peak);
        match resize {
            Some(Resize::Shrink(_)) => self.shrinks.fetch_add(1, Ordering::Relaxed),
            Some(Resize::Expand(_)) => self.expands.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
        let every = self.peak_reset_ms.load(Ordering::Relaxed);
        if every >= 0 && now_ms - c.rb_peak_reset_ms.load(Ordering::Relaxed) >= every {
            // Between batches the buffer holds nothing (Redis: `bufpos`).
            c.rb_peak.store(0, Ordering::Relaxed);
            c.rb_peak_reset_ms.store(now_ms, Ordering::Relaxed);
        }
        match resize {
            Some(r) => {
                c.rb_size.store(r.size(), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// `CONFIG RESETSTAT`.
    pub fn reset_stats(&self) {
        self.shrinks.store(0, Ordering::Relaxed);
        self.expands.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_buffer_shrinks_to_the_minimum() {
        assert_eq!(
            resize_reply(REPLY_CHUNK, 0),
            Some(Resize::Shrink(REPLY_MIN))
        );
        assert_eq!(resize_reply(REPLY_CHUNK, 3000), Some(Resize::Shrink(3001)));
        // Already at the minimum, or using more than half: kept.
        assert_eq!(resize_reply(REPLY_MIN, 0), None);
        assert_eq!(resize_reply(REPLY_CHUNK, 9000), None);
    }

    #[test]
    fn full_buffer_doubles_up_to_a_chunk() {
        let mut size = REPLY_MIN;
        let mut steps = 0;
        while let Some(r) = resize_reply(size, size) {
            assert!(matches!(r, Resize::Expand(_)));
            size = r.size();
            steps += 1;
        }
        assert_eq!((size, steps), (REPLY_CHUNK, 4));
        // A buffer shrunk to an odd size still grows to a chunk at most.
        assert_eq!(resize_reply(9000, 9000), Some(Resize::Expand(REPLY_CHUNK)));
    }
}
