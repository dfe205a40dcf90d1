//! Commands: metadata, the table, the handler context and the dispatcher.

pub mod ctx;
pub mod dispatch;
pub mod error;
pub mod meta;
pub mod meta_modules;
pub mod meta_redis;
pub mod redact;
pub mod rename;
pub mod render;
pub mod scan;
pub mod table;

pub use ctx::Ctx;
pub use error::{CmdError, CmdResult};
pub use table::{flag, Command, Table, TABLE};

/// A command handler: a synchronous function of the context and the
/// arguments (`args[0]` is the command name). It writes its reply into
/// `ctx.out` only on success; an `Err` becomes the error reply.
pub type Handler = fn(&mut Ctx<'_>, &[bytes::Bytes]) -> CmdResult;
