"""The Python references of scripts/bench.sh: raw frames as fast as possible over loopback with
what camstream's users start from (`tutorial`: pickle behind a struct "Q" length, received with
the tutorial's `data += conn.recv(4096)` loop) and what they would pick instead (`imagezmq`,
REQ/REP as in its README). Sender and receiver are two processes, as two programs would be.

Usage: python bench/python_refs.py tutorial|imagezmq [--seconds S] [--width W] [--height H]
Prints one JSON line: frames, seconds, fps, mb_per_s (pixel bytes), latency_ms p50/p90/p99.
"""

import argparse
import json
import multiprocessing
import pickle
import socket
import struct
import time

import numpy as np

WARM_UP = 0.5  # seconds not measured at the start


def frames(width, height):
    """The same picture each time with its first bytes changed, stamped just before sending."""
    picture = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    n = 0
    while True:
        picture[0, 0, 0] = n % 256
        n += 1
        yield time.time(), picture


def tutorial_send(port, width, height, deadline):
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        for stamp, picture in frames(width, height):
            if time.time() > deadline:
                break
            data = pickle.dumps((stamp, picture))
            sock.sendall(struct.pack("Q", len(data)) + data)
    except OSError:
        pass  # the receiver hung up at its deadline
    sock.close()


def tutorial_receive(listener, deadline, record):
    conn, _ = listener.accept()
    conn.settimeout(max(0.1, deadline - time.time()))
    data = b""
    payload_size = struct.calcsize("Q")
    try:
        while time.time() < deadline:
            while len(data) < payload_size:
                data += conn.recv(4096)
            msg_size = struct.unpack("Q", data[:payload_size])[0]
            data = data[payload_size:]
            while len(data) < msg_size:
                data += conn.recv(4096)
            frame_data = data[:msg_size]
            data = data[msg_size:]
            stamp, _picture = pickle.loads(frame_data)
            record(stamp)
    except (socket.timeout, OSError):
        pass
    conn.close()


def imagezmq_send(port, width, height, deadline):
    import imagezmq

    sender = imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{port}")
    for stamp, picture in frames(width, height):
        if time.time() > deadline:
            break
        sender.send_image(repr(stamp), picture)
    sender.close()


def imagezmq_receive(port, deadline, record):
    import imagezmq

    hub = imagezmq.ImageHub(open_port=f"tcp://127.0.0.1:{port}")
    hub.zmq_socket.setsockopt(__import__("zmq").RCVTIMEO, 1000)
    try:
        while time.time() < deadline:
            stamp, _picture = hub.recv_image()
            record(float(stamp))
            hub.send_reply(b"OK")
    except Exception:  # zmq.Again at the deadline: the sender has stopped
        pass
    hub.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol", choices=["tutorial", "imagezmq"])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    args = parser.parse_args()

    start = time.time() + 1.0  # the sender's process needs a moment to import numpy
    deadline = start + WARM_UP + args.seconds
    latencies, arrivals = [], []

    def record(stamp):
        now = time.time()
        if now >= start + WARM_UP:
            arrivals.append(now)
            latencies.append((now - stamp) * 1000)

    if args.protocol == "tutorial":
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        sender = multiprocessing.Process(target=tutorial_send, args=(port, args.width, args.height, deadline))
        sender.start()
        tutorial_receive(listener, deadline, record)
        listener.close()
    else:
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        sender = multiprocessing.Process(target=imagezmq_send, args=(port, args.width, args.height, deadline))
        sender.start()
        imagezmq_receive(port, deadline, record)
    sender.join(timeout=5)
    if sender.is_alive():
        sender.kill()

    count = len(arrivals)
    seconds = (arrivals[-1] - (start + WARM_UP)) if count else args.seconds
    fps = count / seconds if seconds > 0 else 0.0
    ordered = sorted(latencies)

    def quantile(q):
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0

    print(json.dumps({
        "frames": count,
        "seconds": round(seconds, 3),
        "fps": round(fps, 2),
        "mb_per_s": round(fps * args.width * args.height * 3 / 1e6, 1),
        "latency_ms": {"p50": quantile(0.5), "p90": quantile(0.9), "p99": quantile(0.99)},
    }))


if __name__ == "__main__":
    main()
