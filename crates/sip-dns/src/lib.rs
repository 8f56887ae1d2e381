//! RFC 3263 server location for sipwake: turns the host, port, transport
//! and scheme of a SIP URI into the ordered list of (transport, address)
//! pairs to try, through NAPTR, SRV (RFC 2782) and A/AAAA records, with a
//! TTL-bounded cache.
//!
//! The crate owns DNS for SIP routing and nothing else: it sends no SIP,
//! keeps no per-transaction state and never blocks the caller's thread (all
//! lookups are async on Tokio). The node asks, gets [`Resolution::targets`]
//! in try order, and fails over along them itself.
//!
//! Layout: `rules` is the sans-IO RFC logic (transport choice, NAPTR
//! filtering and order, SRV weighted order, flattening); `lookup` drives
//! hickory-resolver; `cache` keeps answers; [`Resolver`] ties them together.

mod cache;
mod config;
mod lookup;
mod resolver;
mod rules;
mod types;

pub use config::ResolverConfig;
pub use resolver::Resolver;
pub use rules::default_port;
pub use types::{DnsError, Query, Resolution, Resolved};
