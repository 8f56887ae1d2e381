//! `sip-probe udp-floor`: the physical floor of a UDP SIP server, for the
//! benchmark to run beside sipwake and Kamailio at the same rates.
//!
//! One thread blocked in `recv_from` on one socket with sipwake's socket
//! options (4 MiB receive and send buffers, a 250 ms read timeout), each
//! datagram copied out of the receive buffer into its own allocation (as
//! sipwake does), its request line replaced by `SIP/2.0 200 OK` and the rest
//! sent back unchanged with one `send_to`: every header the client needs to
//! match the answer (Via, From, To, Call-ID, CSeq) is echoed. No parsing, no
//! state: what is left of a server's CPU per request once the SIP work is
//! taken away. Prints `listening PORT` on stdout once bound.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Duration;

const BUFFER: libc::c_int = 4 << 20;

fn set_buffers(sock: &UdpSocket) {
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: a valid socket fd and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&BUFFER as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

pub fn run(args: &[String]) {
    let listen =
        args.iter().position(|a| a == "--listen").and_then(|i| args.get(i + 1)).map_or("127.0.0.1:0", String::as_str);
    let sock = UdpSocket::bind(listen).expect("bind the floor's address");
    set_buffers(&sock);
    sock.set_read_timeout(Some(Duration::from_millis(250))).expect("read timeout");
    println!("listening {}", sock.local_addr().expect("local").port());
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        let data = buf[..n].to_vec();
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else { continue };
        if data.starts_with(b"SIP/2.0 ") {
            continue; // a response (e.g. an ACK-less 200 retransmission): nothing to answer
        }
        let mut out = Vec::with_capacity(n + 16);
        out.extend_from_slice(b"SIP/2.0 200 OK");
        out.extend_from_slice(&data[eol..]);
        let _ = sock.send_to(&out, from);
    }
}
