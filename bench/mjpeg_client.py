"""An MJPEG client for scripts/bench.sh (case 14): reads a sender's /stream.mjpg, prints JSON.

Reads the multipart stream for --seconds and notes, for each JPEG part, when it arrived, its
capture time (the sender's X-Timestamp header) and its size; over the parts that arrived after
the first --skip seconds it prints the frames per second, the kbit/s and the latency p50 / p99
(arrival - capture: meaningful when client and sender share a clock, as in the bench, where both
run on the same machine). MJPEG has no acks: what a client gets is what TCP and the sender's
socket limit let through. Standard library only; the certificate is not checked (the sender's
is self-signed), and the pairing code is sent as the Basic password, as browsers and curl do.

Usage: mjpeg_client.py https://:CODE@IP:PORT/stream.mjpg [--seconds 10] [--skip 2]
"""

import argparse
import base64
import http.client
import json
import ssl
import sys
import time
import urllib.parse

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("--seconds", type=float, default=10)
parser.add_argument("--skip", type=float, default=2, help="seconds left out at the start")
args = parser.parse_args()

url = urllib.parse.urlsplit(args.url)
if url.scheme == "https":
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=5, context=context)
else:
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
headers = {}
if url.password is not None or url.username:
    credentials = f"{urllib.parse.unquote(url.username or '')}:{urllib.parse.unquote(url.password or '')}"
    headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()

started = time.time()
end = started + args.seconds
conn.request("GET", url.path or "/", headers=headers)
response = conn.getresponse()
if response.status != 200:
    sys.exit(f"mjpeg_client.py: {args.url.split('@')[-1]}: HTTP {response.status} {response.reason}")

parts = []  # (arrival unix s, capture unix s or None, bytes, starts with a JPEG SOI)
error = None
try:
    while time.time() < end:
        line = response.readline()
        if not line:
            error = "the stream ended"
            break
        if not line.startswith(b"--"):
            continue
        fields = {}
        while True:
            header = response.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.partition(b":")
            fields[name.strip().lower()] = value.strip()
        if b"content-length" not in fields:
            continue
        length = int(fields[b"content-length"])
        data = response.read(length)
        if len(data) < length:
            error = "the stream ended inside a part"
            break
        stamp = fields.get(b"x-timestamp")
        parts.append((time.time(), float(stamp) if stamp else None, length, data[:2] == b"\xff\xd8"))
except (OSError, http.client.HTTPException) as e:
    error = f"{type(e).__name__}: {e}"
stopped = time.time()
conn.close()

first = parts[0][0] if parts else started
window_start = first + args.skip
kept = [p for p in parts if p[0] >= window_start]
span = stopped - window_start
latencies = sorted((p[0] - p[1]) * 1000 for p in kept if p[1] is not None)


def quantile(values, q):
    return values[min(len(values) - 1, int(len(values) * q))] if values else None


print(json.dumps({
    "parts": len(parts),
    "jpegs": sum(1 for p in parts if p[3]),
    "first_part_s": round(first - started, 3) if parts else None,
    "measured_parts": len(kept),
    "seconds": round(span, 3),
    "fps": len(kept) / span if span > 0 else 0.0,
    "kbit_s": sum(p[2] for p in kept) * 8 / 1000 / span if span > 0 else 0.0,
    "latency_ms": {"p50": quantile(latencies, 0.5), "p99": quantile(latencies, 0.99)},
    "error": error,
}))
