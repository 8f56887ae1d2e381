//! `sipwake`: the server — configuration, logging, the core that ties the
//! transports to the transaction layer and the request handlers, and the
//! process lifecycle. Protocol logic lives in the `sip-*` crates.

pub mod cli;
pub mod config;
pub mod core;
pub mod logging;
pub mod management;
pub mod metrics;
pub mod proxy;
pub mod push_svc;
pub mod registrar_svc;
pub mod server;
pub mod store_map;
