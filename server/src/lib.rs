//! The Ferrite server: networking, the command table and dispatch,
//! configuration, and the propagation stream.
//!
//! Direction of dependencies: `server` uses `protocol` (bytes ↔ commands)
//! and `storage` (the keyspace); neither of those knows about this crate.

pub mod acl;
pub mod aof;
pub mod blocking;
pub mod client;
pub mod client_cron;
pub mod client_mem;
pub mod clock;
pub mod command;
pub mod commands;
pub mod config;
pub mod connection;
pub mod counters;
pub mod deferred;
pub mod digest;
pub mod evict;
pub mod failover;
pub mod hdr;
pub mod lazyfree;
pub mod listen;
pub mod lzf;
pub mod nap;
pub mod pause;
pub mod persist;
pub mod process;
pub mod propagate;
pub mod pubsub;
pub mod rdb;
pub mod rdb_load;
pub mod replica;
pub mod scripting;
pub mod server;
pub mod shared;
pub mod shutdown;
pub mod sparkline;
pub mod stats;
pub mod tracking;
pub mod upstream;
pub mod workers;

pub use config::Config;
pub use server::{run, run_with};
pub use shared::Shared;
