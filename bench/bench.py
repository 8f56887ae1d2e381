#!/usr/bin/env python3
"""sipwake benchmarks, with Kamailio run by the same script in the same run.

One command (from the repository root):

    bench/run.sh                 # all scenarios
    bench/run.sh options         # one scenario
    bench/run.sh options --rates 5000,10000,20000 --secs 5

For each scenario and each server it drives the server with sipp at
increasing rates and prints, per rate: the rate sipp achieved, the failure
ratio, latency percentiles measured by sip-probe (µs resolution; sipp's own
are 1 ms), and the server's CPU seconds per 1000 requests (utime+stime of
the server and its children, from /proc). A rate counts as sustained when
failures stay under 0.1% and sipp reaches 90% of the target. Only loopback
addresses are used.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK = os.sysconf("SC_CLK_TCK")


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
    """Sum of RSS over the process tree (Kamailio's shared memory counted once per process it touched)."""
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


class Server:
    name = "?"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Sipwake(Server):
    name = "sipwake"

    def __init__(self, workdir, config=None):
        self.port = free_port()
        binary = os.path.join(ROOT, "target", "release", "sipwake")
        args = [binary, "--listen", f"udp:127.0.0.1:{self.port}", "--data-dir", os.path.join(workdir, "sipwake-data")]
        if config:
            path = os.path.join(workdir, "sipwake.toml")
            with open(path, "w") as f:
                f.write(config)
            args += ["--config", path]
        self.log = open(os.path.join(workdir, "sipwake.log"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=dict(os.environ, RUST_LOG="warn"))
        line = self.proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError("sipwake did not start; see " + self.log.name)
        self.pid = self.proc.pid


class Kamailio(Server):
    name = "kamailio"

    def __init__(self, workdir):
        self.port = free_port()
        self.log = open(os.path.join(workdir, "kamailio.log"), "w")
        cfg = os.path.join(ROOT, "bench", "kamailio.cfg")
        self.proc = subprocess.Popen(
            ["kamailio", "-f", cfg, "-DD", "-E", "-x", "tlsf", "-m", "4096", "-M", "64", "-n", "2",
             "-l", f"udp:127.0.0.1:{self.port}", "-Y", workdir, "-P", os.path.join(workdir, "kamailio.pid")],
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
        raise RuntimeError("kamailio did not start; see " + self.log.name)


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


def run_sipp(scenario, port, rate, secs, workdir, extra=()):
    """Runs sipp at `rate` for `secs`; returns (successful, failed, elapsed_s)."""
    stf = os.path.join(workdir, f"sipp_{port}_{rate}.csv")
    calls = rate * secs
    args = ["sipp", f"127.0.0.1:{port}", "-sf", os.path.join(ROOT, "bench", "sipp", scenario),
            "-t", "u1", "-i", "127.0.0.1", "-p", str(free_port()), "-cp", str(free_port()),
            "-mp", str(free_port()), "-r", str(rate), "-m", str(calls), "-l", str(max(rate, 1000)),
            "-buff_size", "8388608", "-nostdin", "-recv_timeout", "5000", "-timeout", f"{secs * 3 + 10}s",
            "-trace_stat", "-stf", stf, "-fd", "1", *extra]
    t0 = time.time()
    subprocess.run(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.time() - t0
    ok = failed = 0
    try:
        with open(stf) as f:
            rows = [r for r in f.read().splitlines() if r.strip()]
        head = rows[0].split(";")
        last = rows[-1].split(";")
        ok = int(last[head.index("SuccessfulCall(C)")])
        failed = int(last[head.index("FailedCall(C)")])
        elapsed_c = last[head.index("ElapsedTime(C)")]
        h, m, s = elapsed_c.split(":")[:3]
        e = int(h) * 3600 + int(m) * 60 + float(s)
        if e > 0:
            elapsed = e
    except (OSError, ValueError, IndexError):
        pass
    return ok, failed, elapsed


def run_probe(port, rate, secs, register=None):
    args = [os.path.join(ROOT, "target", "release", "sip-probe"), "--target", f"127.0.0.1:{port}",
            "--rate", str(rate), "--secs", str(secs)]
    if register:
        args += ["--register", register]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def measure(server, scenario, rate, secs, workdir, probe_register=None, sipp_extra=()):
    probe = run_probe(server.port, 200, max(secs - 1, 1), probe_register)
    c0 = cpu_seconds(server.pid)
    ok, failed, elapsed = run_sipp(scenario, server.port, rate, secs, workdir, sipp_extra)
    c1 = cpu_seconds(server.pid)
    out, _ = probe.communicate(timeout=30)
    try:
        lat = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        lat = {}
    total = ok + failed
    return {
        "server": server.name, "scenario": scenario.removesuffix(".xml"), "rate": rate,
        "achieved": ok / elapsed if elapsed > 0 else 0.0,
        "ok": ok, "failed": failed,
        "fail_pct": 100.0 * failed / total if total else 100.0,
        "p50_us": lat.get("p50_us"), "p99_us": lat.get("p99_us"), "p999_us": lat.get("p999_us"),
        "cpu_s_per_1k": 1000.0 * (c1 - c0) / ok if ok else None,
        "cpu_us_per_req": 1e6 * (c1 - c0) / ok if ok else None,
    }


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def print_row(r):
    print(f"{r['scenario']:<10} {r['server']:<9} {r['rate']:>7} {fmt(r['achieved'], '>10.0f')} "
          f"{fmt(r['fail_pct'], '>7.3f')} {fmt(r['p50_us'], '>7')} {fmt(r['p99_us'], '>7')} {fmt(r['p999_us'], '>8')} "
          f"{fmt(r['cpu_s_per_1k'], '>9.4f')} {fmt(r['cpu_us_per_req'], '>8.1f')}", flush=True)


HEADER = (f"{'scenario':<10} {'server':<9} {'rate/s':>7} {'achieved/s':>10} {'fail%':>7} {'p50µs':>7} "
          f"{'p99µs':>7} {'p99.9µs':>8} {'cpu_s/1k':>9} {'cpuµs/req':>8}")


def sweep(make_server, scenario, rates, secs, workdir, **kw):
    server = make_server()
    rows = []
    try:
        for rate in rates:
            r = measure(server, scenario, rate, secs, workdir, **kw)
            print_row(r)
            rows.append(r)
            if r["fail_pct"] >= 0.1 or r["achieved"] < 0.9 * rate:
                break
    finally:
        server.stop()
    return rows


def best(rows):
    good = [r for r in rows if r["fail_pct"] < 0.1 and r["achieved"] >= 0.9 * r["rate"]]
    return max(good, key=lambda r: r["achieved"]) if good else None


def scenario_options(args, workdir):
    results = {}
    for name, make in servers(args, workdir):
        results[name] = sweep(make, "options.xml", args.rates, args.secs, workdir)
    return results


def servers(args, workdir):
    out = [("sipwake", lambda: Sipwake(workdir))]
    if not args.no_kamailio:
        out.append(("kamailio", lambda: Kamailio(workdir)))
    return out


def summarize(title, results):
    print(f"\n== {title}: highest sustained rate (<0.1% failures) ==")
    print(HEADER)
    picked = {}
    for name, rows in results.items():
        b = best(rows)
        if b:
            print_row(b)
            picked[name] = b
        else:
            print(f"{'':<10} {name:<9} no sustained rate")
    if "sipwake" in picked and "kamailio" in picked:
        s, k = picked["sipwake"], picked["kamailio"]
        # CPU per request compared at the same offered rate (the lower of the two best rates).
        same = [(rs, rk) for rs in results["sipwake"] for rk in results["kamailio"]
                if rs["rate"] == rk["rate"] and rs["cpu_us_per_req"] and rk["cpu_us_per_req"]]
        print(f"ratio sipwake/kamailio: sustained rate {s['achieved'] / k['achieved']:.2f}x", end="")
        if same:
            rs, rk = same[-1]
            print(f", CPU per request at {rs['rate']}/s {rs['cpu_us_per_req'] / rk['cpu_us_per_req']:.2f}x "
                  f"({rs['cpu_us_per_req']:.1f} vs {rk['cpu_us_per_req']:.1f} µs)", end="")
        print()


SCENARIOS = {"options": ("OPTIONS", scenario_options)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS), help=", ".join(SCENARIOS))
    ap.add_argument("--rates", default="2000,5000,10000,20000,30000,40000,60000")
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--no-kamailio", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    args.rates = [int(r) for r in args.rates.split(",")]
    for tool in ["sipp"] + ([] if args.no_kamailio else ["kamailio"]):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: apt-get install -y {'sip-tester' if tool == 'sipp' else tool}")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "sipwake", "-p", "sip-probe"], cwd=ROOT, check=True)
    sipp_v = re.search(r"v[0-9.]+", subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout)
    print(f"machine: {os.cpu_count()} cores; sipp {sipp_v.group(0) if sipp_v else '?'}")
    with tempfile.TemporaryDirectory(prefix="sipwake-bench-") as workdir:
        print(HEADER)
        for name in args.scenarios:
            if name not in SCENARIOS:
                sys.exit(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
            title, fn = SCENARIOS[name]
            results = fn(args, workdir)
            summarize(title, results)


if __name__ == "__main__":
    main()
