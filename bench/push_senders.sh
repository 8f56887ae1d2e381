#!/usr/bin/env bash
# Push throughput per sender (APNs, FCM, WebPush, webhook) against local mocks: builds release, runs bench/push_senders.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/push_senders.py "$@"
