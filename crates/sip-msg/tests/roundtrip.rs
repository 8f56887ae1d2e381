//! Property tests of the parser and serializer.
//!
//! - Structurally valid messages (random methods, unknown tokens included;
//!   URIs with users, escapes, parameters, IPv6 hosts and ports; Via lists
//!   with parameters; compact and long header names in random case; folded
//!   lines; comma lists; quoted display names with escapes; bodies of
//!   arbitrary bytes with a right Content-Length) parse and validate, and
//!   `parse(serialize(parse(m))) == parse(m)`, with serialize idempotent
//!   after one round.
//! - `frame_stream` finds the same message boundaries (and pings) whatever
//!   the cuts of a stream of several messages into reads.
//! - Parsing never panics on arbitrary bytes or on mutated corpus messages,
//!   and the invariants the fuzzer checks hold.

mod common;

use bytes::Bytes;
use common::invariants::{self, Event, frame_events};
use proptest::prelude::*;
use proptest::sample::select;
use sip_msg::{Limits, Message, parse_datagram, parse_framed};
use std::net::Ipv6Addr;

// ---------------------------------------------------------------------------
// Generators. Each produces wire text that is valid by construction.

const TOKEN: &str = "[A-Za-z0-9.!%*_+`'~-]{1,10}";

/// `s` with each letter's case flipped at random.
fn random_case(s: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), s.len()).prop_map(move |flips| {
        s.chars().zip(flips).map(|(c, f)| if f { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
    })
}

/// A header name: the long form in random case, or the compact form.
fn name(long: &'static str, compact: Option<&'static str>) -> BoxedStrategy<String> {
    match compact {
        Some(c) => prop_oneof![3 => random_case(long), 1 => random_case(c)].boxed(),
        None => random_case(long).boxed(),
    }
}

/// Optional white space (a separator where LWS is allowed).
fn ows() -> impl Strategy<Value = &'static str> {
    select(vec!["", "", "", " ", "  ", "\t"])
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9]{0,6}){0,3}",
        2 => any::<[u8; 4]>().prop_map(|a| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])),
        2 => any::<u128>().prop_map(|x| format!("[{}]", Ipv6Addr::from(x))),
        1 => any::<[u16; 8]>().prop_map(|s| {
            format!("[{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:04x}]", s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
        }),
        1 => any::<[u8; 4]>().prop_map(|a| format!("[::ffff:{}.{}.{}.{}]", a[0], a[1], a[2], a[3])),
    ]
}

fn port() -> impl Strategy<Value = Option<u16>> {
    prop_oneof![2 => Just(None), 1 => any::<u16>().prop_map(Some)]
}

fn escaped() -> impl Strategy<Value = String> {
    any::<u8>().prop_map(|b| format!("%{b:02X}"))
}

/// A user part: unreserved and user-unreserved characters and escapes
/// (no ':' so that it is never read as a password).
fn user() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![4 => "[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,4}".boxed(), 1 => escaped().boxed()], 1..4)
        .prop_map(|v| v.concat())
}

fn uri_param() -> impl Strategy<Value = String> {
    let value = prop::collection::vec(
        prop_oneof![4 => "[a-zA-Z0-9\\[\\]/:&+$._~!*'()-]{1,6}".boxed(), 1 => escaped().boxed()],
        1..3,
    )
    .prop_map(|v| v.concat());
    prop_oneof![
        3 => ("[a-z][a-z0-9-]{0,6}", prop::option::of(value)).prop_map(|(n, v)| match v {
            Some(v) => format!(";{n}={v}"),
            None => format!(";{n}"),
        }),
        1 => select(vec![";lr", ";transport=tcp", ";user=phone", ";maddr=192.0.2.1", ";ttl=15", ";method=INVITE"])
            .prop_map(String::from),
        // RFC 8599 push parameters.
        1 => ("[a-f0-9]{8,32}", "[A-Z]{4}\\.[a-z]{3}\\.voip")
            .prop_map(|(prid, param)| format!(";pn-provider=apns;pn-prid={prid};pn-param={param}")),
        1 => escaped().prop_map(|e| format!(";x{e}=v{e}")),
    ]
}

/// A SIP/SIPS URI; `headers` allows a `?h=v&...` part (only inside `<>`).
fn sip_uri(headers: bool) -> impl Strategy<Value = String> {
    let hdrs = if headers {
        prop::option::of(prop::collection::vec("[a-zA-Z]{1,5}=([a-zA-Z0-9/?:+$._~-]|%[0-9A-F]{2}){0,8}", 1..3)).boxed()
    } else {
        Just(None).boxed()
    };
    (
        select(vec!["sip", "sip", "sip", "sips", "SIP", "Sip"]),
        prop::option::of((user(), prop::option::of("[a-zA-Z0-9&=+$,]{0,6}"))),
        host(),
        port(),
        prop::collection::vec(uri_param(), 0..4),
        hdrs,
    )
        .prop_map(|(scheme, ui, host, port, params, hdrs)| {
            let mut s = format!("{scheme}:");
            if let Some((u, pw)) = ui {
                s += &u;
                if let Some(pw) = pw {
                    s += ":";
                    s += &pw;
                }
                s += "@";
            }
            s += &host;
            if let Some(p) = port {
                s += &format!(":{p}");
            }
            s += &params.concat();
            if let Some(h) = hdrs {
                s += "?";
                s += &h.join("&");
            }
            s
        })
}

fn other_uri() -> impl Strategy<Value = String> {
    prop_oneof![
        "tel:\\+?[0-9][0-9-]{0,12}(;phone-context=[a-z.]{1,8})?",
        "urn:[a-z]{1,5}:[a-z0-9]{1,8}",
        "[a-z][a-z0-9+.-]{0,8}:[a-zA-Z0-9/?:@&=+$,._~-]{1,16}",
    ]
}

fn any_uri(headers: bool) -> impl Strategy<Value = String> {
    prop_oneof![5 => sip_uri(headers), 1 => other_uri()]
}

/// A quoted string with escapes, commas, angle brackets and UTF-8 inside.
fn quoted() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => "[a-zA-Z0-9 ,;:<>@=/.-]{1,4}".boxed(),
            1 => Just("\\\"".to_string()).boxed(),
            1 => Just("\\\\".to_string()).boxed(),
            1 => select(vec!["é", "ü", "сто", "\u{1F600}"]).prop_map(String::from).boxed(),
        ],
        0..6,
    )
    .prop_map(|v| format!("\"{}\"", v.concat()))
}

fn display() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        2 => quoted().prop_map(Some),
        1 => prop::collection::vec(TOKEN, 1..3).prop_map(|w| Some(w.join(" "))),
    ]
}

/// `;name[=value]` header parameters with optional LWS around ';' and '='.
fn header_params(extra: Vec<&'static str>) -> impl Strategy<Value = String> {
    let one = prop_oneof![
        3 => ("[a-z][a-z0-9.+-]{0,8}", prop::option::of(prop_oneof![TOKEN.boxed(), quoted().boxed()])),
        1 => select(extra).prop_map(|p| (p.to_string(), None)),
    ];
    prop::collection::vec((one, ows(), ows(), ows()), 0..3).prop_map(|ps| {
        ps.into_iter()
            .map(|((n, v), a, b, c)| match v {
                Some(v) => format!("{a};{b}{n}{c}={b}{v}"),
                None => format!("{a};{b}{n}"),
            })
            .collect()
    })
}

/// A name-addr or addr-spec value.
fn name_addr(tag: bool) -> impl Strategy<Value = String> {
    (display(), any_uri(true), any::<bool>(), header_params(vec!["q=0.5", "expires=3600", "+sip.pnsreg"]), TOKEN, ows())
        .prop_map(move |(d, uri, spec, params, t, ws)| {
            let tag = if tag { format!(";tag={t}") } else { String::new() };
            // addr-spec only where it is not ambiguous.
            let plain = d.is_none() && !uri.contains([';', '?', ',']) && !uri.contains('"');
            if plain && spec {
                format!("{uri}{params}{tag}")
            } else {
                match d {
                    Some(d) => format!("{d}{ws}<{uri}>{params}{tag}"),
                    None => format!("<{uri}>{params}{tag}"),
                }
            }
        })
}

fn via() -> impl Strategy<Value = String> {
    let params = prop::collection::vec(
        prop_oneof![
            TOKEN.prop_map(|b| format!("branch=z9hG4bK{b}")),
            Just("rport".to_string()),
            any::<u16>().prop_map(|p| format!("rport={p}")),
            any::<[u8; 4]>().prop_map(|a| format!("received={}.{}.{}.{}", a[0], a[1], a[2], a[3])),
            any::<u128>().prop_map(|x| format!("received={}", Ipv6Addr::from(x))),
            any::<u128>().prop_map(|x| format!("received=[{}]", Ipv6Addr::from(x))),
            Just("maddr=224.2.0.1;ttl=16".to_string()),
            ("[a-z]{1,6}", TOKEN).prop_map(|(n, v)| format!("{n}={v}")),
        ],
        0..4,
    );
    (
        select(vec!["UDP", "TCP", "TLS", "SCTP", "WS", "WSS", "udp", "UNKNOWN"]),
        host(),
        port(),
        params,
        (ows(), ows(), ows()),
    )
        .prop_map(|(t, h, p, params, (a, b, c))| {
            let mut s = format!("SIP{a}/{b}2.0{a}/{c}{t} {h}");
            if let Some(p) = p {
                s += &format!("{a}:{b}{p}");
            }
            for x in params {
                s += &format!("{c};{a}{x}");
            }
            s
        })
}

/// Header lines for one list header: the values split over 1..n lines,
/// comma-joined within a line.
fn list_lines(
    long: &'static str,
    compact: Option<&'static str>,
    values: Vec<String>,
) -> impl Strategy<Value = Vec<(String, String)>> {
    let n = values.len();
    (prop::collection::vec((name(long, compact), ows()), n), prop::collection::vec(any::<bool>(), n)).prop_map(
        move |(names, breaks)| {
            let mut lines: Vec<(String, String)> = Vec::new();
            for (i, v) in values.iter().enumerate() {
                if i == 0 || breaks[i] {
                    lines.push((names[i].0.clone(), v.clone()));
                } else {
                    let last = lines.last_mut().unwrap();
                    last.1 = format!("{},{}{}", last.1, names[i].1, v);
                }
            }
            lines
        },
    )
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(vec!["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "SUBSCRIBE", "NOTIFY", "MESSAGE", "PRACK"])
            .prop_map(String::from),
        2 => TOKEN.prop_map(String::from),
    ]
}

/// A start line and the CSeq method that goes with it.
fn start_line() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        3 => (method(), any_uri(false)).prop_map(|(m, u)| (format!("{m} {u} SIP/2.0"), m)),
        1 => (100u16..700, "[ -~]{0,20}|[a-zA-Z ]*(é|сто)[a-z ]*", method())
            .prop_map(|(c, r, m)| (format!("SIP/2.0 {c} {r}"), m)),
    ]
}

/// Other headers: unknown names with opaque values (commas, quotes and
/// semicolons included), token lists, free text.
fn extra_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let one = prop_oneof![
        ("X-[A-Za-z0-9-]{1,10}", "[ -~]{0,30}").prop_map(|(n, v)| vec![(n, v)]),
        ("[A-Za-z][A-Za-z0-9-]{1,3}", "[ -~]{0,10}é?").prop_map(|(n, v)| vec![(format!("Q{n}"), v)]),
        prop::collection::vec("[a-z0-9.-]{1,8}", 1..4)
            .prop_flat_map(|v| list_lines("Supported", Some("k"), v)),
        prop::collection::vec(select(vec!["INVITE", "ACK", "BYE", "OPTIONS"]).prop_map(String::from), 1..4)
            .prop_flat_map(|v| list_lines("Allow", None, v)),
        prop::collection::vec(name_addr(false), 1..3).prop_flat_map(|v| list_lines("Route", None, v)),
        prop::collection::vec(name_addr(false), 1..3).prop_flat_map(|v| list_lines("Record-Route", None, v)),
        (name("Subject", Some("s")), "[ -~]{0,20}").prop_map(|(n, v)| vec![(n, v)]),
        (name("User-Agent", None), "[ -~]{0,20}").prop_map(|(n, v)| vec![(n, v)]),
        (name("Authorization", None), "[a-z]{1,8}", "[a-f0-9]{32}").prop_map(|(n, u, r)| {
            vec![(
                n,
                format!(
                    "Digest username=\"{u}\", realm=\"example.com\", nonce=\"{r}\", uri=\"sip:example.com\", response=\"{r}\", algorithm=MD5"
                ),
            )]
        }),
    ];
    let expires = prop::option::of((name("Expires", None), 0u32..100_000)).prop_map(|e| match e {
        Some((n, v)) => vec![(n, v.to_string())],
        None => vec![],
    });
    (prop::collection::vec(one, 0..5), expires).prop_map(|(v, e)| [v.concat(), e].concat())
}

/// How a header line is written: spaces around the colon, folds, line end.
#[derive(Debug, Clone)]
struct Style {
    before_colon: &'static str,
    after_colon: &'static str,
    folds: Vec<(usize, &'static str)>,
    lf_only: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (
        select(vec!["", "", "", " ", "\t"]),
        select(vec![" ", " ", "", "  ", "\t", "\r\n "]),
        prop::collection::vec((any::<usize>(), select(vec!["\r\n ", "\r\n\t", "\r\n  "])), 0..3),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(before_colon, after_colon, folds, lf_only)| Style {
            before_colon,
            after_colon,
            folds,
            lf_only,
        })
}

fn write_line(out: &mut Vec<u8>, name: &str, value: &str, st: &Style) {
    let eol: &str = if st.lf_only { "\n" } else { "\r\n" };
    // Fold at single spaces of the value (where LWS already is).
    let mut v = value.to_string();
    let spaces: Vec<usize> = v.match_indices(' ').map(|(i, _)| i).collect();
    let mut at: Vec<(usize, &str)> =
        st.folds.iter().filter(|_| !spaces.is_empty()).map(|&(k, f)| (spaces[k % spaces.len()], f)).collect();
    at.sort_unstable();
    at.dedup_by_key(|x| x.0);
    for &(i, f) in at.iter().rev() {
        v.replace_range(i..i + 1, &f.replace("\r\n", eol));
    }
    let after = st.after_colon.replace("\r\n", eol);
    out.extend_from_slice(format!("{name}{}:{after}{v}{eol}", st.before_colon).as_bytes());
}

/// A whole message that must parse and validate.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let core = (
        start_line(),
        prop::collection::vec(via(), 1..4).prop_flat_map(|v| list_lines("Via", Some("v"), v)),
        (name("From", Some("f")), name_addr(true)),
        (name("To", Some("t")), name_addr(false)),
        (name("Call-ID", Some("i")), "[a-zA-Z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{1,24}(@[a-z0-9.]{1,12})?"),
        (name("CSeq", None), any::<u32>(), ows()),
        prop::option::of((name("Max-Forwards", None), 0u8..=255, select(vec!["", "0", "00"]))),
    );
    let rest = (
        prop_oneof![
            3 => prop::collection::vec(name_addr(false), 1..4).prop_flat_map(|v| list_lines("Contact", Some("m"), v)),
            1 => Just(Vec::new()),
            1 => name("Contact", Some("m")).prop_map(|n| vec![(n, "*".to_string())]),
        ],
        extra_headers(),
        name("Content-Length", Some("l")),
        prop::collection::vec(any::<u8>(), 0..200),
        any::<prop::sample::Index>(),
        prop::collection::vec(style(), 40),
    );
    (core, rest).prop_map(
        |((start, vias, from, to, callid, cseq, mf), (contacts, extra, cl_name, body, cl_at, styles))| {
            let (sl, cseq_method) = start;
            let mut headers: Vec<(String, String)> = vias;
            headers.push(from);
            headers.push(to);
            headers.push(callid);
            headers.push((cseq.0, format!("{}{} {cseq_method}", cseq.1, cseq.2)));
            if let Some((n, v, z)) = mf {
                headers.push((n, format!("{z}{v}")));
            }
            headers.extend(contacts);
            headers.extend(extra);
            headers.insert(cl_at.index(headers.len() + 1), (cl_name, body.len().to_string()));
            let mut out = Vec::new();
            let eol = if styles[0].lf_only { "\n" } else { "\r\n" };
            out.extend_from_slice(format!("{sl}{eol}").as_bytes());
            for (i, (n, v)) in headers.iter().enumerate() {
                write_line(&mut out, n, v, &styles[(i + 1) % styles.len()]);
            }
            out.extend_from_slice(eol.as_bytes());
            out.extend_from_slice(&body);
            out
        },
    )
}

fn parse_valid(bytes: &[u8]) -> Message {
    let m = parse_datagram(Bytes::copy_from_slice(bytes), &Limits::default()).unwrap_or_else(|f| {
        panic!("generated message does not parse: {}\n{}", f.error, String::from_utf8_lossy(bytes))
    });
    if let Err(e) = m.validate() {
        panic!("generated message does not validate: {e}\n{}", String::from_utf8_lossy(bytes));
    }
    m
}

// ---------------------------------------------------------------------------
// Corpus and mutations.

fn corpus() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in ["rfc4475", "rfc5118", "rfc5118/wire"] {
        let mut files: Vec<_> = std::fs::read_dir(common::data_dir(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "dat" || e == "sip"))
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|p| std::fs::read(p).unwrap()));
    }
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = select(vec![
        &b"\r\n"[..],
        b"\n",
        b"\r",
        b"\r\n ",
        b",",
        b";",
        b":",
        b"\"",
        b"<",
        b">",
        b"[",
        b"]",
        b"%",
        b"\\",
        b"\0",
        b" ",
        b"=",
        b"@",
        b"?",
        b"\r\n\r\n",
        b"99999999999",
        b"-1",
        b"\xff\xfe",
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), prop_oneof![special.prop_map(|s| s.to_vec()), prop::collection::vec(any::<u8>(), 1..8)])
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), 1usize..60, any::<usize>()).prop_map(|(i, n, j)| Mutation::Duplicate(i, n, j)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut v: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = v.len().max(1);
        match m {
            Mutation::Flip(i, b) if !v.is_empty() => v[i % len] ^= b,
            Mutation::Insert(i, b) => {
                let at = i % (v.len() + 1);
                v.splice(at..at, b.iter().copied());
            }
            Mutation::Delete(i, n) if !v.is_empty() => {
                let at = i % len;
                let end = (at + n).min(v.len());
                v.drain(at..end);
            }
            Mutation::Duplicate(i, n, j) if !v.is_empty() => {
                let at = i % len;
                let part: Vec<u8> = v[at..(at + n).min(v.len())].to_vec();
                let to = j % (v.len() + 1);
                v.splice(to..to, part);
            }
            Mutation::Truncate(i) => v.truncate(i % (v.len() + 1)),
            _ => {}
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Properties.

proptest! {
    // 512 cases by default; PROPTEST_CASES=N for a longer run. Failures are
    // not persisted: a minimised failure goes to tests/regressions.rs.
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// parse(serialize(parse(m))) == parse(m); serialize is idempotent after one round.
    #[test]
    fn roundtrip(bytes in message()) {
        let m = parse_valid(&bytes);
        let wire = m.to_bytes();
        let again = parse_datagram(wire.clone(), &Limits::default())
            .unwrap_or_else(|f| panic!("serialised does not parse: {}\n{}", f.error, String::from_utf8_lossy(&wire)));
        prop_assert_eq!(&again, &m);
        prop_assert_eq!(again.to_bytes(), wire.clone());
        prop_assert_eq!(again.validate(), Ok(()));
        // The serialised form is a stream message too.
        let framed = parse_framed(wire, &Limits::default()).ok();
        prop_assert_eq!(framed.as_ref(), Some(&m));
        // Typed accessors, typed round trips, responses.
        invariants::check_datagram(&bytes, &Limits::default());
    }

    /// Several messages and keep-alives on one stream, cut anywhere: the framer
    /// finds every message at its offset, and the pings, whatever the cuts.
    #[test]
    fn frame_stream_any_split(
        parts in prop::collection::vec((message(), prop::collection::vec(select(vec![&b"\r\n"[..], b"\r\n\r\n"]), 0..3)), 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        trailing in prop::collection::vec(select(vec![&b"\r\n"[..], b"\r\n\r\n"]), 0..3),
    ) {
        let mut stream = Vec::new();
        let mut expect = Vec::new();
        for (msg, keepalives) in &parts {
            // A stream message must not start with CR/LF (that is a keep-alive).
            let ka: Vec<u8> = keepalives.concat();
            expect.extend(std::iter::repeat_n(Event::Ping, count_pings(&ka)));
            stream.extend_from_slice(&ka);
            expect.push(Event::Message(stream.len(), msg.len()));
            stream.extend_from_slice(msg);
        }
        let ka: Vec<u8> = trailing.concat();
        expect.extend(std::iter::repeat_n(Event::Ping, count_pings(&ka)));
        stream.extend_from_slice(&ka);

        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        let whole = frame_events(&stream, &[], &Limits::default());
        prop_assert_eq!(&whole, &expect);
        prop_assert_eq!(&frame_events(&stream, &cuts, &Limits::default()), &expect);
        // Each framed message parses as framed to what the datagram parse gives.
        for e in &expect {
            if let Event::Message(at, len) = *e {
                let one = Bytes::copy_from_slice(&stream[at..at + len]);
                let framed = parse_framed(one.clone(), &Limits::default()).map_err(|f| f.error);
                let dgram = parse_datagram(one, &Limits::default()).map_err(|f| f.error);
                prop_assert_eq!(framed, dgram);
            }
        }
    }

    /// Byte-by-byte delivery of a short stream frames like one read.
    #[test]
    fn frame_stream_byte_by_byte(msg in message(), ka in prop::collection::vec(select(vec![&b"\r\n"[..], b"\n", b"\r"]), 0..5)) {
        let mut stream = ka.concat();
        stream.extend_from_slice(&msg);
        stream.extend_from_slice(&ka.concat());
        let every: Vec<usize> = (1..stream.len()).collect();
        prop_assert_eq!(frame_events(&stream, &every, &Limits::default()), frame_events(&stream, &[], &Limits::default()));
    }

    /// Arbitrary bytes: no panic, and every invariant of the fuzz target.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        invariants::check_datagram(&data, &Limits::default());
        let cuts: Vec<usize> = (0..data.len()).step_by(7).collect();
        prop_assert_eq!(frame_events(&data, &cuts, &Limits::default()), frame_events(&data, &[], &Limits::default()));
    }

    /// Mutated corpus messages: no panic, invariants hold, framing is cut-independent.
    #[test]
    fn mutated_corpus_never_panics(
        which in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 1..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let corpus = corpus();
        let data = mutate(corpus[which.index(corpus.len())].clone(), &muts);
        invariants::check_datagram(&data, &Limits::default());
        invariants::check_datagram(&data, &Limits { max_message: 1024, max_headers: 12, max_header_len: 128 });
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        prop_assert_eq!(frame_events(&data, &cuts, &Limits::default()), frame_events(&data, &[], &Limits::default()));
    }

    /// Mutated generated messages, likewise.
    #[test]
    fn mutated_messages_never_panic(bytes in message(), muts in prop::collection::vec(mutation(), 1..4)) {
        let data = mutate(bytes, &muts);
        invariants::check_datagram(&data, &Limits::default());
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(512)
}

/// Pings in a run of keep-alive CRLFs: leftmost, non-overlapping `CRLFCRLF`.
fn count_pings(run: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i + 4 <= run.len() {
        if &run[i..i + 4] == b"\r\n\r\n" {
            n += 1;
            i += 4;
        } else {
            i += 1;
        }
    }
    n
}

#[test]
fn generator_smoke() {
    // The generator's output is what a human would call SIP.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..50 {
        let bytes = message().new_tree(&mut runner).unwrap().current();
        parse_valid(&bytes);
    }
}
