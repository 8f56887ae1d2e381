//! `sip-msg`: the SIP message layer of sipwake — message model, zero-copy
//! parser, stream framer, serializer, and typed header values (URI,
//! name-addr, Via, CSeq, parameters).
//!
//! Sans-IO and allocation-light: the parser indexes a received [`bytes::Bytes`]
//! and hands out slices of it. It owns the wire format only; it must not know
//! about transactions, transports or the registrar.

pub mod chars;
pub mod error;
pub mod header;
pub mod message;
pub mod method;
pub mod name_addr;
pub mod params;
pub mod parser;
pub mod pn;
pub mod transport;
pub mod uri;
pub mod via;

pub use error::{Error, ErrorKind, Result};
pub use header::{Header, HeaderName, Headers};
pub use message::{CSeq, Message, StartLine, reason_phrase, response_from_headers};
pub use method::Method;
pub use name_addr::{Contact, NameAddr};
pub use params::Params;
pub use parser::{Frame, Limits, ParseFailure, Partial, frame_stream, parse_datagram, parse_framed};
pub use pn::PnParams;
pub use transport::{ConnId, Source, Target, Transport};
pub use uri::{Host, SipUri, Uri};
pub use via::{MAGIC_COOKIE, Via};
