//! What a handler sees: the server, its client, the output buffer and the
//! time of this command; plus argument parsing helpers shared by families.

use bytes::Bytes;
use ferrite_protocol::ReplyBuf;
use ferrite_storage::Db;

use super::error::CmdError;
use super::table::Command;
use crate::client::Client;
use crate::shared::Shared;

/// The handler context of one command.
pub struct Ctx<'a> {
    pub srv: &'a Shared,
    pub client: &'a mut Client,
    pub out: &'a mut ReplyBuf,
    /// Unix milliseconds, read once per command: every TTL decision of the
    /// command uses the same instant.
    pub now: i64,
    pub cmd: &'a Command,
}

impl<'a> Ctx<'a> {
    /// A read lookup (Redis's `lookupKeyRead`): counts a keyspace hit or
    /// miss and hands the value to `of`, which answers WRONGTYPE for other
    /// types; `None` when the key is absent.
    pub fn read_lookup<'s, T: ?Sized>(
        &self,
        s: &'s mut ferrite_storage::Shard,
        key: &[u8],
        of: impl FnOnce(&'s ferrite_storage::Value) -> Result<&'s T, CmdError>,
    ) -> Result<Option<&'s T>, CmdError> {
        match s.get(key, self.now) {
            None => {
                self.srv.stats.miss();
                Ok(None)
            }
            Some(e) => {
                self.srv.stats.hit();
                of(&e.value).map(Some)
            }
        }
    }

    /// The client's selected database.
    pub fn db(&self) -> &'a Db {
        self.srv.store.db(self.client.db)
    }

    /// Appends an effect to the propagation stream in the client's database.
    /// Call it while the shard locks of the write are held.
    pub fn propagate(&self, args: &[&[u8]]) {
        self.srv.repl.feed(self.client.db, args);
    }

    /// Propagates the command exactly as received.
    pub fn propagate_argv(&self, argv: &[Bytes]) {
        let mut v: smallvec::SmallVec<[&[u8]; 8]> = argv.iter().map(|b| &b[..]).collect();
        // A command called by a `rename-command` name goes into the stream
        // and the AOF by its real one (one atomic load when none is set).
        if let Some(first) = v.first_mut() {
            if let Some(real) = super::rename::real_name(first) {
                *first = real.as_bytes();
            }
        }
        self.srv.repl.feed(self.client.db, &v);
    }

    /// Publishes a keyspace event for `key` in the client's database when
    /// `class` is enabled in `notify-keyspace-events`; a relaxed atomic load
    /// when notifications are off. A message this client itself subscribed
    /// to arrives before the command's reply, as in Redis.
    #[inline]
    pub fn notify(&self, class: u32, event: &str, key: &[u8]) {
        self.notify_db(class, event, key, self.client.db);
    }

    /// Whether any keyspace-event class is on: lets callers skip work that
    /// only a notification needs (checking whether a list became empty).
    #[inline]
    pub fn notify_enabled(&self) -> bool {
        self.srv
            .pubsub
            .notify_flags
            .load(std::sync::atomic::Ordering::Relaxed)
            != 0
    }

    /// [`Ctx::notify`] for a key in another database (`MOVE`, `COPY ... DB`).
    #[inline]
    pub fn notify_db(&self, class: u32, event: &str, key: &[u8], db: usize) {
        let flags = self
            .srv
            .pubsub
            .notify_flags
            .load(std::sync::atomic::Ordering::Relaxed);
        if flags & class != 0 {
            self.notify_slow(class, event, key, db);
        }
    }

    #[cold]
    fn notify_slow(&self, class: u32, event: &str, key: &[u8], db: usize) {
        let id = self.client.id();
        let mut push = self.client.push.borrow_mut();
        push.resp3 = self.out.resp3;
        self.srv
            .pubsub
            .notify(class, event, key, db, Some((id, &mut push)));
    }

    /// The collection encoding thresholds in force for this command.
    pub fn enc(&self) -> ferrite_storage::EncodingLimits {
        *self.srv.hot.enc.read()
    }

    /// `ERR wrong number of arguments for '<cmd>' command` for this command.
    pub fn arity_error(&self) -> CmdError {
        CmdError::WrongArity(self.cmd.name().to_string())
    }
}

/// Case-insensitive comparison of an argument with an ASCII keyword.
#[inline]
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Parses an integer argument (`ERR value is not an integer or out of range`).
pub fn int_arg(arg: &[u8]) -> Result<i64, CmdError> {
    ferrite_protocol::parse_i64(arg).ok_or(CmdError::NotInteger)
}

/// `getRangeLongFromObjectOrReply`: an integer in `min..=max`, else `ERR
/// <msg>` (also for a non-integer, as Redis).
pub fn range_arg(arg: &[u8], min: i64, max: i64, msg: &str) -> Result<i64, CmdError> {
    match ferrite_protocol::parse_i64(arg) {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(CmdError::err(msg)),
    }
}

/// `getPositiveLongFromObjectOrReply`: a non-negative integer, else `ERR
/// <msg>` for a negative value and for a non-integer alike; Redis's default
/// message is [`MUST_BE_POSITIVE`].
pub fn positive_arg(arg: &[u8], msg: &str) -> Result<i64, CmdError> {
    range_arg(arg, 0, i64::MAX, msg)
}

/// Redis's default message of `getPositiveLongFromObjectOrReply`.
pub const MUST_BE_POSITIVE: &str = "value is out of range, must be positive";

/// The tail shared by `LMPOP`, `BLMPOP`, `ZMPOP` and `BZMPOP`:
/// `numkeys key [key ...] <which[0]|which[1]> [COUNT count]` from
/// `args[numkeys_idx]`. Returns the keys, which word was given (0 or 1) and
/// the count (default 1).
pub fn mpop_args<'a>(
    args: &'a [Bytes],
    numkeys_idx: usize,
    which: [&str; 2],
) -> Result<(&'a [Bytes], usize, usize), CmdError> {
    let positive = |arg: &[u8], msg: &str| {
        range_arg(arg, 1, i64::MAX, msg).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    };
    let numkeys = positive(&args[numkeys_idx], "numkeys should be greater than 0")?;
    let where_idx = numkeys
        .checked_add(numkeys_idx + 1)
        .filter(|&i| i < args.len())
        .ok_or(CmdError::Syntax)?;
    let side = which
        .iter()
        .position(|w| is(&args[where_idx], w))
        .ok_or(CmdError::Syntax)?;
    let mut count = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && is(&args[j], "count") && j + 1 < args.len() {
            count = Some(positive(&args[j + 1], "count should be greater than 0")?);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((&args[numkeys_idx + 1..where_idx], side, count.unwrap_or(1)))
}

/// Parses a float argument (`ERR value is not a valid float`).
pub fn float_arg(arg: &[u8]) -> Result<f64, CmdError> {
    ferrite_protocol::parse_f64(arg).ok_or(CmdError::NotFloat)
}

pub use crate::clock::{unix_ms, unix_us};

/// Parses a blocking timeout in seconds with decimals into an absolute
/// deadline in unix ms (0 = forever), as `getTimeoutFromObjectOrReply`.
pub fn timeout_arg(ctx: &Ctx<'_>, arg: &[u8]) -> Result<i64, CmdError> {
    let t = ferrite_protocol::parse_f64(arg)
        .filter(|t| t.is_finite())
        .ok_or_else(|| CmdError::err("timeout is not a float or out of range"))?;
    let ms = (t * 1000.0).ceil();
    if ms < 0.0 {
        return Err(CmdError::err("timeout is negative"));
    }
    if ms >= i64::MAX as f64 {
        return Err(CmdError::err("timeout is out of range"));
    }
    let ms = ms as i64;
    if ms == 0 {
        return Ok(0);
    }
    ms.checked_add(ctx.now)
        .ok_or_else(|| CmdError::err("timeout is out of range"))
}
