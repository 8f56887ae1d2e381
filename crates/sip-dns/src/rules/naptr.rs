//! NAPTR selection for SIP (RFC 3263 §4.1 over RFC 3403): which records
//! apply, in which order, and the SRV name each one leads to.
//!
//! Pure: takes records, returns choices. Must not do lookups.

use sip_msg::Transport;

use super::NaptrRecord;

/// One usable NAPTR record: the transport its service names and the SRV
/// name its replacement points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NaptrChoice {
    pub transport: Transport,
    pub srv_name: String,
    pub ttl: u32,
}

/// The transport of a SIP NAPTR service field (RFC 3263 §4.1, case
/// insensitive): `SIPS+D2T` is TLS, `SIP+D2T` TCP, `SIP+D2U` UDP. Every
/// other service (`SIP+D2S` SCTP, `SIP+D2W`/`SIPS+D2W` WebSocket, non-SIP
/// services) is `None`.
pub(crate) fn service_transport(services: &str) -> Option<Transport> {
    let s = services.to_ascii_uppercase();
    match s.as_str() {
        "SIPS+D2T" => Some(Transport::Tls),
        "SIP+D2T" => Some(Transport::Tcp),
        "SIP+D2U" => Some(Transport::Udp),
        _ => None,
    }
}

/// Keeps the records a client may use and sorts them by order, then
/// preference (stable, so equal records keep the DNS order):
/// - the service names a SIP transport we support ([`service_transport`]);
/// - for a SIPS URI, only `SIPS` services (TLS);
/// - the flag is `S` (the replacement names an SRV record), the regexp is
///   empty and the replacement is not `.`.
///
/// A choice that repeats an earlier (transport, SRV name) is dropped.
pub(crate) fn select(records: &[NaptrRecord], secure: bool, supported: &[Transport]) -> Vec<NaptrChoice> {
    let mut usable: Vec<(&NaptrRecord, Transport)> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s") && r.regexp.is_empty() && !r.replacement.is_empty())
        .filter_map(|r| service_transport(&r.services).map(|t| (r, t)))
        .filter(|(_, t)| supported.contains(t) && (!secure || *t == Transport::Tls))
        .collect();
    usable.sort_by_key(|(r, _)| (r.order, r.preference));
    let mut out: Vec<NaptrChoice> = Vec::with_capacity(usable.len());
    for (r, transport) in usable {
        if out.iter().any(|c| c.transport == transport && c.srv_name == r.replacement) {
            continue;
        }
        out.push(NaptrChoice { transport, srv_name: r.replacement.clone(), ttl: r.ttl });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transport::*;

    fn rec(order: u16, preference: u16, flags: &str, services: &str, replacement: &str) -> NaptrRecord {
        NaptrRecord {
            order,
            preference,
            flags: flags.into(),
            services: services.into(),
            regexp: String::new(),
            replacement: replacement.into(),
            ttl: 300,
        }
    }

    fn picked(c: &[NaptrChoice]) -> Vec<(Transport, &str)> {
        c.iter().map(|c| (c.transport, c.srv_name.as_str())).collect()
    }

    #[test]
    fn services_map_to_transports() {
        assert_eq!(service_transport("SIPS+D2T"), Some(Tls));
        assert_eq!(service_transport("sip+d2t"), Some(Tcp));
        assert_eq!(service_transport("SIP+D2U"), Some(Udp));
        assert_eq!(service_transport("SIP+D2S"), None);
        assert_eq!(service_transport("SIP+D2W"), None);
        assert_eq!(service_transport("SIPS+D2W"), None);
        assert_eq!(service_transport("SIPS+D2U"), None);
        assert_eq!(service_transport("E2U+sip"), None);
    }

    #[test]
    fn sorted_by_order_then_preference() {
        let records = vec![
            rec(20, 10, "S", "SIP+D2U", "_sip._udp.b"),
            rec(10, 50, "S", "SIP+D2T", "_sip._tcp.a"),
            rec(10, 5, "s", "SIPS+D2T", "_sips._tcp.a"),
            rec(10, 50, "S", "SIP+D2U", "_sip._udp.a"),
        ];
        assert_eq!(
            picked(&select(&records, false, &[Udp, Tcp, Tls])),
            vec![(Tls, "_sips._tcp.a"), (Tcp, "_sip._tcp.a"), (Udp, "_sip._udp.a"), (Udp, "_sip._udp.b")]
        );
    }

    #[test]
    fn filters_secure_unsupported_and_unusable() {
        let records = vec![
            rec(10, 10, "S", "SIPS+D2T", "_sips._tcp.a"),
            rec(10, 20, "S", "SIP+D2T", "_sip._tcp.a"),
            rec(10, 30, "S", "SIP+D2U", "_sip._udp.a"),
            rec(10, 1, "S", "SIP+D2S", "_sip._sctp.a"),
            rec(10, 2, "S", "SIPS+D2W", "_sips._ws.a"),
            rec(10, 3, "A", "SIP+D2U", "host.a"),
            rec(10, 4, "U", "SIP+D2U", "host.a"),
            rec(10, 5, "S", "SIP+D2T", ""),
        ];
        assert_eq!(picked(&select(&records, true, &[Udp, Tcp, Tls])), vec![(Tls, "_sips._tcp.a")]);
        assert_eq!(picked(&select(&records, false, &[Udp, Tcp])), vec![(Tcp, "_sip._tcp.a"), (Udp, "_sip._udp.a")]);
        assert!(select(&records, true, &[Udp, Tcp]).is_empty());
        let mut with_regexp = rec(10, 1, "S", "SIP+D2U", "_sip._udp.a");
        with_regexp.regexp = "!^.*$!sip:x@y!".into();
        assert!(select(&[with_regexp], false, &[Udp]).is_empty());
    }

    #[test]
    fn duplicates_are_dropped() {
        let records = vec![rec(10, 10, "S", "SIP+D2U", "_sip._udp.a"), rec(20, 10, "S", "SIP+D2U", "_sip._udp.a")];
        assert_eq!(select(&records, false, &[Udp]).len(), 1);
    }
}
