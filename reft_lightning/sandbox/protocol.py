"""Wire format between the trainer, the sandbox workers and their per-program child processes.

Every message is one frame: a 4-byte big-endian payload length, then ASCII JSON. Only plain
``float``/``str``/``None`` values ever cross a process boundary, and every receiver validates what
it gets with :func:`decode_result`, so nothing a program returns can be an object with behaviour.

Standard library only, imported with relative imports by the worker, which loads this package
directory without importing ``reft_lightning`` (see ``sandbox.py``).
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from dataclasses import dataclass

MAX_STRING_CHARS = 1000
"""Longest string a program may return; longer strings give ``value=None``."""

MAX_ERROR_CHARS = 200
"""Error reasons are cut to this length."""

MAX_RESULT_BYTES = 16 * 1024
"""Largest result frame a receiver accepts (a JSON string of 1000 chars escapes to at most 6 kB)."""

MAX_REQUEST_BYTES = 2 * 1024 * 1024
"""Largest request frame (one program) a worker accepts; a JSON-escaped character takes <= 12 bytes."""

_HEADER = struct.Struct(">I")


@dataclass(frozen=True)
class ExecutionResult:
    """What running one program produced.

    Attributes:
        value: a finite ``float`` returned by ``solution()`` (numbers of any type are converted
            inside the sandbox), a returned ``str`` (at most ``MAX_STRING_CHARS``), or ``None``
            for anything else, any error, timeout or crash.
        error: ``None`` on success, otherwise a short reason such as ``"timeout"``.
    """

    value: float | str | None
    error: str | None = None


def encode_frame(payload: dict[str, object]) -> bytes:
    """Serialise ``payload`` as one length-prefixed ASCII JSON frame."""
    body = json.dumps(payload, ensure_ascii=True, allow_nan=False).encode("ascii")
    return _HEADER.pack(len(body)) + body


def encode_result(result: ExecutionResult) -> bytes:
    """One frame holding ``result``."""
    return encode_frame({"value": result.value, "error": result.error})


def decode_result(body: bytes) -> ExecutionResult:
    """Validate and decode a result payload; anything malformed becomes an error result."""
    try:
        message = json.loads(body.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ExecutionResult(None, "malformed result")
    if not isinstance(message, dict):
        return ExecutionResult(None, "malformed result")
    value, error = message.get("value"), message.get("error")
    if error is not None and type(error) is not str:
        return ExecutionResult(None, "malformed result")
    error = None if error is None else error[:MAX_ERROR_CHARS]
    if value is None or (type(value) is float and math.isfinite(value)):
        return ExecutionResult(value, error)
    if type(value) is str and len(value) <= MAX_STRING_CHARS:
        return ExecutionResult(value, error)
    return ExecutionResult(None, "malformed result")


class FrameReader:
    """Accumulates bytes from a stream and yields complete frame payloads.

    Raises ``ValueError`` when a frame announces more than ``max_bytes``.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return every payload completed by it, in order."""
        self._buffer += data
        frames: list[bytes] = []
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > self.max_bytes:
                raise ValueError(f"frame of {length} bytes exceeds the limit of {self.max_bytes}")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append(bytes(self._buffer[_HEADER.size : end]))
            del self._buffer[:end]
        return frames


def read_frame(fd: int, max_bytes: int, deadline: float | None = None) -> bytes | None:
    """Read one frame from ``fd``; ``None`` on end of stream or when ``deadline`` (a
    ``time.monotonic()`` value) passes first. Raises ``ValueError`` on an oversized frame."""
    reader = FrameReader(max_bytes)
    while True:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        frames = reader.feed(chunk)
        if frames:
            return frames[0]


def write_all(fd: int, data: bytes, deadline: float | None = None) -> bool:
    """Write all of ``data`` to ``fd``; ``False`` if ``deadline`` passes first or the reader is gone."""
    view = memoryview(data)
    while view:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                return False
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        except (BrokenPipeError, OSError):
            return False
        view = view[written:]
    return True
