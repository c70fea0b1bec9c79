"""The ffmpeg CLI's libx264 on the same pictures, as the reference camstream's H.264 is judged
against.

examples/codec_efficiency writes the source pictures exactly as camstream read them (raw BGR,
`--source-bgr`) and names them on its first line. This feeds those same pictures to the ffmpeg
CLI with the settings camstream uses (preset veryfast, tune zerolatency, constant rate with a VBV
buffer of five frames, a keyframe every 2 s; FFmpeg's default conversion to YUV 4:2:0), decodes
the result back to BGR, and prints one JSON line like codec_efficiency's: bytes a frame, and the
mean over frames of the PSNR of the decoded BGR picture against the source's.

Usage: python3 bench/ffmpeg_reference.py EFFICIENCY_JSONL KBIT
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

results, kbit = Path(sys.argv[1]), int(sys.argv[2])
source = json.loads(results.read_text().splitlines()[0])
width, height, fps = source["width"], source["height"], source["fps"]
frames = Path(source["source_bgr"]).stat().st_size // (width * height * 3)
raw = ["-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(fps),
       "-i", source["source_bgr"]]

with tempfile.TemporaryDirectory() as tmp:
    encoded = Path(tmp) / "out.264"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *raw,
         "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
         "-b:v", f"{kbit}k", "-maxrate", f"{kbit}k", "-bufsize", f"{kbit * 5 / fps:.0f}k",
         "-g", str(round(2 * fps)), "-pix_fmt", "yuv420p", "-f", "h264", str(encoded)],
        check=True)
    stats = Path(tmp) / "psnr.log"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(encoded), *raw,
         "-lavfi", f"[0]format=bgr24[a];[1]format=bgr24[b];[a][b]psnr=stats_file={stats}",
         "-f", "null", "-"],
        check=True)
    per_frame = [float(m) for m in re.findall(r"psnr_avg:([0-9.]+|inf)", stats.read_text())]
    print(json.dumps({
        "codec": "ffmpeg -c:v libx264",
        "setting": f"{kbit} kbit/s",
        "bytes_per_frame": encoded.stat().st_size / frames,
        "psnr_db": sum(per_frame) / len(per_frame),
    }))
