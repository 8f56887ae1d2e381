//! Parse and validation errors, each carrying the SIP status a server should
//! answer with.

use std::fmt;

/// What kind of failure this is, and so how a server answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed: 400 Bad Request (or dropped, for a response).
    BadRequest,
    /// Unknown SIP version: 505.
    VersionNotSupported,
    /// Over a size limit: 513 Message Too Large.
    TooLarge,
    /// A stream has not delivered the whole message yet (framing only).
    Incomplete,
    /// Well-formed but asks for something this element does not implement:
    /// 501 (RFC 4475 mismatch02, an unknown method whose CSeq disagrees).
    NotImplemented,
}

/// A parse or validation failure with a short human reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub reason: &'static str,
}

impl Error {
    pub const fn bad(reason: &'static str) -> Self {
        Error { kind: ErrorKind::BadRequest, reason }
    }
    pub const fn too_large(reason: &'static str) -> Self {
        Error { kind: ErrorKind::TooLarge, reason }
    }
    pub const fn version(reason: &'static str) -> Self {
        Error { kind: ErrorKind::VersionNotSupported, reason }
    }
    pub const fn not_implemented(reason: &'static str) -> Self {
        Error { kind: ErrorKind::NotImplemented, reason }
    }
    /// The status code a server answers a request that failed this way.
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::BadRequest | ErrorKind::Incomplete => 400,
            ErrorKind::VersionNotSupported => 505,
            ErrorKind::TooLarge => 513,
            ErrorKind::NotImplemented => 501,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.status())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
