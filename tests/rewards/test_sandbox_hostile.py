"""Hostile programs, one harmless probe per threat of issue 3. Each probe attempts the attack and
returns ``"blocked ..."`` when the operating system refuses it, ``"ESCAPED"`` when it succeeds."""

from __future__ import annotations

import os
import re
import socket
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

from reft_lightning.sandbox import ExecutionResult, ProgramExecutor

from .support import CANARY, SHARED_DATA

MARKER = Path(tempfile.gettempdir()) / f"reft_probe_{uuid.uuid4().hex}"
REPO_FILE = Path(__file__).resolve().parents[2] / "reft_lightning" / "rewards" / "sandbox.py"
LIBC = "ctypes.CDLL(None, use_errno=True)"


def probe(body: str) -> str:
    """A program whose ``solution()`` runs ``body``; refusals surface as ``blocked <Exception>``."""
    return (
        "import ctypes, os, resource, signal, socket, subprocess, sys, threading, time\n"
        "def solution():\n    try:\n"
        + textwrap.indent(textwrap.dedent(body).strip(), " " * 8)
        + "\n    except BaseException as exc:\n        return 'blocked ' + type(exc).__name__\n"
        "    return 'ESCAPED'\n"
    )


def syscall_probe(number: int, *args: int) -> str:
    """Call a raw syscall through ctypes (bypassing any Python-level guard)."""
    arguments = ", ".join(str(a) for a in (number, *args))
    return probe(f"r = {LIBC}.syscall({arguments})\nif r == 0 and {number} in (56, 57): os._exit(0)\n"
                 "if r < 0: return 'blocked errno %d' % ctypes.get_errno()")  # fmt: skip


BLOCKED = {
    # no new processes
    "fork": probe("os.fork()"),
    "subprocess": probe("subprocess.run(['/bin/true'])"),
    "os_system": probe(f"rc = os.system('touch {MARKER}')\nif rc != 0: return 'blocked rc=%d' % rc"),
    "posix_spawn": probe("os.posix_spawn('/bin/true', ['true'], {})"),
    "execv": probe("os.execv('/bin/sh', ['sh', '-c', 'true'])"),
    "multiprocessing": probe("import multiprocessing\np = multiprocessing.Process(target=print)\np.start()"),
    "raw_fork_syscall": syscall_probe(57),
    "raw_clone_syscall": syscall_probe(56, 17, 0, 0, 0, 0),  # clone(SIGCHLD): a new process
    "subclasses_escape": probe(
        "w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
        f"rc = w.__init__.__globals__['system']('touch {MARKER}')\nif rc != 0: return 'blocked rc=%d' % rc"
    ),
    # no signals to other processes
    "signal0_parent": probe("os.kill(os.getppid(), 0)"),
    "signal0_trainer": probe(f"os.kill({os.getpid()}, 0)"),
    "kill_all": probe("os.kill(-1, signal.SIGKILL)"),
    "kill_own_group": probe("os.killpg(0, signal.SIGKILL)"),
    "ptrace_parent": syscall_probe(101, 16, 1, 0, 0),  # PTRACE_ATTACH to the zygote
    "prlimit_parent": probe("resource.prlimit(1, resource.RLIMIT_NOFILE, (1, 1))\nos.getppid()"),
    # no file system beyond the allowed modules and the private directory
    "write_tmp": probe(f"open({str(MARKER)!r}, 'w').write('x')"),
    "write_home": probe("open('/root/reft_probe', 'w').write('x')"),
    "read_gold_data": probe(f"return open({str(SHARED_DATA / 'reft' / 'svamp_python_sdp.json')!r}).read(20)"),
    "read_passwd": probe("return open('/etc/passwd').read(20)"),
    "list_root": probe("return str(os.listdir('/'))"),
    "read_proc_environ": probe("return open('/proc/1/environ').read(20)"),
    "read_trainer_source": probe(f"return open({str(REPO_FILE)!r}).read(20)"),
    "import_unallowed_package": probe("import numpy\nreturn str(numpy.__file__)"),
    "symlink_out": probe("os.symlink('/etc/passwd', 'link')\nreturn open('link').read(20)"),
    "hardlink_out": probe(f"os.link({str(REPO_FILE)!r}, 'hard')"),
    "unshare": syscall_probe(272, 0x10000000),
    "io_uring": syscall_probe(425, 8, 0),
    # no network
    "socket": probe("socket.socket(socket.AF_INET, socket.SOCK_STREAM)"),
    "unix_socket": probe("s = socket.socket(socket.AF_UNIX)\ns.connect('\\0reft-probe')"),
    # resources bounded
    "raise_cpu_limit": probe("resource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))"),
    "memory_bomb": probe("x = bytearray(8 * 2**30)"),
    "memory_creep": probe("x = []\nwhile True: x.append(bytearray(2**24))"),
    "many_files": probe("for i in range(100000): open(f'f{i}', 'w').close()"),
    "thread_bomb": probe(
        "ts = [threading.Thread(target=time.sleep, args=(0.5,)) for _ in range(5000)]\n"
        "[t.start() for t in ts]"
    ),
}


@pytest.mark.parametrize("name", sorted(BLOCKED))
def test_attack_is_refused(executor: ProgramExecutor, name: str) -> None:
    (result,) = executor.run([BLOCKED[name]])
    assert result.value != "ESCAPED", f"{name}: {result}"
    assert (isinstance(result.value, str) and result.value.startswith("blocked")) or result.value is None, (
        result
    )
    assert not MARKER.exists()


@pytest.mark.parametrize(
    ("name", "program", "error"),
    [
        ("busy_loop", "def solution():\n    while True: pass", "timeout"),
        ("sleep", "import time\ndef solution():\n    time.sleep(60)", "timeout"),
        (
            "signal_ignoring_loop",
            "import signal\ndef solution():\n    for s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT):\n"
            "        signal.signal(s, signal.SIG_IGN)\n    while True: pass",
            "timeout",
        ),
        (
            "catch_everything",
            "import time\ndef solution():\n    while True:\n        try:\n            time.sleep(10)\n"
            "        except BaseException:\n            pass",
            "timeout",
        ),
        (
            "huge_output",
            "import sys\ndef solution():\n    while True: sys.stdout.write('x' * 65536)",
            "timeout",
        ),
        (
            "close_result_pipe_then_loop",
            "import os\ndef solution():\n    os.close(3)\n    while True: pass",
            "timeout",
        ),
        ("huge_return", "def solution():\n    return 'x' * 10**7", "longer than"),
        ("segfault", "import ctypes\ndef solution():\n    return ctypes.string_at(0)", "SIGSEGV"),
        ("os_exit", "import os\ndef solution():\n    os._exit(0)", "without a result"),
        ("abort", "import os\ndef solution():\n    os.abort()", "SIGABRT"),
        ("sys_exit", "import sys\ndef solution():\n    sys.exit(0)", "SystemExit"),
        (
            "deep_recursion",
            "import sys\nsys.setrecursionlimit(10**7)\ndef f(n): return f(n + 1)\n"
            "def solution():\n    return f(0)",
            "timeout|SIGSEGV|MemoryError",
        ),
    ],
)
def test_misbehaving_program_is_stopped(
    executor: ProgramExecutor, name: str, program: str, error: str
) -> None:
    (result,) = executor.run([program])
    assert result.value is None and re.search(error, result.error or ""), f"{name}: {result}"


def test_file_size_is_bounded(executor: ProgramExecutor) -> None:
    program = probe("open('big', 'wb').write(b'x' * 2**26)\nreturn 'ESCAPED'")
    program = program.replace("return 'blocked ' + type(exc).__name__", "return os.path.getsize('big')")
    (result,) = executor.run([program])
    assert result.value is not None and result.value <= 16 * 2**20, result


def test_no_connection_reaches_a_listening_port(executor: ProgramExecutor) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        (result,) = executor.run([probe(f"socket.create_connection(('127.0.0.1', {port}), timeout=0.5)")])
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()
    assert isinstance(result.value, str) and result.value.startswith("blocked"), result


def test_trainer_environment_is_invisible(executor: ProgramExecutor) -> None:
    assert os.environ.get(CANARY) == "leaked"
    (result,) = executor.run(["import os\ndef solution():\n    return ','.join(sorted(os.environ))"])
    assert result.value == "HOME,TMPDIR"


def test_private_directory_is_fresh_for_each_program_and_removed_at_close() -> None:
    writer = (
        "import os\ndef solution():\n    open('note.txt', 'w').write('x')\n    return ','.join(os.listdir())"
    )
    reader = "import os\ndef solution():\n    return 'listing:' + ','.join(os.listdir('.'))"
    with ProgramExecutor(timeout_s=1.0, workers=1) as pool:
        root = pool._root
        assert root is not None and root.is_dir()
        assert [r.value for r in pool.run([writer, reader, writer])] == ["note.txt", "listing:", "note.txt"]
    assert not root.exists()


def test_monkeypatching_does_not_leak_into_the_next_program(executor: ProgramExecutor) -> None:
    patch = (
        "import builtins, math, sys\ndef solution():\n    builtins.abs = lambda x: 999\n"
        "    math.sqrt = lambda x: 999\n    sys.modules['math'] = None\n    return 0"
    )
    honest = "import math\ndef solution():\n    return math.sqrt(16) + abs(-1)"
    results = executor.run([patch, honest] * 4)
    assert [r.value for r in results[1::2]] == [5.0] * 4


def test_pool_still_answers_after_every_attack(executor: ProgramExecutor) -> None:
    attacks = list(BLOCKED.values())[:8]
    programs = [f"def solution():\n    return {i} * 1.5" for i in range(20)]
    results = executor.run(attacks + programs)
    assert [r.value for r in results[len(attacks) :]] == [i * 1.5 for i in range(20)]
    assert all(r.value != "ESCAPED" for r in results)


def test_this_machine_enforces_every_mechanism(executor: ProgramExecutor) -> None:
    assert executor.missing == []
    assert {"namespaces", "tmpfs", "Landlock", "seccomp", "capability drop"} <= set(executor.enforced)


def test_results_are_execution_results(executor: ProgramExecutor) -> None:
    (result,) = executor.run(["def solution():\n    return 'a'"])
    assert result == ExecutionResult("a", None)
