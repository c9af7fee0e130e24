//! `io/*.h`: the split-driver protocols shared between frontends and backends.

pub mod blkif;
pub mod console;
pub mod libxenvchan;
pub mod netif;
pub mod protocols;
pub mod ring;
pub mod xenbus;
pub mod xs_wire;
