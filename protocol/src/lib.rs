//! RESP2/RESP3 for Ferrite: request parsing and reply encoding.
//!
//! This crate knows nothing about sockets or storage. The server hands it the
//! bytes it read and gets back argument slices; it hands it reply values and
//! gets back bytes to write.
//!
//! We parse requests ourselves instead of using the `redis-protocol` crate:
//! requests must come out as zero-copy `Bytes` slices pushed into a reused
//! argument vector (no per-command allocation), inline commands must be split
//! exactly like Redis's `sdssplitargs`, and every malformed input must produce
//! Redis's own `Protocol error: ...` text. The crate covers none of the three.

mod error;
pub mod number;
mod parse;
mod reply;

pub use error::ProtocolError;
pub use number::{format_double, parse_f64, parse_i64, parse_u64};
pub use parse::{parse_command, split_args, Limits, Parsed, INLINE_MAX_SIZE};
pub use reply::ReplyBuf;
