#!/usr/bin/env python3
"""An internet-like path between two network namespaces, for camstream's benchmark and tests.

The machines camstream is measured on have no netem, so this carries the packets itself. It makes
a TUN device in each of two existing network namespaces (point to point: by default 10.203.0.1 in
the first, 10.203.0.2 in the second, apart from the bench's 10.201.0.x veth pair), reads every
packet either side sends and writes it out of the other side's device after what a long path
would do to it:

* a bottleneck of --rate-kbit (each direction), behind a drop-tail queue of --queue-ms: a
  packet that would wait longer than that to be serialised is dropped;
* random loss: each packet is lost with probability --loss (a fraction), each way, drawn from
  a generator seeded with --seed, so the same run loses the same packets;
* --delay-ms one way, plus a jitter of up to --jitter-ms either side of it (uniform), never
  reordering: a packet never leaves before the one in front of it (so in a dense stream the
  delays lean to the upper end of the range, as behind a real queue; a ping sees the mean).

Root only (TUN devices, setns). Python 3 standard library only. The namespaces must exist; the
devices go away with the process. One poll loop, reads in batches: 8 Mbit/s each way costs a few
percent of a core.

Usage:
    ip netns add snd; ip netns add rcv
    python3 bench/wan.py snd rcv --delay-ms 25 --jitter-ms 5 --loss 0.01 --rate-kbit 4000 &
    # prints "wan ready: ..." once both devices are up; then, e.g.:
    ip netns exec snd target/release/sender --listen 10.203.0.1:9999 ...
    ip netns exec rcv target/release/receiver --connect 10.203.0.1:9999 ...
    kill -INT %1   # prints one summary line per direction, then exits
    ip netns del snd; ip netns del rcv

The summary lines read
    wan snd->rcv: carried 10234 (13.8 MB), lost 101, queue-dropped 12
"""

import argparse
import collections
import ctypes
import errno
import fcntl
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
# Packets taken from one device per wake-up before the other side and the timers get a turn.
BATCH = 256


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Emulates a WAN path (delay, jitter, loss, a rate limit) between two network namespaces."
    )
    parser.add_argument("ns_a", help="first network namespace (ip netns name)")
    parser.add_argument("ns_b", help="second network namespace (ip netns name)")
    parser.add_argument("--addr-a", default="10.203.0.1", help="address of the device in NS_A (default 10.203.0.1)")
    parser.add_argument("--addr-b", default="10.203.0.2", help="address of the device in NS_B (default 10.203.0.2)")
    parser.add_argument("--dev", default="wan0", help="name of the TUN device in each namespace (default wan0)")
    parser.add_argument("--mtu", type=int, default=1500, help="MTU of the devices (default 1500)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay in ms (default 0)")
    parser.add_argument("--jitter-ms", type=float, default=0.0,
                        help="each packet's delay varies uniformly by up to this much either way, never reordering")
    parser.add_argument("--loss", type=float, default=0.0, help="fraction of packets lost at random, each way (default 0)")
    parser.add_argument("--rate-kbit", type=float, default=0.0,
                        help="bottleneck rate each way in kbit/s (default 0: no limit)")
    parser.add_argument("--queue-ms", type=float, default=100.0,
                        help="the bottleneck's drop-tail queue, in ms of its rate (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="seed for loss and jitter (default 1)")
    args = parser.parse_args(argv)
    if args.ns_a == args.ns_b:
        parser.error("the two namespaces must differ")
    if not 0.0 <= args.loss < 1.0:
        parser.error(f"--loss {args.loss}: must be a fraction in [0, 1)")
    for name in ("delay_ms", "jitter_ms", "rate_kbit", "queue_ms"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    return args


class Path:
    """One direction of the path: the packets it holds and when each may leave."""

    def __init__(self, name, out_fd, args, seed):
        self.name = name
        self.out_fd = out_fd
        self.byte_s = args.rate_kbit * 1000 / 8  # 0: no bottleneck
        self.queue_s = args.queue_ms / 1000
        self.delay_s = args.delay_ms / 1000
        self.jitter_s = args.jitter_ms / 1000
        self.loss = args.loss
        # Loss has its own generator, so which packets are lost does not depend on jitter.
        self.loss_rng = random.Random(seed)
        self.jitter_rng = random.Random(seed + 1_000_003)
        self.link_free_at = 0.0  # when the bottleneck has sent what it holds
        self.last_out = 0.0  # when the packet in front leaves: no one overtakes it
        self.in_flight = collections.deque()  # (leaves at, packet), in order
        self.carried = self.carried_bytes = self.lost = self.queue_dropped = 0

    def arrive(self, packet, now):
        """A packet sent into this direction at `now`."""
        if self.loss and self.loss_rng.random() < self.loss:
            self.lost += 1
            return
        sent = now
        if self.byte_s:
            start = max(now, self.link_free_at)
            if start - now > self.queue_s:
                self.queue_dropped += 1
                return
            self.link_free_at = start + len(packet) / self.byte_s
            sent = self.link_free_at
        delay = self.delay_s
        if self.jitter_s:
            delay += self.jitter_rng.uniform(-self.jitter_s, self.jitter_s)
        leaves = max(sent + max(delay, 0.0), self.last_out)
        self.last_out = leaves
        self.in_flight.append((leaves, packet))

    def next_due(self):
        return self.in_flight[0][0] if self.in_flight else None

    def deliver(self, now):
        """Writes out every packet due by `now`."""
        queue = self.in_flight
        while queue and queue[0][0] <= now:
            packet = queue.popleft()[1]
            try:
                os.write(self.out_fd, packet)
            except OSError as e:
                # The far device is down or its queue is full (EAGAIN, ENOBUFS): lost there.
                if e.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.EIO, errno.EINVAL):
                    raise
                self.queue_dropped += 1
                continue
            self.carried += 1
            self.carried_bytes += len(packet)

    def summary(self):
        return (f"wan {self.name}: carried {self.carried} ({self.carried_bytes / 1e6:.1f} MB), "
                f"lost {self.lost}, queue-dropped {self.queue_dropped}")


libc = ctypes.CDLL(None, use_errno=True)


def enter(namespace_fd):
    if libc.setns(namespace_fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def open_tun(namespace, dev, home_fd):
    """A TUN device named `dev` created inside `namespace`; returns its file descriptor."""
    try:
        target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    except FileNotFoundError:
        sys.exit(f"wan.py: no network namespace {namespace!r} (ip netns add {namespace})")
    try:
        # The device is made in the namespace the process is in when it asks for it.
        enter(target)
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
        finally:
            enter(home_fd)
    finally:
        os.close(target)
    return fd


def ip(*words):
    subprocess.run(["ip", *words], check=True)


def main(argv):
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("wan.py: needs root (TUN devices inside network namespaces)")
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    ends = []
    for namespace, local, peer in ((args.ns_a, args.addr_a, args.addr_b), (args.ns_b, args.addr_b, args.addr_a)):
        fd = open_tun(namespace, args.dev, home)
        ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", namespace, "link", "set", args.dev, "mtu", str(args.mtu), "up")
        ip("-n", namespace, "addr", "add", local, "peer", peer, "dev", args.dev)
        ends.append(fd)
    fd_a, fd_b = ends
    a_to_b = Path(f"{args.ns_a}->{args.ns_b}", fd_b, args, args.seed)
    b_to_a = Path(f"{args.ns_b}->{args.ns_a}", fd_a, args, args.seed + 1)
    sources = {fd_a: a_to_b, fd_b: b_to_a}

    # Signals wake the poll through a pipe (PEP 475 would otherwise retry it until its timeout).
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.append(True))

    poller = select.epoll()
    for fd in (fd_a, fd_b, wake_r):
        poller.register(fd, select.EPOLLIN)

    print(f"wan ready: {args.ns_a} {args.addr_a} <-> {args.ns_b} {args.addr_b} ({args.dev}), "
          f"delay {args.delay_ms:g} ms, jitter {args.jitter_ms:g} ms, loss {args.loss:g}, "
          f"rate {args.rate_kbit:g} kbit/s" + (f" (queue {args.queue_ms:g} ms)" if args.rate_kbit else ""),
          flush=True)

    read = os.read
    clock = time.monotonic
    while not stopping:
        now = clock()
        dues = [d for d in (a_to_b.next_due(), b_to_a.next_due()) if d is not None]
        # Blocks until a packet comes or the next one is due (epoll rounds up to a millisecond).
        timeout = max(0.0, min(dues) - now) if dues else -1
        for fd, _ in poller.poll(timeout):
            if fd == wake_r:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
                continue
            path = sources[fd]
            now = clock()
            for _ in range(BATCH):
                try:
                    packet = read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno == errno.EIO:  # the device is down for a moment
                        break
                    raise
                path.arrive(packet, now)
        now = clock()
        a_to_b.deliver(now)
        b_to_a.deliver(now)

    for path in (a_to_b, b_to_a):
        print(path.summary(), flush=True)
    for fd in (fd_a, fd_b):
        os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
