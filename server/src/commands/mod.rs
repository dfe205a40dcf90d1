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
pub mod lolwut;
pub mod memory;
pub mod migrate;
pub mod module;
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
    v.extend_from_slice(module::HANDLERS);
    v.extend_from_slice(cluster::HANDLERS);
    v.extend_from_slice(server::HANDLERS);
    v.extend_from_slice(lolwut::HANDLERS);
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
        "set" => Some(set_keys),
        "bitfield" => Some(bitfield_keys),
        "migrate" => Some(migrate_keys),
        _ => None,
    }
}

/// `SET`'s key reads only with `GET` (Redis's `setGetKeys`): the flags an
/// ACL `%W~` pattern is checked against.
fn set_keys(argv: &[bytes::Bytes]) -> crate::command::table::KeyRefs {
    if argv.len() < 2 {
        return Vec::new();
    }
    let get = argv.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get"));
    let flags: &'static [&'static str] = if get {
        &["RW", "access", "update"]
    } else {
        &["OW", "update"]
    };
    vec![(1, flags)]
}

/// `BITFIELD` with only `GET`s reads (Redis's `bitfieldGetKeys`).
fn bitfield_keys(argv: &[bytes::Bytes]) -> crate::command::table::KeyRefs {
    if argv.len() < 2 {
        return Vec::new();
    }
    let mut readonly = true;
    let mut i = 2;
    while i < argv.len() {
        let rem = argv.len() - i - 1;
        let a = &argv[i];
        if a.eq_ignore_ascii_case(b"get") && rem >= 2 {
            i += 2;
        } else if (a.eq_ignore_ascii_case(b"set") || a.eq_ignore_ascii_case(b"incrby")) && rem >= 3
        {
            readonly = false;
            break;
        } else if a.eq_ignore_ascii_case(b"overflow") && rem >= 1 {
            i += 1;
        } else {
            // A syntax error: assume it writes, as Redis does.
            readonly = false;
            break;
        }
        i += 1;
    }
    let flags: &'static [&'static str] = if readonly {
        &["RO", "access"]
    } else {
        &["RW", "access", "update"]
    };
    vec![(1, flags)]
}

/// `MIGRATE host port key|"" db timeout [... KEYS k...]` (Redis's
/// `migrateGetKeys`): the single key, or those after `KEYS` when it is "".
fn migrate_keys(argv: &[bytes::Bytes]) -> crate::command::table::KeyRefs {
    const FLAGS: &[&str] = &["RW", "access", "delete"];
    let (mut first, mut num) = (3, 1);
    if argv.len() > 6 {
        let mut i = 6;
        while i < argv.len() {
            let a = &argv[i];
            if a.eq_ignore_ascii_case(b"keys") {
                if argv[3].is_empty() {
                    first = i + 1;
                    num = argv.len() - first;
                } else {
                    num = 0;
                }
                break;
            }
            if a.eq_ignore_ascii_case(b"auth") {
                i += 1;
            } else if a.eq_ignore_ascii_case(b"auth2") {
                i += 2;
            }
            i += 1;
        }
    }
    (first..first + num)
        .filter(|&p| p < argv.len())
        .map(|p| (p, FLAGS))
        .collect()
}
