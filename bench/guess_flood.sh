#!/bin/bash
# Password-guessing flood against one sipwake (issue 14): bench/guess_flood.sh BIN SECS [EXTRA_TOML]
# e.g. bench/guess_flood.sh target/release/sipwake 10 ""; prints what the attacker and a real user got.
BIN=$1; SECS=$2; EXTRA=$3
D=$(mktemp -d /tmp/guess-XXXX); PORT=$(python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
printf "[auth]\nalgorithms = [\"MD5\"]\n[management]\nlisten = \"127.0.0.1:0\"\n$EXTRA" > $D/c.toml
for u in alice bob; do echo "pw-$u" | $BIN user add $u@127.0.0.1 --data-dir $D/data > /dev/null; done
RUST_LOG=warn NO_COLOR=1 $BIN --listen udp:127.0.0.1:$PORT --data-dir $D/data --config $D/c.toml > $D/out 2> $D/err &
SP=$!
for i in $(seq 50); do grep -q "location loaded" $D/out && break; sleep 0.1; done
T0=$(awk '{print $14+$15}' /proc/$SP/stat)
python3 "$(dirname "$0")/guess_flood.py" $PORT $SECS
T1=$(awk '{print $14+$15}' /proc/$SP/stat)
echo "server CPU: $(( (T1-T0) * 10 )) ms over ${SECS} s"; grep -c "auth failed" $D/err | sed 's/^/auth-failed lines: /'; grep "source blocked" $D/err | head -2
kill $SP; wait $SP 2>/dev/null
rm -rf "$D"
