"""A sandbox worker: confined once at start, then a zygote that forks one child per program.

Started by ``ProgramExecutor`` as a fresh interpreter (``python -I``, empty environment) that loads
this package directory without importing ``reft_lightning``. Start-up sequence:

1. pre-import the allowed modules (``math``, ``sympy``), so programs import them for free;
2. as root without Landlock, switch to uid/gid 65534 (file permissions then protect the host);
3. enter new user, mount, network, PID, IPC and UTS namespaces; mount a size-bounded tmpfs on the
   private directory; set ``no_new_privs``; enter a Landlock domain that allows reading only the
   standard library and the pre-imported packages, writing only the private directory, no TCP,
   and no signals out of the domain; install the base seccomp filter; drop all capabilities;
4. fork the zygote (PID 1 of the new PID namespace, killed with its parent), which reports what is
   and is not enforced, then serves requests: one program in, one result out, on stdin/stdout.

Each step that the kernel refuses is reported (and the trainer warns once); nothing is silent.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import shutil
import signal
import sys
import sysconfig
import time

from . import confine
from .child import ChildLimits, run_child
from .protocol import (
    MAX_REQUEST_BYTES,
    MAX_RESULT_BYTES,
    ExecutionResult,
    decode_result,
    encode_frame,
    encode_result,
    read_frame,
    write_all,
)

NOBODY = 65534
_NAMESPACES = (
    confine.CLONE_NEWUSER
    | confine.CLONE_NEWNS
    | confine.CLONE_NEWNET
    | confine.CLONE_NEWPID
    | confine.CLONE_NEWIPC
    | confine.CLONE_NEWUTS
)
CONSEQUENCES = {
    "namespaces": "programs share the trainer's network, PID, IPC and mount namespaces",
    "tmpfs": "the private directory is on the host disk, bounded per file only (RLIMIT_FSIZE)",
    "Landlock": "programs can read every file the worker's user can read (including data files) "
    "and write wherever that user can write",
    "Landlock scoping (ABI 6)": "signals to other processes blocked only by seccomp and the PID namespace",
    "seccomp": "programs can create processes, run executables, open sockets and signal other processes",
    "capability drop": "the worker keeps the capabilities it started with",
    "no_new_privs": "neither Landlock nor seccomp can be applied",
}
"""What stays unenforced when a mechanism is missing; the trainer's warning quotes this text."""


class _Confinement:
    """Applies the start-up steps in order and records what could not be enforced."""

    def __init__(self, disabled: set[str]) -> None:
        self.disabled = disabled
        self.enforced: list[str] = []
        self.missing: list[str] = []

    def attempt(self, name: str, action: object, *args: object) -> bool:
        if name in self.disabled:
            self.missing.append(
                f"{name} disabled by REFT_SANDBOX_DISABLE; not enforced: {CONSEQUENCES[name]}"
            )
            return False
        try:
            action(*args)  # type: ignore[operator]
        except (OSError, AttributeError, ValueError) as exc:
            self.missing.append(f"{name} unavailable ({exc}); not enforced: {CONSEQUENCES[name]}")
            return False
        self.enforced.append(name)
        return True


def _import_allowed(names: list[str]) -> set[str]:
    """Import ``names``; return the top-level modules that became loaded."""
    before = {name.partition(".")[0] for name in sys.modules}
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    return {name.partition(".")[0] for name in sys.modules} - before


def read_rules(new_modules: set[str]) -> dict[str, int]:
    """Landlock read rules: the standard library (minus ``site-packages``) and the directories of
    the third-party packages that the allowed modules loaded. Nothing else is readable."""
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    rules = {stdlib: confine.FS_READ_DIR}
    for entry in os.listdir(stdlib):
        if entry not in ("site-packages", "dist-packages"):
            rules[os.path.join(stdlib, entry)] = confine.READ_ONLY
    for path in sys.path:
        if path.endswith("lib-dynload") and os.path.isdir(path):
            rules.setdefault(os.path.realpath(path), confine.READ_ONLY)
    for name in new_modules:
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None)
        if origin and not os.path.realpath(origin).startswith(stdlib + os.sep):
            is_package = hasattr(module, "__path__")
            rules[os.path.dirname(origin) if is_package else origin] = confine.READ_ONLY
    return rules


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("VmSize missing from /proc/self/status")


def _drop_to_nobody(private_dir: str) -> None:
    os.chown(private_dir, NOBODY, NOBODY)
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)


def _enter_namespaces() -> None:
    uid, gid = os.geteuid(), os.getegid()
    try:
        confine.unshare(_NAMESPACES)
    except OSError:
        if uid != 0:
            raise
        confine.unshare(_NAMESPACES & ~confine.CLONE_NEWUSER)  # root without user namespaces
        return
    confine.map_single_id(uid, gid)


def confine_worker(config: dict[str, object]) -> tuple[_Confinement, ChildLimits, int]:
    """Steps 1-3 of the module docstring. Returns the record, the child limits, /dev/null's fd."""
    steps = _Confinement(set(config["disable"]))  # type: ignore[arg-type]
    private_dir = str(config["private_dir"])
    rules = read_rules(_import_allowed(list(config["modules"])))  # type: ignore[arg-type]
    rules[private_dir] = confine.READ_WRITE
    devnull = os.open(os.devnull, os.O_RDWR)
    linux = sys.platform == "linux"
    baseline = _vm_size_bytes() if linux else 0
    abi = confine.landlock_abi() if "Landlock" not in steps.disabled else 0
    if os.geteuid() == 0 and abi == 0:
        _drop_to_nobody(private_dir)
        steps.enforced.append("uid 65534 (root without Landlock)")
    namespaces = linux and steps.attempt("namespaces", _enter_namespaces)
    if namespaces:
        steps.attempt("tmpfs", confine.mount_private_tmpfs, private_dir, config["tmpfs_mb"], 4096)
    else:
        steps.missing.append(f"tmpfs unavailable (no mount namespace); not enforced: {CONSEQUENCES['tmpfs']}")
    no_new_privs = linux and steps.attempt("no_new_privs", confine.set_no_new_privs)
    if abi == 0 and "Landlock" not in steps.disabled:
        steps.missing.append(f"Landlock unavailable in this kernel; not enforced: {CONSEQUENCES['Landlock']}")
    elif not (no_new_privs and steps.attempt("Landlock", confine.landlock_restrict, abi, rules, True)):
        abi = 0
    elif abi < 6:
        scoping = "Landlock scoping (ABI 6)"
        steps.missing.append(f"{scoping} unavailable (ABI {abi}); not enforced: {CONSEQUENCES[scoping]}")
    seccomp = False
    if confine.seccomp_supported() or "seccomp" in steps.disabled:
        bpf = confine.build_filter(program=False)
        seccomp = no_new_privs and steps.attempt("seccomp", confine.install_seccomp, bpf)
    else:
        steps.missing.append(f"seccomp unsupported on this machine; not enforced: {CONSEQUENCES['seccomp']}")
    if linux:
        steps.attempt("capability drop", confine.drop_capabilities)
    limits = ChildLimits(
        timeout_s=float(config["timeout_s"]),  # type: ignore[arg-type]
        address_space_bytes=baseline + int(config["memory_mb"]) * 2**20,  # type: ignore[call-overload]
        file_bytes=int(config["file_mb"]) * 2**20,  # type: ignore[call-overload]
        landlock_abi=abi,
        seccomp=seccomp,
    )
    return steps, limits, devnull


def _reset_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    os.mkdir(path, 0o700)


def _wait(pid: int, deadline: float) -> int | None:
    """Wait for child ``pid`` until ``deadline``; its wait status, or ``None`` if still running.

    Sleeps on a pidfd where the kernel offers one (Linux >= 5.3), else polls every 2 ms.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = -1
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            select.select([pidfd] if pidfd >= 0 else [], [], [], remaining if pidfd >= 0 else 0.002)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exited with status {os.waitstatus_to_exitcode(status)} without a result"


def run_one(source: str, run_dir: str, devnull: int, limits: ChildLimits) -> ExecutionResult:
    """Fork a child for ``source`` and collect its result within ``limits.timeout_s``."""
    _reset_dir(run_dir)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        run_child(source, write_end, devnull, run_dir, limits)
    os.close(write_end)
    deadline = time.monotonic() + limits.timeout_s
    oversized = False
    try:
        body = read_frame(read_end, MAX_RESULT_BYTES, deadline)
    except ValueError:
        body, oversized = None, True
    finally:
        os.close(read_end)
    answered = body is not None or oversized
    status = _wait(pid, time.monotonic() + 0.5 if answered else deadline)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
        if not answered:
            return ExecutionResult(None, f"timeout after {limits.timeout_s:g} s")
    if oversized:
        return ExecutionResult(None, "result too large")
    if body is None:
        return ExecutionResult(None, _describe_exit(status))
    return decode_result(body)


def serve(steps: _Confinement, limits: ChildLimits, devnull: int, private_dir: str) -> None:
    """The zygote loop: report confinement, then one request frame in, one result frame out."""
    confine.die_with_parent()
    if sys.platform == "linux":
        confine.make_undumpable()
    hello = {"enforced": steps.enforced, "missing": steps.missing}
    if not write_all(1, encode_frame(hello)):
        return
    run_dir = os.path.join(private_dir, "run")
    while True:
        try:
            body = read_frame(0, MAX_REQUEST_BYTES)
        except ValueError:
            return
        if body is None:
            return
        source = json.loads(body.decode("ascii"))["source"]
        if not write_all(1, encode_result(run_one(source, run_dir, devnull, limits))):
            return


def main(config_json: str) -> None:
    """Entry point of a worker process (see the module docstring)."""
    sys.dont_write_bytecode = True
    config = json.loads(config_json)
    steps, limits, devnull = confine_worker(config)
    zygote = os.fork()
    if zygote == 0:
        try:
            serve(steps, limits, devnull, str(config["private_dir"]))
        finally:
            os._exit(0)
    os.close(0)
    os.close(1)
    status = os.waitpid(zygote, 0)[1]
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
