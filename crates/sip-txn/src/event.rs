//! What the layer hands back to its caller: the results of
//! [`crate::TxnLayer::on_request`] / [`crate::TxnLayer::on_response`], the
//! asynchronous [`TxnEvent`]s, outgoing [`Transmit`]s, transaction states and
//! errors.
//!
//! Owns only data types; no behaviour.

use crate::config::Peer;
use crate::key::{ClientKey, ServerKey, TxnKey};
use bytes::Bytes;
use sip_msg::Message;
use std::fmt;

/// The outcome of a request received from the network.
#[derive(Debug)]
pub enum RequestEvent {
    /// A new server transaction; the TU answers it with
    /// [`crate::TxnLayer::respond`].
    New { key: ServerKey, msg: Message, from: Peer },
    /// A new CANCEL server transaction (`key`, answer it like any other) and
    /// the INVITE server transaction it cancels, when one exists (§9.2);
    /// `None` means the TU should answer 481.
    Cancel { key: ServerKey, invite: Option<ServerKey>, msg: Message, from: Peer },
    /// An ACK that is the TU's: the ACK for a 2xx (not part of any
    /// transaction: `invite` is `None`), or an ACK matching an INVITE server
    /// transaction in the RFC 6026 Accepted state (`invite` is its key).
    Ack { invite: Option<ServerKey>, msg: Message, from: Peer },
    /// A retransmission of a request with a live server transaction; it was
    /// absorbed, and the last response (if the state calls for it) queued
    /// for re-sending.
    Retransmission { key: ServerKey },
    /// An ACK for a non-2xx final response; absorbed (the INVITE server
    /// transaction moved to Confirmed, or already was there).
    AckAbsorbed { key: ServerKey },
    /// The request lacks what matching needs (top Via, CSeq, ...). No state
    /// was created; the TU may answer 400 statelessly.
    Invalid { error: sip_msg::Error, msg: Message, from: Peer },
}

/// The outcome of a response received from the network.
#[derive(Debug)]
pub enum ResponseEvent {
    /// A response for the TU on client transaction `key`: provisional,
    /// final, and (RFC 6026) every 2xx to an INVITE while in Accepted.
    Response { key: ClientKey, msg: Message, from: Peer },
    /// A retransmitted final response absorbed by the transaction (for an
    /// INVITE non-2xx, the ACK was re-sent).
    Absorbed { key: ClientKey },
    /// No client transaction matches; the TU decides (a proxy forwards a
    /// stray 2xx to an INVITE statelessly, §16.7).
    Stray { msg: Message, from: Peer },
    /// The response lacks a top Via branch or a CSeq.
    Invalid { error: sip_msg::Error, msg: Message, from: Peer },
}

/// Events the layer raises on its own (timers, transport failures).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnEvent {
    /// Timer B or F fired: the client transaction got no final response.
    /// The TU treats it as a 408 (§8.1.3.1, §16.7).
    Timeout { key: ClientKey },
    /// Timer H fired: an INVITE server transaction sent a non-2xx final
    /// response and no ACK came.
    AckTimeout { key: ServerKey },
    /// The transport failed to send for this transaction (§17.1.4, §17.2.4).
    TransportError { key: TxnKey },
    /// The transaction is gone from the table (always the last event of a
    /// transaction, whatever the reason).
    Terminated { key: TxnKey },
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    /// The serialised message.
    pub data: Bytes,
    /// The transaction that sent it: report a failure to send with
    /// [`crate::TxnLayer::on_transport_error`]. `None` for stateless sends.
    pub txn: Option<TxnKey>,
}

/// A transaction state (RFC 3261 Figures 5-8, RFC 6026 Accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

/// Why a call into the layer was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnError {
    /// No live transaction has this key.
    NoSuchTransaction,
    /// A client transaction with this key already exists.
    Exists,
    /// The message is malformed for the purpose (no Via branch, no CSeq, ...).
    Malformed(sip_msg::Error),
    /// `respond` was given a request, or `send_request` a response.
    WrongKind,
    /// An ACK is never a client transaction: send it with
    /// [`crate::TxnLayer::send_stateless`].
    AckIsNotATransaction,
    /// The transaction's state does not allow this (e.g. a second final
    /// response, a non-2xx after a 2xx, cancelling a finished INVITE).
    InvalidState(&'static str),
}

impl fmt::Display for TxnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnError::NoSuchTransaction => f.write_str("no such transaction"),
            TxnError::Exists => f.write_str("transaction already exists"),
            TxnError::Malformed(e) => write!(f, "malformed message: {e}"),
            TxnError::WrongKind => f.write_str("wrong kind of message (request vs response)"),
            TxnError::AckIsNotATransaction => f.write_str("ACK does not create a transaction"),
            TxnError::InvalidState(s) => write!(f, "invalid in this state: {s}"),
        }
    }
}

impl std::error::Error for TxnError {}

impl From<sip_msg::Error> for TxnError {
    fn from(e: sip_msg::Error) -> Self {
        TxnError::Malformed(e)
    }
}
