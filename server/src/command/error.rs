//! Command errors. Each variant's text is exactly what Redis replies,
//! code included; the dispatcher writes it and counts it in `errorstats`.

use thiserror::Error;

/// Why a command failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CmdError {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR no such key")]
    NoSuchKey,
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(String),
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// Any other message, written as given (it must start with its code).
    #[error("{0}")]
    Other(String),
}

impl CmdError {
    /// An `ERR ...` error with free text.
    pub fn err(msg: impl std::fmt::Display) -> CmdError {
        CmdError::Other(format!("ERR {msg}"))
    }

    /// A container's subcommand called with arguments it does not take
    /// (Redis's `addReplySubcommandSyntaxError`).
    pub fn subcommand_syntax(args: &[bytes::Bytes]) -> CmdError {
        let sub = args.get(1).map(|a| &a[..a.len().min(128)]).unwrap_or(b"");
        let container = args.first().map(|a| &a[..]).unwrap_or(b"");
        CmdError::err(format_args!(
            "unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
            String::from_utf8_lossy(sub),
            String::from_utf8_lossy(container).to_uppercase()
        ))
    }
}

/// What a handler returns.
pub type CmdResult = Result<(), CmdError>;
