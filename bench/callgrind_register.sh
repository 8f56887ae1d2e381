#!/usr/bin/env bash
# Instructions per REGISTER, by callgrind (deterministic, unlike CPU time on
# a VM): the whole sipwake process under valgrind, 50 REGISTERs to warm up,
# counters zeroed, then N REGISTERs of new AoRs from sipp at 200/s (one
# store commit each), auth off, RUST_LOG=warn. Prints Ir per REGISTER.
#
# Usage: bench/callgrind_register.sh BIN [plain|push] [N]
#   BIN    a sipwake binary (a release or `--profile profiling` build)
#   plain  REGISTER with a plain Contact (bench/sipp/register.xml)
#   push   REGISTER with an RFC 8599 push Contact, push on (register_push.xml)
# CG_KEEP=FILE copies the callgrind dump there (callgrind_annotate FILE).
# Needs valgrind (callgrind_control) and sipp. Starts and stops its own
# processes, by PID, on free ports in a temp dir it removes.
set -euo pipefail
BIN=$(realpath "$1"); KIND=${2:-plain}; N=${3:-2000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); mport=$(free_port)
scenario=register.xml
{
  printf '[server]\nlisten = ["udp:127.0.0.1:%s"]\ndata_dir = "%s/data"\n' "$port" "$dir"
  printf '[management]\nlisten = "127.0.0.1:%s"\n[auth]\nenabled = false\n' "$mport"
  printf '[defence]\nrate_limit_requests = 1000000\n'
  if [ "$KIND" = push ]; then
    scenario=register_push.xml
    printf '[push]\nenable = true\n[push.senders."*"]\nwebhook = "http://127.0.0.1:9/push"\n'
  fi
} > "$dir/sipwake.toml"
users() { # $1 first, $2 count
  { echo SEQUENTIAL; for ((i = $1; i < $1 + $2; i++)); do echo "cg$i;"; done; } > "$dir/users_$1.csv"
}
users 0 50; users 1000000 "$N"
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$BIN" --config "$dir/sipwake.toml" \
  > "$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do grep -q "sipwake location loaded" "$dir/server.log" && break; sleep 0.1; done
grep -q "sipwake location loaded" "$dir/server.log" || { cat "$dir/server.log"; exit 1; }
run_sipp() { # $1 injection file, $2 count
  sipp "127.0.0.1:$port" -sf "$ROOT/bench/sipp/$scenario" -inf "$1" -t u1 -i 127.0.0.1 -p "$(free_port)" \
    -cp "$(free_port)" -mp "$(free_port)" -r 200 -m "$2" -nostdin -timeout 120s -recv_timeout 10000 \
    -trace_stat -stf "$dir/stat.csv" >/dev/null 2>&1 || { echo "sipp failed"; cat "$dir/server.log"; exit 1; }
}
run_sipp "$dir/users_0.csv" 50
callgrind_control -z "$pid" >/dev/null
run_sipp "$dir/users_1000000.csv" "$N"
callgrind_control -d "$pid" >/dev/null
sleep 1
last=$(ls -t "$dir"/cg.out* | head -1)
ir=$(grep -m1 '^summary:' "$last" | awk '{print $2}')
# CG_KEEP=FILE keeps the dump (for callgrind_annotate).
[ -n "${CG_KEEP:-}" ] && cp "$last" "$CG_KEEP"
echo "$KIND: $ir Ir for $N REGISTERs = $((ir / N)) Ir per REGISTER ($(basename "$BIN"))"
