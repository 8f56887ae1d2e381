//! The wire format of Digest credentials and challenges.
//!
//! Owns parsing of `Authorization` / `Proxy-Authorization` values
//! (`Digest name=value, name="quoted value", ...`, RFC 3261 §25.1 /
//! RFC 7616 §3.4) into [`DigestParams`] and then [`Credentials`], and
//! formatting of `WWW-Authenticate` / `Proxy-Authenticate` values.
//!
//! Parsing rules:
//! - the scheme is compared case-insensitively; another scheme gives
//!   `Ok(None)` (the caller answers with a Digest challenge, RFC 4475
//!   regaut01);
//! - parameter names are case-insensitive; values are tokens or quoted
//!   strings with `\` escapes; white space (SP, HTAB, and CR/LF of folded
//!   lines) is allowed around `=` and `,`; empty list elements (`a=1,,b=2`)
//!   are skipped;
//! - an unquoted value is taken leniently up to white space or `,` (some
//!   clients send `uri=sip:x@y` unquoted);
//! - a parameter given twice is an error, unknown parameters are ignored,
//!   values must be UTF-8, at most [`MAX_PARAMS`] parameters.
//!
//! Semantic checks that need the server's state (realm, nonce, uri,
//! response) belong to [`crate::verify`].

use crate::algorithm::Algorithm;
use sip_msg::chars::is_token;
use std::fmt;

/// Most parameters accepted in one header value.
pub const MAX_PARAMS: usize = 32;

/// Why a credentials header could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Not well-formed; the text says where.
    Malformed(&'static str),
    /// A parameter appears twice (name in lower case).
    DuplicateParam(String),
    /// A required parameter is missing.
    MissingParam(&'static str),
    /// An algorithm we do not implement (including `-sess` variants).
    UnsupportedAlgorithm(String),
    /// `nc` is not 8 lower-case hex digits.
    BadNonceCount(String),
}

impl AuthError {
    /// A short fixed reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::UnsupportedAlgorithm(_) => "unsupported algorithm",
            _ => "malformed credentials",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Malformed(what) => write!(f, "malformed credentials: {what}"),
            AuthError::DuplicateParam(p) => write!(f, "duplicate parameter {p}"),
            AuthError::MissingParam(p) => write!(f, "missing parameter {p}"),
            AuthError::UnsupportedAlgorithm(a) => write!(f, "unsupported algorithm {a}"),
            AuthError::BadNonceCount(nc) => write!(f, "bad nonce-count {nc:?}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// The parameters of a Digest header value: names in lower case, values
/// unquoted and unescaped, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestParams(pub Vec<(String, String)>);

impl DigestParams {
    /// The value of `name` (lower case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Parses a credentials header value into its parameters; `Ok(None)` when
/// the scheme is not Digest.
pub fn parse_digest_params(value: &[u8]) -> Result<Option<DigestParams>, AuthError> {
    let s = value;
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && is_lws(s[*i]) {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    let start = i;
    while i < s.len() && is_token(s[i]) {
        i += 1;
    }
    if start == i {
        return Err(AuthError::Malformed("no scheme"));
    }
    if !s[start..i].eq_ignore_ascii_case(b"Digest") {
        return Ok(None);
    }
    if i < s.len() && !is_lws(s[i]) {
        return Err(AuthError::Malformed("no white space after the scheme"));
    }
    let mut params = DigestParams::default();
    loop {
        // Separators: white space and (possibly empty) commas.
        while i < s.len() && (is_lws(s[i]) || s[i] == b',') {
            i += 1;
        }
        if i == s.len() {
            break;
        }
        let ns = i;
        while i < s.len() && is_token(s[i]) {
            i += 1;
        }
        if ns == i {
            return Err(AuthError::Malformed("bad parameter name"));
        }
        let name = String::from_utf8(s[ns..i].to_ascii_lowercase()).expect("tokens are ASCII");
        skip_ws(&mut i);
        if i == s.len() || s[i] != b'=' {
            return Err(AuthError::Malformed("parameter without value"));
        }
        i += 1;
        skip_ws(&mut i);
        let raw = if i < s.len() && s[i] == b'"' {
            let (v, next) = quoted(s, i)?;
            i = next;
            v
        } else {
            let vs = i;
            while i < s.len() && !is_lws(s[i]) && s[i] != b',' && s[i] != b'"' && s[i] >= 0x20 && s[i] != 0x7f {
                i += 1;
            }
            if vs == i {
                return Err(AuthError::Malformed("empty parameter value"));
            }
            s[vs..i].to_vec()
        };
        let v = String::from_utf8(raw).map_err(|_| AuthError::Malformed("parameter value is not UTF-8"))?;
        skip_ws(&mut i);
        if i < s.len() && s[i] != b',' {
            return Err(AuthError::Malformed("expected a comma between parameters"));
        }
        if params.get(&name).is_some() {
            return Err(AuthError::DuplicateParam(name));
        }
        if params.0.len() == MAX_PARAMS {
            return Err(AuthError::Malformed("too many parameters"));
        }
        params.0.push((name, v));
    }
    Ok(Some(params))
}

/// Reads the quoted string starting at `s[start] == '"'`: its unescaped
/// content and the index past the closing quote.
fn quoted(s: &[u8], start: usize) -> Result<(Vec<u8>, usize), AuthError> {
    let mut out = Vec::new();
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Ok((out, i + 1)),
            b'\\' => {
                match s.get(i + 1) {
                    Some(&c) if c != b'\r' && c != b'\n' => out.push(c),
                    _ => return Err(AuthError::Malformed("bad escape in quoted string")),
                }
                i += 2;
            }
            b'\r' | b'\n' => return Err(AuthError::Malformed("line break in quoted string")),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err(AuthError::Malformed("unterminated quoted string"))
}

/// The Digest credentials of one request header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    /// The `uri` (digest-uri) parameter, as sent.
    pub uri: String,
    /// The `response`, as sent (compared case-insensitively).
    pub response: String,
    /// MD5 when the parameter is absent (RFC 7616 §3.3).
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    pub nc: Option<u32>,
    pub qop: Option<String>,
    pub opaque: Option<String>,
}

impl Credentials {
    /// Builds credentials from parsed parameters. `username`, `realm`,
    /// `nonce`, `uri` and `response` are required; with `qop`, `cnonce` and
    /// `nc` are too. Other parameters (`userhash`, `username*`, ...) are
    /// ignored.
    pub fn from_params(p: &DigestParams) -> Result<Credentials, AuthError> {
        let req = |n: &'static str| p.get(n).map(str::to_owned).ok_or(AuthError::MissingParam(n));
        let algorithm = match p.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_name(a).ok_or_else(|| AuthError::UnsupportedAlgorithm(a.to_owned()))?,
        };
        let nc = p.get("nc").map(parse_nc).transpose()?;
        let creds = Credentials {
            username: req("username")?,
            realm: req("realm")?,
            nonce: req("nonce")?,
            uri: req("uri")?,
            response: req("response")?,
            algorithm,
            cnonce: p.get("cnonce").map(str::to_owned),
            nc,
            qop: p.get("qop").map(str::to_owned),
            opaque: p.get("opaque").map(str::to_owned),
        };
        if creds.qop.is_some() {
            if creds.cnonce.is_none() {
                return Err(AuthError::MissingParam("cnonce"));
            }
            if creds.nc.is_none() {
                return Err(AuthError::MissingParam("nc"));
            }
        }
        Ok(creds)
    }
}

/// `nc-value = 8LHEX` (RFC 3261 §25.1). Upper-case digits are refused: the
/// response is computed over the text, which we rebuild in lower case.
fn parse_nc(v: &str) -> Result<u32, AuthError> {
    if v.len() != 8 || !v.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return Err(AuthError::BadNonceCount(v.to_owned()));
    }
    u32::from_str_radix(v, 16).map_err(|_| AuthError::BadNonceCount(v.to_owned()))
}

/// Parses an `Authorization` / `Proxy-Authorization` value: `Ok(None)` when
/// the scheme is not Digest.
pub fn parse_credentials(header_value: &[u8]) -> Result<Option<Credentials>, AuthError> {
    match parse_digest_params(header_value)? {
        None => Ok(None),
        Some(p) => Credentials::from_params(&p).map(Some),
    }
}

/// `"..."` with `"` and `\` escaped.
fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// One challenge value:
/// `Digest realm="..", nonce="..", opaque="..", algorithm=SHA-256, qop="auth"`
/// followed by `, stale=true` when `stale`.
pub fn format_challenge(realm: &str, nonce: &str, opaque: &str, alg: Algorithm, stale: bool) -> String {
    format!(
        "Digest realm={}, nonce={}, opaque={}, algorithm={}, qop=\"auth\"{}",
        quote(realm),
        quote(nonce),
        quote(opaque),
        alg.name(),
        if stale { ", stale=true" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: &str) -> DigestParams {
        parse_digest_params(v.as_bytes()).unwrap().unwrap()
    }

    /// The RFC 7616 §3.9.1 Authorization header.
    #[test]
    fn rfc7616_header() {
        let v = r#"Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let c = parse_credentials(v.as_bytes()).unwrap().unwrap();
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.realm, "http-auth@example.org");
        assert_eq!(c.uri, "/dir/index.html");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.nonce, "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v");
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.cnonce.as_deref(), Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.response, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
        assert_eq!(c.opaque.as_deref(), Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"));
    }

    const MIN: &str = r#"username="bob", realm="r", nonce="n", uri="sip:r", response="00""#;

    #[test]
    fn algorithm_absent_means_md5() {
        let c = parse_credentials(format!("Digest {MIN}").as_bytes()).unwrap().unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!((c.qop, c.nc, c.cnonce, c.opaque), (None, None, None, None));
    }

    #[test]
    fn quoted_commas_and_escapes() {
        let p = params(r#"Digest username="a,b \"c\" d\\e", realm="x, y=z", nonce="n""#);
        assert_eq!(p.get("username"), Some(r#"a,b "c" d\e"#));
        assert_eq!(p.get("realm"), Some("x, y=z"));
        assert_eq!(p.get("nonce"), Some("n"));
        // An escaped ordinary character is itself.
        assert_eq!(params(r#"Digest a="\x""#).get("a"), Some("x"));
        // UTF-8 inside quotes.
        assert_eq!(params("Digest username=\"J\u{e4}s\u{f8}n\"").get("username"), Some("J\u{e4}s\u{f8}n"));
    }

    #[test]
    fn white_space_and_case() {
        let p = params("  dIGEST   USERNAME =  \"bob\"  ,\tRealm=\t\"r\" ,nc=00000002,  ,, qop = auth ,");
        assert_eq!(p.get("username"), Some("bob"));
        assert_eq!(p.get("realm"), Some("r"));
        assert_eq!(p.get("nc"), Some("00000002"));
        assert_eq!(p.get("qop"), Some("auth"));
        // Folded lines as received raw.
        let p = params("Digest username=\"bob\",\r\n realm=\"r\"");
        assert_eq!(p.get("realm"), Some("r"));
    }

    #[test]
    fn unquoted_values_and_unknown_params() {
        let c = parse_credentials(
            format!("Digest {MIN}, qop=auth, nc=0000000a, cnonce=abc, foo=bar, x-extra=\"q\", userhash=false")
                .as_bytes(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.nc, Some(10));
        assert_eq!(c.cnonce.as_deref(), Some("abc"));
        let p = params("Digest uri=sip:alice@example.com;transport=tcp, realm=r");
        assert_eq!(p.get("uri"), Some("sip:alice@example.com;transport=tcp"));
    }

    #[test]
    fn duplicate_params_are_errors() {
        assert_eq!(
            parse_credentials(format!("Digest {MIN}, realm=\"r\"").as_bytes()),
            Err(AuthError::DuplicateParam("realm".into()))
        );
        assert_eq!(parse_digest_params(b"Digest Nonce=a, nONCE=a"), Err(AuthError::DuplicateParam("nonce".into())));
    }

    #[test]
    fn other_schemes_are_ignored() {
        assert_eq!(parse_credentials(b"NewAuth realm=\"r\", x=y"), Ok(None));
        assert_eq!(parse_credentials(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), Ok(None));
        assert_eq!(parse_credentials(b"Digestive username=\"x\""), Ok(None));
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "   ",
            "Digest username",
            "Digest username=",
            "Digest username=\"open",
            "Digest username=\"a\" realm=\"b\"",
            "Digest =x",
            "Digest a=b\"c\"",
            "Digest a=\"x\\",
            "Digest a=\"x\ny\"",
            "Digest, a=b;c",
            "Digest\"a\"=b",
        ] {
            assert!(parse_digest_params(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse_digest_params(b"Digest a=\"\xff\"").is_err());
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=v")).collect();
        assert!(parse_digest_params(format!("Digest {}", many.join(",")).as_bytes()).is_err());
        // "Digest" with nothing after parses, but lacks every required parameter.
        assert_eq!(parse_credentials(b"Digest"), Err(AuthError::MissingParam("username")));
    }

    #[test]
    fn required_and_dependent_params() {
        for (drop, missing) in
            [("username", "username"), ("realm", "realm"), ("nonce", "nonce"), ("uri", "uri"), ("response", "response")]
        {
            let mut p = params(&format!("Digest {MIN}"));
            p.0.retain(|(n, _)| n != drop);
            assert_eq!(Credentials::from_params(&p), Err(AuthError::MissingParam(missing)));
        }
        assert_eq!(
            parse_credentials(format!("Digest {MIN}, qop=auth, nc=00000001").as_bytes()),
            Err(AuthError::MissingParam("cnonce"))
        );
        assert_eq!(
            parse_credentials(format!("Digest {MIN}, qop=auth, cnonce=x").as_bytes()),
            Err(AuthError::MissingParam("nc"))
        );
    }

    #[test]
    fn nonce_count_format() {
        for bad in ["1", "0000001", "000000001", "0000000G", "0000000A", "-0000001", "+0000001"] {
            let v = format!("Digest {MIN}, qop=auth, cnonce=c, nc={bad}");
            assert_eq!(parse_credentials(v.as_bytes()), Err(AuthError::BadNonceCount(bad.into())), "{bad}");
        }
        let v = format!("Digest {MIN}, qop=auth, cnonce=c, nc=ffffffff");
        assert_eq!(parse_credentials(v.as_bytes()).unwrap().unwrap().nc, Some(u32::MAX));
    }

    #[test]
    fn unsupported_algorithms() {
        for a in ["MD5-sess", "SHA-256-sess", "SHA-512-256", "\"\""] {
            let v = format!("Digest {MIN}, algorithm={a}");
            let e = parse_credentials(v.as_bytes()).unwrap_err();
            assert_eq!(e.reason(), "unsupported algorithm", "{a}");
        }
        let v = format!("Digest {MIN}, algorithm=\"sha-256\"");
        assert_eq!(parse_credentials(v.as_bytes()).unwrap().unwrap().algorithm, Algorithm::Sha256);
    }

    #[test]
    fn challenge_format() {
        assert_eq!(
            format_challenge("example.com", "abc", "op", Algorithm::Sha256, false),
            r#"Digest realm="example.com", nonce="abc", opaque="op", algorithm=SHA-256, qop="auth""#
        );
        assert_eq!(
            format_challenge("ex\"am\\ple", "abc", "op", Algorithm::Md5, true),
            r#"Digest realm="ex\"am\\ple", nonce="abc", opaque="op", algorithm=MD5, qop="auth", stale=true"#
        );
        // What we format, we parse back.
        let p = params(&format_challenge("a \"b\", c", "n", "o", Algorithm::Md5, true));
        assert_eq!(p.get("realm"), Some("a \"b\", c"));
        assert_eq!(p.get("stale"), Some("true"));
    }
}
