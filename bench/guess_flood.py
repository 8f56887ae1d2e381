# Used by bench/guess_flood.sh (issue 14): an attacker answering every 401 with a wrong digest, and a real user.
# Password-guessing flood vs sipwake: attacker answers each 401 with a wrong digest as fast as it can
# (from 127.0.0.51); a real user (127.0.0.52) registers once a second; prints what each got.
import socket, sys, time, hashlib, re, threading, os, statistics
port = int(sys.argv[1]); secs = float(sys.argv[2])
srv = ("127.0.0.1", port)
def reg(user, ip, lport, cseq, callid, auth=None):
    m = (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{lport};branch=z9hG4bK{os.urandom(6).hex()};rport\r\n"
         f"From: <sip:{user}@127.0.0.1>;tag={callid}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {callid}\r\nCSeq: {cseq} REGISTER\r\n"
         f"Contact: <sip:{user}@{ip}:{lport}>\r\nExpires: 600\r\nMax-Forwards: 70\r\n")
    if auth: m += f"Authorization: {auth}\r\n"
    return (m + "Content-Length: 0\r\n\r\n").encode()
def digest(user, pw, chal, nc):
    realm = re.search(r'realm="([^"]+)"', chal).group(1); nonce = re.search(r'nonce="([^"]+)"', chal).group(1)
    opaque = re.search(r'opaque="([^"]+)"', chal); opaque = opaque.group(1) if opaque else ""
    h = lambda s: hashlib.md5(s.encode()).hexdigest()
    ha1 = h(f"{user}:{realm}:{pw}"); ha2 = h("REGISTER:sip:127.0.0.1"); cn = "abc"
    r = h(f"{ha1}:{nonce}:{nc:08x}:{cn}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="sip:127.0.0.1", response="{r}", '
            f'algorithm=MD5, cnonce="{cn}", opaque="{opaque}", qop=auth, nc={nc:08x}')
def md5chal(resp):
    return [l for l in resp.split("\r\n") if l.startswith("WWW-Authenticate:") and "MD5" in l][0]
stop = time.time() + secs
att = {"sent": 0, "answered": 0}
def attacker():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.51", 0)); s.settimeout(0.5)
    lp = s.getsockname()[1]; cseq = 1; nc = 1; chal = None
    while time.time() < stop:
        try:
            if chal is None:
                s.sendto(reg("alice", "127.0.0.51", lp, cseq, "att"), srv); att["sent"] += 1
                r = s.recv(65535).decode(); att["answered"] += 1; chal = md5chal(r)
            cseq += 1; nc += 1
            s.sendto(reg("alice", "127.0.0.51", lp, cseq, "att", digest("alice", "guess%d" % nc, chal, nc)), srv); att["sent"] += 1
            r = s.recv(65535).decode(); att["answered"] += 1
            if "stale=true" in r: chal = md5chal(r)
        except socket.timeout:
            pass
lat = []; codes = []
def user():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.52", 0)); s.settimeout(2)
    lp = s.getsockname()[1]; cseq = 1; nc = 0
    while time.time() < stop:
        t0 = time.perf_counter()
        try:
            s.sendto(reg("bob", "127.0.0.52", lp, cseq, "user"), srv); r = s.recv(65535).decode(); cseq += 1; nc += 1
            s.sendto(reg("bob", "127.0.0.52", lp, cseq, "user", digest("bob", "pw-bob", md5chal(r), nc)), srv)
            r = s.recv(65535).decode(); cseq += 1
            lat.append((time.perf_counter() - t0) * 1000); codes.append(int(r.split(" ")[1]))
        except socket.timeout:
            codes.append(0)
        time.sleep(1)
threads = [threading.Thread(target=attacker), threading.Thread(target=user)]
[t.start() for t in threads]; [t.join() for t in threads]
print(f"attacker: sent {att['sent']}, answered {att['answered']}")
print(f"user: {len(codes)} registrations, codes {sorted(set(codes))}, p50 {statistics.median(lat):.2f} ms, max {max(lat):.2f} ms")
