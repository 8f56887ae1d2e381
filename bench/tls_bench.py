"""The `tls` scenario of bench/bench.py: REGISTER over TLS against sipwake's
`tls:` listener and Kamailio's tls module, beside UDP, in the same run.

Per server (fresh start each, both listening on UDP and TLS, auth off, plain
Contacts, one certificate and key for both from a throw-away CA made here with
openssl):

  udp        N phones (`--tls-phones`), one UDP socket each, sending REGISTER
             refreshes (same Call-ID, next CSeq) at each of `--tls-rates`
             (aggregate REGISTER/s); `sip-probe phones --transport udp`.
  tls-reuse  the same with one persistent TLS connection per phone;
             `sip-probe phones --transport tls`.
  tls-new    a new TLS connection per REGISTER at each of `--tls-hs-rates`:
             TCP connect + full TLS handshake (no resumption) + one REGISTER
             of a new AoR + close; `sip-probe handshakes`.

The phones connect and register before the measurement (not measured); the
server's CPU is read between the probe's `ready` line and its result line, so
it covers the refreshes (or the connections) only. Each sweep stops at the
first rate not sustained (errors >= 0.1% or < 90% of the offered rate).
"""

import json
import os
import socket
import subprocess
import time

TLS_CFG = """# Kamailio tls module configuration written by bench/tls_bench.py.
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = {key}
certificate = {cert}
"""


def add_arguments(ap):
    ap.add_argument("--tls-phones", type=int, default=1000,
                    help="tls: phones (persistent TLS connections, or UDP sockets) refreshing their registrations")
    ap.add_argument("--tls-rates", default="1000,2000,5000,10000",
                    help="tls: aggregate REGISTER/s of the phones (udp and tls-reuse rows), comma-separated")
    ap.add_argument("--tls-hs-rates", default="100,200,500,1000",
                    help="tls: new TLS connections/s (tls-new rows), comma-separated")
    ap.add_argument("--tls-key", choices=["ec", "rsa"], default="ec",
                    help="tls: server key, ECDSA P-256 (default) or RSA 2048")
    ap.add_argument("--tls-kx", default=None,
                    help="tls: the probe offers only this key-exchange group (rustls name, e.g. X25519); "
                         "default: rustls' default groups")
    ap.add_argument("--tls-rows", default="udp,tls-reuse,tls-new",
                    help="tls: which rows to run, comma-separated (udp, tls-reuse, tls-new)")


def make_certs(workdir, key_type):
    """A throw-away CA and a server certificate for IP 127.0.0.1 signed by it
    (openssl). Returns (ca.pem, cert.pem, key.pem)."""
    d = os.path.join(workdir, "tls")
    os.makedirs(d, exist_ok=True)
    p = lambda n: os.path.join(d, n)  # noqa: E731
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_type == "ec" else ["-newkey", "rsa:2048"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *newkey, "-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2",
        "-subj", "/CN=sipwake bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *newkey, "-nodes", "-keyout", p("key.pem"), "-out", p("server.csr"), "-subj", "/CN=127.0.0.1")
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial",
        "-out", p("cert.pem"), "-days", "2", "-extfile", p("ext.cnf"))
    return p("ca.pem"), p("cert.pem"), p("key.pem")


def start_probe(b, mode, port, rate, secs, args, ca, extra=()):
    cmd = [b.PROBE_BIN, mode, "--target", f"127.0.0.1:{port}",
           "--rate", str(rate), "--secs", str(secs), "--domain", b.DOMAIN, *map(str, extra)]
    if ca:
        cmd += ["--ca", ca]
        if args.tls_kx:
            cmd += ["--kx", args.tls_kx]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def measure(b, server, row, port, rate, args, ca):
    """One probe run against `server`; the server's CPU between the probe's
    `ready` and its result line."""
    if row == "tls-new":
        probe = start_probe(b, "handshakes", port, rate, args.secs, args, ca, ["--user-prefix", f"hs{rate}-"])
    else:
        transport = "udp" if row == "udp" else "tls"
        probe = start_probe(b, "phones", port, rate, args.secs, args, ca if transport == "tls" else None,
                            ["--transport", transport, "--phones", args.tls_phones,
                             "--user-prefix", f"{transport}{rate}-"])
    ready = probe.stdout.readline()
    c0, m0, t0, p0 = b.cpu_seconds(server.pid), b.machine_cpu(), time.time(), b.cpu_seconds(probe.pid)
    line = probe.stdout.readline()
    c1, m1, t1, p1 = b.cpu_seconds(server.pid), b.machine_cpu(), time.time(), b.cpu_seconds(probe.pid)
    try:
        probe.wait(60)
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.wait()
    try:
        if not ready.startswith("ready"):
            raise ValueError(ready)
        r = json.loads(line)
    except ValueError:
        print(f"# {server.name} {row} {rate}/s: the probe failed (exit {probe.returncode}): {ready.strip()!r} "
              f"{line.strip()!r}", flush=True)
        return None
    cpu = c1 - c0
    other = (m1["busy"] - m0["busy"]) - cpu - (p1 - p0) - (m1["self"] - m0["self"])
    r.update({
        "server": server.name, "row": row, "rate": rate,
        "fail_pct": 100.0 * r["errors"] / r["sent"] if r["sent"] else 100.0,
        "cpu_us": 1e6 * cpu / r["answered"] if r["answered"] else None,
        "cpu_pct": 100.0 * cpu / (t1 - t0) if t1 > t0 else None,
        "probe_pct": 100.0 * (p1 - p0) / (t1 - t0) if t1 > t0 else None,
        "other_pct": max(0.0, 100.0 * other / ((t1 - t0) * os.cpu_count())),
    })
    return r


HEADER = (f"{'server':<8} {'row':<9} {'rate/s':>7} {'done/s':>7} {'err%':>6} {'p50µs':>6} {'p99µs':>6} "
          f"{'hs50µs':>6} {'hs99µs':>6} {'cpuµs/reg':>9} {'srv%':>5} {'prb%':>5} {'oth%':>5}  tls")


def print_row(b, r):
    tls = f"{r.get('tls_version', '')} {r.get('tls_suite', '')} {r.get('tls_group', '')}".strip()
    print(f"{r['server']:<8} {r['row']:<9} {r['rate']:>7} {r['per_sec']:>7.0f} {r['fail_pct']:>6.2f} "
          f"{r['lat_p50_us']:>6} {r['lat_p99_us']:>6} {b.fmt(r.get('hs_p50_us'), '>6')} "
          f"{b.fmt(r.get('hs_p99_us'), '>6')} {b.fmt(r['cpu_us'], '>9.1f')} {b.fmt(r['cpu_pct'], '>5.0f')} "
          f"{b.fmt(r['probe_pct'], '>5.0f')} {r['other_pct']:>5.1f}  {tls}", flush=True)
    if r.get("first_error"):
        print(f"#   first error: {r['first_error']}", flush=True)


def sustained(r):
    return r is not None and r["fail_pct"] < 0.1 and r["per_sec"] >= 0.9 * r["rate"]


def scenario_tls(args, workdir, b):
    """See the module doc. `b` is bench/bench.py (servers, CPU readings, `quiet`)."""
    rates = [int(x) for x in args.tls_rates.split(",")]
    hs_rates = [int(x) for x in args.tls_hs_rates.split(",")]
    rows = [x.strip() for x in args.tls_rows.split(",") if x.strip()]
    unknown = [r for r in rows if r not in ("udp", "tls-reuse", "tls-new")]
    if unknown:
        raise SystemExit(f"--tls-rows: unknown {', '.join(unknown)}; known: udp, tls-reuse, tls-new")
    ca, cert, key = make_certs(workdir, args.tls_key)
    config = ("[auth]\nenabled = false\n\n[management]\nenabled = true\nlisten = \"127.0.0.1:0\"\n\n"
              f"[tls]\ncertificate = \"{cert}\"\nprivate_key = \"{key}\"\n")
    tls_cfg = os.path.join(workdir, "tls", "kamailio-tls.cfg")
    with open(tls_cfg, "w") as f:
        f.write(TLS_CFG.format(key=key, cert=cert))

    def make_sipwake():
        port = b.free_port(socket.SOCK_STREAM)
        s = b.Sipwake(workdir, config, listen=[f"tls:127.0.0.1:{port}"])
        s.tls_port = port
        return s

    def make_kamailio():
        port = b.free_port(socket.SOCK_STREAM)
        k = b.Kamailio(workdir, tls=(port, tls_cfg))
        k.tls_port = port
        return k

    makers = [("sipwake", make_sipwake)] + ([] if args.no_kamailio else [("kamailio", make_kamailio)])
    print(f"\n== TLS: {args.tls_phones} phones refreshing REGISTERs over UDP and over persistent TLS "
          f"connections; new TLS connections (handshake + REGISTER + close); auth off; server key "
          f"{args.tls_key}; {args.secs} s per rate ==", flush=True)
    print("# cpuµs/reg: server CPU per answered REGISTER (tls-new: per connection incl. handshake, REGISTER, close); "
          "srv%/prb%: server/probe CPU in % of one core; hs: connect -> TLS established", flush=True)
    print(HEADER, flush=True)
    results = {}
    # Row by row, both servers one after the other, so that each pair of rows shares the machine's state.
    for row in rows:
        for name, make in makers:
            b.quiet(args)
            server = make()
            try:
                out = results.setdefault((name, row), [])
                for rate in (hs_rates if row == "tls-new" else rates):
                    port = server.port if row == "udp" else server.tls_port
                    r = measure(b, server, row, port, rate, args, None if row == "udp" else ca)
                    if r is None:
                        break
                    print_row(b, r)
                    out.append(r)
                    if not sustained(r):
                        break
            finally:
                server.stop()
    summary(b, results, makers, rows)
    return None


def summary(b, results, makers, rows):
    names = [n for n, _ in makers]
    print("\n== TLS: highest sustained rate per row ==")
    print(HEADER)
    for name in names:
        for row in rows:
            good = [r for r in results.get((name, row), []) if sustained(r)]
            if good:
                print_row(b, max(good, key=lambda r: r["per_sec"]))
            else:
                print(f"{name:<8} {row:<9} no sustained rate")
    print("\n== TLS: server CPU µs per REGISTER at each offered rate (tls-new: per connection) ==")
    print(f"{'row':<9} {'rate/s':>7} | " + " | ".join(f"{n + ' cpuµs':>14} {'p50µs':>6}" for n in names)
          + (" | sw/kam" if len(names) == 2 else ""))
    for row in rows:
        by = {n: {r["rate"]: r for r in results.get((n, row), [])} for n in names}
        for rate in sorted({r for n in names for r in by[n]}):
            cells = []
            for n in names:
                r = by[n].get(rate)
                cells.append(f"{b.fmt(r and r['cpu_us'], '>14.1f')} {b.fmt(r and r['lat_p50_us'], '>6')}")
            x = ""
            if len(names) == 2:
                a, k = by[names[0]].get(rate), by[names[1]].get(rate)
                x = f" | {a['cpu_us'] / k['cpu_us']:.2f}x" if a and k and a["cpu_us"] and k["cpu_us"] else " | -"
            print(f"{row:<9} {rate:>7} | " + " | ".join(cells) + x)
    print("\n== TLS: cost per server at the lowest offered rate of each row (server CPU µs) ==")
    print(f"{'server':<8} {'udp/reg':>8} {'tls/reg':>8} {'new conn':>9} | {'tls-udp':>8} {'new-tls':>8} {'tls/udp':>8}")
    for name in names:
        first = {row: (results.get((name, row)) or [None])[0] for row in ("udp", "tls-reuse", "tls-new")}
        cost = {row: r["cpu_us"] if r else None for row, r in first.items()}
        u, t, n = cost["udp"], cost["tls-reuse"], cost["tls-new"]
        diff = lambda a, c: a - c if a is not None and c is not None else None  # noqa: E731
        print(f"{name:<8} {b.fmt(u, '>8.1f')} {b.fmt(t, '>8.1f')} {b.fmt(n, '>9.1f')} | {b.fmt(diff(t, u), '>8.1f')} "
              f"{b.fmt(diff(n, t), '>8.1f')} {b.fmt(t / u if t and u else None, '>7.2f')}x")
    print("# tls-udp: what TLS records add per REGISTER on a connection kept open; new-tls: what a new connection "
          "(TCP, full handshake, close) adds to a REGISTER", flush=True)
