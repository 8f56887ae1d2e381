//! `sip-txn`: the sans-IO SIP transaction layer of sipwake (RFC 3261 §17 with
//! the RFC 6026 corrections).
//!
//! A deterministic state machine in the style of quinn-proto: no sockets, no
//! tasks, no clock reads. The caller feeds it messages and the current time,
//! and drains what it produced:
//!
//! * input: [`TxnLayer::on_request`], [`TxnLayer::on_response`] (network),
//!   [`TxnLayer::respond`], [`TxnLayer::send_request`], [`TxnLayer::cancel`]
//!   (transaction user), [`TxnLayer::handle_timeout`] (clock),
//!   [`TxnLayer::on_transport_error`] (transport);
//! * output: [`TxnLayer::poll_transmit`] (messages to send),
//!   [`TxnLayer::poll_event`] (timeouts, transport errors, terminations),
//!   [`TxnLayer::poll_timeout`] (when to call `handle_timeout` next).
//!
//! Matching is by hash lookup; timers live in one binary heap with lazy
//! deletion, so a tick costs O(log n) per due timer, never O(n).
//!
//! Modules: [`config`] (timer values, [`Peer`]), [`key`] (transaction keys
//! and matching rules), `timers` (the timer heap), `build` (ACK, CANCEL,
//! 100 Trying), `ctx` (what a state machine may do), `client_invite`,
//! `client_non_invite`, `server_invite`, `server_non_invite` (the four
//! state machines), `table` (storage and indexes), [`event`] (output types),
//! `layer` ([`TxnLayer`], dispatch).
//!
//! ```
//! use sip_txn::{Config, RequestEvent, TxnLayer, Peer, Transmit};
//! use std::time::Instant;
//!
//! /// One turn of a server loop; `recv` is whatever the socket produced.
//! fn turn(txn: &mut TxnLayer, recv: Option<(sip_msg::Message, Peer)>, send: &mut impl FnMut(Transmit)) {
//!     let now = Instant::now();
//!     if let Some((msg, from)) = recv {
//!         if msg.is_request() {
//!             if let RequestEvent::New { key, msg, .. } = txn.on_request(msg, from, now) {
//!                 let _ = txn.respond(&key, msg.response(200, None, Some("t1")), now);
//!             }
//!         } else {
//!             let _ = txn.on_response(msg, from, now); // hand Response/Stray to the TU
//!         }
//!     }
//!     if txn.poll_timeout().is_some_and(|t| t <= now) {
//!         txn.handle_timeout(now);
//!     }
//!     while let Some(t) = txn.poll_transmit() { send(t) }
//!     while let Some(_ev) = txn.poll_event() { /* Timeout → 408 to the TU, ... */ }
//!     // then sleep until txn.poll_timeout() or the next datagram
//! }
//! # let mut txn = TxnLayer::new(Config::default());
//! # turn(&mut txn, None, &mut |_| {});
//! ```

mod build;
mod client_invite;
mod client_non_invite;
pub mod config;
mod ctx;
pub mod event;
pub mod key;
mod layer;
mod server_invite;
mod server_non_invite;
mod table;
mod timers;

pub use config::{Config, Peer, Transport};
pub use event::{RequestEvent, ResponseEvent, Transmit, TxnError, TxnEvent, TxnState};
pub use key::{ClientKey, ServerKey, TxnKey, new_branch};
pub use layer::{Stats, TxnLayer};
