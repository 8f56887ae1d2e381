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
//!
//! ```no_run
//! use sip_dns::{Query, Resolver, ResolverConfig};
//! use sip_msg::Transport;
//!
//! # async fn route() -> Result<(), Box<dyn std::error::Error>> {
//! let supported = [Transport::Udp, Transport::Tcp, Transport::Tls];
//! let resolver = Resolver::new(ResolverConfig::default(), &supported)?;
//! // sip:bob@example.org
//! let r = resolver.resolve(&Query::sip("example.org")).await?;
//! for t in &r.targets {
//!     println!("try {} {} (valid for {:?})", t.transport, t.addr, r.ttl);
//! }
//! # Ok(())
//! # }
//! ```

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolver_and_its_future_can_move_between_threads() {
        fn shared<T: Send + Sync + Clone + 'static>(_: &T) {}
        fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}
        let cfg = ResolverConfig { servers: vec![([127, 0, 0, 1], 9).into()], ..ResolverConfig::default() };
        let r = Resolver::new(cfg, &[sip_msg::Transport::Udp]).unwrap();
        shared(&r);
        let q = Query::sip("example.org");
        spawnable(async move { r.resolve(&q).await });
    }

    #[test]
    fn needs_a_resolvable_transport() {
        let cfg = ResolverConfig { servers: vec![([127, 0, 0, 1], 9).into()], ..ResolverConfig::default() };
        assert!(Resolver::new(cfg, &[sip_msg::Transport::Ws, sip_msg::Transport::Wss]).is_err());
    }
}
