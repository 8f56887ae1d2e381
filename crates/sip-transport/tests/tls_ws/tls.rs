//! TLS: serving, keep-alive, outbound connections and their verification,
//! handshake failures, reload with open connections kept, mutual TLS.

use crate::common::*;
use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use sip_transport::{HandshakeFailure, Target, TlsSettings, Transport, TransportConfig, VerifyClient};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(5);

fn config(tls: TlsSettings) -> TransportConfig {
    TransportConfig { tls, handshake_timeout: Duration::from_secs(2), ..TransportConfig::default() }
}

/// Reads until `needle` is in what was read, or fails after [`WAIT`].
async fn read_until<S: tokio::io::AsyncRead + Unpin>(s: &mut S, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !got.windows(needle.len()).any(|w| w == needle) {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf)).await.expect("read timed out").unwrap();
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[tokio::test]
async fn tls_listener_serves_answers_over_the_flow_and_pongs() {
    let pki = Pki::new("a");
    let (t, h) = start(&["tls:127.0.0.1:0", "tcp:127.0.0.1:0"], config(pki.server_settings())).await;
    let mut c = tls_connect(addr(&t, Transport::Tls), client_config(&pki.ca_file, None)).await.unwrap();
    c.write_all(&request("OPTIONS", 1, true)).await.unwrap();
    let got = read_until(&mut c, b"Call-ID: c1@t").await;
    assert!(got.starts_with(b"SIP/2.0 200 OK"));
    let seen = h.last().unwrap();
    assert_eq!(seen.src.transport, Transport::Tls);
    assert!(seen.src.conn.is_some());
    // RFC 5626 double-CRLF ping over TLS: a CRLF pong.
    c.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(WAIT, c.read_exact(&mut pong)).await.unwrap().unwrap();
    assert_eq!(&pong, b"\r\n");
    let s = stats(&t, Transport::Tls);
    assert_eq!((s.connections_accepted, s.connections_open), (1, 1));
    assert!(s.bytes_received >= request("OPTIONS", 1, true).len() as u64 && s.bytes_sent > 0, "{s:?}");
    assert_eq!(stats(&t, Transport::Tcp).connections_accepted, 0);
    drop(c);
    assert!(wait_until(WAIT, || stats(&t, Transport::Tls).connections_open == 0).await);
}

#[tokio::test]
async fn garbage_instead_of_a_client_hello_is_dropped_and_counted() {
    let pki = Pki::new("a");
    let (t, h) = start(&["tls:127.0.0.1:0"], config(pki.server_settings())).await;
    let a = addr(&t, Transport::Tls);
    let mut raw = tokio::net::TcpStream::connect(a).await.unwrap();
    raw.write_all(&request("OPTIONS", 1, true)).await.unwrap();
    let mut buf = [0u8; 1024];
    // The server closes (after a TLS alert at most).
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "connection not closed");
    assert!(wait_until(WAIT, || stats(&t, Transport::Tls).handshake_failures(HandshakeFailure::Tls) == 1).await);
    assert_eq!(h.count(), 0);
    // A silent client hits the handshake deadline.
    let _silent = tokio::net::TcpStream::connect(a).await.unwrap();
    assert!(wait_until(WAIT, || stats(&t, Transport::Tls).handshake_failures(HandshakeFailure::Timeout) == 1).await);
    // And the server keeps serving.
    let mut c = tls_connect(a, client_config(&pki.ca_file, None)).await.unwrap();
    c.write_all(&request("OPTIONS", 2, true)).await.unwrap();
    read_until(&mut c, b"Call-ID: c2@t").await;
}

#[tokio::test]
async fn outbound_tls_is_verified_reused_and_never_plain() {
    let pki = Pki::new("a");
    let (server, sh) = start(&["tls:127.0.0.1:0", "tcp:127.0.0.1:0"], config(pki.server_settings())).await;
    // The client side trusts the CA (no certificate of its own).
    let client_tls = TlsSettings { ca_file: Some(pki.ca_file.clone()), ..TlsSettings::default() };
    let (client, ch) = start(&["udp:127.0.0.1:0"], config(client_tls)).await;
    let remote = addr(&server, Transport::Tls);
    let target = Target { transport: Transport::Tls, remote, conn: None };
    client.send(&target, Bytes::from(request("OPTIONS", 1, true))).unwrap();
    assert!(wait_until(WAIT, || sh.count() == 1).await);
    assert_eq!(sh.last().unwrap().src.transport, Transport::Tls);
    // The answer came back over the same connection.
    assert!(wait_until(WAIT, || ch.count() == 1).await);
    let back = ch.last().unwrap().src;
    assert_eq!((back.transport, back.remote), (Transport::Tls, remote));
    // A second send reuses it.
    client.send(&target, Bytes::from(request("OPTIONS", 2, true))).unwrap();
    assert!(wait_until(WAIT, || sh.count() == 2).await);
    assert_eq!(sh.last().unwrap().src.conn, sh.seen.lock().unwrap()[0].src.conn);
    let s = stats(&client, Transport::Tls);
    assert_eq!((s.connections_opened, s.connections_open), (1, 1));
    // A TCP target naming the TLS flow's address and id does not use the
    // TLS flow: a new plain connection goes out, which the TLS listener
    // refuses as a failed handshake.
    let tcp_target = Target { transport: Transport::Tcp, remote, conn: back.conn };
    client.send(&tcp_target, Bytes::from(request("OPTIONS", 3, true))).unwrap();
    assert!(wait_until(WAIT, || stats(&server, Transport::Tls).handshake_failures(HandshakeFailure::Tls) == 1).await);
    assert_eq!(stats(&client, Transport::Tcp).connections_opened, 1);
    assert_eq!(sh.count(), 2);
    let s = stats(&client, Transport::Tls);
    assert_eq!((s.connections_opened, s.connections_open), (1, 1));
}

#[tokio::test]
async fn outbound_tls_checks_the_registered_name_else_the_ip() {
    let pki = Pki::new("a");
    // A certificate for a DNS name only.
    let (c, k) = pki.issue("named", &["sip.example.test"], false);
    let server_tls = TlsSettings { certificate: Some(c), private_key: Some(k), ..TlsSettings::default() };
    let (server, sh) = start(&["tls:127.0.0.1:0"], config(server_tls)).await;
    let client_tls = TlsSettings { ca_file: Some(pki.ca_file.clone()), ..TlsSettings::default() };
    let (client, _) = start(&["udp:127.0.0.1:0"], config(client_tls)).await;
    let remote = addr(&server, Transport::Tls);
    let target = Target { transport: Transport::Tls, remote, conn: None };
    // Without a name, 127.0.0.1 is checked against the certificate: refused.
    client.send(&target, Bytes::from(request("OPTIONS", 1, true))).unwrap();
    assert!(wait_until(WAIT, || stats(&client, Transport::Tls).handshake_failures(HandshakeFailure::Tls) == 1).await);
    assert!(wait_until(WAIT, || client.conn_count() == 0).await);
    assert_eq!(sh.count(), 0);
    // A wrong name is refused too; the right one is accepted.
    client.set_server_name(remote, "other.example.test");
    client.send(&target, Bytes::from(request("OPTIONS", 2, true))).unwrap();
    assert!(wait_until(WAIT, || stats(&client, Transport::Tls).handshake_failures(HandshakeFailure::Tls) == 2).await);
    client.set_server_name(remote, "sip.example.test");
    client.send(&target, Bytes::from(request("OPTIONS", 3, true))).unwrap();
    assert!(wait_until(WAIT, || sh.count() == 1).await);
    assert_eq!(stats(&client, Transport::Tls).connections_opened, 1);
}

#[tokio::test]
async fn reload_serves_the_new_certificate_and_keeps_open_connections() {
    let pki = Pki::new("a");
    let settings = pki.server_settings();
    let (cert_path, key_path) = (settings.certificate.clone().unwrap(), settings.private_key.clone().unwrap());
    let (t, _) = start(&["tls:127.0.0.1:0"], config(settings)).await;
    let a = addr(&t, Transport::Tls);
    let cc = client_config(&pki.ca_file, None);
    let mut old = tls_connect(a, cc.clone()).await.unwrap();
    let old_cert = old.get_ref().1.peer_certificates().unwrap()[0].clone();
    // A bad file on disk: the reload fails and names it; the old certificate stays.
    std::fs::write(&key_path, "not a key").unwrap();
    let e = t.reload_tls().unwrap_err();
    assert!(e.contains("server.key") && e.contains("no PEM private key"), "{e}");
    let mut again = tls_connect(a, cc.clone()).await.unwrap();
    assert_eq!(again.get_ref().1.peer_certificates().unwrap()[0], old_cert);
    again.write_all(&request("OPTIONS", 9, true)).await.unwrap();
    read_until(&mut again, b"Call-ID: c9@t").await;
    // A new certificate swapped in.
    let (c2, k2) = pki.issue("server2", &["127.0.0.1"], false);
    std::fs::copy(&c2, &cert_path).unwrap();
    std::fs::copy(&k2, &key_path).unwrap();
    t.reload_tls().unwrap();
    let mut new = tls_connect(a, cc).await.unwrap();
    let new_cert = new.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_ne!(new_cert, old_cert);
    assert_eq!(new_cert.as_ref(), &rustls::pki_types::CertificateDer::from_pem_file(&c2).unwrap()[..]);
    new.write_all(&request("OPTIONS", 1, true)).await.unwrap();
    read_until(&mut new, b"Call-ID: c1@t").await;
    // The connection from before the reload still works.
    old.write_all(&request("OPTIONS", 2, true)).await.unwrap();
    read_until(&mut old, b"Call-ID: c2@t").await;
}

#[tokio::test]
async fn required_client_certificates_are_enforced() {
    let pki = Pki::new("server");
    let clients = Pki::new("clients");
    let settings = TlsSettings {
        verify_client: VerifyClient::Required,
        client_ca_file: Some(clients.ca_file.clone()),
        ..pki.server_settings()
    };
    let (t, h) = start(&["tls:127.0.0.1:0"], config(settings)).await;
    let a = addr(&t, Transport::Tls);
    // No certificate: refused (TLS 1.3 reports it on the first read).
    let refused = async {
        let mut c = tls_connect(a, client_config(&pki.ca_file, None)).await?;
        c.write_all(&request("OPTIONS", 1, true)).await?;
        let mut buf = [0u8; 64];
        match c.read(&mut buf).await? {
            0 => Err(std::io::Error::other("closed")),
            _ => Ok(()),
        }
    };
    assert!(tokio::time::timeout(WAIT, refused).await.unwrap().is_err());
    // A certificate from another CA: refused too.
    let (oc, ok) = pki.issue("stranger", &["stranger"], true);
    let refused = async {
        let mut c = tls_connect(a, client_config(&pki.ca_file, Some((&oc, &ok)))).await?;
        c.write_all(&request("OPTIONS", 2, true)).await?;
        let mut buf = [0u8; 64];
        match c.read(&mut buf).await? {
            0 => Err(std::io::Error::other("closed")),
            _ => Ok(()),
        }
    };
    assert!(tokio::time::timeout(WAIT, refused).await.unwrap().is_err());
    assert!(wait_until(WAIT, || stats(&t, Transport::Tls).handshake_failures(HandshakeFailure::Tls) == 2).await);
    assert_eq!(h.count(), 0);
    // Signed by the client CA: served.
    let (cc, ck) = clients.issue("peer", &["peer.example.test"], true);
    let mut c = tls_connect(a, client_config(&pki.ca_file, Some((&cc, &ck)))).await.unwrap();
    c.write_all(&request("OPTIONS", 3, true)).await.unwrap();
    read_until(&mut c, b"Call-ID: c3@t").await;
}

#[tokio::test]
async fn tls_listeners_need_a_certificate() {
    let spec: sip_transport::ListenSpec = "tls:127.0.0.1:0".parse().unwrap();
    let e = sip_transport::Transports::bind(&[spec], TransportConfig::default()).await.err().unwrap();
    assert!(e.to_string().contains("tls:127.0.0.1:0") && e.to_string().contains("certificate"), "{e}");
    let spec: sip_transport::ListenSpec = "wss:127.0.0.1:0".parse().unwrap();
    let e = sip_transport::Transports::bind(&[spec], TransportConfig::default()).await.err().unwrap();
    assert!(e.to_string().contains("wss:127.0.0.1:0"), "{e}");
}

#[tokio::test]
async fn optional_client_certificates_admit_anonymous_clients_but_check_presented_ones() {
    let pki = Pki::new("server");
    let clients = Pki::new("clients");
    let settings = TlsSettings {
        verify_client: VerifyClient::Optional,
        client_ca_file: Some(clients.ca_file.clone()),
        ..pki.server_settings()
    };
    let (t, _) = start(&["tls:127.0.0.1:0"], config(settings)).await;
    let a = addr(&t, Transport::Tls);
    let mut anon = tls_connect(a, client_config(&pki.ca_file, None)).await.unwrap();
    anon.write_all(&request("OPTIONS", 1, true)).await.unwrap();
    read_until(&mut anon, b"Call-ID: c1@t").await;
    let (cc, ck) = clients.issue("peer", &["peer.example.test"], true);
    let mut peer = tls_connect(a, client_config(&pki.ca_file, Some((&cc, &ck)))).await.unwrap();
    peer.write_all(&request("OPTIONS", 2, true)).await.unwrap();
    read_until(&mut peer, b"Call-ID: c2@t").await;
    // A certificate from a CA we do not trust is refused even though one is optional.
    let (oc, ok) = pki.issue("stranger", &["stranger"], true);
    let refused = async {
        let mut c = tls_connect(a, client_config(&pki.ca_file, Some((&oc, &ok)))).await?;
        c.write_all(&request("OPTIONS", 3, true)).await?;
        let mut buf = [0u8; 64];
        match c.read(&mut buf).await? {
            0 => Err(std::io::Error::other("closed")),
            _ => Ok(()),
        }
    };
    assert!(tokio::time::timeout(WAIT, refused).await.unwrap().is_err());
    assert!(wait_until(WAIT, || stats(&t, Transport::Tls).handshake_failures(HandshakeFailure::Tls) == 1).await);
}
