//! Command families, one module each, each listing its handlers by the
//! command's full name. Metadata comes from `command::meta_*`; the table
//! joins them.

use crate::command::Handler;

pub mod acl;
pub mod bloom;
pub mod cluster;
pub mod connection;
pub mod dump;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod keys;
pub mod list;
pub mod memory;
pub mod migrate;
pub mod multi;
pub mod persist;
pub mod pubsub;
pub mod replication;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod string;
pub mod throttle;
pub mod tracking;
pub mod zblock;
pub mod zset;

/// Every handler of every family.
pub fn handlers() -> Vec<(&'static str, Handler)> {
    let mut v = Vec::new();
    v.extend_from_slice(connection::HANDLERS);
    v.extend_from_slice(acl::HANDLERS);
    v.extend_from_slice(string::HANDLERS);
    v.extend_from_slice(keys::HANDLERS);
    v.extend_from_slice(dump::HANDLERS);
    v.extend_from_slice(migrate::HANDLERS);
    v.extend_from_slice(cluster::HANDLERS);
    v.extend_from_slice(server::HANDLERS);
    v.extend_from_slice(memory::HANDLERS);
    v.extend_from_slice(list::HANDLERS);
    v.extend_from_slice(multi::HANDLERS);
    v.extend_from_slice(persist::HANDLERS);
    v.extend_from_slice(replication::HANDLERS);
    v.extend_from_slice(pubsub::HANDLERS);
    v.extend_from_slice(hash::HANDLERS);
    v.extend_from_slice(set::HANDLERS);
    v.extend_from_slice(sort::HANDLERS);
    v.extend_from_slice(zset::HANDLERS);
    v.extend_from_slice(geo::HANDLERS);
    v.extend_from_slice(hll::HANDLERS);
    v.extend_from_slice(zblock::HANDLERS);
    v.extend_from_slice(stream::HANDLERS);
    v.extend_from_slice(bloom::HANDLERS);
    v.extend_from_slice(throttle::HANDLERS);
    v.extend_from_slice(tracking::HANDLERS);
    v.extend_from_slice(crate::scripting::HANDLERS);
    v
}

/// The commands that find their keys with their own parser (Redis's
/// `getkeys_proc`) rather than from their key specs alone.
pub fn getkeys_proc(name: &str) -> Option<crate::command::table::GetKeysFn> {
    match name {
        "sort" => Some(sort::sort_key_positions),
        _ => None,
    }
}
