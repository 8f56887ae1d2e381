//! `sip-registrar`: the registrar of sipwake, sans-IO.
//!
//! It owns the location service in memory ([`Location`]: bindings by AoR,
//! an expiry schedule, bindings by connection) and the REGISTER rules
//! (RFC 3261 §10.3, RFC 3327 Path, RFC 5626 outbound): fed a validated,
//! authenticated REGISTER and `now`, it returns the reply to send and the
//! changes to make durable. It never touches sockets, clocks, databases or
//! credentials: authentication happens before, persistence after.

pub mod aor;
pub mod binding;
pub mod config;
pub mod location;
pub mod register;
pub mod reply;

pub use aor::Aor;
pub use binding::{Binding, ContactUri, Flow, FlowTransport, PushParams};
pub use config::{MaxContactsPolicy, RegistrarConfig};
pub use location::{Change, Location};
pub use register::{Outcome, RegisterInput, Registrar};
pub use reply::Reply;
