#!/usr/bin/env bash
# Loopback fps and latency of the sender/receiver pair: test pattern, as fast as possible, to a
# headless receiver (or at a given rate), for each size and codec. Prints one row per case from the receiver's --stats.
# Usage: scripts/measure.sh [frames per case, default 300] [sender fps, default 0 = as fast as possible]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
frames=${1:-300}
fps=${2:-0}
bin=target/release
printf '%-10s %-5s %8s %9s %9s %9s %8s\n' size codec fps "MB/s" p50_ms p99_ms dropped
for size in 640x480 1920x1080; do
  for codec in raw jpeg; do
    log=$(mktemp)
    "$bin/sender" --listen 127.0.0.1:0 --source "test:$size" --codec "$codec" --fps "$fps" --no-preview \
      </dev/null 2>"$log" &
    sender=$!
    addr=""
    for _ in $(seq 100); do
      addr=$(sed -n 's/^sender: listening on //p' "$log")
      [[ -n "$addr" ]] && break
      sleep 0.05
    done
    stats=$("$bin/receiver" --connect "$addr" --headless --frames "$frames" --stats </dev/null 2>/dev/null)
    kill -INT "$sender"; wait "$sender" || true; rm -f "$log"
    python3 - "$size" "$codec" "$stats" <<'PY'
import json, sys
size, codec, s = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
mbps = s["bytes"] / s["seconds"] / 1e6 if s["seconds"] else 0
l = s["latency_ms"]
print(f'{size:<10} {codec:<5} {s["fps"]:8.1f} {mbps:9.1f} {l["p50"]:9.2f} {l["p99"]:9.2f} {s["dropped"]:8d}')
PY
  done
done
