"""The Python module measured as a user's program would use it (scripts/bench.sh, case 16).

  receive ADDRESS --seconds S [--code C]   frames as numpy arrays for S seconds: JSON with fps,
                                           MB/s and latency percentiles
  send --seconds S --size WxH --codec C    a Sender on a free port, sending one numpy frame after
                                           another as fast as send returns; prints "listening
                                           on ADDRESS" first, then JSON with the rate sent
"""

import argparse
import json
import sys
import time

import numpy as np

import camstream


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else None


def receive(args):
    options = {"code": args.code} if args.code else {"insecure": True}
    latencies, frames, size = [], 0, 0
    with camstream.Receiver(args.address, **options) as receiver:
        receiver.recv(timeout=10)
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            frame = receiver.recv(timeout=10)
            frames += 1
            size += frame.image.nbytes
            latencies.append(frame.latency_ms)
        seconds = time.monotonic() - started
    print(json.dumps({
        "frames": frames,
        "seconds": seconds,
        "fps": frames / seconds,
        "mb_per_s": size / seconds / 1e6,
        "latency_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99)},
    }))


def send(args):
    width, height = map(int, args.size.split("x"))
    images = [np.full((height, width, 3), shade, dtype=np.uint8) for shade in (40, 200)]
    with camstream.Sender("127.0.0.1:0", codec=args.codec, insecure=True) as sender:
        sender.send(images[0])
        print(f"listening on 127.0.0.1:{sender.port}", file=sys.stderr, flush=True)
        sent = 0
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            # Only the frames a viewer will take, as the sender program's --fps 0 makes them.
            if args.as_wanted and not sender.wait_wanted(timeout=1):
                continue
            sender.send(images[sent % 2])
            sent += 1
        seconds = time.monotonic() - started
    print(json.dumps({"sent": sent, "seconds": seconds, "sends_per_s": sent / seconds}))


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    receiving = commands.add_parser("receive")
    receiving.add_argument("address")
    receiving.add_argument("--seconds", type=float, default=10)
    receiving.add_argument("--code")
    sending = commands.add_parser("send")
    sending.add_argument("--seconds", type=float, default=10)
    sending.add_argument("--size", default="1920x1080")
    sending.add_argument("--codec", default="raw")
    sending.add_argument("--as-wanted", action="store_true",
                         help="send only when a viewer is ready for a frame (Sender.wait_wanted)")
    args = parser.parse_args()
    {"receive": receive, "send": send}[args.command](args)


if __name__ == "__main__":
    main()
