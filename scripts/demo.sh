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

# Two 960x540 windows fit side by side on a 1920-wide screen: the sender's preview at the left,
# the receiver's beside it, so one photo of the screen shows both capture times (the pattern
# draws its own under a preview) and the latency is their difference.
receiver_args=(--connect "127.0.0.1:$port" --stats --window-at 970,0)
sender_args=(--listen "127.0.0.1:$port" --source test:960x540)
if [[ -z "${DISPLAY:-}" ]]; then
  echo "demo: no display; running headless for 150 frames" >&2
  receiver_args+=(--headless --frames 150)
  sender_args+=(--no-preview)
fi

# The sender makes a one-time pairing code and prints it beside its address; the demo reads it
# from the sender's log and gives it to the receiver, as a person would type it.
log=$(mktemp)
"$bin/sender" "${sender_args[@]}" </dev/null 2> >(tee "$log" >&2) &
sender=$!
trap 'kill -INT $sender 2>/dev/null || true; wait $sender 2>/dev/null || true; rm -f "$log"' EXIT
code=""
for _ in $(seq 100); do
  code=$(sed -n 's/.*(pairing code \([^)]*\)).*/\1/p' "$log")
  [[ -n "$code" ]] && break
  sleep 0.1
done
"$bin/receiver" "${receiver_args[@]}" --code "$code" </dev/null
