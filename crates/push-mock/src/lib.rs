//! # push-mock
//!
//! Local HTTP/2-over-TLS servers that speak the real push provider APIs,
//! for testing native push senders in-process (tokio tests) or from a
//! separately running `sipwake` (binary `push-mock`):
//! * [`Service::Apns`]: Apple APNs (`POST /3/device/<token>`, token or
//!   certificate auth);
//! * [`Service::Fcm`]: Google FCM HTTP v1 plus the OAuth2 token endpoint;
//! * [`Service::WebPush`]: RFC 8030 with VAPID (RFC 8292) and `aes128gcm`
//!   decryption (RFC 8291).
//!
//! Each [`Mock`] listens on a free port of 127.0.0.1, verifies what it
//! receives (every failed check is a plain-words problem in [`Seen`], and
//! is answered with the provider's real error), and can be scripted while
//! running: dead and bad tokens, failures with `Retry-After`, stalls, and
//! stop/restart for connection-refused tests. [`keys`] generates the
//! matching key material (test CA, `.p8`, service account, VAPID,
//! subscriptions) in the providers' file formats.
//!
//! This crate owns **test support only**: nothing in it is used by
//! `sipwake` at run time.

mod apns;
mod app;
mod ece;
mod fcm;
mod jwt;
pub mod keys;
mod mock;
mod reply;
mod seen;
mod server;
mod state;
mod webpush;

pub use fcm::FCM_SCOPE;
pub use keys::{ApnsKey, ClientIdentity, ServiceAccount, Subscription, TestPki, Vapid};
pub use mock::{Mock, MockPort, Service};
pub use seen::Seen;
