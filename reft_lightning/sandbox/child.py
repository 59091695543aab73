"""The process that runs one untrusted program: limits, last confinement layers, execution.

A worker forks one child per program. The child redirects its standard streams to ``/dev/null``,
closes every other descriptor except the result pipe (fd 3), sets resource limits, enters a nested
Landlock domain (no signals out of it) and a seccomp filter (no processes, no signals to others),
then runs the program, calls ``solution()``, converts the return value to a ``float`` or ``str``
and writes one result frame. The child then ``_exit``s; nothing it did survives it.

Standard library only (loaded by the worker without importing ``reft_lightning``).
"""

from __future__ import annotations

import builtins
import math
import os
import resource
from dataclasses import dataclass

from . import confine
from .protocol import MAX_STRING_CHARS, ExecutionResult, encode_result, write_all

RESULT_FD = 3
"""The descriptor the child writes its result frame to."""


@dataclass(frozen=True)
class ChildLimits:
    """Per-program limits and the confinement layers the worker established.

    Attributes:
        timeout_s: wall-clock limit (seconds); the CPU limit is derived from it.
        address_space_bytes: ``RLIMIT_AS`` of the child (interpreter baseline plus the budget).
        file_bytes: largest file the program may write (``RLIMIT_FSIZE``).
        landlock_abi: Landlock ABI for the nested, signal-scoped domain (0: unavailable).
        seccomp: whether to install the per-program seccomp filter.
    """

    timeout_s: float
    address_space_bytes: int
    file_bytes: int
    landlock_abi: int
    seccomp: bool


def to_result(returned: object) -> ExecutionResult:
    """Convert what ``solution()`` returned into a primitive result (runs inside the sandbox).

    ``str`` (and subclasses, copied to a plain ``str``) stay strings; anything ``float()`` accepts
    (int, bool, Fraction, Decimal, sympy numbers) becomes a finite ``float``; all else is an error.
    """
    if isinstance(returned, str):
        text = str.__str__(returned)
        if len(text) > MAX_STRING_CHARS:
            return ExecutionResult(None, f"returned a string longer than {MAX_STRING_CHARS} characters")
        return ExecutionResult(text)
    type_name = type(returned).__name__
    type_name = type_name if type(type_name) is str else "object"
    try:
        number = float(returned)  # type: ignore[arg-type]
    except Exception:
        return ExecutionResult(None, f"returned {type_name[:40]}, not a number or string")
    if type(number) is not float or not math.isfinite(number):
        return ExecutionResult(None, "returned a non-finite number")
    return ExecutionResult(number)


def execute(source: str) -> ExecutionResult:
    """Run ``source`` in a fresh namespace, call its ``solution()`` and convert the result.

    Every exception, including ``SystemExit`` and ``KeyboardInterrupt``, becomes an error result.
    """
    namespace: dict[str, object] = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(source, "<program>", "exec"), namespace)
        solution = namespace.get("solution")
        if not callable(solution):
            return ExecutionResult(None, "no solution() function")
        return to_result(solution())
    except BaseException as exc:
        name = type(exc).__name__
        return ExecutionResult(None, f"raised {name[:60] if type(name) is str else 'an exception'}")


def _set_limits(limits: ChildLimits) -> None:
    # One second above the wall-clock limit: a single-threaded program always meets the wall limit
    # first (reported as a timeout); the CPU limit is the backstop for threads and a lost timer.
    cpu = max(1, math.ceil(limits.timeout_s)) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_AS, (limits.address_space_bytes, limits.address_space_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_child(source: str, result_fd: int, devnull_fd: int, run_dir: str, limits: ChildLimits) -> None:
    """Body of the forked child; never returns (``os._exit``).

    Fails closed: if any confinement step fails, the program is not run.
    """
    status = 0
    try:
        for fd in (0, 1, 2):
            os.dup2(devnull_fd, fd)
        os.dup2(result_fd, RESULT_FD)  # after: /dev/null itself may have been fd 3
        os.closerange(RESULT_FD + 1, 1 << 20)
        confine.die_with_parent()
        os.chdir(run_dir)
        os.environ.clear()
        os.environ.update({"HOME": run_dir, "TMPDIR": run_dir})
        _set_limits(limits)
        if limits.landlock_abi >= 6:
            confine.landlock_restrict(limits.landlock_abi, {}, scope=True, file_system=False)
        if limits.seccomp:
            confine.install_seccomp(confine.build_filter(program=True, own_pid=os.getpid()))
    except BaseException as exc:
        write_all(RESULT_FD, encode_result(ExecutionResult(None, f"sandbox setup failed: {exc!r}"[:150])))
        os._exit(1)
    try:
        write_all(RESULT_FD, encode_result(execute(source)))
    except BaseException:
        status = 1
    os._exit(status)
