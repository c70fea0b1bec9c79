#!/usr/bin/env bash
# Installs what is missing, builds, and streams the moving test pattern from a sender to a
# receiver on this machine: in two windows when there is a display (press q in the receiver's
# window to end), or headless for five seconds with the receiver's --stats line when not.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
bin=target/release
port=${CAMSTREAM_DEMO_PORT:-9999}

receiver_args=(--connect "127.0.0.1:$port" --stats)
sender_args=(--listen "127.0.0.1:$port" --source test:1280x720)
if [[ -z "${DISPLAY:-}" ]]; then
  echo "demo: no display; running headless for 150 frames" >&2
  receiver_args+=(--headless --frames 150)
  sender_args+=(--no-preview)
fi

"$bin/sender" "${sender_args[@]}" </dev/null &
sender=$!
trap 'kill -INT $sender 2>/dev/null || true; wait $sender 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  if ss -Hltn "sport = :$port" | grep -q .; then break; fi
  sleep 0.1
done
"$bin/receiver" "${receiver_args[@]}" </dev/null
