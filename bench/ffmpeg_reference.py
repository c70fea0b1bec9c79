"""The ffmpeg CLI's libx264 on a clip, as the reference camstream's H.264 is judged against.

Encodes CLIP at KBIT kbit/s with the settings camstream uses (preset veryfast, tune zerolatency,
constant rate with a VBV buffer of five frames, a keyframe every 2 s), decodes it back, and prints
one JSON line like examples/codec_efficiency's: bytes a frame, and the mean over frames of the
PSNR of the decoded BGR picture against the source's BGR picture.

Usage: python3 bench/ffmpeg_reference.py CLIP KBIT
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

clip, kbit = sys.argv[1], int(sys.argv[2])
probe = subprocess.run(
    ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
     "-show_entries", "stream=r_frame_rate,nb_read_frames", "-of", "json", clip],
    check=True, capture_output=True, text=True)
stream = json.loads(probe.stdout)["streams"][0]
num, den = (int(x) for x in stream["r_frame_rate"].split("/"))
fps = num / den
frames = int(stream["nb_read_frames"])

with tempfile.TemporaryDirectory() as tmp:
    encoded = Path(tmp) / "out.264"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", clip, "-an",
         "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
         "-b:v", f"{kbit}k", "-maxrate", f"{kbit}k", "-bufsize", f"{kbit * 5 / fps:.0f}k",
         "-g", str(round(2 * fps)), "-pix_fmt", "yuv420p", "-f", "h264", str(encoded)],
        check=True)
    stats = Path(tmp) / "psnr.log"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(encoded), "-i", clip,
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
