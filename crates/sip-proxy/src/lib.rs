//! `sip-proxy`: the response context of a stateful SIP proxy (RFC 3261
//! §16.5–§16.10), sans-IO.
//!
//! One [`ProxyContext`] exists per proxied request (per server transaction).
//! It owns the target set ordered by q-value, decides which branches start
//! when, and what to do with every branch response, branch timeout,
//! transport error, upstream CANCEL and Timer C. Pure data in, [`Action`]s
//! out: no sockets, no tasks, no clock reads, no randomness. The server core
//! builds and sends each branch request, runs the transaction layer, maps
//! client transaction keys to `(context, branch)`, and carries out the
//! actions.
//!
//! Contract with the core:
//!
//! * the [`sip_msg::Message`] handed to [`ProxyContext::on_response`] has the
//!   proxy's own top Via already removed: it is exactly what goes upstream,
//!   and [`Action::Forward`] carries it unchanged;
//! * [`Action::CancelBranch`] is emitted for every pending INVITE branch to
//!   be cancelled, whether or not it has seen a provisional response; the
//!   core calls `sip_txn::TxnLayer::cancel`, which defers the CANCEL until a
//!   provisional arrives (§9.1);
//! * the core answers an upstream CANCEL itself (200) and then calls
//!   [`ProxyContext::on_cancel`];
//! * the core calls [`ProxyContext::handle_timeout`] when
//!   [`ProxyContext::poll_timeout`] is due (Timer C, CANCEL guard).
//!
//! Modules: [`config`] (targets, settings), [`action`] (outputs), `queue`
//! (q-value groups not started yet), `branch` (one branch's state and
//! timers), `select` (best final response, challenge aggregation),
//! [`context`] (the context itself).

pub mod action;
mod branch;
pub mod config;
pub mod context;
mod queue;
mod select;

pub use action::Action;
pub use config::{ContextConfig, Q_MAX, Target};
pub use context::{BranchId, ProxyContext};
