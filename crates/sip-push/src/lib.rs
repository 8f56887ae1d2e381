//! `sip-push`: the sans-IO push-wake engine of sipwake (RFC 8599).
//!
//! It decides; the core acts. No tokio, no clock reads, no sockets, no
//! HTTP; randomness only through the injected [`RandomSource`]. Every
//! method that depends on time takes `now: Instant`.
//!
//! What it owns:
//!
//! * **REGISTER classification and Feature-Caps** ([`classify()`],
//!   [`FeatureCaps`]): plain, removal, upstream, query, push, unsupported
//!   (→ 555 when configured), missing information, too short (→ 423).
//! * **Refresh pushes** (R8–R11): at expiry − lead, then retries with
//!   backoff until the binding is refreshed; never after expiry or removal.
//! * **Parking and wake-up** (R32–R45, R54–R57): push per target, hold
//!   each branch with its own Bucket Timer deadline, fork once per
//!   (request, binding) when the binding registers, end branches on
//!   push/REGISTER failure or timeout.
//! * **Per-provider policy** ([`ProviderPolicy`]): holds, skip interval,
//!   refresh lead and retries can differ per PNS (an APNs cold start needs
//!   a longer hold than an FCM wake-up); unset overrides use the global
//!   knobs. Every decision about a binding uses its provider's value.
//! * **PURRs** (R46–R59): random (optionally MAC-tagged) tokens, rotation,
//!   resolution.
//! * **Observability**: [`Stats`], [`BindingView`], wake latency per fork.
//!
//! Modules: [`config`] (knobs, validation), [`policy`] (per-provider
//! overrides, effective values), [`mod@classify`] (REGISTER
//! Contacts), [`caps`] (Feature-Caps), [`types`] (ids), [`output`] (what
//! the core does), `schedule` (refresh points), `timers` (heap with lazy
//! deletion), [`purr`], [`persist`] (push state as stored text), `bucket` (parked state), [`engine`] (the engine,
//! timers, push sending), `register` (REGISTER side: bindings, PURRs,
//! restore), `park` (parking and waking), [`stats`] (counters, views).
//!
//! # Driving it (the core)
//!
//! | Event | Call | Then |
//! |---|---|---|
//! | REGISTER received, per Contact | [`PushEngine::classify`] | [`Classification::rejection`] → 555/423, else registrar |
//! | registrar 2xx, per push Contact | [`PushEngine::handle_register_ok`] (→ PURR) | [`PushEngine::feature_caps`] into the 2xx |
//! | binding removed / expired / no longer push | [`PushEngine::handle_removed`] (or `handle_register_ok` with `info: None`) | |
//! | waking REGISTER answered non-2xx | [`PushEngine::handle_register_failed`] | |
//! | request to push bindings | [`PushEngine::handle_park`] → n | `ProxyContext::new_held(.., n, ..)` |
//! | mid-dialog request with `pn-purr` | [`PushEngine::resolve_purr`], then `handle_park` (MidDialog) | |
//! | upstream CANCEL | [`PushEngine::handle_cancel`] | `ProxyContext::on_cancel` |
//! | push sender result | [`PushEngine::handle_push_result`] | |
//! | timer | [`PushEngine::handle_timeout`] at [`PushEngine::poll_timeout`] | |
//! | after every call | drain [`PushEngine::poll_output`] | see [`Output`] |
//! | registrar 2xx stored, PURRs changed | [`PushEngine::push_state`] | into the stored binding |
//! | start-up | [`decode_push_state`], then [`PushEngine::restore`] per stored push binding | |

mod bucket;
pub mod caps;
pub mod classify;
pub mod config;
pub mod engine;
pub mod output;
mod park;
pub mod persist;
pub mod policy;
pub mod purr;
mod register;
mod schedule;
pub mod stats;
mod timers;
pub mod types;

pub use caps::FeatureCaps;
pub use classify::{
    Classification, ContactInfo, Rejection, classify, min_push_expires, min_push_expires_for, upstream_pns,
};
pub use config::{ConfigError, MIN_REFRESH_LEAD, ParamRule, ProviderConfig, PushConfig, TIMER_F};
pub use engine::{MAX_PENDING_PER_BINDING, PushEngine};
pub use output::{BranchEnd, CallEnd, Output, PushError, PushReason, PushRequest, UNREACHABLE_STATUS};
pub use park::{Park, ParkError};
pub use persist::{
    MAX_PURR_RECORDS, MAX_PUSH_STATE_LEN, PUSH_STATE_VERSION, PushStateError, decode_push_state, encode_push_state,
};
pub use policy::ProviderPolicy;
pub use purr::{PurrRecord, RandomSource};
pub use register::{Registration, Restored};
pub use schedule::MIN_GAP;
pub use stats::{BindingView, EndCounters, ParkedView, PushCounters, Stats};
pub use types::{BindingKey, ParkKind, ParkTarget, PnInfo, PushId, RequestId};
