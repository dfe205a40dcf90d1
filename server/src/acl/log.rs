//! The ACL log (`ACL LOG`): recent refusals, similar ones folded into one
//! entry with a count (Redis's `addACLLogEntry`).

use std::collections::VecDeque;

/// Entries closer than this in time, and otherwise equal, are one entry.
const GROUPING_MAX_DELTA_MS: i64 = 60_000;

/// What was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Command,
    Key,
    Channel,
    Auth,
}

impl Reason {
    /// `ACL LOG`'s `reason` field.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
            Reason::Auth => "auth",
        }
    }
}

/// Where the refused command ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Toplevel,
    Multi,
    Lua,
}

impl Context {
    /// `ACL LOG`'s `context` field.
    pub fn name(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

/// One `ACL LOG` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub count: u64,
    pub reason: Reason,
    pub context: Context,
    pub object: Vec<u8>,
    pub username: Vec<u8>,
    pub ctime_ms: i64,
    pub client_info: String,
}

/// Newest first.
#[derive(Default)]
pub struct Log {
    pub entries: VecDeque<Entry>,
}

impl Log {
    /// Adds an entry, or bumps a matching one among the newest ten, then
    /// trims to `max_len` (`acllog-max-len`).
    pub fn add(&mut self, e: Entry, max_len: usize) {
        let found = self.entries.iter().take(10).position(|c| {
            c.reason == e.reason
                && c.context == e.context
                && (c.ctime_ms - e.ctime_ms).abs() <= GROUPING_MAX_DELTA_MS
                && c.object == e.object
                && c.username == e.username
        });
        match found.and_then(|i| self.entries.remove(i)) {
            Some(mut m) => {
                m.count += 1;
                m.ctime_ms = e.ctime_ms;
                m.client_info = e.client_info;
                self.entries.push_front(m);
            }
            None => {
                self.entries.push_front(e);
                self.entries.truncate(max_len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: &str, t: i64) -> Entry {
        Entry {
            count: 1,
            reason: Reason::Key,
            context: Context::Toplevel,
            object: object.as_bytes().to_vec(),
            username: b"u".to_vec(),
            ctime_ms: t,
            client_info: format!("at {t}"),
        }
    }

    #[test]
    fn similar_entries_fold_and_the_log_is_bounded() {
        let mut log = Log::default();
        log.add(entry("a", 0), 3);
        log.add(entry("b", 1), 3);
        log.add(entry("a", 2), 3);
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.entries[0].count, 2);
        assert_eq!(log.entries[0].client_info, "at 2");
        log.add(entry("a", 2 + GROUPING_MAX_DELTA_MS + 1), 3);
        log.add(entry("c", 70_000), 3);
        log.add(entry("d", 70_001), 3);
        assert_eq!(log.entries.len(), 3);
        assert_eq!(log.entries[0].object, b"d");
    }
}
