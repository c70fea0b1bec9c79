#!/usr/bin/env bash
# camstream's benchmark (issue 4): always live, many viewers, as fast as the wire. Each case runs
# camstream and the reference it is judged against in the same run, and one table compares them.
#
# Usage: scripts/bench.sh [--short]
#   --short  a few seconds per case (what CI runs, so the benchmark cannot rot); the default is
#            the full run (case 12's long tab alone takes five minutes, case 14 about eight).
# Needs root for the thin-link cases (two network namespaces joined by a veth pair with tbf) and
# for the internet paths of case 14 (two more, joined by bench/wan.py, the project's own link
# emulator: TUN devices, delay, jitter, loss and a rate limit, as netem would);
# installs what it needs: iperf3, iproute2, python3-venv, and numpy/pyzmq/imagezmq in a venv.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
# The browser rows (case 12): seconds measured per window, and the long H.264 run (issue 14).
web_seconds=20
web_long=300
# The internet paths (case 14, issue 21), per path: seconds of H.264 --bitrate auto (its first 5 s
# are left out); of bulk TCP, the first $wan_omit left out; of JPEG and of MJPEG (the first 2 s
# left out); a tab's warm-up and measured window; whether bulk TCP and H.264 run again with cubic.
wan_seconds=30
wan_omit=5
wan_bulk_seconds=25
wan_jpeg_seconds=10
wan_tab_warmup=5
wan_tab_seconds=20
wan_cubic=1
# H.264 rates (kbit/s) for vtest.avi: through camstream's codec, and through the ffmpeg CLI.
efficiency_rates="700 1000 1300 1800 2500"
reference_rates="1000 1800"
if [[ "${1:-}" == "--short" ]]; then
  seconds=3
  efficiency_rates="1000 1800"
  reference_rates="1000"
  web_seconds=6
  web_long=20
  wan_seconds=12
  wan_omit=3
  wan_bulk_seconds=5
  wan_jpeg_seconds=5
  wan_tab_warmup=3
  wan_tab_seconds=5
  wan_cubic=0
fi

bash scripts/setup.sh --bench
cargo build --release --quiet --bins --example codec_rate --example codec_efficiency --example publish_latency
venv=target/bench-venv
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import imagezmq, numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
fi

bin=target/release
out=$(mktemp -d -t camstream-bench.XXXXXX)
# Senders keep their web page's certificate here, not in the user's config folder.
export XDG_CONFIG_HOME="$out/config"
pids=()
# Process groups (a browser.py, its chromedriver and Chromium), ended as a whole.
groups=()
cleanup() {
  for group in "${groups[@]}"; do kill -TERM -- "-$group" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill -INT "$pid" 2>/dev/null || true; done
  # A program stopped before it set up its Ctrl-C handler ignores SIGINT (bash starts background
  # jobs that way): after a moment, whatever is left is killed, so no run leaves one behind.
  sleep 0.5
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for group in "${groups[@]}"; do kill -KILL -- "-$group" 2>/dev/null || true; done
  ip netns del csb-snd 2>/dev/null || true
  ip netns del csb-rcv 2>/dev/null || true
  ip netns del csb-wan-snd 2>/dev/null || true
  ip netns del csb-wan-rcv 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT

# How senders and receivers pair: with $code when it is set, otherwise in the clear (--insecure),
# so the cases of issue 4 measure what they always did and case 6 measures what pairing costs.
pairing() {
  if [[ -n "${code:-}" ]]; then echo "--code $code"; else echo "--insecure"; fi
}

# Starts a sender in the background with the given options and sets $sender (pid) and $addr.
# It listens on $listen (default 127.0.0.1, a free port), in namespace $netns when set.
start_sender() {
  local name=$1
  shift
  # Made here, so the wait below never reads it before the background job has opened it.
  : >"$out/sender_$name.log"
  # shellcheck disable=SC2046  # pairing's words are meant to split
  ${netns:+ip netns exec $netns} "$bin/sender" --listen "${listen:-127.0.0.1:0}" --no-preview --stats $(pairing) "$@" \
    </dev/null >"$out/sender_$name.json" 2>"$out/sender_$name.log" &
  sender=$!
  pids+=("$sender")
  addr=""
  for _ in $(seq 200); do
    addr=$(sed -n 's/^sender: listening on \([^ ]*\).*/\1/p' "$out/sender_$name.log")
    [[ -n "$addr" ]] && return
    sleep 0.05
  done
  echo "bench: sender $name did not start:" >&2
  cat "$out/sender_$name.log" >&2
  exit 1
}

# Starts a headless receiver of $addr in the background, --stats to $out/NAME.json; sets $receiver.
start_receiver() {
  local name=$1
  shift
  # shellcheck disable=SC2046
  ${netns:+ip netns exec $netns} "$bin/receiver" --connect "$addr" --headless --stats $(pairing) "$@" </dev/null \
    >"$out/$name.json" 2>"$out/$name.log" &
  receiver=$!
  pids+=("$receiver")
  # Wait until it is connected: its Ctrl-C handler is in place by then (bash starts background
  # jobs with SIGINT ignored, so an early SIGSTOP ... SIGINT would otherwise be lost).
  for _ in $(seq 200); do
    grep -qs "connected to" "$out/$name.log" && return
    sleep 0.05
  done
  echo "bench: receiver $name did not connect:" >&2
  cat "$out/$name.log" >&2
  exit 1
}

# Ctrl-C for each pid, then waits for it (they print --stats on the way out); one still there
# after 5 s is killed, so a hang shows up as a missing figure, not a stuck benchmark.
stop() {
  for pid in "$@"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "bench: pid $pid did not stop on Ctrl-C; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" || true
  done
}

echo "bench: 1/17 never fall behind: receiver stopped for 3 s (SIGSTOP), a second one watching" >&2
start_sender stall --source test:640x480 --codec jpeg --fps 30
start_receiver stall_paused --frame-log "$out/stall_paused.csv"
paused=$receiver
start_receiver stall_other
other=$receiver
sleep 2
kill -STOP "$paused"
sleep 3
date +%s%6N >"$out/stall_resumed_us"
kill -CONT "$paused"
sleep "$((seconds > 3 ? seconds - 3 : 3))"
stop "$paused" "$other"
stop "$sender"

echo "bench: 2/17 a 20 Mbit/s link between two network namespaces, 1280x720 jpeg q95 at 30 fps" >&2
ip netns del csb-snd 2>/dev/null || true
ip netns del csb-rcv 2>/dev/null || true
ip netns add csb-snd
ip netns add csb-rcv
ip link add csb-veth0 type veth peer name csb-veth1
ip link set csb-veth0 netns csb-snd
ip link set csb-veth1 netns csb-rcv
ip -n csb-snd addr add 10.201.0.1/24 dev csb-veth0
ip -n csb-rcv addr add 10.201.0.2/24 dev csb-veth1
for ns in csb-snd csb-rcv; do ip -n "$ns" link set lo up; done
ip -n csb-snd link set csb-veth0 up
ip -n csb-rcv link set csb-veth1 up
ip netns exec csb-snd tc qdisc replace dev csb-veth0 root tbf rate 20mbit burst 32kbit latency 50ms
netns=csb-snd listen=10.201.0.1:0 start_sender thin --source test:1280x720 --codec jpeg \
  --quality 95 --fps 30
netns=csb-rcv start_receiver thin
thin=$receiver
sleep "$seconds"
stop "$thin"
stop "$sender"

echo "bench: 3/17 many viewers: 1 then 4 receivers of 1280x720 jpeg at 30 fps, then 4 with one stopped" >&2
start_sender one --source test:1280x720 --codec jpeg --fps 30
start_receiver one_0
one=$receiver
sleep "$seconds"
stop "$one"
stop "$sender"
start_sender four --source test:1280x720 --codec jpeg --fps 30
four=()
for i in 0 1 2 3; do
  start_receiver "four_$i"
  four+=("$receiver")
done
sleep "$seconds"
stop "${four[@]}"
stop "$sender"
start_sender stalled --source test:1280x720 --codec jpeg --fps 30
stalled=()
for i in 0 1 2 3; do
  start_receiver "stalled_$i"
  stalled+=("$receiver")
done
kill -STOP "${stalled[3]}"
sleep "$seconds"
stop "${stalled[@]:0:3}"
kill -CONT "${stalled[3]}"
stop "${stalled[3]}"
stop "$sender"

echo "bench: 4/17 raw 1920x1080 as fast as possible, against iperf3, imagezmq and the tutorial" >&2
# iperf3 twice: its default 128 KiB writes, and 1 MiB (its largest), which is faster here.
for block in 128K 1M; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  pids+=("$!")
  sleep 0.5
  iperf3 -c 127.0.0.1 -p "$port" -t "$seconds" -l "$block" -J >"$out/iperf3_$block.json"
done
start_sender raw --source test:1920x1080 --codec raw --fps 0
start_receiver raw
raw=$receiver
sleep "$seconds"
stop "$raw"
stop "$sender"
"$venv/bin/python" bench/python_refs.py imagezmq --seconds "$seconds" >"$out/imagezmq.json"
"$venv/bin/python" bench/python_refs.py tutorial --seconds "$seconds" >"$out/tutorial.json"

echo "bench: 5/17 jpeg 1920x1080 q80 as fast as possible, against OpenCV's imencode and imdecode" >&2
"$bin/examples/codec_rate" 1920 1080 80 "$seconds" >"$out/codec.json"
start_sender jpeg --source test:1920x1080 --codec jpeg --quality 80 --fps 0
start_receiver jpeg
jpeg=$receiver
sleep "$seconds"
stop "$jpeg"
stop "$sender"

echo "bench: 6/17 what pairing costs: raw 1920x1080 and jpeg 1280x720 q80 as fast as possible, in the clear and paired, and the time to a first frame" >&2
for mode in clear paired; do
  code=""
  [[ $mode == paired ]] && code=bench-pairing-code
  code=$code start_sender "raw_$mode" --source test:1920x1080 --codec raw --fps 0
  code=$code start_receiver "raw_$mode"
  run=$receiver
  sleep "$seconds"
  stop "$run"
  stop "$sender"
  code=$code start_sender "jpeg720_$mode" --source test:1280x720 --codec jpeg --quality 80 --fps 0
  code=$code start_receiver "jpeg720_$mode"
  run=$receiver
  sleep "$seconds"
  stop "$run"
  stop "$sender"
  # Connect, pair (or not), show one frame, exit: ten times; each receiver logs how long its
  # connection and handshake took.
  code=$code start_sender "first_$mode" --source test:320x240 --codec jpeg --fps 0
  for _ in $(seq 10); do
    # shellcheck disable=SC2046
    "$bin/receiver" --connect "$addr" --headless --once --frames 1 $(code=$code pairing) \
      </dev/null >/dev/null 2>>"$out/first_$mode.log"
  done
  stop "$sender"
done

# Real footage for H.264 (issue 13): vtest.avi from Debian's opencv-doc package, a street filmed
# from a fixed camera (768x576, 10 fps, 795 frames), and a 1280x720 copy of it that the senders
# play at 30 fps (each frame once, so the motion is three times as fast as filmed).
vtest=/usr/share/doc/opencv-doc/examples/data/vtest.avi
clip=target/bench-vtest-720p.avi
if [[ ! -s "$clip" ]]; then
  ffmpeg -hide_banner -loglevel error -y -i "$vtest" -vf scale=1280:720:flags=lanczos \
    -c:v mjpeg -q:v 2 "$clip"
fi

echo "bench: 7/17 h264 efficiency on real footage: bytes at JPEG q80's quality, and against the ffmpeg CLI" >&2
# shellcheck disable=SC2086  # the rates are meant to split
"$bin/examples/codec_efficiency" "$vtest" 80 $efficiency_rates --source-bgr "$out/vtest.bgr" \
  >"$out/efficiency.jsonl"
for rate in $reference_rates; do
  python3 bench/ffmpeg_reference.py "$out/efficiency.jsonl" "$rate" >>"$out/efficiency_ffmpeg.jsonl"
done
rm "$out/vtest.bgr"

echo "bench: 8/17 h264 1280x720 at 30 fps on loopback: latency and CPU, against jpeg q80" >&2
for codec in h264 jpeg; do
  start_sender "loop_$codec" --source "$clip" --loop --fps 30 --codec "$codec" --quality 80
  start_receiver "loop_$codec"
  run=$receiver
  sleep "$seconds"
  stop "$run"
  stop "$sender"
done

echo "bench: 9/17 h264 --bitrate auto on links of 8, 4 and 2 Mbit/s, 1280x720 at 30 fps" >&2
for mbit in 8 4 2; do
  ip netns exec csb-snd tc qdisc replace dev csb-veth0 root tbf rate "${mbit}mbit" burst 32kbit latency 50ms
  netns=csb-snd listen=10.201.0.1:0 start_sender "link_$mbit" --source "$clip" --loop --fps 30 \
    --codec h264
  netns=csb-rcv start_receiver "link_$mbit"
  run=$receiver
  sleep "$((seconds > 3 ? seconds : 5))"
  stop "$run"
  stop "$sender"
done

echo "bench: 10/17 h264 on a link that drops from 8 to 1.5 Mbit/s mid-stream: --bitrate auto, and a fixed 6000" >&2
for rate in auto 6000; do
  ip netns exec csb-snd tc qdisc replace dev csb-veth0 root tbf rate 8mbit burst 32kbit latency 50ms
  netns=csb-snd listen=10.201.0.1:0 start_sender "drop_$rate" --source "$clip" --loop --fps 30 \
    --codec h264 --bitrate "$rate"
  netns=csb-rcv start_receiver "drop_$rate" --frame-log "$out/drop_$rate.csv"
  run=$receiver
  sleep 5
  date +%s%6N >"$out/drop_${rate}_us"
  ip netns exec csb-snd tc qdisc change dev csb-veth0 root tbf rate 1500kbit burst 32kbit latency 50ms
  sleep "$((seconds > 3 ? seconds : 6))"
  stop "$run"
  stop "$sender"
done

echo "bench: 11/17 joining: the first picture, h264 with --keyframe-interval 10 against jpeg (median of 5)" >&2
for codec in h264 jpeg; do
  start_sender "join_$codec" --source "$clip" --loop --fps 30 --codec "$codec" --keyframe-interval 10
  sleep 2
  for _ in $(seq 5); do
    # A viewer every 1.5 s, as they come: not inside the sender's one-keyframe-a-second limit.
    sleep 1.5
    begun=$(date +%s%6N)
    # shellcheck disable=SC2046
    "$bin/receiver" --connect "$addr" --headless --once --frames 1 $(pairing) </dev/null \
      >/dev/null 2>>"$out/join_$codec.log"
    echo "$(($(date +%s%6N) - begun))" >>"$out/join_${codec}_us"
  done
  stop "$sender"
done

# Case 12 (issue 14): the sender's web page in headless Chromium (bench/browser.py, Debian's
# python3-selenium). Each browser.py leads its own process group (setsid), so ending the group
# ends chromedriver and Chromium too; it prints the page's figures as JSON.
start_browser() {
  local name=$1
  shift
  # shellcheck disable=SC2086  # $browser_netns is one word or none
  ${browser_netns:+ip netns exec $browser_netns} setsid /usr/bin/python3 bench/browser.py \
    "https://$addr/#code=$code" --pid "$sender" "$@" </dev/null >"$out/$name.json" 2>"$out/$name.log" &
  browser=$!
  groups+=("$browser")
}
wait_browser() {
  if ! wait "$browser"; then
    echo "bench: browser.py failed:" >&2
    cat "$out/$1.log" "$out/$1.json" >&2
    exit 1
  fi
  # Whatever Chromium left behind goes with the group; then the group is no one's to end.
  kill -KILL -- "-$browser" 2>/dev/null || true
  groups=()
}

echo "bench: 12/17 the web page in headless Chromium: jpeg latency against a receiver's, h264 through MSE, CPU per tab, a tab on a 4 Mbit/s link" >&2
code=bench-web-code
export TMPDIR="$out"
# a. 1280x720 jpeg at 30 fps on loopback: a page and a receiver watch the same stream.
start_sender web_jpeg --source test:1280x720 --codec jpeg --fps 30
start_receiver web_jpeg_rx --frame-log "$out/web_jpeg_rx.csv"
run=$receiver
start_browser web_jpeg --seconds "$web_seconds"
wait_browser web_jpeg
stop "$run"
stop "$sender"
# b. h264 1280x720 at 30 fps (the clip) through MSE on loopback, one tab for $web_long s: the
# latency, whether it grows, and the sender's CPU with one tab.
start_sender web_h264 --source "$clip" --loop --fps 30 --codec h264
start_browser web_h264 --seconds "$web_long"
wait_browser web_h264
stop "$sender"
# c. The same with 4 tabs (the sender's CPU), then 4 tabs and 2 receivers at once.
start_sender web_four --source "$clip" --loop --fps 30 --codec h264
start_browser web_four --windows 4 --seconds "$web_seconds" --pause "$out/web_four.pause"
for _ in $(seq 600); do
  [[ -e "$out/web_four.pause" ]] || ! kill -0 "$browser" 2>/dev/null && break
  sleep 0.1
done
four_rx=()
for i in 0 1; do
  start_receiver "web_four_rx_$i" --frame-log "$out/web_four_rx_$i.csv"
  four_rx+=("$receiver")
done
touch "$out/web_four.pause.go"
wait_browser web_four
stop "${four_rx[@]}"
stop "$sender"
# d. An h264 tab in the receivers' namespace, on the 4 Mbit/s link of case 9.
ip netns exec csb-snd tc qdisc replace dev csb-veth0 root tbf rate 4mbit burst 32kbit latency 50ms
netns=csb-snd listen=10.201.0.1:0 start_sender web_link --source "$clip" --loop --fps 30 --codec h264
browser_netns=csb-rcv start_browser web_link --seconds "$web_seconds"
wait_browser web_link
stop "$sender"
code=""

# Case 13 (issue 15): publishing to a real media server, nginx with its RTMP module, run here as a
# foreground process on 127.0.0.1. a. How much later a frame reaches an RTMP reader than a
# direct viewer of the same H.264 (examples/publish_latency.rs). b. The sender's CPU with and
# without a publisher. c. The sender's upload to the server with 1 reader, then 12.
echo "bench: 13/17 publishing to nginx-rtmp: latency against the direct path, CPU with a publisher, upload with 1 and 12 readers" >&2
rtmp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$out/nginx"
cat >"$out/nginx/nginx.conf" <<NGINX
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
error_log $out/nginx/error.log;
pid $out/nginx/nginx.pid;
events {}
rtmp { server { listen 127.0.0.1:$rtmp_port; application live { live on; } } }
NGINX
nginx -p "$out/nginx/" -c "$out/nginx/nginx.conf" -e "$out/nginx/error.log" </dev/null >/dev/null 2>&1 &
pids+=("$!")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$rtmp_port") 2>/dev/null && break
  sleep 0.05
done
rtmp="rtmp://127.0.0.1:$rtmp_port/live"
# a. and b. (with a publisher): one sender, a direct viewer, and a reader through the server.
start_sender pub_one --source "$clip" --loop --fps 30 --codec h264 --bitrate 2500 --publish "$rtmp/bench"
# At least 8 s: the reader's first 2 s (its start) are left out.
"$bin/examples/publish_latency" "$addr" "$rtmp/bench" "$((seconds < 8 ? 8 : seconds))" >"$out/publish_latency.json" 2>"$out/publish_latency.log" || true
stop "$sender"
# b. without: the same sender and viewer for as long.
start_sender pub_none --source "$clip" --loop --fps 30 --codec h264 --bitrate 2500
start_receiver pub_none_rx
sleep "$seconds"
stop "$receiver" "$sender"
# c. the upload to the server, from /metrics, with 1 reader and then with 12.
start_sender pub_readers --source "$clip" --loop --fps 30 --codec h264 --bitrate 2500 --publish "$rtmp/readers"
published() { curl -s "http://$addr/metrics" | sed -n 's/^camstream_publisher_bytes_total{[^}]*} //p'; }
readers=()
add_readers() {
  for _ in $(seq "$1"); do
    ffmpeg -nostdin -loglevel quiet -i "$rtmp/readers" -c copy -f null - </dev/null >/dev/null 2>&1 &
    readers+=("$!")
    pids+=("$!")
  done
}
for count in 1 12; do
  add_readers $((count - ${#readers[@]}))
  sleep 2
  before=$(published)
  sleep "$seconds"
  echo "$count $(( ($(published) - before) / seconds ))" >>"$out/publish_readers.txt"
done
kill -INT "${readers[@]}" 2>/dev/null || true
stop "$sender"

# Case 14 (issue 21): internet-like paths, emulated by bench/wan.py (these machines have no netem)
# between two namespaces of their own: TUN devices 10.203.0.1 (sender's side) and 10.203.0.2,
# each packet delayed, jittered (never reordered), lost at random and rate-limited behind a
# 100 ms drop-tail queue, the same each way. Each path is set up anew and measures, one after
# the other on the same path: one bulk TCP stream (iperf3, the reference), h264 --bitrate auto on
# the clip with a receiver's frame log, jpeg at 30 fps sized to about 0.67 of the link, an MJPEG
# client of that jpeg sender (no acks: only measured), and an h264 tab (bench/browser.py in the
# receivers' namespace). The full run repeats the bulk and h264 rows with cubic instead of bbr.
# Each path: name, one-way delay ms, jitter ms, loss (fraction), kbit/s, the jpeg's size and
# quality (on loopback: 480x360 q60 ≈ 2700 kbit/s, 640x480 q80 ≈ 5300, 320x240 q45 ≈ 1350).
wan_paths=(
  "p1 25 5 0.01 4000 480x360 60"
  "p2 75 0 0.005 8000 640x480 80"
  "p3 10 0 0.02 2000 320x240 45"
)
wan=""
# Ends the emulator (it prints what it carried to its log) and the namespaces.
wan_down() {
  if [[ -n "$wan" ]]; then
    stop "$wan"
    wan=""
  fi
  ip netns del csb-wan-snd 2>/dev/null || true
  ip netns del csb-wan-rcv 2>/dev/null || true
}
# Two new namespaces and bench/wan.py between them, for run $1 (its log: $out/wan_$1.log), with
# the path's options after.
wan_up() {
  local name=$1
  shift
  wan_down
  ip netns add csb-wan-snd
  ip netns add csb-wan-rcv
  : >"$out/wan_$name.log"
  python3 bench/wan.py csb-wan-snd csb-wan-rcv "$@" </dev/null >"$out/wan_$name.log" 2>&1 &
  wan=$!
  pids+=("$wan")
  for _ in $(seq 100); do
    grep -qs "^wan ready" "$out/wan_$name.log" && return
    kill -0 "$wan" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench: bench/wan.py did not start:" >&2
  cat "$out/wan_$name.log" >&2
  exit 1
}
# One bulk TCP stream from the sender's side to the receivers', with congestion control $2:
# $wan_bulk_seconds measured after $wan_omit s left out (-O; the h264 rows leave out their first
# 5 s): iperf3's JSON to $out/$1.json.
wan_bulk() {
  ip netns exec csb-wan-rcv iperf3 -s -1 -B 10.203.0.2 >/dev/null 2>&1 &
  pids+=("$!")
  sleep 0.5
  ip netns exec csb-wan-snd iperf3 -c 10.203.0.2 -C "$2" -O "$wan_omit" -t "$wan_bulk_seconds" -J \
    >"$out/$1.json"
}
# h264 --bitrate auto on the clip for $wan_seconds with congestion control $2 (the sender's
# --tcp-congestion), a receiver's frame log to $out/$1.csv and when it was stopped to
# $out/$1_stop_us (a stall at the end counts too).
wan_h264() {
  netns=csb-wan-snd listen=10.203.0.1:0 start_sender "$1" --source "$clip" --loop --fps 30 --codec h264 \
    --tcp-congestion "$2"
  netns=csb-wan-rcv start_receiver "$1" --frame-log "$out/$1.csv"
  local run=$receiver
  sleep "$wan_seconds"
  date +%s%6N >"$out/$1_stop_us"
  stop "$run"
  stop "$sender"
}

echo "bench: 14/17 on the internet (bench/wan.py): bulk TCP, h264 --bitrate auto, jpeg, MJPEG and a tab on 3 paths" >&2
code=bench-wan-code
: >"$out/wan_paths.txt"
for path in "${wan_paths[@]}"; do
  read -r name delay jitter loss kbit size quality <<<"$path"
  echo "$path" >>"$out/wan_paths.txt"
  options=(--delay-ms "$delay" --jitter-ms "$jitter" --loss "$loss" --rate-kbit "$kbit")
  wan_up "$name" "${options[@]}"
  # a. The reference: one bulk TCP stream.
  wan_bulk "wan_${name}_iperf" bbr
  # b. h264 --bitrate auto, a receiver's frame log.
  wan_h264 "wan_${name}_h264" bbr
  # c. jpeg at 30 fps, about 0.67 of the link; e. then an MJPEG client of the same sender.
  netns=csb-wan-snd listen=10.203.0.1:0 start_sender "wan_${name}_jpeg" --source "test:$size" \
    --codec jpeg --quality "$quality" --fps 30
  netns=csb-wan-rcv start_receiver "wan_${name}_jpeg" --frame-log "$out/wan_${name}_jpeg.csv"
  run=$receiver
  sleep "$wan_jpeg_seconds"
  date +%s%6N >"$out/wan_${name}_jpeg_stop_us"
  stop "$run"
  ip netns exec csb-wan-rcv python3 bench/mjpeg_client.py "https://:$code@$addr/stream.mjpg" \
    --seconds "$wan_jpeg_seconds" >"$out/wan_${name}_mjpeg.json" 2>"$out/wan_${name}_mjpeg.log" || true
  stop "$sender"
  # d. An h264 tab in the receivers' namespace, measured from $wan_tab_warmup s after it plays.
  netns=csb-wan-snd listen=10.203.0.1:0 start_sender "wan_${name}_tab" --source "$clip" --loop --fps 30 --codec h264
  browser_netns=csb-wan-rcv start_browser "wan_${name}_tab" --seconds "$wan_tab_seconds" --warmup "$wan_tab_warmup"
  wait_browser "wan_${name}_tab"
  stop "$sender"
  # The full run: the reference and h264 again with cubic (Debian's default) on the sender's
  # connections.
  if ((wan_cubic)); then
    wan_bulk "wan_${name}_cubic_iperf" cubic
    wan_h264 "wan_${name}_cubic_h264" cubic
  fi
  wan_down
done
code=""

# Case 15 (issue 22): a source that already gives JPEG, the clip (1280x720 MJPEG) at 30 fps.
# a. The sender's CPU with its JPEG passed on as it came (no --quality), then decoded and
# encoded again (--quality 80), one receiver each. b. Two receivers of the same stream at the
# same time, one recording it as it came (.mkv), one not.
echo "bench: 15/17 JPEG as it came: the sender passing the clip's own JPEG against encoding it, the receiver recording it against not" >&2
for mode in as_it_came:"" encoded:"--quality 80"; do
  # shellcheck disable=SC2086  # the options are meant to split
  start_sender "jpeg_${mode%%:*}" --source "$clip" --loop --fps 30 --codec jpeg ${mode#*:}
  start_receiver "jpeg_${mode%%:*}"
  run=$receiver
  sleep "$seconds"
  stop "$run"
  stop "$sender"
done
start_sender jpeg_record --source "$clip" --loop --fps 30 --codec jpeg
start_receiver jpeg_record_not
plain=$receiver
start_receiver jpeg_record --record "$out/jpeg_record.mkv"
recording=$receiver
sleep "$seconds"
stop "$plain" "$recording"
stop "$sender"
ffprobe -v error -count_packets -select_streams v:0 -show_entries stream=codec_name,nb_read_packets \
  -of json "$out/jpeg_record.mkv" >"$out/jpeg_record_probe.json" 2>/dev/null || true

# Case 16 (issue 23): the Python module as a user's program uses it (bench/python_camstream.py),
# against the programs on the same streams: receiving raw 1920x1080 as fast as possible and
# JPEG 1280x720 at 30 fps as numpy arrays, and sending raw 1920x1080 from numpy as fast as a
# receiver takes it (Sender.wait_wanted, as the sender program's --fps 0 paces its pattern).
echo "bench: 16/17 Python: receiving raw 1080p and JPEG 720p as numpy arrays, sending raw 1080p from numpy, against the programs" >&2
pyvenv=target/python-venv
if ! "$pyvenv/bin/python" -c 'import camstream' 2>/dev/null; then
  python3 -m venv "$pyvenv"
  "$pyvenv/bin/pip" install --quiet --disable-pip-version-check -r python/requirements-test.txt
  CARGO_TARGET_DIR="$PWD/target" "$pyvenv/bin/pip" install --quiet --disable-pip-version-check ./python
fi
for stream in raw:"--source test:1920x1080 --codec raw --fps 0" jpeg:"--source test:1280x720 --codec jpeg --quality 80 --fps 30"; do
  # shellcheck disable=SC2086  # the options are meant to split
  start_sender "py_${stream%%:*}" ${stream#*:}
  start_receiver "py_${stream%%:*}_program"
  sleep "$seconds"
  stop "$receiver"
  "$pyvenv/bin/python" bench/python_camstream.py receive "$addr" --seconds "$seconds" >"$out/py_${stream%%:*}.json"
  stop "$sender"
done
"$pyvenv/bin/python" bench/python_camstream.py send --seconds $((seconds + 3)) --size 1920x1080 --codec raw --as-wanted \
  >"$out/py_send.json" 2>"$out/py_send.log" &
pysender=$!
pids+=("$pysender")
for _ in $(seq 200); do
  addr=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$out/py_send.log")
  [[ -n "$addr" ]] && break
  sleep 0.05
done
start_receiver py_send_program
sleep "$seconds"
stop "$receiver"
wait "$pysender" || true

# Case 17 (issue 23): four senders (640x480 JPEG at 30 fps) in one receiver's grid, its window on
# a virtual display (Xvfb) so that composing and showing the tiles is counted; each tile's
# share of its sender's frames, from the receiver's line per sender.
echo "bench: 17/17 a grid: 4 senders of 640x480 jpeg at 30 fps in one receiver's window" >&2
grid=()
grid_senders=()
for i in 1 2 3 4; do
  start_sender "grid_$i" --source test:640x480 --codec jpeg --fps 30
  grid+=(--connect "$addr")
  grid_senders+=("$sender")
done
# shellcheck disable=SC2046  # pairing's words are meant to split
# 10 s even in --short: the window's opening (a share of a second, more on a loaded machine)
# is counted, and in 3 s it would be most of what is measured.
grid_seconds=$((seconds > 10 ? seconds : 10))
timeout $((grid_seconds + 30)) xvfb-run -a -s "-screen 0 1920x1080x24" "$bin/receiver" "${grid[@]}" $(pairing) \
  --stats --frames $((grid_seconds * 30)) </dev/null >"$out/grid.jsonl" 2>"$out/grid.log" || true
stop "${grid_senders[@]}"

python3 bench/table.py "$out" "$seconds"
