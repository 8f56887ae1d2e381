//! `sip-node`: the sans-IO SIP node of sipwake.
//!
//! One [`Node`] joins the cores — the transaction layer (`sip-txn`), the
//! proxy contexts (`sip-proxy`), the registrar and its location service
//! (`sip-registrar`), the RFC 8599 push engine (`sip-push`) and digest
//! authentication (`sip-auth`) — into one deterministic state machine, in
//! the manner of quinn-proto's `Endpoint`: fed with messages, timer ticks,
//! store results, push results and credential lookups, each with `now`; it
//! returns what to send, store, push and look up, and when to wake.
//!
//! No sockets, threads, clocks, databases or HTTP here: the binary's drivers
//! do the I/O. Ordering rules are rules of this state machine (a parked
//! request is forked only after the wake-up REGISTER's 200 has been committed
//! and sent), so they hold whatever the drivers' threads do.
//!
//! Modules: [`node`] (entry points, outbox, clock, §18 checks),
//! `decide` (routing decisions, §16.3–16.5), `proxying` (contexts on the
//! transaction layer, §16.6–16.11), `registrar` (REGISTER in the registrar
//! role), [`mid`] (the mid-registrar role: REGISTERs through an upstream
//! registrar, throttling, re-sends), [`pn`] (RFC 8599, shared by every REGISTER role), [`audit`] (the push audit: the story of each push and parked request, flagged devices), `credentials`
//! (subscriber cache and lookups), [`proxy`] (proxy data, Record-Route,
//! flow tokens, branch building), [`via`] (§18 Via stamping and response
//! routing), [`dns`] (RFC 3263 questions and answers), [`local`] (what the server answers itself), [`loading`] (the start-up gate: serving while the location loads), [`defence`] (allow/deny lists, rate limits and blocks by source), [`io`] (the
//! boundary types), [`metrics`], [`stats`], `oplog` (the lines operators read: registration changes
//! and parked-request outcomes at INFO, failed logins at WARN).

pub mod audit;
pub mod cluster;
mod credentials;
mod decide;
pub mod defence;
pub mod dns;
pub mod io;
pub mod loading;
pub mod local;
pub mod metrics;
pub mod mid;
pub mod node;
mod oplog;
pub mod pn;
pub mod proxy;
mod proxying;
mod registrar;
pub mod stats;
pub mod via;

pub use cluster::{ClusterConfig, ClusterJob, ClusterStats, Replicated};
pub use credentials::{MAX_LOOKUPS, NEGATIVE_TTL};
pub use dns::{Resolution, ResolveError, ResolveId, ResolveJob};
pub use io::{CallEndPushes, Caller, Lookup, PushJob, Secrets, StoreOp, StoreWrite, Transmit, WriteId};
pub use node::{Node, NodeConfig, method_label};
pub use proxy::ProxyConfig;
pub use proxy::route::NameQuery;
pub use stats::Stats;
