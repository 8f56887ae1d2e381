//! RFC 8599 §4.1 push parameters of a SIP URI (`pn-provider`, `pn-prid`,
//! `pn-param`): the one reader of them, shared by the push classifier
//! (`sip-push`) and the registrar's bindings (`sip-registrar`), so that the
//! two always agree on whether a Contact carries push coordinates.
//!
//! Names match case-insensitively and escape-insensitively (the URI parser
//! stores them canonically, see [`crate::params`]); values are
//! percent-decoded (R62: `pn-prid` of webpush is a URL, and a token may hold
//! `+`, `=`, `/`), and an empty value counts as no value. It knows nothing
//! of providers or of what the server does with them.

use crate::chars::{escapes_valid, unescape};
use crate::params::Params;

/// `pn-provider`: the PNS type.
pub const PN_PROVIDER: &str = "pn-provider";
/// `pn-prid`: the device's address at the PNS.
pub const PN_PRID: &str = "pn-prid";
/// `pn-param`: PNS-specific (e.g. the APNs topic).
pub const PN_PARAM: &str = "pn-param";

/// The push parameters of one URI. Each is `None` when absent, `Some(None)`
/// when present without a value or with an empty one, else the decoded value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PnParams {
    pub provider: Option<Option<String>>,
    pub prid: Option<Option<String>>,
    pub param: Option<Option<String>>,
}

impl PnParams {
    /// Reads the push parameters of a URI's parameter list.
    /// Only these three are decoded (names are canonical in `Params`, so a
    /// plain lookup finds escaped names too).
    pub fn from_params(p: &Params) -> PnParams {
        let get = |name: &str| p.get(name).map(|v| v.map(|v| decode(v)).filter(|v| !v.is_empty()));
        PnParams { provider: get(PN_PROVIDER), prid: get(PN_PRID), param: get(PN_PARAM) }
    }

    /// Reads them from parameters already decoded by [`decode_all`] (or built
    /// by hand, in tests).
    pub fn from_decoded(pairs: &[(String, Option<String>)]) -> PnParams {
        let get = |name: &str| find(pairs, name).map(|v| v.map(str::to_string));
        PnParams { provider: get(PN_PROVIDER), prid: get(PN_PRID), param: get(PN_PARAM) }
    }

    /// The provider, when it has a value.
    pub fn provider(&self) -> Option<&str> {
        self.provider.as_ref()?.as_deref()
    }
    /// The PRID, when it has a value.
    pub fn prid(&self) -> Option<&str> {
        self.prid.as_ref()?.as_deref()
    }
    /// `pn-param`, when it has a value.
    pub fn param(&self) -> Option<&str> {
        self.param.as_ref()?.as_deref()
    }

    /// A provider and a PRID, both with values: what a push needs at the
    /// least (R10: never push without a PRID). Whether the provider is one
    /// the server supports, and what else it requires, is the classifier's
    /// business.
    pub fn has_coordinates(&self) -> bool {
        self.provider().is_some() && self.prid().is_some()
    }
}

/// The first parameter called `name` (ASCII case-insensitive) among decoded
/// pairs: `None` if absent, `Some(None)` if present without a value or with
/// an empty one.
pub fn find<'a>(pairs: &'a [(String, Option<String>)], name: &str) -> Option<Option<&'a str>> {
    pairs.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_deref().filter(|v| !v.is_empty()))
}

/// Every parameter of a URI with its name and value percent-decoded (lossy
/// UTF-8; an invalid escape is kept as received).
pub fn decode_all(p: &Params) -> Vec<(String, Option<String>)> {
    p.0.iter().map(|(n, v)| (decode(n), v.as_ref().map(|v| decode(v)))).collect()
}

/// Percent-decodes one parameter name or value.
pub fn decode(v: &[u8]) -> String {
    if escapes_valid(v) {
        String::from_utf8_lossy(&unescape(v)).into_owned()
    } else {
        String::from_utf8_lossy(v).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::Uri;

    fn pn(uri: &str) -> PnParams {
        let u = Uri::parse_bytes(uri.to_string()).unwrap();
        PnParams::from_params(&u.as_sip().unwrap().params)
    }

    #[test]
    fn plain_and_escaped_names_read_the_same() {
        let plain = pn("sip:a@h;pn-provider=apns;pn-prid=tok;pn-param=T.app.voip");
        let escaped = pn("sip:a@h;pn%2Dprovider=apns;PN%2dPRID=tok;pn%2Dparam=T.app.voip");
        assert_eq!(plain, escaped);
        assert_eq!(plain.provider(), Some("apns"));
        assert_eq!(plain.prid(), Some("tok"));
        assert_eq!(plain.param(), Some("T.app.voip"));
        assert!(escaped.has_coordinates());
    }

    #[test]
    fn r62_values_are_unescaped() {
        let p = pn("sip:a@h;pn-provider=webpush;pn-prid=https%3A%2F%2Fpush.example.net%2Fsub%2Fabc%2Bdef%3D%3D");
        assert_eq!(p.prid(), Some("https://push.example.net/sub/abc+def=="));
    }

    #[test]
    fn absent_empty_and_valueless() {
        let p = pn("sip:a@h;pn-provider;pn-prid=");
        assert_eq!(p.provider, Some(None));
        assert_eq!(p.prid, Some(None));
        assert_eq!(p.param, None);
        assert!(!p.has_coordinates());
        assert_eq!(pn("sip:a@h;transport=tcp"), PnParams::default());
        assert!(!pn("sip:a@h;pn-provider=fcm").has_coordinates());
    }
}
