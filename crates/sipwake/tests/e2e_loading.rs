//! Start-up with a large stored location, through the real binary: the
//! server answers OPTIONS while it still loads the location, holds a
//! REGISTER and a MESSAGE for a stored user until the location is whole
//! (never a 404/480 from half of it), then answers them from the whole
//! location; the management API waits for the load too.

use location_store::{Change, SqliteOptions, SqliteStore, Store, StoredBinding};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bindings stored before the start: enough that loading them takes far
/// longer than answering an OPTIONS.
const ROWS: usize = 150_000;

fn row(i: usize, contact: String, now_ms: u64) -> StoredBinding {
    StoredBinding {
        id: format!("{:016x}", 0x1000_0000u64 + i as u64),
        aor: format!("u{i}@127.0.0.1"),
        contact,
        q: None,
        expires_at_ms: now_ms + 3_600_000,
        call_id: format!("c{i}@test"),
        cseq: 1,
        instance: None,
        reg_id: None,
        path: Vec::new(),
        transport: "udp".into(),
        remote: "127.0.0.1:9".into(),
        local: "127.0.0.1:5060".into(),
        user_agent: None,
        registered_at_ms: now_ms,
        extra: None,
        push_state: None,
        node: None,
    }
}

/// Stores `ROWS` bindings; user `u0`'s contact is `phone`.
fn populate(data: &std::path::Path, phone: SocketAddr) {
    std::fs::create_dir_all(data).unwrap();
    let store = SqliteStore::open(&data.join("sipwake.db"), SqliteOptions::default()).unwrap();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut batch = Vec::new();
    for i in 0..ROWS {
        let contact = if i == 0 { format!("sip:u0@{phone}") } else { format!("sip:u{i}@127.0.0.1:9;transport=udp") };
        batch.push(Change::Upsert(row(i, contact, now_ms)));
        if batch.len() == 5000 {
            store.submit(std::mem::take(&mut batch), Box::new(|r| r.unwrap()));
        }
    }
    store.submit(batch, Box::new(|r| r.unwrap()));
    store.flush();
}

fn request(method: &str, ruri: &str, to: &str, from_port: u16, n: u32, extra: &str) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK-load-{method}-{n}\r\nFrom: <sip:tester@127.0.0.1>;tag=t{n}\r\nTo: <{to}>\r\nCall-ID: load-{method}-{n}@test\r\nCSeq: {n} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn status(text: &str) -> Option<u16> {
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

#[test]
fn options_are_answered_while_the_location_loads_and_what_needs_it_waits_for_all_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let t = Instant::now();
    populate(&dir.path().join("data"), phone.local_addr().unwrap());
    eprintln!("stored {ROWS} bindings in {:?}", t.elapsed());

    let log = dir.path().join("sipwake.log");
    let config = dir.path().join("sipwake.toml");
    std::fs::write(&config, "[auth]\nenabled = false\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .arg("--config")
        .arg(&config)
        .args(["--listen", "udp:127.0.0.1:0", "--management", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), line));
        }
    });
    let mut udp = None;
    let mut loaded_at = None;
    while udp.is_none() {
        let (at, line) = rx.recv_timeout(Duration::from_secs(20)).expect("sipwake did not start");
        if let Some(a) = line.strip_prefix("sipwake listening on udp:") {
            udp = Some(a.trim().parse::<SocketAddr>().unwrap());
        }
        if line.starts_with("sipwake location loaded") {
            loaded_at = Some(at);
        }
    }
    let server = udp.unwrap();
    assert!(loaded_at.is_none(), "loaded before it listened: make ROWS larger");
    // u0's phone answers 200 to what reaches it, and says what it got.
    let (got_tx, got_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = phone.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let mut resp = String::from("SIP/2.0 200 OK\r\n");
            for l in text.split("\r\n").skip(1) {
                let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
                if ["via", "from", "to", "call-id", "cseq"].contains(&name.as_str()) {
                    resp += &format!("{l}\r\n");
                }
            }
            resp += "Content-Length: 0\r\n\r\n";
            let _ = phone.send_to(resp.as_bytes(), from);
            let _ = got_tx.send(text);
        }
    });

    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    caller.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let cport = caller.local_addr().unwrap().port();
    let mut buf = vec![0u8; 65536];

    // OPTIONS to the server: answered while the location loads.
    caller.send_to(request("OPTIONS", "sip:127.0.0.1", "sip:127.0.0.1", cport, 1, "").as_bytes(), server).unwrap();
    let (n, _) = caller.recv_from(&mut buf).expect("no answer to OPTIONS while loading");
    let options_at = Instant::now();
    assert_eq!(status(std::str::from_utf8(&buf[..n]).unwrap()), Some(200));

    // A MESSAGE for u0 (stored) and a REGISTER of a new user: held, not answered from half a location.
    let msg = request("MESSAGE", "sip:u0@127.0.0.1", "sip:u0@127.0.0.1", cport, 2, "");
    caller.send_to(msg.as_bytes(), server).unwrap();
    let reg = request(
        "REGISTER",
        "sip:127.0.0.1",
        "sip:newbie@127.0.0.1",
        cport,
        3,
        &format!("Contact: <sip:newbie@127.0.0.1:{cport}>\r\nExpires: 600\r\n"),
    );
    caller.send_to(reg.as_bytes(), server).unwrap();
    let mut answers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while answers.len() < 2 && Instant::now() < deadline {
        while let Ok((at, line)) = rx.try_recv() {
            if line.starts_with("sipwake location loaded") {
                loaded_at = Some(at);
            }
        }
        if let Ok((n, _)) = caller.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if status(&text).is_some_and(|s| s >= 200) {
                answers.push((Instant::now(), text));
            }
        }
    }
    let loaded_at = loaded_at.unwrap_or_else(|| {
        let (at, line) = rx.recv_timeout(Duration::from_secs(30)).expect("never loaded");
        assert!(line.starts_with("sipwake location loaded"), "{line}");
        at
    });
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    // The stdout line comes from the main task a moment after the gate went
    // down (and the held answers left): a margin of 300 ms either way, for
    // a load of about 1.5 s in a debug build.
    let margin = Duration::from_millis(300);
    assert!(options_at + margin < loaded_at, "OPTIONS answered only after the load ({:?})", loaded_at - started);
    assert_eq!(answers.len(), 2, "{answers:?}\n{log_text}");
    for (at, text) in &answers {
        assert!(*at + margin >= loaded_at, "answered while loading: {text}");
        assert_eq!(status(text), Some(200), "{text}\n{log_text}");
    }
    // The MESSAGE reached u0's stored contact.
    let got = got_rx.recv_timeout(Duration::from_secs(5)).expect("the MESSAGE did not reach the stored contact");
    assert!(got.starts_with("MESSAGE sip:u0@"), "{got}");
    eprintln!(
        "OPTIONS answered {:?} after start; location loaded {:?} after start",
        options_at - started,
        loaded_at - started
    );
    assert!(
        log_text.lines().any(|l| l.contains("bindings restored from the store") && l.contains(&ROWS.to_string())),
        "{log_text}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
