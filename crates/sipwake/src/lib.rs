//! `sipwake`: the server binary — configuration, logging, the drivers that
//! join the sans-IO `sip_node::Node` to sockets, the store and push senders,
//! management, CLIs and the process lifecycle. Protocol decisions live in
//! `sip-node` and the `sip-*` crates, never here.

#![recursion_limit = "256"]

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod cluster_config;
pub mod config;
pub mod data_dir;
pub mod defence_config;
pub mod dns_config;
pub mod driver;
pub mod loader;
pub mod log_json;
pub mod logging;
pub mod management;
pub mod metrics;
pub mod mgmt_acl;
pub mod mgmt_defence;
pub mod mgmt_push;
pub mod mgmt_users;
pub mod mid_config;
pub mod openapi;
pub mod preflight;
pub mod push_check;
pub mod push_config;
pub mod reload;
pub mod resolve;
pub mod server;
pub mod store_map;
pub mod store_open;
pub mod subscribers;
pub mod tls_config;
