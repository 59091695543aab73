"""Run untrusted programs (P-CoT completions) in a pool of OS-confined worker processes.

```python
from reft_lightning.sandbox import ProgramExecutor
with ProgramExecutor(timeout_s=2.0, memory_mb=1024, workers=2) as ex:
    results = ex.run(programs)   # list[ExecutionResult], same order as programs
```

Each program must define ``solution()``; it runs in a fresh child process forked from a confined
worker (namespaces, Landlock, seccomp, rlimits; see ``worker.py`` and docs/sandbox.md),
never in this interpreter. Only a validated ``float``/``str``/``None`` comes back. Workers start
once and are reused across batches; one that stops answering is killed and replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from reft_lightning.sandbox.protocol import (
    MAX_RESULT_BYTES,
    ExecutionResult,
    FrameReader,
    decode_result,
    encode_frame,
    read_frame,
    write_all,
)

__all__ = ["ExecutionResult", "ProgramExecutor"]

ALLOWED_MODULES = ("math", "sympy")
"""Pre-imported in every worker; programs may import these (and the standard library)."""

MAX_PROGRAM_CHARS = 100_000
"""Longer programs are not run (``error="program too long"``); JSON-escaped, a program of this many
characters always fits in a request frame (``MAX_REQUEST_BYTES``)."""

DISABLE_ENV = "REFT_SANDBOX_DISABLE"
"""Comma-separated mechanisms to skip (``namespaces,Landlock,seccomp``) where one breaks."""

_STARTUP_S = 60.0
_GRACE_S = 5.0
_BOOTSTRAP = (
    "import sys, types\n"
    "package = types.ModuleType('_reft_sandbox'); package.__path__ = [sys.argv[1]]\n"
    "sys.modules['_reft_sandbox'] = package\n"
    "from _reft_sandbox.worker import main\n"
    "main(sys.argv[2])\n"
)
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(f"reft_lightning sandbox: {message}", RuntimeWarning, stacklevel=3)


class _Worker:
    """Trainer-side handle of one worker process: its pipes, log and the request in flight."""

    def __init__(self, private_dir: Path, config: dict[str, object]) -> None:
        private_dir.mkdir(mode=0o700)
        self.log_path = private_dir.with_suffix(".log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOTSTRAP, str(Path(__file__).parent), json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env={},
                cwd=private_dir,
                start_new_session=True,
            )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.to_worker = self.process.stdin.fileno()
        self.from_worker = self.process.stdout.fileno()
        os.set_blocking(self.to_worker, False)
        self.reader = FrameReader(MAX_RESULT_BYTES)
        self.index: int | None = None
        self.deadline = 0.0
        self.report: dict[str, list[str]] = {}

    def handshake(self) -> None:
        """Wait for the worker's confinement report; raise ``RuntimeError`` if it never comes."""
        try:
            body = read_frame(self.from_worker, MAX_RESULT_BYTES, time.monotonic() + _STARTUP_S)
        except ValueError:
            body = None
        if body is None:
            self.kill()
            log = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"sandbox worker failed to start; its log:\n{log}")
        self.report = json.loads(body)

    def send(self, index: int, source: str, timeout_s: float) -> bool:
        self.index = index
        self.deadline = time.monotonic() + timeout_s + _GRACE_S
        return write_all(self.to_worker, encode_frame({"source": source}), self.deadline)

    def kill(self) -> None:
        """Kill the worker's process group (the zygote and its child die with it) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def stop(self, wait_s: float) -> None:
        """Close the request pipe (the worker then exits), kill it if it lingers."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=wait_s)
        self.kill()


def _shutdown(workers: list[_Worker], root: Path) -> None:
    for worker in workers:
        worker.stop(wait_s=1.0)
    workers.clear()
    shutil.rmtree(root, ignore_errors=True)


class ProgramExecutor:
    """A persistent pool of sandboxed workers executing ``solution()`` programs.

    Args:
        timeout_s: wall-clock limit per program, seconds (CPU time is limited to the same,
            rounded up to whole seconds).
        memory_mb: address space a program may use beyond the pre-loaded interpreter, MiB.
        workers: number of worker processes (programs run in parallel, one per worker).

    Use as a context manager, or call :meth:`close`; :meth:`run` starts the pool on first use.
    Thread-safe: concurrent ``run`` calls are serialised.
    """

    def __init__(self, timeout_s: float = 2.0, memory_mb: int = 1024, workers: int = 2) -> None:
        if timeout_s <= 0 or memory_mb <= 0 or workers <= 0:
            raise ValueError(
                f"need positive timeout_s, memory_mb, workers; got {timeout_s}, {memory_mb}, {workers}"
            )
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.workers = int(workers)
        self._pool: list[_Worker] = []
        self._root: Path | None = None
        self._spawned = 0
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    @property
    def missing(self) -> list[str]:
        """Mechanisms the workers could not enforce on this machine (empty when fully confined)."""
        return list(self._pool[0].report.get("missing", [])) if self._pool else []

    @property
    def enforced(self) -> list[str]:
        """Mechanisms the workers enforce on this machine."""
        return list(self._pool[0].report.get("enforced", [])) if self._pool else []

    def __enter__(self) -> ProgramExecutor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers (idempotent). Raises ``RuntimeError`` if a worker cannot start."""
        if self._pool:
            return
        self._root = Path(tempfile.mkdtemp(prefix="reft-sandbox-"))
        self._root.chmod(0o711)  # a worker running as uid 65534 must reach its own directory
        self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._root)
        fresh = [self._spawn() for _ in range(self.workers)]
        for worker in fresh:
            self._adopt(worker)

    def _spawn(self) -> _Worker:
        assert self._root is not None
        self._spawned += 1
        disabled = [name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()]
        config = {
            "private_dir": str(self._root / f"worker{self._spawned}"),
            "timeout_s": self.timeout_s,
            "memory_mb": self.memory_mb,
            "file_mb": 16,
            "tmpfs_mb": 64,
            "modules": list(ALLOWED_MODULES),
            "disable": disabled,
        }
        return _Worker(self._root / f"worker{self._spawned}", config)

    def _adopt(self, worker: _Worker) -> None:
        try:
            worker.handshake()
        except RuntimeError:
            self.close()
            raise
        for message in worker.report.get("missing", []):
            _warn_once(message)
        self._pool.append(worker)

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        shutil.rmtree(worker.log_path.with_suffix(""), ignore_errors=True)
        self._pool.remove(worker)
        self._adopt(self._spawn())

    def close(self) -> None:
        """Stop the workers and delete every private directory. Safe to call more than once."""
        if self._finalizer is not None:
            self._finalizer()
        self._root = None

    def run(self, programs: Sequence[str]) -> list[ExecutionResult]:
        """Execute each program's ``solution()``; one result per program, in order."""
        for program in programs:
            if not isinstance(program, str):
                raise TypeError(f"programs must be str, got {type(program).__name__}")
        with self._lock:
            self.start()
            return self._run(programs)

    def _run(self, programs: Sequence[str]) -> list[ExecutionResult]:
        results: list[ExecutionResult | None] = [None] * len(programs)
        pending: deque[int] = deque()
        for index, program in enumerate(programs):
            if len(program) > MAX_PROGRAM_CHARS:
                results[index] = ExecutionResult(None, "program too long")
            else:
                pending.append(index)
        idle = list(self._pool)
        busy: dict[int, _Worker] = {}
        while pending or busy:
            while pending and idle:
                worker = idle.pop()
                index = pending.popleft()
                if worker.send(index, programs[index], self.timeout_s):
                    busy[worker.from_worker] = worker
                else:
                    self._fail(worker, results, "sandbox worker stopped accepting programs", idle)
            timeout = max(0.0, min(w.deadline for w in busy.values()) - time.monotonic()) if busy else 0.0
            ready = select.select(list(busy), [], [], timeout)[0]
            for fd in ready:
                worker = busy.pop(fd)
                try:
                    chunk = os.read(fd, 65536)
                    frames = worker.reader.feed(chunk) if chunk else None
                except (OSError, ValueError):
                    frames = None
                if frames is None:
                    self._fail(worker, results, "sandbox worker died", idle)
                elif frames:
                    assert worker.index is not None
                    results[worker.index] = decode_result(frames[0])
                    idle.append(worker)
                else:
                    busy[fd] = worker
            for fd, worker in list(busy.items()):
                if time.monotonic() > worker.deadline:
                    del busy[fd]
                    self._fail(worker, results, "sandbox worker did not answer", idle)
        return [result if result is not None else ExecutionResult(None, "not run") for result in results]

    def _fail(
        self, worker: _Worker, results: list[ExecutionResult | None], reason: str, idle: list[_Worker]
    ) -> None:
        """Record ``reason`` for the worker's program and put a fresh worker in its place."""
        if worker.index is not None:
            results[worker.index] = ExecutionResult(None, reason)
        self._replace(worker)
        idle.append(self._pool[-1])
