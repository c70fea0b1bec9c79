"""camstream: live video between machines, frames as numpy arrays.

Receive a sender's newest frames (``Receiver``), several senders' (``Hub``), or serve your program's own frames to
receivers, browsers and ``/stream.mjpg`` (``Sender``). Images are numpy ``uint8`` arrays,
height x width x 3, BGR, as OpenCV uses them.
"""

from types import TracebackType
from typing import Any, Dict, Iterator, List, Optional, Tuple, Type

import numpy as np
import numpy.typing as npt

class Frame:
    """One frame, owned by the caller."""

    image: npt.NDArray[np.uint8]
    """The picture, height x width x 3, BGR."""
    seq: int
    """The sender's sequence number; a gap is frames not sent to this receiver, or not shown."""
    capture_time: float
    """When the sender captured it: seconds since the Unix epoch, on this machine's clock."""
    latency_ms: float
    """From capture until it was handed over, in milliseconds."""
    width: int
    height: int
    codec: str
    """``"jpeg"``, ``"h264"`` or ``"raw"``."""
    encoded: bytes
    """The frame as it was encoded, to store or forward."""

class Receiver:
    """A connection to a camstream sender that yields its newest frames.

    Raises ``ConnectionError`` when it cannot connect or pair (a wrong code says
    ``pairing code did not match``).
    """

    def __init__(
        self,
        address: str,
        code: Optional[str] = None,
        insecure: bool = False,
        reconnect: bool = True,
    ) -> None: ...
    def recv(self, timeout: Optional[float] = None) -> Frame:
        """The next frame; ``TimeoutError`` after ``timeout`` seconds, ``EOFError`` once the
        stream has ended (with ``reconnect=False``). Releases the GIL; Ctrl-C interrupts it."""
    def stats(self) -> Dict[str, Any]:
        """Counts so far, as the ``receiver`` program's ``--stats`` prints them."""
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[Frame]: ...
    def __next__(self) -> Frame: ...
    def __enter__(self) -> "Receiver": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...

class Hub:
    """Several senders' newest frames in one place, as imagezmq's ``ImageHub``: each sender is
    connected, paired and followed on its own, and ``(sender, frame)`` pairs come in turn,
    ``sender`` being the address it was added with."""

    def __init__(self) -> None: ...
    def add(
        self,
        address: str,
        code: Optional[str] = None,
        insecure: bool = False,
        reconnect: bool = True,
    ) -> None:
        """Connects to one more sender, as ``Receiver(...)`` does (``ConnectionError`` if it
        cannot)."""
    def recv(self, timeout: Optional[float] = None) -> Tuple[str, Frame]:
        """The next ``(sender, frame)``; ``TimeoutError`` after ``timeout`` seconds,
        ``EOFError`` once every sender's stream has ended, ``ConnectionError`` naming a sender
        whose stream broke (the others go on). Releases the GIL; Ctrl-C interrupts it."""
    def senders(self) -> List[Dict[str, Any]]:
        """Each sender, in the order added: ``sender`` (its address), ``taken``, ``skipped``
        (frames replaced by a newer one before they were taken), ``lost`` (``(since, why)``
        while it is away and being reconnected, ``since`` as ``time.time()`` gives it; else
        ``None``), ``ended``, and its receiver's counts."""
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[Tuple[str, Frame]]: ...
    def __next__(self) -> Tuple[str, Frame]: ...
    def __enter__(self) -> "Hub": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...

class Sender:
    """Serves the frames a program makes, as the ``sender`` program serves a camera."""

    code: Optional[str]
    """The pairing code viewers must give; ``None`` when insecure."""
    port: int
    """The port it listens on."""

    def __init__(
        self,
        listen: str,
        code: Optional[str] = None,
        insecure: bool = False,
        codec: str = "jpeg",
        quality: int = 80,
        fps: Optional[float] = None,
        max_viewers: int = 8,
        publish: Optional[List[str]] = None,
    ) -> None:
        """``publish``: media servers (``rtmp://``, ``rtsp://``, ``srt://`` URLs) to publish
        H.264 to as well, as the ``sender`` program's ``--publish`` (``ValueError`` for a URL
        it cannot take)."""
    def send(self, image: npt.NDArray[np.uint8]) -> None:
        """Leaves ``image`` (height x width x 3, BGR) as the newest frame and returns at once.
        Every frame must have the first one's size (``ValueError`` otherwise)."""
    def wait_wanted(self, timeout: Optional[float] = None) -> bool:
        """Waits until a viewer is ready for a frame newer than the last one sent, for a program
        that makes frames as fast as it can and wants to make only those that will be sent
        (``True``; at once before the first frame, or with ``fps``). ``False`` after
        ``timeout`` seconds. Releases the GIL; Ctrl-C interrupts it."""
    def close(self) -> None: ...
    def __enter__(self) -> "Sender": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...
