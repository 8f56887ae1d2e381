//! `sipwake`: the server — configuration, logging, the core that ties the
//! transports to the transaction layer and the request handlers, and the
//! process lifecycle. Protocol logic lives in the `sip-*` crates.

pub mod config;
pub mod core;
pub mod logging;
pub mod server;
