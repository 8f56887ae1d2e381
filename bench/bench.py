#!/usr/bin/env python3
"""sipwake benchmarks, with Kamailio run by the same script in the same run.

One command (from the repository root):

    bench/run.sh                          # all scenarios
    bench/run.sh options                  # one scenario
    bench/run.sh options --rates 5000,10000,20000 --secs 5
    bench/run.sh register register_auth --rates 2000,5000,10000,20000 --secs 5
    bench/run.sh rss --rss-bindings 100000
    bench/run.sh mid                      # mid_register, mid_throttle, mid_wake
    bench/run.sh tls --tls-rates 2000,5000 --tls-hs-rates 200,500
    bench/run.sh cluster --rates 2000,5000,10000,20000 --secs 5
    bench/run.sh scale --scale-bindings 20000 --scale-rate 8000

Scenarios:
  options        OPTIONS answered 200 (stateless on both servers).
  register       REGISTER of a new AoR per call, auth off -> 200.
  register_auth  REGISTER -> 401 -> REGISTER with digest credentials -> 200,
                 a new AoR per call (subscribers provisioned beforehand).
  calls          call setups through the proxy: INVITE -> 100/180/200 -> ACK,
                 BYE -> 200 (sipp caller and sipp callee, the callee
                 registered beforehand; auth off on sipwake).
  push           RFC 8599 push wake-up, sipwake only: wake latency (REGISTER in ->
                 parked INVITE out), pushes dispatched/s to devices that never
                 wake, REGISTER/s with push Contacts beside plain REGISTER of
                 both servers.
  rss            memory per binding: registers --rss-bindings distinct AoRs at
                 --rss-rate and reads the server's memory before, halfway and after.
  mid_register   sipwake in mid-registrar mode in front of Kamailio, per throttle
                 mode: REGISTER/s of new devices and of refreshes, CPU per
                 REGISTER of sipwake and of Kamailio; Kamailio alone and sipwake
                 in registrar mode as references.
  mid_throttle   upstream REGISTERs per device REGISTER in each throttle mode
                 (devices refreshing a short expiry, compressed time).
  mid_wake       push wake latency through the mid-registrar (INVITE via
                 Kamailio back to sipwake's Contact) beside registrar mode.
  tls            REGISTER refreshes from N phones over UDP and over persistent
                 TLS connections at the same rates, and new TLS connections
                 (handshake + one REGISTER + close) per second; sipwake's tls:
                 listener vs Kamailio's tls module (bench/tls_bench.py).
  cluster        the PostgreSQL cluster (issue 12), on a private PostgreSQL
                 started per sweep (default durability): REGISTER sweep of
                 sipwake SQLite, PostgreSQL 1 node, 2 nodes sharing the load,
                 and Kamailio, CPU split sipwake / PostgreSQL; calls SQLite vs
                 PostgreSQL 1 node (lookup barrier); wake latency with the
                 REGISTER at node B and the call at node A; memory per binding.
  scale          one node at --scale-bindings push bindings (default 1M)
                 registered over UDP at --scale-rate (default 8000/s), sipwake
                 only: VmRSS, SQLite size, idle CPU over 10 s; then SIGTERM and
                 a restart on the same data directory, timed to the first
                 answered OPTIONS, REGISTER (new AoR) and the "bindings
                 restored from the store" log line; VmRSS after it.

For each scenario and each server it drives the server with sipp at
increasing rates and prints, per rate: the calls/s sipp completed (a call
is one OPTIONS, one REGISTER, or the two REGISTERs of an authenticated
registration, counted when its 200 arrives), requests/s, the failure ratio,
sipp's retransmissions, latency percentiles measured by sip-probe (µs
resolution; sipp's own are 1 ms), and the server's CPU per call and per
request (utime+stime of the server and its children, from /proc, divided
by the calls sipp and the probe completed). A rate counts as sustained
when failures stay under 0.1% and sipp reaches 90% of the target. Only
loopback addresses are used. See bench/README.md.
"""

import argparse
import datetime
import http.server
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import tls_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK = os.sysconf("SC_CLK_TCK")
DOMAIN = "127.0.0.1"  # The AoRs' domain: the listener IP, which sipwake serves by default.
PASSWORD = "secret"  # Every benchmark subscriber's password (bench/kamailio.cfg hard-codes it too).
PROBE_RATE = 200  # sip-probe's requests/s during every measurement.
SIPWAKE_BIN = os.path.join(ROOT, "target", "release", "sipwake")  # --sipwake-bin: another build to measure
PROBE_BIN = os.path.join(ROOT, "target", "release", "sip-probe")  # --probe-bin: a sip-probe built elsewhere


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_tree(pid):
    """pid and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            ppid = int(st[st.rfind(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid):
    total = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
            fields = st[st.rfind(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / CLK


def rss_bytes(pid):
    """Sum of PSS over the process tree: pages shared between the processes
    (Kamailio's shared memory) are split between them, so counted once."""
    total = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def vm_rss(pid):
    """VmRSS of one process, bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def machine_cpu():
    """CPU seconds: all CPUs busy ('busy'), and this script with its
    waited-for children, sipp and the probe ('self')."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    t = os.times()
    return {"busy": (sum(v) - v[3] - v[4]) / CLK,
            "self": t.user + t.system + t.children_user + t.children_system}


def disk_ticks(path=None):
    """ms the disk holding `path` (the temporary directory) spent doing I/O (io_ticks)."""
    st = os.stat(path or tempfile.gettempdir()).st_dev
    try:
        with open(f"/sys/dev/block/{os.major(st)}:{os.minor(st)}/stat") as f:
            return int(f.read().split()[9])
    except (OSError, IndexError, ValueError):
        return 0


def machine_busy(secs=0.5):
    """Share of all CPUs busy over `secs` (before a run nothing of ours runs,
    so this is what other processes take)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = sample()
    time.sleep(secs)
    t1, i1 = sample()
    return 100.0 * (1 - (i1 - i0) / max(t1 - t0, 1))


def quiet(args):
    """Waits (up to --wait-idle seconds) until other processes leave the
    CPUs and the disk idle, since the numbers are only comparable on an idle
    machine (sipwake's REGISTER path waits for its database on disk); warns
    when they do not."""
    def sample():
        d0 = disk_ticks()
        busy = machine_busy(1.0)
        return busy, (disk_ticks() - d0) / 10.0
    deadline = time.time() + args.wait_idle
    busy, disk = sample()
    waited = False
    while (busy > 10 or disk > 10) and time.time() < deadline:
        if not waited:
            print(f"# other processes keep {busy:.0f}% of the CPUs and the disk {disk:.0f}% busy; "
                  f"waiting up to {args.wait_idle} s", flush=True)
            waited = True
        time.sleep(2)
        busy, disk = sample()
    if busy > 10 or disk > 10:
        print(f"# warning: other processes kept {busy:.0f}% of the CPUs and the disk {disk:.0f}% busy at the start "
              f"of this sweep; its numbers are not comparable", flush=True)


class Server:
    name = "?"
    proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            tree = proc_tree(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            # Children the main process left behind (Kamailio's, when it was
            # killed rather than stopped): only the ones this run started.
            time.sleep(0.2)
            for p in tree[1:]:
                if self._ours(p):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass

    def _ours(self, pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return self.dir.encode() in f.read()
        except OSError:
            return False

    def bindings(self):
        return None

    def memory(self):
        """{name: bytes} of the memory figures this server offers."""
        return {}


class Sipwake(Server):
    """sipwake with a fresh data directory per start. `config` is TOML text;
    `users` a list of `user@domain password` lines imported (one
    transaction, `sipwake user import`) before the server starts. `listen`:
    more listeners beside UDP (`tls:127.0.0.1:PORT`; TLS needs `[tls]` in
    `config`)."""

    name = "sipwake"

    def __init__(self, workdir, config=None, users=None, listen=()):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sipwake-", dir=workdir)
        self.data = os.path.join(self.dir, "data")
        binary = SIPWAKE_BIN
        if users:
            path = os.path.join(self.dir, "users.txt")
            with open(path, "w") as f:
                f.write("\n".join(users) + "\n")
            subprocess.run([binary, "user", "import", path, "--data-dir", self.data], check=True,
                           stdout=subprocess.DEVNULL)
        args = [binary, "--listen", f"udp:127.0.0.1:{self.port}", "--data-dir", self.data,
                "--management", "127.0.0.1:0"]
        for spec in listen:
            args += ["--listen", spec]
        # One sipp process is one source sending far above [defence]'s per-source
        # limit: raise it out of the way (the guard still runs on every request).
        if "[defence]" not in (config or ""):
            config = (config or "") + "\n[defence]\nrate_limit_requests = 100000000\n"
        if config:
            path = os.path.join(self.dir, "sipwake.toml")
            with open(path, "w") as f:
                f.write(config)
            args += ["--config", path]
        self.args = args
        self.spawn("sipwake.log", "warn")
        self.wait_ready()

    def spawn(self, log, rust_log):
        """Starts the server's command (again: same port, data directory and config), its log (stderr,
        RUST_LOG=`rust_log`, no colours) in `log` in its directory; does not wait for it to be up."""
        self.log = open(os.path.join(self.dir, log), "w")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=dict(os.environ, RUST_LOG=rust_log, NO_COLOR="1"))
        self.pid = self.proc.pid
        self.mgmt = None

    def wait_ready(self):
        """Reads the server's stdout until it prints its management address (it has loaded its bindings)."""
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.stop()
                raise RuntimeError("sipwake did not start; see " + self.log.name)
            m = re.search(r"management on (http://\S+)", line)
            if m:
                self.mgmt = m.group(1)
                break

    def stats(self):
        with urllib.request.urlopen(self.mgmt + "/api/v1/stats", timeout=10) as r:
            return json.load(r)

    def bindings(self):
        try:
            return self.stats()["bindings"]
        except (OSError, ValueError, KeyError):
            return None

    def memory(self):
        out = {"VmRSS": vm_rss(self.pid)}
        db = sum(os.path.getsize(os.path.join(self.data, f)) for f in os.listdir(self.data)
                 if f.startswith("sipwake.db"))
        out["db files on disk"] = db
        return out


class Kamailio(Server):
    """Kamailio with bench/kamailio.cfg; `tls`: (port, tls.cfg path) adds a
    TLS listener and the tls module (BENCH_TLS_CFG in the cfg)."""

    name = "kamailio"

    def __init__(self, workdir, tls=None):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="kamailio-", dir=workdir)
        self.ctl = "unix:" + os.path.join(self.dir, "kamailio_ctl")
        self.log = open(os.path.join(self.dir, "kamailio.log"), "w")
        cfg = os.path.join(ROOT, "bench", "kamailio.cfg")
        self.proc = subprocess.Popen(
            ["kamailio", "-f", cfg, "-DD", "-E", "-x", "tlsf", "-m", "4096", "-M", "64", "-n", "2",
             "-l", f"udp:127.0.0.1:{self.port}", "-Y", self.dir, "-P", os.path.join(self.dir, "kamailio.pid"),
             "-A", f'BENCH_CTL="{self.ctl}"',
             *(["-l", f"tls:127.0.0.1:{tls[0]}", "-A", f'BENCH_TLS_CFG="{tls[1]}"'] if tls else [])],
            stdout=self.log, stderr=self.log)
        self.pid = self.proc.pid
        # Ready when it answers an OPTIONS.
        deadline = time.time() + 20
        while time.time() < deadline:
            if probe_once(self.port):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("kamailio did not start; see " + self.log.name)

    def rpc(self, *cmd):
        r = subprocess.run(["kamcmd", "-s", self.ctl, *cmd], capture_output=True, text=True, timeout=30)
        return r.stdout

    def bindings(self):
        m = re.search(r"usrloc:location_contacts = (\d+)", self.rpc("stats.get_statistics", "usrloc:"))
        return int(m.group(1)) if m else None

    def memory(self):
        out = {"PSS (all processes)": rss_bytes(self.pid)}
        m = re.search(r"real_used: (\d+)", self.rpc("core.shmmem"))
        if m:
            out["shm real_used"] = int(m.group(1))
        return out


class Floor(Server):
    """The physical floor (`sip-probe udp-floor`): a UDP echo with sipwake's
    socket options that answers each request with its own headers under a
    200 status line: receive + copy + send, no SIP work."""

    name = "floor"

    def __init__(self, workdir):
        self.dir = tempfile.mkdtemp(prefix="floor-", dir=workdir)
        self.proc = subprocess.Popen([PROBE_BIN, "udp-floor",
                                      "--listen", "127.0.0.1:0", self.dir], stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        line = self.proc.stdout.readline()
        m = re.match(r"listening (\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"sip-probe udp-floor did not start: {line!r}")
        self.port = int(m.group(1))


def probe_once(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.3)
    lp = s.getsockname()[1]
    msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bKready{time.time_ns()}\r\n"
           f"From: <sip:ready@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: ready{time.time_ns()}\r\n"
           f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    try:
        s.sendto(msg.encode(), ("127.0.0.1", port))
        data, _ = s.recvfrom(65535)
        return data.startswith(b"SIP/2.0 200")
    except OSError:
        return False
    finally:
        s.close()


def user(i):
    return f"u{i:06d}"


class Pool:
    """The AoRs of one server run, handed out in order so that every call
    registers an AoR no call of this run registered before."""

    def __init__(self, first=1):
        self.next = first

    def take(self, n):
        first = self.next
        self.next += n
        return first


def write_inf(path, first, n, auth):
    """sipp injection file: users first..first+n-1 (field0), and for auth the
    credentials keyword (field1; sipp 3.6 does not expand [field0] inside
    [authentication ...])."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(first, first + n):
            u = user(i)
            f.write(f"{u};[authentication username={u} password={PASSWORD}];\n" if auth else f"{u};\n")


def split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def start_sipp(scenario, port, rate, calls, workdir, extra=(), local_port=None, inf=None, timeout=None, limit=None):
    """Starts one sipp process sending `calls` calls of `scenario` at `rate`/s
    to 127.0.0.1:`port` (from `local_port`, default a free one; `inf`: its
    injection file; `limit`: most calls at once, default the rate). Returns
    what `sipp_results` reads."""
    stf = os.path.join(workdir, f"sipp_{port}_{rate}_{time.time_ns()}.csv")
    args = ["sipp", f"127.0.0.1:{port}", "-sf", os.path.join(ROOT, "bench", "sipp", scenario),
            "-t", "u1", "-i", "127.0.0.1", "-p", str(local_port or free_port()), "-cp", str(free_port()),
            "-mp", str(free_port()), "-r", str(rate), "-m", str(calls), "-l", str(limit or max(rate, 1000)),
            "-buff_size", "8388608", "-nostdin", "-recv_timeout", "5000",
            "-timeout", f"{timeout or calls // max(rate, 1) * 3 + 10}s", "-trace_stat", "-stf", stf, "-fd", "1", *extra]
    if inf:
        args += ["-inf", inf]
    return subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), stf, time.time()


def sipp_results(running):
    """Waits for the sipp processes `start_sipp` started; returns their
    (successful, failed, retransmissions, elapsed_s)."""
    ok = failed = retrans = 0
    elapsed = 0.0
    for p, stf, t0 in running:
        p.wait()
        e = time.time() - t0
        try:
            with open(stf) as f:
                rows = [r for r in f.read().splitlines() if r.strip()]
            head = rows[0].split(";")
            last = rows[-1].split(";")
            ok += int(last[head.index("SuccessfulCall(C)")])
            failed += int(last[head.index("FailedCall(C)")])
            retrans += int(last[head.index("Retransmissions(C)")])
            # StartTime/CurrentTime end in epoch seconds with µs (ElapsedTime has 1 s resolution).
            ec = float(last[head.index("CurrentTime")].split()[-1]) - float(last[head.index("StartTime")].split()[-1])
            if ec > 0:
                e = ec
        except (OSError, ValueError, IndexError):
            pass
        elapsed = max(elapsed, e)
    return ok, failed, retrans, elapsed


def run_sipp(scenario, port, rate, secs, workdir, extra=(), procs=1, pool=None, auth=False):
    """Runs sipp at `rate` calls/s for `secs` (split over `procs` sipp
    processes); with `pool`, each process gets an injection file of fresh
    users. Returns (successful, failed, retransmissions, elapsed_s)."""
    running = []
    for i, r in enumerate(split(rate, procs)):
        if r == 0:
            continue
        calls = r * secs
        inf = None
        if pool is not None:
            inf = os.path.join(workdir, f"sipp_{port}_{rate}_{i}_{time.time_ns()}_users.csv")
            write_inf(inf, pool.take(calls), calls, auth)
        running.append(start_sipp(scenario, port, r, calls, workdir, extra, inf=inf, timeout=secs * 3 + 10))
    return sipp_results(running)


def run_probe(port, rate, secs, register=None, first=0, password=None, call=None, pn=False, refresh=None):
    """`refresh`: (bind port, Call-ID prefix, CSeq) of REGISTERs a later run
    with the same values and a higher CSeq refreshes in their dialogs."""
    args = [PROBE_BIN, "--target", f"127.0.0.1:{port}",
            "--rate", str(rate), "--secs", str(secs)]
    if refresh:
        args += ["--bind", f"127.0.0.1:{refresh[0]}", "--call-id-prefix", refresh[1], "--cseq", str(refresh[2])]
    if call:
        args += ["--call", call]
    if register:
        args += ["--register", register, "--user-prefix", "probe", "--first", str(first)]
    if password:
        args += ["--password", password]
    if pn:
        args += ["--pn"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


class Kind:
    """What a scenario sends: sipp file, requests per call, and how the
    probe measures latency."""

    def __init__(self, name, xml, reqs_per_call=1, register=False, auth=False, call=False, pn=False):
        self.name, self.xml, self.reqs_per_call, self.register, self.auth = name, xml, reqs_per_call, register, auth
        self.call, self.pn = call, pn


OPTIONS = Kind("options", "options.xml")
REGISTER = Kind("register", "register.xml", register=True)
REGISTER_AUTH = Kind("register_auth", "register_auth.xml", reqs_per_call=2, register=True, auth=True)
# A call: INVITE, ACK and BYE through the proxy (3 requests; with the answers 7 messages each way).
# REGISTER with an RFC 8599 push Contact (pn-* parameters, +sip.instance); sipwake only.
REGISTER_PUSH = Kind("register_push", "register_push.xml", register=True, pn=True)
CALLS = Kind("calls", "call_uac.xml", reqs_per_call=3, call=True)
CALLEE = "callee"  # The AoR (CALLEE@DOMAIN) the sipp callee registers; every call goes to it.


class Callee:
    """The called party of the `calls` scenario: a sipp UAS (sipp/call_uas.xml)
    on its own port, registered as CALLEE@DOMAIN with Contact = that port. The
    REGISTER is sent from the UAS's port before sipp binds it, so the source
    address and the Contact agree and both servers send the INVITEs there."""

    def __init__(self, server, workdir):
        self.port = free_port()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", self.port))
        s.settimeout(2)
        msg = (f"REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bKcallee{time.time_ns()}\r\n"
               f"From: <sip:{CALLEE}@{DOMAIN}>;tag=callee\r\nTo: <sip:{CALLEE}@{DOMAIN}>\r\n"
               f"Call-ID: callee{time.time_ns()}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{CALLEE}@127.0.0.1:{self.port}>\r\n"
               f"Expires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        try:
            s.sendto(msg.encode(), ("127.0.0.1", server.port))
            data, _ = s.recvfrom(65535)
        finally:
            s.close()
        if not data.startswith(b"SIP/2.0 200"):
            raise RuntimeError(f"{server.name} did not register the callee: {data[:80]!r}")
        self.stf = os.path.join(workdir, f"sipp_uas_{server.name}_{self.port}.csv")
        self.proc = subprocess.Popen(
            ["sipp", "-sf", os.path.join(ROOT, "bench", "sipp", "call_uas.xml"), "-t", "u1", "-i", "127.0.0.1",
             "-p", str(self.port), "-cp", str(free_port()), "-mp", str(free_port()), "-l", "1000000",
             "-buff_size", "8388608", "-nostdin", "-recv_timeout", "10000", "-trace_stat", "-stf", self.stf,
             "-fd", "1"],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError("the sipp callee did not start")

    def stats(self):
        """(successful, failed, retransmissions) of the callee so far."""
        try:
            with open(self.stf) as f:
                rows = [r for r in f.read().splitlines() if r.strip()]
            head, last = rows[0].split(";"), rows[-1].split(";")
            return tuple(int(last[head.index(k)]) for k in ("SuccessfulCall(C)", "FailedCall(C)", "Retransmissions(C)"))
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # sipp: dump stats and quit
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def probe_secs(secs):
    return max(secs - 1, 1)


def measure(server, kind, rate, secs, workdir, args, pool=None, probe_pool=None):
    probe_n = PROBE_RATE * probe_secs(secs)
    probe = run_probe(server.port, PROBE_RATE, probe_secs(secs), DOMAIN if kind.register else None,
                      probe_pool.take(probe_n) if probe_pool else 0, PASSWORD if kind.auth else None,
                      CALLEE if kind.call else None, kind.pn)
    c0, m0, t0, d0 = cpu_seconds(server.pid), machine_cpu(), time.time(), disk_ticks()
    extra = ("-nd",) if kind.register else ("-s", CALLEE) if kind.call else ()
    ok, failed, retrans, elapsed = run_sipp(kind.xml, server.port, rate, secs, workdir, extra,
                                            args.sipp_procs, pool, kind.auth)
    out, _ = probe.communicate(timeout=60)
    c1, m1, t1, d1 = cpu_seconds(server.pid), machine_cpu(), time.time(), disk_ticks()
    try:
        lat = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        lat = {}
    total = ok + failed
    # The server also served the probe's calls during the run: count them.
    done = ok + lat.get("answered", 0)
    cpu = c1 - c0
    achieved = ok / elapsed if elapsed > 0 else 0.0
    # CPU the machine spent on anything but the server, sipp, the probe and this script.
    other = (m1["busy"] - m0["busy"]) - cpu - (m1["self"] - m0["self"])
    return {
        "other_pct": max(0.0, 100.0 * other / ((t1 - t0) * os.cpu_count())),
        "disk_pct": (d1 - d0) / (10.0 * (t1 - t0)),
        "server": server.name, "scenario": kind.name, "rate": rate,
        "achieved": achieved, "req_s": achieved * kind.reqs_per_call,
        "ok": ok, "failed": failed, "retrans": retrans,
        "fail_pct": 100.0 * failed / total if total else 100.0,
        "p50_us": lat.get("p50_us"), "p99_us": lat.get("p99_us"), "p999_us": lat.get("p999_us"),
        "leg_p50_us": lat.get("leg_p50_us"), "leg_p99_us": lat.get("leg_p99_us"),
        "cpu_us_per_call": 1e6 * cpu / done if done else None,
        "cpu_us_per_req": 1e6 * cpu / (done * kind.reqs_per_call) if done else None,
        "bindings": server.bindings() if kind.register else None,
    }


def fmt(v, spec):
    if isinstance(v, (int, float)):
        return format(v, spec)
    w = re.match(r"[<>^]?(\d*)", spec).group(1)
    return format("-", f">{w}") if w else "-"


HEADER = (f"{'scenario':<13} {'server':<8} {'rate/s':>7} {'calls/s':>8} {'req/s':>8} {'fail%':>7} {'retr':>6} "
          f"{'p50µs':>6} {'p99µs':>6} {'p99.9µs':>7} {'leg50':>6} {'leg99':>6} {'cpuµs/call':>10} {'cpuµs/req':>9} "
          f"{'bindings':>8} {'oth%':>5} {'dsk%':>5}")


def print_row(r):
    print(f"{r['scenario']:<13} {r['server']:<8} {r['rate']:>7} {fmt(r['achieved'], '>8.0f')} {fmt(r['req_s'], '>8.0f')} "
          f"{fmt(r['fail_pct'], '>7.3f')} {fmt(r['retrans'], '>6')} {fmt(r['p50_us'], '>6')} {fmt(r['p99_us'], '>6')} "
          f"{fmt(r['p999_us'], '>7')} {fmt(r['leg_p50_us'], '>6')} {fmt(r['leg_p99_us'], '>6')} "
          f"{fmt(r['cpu_us_per_call'], '>10.1f')} {fmt(r['cpu_us_per_req'], '>9.1f')} {fmt(r['bindings'], '>8')} "
          f"{fmt(r.get('other_pct'), '>5.1f')} {fmt(r.get('disk_pct'), '>5.1f')}",
          flush=True)


def sustained(r):
    return r["fail_pct"] < 0.1 and r["achieved"] >= 0.9 * r["rate"]


def sweep(make_server, kind, rates, secs, workdir, args):
    quiet(args)
    server = make_server()
    pool = Pool() if kind.register else None
    probe_pool = Pool(0) if kind.register else None
    rows = []
    callee = None
    try:
        if kind.call:
            callee = Callee(server, workdir)
        for rate in rates:
            r = measure(server, kind, rate, secs, workdir, args, pool, probe_pool)
            print_row(r)
            rows.append(r)
            if not sustained(r):
                break
    finally:
        if callee:
            callee.stop()
            st = callee.stats()
            if st:
                print(f"# {server.name}: the sipp callee completed {st[0]} calls, failed {st[1]}, "
                      f"retransmitted {st[2]} times (200s to INVITEs whose ACK was late or lost)", flush=True)
        server.stop()
    return rows


def best(rows):
    good = [r for r in rows if sustained(r)]
    return max(good, key=lambda r: r["achieved"]) if good else None


def servers(args, workdir, kind=OPTIONS):
    """(name, constructor) of the servers to compare, set up for `kind`."""
    if kind.register or kind.call:
        auth = "enabled = true\n# MD5 only, as Kamailio's auth module: same digest work on both.\nalgorithms = [\"MD5\"]\n" \
            if kind.auth else "enabled = false\n"
        config = f"[auth]\n{auth}\n[management]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"
        users = None
        if kind.auth:
            # Subscribers for every call the sweep may make (the AoRs are new
            # per call), at least --aors, and for the probe's calls.
            need = max(args.aors, sum(r * args.secs for r in args.rates))
            users = [f"{user(i)}@{DOMAIN} {PASSWORD}" for i in range(1, need + 1)]
            users += [f"probe{i}@{DOMAIN} {PASSWORD}" for i in range(PROBE_RATE * probe_secs(args.secs) * len(args.rates))]
        make_sw = lambda: Sipwake(workdir, config, users)  # noqa: E731
    else:
        make_sw = lambda: Sipwake(workdir)  # noqa: E731
    out = [("sipwake", make_sw)]
    if not args.no_kamailio:
        out.append(("kamailio", lambda: Kamailio(workdir)))
    if not kind.call and not kind.auth and not args.no_floor:
        # The echo answers every request at once: for REGISTER with auth the
        # exchange would be one round trip instead of two, so no floor there.
        out.append(("floor", lambda: Floor(workdir)))
    return out


def compare(title, kind, results):
    print(f"\n== {title}: highest sustained rate (<0.1% failures, >=90% of the offered rate) ==")
    print(HEADER)
    picked = {}
    for name, rows in results.items():
        b = best(rows)
        if b:
            print_row(b)
            picked[name] = b
        else:
            print(f"{kind.name:<13} {name:<8} no sustained rate")
    floor_table(title, results)
    if "sipwake" not in results or "kamailio" not in results:
        return
    if "sipwake" in picked and "kamailio" in picked:
        print(f"ratio sipwake/kamailio, highest sustained calls/s: "
              f"{picked['sipwake']['achieved'] / picked['kamailio']['achieved']:.2f}x")
    print(f"\n== {title}: sipwake vs kamailio at each offered rate (ratio = sipwake/kamailio; "
          f"for fail%, latency and CPU lower is better) ==")
    print(f"{'rate/s':>7} | {'calls/s sw':>10} {'kam':>7} {'x':>5} | {'fail% sw':>8} {'kam':>6} | "
          f"{'p50µs sw':>8} {'kam':>5} {'x':>5} | {'p99µs sw':>8} {'kam':>5} {'x':>5} | "
          f"{'cpuµs/call sw':>13} {'kam':>6} {'x':>5}")
    ks = {r["rate"]: r for r in results["kamailio"]}

    def ratio(a, b):
        return f"{a / b:5.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "    -"

    for s in results["sipwake"]:
        k = ks.get(s["rate"])
        if not k:
            continue
        print(f"{s['rate']:>7} | {s['achieved']:>10.0f} {k['achieved']:>7.0f} {ratio(s['achieved'], k['achieved'])} | "
              f"{s['fail_pct']:>8.3f} {k['fail_pct']:>6.3f} | "
              f"{fmt(s['p50_us'], '>8')} {fmt(k['p50_us'], '>5')} {ratio(s['p50_us'], k['p50_us'])} | "
              f"{fmt(s['p99_us'], '>8')} {fmt(k['p99_us'], '>5')} {ratio(s['p99_us'], k['p99_us'])} | "
              f"{fmt(s['cpu_us_per_call'], '>13.1f')} {fmt(k['cpu_us_per_call'], '>6.1f')} "
              f"{ratio(s['cpu_us_per_call'], k['cpu_us_per_call'])}")


def floor_table(title, results):
    """CPU per request of each server as a multiple of the UDP floor's, at each offered rate."""
    if "floor" not in results:
        return
    fs = {r["rate"]: r for r in results["floor"]}
    names = [n for n in results if n != "floor"]
    print(f"\n== {title}: CPU per request as a multiple of the UDP floor (receive + send only) ==")
    print(f"{'rate/s':>7} | {'floor µs/req':>12} | " + " | ".join(f"{n + ' µs/req':>16} {'x floor':>7}" for n in names))
    for rate in sorted(fs):
        f = fs[rate]["cpu_us_per_req"]
        cells = []
        for n in names:
            r = next((x for x in results[n] if x["rate"] == rate), None)
            v = r["cpu_us_per_req"] if r else None
            x = f"{v / f:7.2f}" if isinstance(v, (int, float)) and f else "      -"
            cells.append(f"{fmt(v, '>16.1f')} {x}")
        print(f"{rate:>7} | {fmt(f, '>12.1f')} | " + " | ".join(cells))


def scenario_sweep(kind):
    def run(args, workdir):
        results = {}
        for name, make in servers(args, workdir, kind):
            results[name] = sweep(make, kind, args.rates, args.secs, workdir, args)
        return results
    return run


def scenario_rss(args, workdir, variants=None, n=None):
    """Memory per binding: fresh server (auth off), memory right after
    start-up, after N/2 and after N distinct AoRs registered at --rss-rate.
    `variants`: (name, constructor) of the servers (default sipwake and
    Kamailio); `n`: the bindings (default --rss-bindings)."""
    n = n or args.rss_bindings
    rate = args.rss_rate
    print(f"\n== memory per binding: {n} distinct AoRs registered (auth off) at {rate}/s, "
          f"one binding each, Expires 3600 ==")
    results = {}
    for name, make in variants or servers(args, workdir, REGISTER):
        quiet(args)
        server = make()
        pool = Pool()
        try:
            time.sleep(1)
            m0 = server.memory()
            b0 = server.bindings() or 0
            steps = []
            for part in split(n, 2):
                secs = max(1, -(-part // rate))
                r = -(-part // secs)
                c0 = sum(cpu_split(server).values())
                ok, failed, retrans, _ = run_sipp(REGISTER.xml, server.port, r, secs, workdir, ("-nd",),
                                                  args.sipp_procs, pool, False)
                cpu = sum(cpu_split(server).values()) - c0
                time.sleep(2)
                steps.append((ok, failed, retrans, server.bindings(), server.memory(), cpu))
        finally:
            server.stop()
        ok = sum(s[0] for s in steps)
        failed = sum(s[1] for s in steps)
        retrans = sum(s[2] for s in steps)
        (okh, _, _, bh, mh, cpuh), (ok1, _, _, b1, m1, cpu1) = steps
        print(f"{name}: sipp 200 OKs {ok}, failed {failed}, retransmissions {retrans}; "
              f"bindings the server reports: {b0} at start, {bh} halfway, {b1} at the end; CPU per REGISTER "
              f"{fmt(1e6 * cpuh / okh if okh else None, '.1f')} µs in the first half, "
              f"{fmt(1e6 * cpu1 / ok1 if ok1 else None, '.1f')} µs in the second")
        print(f"  {'memory':<22} {'at start':>12} {'halfway':>12} {'at end':>12} {'B/binding (start->end)':>23} "
              f"{'B/binding (half->end)':>22}")
        for key in m0:
            d_all = (m1[key] - m0[key]) / (b1 - b0) if b1 and b1 > b0 else None
            d_half = (m1[key] - mh[key]) / (b1 - bh) if b1 and bh and b1 > bh else None
            print(f"  {key:<22} {m0[key]:>12} {mh[key]:>12} {m1[key]:>12} {fmt(d_all, '>23.0f')} {fmt(d_half, '>22.0f')}")
        if retrans or failed:
            print(f"  note: {retrans} retransmissions / {failed} failures mean answers were late by > 500 ms at "
                  f"times; the requests queued meanwhile may have raised the memory high-water mark")
        results[name] = {"bindings": b1, "start": m0, "half": mh, "end": m1}
    s, k = results.get("sipwake"), results.get("kamailio")
    if s and k and s["bindings"] and k["bindings"]:
        sw = (s["end"]["VmRSS"] - s["start"]["VmRSS"]) / s["bindings"]
        kp = (k["end"]["PSS (all processes)"] - k["start"]["PSS (all processes)"]) / k["bindings"]
        line = f"bytes per binding: sipwake {sw:.0f} (VmRSS), kamailio {kp:.0f} (PSS)"
        if "shm real_used" in k["end"]:
            ksh = (k["end"]["shm real_used"] - k["start"]["shm real_used"]) / k["bindings"]
            line += f" / {ksh:.0f} (shm real_used)"
        print(line + f"; ratio sipwake/kamailio (PSS) {sw / kp:.2f}x" if kp else line)
    return None


def push_config(webhook_port, hold):
    """sipwake, auth off, RFC 8599 push on, every provider's pushes to the probe's webhook."""
    return (f"[auth]\nenabled = false\n\n[management]\nenabled = true\nlisten = \"127.0.0.1:0\"\n\n"
            f"[push]\nenable = true\ninvite_hold_secs = {hold}\n\n"
            f"[push.senders.\"*\"]\nwebhook = \"http://127.0.0.1:{webhook_port}/push\"\ntimeout_ms = 5000\n")


def probe_push(server, hook, *extra):
    return subprocess.Popen([PROBE_BIN, "--target",
                             f"127.0.0.1:{server.port}", "--domain", DOMAIN, "--webhook", f"127.0.0.1:{hook}",
                             *map(str, extra)], stdout=subprocess.PIPE, text=True)


def wake_latency(args, workdir, label, spaced=False):
    """Wake latency on a fresh sipwake: `args.push_wake` calls back to back (hot threads), or with `spaced`,
    `args.wake_spaced` calls `args.wake_gap_ms` apart (the server idle in between, where real phones live)."""
    n, gap = (args.wake_spaced, args.wake_gap_ms) if spaced else (args.push_wake, 0)
    how = f"{n} calls {gap} ms apart (idle server between them)" if spaced else f"{n} calls one after the other"
    print(f"\n== {label}: wake latency, sipwake (auth off, push on): {how} to one sleeping device; push -> device "
          f"re-REGISTER at once (the probe wakes instantly: push->REGISTER not applicable) ==", flush=True)
    quiet(args)
    hook = free_port(socket.SOCK_STREAM)
    server = Sipwake(workdir, push_config(hook, args.push_hold))
    try:
        c0 = cpu_seconds(server.pid)
        p = probe_push(server, hook, "--push-wake", n, "--gap-ms", gap)
        out, _ = p.communicate(timeout=n * (20 + gap / 1000) + 60)
        cpu = cpu_seconds(server.pid) - c0
    finally:
        server.stop()
    try:
        w = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"# the probe failed: {out!r}")
        return None
    print(f"{'measure':<44} {'n':>6} {'p50µs':>7} {'p90µs':>7} {'p99µs':>7} {'p99.9µs':>8} {'maxµs':>7}")
    for title, pre, count in (("REGISTER sent -> its 200 OK at device", "reg200_", w["woken"]),
                              ("REGISTER sent -> parked INVITE at device", "", w["woken"]),
                              ("INVITE sent -> push at webhook", "push_", w["woken"] + w["no_invite"])):
        print(f"{title:<44} {count:>6} {w[pre + 'p50_us']:>7} {w[pre + 'p90_us']:>7} {w[pre + 'p99_us']:>7} "
              f"{w[pre + 'p999_us']:>8} {w[pre + 'max_us']:>7}")
    print(f"{'push -> device REGISTER':<44} {'n/a (the probe re-registers as soon as the push arrives)':>40}")
    print(f"calls {w['calls']}, woken {w['woken']}, no push {w['no_push']}, pushed but no INVITE {w['no_invite']}, "
          f"unexpected messages {w['unexpected']}; {w['secs']:.2f} s; server CPU "
          f"{fmt(1e6 * cpu / w['calls'] if w['calls'] else None, '.1f')} µs per woken call (INVITE, push, "
          f"REGISTER, INVITE relayed, 486, ACKs; idle time between calls included when spaced)", flush=True)
    return w


def scenario_wake(args, workdir):
    """Wake latency only: back to back and spaced out."""
    wake_latency(args, workdir, "wake")
    wake_latency(args, workdir, "wake", spaced=True)
    return {}


def scenario_push(args, workdir):
    """RFC 8599 push wake-up, sipwake only (Kamailio has no built-in RFC 8599):
    wake latency, pushes dispatched per second, REGISTER/s with push Contacts
    beside the plain REGISTER sweep of both servers."""
    hold = args.push_hold
    # 1. Wake latency: REGISTER in -> parked INVITE out, back to back and spaced out.
    wake_latency(args, workdir, "push 1/3")
    wake_latency(args, workdir, "push 1/3", spaced=True)

    # 2. Pushes dispatched per second: M devices that never wake.
    m = args.push_devices
    print(f"\n== push 2/3: pushes dispatched, sipwake: {m} devices (distinct AoRs, push Contacts) that never wake, one "
          f"INVITE each at the offered rate; invite_hold_secs = {hold}, so each INVITE ends 480 ==", flush=True)
    print(f"{'rate/s':>7} {'pushes':>7} {'push/s':>7} {'max/s':>6} {'min/s':>6} {'push50µs':>8} {'push99µs':>8} "
          f"{'pushmaxµs':>9} {'480s':>5} {'other':>6} {'noans':>5} {'final50ms':>9} {'final99ms':>9} "
          f"{'cpuµs/push':>10} {'oth%':>5}", flush=True)
    for rate in args.push_rates:
        quiet(args)
        hook = free_port(socket.SOCK_STREAM)
        server = Sipwake(workdir, push_config(hook, hold))
        try:
            p = probe_push(server, hook, "--push-flood", m, "--rate", rate, "--wait", hold + 8)
            line = p.stdout.readline()  # "registered N": the INVITEs start now
            c0, m0, t0 = cpu_seconds(server.pid), machine_cpu(), time.time()
            out, _ = p.communicate(timeout=m // max(rate, 1) + hold + 60)
            c1, m1, t1 = cpu_seconds(server.pid), machine_cpu(), time.time()
        finally:
            server.stop()
        try:
            f = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            print(f"{rate:>7} the probe failed: {line!r} {out!r}")
            continue
        cpu = c1 - c0
        other = max(0.0, 100.0 * ((m1["busy"] - m0["busy"]) - cpu - (m1["self"] - m0["self"]))
                    / ((t1 - t0) * os.cpu_count()))
        # Seconds fully inside the sending window (the last one is partial).
        full = f["per_sec"][:max(1, int(f["send_secs"]))]
        finals = f["finals"]
        n480 = finals.get("480", 0)
        rest = sum(v for k, v in finals.items() if k != "480")
        rate_pushes = f["pushes"] / f["push_span_secs"] if f["push_span_secs"] > 0 else None
        print(f"{rate:>7} {f['pushes']:>7} {fmt(rate_pushes, '>7.0f')} {fmt(max(full) if full else None, '>6')} "
              f"{fmt(min(full) if full else None, '>6')} {f['push_p50_us']:>8} {f['push_p99_us']:>8} "
              f"{f['push_max_us']:>9} {n480:>5} {rest:>6} {f['unanswered']:>5} {f['final_p50_us'] / 1000:>9.0f} "
              f"{f['final_p99_us'] / 1000:>9.0f} {fmt(1e6 * cpu / f['pushes'] if f['pushes'] else None, '>10.1f')} "
              f"{other:>5.1f}", flush=True)
        if rest:
            print(f"        final answers other than 480: {finals}")
        if f["registered"] != m:
            print(f"        only {f['registered']} of {m} devices registered")

    # 3. REGISTER/s with push Contacts beside plain REGISTER (sipwake and Kamailio), same run.
    print(f"\n== push 3/3: REGISTER/s with push Contacts (sipp/register_push.xml, sipwake with push on) beside "
          f"plain REGISTER (sipp/register.xml, both servers), auth off, new AoR per call ==\n{HEADER}", flush=True)
    results = {}
    plain = servers(args, workdir, REGISTER)
    results["sipwake"] = sweep(plain[0][1], REGISTER, args.rates, args.secs, workdir, args)
    hook = free_port(socket.SOCK_STREAM)
    results["sipwake+pn"] = sweep(lambda: Sipwake(workdir, push_config(hook, hold)), REGISTER_PUSH, args.rates,
                                  args.secs, workdir, args)
    if len(plain) > 1:
        results["kamailio"] = sweep(plain[1][1], REGISTER, args.rates, args.secs, workdir, args)
    print(f"\n== push 3/3: highest sustained REGISTER/s (<0.1% failures, >=90% of the offered rate) ==\n{HEADER}")
    for name, rows in results.items():
        b = best(rows)
        print_row(b) if b else print(f"{'-':<13} {name:<8} no sustained rate")
    print(f"\n== push 3/3 per offered rate: REGISTER/s, fail%, server CPU µs per REGISTER ==")
    names = list(results)
    print(f"{'rate/s':>7} | " + " | ".join(f"{n + ' reg/s':>18} {'fail%':>7} {'cpuµs':>6}" for n in names)
          + " | pn/plain cpu (sipwake)")
    by = {n: {r["rate"]: r for r in rows} for n, rows in results.items()}
    for rate in args.rates:
        if not any(rate in by[n] for n in names):
            continue
        cells = []
        for n in names:
            r = by[n].get(rate)
            cells.append(f"{fmt(r and r['achieved'], '>18.0f')} {fmt(r and r['fail_pct'], '>7.3f')} "
                         f"{fmt(r and r['cpu_us_per_call'], '>6.1f')}")
        a, b = by["sipwake+pn"].get(rate), by["sipwake"].get(rate)
        x = (f"{a['cpu_us_per_call'] / b['cpu_us_per_call']:.2f}x" if a and b and a["cpu_us_per_call"]
             and b["cpu_us_per_call"] else "-")
        print(f"{rate:>7} | " + " | ".join(cells) + f" | {x}")
    return None


# Scale (issue 13): one node at 1M push bindings, then a restart on the same data directory.

class PushSink:
    """A webhook on 127.0.0.1 that answers 200 to every POST and counts them: the `scale` scenario's push
    service (nothing there should send a push: no INVITE, refreshes due only `refresh_lead` before expiry)."""

    def __init__(self):
        sink = self
        self.count = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class RestartWatch:
    """Started right after the server's process: an OPTIONS every `gap` s from one socket, and a REGISTER
    of a new AoR (push Contact, as sipp/register_push.xml) retransmitted every 0.5 s (same branch, as a
    UDP client does, the first copy once the server's socket is bound) from another, to 127.0.0.1:`port`;
    times each first answer, and the bind, from `t0`."""

    USER = "scale-restart"

    def __init__(self, port, t0, gap=0.005):
        self.port, self.t0, self.gap = port, t0, gap
        self.done = threading.Event()
        self.opt_sent = []  # send times, index = sequence number - 1
        self.opt_ok = 0
        self.opt_first = self.opt_first_seq = self.opt_other = None
        self.reg_first = self.reg_status = self.bound = None
        self.reg_sent = 0
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._options, self._register)]
        for t in self.threads:
            t.start()

    def _socket(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(("127.0.0.1", 0))
        return s, s.getsockname()[1]

    def _recv(self, s, until):
        """One datagram, or None once `until` (time.time()) has passed."""
        s.settimeout(max(0.0, until - time.time()) or 0.0001)
        try:
            return s.recv(65535)
        except (socket.timeout, BlockingIOError):
            return None
        except OSError:  # an ICMP port unreachable before the server binds its socket
            return None

    def _options(self):
        s, lp = self._socket()
        tag = time.time_ns()
        nxt = time.time()
        try:
            while not self.done.is_set():
                now = time.time()
                if now >= nxt:
                    seq = len(self.opt_sent) + 1
                    msg = (f"OPTIONS sip:127.0.0.1:{self.port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};"
                           f"branch=z9hG4bKscaleopt{tag}-{seq}\r\nFrom: <sip:scale@127.0.0.1>;tag={tag}\r\n"
                           f"To: <sip:127.0.0.1:{self.port}>\r\nCall-ID: scaleopt-{seq}-{tag}\r\n"
                           f"CSeq: {seq} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
                    self.opt_sent.append(now)
                    try:
                        s.sendto(msg.encode(), ("127.0.0.1", self.port))
                    except OSError:
                        pass
                    nxt = max(nxt + self.gap, now)
                data = self._recv(s, nxt)
                if data is None:
                    continue
                if data.startswith(b"SIP/2.0 200"):
                    self.opt_ok += 1
                    if self.opt_first is None:
                        self.opt_first = time.time() - self.t0
                        m = re.search(rb"(?im)^(?:call-id|i)\s*:\s*scaleopt-(\d+)-", data)
                        self.opt_first_seq = int(m.group(1)) if m else None
                elif self.opt_other is None:
                    self.opt_other = data.split(b"\r\n", 1)[0].decode(errors="replace")
        finally:
            s.close()

    def _bound(self):
        """Whether a UDP socket is bound to 127.0.0.1:port (/proc/net/udp)."""
        want = f"0100007F:{self.port:04X}"
        try:
            with open("/proc/net/udp") as f:
                return any(line.split()[1] == want for line in f.readlines()[1:])
        except (OSError, IndexError):
            return False

    def _register(self):
        # The first copy goes out once the server's socket is bound (a copy sent before would be lost
        # and the answer up to 500 ms late); the time of the bind is noted.
        while not self.done.is_set() and not self._bound():
            time.sleep(0.001)
        self.bound = time.time() - self.t0
        s, lp = self._socket()
        tag = time.time_ns()
        u = self.USER
        msg = (f"REGISTER sip:127.0.0.1:{self.port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};"
               f"branch=z9hG4bKscalereg{tag};rport\r\nFrom: <sip:{u}@{DOMAIN}>;tag={tag}\r\nTo: <sip:{u}@{DOMAIN}>\r\n"
               f"Call-ID: scalereg-{tag}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{u}@127.0.0.1:{lp};pn-provider=apns;"
               f"pn-prid=PRID-{u}-0123456789abcdef0123456789abcdef;pn-param=TEAM1.com.example.voip>;"
               f"+sip.instance=\"<urn:uuid:6c5f0b8e-0000-4000-8000-{tag % 10**12:012d}>\"\r\n"
               f"Expires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
        nxt = time.time()
        try:
            while not self.done.is_set() and self.reg_status is None:
                if time.time() >= nxt:
                    try:
                        s.sendto(msg, ("127.0.0.1", self.port))
                    except OSError:
                        pass
                    self.reg_sent += 1
                    nxt += 0.5
                data = self._recv(s, nxt)
                if data is None or not data.startswith(b"SIP/2.0 "):
                    continue
                code = int(data[8:11])
                if code >= 200:
                    self.reg_first = time.time() - self.t0
                    self.reg_status = code
        finally:
            s.close()

    def wait(self, most):
        """Until both first answers are in, at most `most` seconds from t0; then stops sending."""
        while time.time() - self.t0 < most and (self.opt_first is None or self.reg_status is None):
            time.sleep(0.01)
        self.done.set()
        for t in self.threads:
            t.join(2)


def db_files(data):
    """{file: bytes} of the SQLite database's files (sipwake.db, -wal, -shm)."""
    return {f: os.path.getsize(os.path.join(data, f)) for f in sorted(os.listdir(data)) if f.startswith("sipwake.db")}


def log_event(path, message):
    """(seconds since the epoch, {field: value}) of the first line of a sipwake log (tracing's plain
    format: RFC 3339 UTC timestamp, level, target, message, key=value fields) holding `message`."""
    try:
        with open(path) as f:
            for line in f:
                line = re.sub(r"\x1b\[[0-9;]*m", "", line)
                if message not in line:
                    continue
                m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", line)
                if not m:
                    return None, {}
                ts = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()
                ts += float(m.group(2) or 0)
                return ts, dict(re.findall(r"(\w+)=(\S+)", line.split(message, 1)[1]))
    except OSError:
        pass
    return None, {}


def idle_cpu(pid, secs=10):
    """CPU seconds (utime+stime from /proc) the process used over `secs` of idling."""
    c0, t0 = cpu_seconds(pid), time.time()
    time.sleep(secs)
    return cpu_seconds(pid) - c0, time.time() - t0


def other_pct(cpu, m0, m1, secs):
    """CPU the machine spent on anything but the server (`cpu` s), this script and its children (sipp),
    in % of all CPUs over `secs`."""
    other = (m1["busy"] - m0["busy"]) - cpu - (m1["self"] - m0["self"])
    return max(0.0, 100.0 * other / (max(secs, 1e-3) * os.cpu_count()))


def scenario_scale(args, workdir):
    """One sipwake node (SQLite, auth off, push on) at --scale-bindings push bindings registered over UDP at
    --scale-rate: memory, database size, idle CPU; then SIGTERM and a restart of the same binary on the same
    data directory, timed to the first answered OPTIONS, to the first answered REGISTER of a new AoR and to
    the "bindings restored from the store" log line; memory after the restart."""
    n, rate = args.scale_bindings, args.scale_rate
    print(f"\n== scale: one sipwake node (SQLite, auth off, push on), {n} push bindings (distinct AoRs, "
          f"sipp/register_push.xml, Expires 3600) registered over UDP at {rate}/s; 10 s idle; SIGTERM and a "
          f"restart on the same data directory ==", flush=True)
    quiet(args)
    sink = PushSink()
    server = None
    rows = []

    def row(what, value):
        rows.append((what, value))

    mib = lambda b: f"{b / 2**20:,.1f} MiB"
    try:
        server = Sipwake(workdir, push_config(sink.port, args.push_hold))
        time.sleep(1)
        rss0 = vm_rss(server.pid)
        b0 = server.bindings() or 0
        # 1. The bindings: one sipp process per --sipp-procs, each its slice of users, exactly n REGISTERs.
        pool, running = Pool(), []
        c0, m0, tm0 = cpu_seconds(server.pid), machine_cpu(), time.time()
        for i, (part, r) in enumerate(zip(split(n, args.sipp_procs), split(rate, args.sipp_procs))):
            if part == 0 or r == 0:
                continue
            inf = os.path.join(workdir, f"sipp_scale_{i}_{time.time_ns()}_users.csv")
            write_inf(inf, pool.take(part), part, False)
            running.append(start_sipp(REGISTER_PUSH.xml, server.port, r, part, workdir, ("-nd",), inf=inf))
        ok, failed, retrans, elapsed = sipp_results(running)
        cpu_reg = cpu_seconds(server.pid) - c0
        oth_reg = other_pct(cpu_reg, m0, machine_cpu(), time.time() - tm0)
        st = server.stats()
        # The 200s left after their commits: nothing should be pending; wait briefly if the count lags.
        deadline = time.time() + 30
        while st["bindings"] < b0 + ok and time.time() < deadline:
            time.sleep(0.5)
            st = server.stats()
        row("REGISTERs (sipp, push Contacts)", f"{ok} answered 200, {failed} failed, {retrans} retransmissions, "
            f"{elapsed:.1f} s ({ok / elapsed if elapsed else 0:,.0f}/s)")
        row("server CPU per REGISTER", f"{1e6 * cpu_reg / ok if ok else 0:.1f} µs (retransmissions included; "
            f"other processes took {oth_reg:.0f}% of the machine meanwhile)")
        row("bindings the server reports", f"{st['bindings']} ({st.get('push_bindings')} push-capable, "
            f"{st.get('aors')} AoRs)")
        time.sleep(2)
        rss1 = vm_rss(server.pid)
        nb = max(st["bindings"] - b0, 1)
        row("VmRSS at start (empty)", mib(rss0))
        row(f"VmRSS after the bindings", f"{mib(rss1)} ({(rss1 - rss0) / nb:,.0f} B per binding over start)")
        files = db_files(server.data)
        row("SQLite files, running", ", ".join(f"{f} {mib(v)}" for f, v in files.items())
            + f"; db + wal {mib(sum(v for f, v in files.items() if not f.endswith('-shm')))} "
              f"({sum(v for f, v in files.items() if not f.endswith('-shm')) / nb:,.0f} B per binding)")
        cpu, secs = idle_cpu(server.pid)
        row(f"idle CPU over {secs:.0f} s", f"{1000 * cpu:.0f} ms ({100 * cpu / secs:.2f}% of a core)")
        # 2. Restart: SIGTERM, wait for the exit by PID, the same command on the same data directory.
        pushes_before = sink.count
        old = server.proc
        t = time.time()
        old.send_signal(signal.SIGTERM)
        try:
            old.wait(300)
        except subprocess.TimeoutExpired:
            row("stop", "still running 300 s after SIGTERM: killed")
            old.kill()
            old.wait()
        row("stop: SIGTERM -> exit", f"{time.time() - t:.2f} s (exit status {old.returncode})")
        files = db_files(server.data)
        row("SQLite files, stopped", ", ".join(f"{f} {mib(v)}" for f, v in files.items()))
        m0 = machine_cpu()
        t0 = time.time()
        server.spawn("sipwake-restart.log", "warn,sipwake::server=info,sipwake::loader=info,sip_node::loading=info")
        watch = RestartWatch(server.port, t0)
        server.wait_ready()
        t_mgmt = time.time() - t0
        # The new process's CPU so far, and what the others took while it loaded.
        cpu_load = cpu_seconds(server.pid)
        oth_load = other_pct(cpu_load, m0, machine_cpu(), t_mgmt)
        watch.wait(t_mgmt + 30)
        restored, fields = log_event(server.log.name, "bindings restored from the store")
        ready, _ = log_event(server.log.name, "sipwake ready")
        cpu_restored = cpu_seconds(server.pid)
        if restored:
            row('restart -> "bindings restored from the store"', f"{restored - t0:.2f} s (loaded={fields.get('loaded')}, "
                f"push={fields.get('push')}, dropped={fields.get('dropped')}; read_ms={fields.get('read_ms')}, "
                f"server CPU by then {cpu_restored:.2f} s)")
        else:
            row('restart -> "bindings restored from the store"', f"not found in {server.log.name}")
        if watch.opt_first is not None:
            seq = watch.opt_first_seq
            sent = watch.opt_sent[seq - 1] - t0 if seq and seq <= len(watch.opt_sent) else None
            row("restart -> first OPTIONS answered 200",
                f"{watch.opt_first:.3f} s (that OPTIONS was #{seq}, sent at "
                f"{fmt(sent, '.3f')} s; {len(watch.opt_sent)} sent every {1000 * watch.gap:.0f} ms, "
                f"{watch.opt_ok} answered 200)")
        else:
            row("restart -> first OPTIONS answered 200", f"none within {t_mgmt + 30:.0f} s")
        if watch.opt_other:
            row("  other answer to OPTIONS", watch.opt_other)
        if watch.reg_status is not None:
            row("restart -> first REGISTER answered (new AoR)",
                f"{watch.reg_first:.3f} s, {watch.reg_status} ({watch.reg_sent} sent, 500 ms apart)")
        else:
            row("restart -> first REGISTER answered (new AoR)", f"none ({watch.reg_sent} sent, 500 ms apart)")
        row("restart -> server's UDP port bound (/proc/net/udp)", f"{fmt(watch.bound, '.3f')} s")
        if ready:
            row('restart -> "sipwake ready"', f"{ready - t0:.2f} s")
        row("restart -> management API address printed", f"{t_mgmt:.2f} s (server CPU {cpu_load:.2f} s; other "
            f"processes took {oth_load:.0f}% of the machine meanwhile)")
        if restored and watch.opt_first is not None:
            row("first OPTIONS 200 vs the restore line", f"{watch.opt_first - (restored - t0):+.3f} s "
                f"({'answered while loading' if watch.opt_first < restored - t0 else 'after the load'})")
        time.sleep(2)
        rss2 = vm_rss(server.pid)
        st2 = server.stats()
        row("bindings after the restart", f"{st2['bindings']} ({st2.get('push_bindings')} push-capable)")
        row("VmRSS after the restart", f"{mib(rss2)} ({(rss2 - rss0) / nb:,.0f} B per binding over the empty "
            f"start; {rss2 / max(rss1, 1):.2f}x before the restart)")
        cpu, secs = idle_cpu(server.pid)
        row(f"idle CPU over {secs:.0f} s after the restart", f"{1000 * cpu:.0f} ms ({100 * cpu / secs:.2f}% of a core)")
        row("pushes the webhook received", f"{sink.count} ({pushes_before} before the restart)")
    finally:
        if server:
            server.stop()
        sink.stop()
    w = max(len(a) for a, _ in rows)
    print(f"{'measure':<{w}}  value")
    for a, v in rows:
        print(f"{a:<{w}}  {v}")
    print(f"# log of the restart: {server.log.name} (removed with the temporary directory)", flush=True)
    return None


# Mid-registrar mode: sipwake in front of Kamailio (bench/kamailio.cfg) as the upstream registrar.

DEVICE = "register_device.xml"  # One device per call: REGISTER, then refreshes in the same dialog.
# mid_register and mid_wake: the devices ask Expires 3600 and sipwake asks the upstream for 7200
# (Kamailio's max_expires), so that contact/aor modes can absorb their refreshes: sipwake answers a
# refresh itself only while the upstream registration has more than 1.1 x the requested expiry + 2 s
# left (`absorbable` in crates/sip-node/src/mid/register.rs); with upstream_expires 3600 (the default)
# a device asking 3600 is forwarded every time.
MID_UPSTREAM_EXPIRES = 7200


def mid_margin(expires):
    """Seconds an upstream registration must still have for sipwake to absorb a refresh asking `expires`."""
    return 1.1 * expires + 2


def mid_config(upstream_port, throttle, upstream_expires, min_expires=60, extra=None):
    """sipwake in mid-registrar mode in front of 127.0.0.1:`upstream_port` (UDP). Auth off: the upstream
    authenticates in this mode, and bench/kamailio.cfg challenges only REGISTERs with X-Bench-Auth.
    `extra`: the [auth]/[management]/[push] tables instead of the default ones."""
    return (f"[server]\nmode = \"mid-registrar\"\n\n[registrar]\nmin_expires = {min_expires}\n\n"
            f"[mid_registrar]\nupstream = \"sip:127.0.0.1:{upstream_port};transport=udp\"\n"
            f"throttle = \"{throttle}\"\nupstream_expires = {upstream_expires}\n\n"
            + (extra or "[auth]\nenabled = false\n\n[management]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"))


def kamailio_regs(k):
    """REGISTERs Kamailio's registrar accepted and rejected so far (kamcmd statistics)."""
    out = {}
    text = k.rpc("stats.get_statistics", "registrar:")
    for key in ("accepted_regs", "rejected_regs"):
        m = re.search(rf"registrar:{key} = (\d+)", text)
        out[key] = int(m.group(1)) if m else 0
    return out


class Mid(Server):
    """sipwake in mid-registrar mode (`throttle`) with a fresh Kamailio as its upstream registrar
    (bench/kamailio.cfg, started as in the other scenarios: 2 workers, -x tlsf -m 4096)."""

    def __init__(self, workdir, throttle, upstream_expires, min_expires=60, extra=None):
        self.name = f"mid-{throttle}"
        self.upstream = Kamailio(workdir)
        try:
            self.sipwake = Sipwake(workdir, mid_config(self.upstream.port, throttle, upstream_expires, min_expires,
                                                       extra))
        except (OSError, RuntimeError):
            self.upstream.stop()
            raise
        self.port, self.pid = self.sipwake.port, self.sipwake.pid

    def stop(self):
        self.sipwake.stop()
        self.upstream.stop()

    def bindings(self):
        return self.sipwake.bindings()

    def counts(self):
        """sipwake's mid-registrar counters (/metrics: device REGISTERs absorbed and forwarded, upstream
        answers by origin: device, resend, deregister) and the REGISTERs Kamailio accepted/rejected."""
        out = {}
        try:
            with urllib.request.urlopen(self.sipwake.mgmt + "/metrics", timeout=10) as r:
                text = r.read().decode()
        except OSError:
            text = ""
        for line in text.splitlines():
            m = re.match(r"sipwake_mid_registers_total\{.*action=\"(\w+)\".*\} (\S+)", line)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0) + int(float(m.group(2)))
            m = re.match(r"sipwake_mid_upstream_answers_total\{.*origin=\"(\w+)\".*\} (\S+)", line)
            if m:
                key = "up_" + m.group(1)
                out[key] = out.get(key, 0) + int(float(m.group(2)))
        out.update(kamailio_regs(self.upstream))
        return out


def cpu_parts(server):
    """{column: pid} of the processes whose CPU is reported: sipwake, Kamailio, or both."""
    if isinstance(server, Mid):
        return {"sipwake": server.sipwake.pid, "kamailio": server.upstream.pid}
    return {server.name: server.pid}


def write_devices(path, first, n, per_aor=1):
    """sipp injection file of `n` devices for sipp/register_device.xml: the AoR user (field0) and the
    device's Contact user (field1). With `per_aor` > 1 the devices of one AoR are n/per_aor lines apart,
    so their refreshes are spread over the refresh interval (sipp starts the calls in file order)."""
    aors = -(-n // per_aor)
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for j in range(n):
            a = user(first + j % aors)
            f.write(f"{a};{a}d{j // aors};\n")


class Slice:
    """The devices of one offered rate of `mid_register`: per sipp process an injection file of fresh
    AoRs, a fixed source port and a Call-ID pattern of the call number only, so that a second sipp run
    over the same file refreshes, in their dialogs and from the same address, the bindings the first
    one made; the same for the probe's REGISTERs (--bind, --call-id-prefix)."""

    def __init__(self, workdir, pool, probe_pool, n, procs, probe_secs_):
        self.procs = []
        for k in split(n, procs):
            first = pool.take(k)
            inf = os.path.join(workdir, f"devices_{first}_{k}.csv")
            write_devices(inf, first, k)
            self.procs.append((inf, free_port(), f"%u-d{first}@%s", k))
        self.probe_secs = probe_secs_
        first = probe_pool.take(PROBE_RATE * probe_secs_)
        self.probe = (first, free_port(), f"pr{first}")


MID_HEADER = (f"{'server':<12} {'phase':<8} {'rate/s':>7} {'reg/s':>7} {'fail%':>7} {'retr':>5} {'p50µs':>6} "
              f"{'p99µs':>6} {'p99.9µs':>7} {'sw µs/reg':>9} {'kam µs/reg':>10} {'sum µs':>7} {'up/reg':>6} "
              f"{'bindings':>8} {'oth%':>5} {'dsk%':>5}")


def print_mid_row(r):
    print(f"{r['server']:<12} {r['phase']:<8} {r['rate']:>7} {r['achieved']:>7.0f} {r['fail_pct']:>7.3f} "
          f"{r['retrans']:>5} {fmt(r['p50_us'], '>6')} {fmt(r['p99_us'], '>6')} {fmt(r['p999_us'], '>7')} "
          f"{fmt(r['cpu'].get('sipwake'), '>9.1f')} {fmt(r['cpu'].get('kamailio'), '>10.1f')} "
          f"{fmt(r['cpu_us_per_call'], '>7.1f')} {fmt(r['up_per_reg'], '>6.2f')} {fmt(r['bindings'], '>8')} "
          f"{r['other_pct']:>5.1f} {r['disk_pct']:>5.1f}", flush=True)


def mid_measure(server, phase, sl, rate, workdir):
    """One phase of `mid_register` over the devices of `sl`: sipp sends their REGISTERs at `rate`/s
    (CSeq 1 for `new` and `register`, 2 for `refresh`) while the probe does the same with its own at
    PROBE_RATE. CPU per REGISTER of sipwake and of Kamailio (the upstream, or the server alone), and how
    many REGISTERs Kamailio accepted per device REGISTER (`up/reg`) when it is the upstream."""
    cseq = 2 if phase == "refresh" else 1
    parts = cpu_parts(server)
    probe = run_probe(server.port, PROBE_RATE, sl.probe_secs, DOMAIN, sl.probe[0],
                      refresh=(sl.probe[1], sl.probe[2], cseq))
    u0 = server.counts() if isinstance(server, Mid) else None
    c0 = {k: cpu_seconds(p) for k, p in parts.items()}
    m0, t0, d0 = machine_cpu(), time.time(), disk_ticks()
    running = []
    for (inf, port, cid, k), r in zip(sl.procs, split(rate, len(sl.procs))):
        extra = ("-nd", "-cid_str", cid, "-base_cseq", str(cseq), "-key", "expires", "3600", "-key", "loops", "1")
        running.append(start_sipp(DEVICE, server.port, r, k, workdir, extra, local_port=port, inf=inf))
    ok, failed, retrans, elapsed = sipp_results(running)
    out, _ = probe.communicate(timeout=60)
    c1 = {k: cpu_seconds(p) for k, p in parts.items()}
    m1, t1, d1 = machine_cpu(), time.time(), disk_ticks()
    try:
        lat = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        lat = {}
    done = ok + lat.get("answered", 0)
    cpu = {k: c1[k] - c0[k] for k in parts}
    up = None
    if u0 is not None:
        time.sleep(0.5)  # the last forwarded REGISTERs' answers
        u1 = server.counts()
        up = (u1["accepted_regs"] - u0["accepted_regs"]) / done if done else None
    other = (m1["busy"] - m0["busy"]) - sum(cpu.values()) - (m1["self"] - m0["self"])
    total = ok + failed
    return {
        "server": server.name, "phase": phase, "rate": rate,
        "achieved": ok / elapsed if elapsed > 0 else 0.0, "ok": ok, "failed": failed, "retrans": retrans,
        "fail_pct": 100.0 * failed / total if total else 100.0,
        "p50_us": lat.get("p50_us"), "p99_us": lat.get("p99_us"), "p999_us": lat.get("p999_us"),
        "cpu": {k: 1e6 * v / done for k, v in cpu.items()} if done else {},
        "cpu_us_per_call": 1e6 * sum(cpu.values()) / done if done else None,
        "up_per_reg": up, "bindings": server.bindings(),
        "other_pct": max(0.0, 100.0 * other / ((t1 - t0) * os.cpu_count())),
        "disk_pct": (d1 - d0) / (10.0 * (t1 - t0)),
    }


def drain(server, most=30):
    """Waits (up to `most` s) until the server's processes are idle: after an overloaded phase its queue
    and the clients' retransmissions would otherwise spill into the next one."""
    deadline = time.time() + most
    while time.time() < deadline:
        c0 = sum(cpu_split(server).values())
        time.sleep(1)
        if sum(cpu_split(server).values()) - c0 < 0.05:
            return


def mid_sweep(make, args, workdir):
    """`mid_register` for one server: per offered rate, `new` (a fresh slice of devices registers at the
    rate) then `refresh` (the same devices refresh at the rate: same Call-ID, CSeq 2, same source). Each
    phase stops at its first rate not sustained; once `new` has stopped, the devices a `refresh` rate needs
    are registered beforehand at the highest sustained `new` rate (phase `register`, not a measurement).
    Before a `refresh` and after a phase not sustained the server is left to drain its queue."""
    quiet(args)
    server = make()
    pool, probe_pool = Pool(), Pool(0)
    rows = {"new": [], "refresh": []}
    on = {"new": True, "refresh": True}
    safe = None
    try:
        for rate in args.rates:
            sl = Slice(workdir, pool, probe_pool, rate * args.secs, args.sipp_procs, probe_secs(args.secs))
            registered = False
            if on["new"]:
                r = mid_measure(server, "new", sl, rate, workdir)
                print_mid_row(r)
                rows["new"].append(r)
                if sustained(r):
                    safe, registered = rate, True
                else:
                    on["new"] = False
                    drain(server)
            if on["refresh"]:
                if not registered:
                    sl = Slice(workdir, pool, probe_pool, rate * args.secs, args.sipp_procs, probe_secs(args.secs))
                    print_mid_row(mid_measure(server, "register", sl, safe or max(args.rates[0] // 2, 500), workdir))
                drain(server)
                r = mid_measure(server, "refresh", sl, rate, workdir)
                print_mid_row(r)
                rows["refresh"].append(r)
                if not sustained(r):
                    on["refresh"] = False
                    drain(server)
            if not any(on.values()):
                break
    finally:
        server.stop()
    return rows


def mid_variants(args, workdir):
    """(name, constructor) of `mid_register`'s servers: sipwake in each throttle mode in front of Kamailio,
    then, as references taking the same REGISTERs directly, Kamailio alone and sipwake in registrar mode."""
    out = [(f"mid-{t}", lambda t=t: Mid(workdir, t, MID_UPSTREAM_EXPIRES)) for t in args.mid_modes]
    out.append(("kamailio", lambda: Kamailio(workdir)))
    out.append(("sipwake", servers(args, workdir, REGISTER)[0][1]))
    return out


def scenario_mid_register(args, workdir):
    """REGISTER/s through sipwake in mid-registrar mode, per throttle mode, new registrations and
    refreshes, with sipwake's and Kamailio's CPU per REGISTER; Kamailio alone and sipwake in registrar mode
    as references."""
    print(f"\n== mid-registrar 1/3: REGISTER/s through sipwake (mid-registrar, auth off) in front of Kamailio, "
          f"per throttle mode; devices ask Expires 3600, sipwake asks the upstream for {MID_UPSTREAM_EXPIRES} "
          f"(contact/aor) ==\n# new: a new device (AoR) per REGISTER, forwarded in every mode; refresh: the same "
          f"devices again (same Call-ID, CSeq 2, same source): forwarded in mirror, answered by sipwake in "
          f"contact/aor\n# kamailio / sipwake: the same REGISTERs straight to Kamailio / to sipwake in registrar "
          f"mode\n# sw/kam µs/reg: CPU of sipwake / Kamailio per device REGISTER (sipp's and the probe's); sum: "
          f"both; up/reg: REGISTERs Kamailio accepted per device REGISTER; latency: the probe's REGISTER -> 200\n"
          f"{MID_HEADER}", flush=True)
    results = {}
    for name, make in mid_variants(args, workdir):
        results[name] = mid_sweep(make, args, workdir)
    print(f"\n== mid-registrar 1/3: highest sustained REGISTER/s (<0.1% failures, >=90% of the offered rate) "
          f"==\n{MID_HEADER}")
    for name, rows in results.items():
        for phase in ("new", "refresh"):
            b = best(rows[phase])
            print_mid_row(b) if b else print(f"{name:<12} {phase:<8} no sustained rate")
    print("\n== mid-registrar 1/3 per offered rate: CPU µs per REGISTER, sipwake+Kamailio (sum) ==")
    names = list(results)
    print(f"{'phase':<8} {'rate/s':>7} | " + " | ".join(f"{n:>12}" for n in names))
    for phase in ("new", "refresh"):
        by = {n: {r["rate"]: r for r in rows[phase]} for n, rows in results.items()}
        for rate in args.rates:
            if any(rate in by[n] for n in names):
                print(f"{phase:<8} {rate:>7} | " + " | ".join(
                    fmt(by[n].get(rate, {}).get("cpu_us_per_call"), '>12.1f') for n in names))
    return None


def scenario_mid_throttle(args, workdir):
    """How many REGISTERs the upstream gets per device REGISTER in each throttle mode: devices refreshing
    a short expiry (compressed time) against upstream_expires, all modes at once (a few REGISTER/s each)."""
    n, d, e, r, up = args.mid_devices, args.mid_per_aor, args.mid_expires, args.mid_refresh, args.mid_upstream_expires
    k = max(1, math.ceil((up - mid_margin(e)) / r))
    # Default: refreshes over one upstream period, so that after the first round each device (contact)
    # or AoR (aor) is due exactly one upstream REGISTER, its k-th refresh.
    secs = args.mid_secs or k * r
    loops = secs // r + 1
    aors = -(-n // d)
    print(f"\n== mid-registrar 2/3: upstream REGISTERs per device REGISTER: {n} devices ({aors} AoRs, {d} per AoR), "
          f"Expires {e}, a refresh every {r} s in one dialog ({loops} REGISTERs each, {(loops - 1) * r} s), "
          f"upstream_expires {up}; every mode at once, each with its own Kamailio ==\n"
          f"# a refresh is absorbed while the upstream registration has more than 1.1 x {e} + 2 = "
          f"{mid_margin(e):.0f} s left: a device's refreshes reach the upstream every "
          f"k = ceil(({up} - {mid_margin(e):.0f}) / {r}) = {k} refreshes (T = {k * r} s) in contact mode; "
          f"in aor mode each AoR's once per T whichever device it is",
          flush=True)
    quiet(args)
    pairs = {}
    try:
        for t in args.mid_modes:
            pairs[t] = Mid(workdir, t, up, min_expires=min(e, 60))
        rate = max(1, -(-2 * n // r))  # every device starts within half a refresh interval
        running = {}
        for t, pair in pairs.items():
            inf = os.path.join(workdir, f"throttle_{t}.csv")
            write_devices(inf, 1, n, d)
            extra = ("-nd", "-cid_str", "%u-dev@%s", "-key", "expires", str(e), "-key", "loops", str(loops),
                     "-d", str(r * 1000))
            running[t] = start_sipp(DEVICE, pair.port, rate, n, workdir, extra, inf=inf, timeout=loops * r + 60,
                                    limit=n)
        # Between the devices' first REGISTERs (all sent within r/2) and their first refreshes (from r on).
        time.sleep(0.75 * r)
        first = {t: pair.counts() for t, pair in pairs.items()}
        end, sipp = {}, {}
        for t, pair in pairs.items():
            sipp[t] = sipp_results([running[t]])
            end[t] = pair.counts()
    finally:
        for pair in pairs.values():
            pair.stop()
    print(f"{'mode':<8} {'calls ok':>8} {'fail':>5} {'dev REG':>8} {'up REG':>7} {'dev/up':>7} | "
          f"{'after the first round:':<22} {'dev REG':>8} {'up REG':>7} {'dev/up':>7} {'predicted up':>12} | "
          f"{'absorbed':>8} {'fwd':>6} {'own':>4} {'up rej':>6}")
    for t in pairs:
        a, b = first[t], end[t]
        dev = b.get("absorbed", 0) + b.get("forwarded", 0)
        dev1 = dev - a.get("absorbed", 0) - a.get("forwarded", 0)
        upr = b["accepted_regs"]
        upr1 = upr - a["accepted_regs"]
        pred = {"mirror": n * (loops - 1), "contact": n * ((loops - 1) // k),
                "aor": aors * ((loops - 1) // k)}.get(t)
        own = b.get("up_resend", 0) + b.get("up_deregister", 0)
        print(f"{t:<8} {sipp[t][0]:>8} {sipp[t][1]:>5} {dev:>8} {upr:>7} {fmt(dev / upr if upr else None, '>7.1f')} | "
              f"{'':<22} {dev1:>8} {upr1:>7} {fmt(dev1 / upr1 if upr1 else None, '>7.1f')} {fmt(pred, '>12')} | "
              f"{b.get('absorbed', 0):>8} {b.get('forwarded', 0):>6} {own:>4} {b['rejected_regs']:>6}")
    print(f"# dev REG: device REGISTERs sipwake took (absorbed + forwarded; sipp sent calls ok x {loops}); up REG: "
          f"REGISTERs Kamailio accepted (sipwake's own re-sends/de-registers included, 'own'); first round: "
          f"read {0.75 * r:.1f} s after the start")
    print(f"# steady state per 1,000 devices: mirror 1000/{r} = {1000 / r:.2f} upstream REGISTER/s; contact "
          f"1000/{k * r} = {1000 / (k * r):.3f}/s (x{k} fewer); aor about (1000/{d})/{k * r} = "
          f"{1000 / d / (k * r):.3f}/s ({d} devices per AoR)")
    return None


def scenario_mid_wake(args, workdir):
    """Wake latency through the mid-registrar (sip-probe --push-wake): the probe's INVITE goes to sipwake,
    to Kamailio (upstream), back to sipwake's ctid Contact, which pushes and parks it; the device's
    re-REGISTER (absorbed in contact/aor mode, forwarded in mirror) releases it. Beside it the same probe
    against sipwake in registrar mode, in alternation."""
    hold, n = args.push_hold, args.mid_wake
    variants = [("registrar", lambda hook: Sipwake(workdir, push_config(hook, hold)))]
    variants += [(f"mid-{t}", lambda hook, t=t: Mid(workdir, t, MID_UPSTREAM_EXPIRES, extra=push_config(hook, hold)))
                 for t in args.mid_wake_modes]
    print(f"\n== mid-registrar 3/3: wake latency, {n} calls one after the other to one sleeping device (push "
          f"Contact, Expires 3600), sipwake in registrar mode and in mid-registrar mode (upstream_expires "
          f"{MID_UPSTREAM_EXPIRES}) in front of Kamailio, alternating, {args.mid_wake_rounds} round(s) ==\n"
          f"# reg->inv: device REGISTER sent -> parked INVITE at the device; e2e: caller's INVITE sent -> INVITE "
          f"at the device (push, REGISTER, release); push: INVITE sent -> push at the webhook\n"
          f"# µs/wake: CPU of sipwake / Kamailio per woken call; up REG: REGISTERs Kamailio accepted during "
          f"the run (the wake-up REGISTERs it saw)", flush=True)
    print(f"{'server':<13} {'woken':>6} {'reg50':>6} {'reg99':>6} {'regmax':>7} {'e2e50':>6} {'e2e99':>6} "
          f"{'e2emax':>7} {'push50':>6} {'push99':>6} {'sw µs/wake':>10} {'kam µs/wake':>11} {'up REG':>6} "
          f"{'secs':>6} {'lost':>5} {'oth%':>5}", flush=True)
    for _ in range(args.mid_wake_rounds):
        for name, make in variants:
            quiet(args)
            hook = free_port(socket.SOCK_STREAM)
            server = make(hook)
            parts = cpu_parts(server)
            try:
                u0 = server.counts() if isinstance(server, Mid) else None
                c0 = {k: cpu_seconds(p) for k, p in parts.items()}
                m0, t0 = machine_cpu(), time.time()
                p = probe_push(server, hook, "--push-wake", n)
                out, _ = p.communicate(timeout=n * 20 + 60)
                c1 = {k: cpu_seconds(p) for k, p in parts.items()}
                m1, t1 = machine_cpu(), time.time()
                u1 = server.counts() if isinstance(server, Mid) else None
            finally:
                server.stop()
            try:
                w = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                print(f"{name:<13} the probe failed: {out!r}")
                continue
            cpu = {k: c1[k] - c0[k] for k in parts}
            other = (m1["busy"] - m0["busy"]) - sum(cpu.values()) - (m1["self"] - m0["self"])
            per = {k: 1e6 * v / w["woken"] if w["woken"] else None for k, v in cpu.items()}
            upr = u1["accepted_regs"] - u0["accepted_regs"] if u0 else None
            lost = w["no_push"] + w["no_invite"] + w["unexpected"]
            print(f"{name:<13} {w['woken']:>6} {w['p50_us']:>6} {w['p99_us']:>6} {w['max_us']:>7} "
                  f"{w['e2e_p50_us']:>6} {w['e2e_p99_us']:>6} {w['e2e_max_us']:>7} {w['push_p50_us']:>6} "
                  f"{w['push_p99_us']:>6} {fmt(per.get('sipwake'), '>10.1f')} "
                  f"{fmt(per.get('kamailio'), '>11.1f')} {fmt(upr, '>6')} {w['secs']:>6.1f} {lost:>5} "
                  f"{max(0.0, 100.0 * other / ((t1 - t0) * os.cpu_count())):>5.1f}", flush=True)
            if lost:
                print(f"              calls {w['calls']}: no push {w['no_push']}, pushed but no INVITE "
                      f"{w['no_invite']}, unexpected messages {w['unexpected']}")
    return None


# PostgreSQL cluster (issue 12): a private PostgreSQL server, sipwake nodes sharing it.

PG_SETTINGS = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
               "shared_buffers", "max_wal_size", "checkpoint_timeout")


def pg_bin():
    """The directory of initdb, postgres, createdb, pg_isready and psql: $SIPWAKE_PG_BIN, or else the
    highest version in /usr/lib/postgresql/*/bin; None when PostgreSQL is not installed."""
    if os.environ.get("SIPWAKE_PG_BIN"):
        return os.environ["SIPWAKE_PG_BIN"]
    found = []
    for v in os.listdir("/usr/lib/postgresql") if os.path.isdir("/usr/lib/postgresql") else []:
        b = os.path.join("/usr/lib/postgresql", v, "bin")
        if v.isdigit() and all(os.path.exists(os.path.join(b, x))
                               for x in ("initdb", "postgres", "createdb", "pg_isready", "psql")):
            found.append((int(v), b))
    return max(found)[1] if found else None


def cpu_reaped(pid):
    """CPU seconds of `pid`'s tree plus what its reaped children used (cutime+cstime of `pid`): a
    PostgreSQL backend or autovacuum worker that exited during the run still counts."""
    total = cpu_seconds(pid)
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        fields = st[st.rfind(")") + 2:].split()
        total += (int(fields[13]) + int(fields[14])) / CLK
    except (OSError, ValueError, IndexError):
        pass
    return total


class Postgres:
    """A private PostgreSQL server for the cluster scenario: `initdb` in the bench's work directory, a free
    port on 127.0.0.1 (never the machine's 5432), the socket in its directory, superuser `sipwake` with
    trust authentication, database `sipwake`. PostgreSQL's **default durability**: nothing in the server's
    settings is changed (fsync = on, synchronous_commit = on, full_page_writes = on); `initdb --no-sync`
    only skips syncing initdb's own files. PostgreSQL refuses to run as root, so as root its directory is
    given to the `postgres` user and initdb/postgres run through `setpriv --reuid=postgres` (which execs:
    the PID is the postmaster's). Stopped by PID (SIGINT, fast shutdown)."""

    def __init__(self, workdir):
        self.bin = pg_bin()
        if not self.bin:
            raise RuntimeError("PostgreSQL is not installed (apt-get install -y postgresql), or set SIPWAKE_PG_BIN")
        self.dir = tempfile.mkdtemp(prefix="postgres-", dir=workdir)
        self.data = os.path.join(self.dir, "data")
        self.root = os.geteuid() == 0
        self.proc = None
        if self.root:
            os.chmod(workdir, 0o711)  # the postgres user must reach its directory inside it
            subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
        subprocess.run(self._wrap("initdb") + ["-D", self.data, "-U", "sipwake", "-A", "trust", "--no-sync", "-E",
                                               "UTF8", "--locale=C"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        for attempt in range(5):
            self.port = free_port(socket.SOCK_STREAM)
            if self.port == 5432:
                continue
            err = self._start()
            if err is None:
                break
            if attempt == 4 or "could not" not in err:
                raise RuntimeError("postgres did not start:\n" + err)
        subprocess.run([os.path.join(self.bin, "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "sipwake",
                        "sipwake"], check=True)
        self.url = f"postgres://sipwake@127.0.0.1:{self.port}/sipwake"

    def _wrap(self, prog):
        user = ["--reuid=postgres", "--regid=postgres", "--init-groups"] if self.root else []
        return ["setpriv", *user, "--pdeathsig", "QUIT", "--", os.path.join(self.bin, prog)]

    def _start(self):
        """Starts the server; None once it accepts connections, else its log."""
        log_path = os.path.join(self.dir, "postgres.log")
        log = open(log_path, "w")
        if self.root:
            shutil.chown(log_path, "postgres", "postgres")
        self.proc = subprocess.Popen(self._wrap("postgres") + ["-D", self.data, "-k", self.dir, "-c",
                                                               "listen_addresses=127.0.0.1", "-p", str(self.port)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, process_group=0)
        self.pid = self.proc.pid
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            if subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                               "-U", "sipwake", "-d", "postgres"]).returncode == 0:
                return None
            time.sleep(0.1)
        self.stop()
        with open(log_path) as f:
            return f.read()

    def sql(self, query):
        r = subprocess.run([os.path.join(self.bin, "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "sipwake",
                            "-d", "sipwake", "-At", "-c", query], capture_output=True, text=True, timeout=60)
        return r.stdout.strip()

    def settings(self):
        names = ",".join(f"'{n}'" for n in PG_SETTINGS)
        return self.sql(f"SELECT string_agg(n || '=' || current_setting(n), ' ' ORDER BY i) "
                        f"FROM unnest(ARRAY[{names}]) WITH ORDINALITY AS t(n, i)")

    def sizes(self):
        """(rows in bindings, bytes of the bindings table with its indexes and TOAST, bytes of the database)."""
        out = self.sql("SELECT count(*) || ' ' || pg_total_relation_size('bindings') || ' ' || "
                       "pg_database_size('sipwake') FROM bindings")
        try:
            return tuple(int(x) for x in out.split())
        except ValueError:
            return None

    def cpu(self):
        return cpu_reaped(self.pid)

    def wal(self):
        """(WAL bytes, WAL syncs) so far (pg_stat_wal; backends report them within about a second)."""
        try:
            b, n = self.sql("SELECT wal_bytes || ' ' || wal_sync FROM pg_stat_wal").split()
            return int(b), int(n)
        except ValueError:
            return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own process group: the postmaster's PID
                self.proc.wait()


def store_config(pg, node_id):
    return (f"\n[store]\nbackend = \"postgres\"\nurl = \"{pg.url}\"\n\n"
            f"[cluster]\nnode_id = \"{node_id}\"\n")


def node_metrics(node):
    """{(metric, label value): value} of a sipwake's sipwake_cluster_* counters (/metrics)."""
    out = {}
    try:
        with urllib.request.urlopen(node.mgmt + "/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        m = re.match(r'(sipwake_cluster_\w+)(?:\{\w+="(\w+)"\})? (\S+)', line)
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


class PgNodes(Server):
    """`n` sipwake nodes (`[store] backend = "postgres"`, `[cluster] node_id = "nK"`, default heartbeat)
    on a fresh private PostgreSQL; `config`: the rest of each node's configuration (default: auth off,
    management on). Ready once every node counts `n` live members."""

    def __init__(self, workdir, n, config=None):
        self.name = "pg-1node" if n == 1 else f"pg-{n}nodes"
        self.pg = Postgres(workdir)
        self.nodes = []
        try:
            for i in range(n):
                self.nodes.append(Sipwake(workdir, (config or REG_CONFIG) + store_config(self.pg, f"n{i + 1}")))
            deadline = time.time() + 20
            while not all(node_metrics(x).get(("sipwake_cluster_members", None)) == n for x in self.nodes):
                if time.time() > deadline:
                    raise RuntimeError(f"the {n} nodes did not see each other within 20 s")
                time.sleep(0.2)
        except (OSError, RuntimeError):
            self.stop()
            raise
        self.port, self.pid = self.nodes[0].port, self.nodes[0].pid
        self.ports = [x.port for x in self.nodes]

    def stop(self):
        for x in self.nodes:
            x.stop()
        self.pg.stop()

    def bindings(self):
        return self.nodes[0].bindings()

    def memory(self):
        out = {f"n{i + 1} VmRSS": vm_rss(x.pid) for i, x in enumerate(self.nodes)}
        sz = self.pg.sizes()
        if sz:
            out["pg bindings table"], out["pg database"] = sz[1], sz[2]
        return out

    def cpu(self):
        out = {f"n{i + 1}": cpu_seconds(x.pid) for i, x in enumerate(self.nodes)}
        out["postgres"] = self.pg.cpu()
        return out

    def counters(self):
        """Summed over the nodes: barriers sent and timed out, changes of other nodes applied."""
        tot = {}
        for x in self.nodes:
            for k, v in node_metrics(x).items():
                tot[k] = tot.get(k, 0) + v
        return {"barriers": tot.get(("sipwake_cluster_barriers_total", "sent"), 0),
                "barrier_timeouts": tot.get(("sipwake_cluster_barriers_total", "timeout"), 0),
                "replicated": tot.get(("sipwake_cluster_replicated_total", "upsert"), 0)}


REG_CONFIG = "[auth]\nenabled = false\n\n[management]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"


def cpu_split(server):
    """{part: CPU seconds so far} of what a server is made of: its process tree; for PgNodes each node's
    and PostgreSQL's (its whole tree plus the backends and workers it reaped)."""
    if isinstance(server, PgNodes):
        return server.cpu()
    return {k: cpu_seconds(p) for k, p in cpu_parts(server).items()}


def cluster_measure(server, kind, rate, secs, workdir, args, pool, probe_pool, slices=None, cseq=1):
    """`measure` for one or more nodes: the offered rate (and the probe's PROBE_RATE) split evenly over
    the nodes, each node's share from its own probe and sipp process(es) (--sipp-procs shared out over the
    nodes, at least one each: with --sipp-procs 2, two sipp processes whatever the number of nodes),
    distinct AoRs throughout. Returns the rows: one per node when there are several, then the whole
    ('all'). `slices` (a `Slice` per node) and `cseq`: REGISTERs of those devices (sipp/register_device.xml)
    in their dialogs instead, CSeq 1 registering them and 2 refreshing them (same Call-ID and source)."""
    ports = getattr(server, "ports", [server.port])
    k = len(ports)
    ps = probe_secs(secs)
    probes = []
    for i, port in enumerate(ports):
        pr = PROBE_RATE // k
        if slices:
            sl = slices[i]
            probes.append(run_probe(port, pr, sl.probe_secs, DOMAIN, sl.probe[0],
                                    refresh=(sl.probe[1], sl.probe[2], cseq)))
            continue
        probes.append(run_probe(port, pr, ps, DOMAIN if kind.register else None,
                                probe_pool.take(pr * ps) if probe_pool else 0, None,
                                CALLEE if kind.call else None))
    k0 = server.counters() if isinstance(server, PgNodes) else None
    w0 = server.pg.wal() if isinstance(server, PgNodes) else None
    c0, m0, t0, d0 = cpu_split(server), machine_cpu(), time.time(), disk_ticks()
    extra = ("-nd",) if kind.register else ("-s", CALLEE) if kind.call else ()
    running = []
    for i, (port, r) in enumerate(zip(ports, split(rate, k))):
        if slices:
            dev = ("-nd", "-cid_str", "", "-base_cseq", str(cseq), "-key", "expires", "3600", "-key", "loops", "1")
            running.append((r, [start_sipp(DEVICE, port, rr, n, workdir, dev[:2] + (cid,) + dev[3:], local_port=lp,
                                           inf=inf)
                                for (inf, lp, cid, n), rr in zip(slices[i].procs, split(r, len(slices[i].procs)))]))
            continue
        procs = []
        for rr in split(r, max(1, args.sipp_procs // k)):
            if rr == 0:
                continue
            calls = rr * secs
            inf = None
            if pool is not None:
                inf = os.path.join(workdir, f"sipp_{port}_{rate}_{time.time_ns()}_users.csv")
                write_inf(inf, pool.take(calls), calls, False)
            procs.append(start_sipp(kind.xml, port, rr, calls, workdir, extra, inf=inf, timeout=secs * 3 + 10))
        running.append((r, procs))
    res = [(r, sipp_results(procs)) for r, procs in running]
    lats = []
    for p in probes:
        out, _ = p.communicate(timeout=60)
        try:
            lats.append(json.loads(out.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            lats.append({})
    c1, m1, t1, d1 = cpu_split(server), machine_cpu(), time.time(), disk_ticks()
    k1 = server.counters() if isinstance(server, PgNodes) else None
    w1 = server.pg.wal() if isinstance(server, PgNodes) else None
    cpu = {p: c1[p] - c0[p] for p in c0}
    pg = cpu.pop("postgres", None)
    other = (m1["busy"] - m0["busy"]) - sum(cpu.values()) - (pg or 0) - (m1["self"] - m0["self"])
    common = {"server": server.name, "scenario": kind.name,
              "other_pct": max(0.0, 100.0 * other / ((t1 - t0) * os.cpu_count())),
              "disk_pct": (d1 - d0) / (10.0 * (t1 - t0))}
    rows = []
    nodes = getattr(server, "nodes", [server])
    dones = []
    for i, ((r, (ok, failed, retrans, elapsed)), lat) in enumerate(zip(res, lats)):
        done = ok + lat.get("answered", 0)
        dones.append(done)
        srv = list(cpu.values())[i]
        rows.append(dict(common, node=f"n{i + 1}", rate=r, ok=ok, failed=failed, retrans=retrans,
                         achieved=ok / elapsed if elapsed > 0 else 0.0,
                         fail_pct=100.0 * failed / (ok + failed) if ok + failed else 100.0,
                         p50_us=lat.get("p50_us"), p99_us=lat.get("p99_us"), p999_us=lat.get("p999_us"),
                         srv_us=1e6 * srv / done if done else None, pg_us=None, total_us=None,
                         bindings=nodes[i].bindings() if kind.register else None))
    done = sum(dones)
    ok = sum(r["ok"] for r in rows)
    failed = sum(r["failed"] for r in rows)
    elapsed = max(e for _, (_, _, _, e) in res)
    whole = dict(common, node="all" if k > 1 else "-", rate=rate, ok=ok, failed=failed,
                 retrans=sum(r["retrans"] for r in rows), achieved=ok / elapsed if elapsed > 0 else 0.0,
                 fail_pct=100.0 * failed / (ok + failed) if ok + failed else 100.0,
                 p50_us=rows[0]["p50_us"] if k == 1 else None, p99_us=rows[0]["p99_us"] if k == 1 else None,
                 p999_us=rows[0]["p999_us"] if k == 1 else None,
                 srv_us=1e6 * sum(cpu.values()) / done if done else None,
                 pg_us=1e6 * pg / done if done and pg is not None else None,
                 total_us=1e6 * (sum(cpu.values()) + (pg or 0)) / done if done else None,
                 bindings=server.bindings() if kind.register else None)
    if k0 is not None:
        whole["repl"] = (k1["replicated"] - k0["replicated"]) / done if done else None
        whole["barr"] = (k1["barriers"] - k0["barriers"]) / done if done else None
        whole["barrier_timeouts"] = k1["barrier_timeouts"] - k0["barrier_timeouts"]
    if w0 and w1 and done:
        whole["wal_b"] = (w1[0] - w0[0]) / done
        whole["wal_sync"] = (w1[1] - w0[1]) / done
    return (rows if k > 1 else []) + [whole]


CLUSTER_HEADER = (f"{'server':<14} {'node':<4} {'rate/s':>7} {'ok/s':>7} {'fail%':>7} {'retr':>5} {'p50µs':>6} "
                  f"{'p99µs':>6} {'p99.9µs':>7} {'srv µs':>7} {'pg µs':>6} {'total µs':>8} {'repl':>5} "
                  f"{'barr':>5} {'fsync':>5} {'walB':>5} {'bindings':>8} {'oth%':>5} {'dsk%':>5}")


def print_cluster_row(r):
    print(f"{r['server']:<14} {r['node']:<4} {r['rate']:>7} {r['achieved']:>7.0f} {r['fail_pct']:>7.3f} "
          f"{r['retrans']:>5} {fmt(r['p50_us'], '>6')} {fmt(r['p99_us'], '>6')} {fmt(r['p999_us'], '>7')} "
          f"{fmt(r['srv_us'], '>7.1f')} {fmt(r['pg_us'], '>6.1f')} {fmt(r['total_us'], '>8.1f')} "
          f"{fmt(r.get('repl'), '>5.2f')} {fmt(r.get('barr'), '>5.2f')} {fmt(r.get('wal_sync'), '>5.3f')} "
          f"{fmt(r.get('wal_b'), '>5.0f')} {fmt(r['bindings'], '>8')} "
          f"{r['other_pct']:>5.1f} {r['disk_pct']:>5.1f}", flush=True)
    if r.get("barrier_timeouts"):
        print(f"{'':<19} {r['barrier_timeouts']:.0f} lookup barriers timed out (routed from the cache)")


def cluster_sweep(label, make, kind, rates, secs, workdir, args):
    """`sweep` for cluster_measure: a fresh server (and PostgreSQL), the rates in order up to the first not
    sustained; for REGISTER, the memory of each sipwake process and the size of the bindings table after."""
    quiet(args)
    server = make()
    server.name = label
    pool = Pool() if kind.register else None
    probe_pool = Pool(0) if kind.register else None
    rows, callee = [], None
    procs = {f"n{i + 1}": x.pid for i, x in enumerate(server.nodes)} if isinstance(server, PgNodes) else (
        {"sipwake": server.pid} if isinstance(server, Sipwake) else {})
    rss0 = {k: vm_rss(p) for k, p in procs.items()}
    try:
        if kind.call:
            callee = Callee(server, workdir)
        for rate in rates:
            out = cluster_measure(server, kind, rate, secs, workdir, args, pool, probe_pool)
            for r in out:
                print_cluster_row(r)
            out[-1]["nodes"] = out[:-1]
            rows.append(out[-1])
            if not sustained(out[-1]):
                break
        if kind.register and procs:
            time.sleep(1)
            b = server.bindings()
            mem = ", ".join(f"{k} {rss0[k] / 2**20:.0f} -> {vm_rss(p) / 2**20:.0f} MiB"
                            + (f" ({(vm_rss(p) - rss0[k]) / b:.0f} B/binding)" if b else "")
                            for k, p in procs.items())
            line = f"# {server.name}: {b} bindings; VmRSS from start-up: {mem}"
            if isinstance(server, PgNodes):
                sz = server.pg.sizes()
                if sz and sz[0]:
                    line += (f"; PostgreSQL: {sz[0]} rows, bindings table {sz[1] / 2**20:.1f} MiB "
                             f"({sz[1] / sz[0]:.0f} B/row, indexes included), database {sz[2] / 2**20:.1f} MiB")
            print(line + " (the RSS figures include what the load left allocated; see the rss part)", flush=True)
            if isinstance(server, PgNodes) and b:
                cold_start(server, b, rss0["n1"], workdir)
    finally:
        if callee:
            callee.stop()
            st = callee.stats()
            if st:
                print(f"# {server.name}: the sipp callee completed {st[0]} calls, failed {st[1]}, "
                      f"retransmitted {st[2]} times", flush=True)
        server.stop()
    return rows


def cluster_refresh_sweep(label, make, rates, secs, workdir, args):
    """New registrations and their refreshes on a fresh server: per rate, a slice of rate x secs devices
    (sipp/register_device.xml, split over the nodes) registers at the rate ('new', CSeq 1), then the same
    devices refresh at the rate ('refresh': same Call-ID and source, CSeq 2, an UPDATE of the row on
    PostgreSQL). Returns {phase: rows of the whole}."""
    quiet(args)
    server = make()
    pool, probe_pool = Pool(), Pool(0)
    k = len(getattr(server, "ports", [server.port]))
    rows = {"new": [], "refresh": []}
    try:
        for rate in rates:
            slices = [Slice(workdir, pool, probe_pool, r * secs, max(1, args.sipp_procs // k), probe_secs(secs))
                      for r in split(rate, k)]
            ok = True
            for phase, cseq in (("new", 1), ("refresh", 2)):
                drain(server, 10)
                out = cluster_measure(server, REGISTER, rate, secs, workdir, args, None, None, slices, cseq)
                for r in out:
                    r["server"] = f"{label}/{'ref' if cseq == 2 else 'new'}"
                    print_cluster_row(r)
                rows[phase].append(out[-1])
                ok = ok and sustained(out[-1])
            if not ok:
                break
    finally:
        server.stop()
    return rows


def cold_start(server, rows, base, workdir):
    """Starts one more node on the cluster's database (its `rows` bindings) and times it: until it
    answers (management API up) and until its cache holds every binding; its VmRSS then, over `base` (a
    fresh node's), is the cache's memory without what a load leaves allocated."""
    t0 = time.time()
    node = Sipwake(workdir, REG_CONFIG + store_config(server.pg, "cold"))
    try:
        up = time.time() - t0
        n = node.bindings()
        while n != rows and time.time() - t0 < 600:
            time.sleep(0.05)
            n = node.bindings()
        full = time.time() - t0
        rss = vm_rss(node.pid)
    finally:
        node.stop()
    print(f"# {server.name}: one more node started on these {rows} rows: answering after {up:.1f} s, "
          f"{n} bindings in its cache after {full:.1f} s ({n / full:.0f} rows/s); VmRSS {rss / 2**20:.0f} MiB, "
          f"{(rss - base) / max(n, 1):.0f} B/binding over a fresh node's {base / 2**20:.0f} MiB", flush=True)


def cluster_wake(args, workdir, label, make, two):
    """Wake latency (sip-probe --push-wake) on `make(hook)`; `two`: the device registers at node 2
    (--register-target) while the calls go to node 1."""
    quiet(args)
    hook = free_port(socket.SOCK_STREAM)
    server = make(hook)
    try:
        extra = ("--register-target", f"127.0.0.1:{server.ports[1]}") if two else ()
        c0 = cpu_split(server)
        p = probe_push(server, hook, "--push-wake", args.cluster_wake, *extra)
        out, _ = p.communicate(timeout=args.cluster_wake * 20 + 60)
        c1 = cpu_split(server)
    finally:
        server.stop()
    try:
        w = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"{label:<26} the probe failed: {out!r}", flush=True)
        return
    cpu = {k: c1[k] - c0[k] for k in c0}
    pg = cpu.pop("postgres", None)
    per = lambda v: 1e6 * v / w["woken"] if w["woken"] and v is not None else None  # noqa: E731
    lost = w["no_push"] + w["no_invite"] + w["unexpected"]
    print(f"{label:<26} {w['woken']:>6} {w['p50_us']:>6} {w['p90_us']:>6} {w['p99_us']:>6} {w['max_us']:>7} "
          f"{w['e2e_p50_us']:>6} {w['e2e_p99_us']:>6} {w['push_p50_us']:>6} {w['push_p99_us']:>6} "
          f"{fmt(per(sum(cpu.values())), '>7.1f')} {fmt(per(pg), '>6.1f')} {lost:>5} {w['secs']:>6.1f}", flush=True)
    if lost:
        print(f"{'':<26} calls {w['calls']}: no push {w['no_push']}, pushed but no INVITE {w['no_invite']}, "
              f"unexpected messages {w['unexpected']}")


def scenario_cluster(args, workdir):
    """The PostgreSQL cluster (issue 12) beside SQLite and Kamailio, one sitting: REGISTER sweep (sipwake
    SQLite, sipwake on PostgreSQL with 1 node and with 2 nodes sharing the load, Kamailio), calls (SQLite vs
    PostgreSQL 1 node: the lookup barrier), wake latency across nodes, memory per binding."""
    pg = Postgres(workdir)
    try:
        print(f"\n# PostgreSQL: {pg.bin}, a fresh private server per sweep (initdb in the bench's work directory, "
              f"127.0.0.1, a free port), default durability settings, nothing changed: {pg.settings()}")
    finally:
        pg.stop()
    print("# sipwake SQLite: WAL, synchronous = NORMAL (no fsync per commit); sipwake PostgreSQL: a 200 OK "
          "waits for the commit, i.e. its WAL fsync (synchronous_commit = on); Kamailio: in memory (db_mode 0)")
    variants = [("sqlite", lambda: Sipwake(workdir, REG_CONFIG)),
                ("pg-1node", lambda: PgNodes(workdir, 1)),
                ("pg-2nodes", lambda: PgNodes(workdir, 2))]
    if not args.no_kamailio:
        variants.append(("kamailio", lambda: Kamailio(workdir)))
    note = ("# srv µs: CPU of the SIP server's processes (sipwake node(s), or Kamailio) per call answered; pg µs: "
            "PostgreSQL's whole process tree; total: both. With 2 nodes each takes half the rate (its own sipp "
            "and a probe at 100/s) and the rows n1/n2 give each node's own CPU per call it answered (applying "
            "the other node's changes included) and its probe's latency. repl: changes of other nodes applied "
            "per call (summed over the nodes); barr: lookup barriers sent per call; fsync, walB: PostgreSQL's WAL "
            "syncs and WAL bytes per call (pg_stat_wal)")
    print(f"\n== cluster 1/4: REGISTER, auth off, new AoR per call ==\n# latency (sip-probe): REGISTER->200\n{note}"
          f"\n{CLUSTER_HEADER}", flush=True)
    reg = {}
    for name, make in variants:
        reg[name] = cluster_sweep(name, make, REGISTER, args.rates, args.secs, workdir, args)
    print(f"\n== cluster 1/4: highest sustained REGISTER/s (<0.1% failures, >=90% of the offered rate) ==\n"
          f"{CLUSTER_HEADER}")
    for name, rows in reg.items():
        b = best(rows)
        if not b:
            print(f"{name:<14} no sustained rate")
            continue
        for r in b["nodes"] + [b]:
            print_cluster_row(r)
    print("\n== cluster 1/4 per offered rate: REGISTER/s, CPU µs per REGISTER (sipwake or Kamailio + PostgreSQL "
          "= total), total / Kamailio's ==")
    names = list(reg)
    print(f"{'rate/s':>7} | " + " | ".join(f"{n:>9} {'reg/s':>6} {'srv':>5} {'pg':>5} {'total':>6}" for n in names)
          + (" | total/kamailio" if "kamailio" in reg else ""))
    by = {n: {r["rate"]: r for r in rows} for n, rows in reg.items()}
    for rate in args.rates:
        if not any(rate in by[n] for n in names):
            continue
        cells = []
        for n in names:
            r = by[n].get(rate)
            cells.append(f"{'':>9} {fmt(r and r['achieved'], '>6.0f')} {fmt(r and r['srv_us'], '>5.1f')} "
                         f"{fmt(r and r['pg_us'], '>5.1f')} {fmt(r and r['total_us'], '>6.1f')}")
        kam = by.get("kamailio", {}).get(rate)
        x = " ".join(f"{n} {by[n][rate]['total_us'] / kam['total_us']:.1f}x" for n in names
                     if n != "kamailio" and rate in by[n] and kam and kam["total_us"] and by[n][rate]["total_us"])
        print(f"{rate:>7} | " + " | ".join(cells) + (f" | {x}" if "kamailio" in reg else ""))

    print(f"\n== cluster 1b/4: REGISTER refreshes (an existing binding in its dialog) beside new registrations of "
          f"the same devices ==\n# per rate: rate x secs devices register (new, CSeq 1), then refresh at the same rate "
          f"(ref: same Call-ID and source, CSeq 2); sipp/register_device.xml; the probe does the same with its own\n"
          f"{CLUSTER_HEADER}", flush=True)
    ref = {}
    for name, make in variants[:3]:
        ref[name] = cluster_refresh_sweep(name, make, args.cluster_refresh_rates, args.secs, workdir, args)
    print("\n== cluster 1b/4 per offered rate: CPU µs per REGISTER, new / refresh (srv + pg = total), WAL bytes ==")
    print(f"{'rate/s':>7} | " + " | ".join(f"{n:>9} {'new':>6} {'ref srv':>7} {'pg':>5} {'total':>6} {'walB':>5}"
                                           for n in ref))
    for rate in args.cluster_refresh_rates:
        cells = []
        for n, ph in ref.items():
            a = {r["rate"]: r for r in ph["new"]}.get(rate)
            b = {r["rate"]: r for r in ph["refresh"]}.get(rate)
            cells.append(f"{'':>9} {fmt(a and a['total_us'], '>6.1f')} {fmt(b and b['srv_us'], '>7.1f')} "
                         f"{fmt(b and b['pg_us'], '>5.1f')} {fmt(b and b['total_us'], '>6.1f')} "
                         f"{fmt(b and b.get('wal_b'), '>5.0f')}")
        print(f"{rate:>7} | " + " | ".join(cells))

    print(f"\n== cluster 2/4: calls through the proxy (INVITE->100/180->200->ACK, BYE->200), sipwake SQLite vs "
          f"PostgreSQL 1 node (one lookup barrier per initial INVITE) ==\n# latency (sip-probe): INVITE->200 through "
          f"the proxy; µs per call (INVITE, ACK, BYE and their answers)\n{CLUSTER_HEADER}", flush=True)
    calls = {}
    for name, make in variants[:2]:
        calls[name] = cluster_sweep(name, make, CALLS, args.cluster_call_rates, args.secs, workdir, args)
    print("# the barrier's cost: PostgreSQL 1 node minus SQLite, per call and per barrier sent")
    sq = {r["rate"]: r for r in calls["sqlite"]}
    for r in calls["pg-1node"]:
        q = sq.get(r["rate"])
        if not q or not r.get("barr") or r["srv_us"] is None or q["srv_us"] is None:
            continue
        d_srv, d_pg = r["srv_us"] - q["srv_us"], r["pg_us"] or 0.0
        print(f"{r['rate']:>7}/s: {r['barr']:.2f} barriers per call; per call +{d_srv:.1f} µs sipwake, "
              f"+{d_pg:.1f} µs PostgreSQL (+{d_srv + d_pg:.1f}); per barrier +{d_srv / r['barr']:.0f} µs sipwake, "
              f"+{d_pg / r['barr']:.0f} µs PostgreSQL; INVITE->200 p50 {fmt(q['p50_us'], '')} -> "
              f"{fmt(r['p50_us'], '')} µs", flush=True)

    hold = args.push_hold
    print(f"\n== cluster 3/4: wake latency, {args.cluster_wake} calls one after the other to one sleeping device "
          f"(push Contact); the device re-REGISTERs as soon as the push arrives ==\n# reg->inv: REGISTER sent -> "
          f"parked INVITE at the device; on 2 nodes the REGISTER goes to node B (n2) and the call to node A (n1): "
          f"A forks the parked INVITE through B; e2e: INVITE sent -> INVITE at the device; push: INVITE sent -> "
          f"push at the webhook; µs/wake: CPU per woken call, all sipwake processes, and PostgreSQL's", flush=True)
    print(f"{'server':<26} {'woken':>6} {'reg50':>6} {'reg90':>6} {'reg99':>6} {'regmax':>7} {'e2e50':>6} "
          f"{'e2e99':>6} {'push50':>6} {'push99':>6} {'sw µs':>7} {'pg µs':>6} {'lost':>5} {'secs':>6}", flush=True)
    cluster_wake(args, workdir, "sqlite, 1 node", lambda hook: Sipwake(workdir, push_config(hook, hold)), False)
    cluster_wake(args, workdir, "pg, 1 node",
                 lambda hook: PgNodes(workdir, 1, push_config(hook, hold)), False)
    cluster_wake(args, workdir, "pg, 2 nodes: REGISTER->B",
                 lambda hook: PgNodes(workdir, 2, push_config(hook, hold)), True)

    if args.cluster_rss:
        print("\n== cluster 4/4: memory per binding, REGISTERs to node 1 (node 2 follows through the feed); "
              "CPU per REGISTER: every process of the server (nodes and PostgreSQL) ==", end="")
        scenario_rss(args, workdir, [("sqlite", lambda: Sipwake(workdir, REG_CONFIG)),
                                     ("pg-2nodes", lambda: PgNodes(workdir, 2))], args.cluster_rss)
    return None


SCENARIOS = {
    "options": ("OPTIONS", OPTIONS, scenario_sweep(OPTIONS)),
    "register": ("REGISTER, auth off (new AoR per call)", REGISTER, scenario_sweep(REGISTER)),
    "register_auth": ("REGISTER with digest auth (REGISTER->401->REGISTER->200, new AoR per call)", REGISTER_AUTH,
                      scenario_sweep(REGISTER_AUTH)),
    "calls": ("calls through the proxy (INVITE->100/180->200->ACK, BYE->200)", CALLS, scenario_sweep(CALLS)),
    "rss": ("memory per binding", None, scenario_rss),
    "push": ("RFC 8599 push wake-up (sipwake only)", None, scenario_push),
    "wake": ("wake latency, back to back and spaced out (sipwake only)", None, scenario_wake),
    "mid_register": ("mid-registrar REGISTER/s", None, scenario_mid_register),
    "mid_throttle": ("mid-registrar throttling", None, scenario_mid_throttle),
    "mid_wake": ("mid-registrar wake latency", None, scenario_mid_wake),
    # bench/tls_bench.py; it takes this module for the servers and the measuring helpers.
    "tls": ("REGISTER over TLS (persistent connections, new connections) beside UDP", None,
            lambda args, workdir: tls_bench.scenario_tls(args, workdir, sys.modules[__name__])),
    "cluster": ("PostgreSQL cluster (issue 12): REGISTER, calls, cross-node wake, memory", None, scenario_cluster),
    "scale": ("one node at 1M push bindings: memory, database, idle CPU, restart (sipwake only)", None,
              scenario_scale),
}
# `mid`: the three mid-registrar scenarios.
ALIASES = {"mid": ["mid_register", "mid_throttle", "mid_wake"]}


def main():
    global SIPWAKE_BIN, PROBE_BIN
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS),
                    help=", ".join(SCENARIOS) + "; mid = " + ", ".join(ALIASES["mid"]))
    ap.add_argument("--rates", default="2000,5000,10000,20000,30000,40000,60000", help="calls/s, comma-separated")
    ap.add_argument("--secs", type=int, default=5, help="seconds per rate")
    ap.add_argument("--aors", type=int, default=100000,
                    help="subscribers provisioned for register_auth (at least; grown to what the sweep may use, "
                         "since every call registers a new AoR)")
    ap.add_argument("--rss-bindings", type=int, default=100000, help="bindings registered by the rss scenario")
    ap.add_argument("--rss-rate", type=int, default=5000, help="REGISTER/s of the rss scenario")
    ap.add_argument("--sipp-procs", type=int, default=1,
                    help="sipp processes sharing each rate (one sipp tops out near 30k calls/s)")
    ap.add_argument("--wait-idle", type=int, default=300,
                    help="before each sweep, wait up to this many seconds for other processes to leave the CPUs idle")
    ap.add_argument("--push-wake", type=int, default=2000, help="push: calls timed REGISTER -> parked INVITE")
    ap.add_argument("--wake-spaced", type=int, default=30, help="push, wake: calls of the spaced-out wake run")
    ap.add_argument("--wake-gap-ms", type=int, default=3000, help="push, wake: ms between the spaced-out calls")
    ap.add_argument("--push-devices", type=int, default=2000, help="push: sleeping devices, one INVITE each")
    ap.add_argument("--push-rates", default="1000,2000", help="push: INVITEs/s to the sleeping devices, comma-separated")
    ap.add_argument("--push-hold", type=int, default=2, help="push: sipwake's [push] invite_hold_secs")
    ap.add_argument("--mid-modes", default="mirror,contact,aor",
                    help="mid_register, mid_throttle: throttle modes, comma-separated")
    ap.add_argument("--mid-devices", type=int, default=1000, help="mid_throttle: devices")
    ap.add_argument("--mid-per-aor", type=int, default=2, help="mid_throttle: devices per AoR")
    ap.add_argument("--mid-expires", type=int, default=20, help="mid_throttle: the devices' Expires, s")
    ap.add_argument("--mid-refresh", type=int, default=18, help="mid_throttle: seconds between a device's REGISTERs")
    ap.add_argument("--mid-upstream-expires", type=int, default=600,
                    help="mid_throttle: [mid_registrar] upstream_expires")
    ap.add_argument("--mid-secs", type=int, default=0,
                    help="mid_throttle: seconds of refreshes (each device sends secs // refresh + 1 REGISTERs); "
                         "default one upstream period, k x refresh")
    ap.add_argument("--mid-wake", type=int, default=20000, help="mid_wake: woken calls per server run")
    ap.add_argument("--mid-wake-modes", default="mirror,contact", help="mid_wake: throttle modes, comma-separated")
    ap.add_argument("--mid-wake-rounds", type=int, default=1,
                    help="mid_wake: rounds of (registrar, mid modes...) in alternation")
    ap.add_argument("--cluster-call-rates", default="1000,2000",
                    help="cluster: calls/s of the calls part (SQLite vs PostgreSQL 1 node), comma-separated")
    ap.add_argument("--cluster-refresh-rates", default="2000,5000,10000",
                    help="cluster: REGISTER/s of the new/refresh part (SQLite, PostgreSQL 1 and 2 nodes)")
    ap.add_argument("--cluster-wake", type=int, default=1000, help="cluster: woken calls per wake-latency run")
    ap.add_argument("--cluster-rss", type=int, default=100000,
                    help="cluster: bindings of the memory part (SQLite and PostgreSQL 2 nodes); 0 skips it")
    ap.add_argument("--scale-bindings", type=int, default=1000000,
                    help="scale: push bindings registered (distinct AoRs) before the restart")
    ap.add_argument("--scale-rate", type=int, default=8000, help="scale: REGISTER/s while registering them")
    tls_bench.add_arguments(ap)
    ap.add_argument("--sipwake-bin", default=SIPWAKE_BIN,
                    help="the sipwake binary to measure (e.g. an older build, for before/after in one sitting)")
    ap.add_argument("--probe-bin", default=PROBE_BIN,
                    help="the sip-probe binary (default target/release/sip-probe); with --sipwake-bin and "
                         "--no-build, binaries built elsewhere")
    ap.add_argument("--no-kamailio", action="store_true")
    ap.add_argument("--no-floor", action="store_true", help="no UDP floor (sip-probe udp-floor) beside the servers")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--profiling", action="store_true",
                    help="build and measure the profiling profile (release plus line tables, for perf record): "
                         "target/profiling/ instead of target/release/, which has no debug info")
    args = ap.parse_args()
    if args.profiling:
        if args.sipwake_bin == SIPWAKE_BIN:
            args.sipwake_bin = os.path.join(ROOT, "target", "profiling", "sipwake")
        if args.probe_bin == PROBE_BIN:
            args.probe_bin = os.path.join(ROOT, "target", "profiling", "sip-probe")
    SIPWAKE_BIN = os.path.abspath(args.sipwake_bin)
    PROBE_BIN = os.path.abspath(args.probe_bin)
    args.rates = [int(r) for r in args.rates.split(",")]
    args.push_rates = [int(r) for r in args.push_rates.split(",")]
    args.cluster_call_rates = [int(r) for r in args.cluster_call_rates.split(",")]
    args.cluster_refresh_rates = [int(r) for r in args.cluster_refresh_rates.split(",")]
    args.mid_modes = args.mid_modes.split(",")
    args.mid_wake_modes = args.mid_wake_modes.split(",")
    args.scenarios = [s for name in args.scenarios for s in ALIASES.get(name, [name])]
    for name in args.scenarios:
        if name not in SCENARIOS:
            sys.exit(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    if args.no_kamailio and any(n.startswith("mid_") for n in args.scenarios):
        sys.exit("the mid-registrar scenarios need Kamailio (the upstream registrar)")
    for tool in ["sipp"] + ([] if args.no_kamailio else ["kamailio", "kamcmd"]):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: apt-get install -y {'sip-tester' if tool == 'sipp' else 'kamailio'}")
    if "cluster" in args.scenarios and not pg_bin():
        why = ("cluster: PostgreSQL is not installed: apt-get install -y postgresql (or set SIPWAKE_PG_BIN to the "
               "directory of initdb and postgres); the bench starts its own server, never the machine's")
        if "cluster" in sys.argv[1:]:
            sys.exit(why)
        print(f"# skipping {why}")
        args.scenarios.remove("cluster")
    if not args.no_build:
        profile = "profiling" if args.profiling else "release"
        subprocess.run(["cargo", "build", "--profile", profile, "-p", "sipwake", "-p", "sip-probe"], cwd=ROOT,
                       check=True)
    sipp_v = re.search(r"v[0-9.]+", subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout)
    print(f"machine: {os.cpu_count()} cores; sipp {sipp_v.group(0) if sipp_v else '?'} x{args.sipp_procs}; "
          f"probe {PROBE_RATE} calls/s during each measurement; sipwake {SIPWAKE_BIN}; sip-probe {PROBE_BIN}")
    with tempfile.TemporaryDirectory(prefix="sipwake-bench-") as workdir:
        for name in args.scenarios:
            title, kind, fn = SCENARIOS[name]
            if kind is not None:
                lat = ("latency (sip-probe): REGISTER->401->REGISTER->200, whole exchange; leg50/leg99: the "
                       "authenticated REGISTER->200 alone" if kind.auth else
                       "latency (sip-probe): INVITE->200 through the proxy (callee's reaction included); leg50/leg99: "
                       "BYE->200; req/s and cpuµs/req count INVITE, ACK and BYE" if kind.call else
                       "latency (sip-probe): request->200")
                print(f"\n== {title} ==\n# {lat}\n{HEADER}", flush=True)
            results = fn(args, workdir)
            if kind is not None:
                compare(title, kind, results)


if __name__ == "__main__":
    main()
