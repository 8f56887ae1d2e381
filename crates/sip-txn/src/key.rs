//! Transaction identifiers and the matching rules (RFC 3261 §17.1.3,
//! §17.2.3, and the RFC 2543 fallback), plus branch generation.
//!
//! Owns how a message maps to a hashable key. The layer looks keys up in
//! hash maps; no matching ever scans the transaction table.

use bytes::Bytes;
use rand::distr::{Alphanumeric, SampleString};
use sip_msg::{Error, HeaderName, Host, MAGIC_COOKIE, Message, Method, Via};

/// A new RFC 3261 branch: the magic cookie followed by 22 random
/// alphanumerics (about 131 bits).
pub fn new_branch() -> String {
    let mut s = String::with_capacity(MAGIC_COOKIE.len() + 22);
    s.push_str(MAGIC_COOKIE);
    Alphanumeric.append_string(&mut rand::rng(), &mut s, 22);
    s
}

/// Identifies a client transaction: the branch of the top Via of the
/// request it sent and the request method (§17.1.3). A CANCEL shares its
/// INVITE's branch and is told apart by the method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    branch: Bytes,
    method: Method,
}

impl ClientKey {
    pub fn new(branch: impl Into<Bytes>, method: Method) -> ClientKey {
        ClientKey { branch: branch.into(), method }
    }
    pub fn branch(&self) -> &Bytes {
        &self.branch
    }
    pub fn method(&self) -> &Method {
        &self.method
    }
    /// The key of a response: top Via branch and CSeq method.
    pub(crate) fn of_response(msg: &Message) -> Result<ClientKey, Error> {
        let via = msg.top_via()?;
        let branch = via.branch().filter(|b| !b.is_empty()).ok_or(Error::bad("top Via has no branch"))?;
        Ok(ClientKey { branch: branch.clone(), method: msg.cseq()?.method })
    }
    /// The key of a request the TU sends: top Via branch and request method.
    pub(crate) fn of_request(msg: &Message) -> Result<ClientKey, Error> {
        let via = msg.top_via()?;
        let branch = via.branch().filter(|b| !b.is_empty()).ok_or(Error::bad("top Via has no branch"))?;
        let method = msg.method().ok_or(Error::bad("not a request"))?.clone();
        Ok(ClientKey { branch: branch.clone(), method })
    }
}

/// Identifies a server transaction (§17.2.3). ACKs are looked up with the
/// INVITE's key; a CANCEL has its own key (method CANCEL) and finds the
/// INVITE it cancels through [`ServerKey::with_method`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerKey {
    id: ServerId,
    method: Method,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ServerId {
    /// Branch with the magic cookie, plus sent-by (host lower-cased).
    Rfc3261 { branch: Bytes, host: Host, port: Option<u16> },
    /// RFC 2543 requests (boxed: rare, and large).
    Rfc2543(Box<Rfc2543Id>),
}

/// RFC 2543 matching: Request-URI, To tag, From tag, Call-ID, CSeq number
/// and the whole top Via.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Rfc2543Id {
    uri: Bytes,
    to_tag: Option<Bytes>,
    from_tag: Option<Bytes>,
    call_id: Bytes,
    cseq: u32,
    via: Bytes,
}

impl ServerKey {
    pub fn method(&self) -> &Method {
        &self.method
    }
    /// The branch, for RFC 3261 keys.
    pub fn branch(&self) -> Option<&Bytes> {
        match &self.id {
            ServerId::Rfc3261 { branch, .. } => Some(branch),
            ServerId::Rfc2543(_) => None,
        }
    }
    /// Whether this key was built by the RFC 2543 fallback rules.
    pub fn is_rfc2543(&self) -> bool {
        matches!(self.id, ServerId::Rfc2543(_))
    }
    /// The same transaction identity with another method (CANCEL → its INVITE).
    pub fn with_method(&self, method: Method) -> ServerKey {
        ServerKey { id: self.id.clone(), method }
    }
    /// The same RFC 2543 identity with another To tag (ACK lookups).
    pub(crate) fn with_to_tag(&self, tag: Option<Bytes>) -> ServerKey {
        let mut k = self.clone();
        if let ServerId::Rfc2543(id) = &mut k.id {
            id.to_tag = tag;
        }
        k
    }

    /// The key of a received request. An ACK gets the INVITE method (the
    /// transaction it may belong to).
    pub(crate) fn of_request(msg: &Message) -> Result<ServerKey, Error> {
        let method = msg.method().ok_or(Error::bad("not a request"))?;
        let via = msg.top_via()?;
        let cseq = msg.cseq()?;
        let method = if *method == Method::Ack { Method::Invite } else { method.clone() };
        let id = if via.has_rfc3261_branch() {
            let branch = via.branch().cloned().unwrap_or_default();
            ServerId::Rfc3261 { branch, host: lower_host(&via), port: via.port }
        } else {
            let uri = msg.uri().ok_or(Error::bad("not a request"))?.to_bytes();
            let call_id = msg.call_id().ok_or(Error::bad("missing Call-ID"))?.clone();
            let from_tag = msg.from()?.tag().cloned();
            let to_tag = msg.to()?.tag().cloned();
            let via = msg.headers.get(&HeaderName::Via).cloned().unwrap_or_default();
            ServerId::Rfc2543(Box::new(Rfc2543Id { uri, to_tag, from_tag, call_id, cseq: cseq.seq, via }))
        };
        Ok(ServerKey { id, method })
    }
}

fn lower_host(via: &Via) -> Host {
    match &via.host {
        Host::Name(n) if n.iter().any(u8::is_ascii_uppercase) => Host::Name(Bytes::from(n.to_ascii_lowercase())),
        h => h.clone(),
    }
}

/// Either kind of transaction key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TxnKey {
    Client(ClientKey),
    Server(ServerKey),
}

impl From<ClientKey> for TxnKey {
    fn from(k: ClientKey) -> Self {
        TxnKey::Client(k)
    }
}
impl From<ServerKey> for TxnKey {
    fn from(k: ServerKey) -> Self {
        TxnKey::Server(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_msg::{Limits, parse_datagram};

    fn msg(s: &str) -> Message {
        parse_datagram(Bytes::from(s.to_owned()), &Limits::default()).unwrap()
    }

    #[test]
    fn branches_are_unique_and_cookied() {
        let a = new_branch();
        assert!(a.starts_with(MAGIC_COOKIE));
        assert_eq!(a.len(), MAGIC_COOKIE.len() + 22);
        assert_ne!(a, new_branch());
    }

    #[test]
    fn server_key_rfc3261() {
        let inv = msg(
            "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP Host.Example:5060;branch=z9hG4bK1\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        let ack =
            msg("ACK sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP host.example:5060;branch=z9hG4bK1\r\nCSeq: 1 ACK\r\n\r\n");
        let other_port = msg(
            "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP host.example:5070;branch=z9hG4bK1\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        let cancel = msg(
            "CANCEL sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP host.example:5060;branch=z9hG4bK1\r\nCSeq: 1 CANCEL\r\n\r\n",
        );
        let k = ServerKey::of_request(&inv).unwrap();
        assert!(!k.is_rfc2543());
        assert_eq!(k, ServerKey::of_request(&ack).unwrap());
        assert_ne!(k, ServerKey::of_request(&other_port).unwrap());
        let c = ServerKey::of_request(&cancel).unwrap();
        assert_ne!(k, c);
        assert_eq!(c.with_method(Method::Invite), k);
    }

    #[test]
    fn server_key_rfc2543() {
        let base = |via: &str, to: &str| {
            msg(&format!(
                "INVITE sip:b@h SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@h>;tag=f\r\nTo: {to}\r\nCall-ID: c1\r\nCSeq: 4 INVITE\r\n\r\n"
            ))
        };
        let k = ServerKey::of_request(&base("SIP/2.0/UDP h1;branch=1", "<sip:b@h>")).unwrap();
        assert!(k.is_rfc2543());
        assert_eq!(k, ServerKey::of_request(&base("SIP/2.0/UDP h1;branch=1", "<sip:b@h>")).unwrap());
        assert_ne!(k, ServerKey::of_request(&base("SIP/2.0/UDP h2;branch=1", "<sip:b@h>")).unwrap());
        let tagged = ServerKey::of_request(&base("SIP/2.0/UDP h1;branch=1", "<sip:b@h>;tag=t")).unwrap();
        assert_ne!(k, tagged);
        assert_eq!(k.with_to_tag(Some(Bytes::from_static(b"t"))), tagged);
    }

    #[test]
    fn client_key() {
        let r = msg("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCSeq: 1 CANCEL\r\n\r\n");
        assert_eq!(ClientKey::of_response(&r).unwrap(), ClientKey::new("z9hG4bKx", Method::Cancel));
        let r = msg("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 CANCEL\r\n\r\n");
        assert!(ClientKey::of_response(&r).is_err());
    }
}
