"""camstream's Python module as a user's program meets it: frames as numpy arrays both ways,
against each other and against the real `sender` and `receiver` programs."""

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import camstream

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("CAMSTREAM_BIN", ROOT / "target" / "debug"))
WIDTH, HEIGHT = 160, 120


def image(k):
    """Frame `k` of a program's own: noise from seed `k`, its first 8 bytes `k` itself."""
    picture = np.random.default_rng(k).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    picture.reshape(-1)[:8] = np.frombuffer(k.to_bytes(8, "little"), dtype=np.uint8)
    return picture


def index_of(picture):
    return int.from_bytes(picture.reshape(-1)[:8].tobytes(), "little")


def smooth(k):
    """A picture JPEG keeps close: gradients that move with `k`."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.stack([(x + k) % 256, (y * 2) % 256, (x + y + 3 * k) % 256], axis=-1).astype(np.uint8)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


class Sending:
    """A Python sender sending `make(k)` at about 30 fps on a thread, frame 0 before it starts."""

    def __init__(self, make=image, **options):
        self.sender = camstream.Sender("127.0.0.1:0", **options)
        self.make = make
        self.sender.send(make(0))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        k = 1
        while not self.stop.wait(1 / 30):
            self.sender.send(self.make(k))
            k += 1

    @property
    def address(self):
        return f"127.0.0.1:{self.sender.port}"

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sender.close()


@pytest.fixture
def raw_sending():
    sending = Sending(codec="raw", insecure=True)
    yield sending
    sending.close()


def test_raw_frames_arrive_pixel_for_pixel_with_numbers_and_capture_times(raw_sending):
    with camstream.Receiver(raw_sending.address, insecure=True) as receiver:
        last = -1
        for _ in range(10):
            before = time.time()
            frame = receiver.recv(timeout=10)
            assert frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8
            assert np.array_equal(frame.image, image(index_of(frame.image)))
            assert frame.encoded == frame.image.tobytes() and frame.codec == "raw"
            assert frame.seq > last
            last = frame.seq
            # Captured in this process a moment ago (the clocks are one, give or take the
            # offset's measurement).
            assert before - 1 < frame.capture_time < time.time() + 0.005
            assert 0 <= frame.latency_ms < 1000
        # The array is the caller's: writable, and it outlives the receiver.
        frame.image[0, 0] = 7
    assert receiver is not None and frame.image[0, 0, 0] == 7


def test_jpeg_frames_are_close_and_paired_with_the_code_the_sender_made():
    sending = Sending(make=smooth, quality=90)
    try:
        assert sending.sender.code
        with camstream.Receiver(sending.address, code=sending.sender.code) as receiver:
            frame = receiver.recv(timeout=10)
            assert frame.codec == "jpeg" and frame.encoded[:2] == b"\xff\xd8"
            best = max(psnr(frame.image, smooth(k)) for k in range(0, 2000))
            assert best > 30, best
    finally:
        sending.close()


def test_a_wrong_code_is_an_error_naming_it():
    sending = Sending()
    try:
        with pytest.raises(ConnectionError, match="pairing code did not match"):
            camstream.Receiver(sending.address, code="1-wrong-code")
        with pytest.raises(ValueError, match="pairing code"):
            camstream.Receiver(sending.address)
    finally:
        sending.close()


def test_a_slow_consumer_gets_the_newest_frame_with_the_skipped_ones_counted(raw_sending):
    with camstream.Receiver(raw_sending.address, insecure=True) as receiver:
        before = receiver.recv(timeout=10).seq
        time.sleep(0.5)
        # What was already on its way comes first, then the newest.
        seqs = [receiver.recv(timeout=10).seq for _ in range(4)]
        assert seqs[-1] >= before + 12, (before, seqs)
        assert receiver.stats()["dropped"] >= 10


def test_a_restarted_sender_is_followed(capfd):
    first = camstream.Sender("127.0.0.1:0", codec="raw", insecure=True)
    port = first.port
    first.send(image(0))
    with camstream.Receiver(f"127.0.0.1:{port}", insecure=True) as receiver:
        first.send(image(0))
        receiver.recv(timeout=10)
        first.close()
        with camstream.Sender(f"127.0.0.1:{port}", codec="raw", insecure=True) as second:
            second.send(image(1))
            deadline = time.time() + 10
            while True:
                second.send(image(1))
                try:
                    frame = receiver.recv(timeout=0.2)
                except TimeoutError:
                    assert time.time() < deadline, "the receiver did not follow the restart"
                    continue
                if index_of(frame.image) == 1:
                    break
            assert np.array_equal(frame.image, image(1))
            # Once, or twice when a try reached the first sender while it was still closing.
            assert receiver.stats()["reconnects"] in (1, 2)
    # Said on stderr, as the receiver program says it.
    assert f"camstream: warn: the sender ended the stream; waiting for 127.0.0.1:{port}" in capfd.readouterr().err


def test_a_stream_that_ends_ends_the_iteration():
    sender = camstream.Sender("127.0.0.1:0", codec="raw", insecure=True)
    sender.send(image(0))
    receiver = camstream.Receiver(f"127.0.0.1:{sender.port}", insecure=True, reconnect=False)
    sender.send(image(1))
    receiver.recv(timeout=10)
    sender.close()
    # What was on its way still comes, then the iteration ends.
    assert all(index_of(frame.image) in (0, 1) for frame in receiver)
    with pytest.raises(EOFError):
        receiver.recv(timeout=1)


def test_images_it_cannot_send_are_a_clear_value_error():
    with camstream.Sender("127.0.0.1:0", insecure=True) as sender:
        with pytest.raises(ValueError, match="uint8"):
            sender.send(np.zeros((HEIGHT, WIDTH, 3), dtype=np.float32))
        with pytest.raises(ValueError, match="height x width x 3"):
            sender.send(np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            sender.send([1, 2, 3])
        sender.send(image(0))
        with pytest.raises(ValueError, match="160x120 .the first one's size., not 320x240"):
            sender.send(np.zeros((240, 320, 3), dtype=np.uint8))
        # Not contiguous: a view every other column is sent as it looks.
        wide = np.zeros((HEIGHT, WIDTH * 2, 3), dtype=np.uint8)
        sender.send(wide[:, ::2])


def test_a_waiting_recv_lets_other_threads_run_and_times_out():
    sender = camstream.Sender("127.0.0.1:0", codec="raw", insecure=True)
    sender.send(image(0))
    with camstream.Receiver(f"127.0.0.1:{sender.port}", insecure=True) as receiver:
        # A receiver starts with the next frame after the sender lets it in, a moment after
        # its hello reached us: frame 1, sent again until it comes. Taken, nothing more is
        # coming.
        sender.send(image(1))
        while True:
            try:
                if index_of(receiver.recv(timeout=1).image) == 1:
                    break
            except TimeoutError:
                sender.send(image(1))
        result = {}

        def wait():
            started = time.monotonic()
            try:
                receiver.recv(timeout=1.0)
            except TimeoutError as e:
                result["error"] = e
            result["waited"] = time.monotonic() - started

        waiting = threading.Thread(target=wait)
        waiting.start()
        counted = 0
        until = time.monotonic() + 0.5
        while time.monotonic() < until:
            counted += 1
        waiting.join()
        # Holding the GIL, the wait would have stopped this thread for the whole second.
        assert counted > 100_000, counted
        assert isinstance(result["error"], TimeoutError) and 0.9 < result["waited"] < 2
    sender.close()


def test_ctrl_c_interrupts_a_waiting_recv_at_once():
    script = """
import sys, numpy as np, camstream
sender = camstream.Sender("127.0.0.1:0", insecure=True)
sender.send(np.zeros((120, 160, 3), dtype=np.uint8))
receiver = camstream.Receiver(f"127.0.0.1:{sender.port}", insecure=True)
sender.send(np.zeros((120, 160, 3), dtype=np.uint8))
receiver.recv(timeout=10)
print("waiting", flush=True)
try:
    receiver.recv()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    raise
"""
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "waiting"
    time.sleep(0.3)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    # The wait is what must end at once; closing the sender and the process come after.
    assert child.stdout.readline().strip() == "interrupted"
    assert time.monotonic() - sent < 1.0
    _, stderr = child.communicate(timeout=10)
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr, stderr


def test_frames_from_the_sender_program_and_to_the_receiver_program(tmp_path):
    """Two OpenCVs in one process: opencv-python writes a lossless clip, the `sender`
    program (Debian's OpenCV) plays it raw to this process, byte for byte."""
    cv2 = pytest.importorskip("cv2")
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"FFV1"), 30, (WIDTH, HEIGHT))
    frames = [image(k) for k in range(30)]
    for frame in frames:
        writer.write(frame)
    writer.release()
    sender = subprocess.Popen(
        [BIN / "sender", "--listen", "127.0.0.1:0", "--source", str(clip), "--codec", "raw",
         "--insecure", "--no-preview", "--loop"],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        address = None
        for line in sender.stderr:
            if "listening on " in line:
                address = line.split("listening on ")[1].split()[0]
                break
        with camstream.Receiver(address, insecure=True) as receiver:
            for _ in range(5):
                frame = receiver.recv(timeout=10)
                assert np.array_equal(frame.image, frames[index_of(frame.image)])
                # And OpenCV's own Python bindings take the array as it is.
                assert cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY).shape == (HEIGHT, WIDTH)
    finally:
        sender.terminate()
        sender.wait(timeout=10)

    # This process's frames to the `receiver` program.
    ours = Sending(codec="raw", insecure=True)
    try:
        shown = subprocess.run(
            [BIN / "receiver", "--connect", ours.address, "--insecure", "--headless",
             "--frames", "10", "--once", "--stats"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        )
        assert shown.returncode == 0, shown.stderr
        assert '"frames":10' in shown.stdout
    finally:
        ours.close()


def test_the_stubs_ship_with_the_module():
    installed = pathlib.Path(camstream.__file__).parent
    assert (installed / "camstream.pyi").exists() or (installed / "__init__.pyi").exists()


def test_a_hub_yields_each_senders_frames_with_its_address():
    small = Sending(codec="raw", insecure=True)
    smooth_sending = Sending(make=smooth, code="12-brave-heron")
    try:
        with camstream.Hub() as hub:
            hub.add(small.address, insecure=True)
            hub.add(smooth_sending.address, code="12-brave-heron")
            seen = {small.address: 0, smooth_sending.address: 0}
            while min(seen.values()) < 5:
                sender, frame = hub.recv(timeout=10)
                if sender == small.address:
                    assert np.array_equal(frame.image, image(index_of(frame.image)))
                else:
                    assert frame.codec == "jpeg"
                    assert max(psnr(frame.image, smooth(k)) for k in range(200)) > 30
                seen[sender] += 1
                assert sum(seen.values()) < 100, f"{seen}: not taken in turn"
            senders = hub.senders()
            assert [s["sender"] for s in senders] == [small.address, smooth_sending.address]
            assert all(s["taken"] >= 5 and s["frames"] >= s["taken"] for s in senders)
            assert all(s["lost"] is None and not s["ended"] for s in senders)
            with pytest.raises(ConnectionError, match="pairing code did not match"):
                hub.add(smooth_sending.address, code="1-wrong-code")
            with pytest.raises(ValueError, match="timeout must be a number of seconds"):
                hub.recv(timeout=-1)
            # A sender that goes away is said to be lost, since when and why, while the hub
            # tries it again.
            closed_at = time.time()
            small.close()
            deadline = time.monotonic() + 10
            while hub.senders()[0]["lost"] is None and time.monotonic() < deadline:
                time.sleep(0.05)
            since, why = hub.senders()[0]["lost"]
            assert closed_at - 1 < since < time.time(), since
            assert why, "a reason is given"
            assert not hub.senders()[0]["ended"]
    finally:
        small.close()
        smooth_sending.close()


def test_a_program_can_make_only_the_frames_a_viewer_is_ready_for():
    with camstream.Sender("127.0.0.1:0", codec="raw", insecure=True) as sender:
        assert sender.wait_wanted(timeout=0), "the first frame starts the stream"
        sender.send(image(0))
        assert not sender.wait_wanted(timeout=0.2), "nobody is watching"
        with camstream.Receiver(f"127.0.0.1:{sender.port}", insecure=True) as receiver:
            shown = []
            for k in range(1, 6):
                assert sender.wait_wanted(timeout=10)
                sender.send(image(k))
                while not shown or shown[-1] != k:
                    frame = receiver.recv(timeout=10)
                    shown.append(index_of(frame.image))
                    assert np.array_equal(frame.image, image(shown[-1]))
            assert shown == list(range(shown[0], 6)) and shown[0] <= 1, shown
