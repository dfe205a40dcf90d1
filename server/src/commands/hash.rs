//! hash commands (being written).

use crate::command::Handler;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[];
