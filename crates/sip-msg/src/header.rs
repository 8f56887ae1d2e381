//! Header names (long and compact forms canonicalised here, once) and the
//! header list of a message.
//!
//! Owns: the [`HeaderName`] enum, which headers are comma-separated lists,
//! and [`Headers`], an ordered list of `(name, raw value)` pairs whose values
//! are zero-copy slices of the received buffer. Typed parsing of values lives
//! in the modules of each header type, never here.

use bytes::Bytes;

macro_rules! header_names {
    ($( $var:ident => $long:literal $(| $compact:literal)? , list = $list:literal ;)*) => {
        /// A header field name. Known names are variants (compact forms map to
        /// the same variant); any other name is kept as received in `Other`.
        #[derive(Clone, Debug)]
        pub enum HeaderName {
            $( $var, )*
            Other(Bytes),
        }

        impl HeaderName {
            /// Canonicalises a received name (case-insensitive, compact forms).
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                HeaderName::known(name).unwrap_or_else(|| HeaderName::Other(Bytes::copy_from_slice(name)))
            }

            /// The variant of a known name (long or compact form, any case),
            /// or `None` for a name that would be kept as `Other`.
            pub fn known(name: &[u8]) -> Option<HeaderName> {
                if name.len() == 1 {
                    let c = name[0].to_ascii_lowercase();
                    $( $( if c == $compact { return Some(HeaderName::$var); } )? )*
                    return None;
                }
                $( if name.eq_ignore_ascii_case($long.as_bytes()) { return Some(HeaderName::$var); } )*
                None
            }

            /// The long form used when serialising.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$var => $long, )*
                    HeaderName::Other(b) => std::str::from_utf8(b).unwrap_or("X-Invalid"),
                }
            }

            /// Whether values of this header are a comma-separated list
            /// (RFC 3261 §7.3.1) that the parser splits into one entry each.
            pub fn is_list(&self) -> bool {
                match self {
                    $( HeaderName::$var => $list, )*
                    HeaderName::Other(_) => false,
                }
            }
        }
    };
}

header_names! {
    Via => "Via" | b'v', list = true;
    From => "From" | b'f', list = false;
    To => "To" | b't', list = false;
    CallId => "Call-ID" | b'i', list = false;
    CSeq => "CSeq", list = false;
    MaxForwards => "Max-Forwards", list = false;
    Contact => "Contact" | b'm', list = true;
    ContentLength => "Content-Length" | b'l', list = false;
    ContentType => "Content-Type" | b'c', list = false;
    ContentEncoding => "Content-Encoding" | b'e', list = true;
    Route => "Route", list = true;
    RecordRoute => "Record-Route", list = true;
    Path => "Path", list = true;
    ServiceRoute => "Service-Route", list = true;
    Expires => "Expires", list = false;
    MinExpires => "Min-Expires", list = false;
    Allow => "Allow", list = true;
    Supported => "Supported" | b'k', list = true;
    Require => "Require", list = true;
    ProxyRequire => "Proxy-Require", list = true;
    Unsupported => "Unsupported", list = true;
    Accept => "Accept", list = true;
    AcceptEncoding => "Accept-Encoding", list = true;
    AcceptLanguage => "Accept-Language", list = true;
    Authorization => "Authorization", list = false;
    ProxyAuthorization => "Proxy-Authorization", list = false;
    WwwAuthenticate => "WWW-Authenticate", list = false;
    ProxyAuthenticate => "Proxy-Authenticate", list = false;
    AuthenticationInfo => "Authentication-Info", list = false;
    Date => "Date", list = false;
    UserAgent => "User-Agent", list = false;
    Server => "Server", list = false;
    Subject => "Subject" | b's', list = false;
    Event => "Event" | b'o', list = false;
    AllowEvents => "Allow-Events" | b'u', list = true;
    ReferTo => "Refer-To" | b'r', list = false;
    ReferredBy => "Referred-By" | b'b', list = false;
    AcceptContact => "Accept-Contact" | b'a', list = true;
    RejectContact => "Reject-Contact" | b'j', list = true;
    RequestDisposition => "Request-Disposition" | b'd', list = true;
    SessionExpires => "Session-Expires" | b'x', list = false;
    Identity => "Identity" | b'y', list = false;
    FeatureCaps => "Feature-Caps", list = true;
    Replaces => "Replaces", list = false;
    Timestamp => "Timestamp", list = false;
    Warning => "Warning", list = true;
    RetryAfter => "Retry-After", list = false;
    Organization => "Organization", list = false;
    Priority => "Priority", list = false;
    Reason => "Reason", list = true;
}

/// Unknown names compare case-insensitively, as RFC 3261 §7.3.1 says.
impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}
impl Eq for HeaderName {}
impl std::hash::Hash for HeaderName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        if let HeaderName::Other(b) = self {
            for c in b.iter() {
                state.write_u8(c.to_ascii_lowercase());
            }
        }
    }
}

impl HeaderName {
    /// Headers that RFC 3261 allows at most once (multi01: a second one is a 400).
    pub fn is_single(&self) -> bool {
        matches!(
            self,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
                | HeaderName::MinExpires
        )
    }
}

/// One header field value (after list splitting) and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    /// The value with surrounding white space trimmed and line folding
    /// replaced by a single SP.
    pub value: Bytes,
}

/// The ordered header fields of a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    pub fn with_capacity(n: usize) -> Self {
        Headers(Vec::with_capacity(n))
    }
    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&Bytes> {
        self.0.iter().find(|h| &h.name == name).map(|h| &h.value)
    }
    /// All values of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.0.iter().filter(move |h| &h.name == name).map(|h| &h.value)
    }
    /// How many values of `name` there are.
    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.0.iter().any(|h| &h.name == name)
    }
    /// Appends a value.
    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.0.push(Header { name, value: value.into() });
    }
    /// Inserts a value before every other header (used for Via, Record-Route).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.0.insert(0, Header { name, value: value.into() });
    }
    /// Removes every value of `name`.
    pub fn remove_all(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }
    /// Removes and returns the first value of `name`.
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<Bytes> {
        let i = self.0.iter().position(|h| &h.name == name)?;
        Some(self.0.remove(i).value)
    }
    /// Replaces all values of `name` with one value, at the place of the first.
    pub fn set(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(i) => {
                self.0[i].value = value;
                let mut j = 0;
                self.0.retain(|h| {
                    j += 1;
                    j - 1 == i || h.name != name
                });
            }
            None => self.0.push(Header { name, value }),
        }
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn compact_and_case() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"V"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"vIA"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_bytes(b"call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"X-Foo").as_str(), "X-Foo");
        assert!(HeaderName::Via.is_list());
        assert!(!HeaderName::Other(Bytes::from_static(b"X")).is_list());
    }
    #[test]
    fn set_replaces_all() {
        let mut h = Headers::default();
        h.push(HeaderName::Via, "a");
        h.push(HeaderName::To, "t");
        h.push(HeaderName::Via, "b");
        h.set(HeaderName::Via, "c");
        assert_eq!(h.count(&HeaderName::Via), 1);
        assert_eq!(h.0[0].value, "c");
        assert_eq!(h.0[1].name, HeaderName::To);
    }
}
