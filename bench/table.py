"""Turns the results scripts/bench.sh left in a folder into one Markdown table.

Each row: the case, camstream's figure, the reference measured in the same run, their ratio,
and the goal from issue 4 (issue 6 for what pairing costs, issue 13 for H.264). Usage: python3 bench/table.py RESULTS_DIR SECONDS_PER_CASE
"""

import csv
import re
import json
import platform
import sys
import time
from pathlib import Path

out = Path(sys.argv[1])
seconds = sys.argv[2]


def load(name):
    return json.loads((out / f"{name}.json").read_text())


def accepted(report):
    """Share of the frames sent while it watched that a receiver showed."""
    total = report["frames"] + report["dropped"]
    return report["frames"] / total if total else 0.0


rows = []


def row(case, ours, reference="", ratio="", goal=""):
    rows.append((case, ours, reference, ratio, goal))


# 1. A receiver stopped for 3 s, then resumed; another one watching all along.
resumed_us = int((out / "stall_resumed_us").read_text())
with open(out / "stall_paused.csv") as f:
    shown = list(csv.DictReader(f))
late = sum(1 for r in shown if float(r["latency_ms"]) > 500)
after = [float(r["latency_ms"]) for r in shown if int(r["display_unix_us"]) >= resumed_us + 1_000_000]
other = load("stall_other")
row("stalled 3 s (640x480 jpeg 30 fps): frames shown > 500 ms late", f"{late}", "", "", "≤ 3")
row(
    "… worst latency from 1 s after resuming",
    f"{max(after):.1f} ms" if after else "no frames",
    "",
    "",
    "< 100 ms",
)
row(
    "… the other receiver meanwhile: fps / frames shown",
    f"{other['fps']:.1f} / {accepted(other):.1%}",
    "30 fps sent",
    f"{other['fps'] / 30:.2f}",
    "full rate",
)

# 2. The 20 Mbit/s link.
thin = load("thin")
mbit = thin["bytes"] * 8 / 1e6 / thin["seconds"] if thin["seconds"] else 0.0
row(
    "20 Mbit/s link (1280x720 jpeg q95 30 fps): latency p50 / p99",
    f"{thin['latency_ms']['p50']:.0f} / {thin['latency_ms']['p99']:.0f} ms",
    "",
    "",
    "p99 < 300 ms",
)
row(
    "… link use, frames shown",
    f"{mbit:.1f} Mbit/s, {accepted(thin):.0%}",
    "20 Mbit/s",
    f"{mbit / 20:.2f}",
    "saturated",
)

# 3. Many viewers.
four = [load(f"four_{i}") for i in range(4)]
one = load("one_0")
row(
    "4 receivers (1280x720 jpeg 30 fps): worst share of frames shown",
    f"{min(accepted(r) for r in four):.1%}",
    "",
    "",
    "≥ 95%",
)
stalled = [load(f"stalled_{i}") for i in range(3)]
four_fps = sum(r["fps"] for r in four) / 4
stalled_fps = sum(r["fps"] for r in stalled) / 3
row(
    "… with a 4th stopped (SIGSTOP): the others' fps",
    f"{stalled_fps:.1f}",
    f"{four_fps:.1f} (4 live)",
    f"{stalled_fps / four_fps:.2f}",
    "no lower",
)
cpu_one, cpu_four = load("sender_one")["cpu_seconds"], load("sender_four")["cpu_seconds"]
row(
    "… sender CPU seconds with 4 receivers",
    f"{cpu_four:.2f} s",
    f"{cpu_one:.2f} s (1 receiver)",
    f"{cpu_four / cpu_one:.2f}" if cpu_one else "",
    "< 1.5",
)

# 4. Raw 1920x1080 as fast as possible.
frame_mb = 1920 * 1080 * 3 / 1e6
raw = load("raw")
raw_mbs = raw["fps"] * frame_mb
iperfs = {block: load(f"iperf3_{block}")["end"]["sum_received"]["bits_per_second"] / 8e6 for block in ("128K", "1M")}
block = max(iperfs, key=iperfs.get)
iperf = iperfs[block]
zmq = load("imagezmq")
tutorial = load("tutorial")
latency = f"(p50 {raw['latency_ms']['p50']:.1f} / p99 {raw['latency_ms']['p99']:.1f} ms)"
row(f"raw 1920x1080 as fast as possible {latency}", f"{raw_mbs:.0f} MB/s", f"{iperf:.0f} MB/s iperf3 -l {block} ({iperfs['128K' if block == '1M' else '1M']:.0f} with -l {'128K' if block == '1M' else '1M'})", f"{raw_mbs / iperf:.2f}", "≥ 0.70")
zl = zmq["latency_ms"]
row(
    "… against imagezmq (REQ/REP)",
    f"{raw_mbs:.0f} MB/s",
    f"{zmq['mb_per_s']:.0f} MB/s (p50 {zl['p50']:.1f} / p99 {zl['p99']:.1f} ms)",
    f"{raw_mbs / zmq['mb_per_s']:.2f}" if zmq["mb_per_s"] else "",
    "≥ 1.3",
)
tl = tutorial["latency_ms"]
row(
    "… against the tutorial (pickle, data += recv(4096))",
    f"{raw_mbs:.0f} MB/s",
    f"{tutorial['mb_per_s']:.1f} MB/s (p50 {tl['p50']:.0f} / p99 {tl['p99']:.0f} ms)",
    f"{raw_mbs / tutorial['mb_per_s']:.0f}" if tutorial["mb_per_s"] else "",
    "",
)

# 5. JPEG 1920x1080 q80 as fast as possible.
codec = load("codec")
jpeg = load("jpeg")
limit = min(codec["encode_fps"], codec["decode_fps"])
which = "imencode" if codec["encode_fps"] <= codec["decode_fps"] else "imdecode"
row(
    f"jpeg 1920x1080 q80 as fast as possible (p50 {jpeg['latency_ms']['p50']:.1f} / p99 {jpeg['latency_ms']['p99']:.1f} ms)",
    f"{jpeg['fps']:.1f} fps",
    f"{limit:.1f} fps OpenCV {which} (encode {codec['encode_fps']:.0f}, decode {codec['decode_fps']:.0f})",
    f"{jpeg['fps'] / limit:.2f}",
    "≥ 0.90, p99 < 50 ms",
)

# 6. What pairing and encryption cost.
for name, label, goal in (("raw", "raw 1920x1080", 0.70), ("jpeg720", "jpeg 1280x720 q80", 0.95)):
    clear, paired = load(f"{name}_clear"), load(f"{name}_paired")
    pl = paired["latency_ms"]
    row(
        f"paired + AES-256-GCM: {label} as fast as possible (p50 {pl['p50']:.1f} / p99 {pl['p99']:.1f} ms)",
        f"{paired['fps']:.1f} fps",
        f"{clear['fps']:.1f} fps in the clear (--insecure)",
        f"{paired['fps'] / clear['fps']:.2f}" if clear["fps"] else "",
        f"≥ {goal:.2f}",
    )
first = {}
for mode in ("clear", "paired"):
    # Each receiver logs how long connecting and the handshake (with pairing, when paired) took.
    log = (out / f"first_{mode}.log").read_text()
    took = sorted(float(m) for m in re.findall(r"connected to \S+ in ([0-9.]+) ms", log))
    first[mode] = took[len(took) // 2] if took else float("nan")
row(
    "… connect + handshake, as the receiver logs it (median of 10)",
    f"{first['paired']:.2f} ms paired",
    f"{first['clear']:.2f} ms in the clear",
    f"+{first['paired'] - first['clear']:.2f} ms",
    "+ < 50 ms",
)

def p99(values):
    values = sorted(values)
    return values[int(len(values) * 0.99)] if values else float("nan")


def lines(name):
    return [json.loads(line) for line in (out / name).read_text().splitlines() if line.strip()]


# 7. H.264 efficiency on real footage (vtest.avi): the bytes H.264 needs for JPEG q80's PSNR
# (interpolated between the two rates that bracket it), and the ffmpeg CLI at the same rates.
measured = [m for m in lines("efficiency.jsonl") if "codec" in m]
jpeg_q80 = next(m for m in measured if m["codec"] == "jpeg")
h264 = sorted((m for m in measured if m["codec"] == "h264"), key=lambda m: m["psnr_db"])
target = jpeg_q80["psnr_db"]
bracket = [(a, b) for a, b in zip(h264, h264[1:]) if a["psnr_db"] <= target <= b["psnr_db"]]
if bracket:
    (a, b), = bracket[:1]
    share = (target - a["psnr_db"]) / (b["psnr_db"] - a["psnr_db"])
    equal = a["bytes_per_frame"] + share * (b["bytes_per_frame"] - a["bytes_per_frame"])
    ours = f"{equal:,.0f} B a frame"
    ratio = f"{equal / jpeg_q80['bytes_per_frame']:.2f}"
else:
    ours, ratio = f"not bracketed by {', '.join(m['setting'] for m in h264)}", ""
row(
    f"h264 on real footage (vtest.avi 768x576): bytes at JPEG q80's {target:.2f} dB",
    ours,
    f"{jpeg_q80['bytes_per_frame']:,.0f} B JPEG q80",
    ratio,
    "≤ 0.25",
)
for reference in lines("efficiency_ffmpeg.jsonl"):
    mine = next((m for m in h264 if m["setting"] == reference["setting"].split()[0]), None)
    if mine is None:
        continue
    row(
        f"… at {reference['setting']}: bytes, PSNR (BGR as shown)",
        f"{mine['bytes_per_frame']:,.0f} B, {mine['psnr_db']:.2f} dB",
        f"{reference['bytes_per_frame']:,.0f} B, {reference['psnr_db']:.2f} dB: ffmpeg -c:v libx264 -preset veryfast -tune zerolatency, same pictures",
        f"{mine['bytes_per_frame'] / reference['bytes_per_frame']:.2f}, {mine['psnr_db'] - reference['psnr_db']:+.2f} dB",
        "within 10%",
    )

# 8. H.264 at 1280x720, 30 fps, on loopback: latency and CPU, against JPEG q80.
loop = {codec: (load(f"loop_{codec}"), load(f"sender_loop_{codec}")) for codec in ("h264", "jpeg")}


def cpu(report):
    return report["cpu_seconds"] / report["seconds"] if report["seconds"] else float("nan")


(h264_rx, h264_tx), (jpeg_rx, jpeg_tx) = loop["h264"], loop["jpeg"]
row(
    "h264 1280x720 30 fps (real footage), loopback: latency p50 / p99",
    f"{h264_rx['latency_ms']['p50']:.1f} / {h264_rx['latency_ms']['p99']:.1f} ms",
    f"{jpeg_rx['latency_ms']['p50']:.1f} / {jpeg_rx['latency_ms']['p99']:.1f} ms jpeg q80",
    "",
    "p50 < 15, p99 < 30 ms",
)
row(
    "… CPU, cores: sender / receiver (the sender's includes decoding the MJPEG clip)",
    f"{cpu(h264_tx):.2f} / {cpu(h264_rx):.2f}",
    f"{cpu(jpeg_tx):.2f} / {cpu(jpeg_rx):.2f} jpeg q80",
    "",
    "≤ 0.50 / ≤ 0.33",
)
row(
    "… bit rate",
    f"{h264_rx['bytes'] * 8 / 1000 / h264_rx['seconds']:.0f} kbit/s",
    f"{jpeg_rx['bytes'] * 8 / 1000 / jpeg_rx['seconds']:.0f} kbit/s jpeg q80",
    f"{h264_rx['bytes'] / jpeg_rx['bytes'] * jpeg_rx['seconds'] / h264_rx['seconds']:.2f}",
    "",
)

# 9. --bitrate auto on thin links.
for mbit in (8, 4, 2):
    link = load(f"link_{mbit}")
    used = link["bytes"] * 8 / 1e6 / link["seconds"] if link["seconds"] else 0.0
    row(
        f"h264 --bitrate auto, {mbit} Mbit/s link: p99 / frames shown / link use",
        f"{link['latency_ms']['p99']:.0f} ms / {accepted(link):.0%} / {used:.2f} Mbit/s",
        f"{load(f'sender_link_{mbit}')['bitrate_kbps']} kbit/s chosen at the end",
        f"{used / mbit:.2f}",
        "p99 < 250 ms, ≥ 90%",
    )

# 10. H.264 on a link that drops from 8 to 1.5 Mbit/s: auto against a fixed rate.
for rate in ("auto", "6000"):
    drop_us = int((out / f"drop_{rate}_us").read_text())
    with open(out / f"drop_{rate}.csv") as f:
        shown = [(int(r["display_unix_us"]), float(r["latency_ms"]), int(r["bytes"])) for r in csv.DictReader(f)]
    after = [s for s in shown if s[0] > drop_us]
    settled = [s for s in after if s[0] > drop_us + 3_000_000]
    gaps = [b[0] - a[0] for a, b in zip(shown, shown[1:]) if b[0] > drop_us]
    report = load(f"drop_{rate}")
    span = (settled[-1][0] - settled[0][0]) / 1e6 if len(settled) > 1 else 0
    use = sum(s[2] for s in settled) * 8 / 1000 / span if span else 0
    label = "--bitrate auto" if rate == "auto" else f"--bitrate {rate}"
    row(
        f"h264 1280x720 30 fps, {label}, link 8 → 1.5 Mbit/s: p99 after the drop / from 3 s after",
        f"{p99([s[1] for s in after]):.0f} / {p99([s[1] for s in settled]):.0f} ms",
        "",
        "",
        "p99 < 250 ms within 3 s",
    )
    row(
        "… longest gap between frames shown after the drop; frames shown over the run",
        f"{max(gaps) / 1000 if gaps else float('nan'):.0f} ms; {accepted(report):.0%}",
        f"link use {use:.0f} kbit/s of 1500",
        "",
        "≤ 1000 ms; ≥ 80%",
    )

# 11. Joining: a receiver started, to its first picture shown (median of 5).
join = {}
for codec in ("h264", "jpeg"):
    took = sorted(int(line) / 1000 for line in (out / f"join_{codec}_us").read_text().split())
    join[codec] = took[len(took) // 2]
row(
    "joining h264 with --keyframe-interval 10: start to first picture (median of 5)",
    f"{join['h264']:.0f} ms",
    f"{join['jpeg']:.0f} ms jpeg (every frame a keyframe)",
    f"+{join['h264'] - join['jpeg']:.0f} ms",
    "a few hundred ms",
)

print(f"camstream benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()} "
      f"({platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores), {seconds} s per case")
print()
print("| case | camstream | reference (same run) | ratio | goal |")
print("|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
