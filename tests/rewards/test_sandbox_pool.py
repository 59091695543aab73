"""The worker pool: ordering, reuse, recovery from dead workers, concurrency, fallbacks."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import pytest

from reft_lightning.sandbox import ExecutionResult, ProgramExecutor
from reft_lightning.sandbox.executor import DISABLE_ENV, MAX_PROGRAM_CHARS


def returning(value: int) -> str:
    return f"def solution():\n    return {value} / 4"


def test_results_keep_program_order_across_batches(executor: ProgramExecutor) -> None:
    for batch in (range(0, 37), range(100, 103)):
        results = executor.run([returning(i) for i in batch])
        assert [r.value for r in results] == [i / 4 for i in batch]
    assert executor.run([]) == []


def test_a_slow_program_does_not_hold_up_the_others(executor: ProgramExecutor) -> None:
    start = time.monotonic()
    results = executor.run(["def solution():\n    while True: pass"] + [returning(i) for i in range(40)])
    assert time.monotonic() - start < 1.0 + 2.0
    assert [r.value for r in results[1:]] == [i / 4 for i in range(40)]


def test_overlong_program_is_not_run(executor: ProgramExecutor) -> None:
    program = returning(1) + "\n#" + "x" * MAX_PROGRAM_CHARS
    assert executor.run([program]) == [ExecutionResult(None, "program too long")]


def test_non_string_program_is_a_caller_error(executor: ProgramExecutor) -> None:
    with pytest.raises(TypeError):
        executor.run([b"def solution(): return 1"])  # type: ignore[list-item]


def test_concurrent_runs_are_serialised(executor: ProgramExecutor) -> None:
    outputs: dict[int, list[ExecutionResult]] = {}

    def work(offset: int) -> None:
        outputs[offset] = executor.run([returning(offset + i) for i in range(10)])

    threads = [threading.Thread(target=work, args=(k * 100,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for offset, results in outputs.items():
        assert [r.value for r in results] == [(offset + i) / 4 for i in range(10)]


def test_a_killed_worker_is_replaced() -> None:
    with ProgramExecutor(timeout_s=1.0, workers=2) as pool:
        victim = pool._pool[0].process.pid
        os.killpg(victim, signal.SIGKILL)
        first = pool.run([returning(i) for i in range(6)])
        assert sum(r.value is None for r in first) <= 1
        assert all(r.value == i / 4 for i, r in enumerate(first) if r.value is not None)
        assert victim not in {w.process.pid for w in pool._pool} and len(pool._pool) == 2
        assert [r.value for r in pool.run([returning(i) for i in range(6)])] == [i / 4 for i in range(6)]


def test_missing_mechanisms_are_warned_once_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_ENV, "Landlock,seccomp")
    with pytest.warns(RuntimeWarning) as record, ProgramExecutor(timeout_s=1.0, workers=2) as pool:
        assert pool.run([returning(8)]) == [ExecutionResult(2.0)]
    messages = [str(w.message) for w in record]
    assert sum("Landlock disabled" in m and "not enforced: programs can read" in m for m in messages) == 1
    assert (
        sum("seccomp disabled" in m and "not enforced: programs can create processes" in m for m in messages)
        == 1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ProgramExecutor(timeout_s=1.0, workers=1) as again:
            assert again.run([returning(4)]) == [ExecutionResult(1.0)]


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        ProgramExecutor(timeout_s=0)
    with pytest.raises(ValueError):
        ProgramExecutor(workers=0)
