//! `CLUSTER`, `READONLY`, `READWRITE` and `ASKING` on a server without
//! cluster support, which is what Ferrite is: Redis 7.0 with
//! `cluster-enabled no` answers each of them "This instance has cluster
//! support disabled" (after its usual arity and unknown-subcommand
//! checks), and cluster-aware clients read that answer to fall back to a
//! single node. The table carries their real metadata, so `COMMAND` and
//! scripts (which may not call them: `noscript`) see them as Redis does.

use bytes::Bytes;

use crate::command::{CmdError, CmdResult, Ctx, Handler};

/// Handlers of this family: every `CLUSTER` subcommand and the three
/// connection-level cluster commands share one.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("cluster|addslots", disabled),
    ("cluster|addslotsrange", disabled),
    ("cluster|bumpepoch", disabled),
    ("cluster|count-failure-reports", disabled),
    ("cluster|countkeysinslot", disabled),
    ("cluster|delslots", disabled),
    ("cluster|delslotsrange", disabled),
    ("cluster|failover", disabled),
    ("cluster|flushslots", disabled),
    ("cluster|forget", disabled),
    ("cluster|getkeysinslot", disabled),
    ("cluster|help", disabled),
    ("cluster|info", disabled),
    ("cluster|keyslot", disabled),
    ("cluster|links", disabled),
    ("cluster|meet", disabled),
    ("cluster|myid", disabled),
    ("cluster|nodes", disabled),
    ("cluster|replicas", disabled),
    ("cluster|replicate", disabled),
    ("cluster|reset", disabled),
    ("cluster|saveconfig", disabled),
    ("cluster|set-config-epoch", disabled),
    ("cluster|setslot", disabled),
    ("cluster|shards", disabled),
    ("cluster|slaves", disabled),
    ("cluster|slots", disabled),
    ("readonly", disabled),
    ("readwrite", disabled),
    ("asking", disabled),
];

fn disabled(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Err(CmdError::err("This instance has cluster support disabled"))
}
