//! A scripted SIP phone for the end-to-end tests: sends REGISTERs over UDP
//! or TCP, answers digest challenges (computing the response with the same
//! formulas a real phone uses), and returns the final response.

#![allow(dead_code)]

use super::*;

pub enum Link {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

pub struct Phone {
    pub link: Link,
    pub server: SocketAddr,
    pub user: String,
    pub domain: String,
    pub call_id: String,
    pub cseq: u32,
    pub password: Option<String>,
    /// The last Authorization header sent (to replay it on purpose).
    pub last_auth: Option<String>,
    pub nc: u32,
    /// Requests that arrived while waiting for a response (UDP), oldest first.
    pub pending: std::collections::VecDeque<(String, SocketAddr)>,
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

impl Phone {
    pub fn udp(server: SocketAddr, user: &str, domain: &str) -> Phone {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Phone::new(Link::Udp(sock), server, user, domain)
    }
    pub fn tcp(server: SocketAddr, user: &str, domain: &str) -> Phone {
        let s = TcpStream::connect(server).unwrap();
        Phone::new(Link::Tcp(s), server, user, domain)
    }
    fn new(link: Link, server: SocketAddr, user: &str, domain: &str) -> Phone {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Phone {
            link,
            server,
            user: user.into(),
            domain: domain.into(),
            call_id: format!("phone-{}-{n}@test", std::process::id()),
            cseq: 0,
            password: None,
            last_auth: None,
            nc: 0,
            pending: Default::default(),
        }
    }
    /// The socket of a UDP phone (one made by [`Phone::udp`]).
    pub fn udp_socket(&self) -> &UdpSocket {
        match &self.link {
            Link::Udp(s) => s,
            Link::Tcp(_) => panic!("{} is a TCP phone; this step needs a UDP one", self.user),
        }
    }

    pub fn local(&self) -> SocketAddr {
        match &self.link {
            Link::Udp(s) => s.local_addr().unwrap(),
            Link::Tcp(s) => s.local_addr().unwrap(),
        }
    }
    fn transport(&self) -> &'static str {
        match self.link {
            Link::Udp(_) => "UDP",
            Link::Tcp(_) => "TCP",
        }
    }

    /// Builds a REGISTER with the given Contact values and extra header lines.
    pub fn build(&mut self, contacts: &[&str], extra: &[&str], auth: Option<&str>) -> String {
        self.cseq += 1;
        let local = self.local();
        let mut s = format!(
            "REGISTER sip:{d} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bK-{b}-{n};rport\r\nFrom: <sip:{u}@{d}>;tag=t{n}\r\nTo: <sip:{u}@{d}>\r\nCall-ID: {c}\r\nCSeq: {n} REGISTER\r\nMax-Forwards: 70\r\n",
            d = self.domain,
            t = self.transport(),
            c = self.call_id,
            b = self.call_id.replace('@', "."),
            n = self.cseq,
            u = self.user,
        );
        for c in contacts {
            s += &format!("Contact: {c}\r\n");
        }
        for e in extra {
            s += &format!("{e}\r\n");
        }
        if let Some(a) = auth {
            s += &format!("Authorization: {a}\r\n");
        }
        s += "Content-Length: 0\r\n\r\n";
        s
    }

    /// Sends raw bytes and reads one response.
    pub fn exchange(&mut self, msg: &str) -> String {
        match &mut self.link {
            Link::Udp(sock) => {
                sock.send_to(msg.as_bytes(), self.server).unwrap();
                let mut buf = vec![0u8; 65_536];
                // A request may overtake the response (a woken phone's INVITE): keep it for later.
                loop {
                    let Ok((n, from)) = sock.recv_from(&mut buf) else { return String::new() };
                    let t = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if t.starts_with("SIP/2.0 ") {
                        return t;
                    }
                    self.pending.push_back((t, from));
                }
            }
            Link::Tcp(s) => {
                s.write_all(msg.as_bytes()).unwrap();
                let (got, _) = tcp_read_until(s, Duration::from_secs(3), |b| {
                    let t = String::from_utf8_lossy(b);
                    t.find("\r\n\r\n").is_some_and(|end| {
                        let cl = t[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        t.len() >= end + 4 + cl
                    })
                });
                String::from_utf8_lossy(&got).into_owned()
            }
        }
    }

    /// The next request for this phone (UDP): one that overtook a response, or the next datagram.
    pub fn next_request(&mut self, wait: Duration) -> Option<(String, SocketAddr)> {
        if let Some(r) = self.pending.pop_front() {
            return Some(r);
        }
        let Link::Udp(sock) = &self.link else { return None };
        sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 65_536];
        let r = sock.recv_from(&mut buf).ok().map(|(n, from)| (String::from_utf8_lossy(&buf[..n]).into_owned(), from));
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        r
    }

    /// REGISTERs (answering one 401 when a password is set); returns the final response.
    pub fn register(&mut self, contacts: &[&str], extra: &[&str]) -> String {
        let msg = self.build(contacts, extra, None);
        let resp = self.exchange(&msg);
        if status_of(resp.as_bytes()) != 401 || self.password.is_none() {
            return resp;
        }
        let auth = self.answer(&resp, "REGISTER");
        let msg = self.build(contacts, extra, Some(&auth));
        self.exchange(&msg)
    }

    /// The Authorization value answering the SHA-256 challenge of `resp`.
    pub fn answer(&mut self, resp: &str, method: &str) -> String {
        let chal = resp
            .lines()
            .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
            .find(|l| l.contains("algorithm=SHA-256"))
            .expect("a SHA-256 challenge");
        let get = |k: &str| {
            let i = chal.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
            chal[i..chal[i..].find('"').unwrap() + i].to_string()
        };
        let (realm, nonce, opaque) = (get("realm"), get("nonce"), get("opaque"));
        let alg = sip_auth::Algorithm::Sha256;
        let ha1 = sip_auth::ha1(alg, &self.user, &realm, self.password.as_deref().unwrap());
        let uri = format!("sip:{}", self.domain);
        self.nc += 1;
        let cnonce = format!("cn{}", self.nc);
        let qop = sip_auth::Qop { nc: self.nc, cnonce: &cnonce, qop: "auth" };
        let response = sip_auth::response(alg, &ha1, method.as_bytes(), &uri, &nonce, Some(qop));
        let a = format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=SHA-256, cnonce=\"{cnonce}\", opaque=\"{opaque}\", qop=auth, nc={:08x}",
            self.user, self.nc
        );
        self.last_auth = Some(a.clone());
        a
    }
}

/// The Contact header values of a response.
pub fn contacts_of(resp: &str) -> Vec<String> {
    resp.lines().filter_map(|l| l.strip_prefix("Contact: ")).map(str::to_string).collect()
}

/// One header value of a response.
pub fn header_of<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")))
}
