#!/usr/bin/env python3
"""Push throughput of each sender of crates/push-senders, against local mocks.

    bench/push_senders.sh                                  # apns, fcm, webpush, webhook at 64 and 256
    bench/push_senders.sh --senders apns,webpush+ece --concurrency 16,64,256 --secs 10

For each sender: starts the push service as a separate process, `push-mock
--service apns|fcm|webpush` (HTTP/2 over TLS on 127.0.0.1, the real APIs,
every request checked: JWT signatures, headers, payloads, WebPush
decryption) or, for the webhook sender, `sip-probe webhook-sink` (HTTP/1.1,
answers 200), then for each concurrency runs `sip-probe push-senders`: a
real `push_senders::Senders` pointed at it, N tasks each sending one call
push after the other for --secs seconds (after --warmup seconds of
connection set-up and token signing). `webpush+ece` is the WebPush sender
with the subscription keys on the binding: each push carries an RFC 8291
encrypted body (ECDH + HKDF + AES-GCM per push).

Columns: pushes/s completed in the measured window; ok / rejected / failed
(push-senders' result); CPU µs per push and cores used of the sender process
(getrusage, all threads: the sender, its HTTP/2 client, the driver's own
loop) and of the mock process (/proc/PID/stat); latency send_with() call ->
result; problems: requests the mock found something wrong with in the window
(must be 0: every push was valid); oth%: CPU used by other processes, in %
of the machine (above a few % the row is not trustworthy). See
bench/README.md, "Native push senders".
"""

import argparse
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import ROOT, cpu_seconds, fmt, machine_cpu, quiet  # noqa: E402

RELEASE = os.path.join(ROOT, "target", "release")


def start_service(sender, workdir):
    """The push service process for `sender` and the JSON line it printed."""
    if sender == "webhook":
        cmd = [os.path.join(RELEASE, "sip-probe"), "webhook-sink"]
    else:
        service = sender.split("+")[0]
        d = tempfile.mkdtemp(prefix=f"{service}-", dir=workdir)
        cmd = [os.path.join(RELEASE, "push-mock"), "--service", service, "--dir", d]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line:
        p.kill()
        sys.exit(f"{' '.join(cmd)} printed nothing")
    return p, line.strip(), json.loads(line)


def mock_stats(info):
    if "stats_url" not in info:
        return None
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    with urllib.request.urlopen(info["stats_url"], context=ctx, timeout=5) as r:
        return json.loads(r.read())


def run_one(sender, conc, svc, line, info, args):
    cmd = [os.path.join(RELEASE, "sip-probe"), "push-senders", "--sender", sender.split("+")[0],
           "--concurrency", str(conc), "--seconds", str(args.secs), "--warmup", str(args.warmup),
           "--mock-pid", str(svc.pid)]
    if sender == "webhook":
        cmd += ["--url", info["url"]]
    else:
        cmd += ["--mock-info", line]
    if sender.endswith("+ece"):
        cmd.append("--encrypt")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.clients != 1:
        cmd += ["--clients", str(args.clients)]
    s0 = mock_stats(info)
    m0, v0, t0 = machine_cpu(), cpu_seconds(svc.pid), time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.secs + args.warmup + 60)
    m1, v1, t1 = machine_cpu(), cpu_seconds(svc.pid), time.time()
    s1 = mock_stats(info)
    if p.returncode != 0:
        print(f"# {sender} c={conc}: the driver failed ({p.returncode}): {p.stderr.strip()[-2000:]}", flush=True)
        return None
    r = json.loads(p.stdout.strip().splitlines()[-1])
    # Other processes: all busy CPU minus the driver (a waited-for child of this
    # script, so in "self"), the mock and this script.
    other = max(0.0, 100.0 * ((m1["busy"] - m0["busy"]) - (v1 - v0) - (m1["self"] - m0["self"]))
                / ((t1 - t0) * os.cpu_count()))
    r["name"] = sender
    r["other_pct"] = other
    r["problems"] = (s1["with_problems"] - s0["with_problems"]) if s0 and s1 else None
    r["mock_pushes"] = (s1["pushes"] - s0["pushes"]) if s0 and s1 else None
    return r


HEADER = (f"{'sender':<12} {'conc':>5} {'push/s':>8} {'ok':>8} {'rej':>4} {'fail':>5} {'cpuµs/push':>10} "
          f"{'cores':>5} {'mock µs/push':>12} {'mock cores':>10} {'p50µs':>7} {'p99µs':>7} {'problems':>8} "
          f"{'oth%':>5}")


def row(r):
    secs = r["secs"] or 1
    mock_cores = r["mock_cpu_secs"] / secs if r["mock_cpu_secs"] is not None else None
    return (f"{r['name']:<12} {r['concurrency']:>5} {r['pushes_per_sec']:>8.0f} {r['ok']:>8} {r['rejected']:>4} "
            f"{r['failed']:>5} {fmt(r['cpu_us_per_push'], '>10.1f')} {r['cpu_secs'] / secs:>5.2f} "
            f"{fmt(r['mock_cpu_us_per_push'], '>12.1f')} {fmt(mock_cores, '>10.2f')} {r['p50_us']:>7} "
            f"{r['p99_us']:>7} {fmt(r['problems'], '>8')} {r['other_pct']:>5.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--senders", default="apns,fcm,webpush,webhook",
                    help="comma-separated: apns, fcm, webpush, webpush+ece, webhook")
    ap.add_argument("--concurrency", default="64,256", help="concurrent pushes in flight, comma-separated")
    ap.add_argument("--secs", type=float, default=10, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1, help="seconds before the measurement (connections, tokens)")
    ap.add_argument("--threads", type=int, default=0, help="tokio worker threads of the sender (default: CPUs)")
    ap.add_argument("--clients", type=int, default=1,
                    help="independent Senders (own HTTP client, own connection) sharing the tasks; sipwake has 1. "
                         "APNs: more than 1 gets 429 TooManyProviderTokenUpdates (one new token per client)")
    ap.add_argument("--wait-idle", type=int, default=120,
                    help="before each run, wait up to this many seconds for other processes to leave the CPUs idle")
    ap.add_argument("--json", action="store_true", help="also print each run's JSON line")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    senders = args.senders.split(",")
    concs = [int(c) for c in args.concurrency.split(",")]
    for s in senders:
        if s not in ("apns", "fcm", "webpush", "webpush+ece", "webhook"):
            sys.exit(f"unknown sender {s!r}")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "push-mock", "-p", "sip-probe"],
                       cwd=ROOT, check=True)
    print(f"machine: {os.cpu_count()} cores; sender (sip-probe push-senders) and push service (push-mock / "
          f"sip-probe webhook-sink) are separate processes on the same machine, loopback; {args.secs:g} s measured "
          f"after {args.warmup:g} s warm-up; call pushes (Initial INVITE); sender: "
          f"{args.threads or os.cpu_count()} tokio worker threads, {args.clients} Senders (HTTP client)", flush=True)
    print(HEADER, flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="push-senders-bench-") as workdir:
        for sender in senders:
            for conc in concs:
                quiet(args)
                # A fresh service per run: no state (connections, caches) carried over.
                svc, line, info = start_service(sender, workdir)
                try:
                    r = run_one(sender, conc, svc, line, info, args)
                finally:
                    svc.terminate()
                    try:
                        svc.wait(5)
                    except subprocess.TimeoutExpired:
                        svc.kill()
                        svc.wait()
                if r:
                    rows.append(r)
                    print(row(r), flush=True)
                    if args.json:
                        print(json.dumps(r), flush=True)
                    if r["unfinished_tasks"] or r["warmup_errors"]:
                        print(f"#   {r['unfinished_tasks']} tasks unfinished, {r['warmup_errors']} errors during "
                              f"warm-up", flush=True)
    if rows:
        print("\n== best pushes/s per sender ==")
        print(HEADER)
        for sender in senders:
            mine = [r for r in rows if r["name"] == sender]
            if mine:
                print(row(max(mine, key=lambda r: r["pushes_per_sec"])))


if __name__ == "__main__":
    main()
