"""Linux confinement primitives for the sandbox, called through ``ctypes``.

Each function applies one kernel mechanism to the calling process and raises ``OSError`` when the
kernel refuses; the worker (``worker.py``) decides what to do about a refusal. Mechanisms:

- namespaces (``unshare``): user, mount, network, PID, IPC, UTS; a tmpfs for the private directory;
- Landlock (file system, TCP and signal/abstract-socket scoping), ABI 1 to 7;
- seccomp-BPF: a deny list of syscalls (process creation, exec, signals to others, sockets, ...);
- capabilities dropped, ``no_new_privs`` set.

Standard library only (loaded by the worker without importing ``reft_lightning``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_THREAD = 0x00010000

_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 1 << 14, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_SECCOMP = 1, 4, 22
_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT = 24, 38, 47
_PR_CAP_AMBIENT_CLEAR_ALL, _SECCOMP_MODE_FILTER = 4, 2


def _check(result: int) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _prctl(option: int, arg2: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, 0, 0, 0))


# ---------------------------------------------------------------- namespaces, mounts, privileges


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``CLONE_NEWPID`` affects later children)."""
    _check(_libc.unshare(flags))


def map_single_id(uid: int, gid: int) -> None:
    """After ``unshare(CLONE_NEWUSER)``: map the caller's own uid/gid (the only mapping an
    unprivileged process may write) and forbid ``setgroups``."""
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)


def mount_private_tmpfs(path: str, size_mb: int, max_files: int) -> None:
    """Make every mount private to this mount namespace, then mount a size-bounded tmpfs
    (no devices, no set-uid, no exec) at ``path``."""
    _check(_libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None))
    options = f"size={size_mb}m,nr_inodes={max_files},mode=0700".encode()
    _check(_libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, options))


def set_no_new_privs() -> None:
    """Forbid gaining privileges through exec (required by Landlock and seccomp)."""
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)


def drop_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable capability sets."""
    for capability in range(64):
        try:
            _prctl(_PR_CAPBSET_DROP, capability)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # past the last capability this kernel knows
                break
            raise
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = ctypes.create_string_buffer(24)  # two zeroed __user_cap_data_struct
    _check(_libc.capset(ctypes.c_char_p(header), data))


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent exits."""
    _prctl(_PR_SET_PDEATHSIG, 9)


def make_undumpable() -> None:
    """Forbid same-uid processes from ptrace-attaching or reading ``/proc/<pid>/mem``."""
    _prctl(_PR_SET_DUMPABLE, 0)


# ---------------------------------------------------------------- Landlock

_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_DIR, FS_MAKE_REG = 1 << 4, 1 << 5, 1 << 7, 1 << 8
FS_TRUNCATE = 1 << 14
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_ALL = 0b11  # bind and connect TCP (ABI 4)
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | (1 << 15)
READ_ONLY = FS_READ_FILE | FS_READ_DIR
READ_WRITE = (
    READ_ONLY | FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG | FS_TRUNCATE
)


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is unavailable."""
    if platform.system() != "Linux":
        return 0
    version = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    return max(int(version), 0)


def landlock_restrict(abi: int, rules: dict[str, int], scope: bool, file_system: bool = True) -> None:
    """Enter a new Landlock domain.

    Args:
        abi: the kernel's ABI (``landlock_abi()``), >= 1.
        rules: path -> allowed rights beneath it (``READ_ONLY``, ``READ_WRITE``); every other file
            system access is denied. Regular files get only their file rights.
        scope: also deny signals and abstract-unix-socket connections to processes outside the
            new domain (ABI >= 6; ignored below).
        file_system: handle file system rights (``False`` for a scope-only nested domain).
    """
    fs_rights = _FS_RIGHTS_BY_ABI[max(v for v in _FS_RIGHTS_BY_ABI if v <= abi)] if file_system else 0
    attr = _RulesetAttr(
        handled_access_fs=fs_rights,
        handled_access_net=_NET_ALL if abi >= 4 and file_system else 0,
        scoped=SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if scope and abi >= 6 else 0,
    )
    ruleset = _check(_libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0))
    try:
        for path, rights in rules.items():
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                allowed = rights & fs_rights
                if not os.path.isdir(path):
                    allowed &= _FILE_RIGHTS
                rule = _PathBeneathAttr(allowed_access=allowed, parent_fd=fd)
                _check(_libc.syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0))
            finally:
                os.close(fd)
        _check(_libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0))
    finally:
        os.close(ruleset)


# ---------------------------------------------------------------- seccomp

_AUDIT_ARCH_X86_64 = 0xC000003E
_RET_ALLOW, _RET_KILL_PROCESS = 0x7FFF0000, 0x80000000
_LD_ABS, _JEQ, _JSET, _JGE, _RET = 0x20, 0x15, 0x45, 0x35, 0x06
_EPERM_RET = 0x00050000 | errno.EPERM
_ENOSYS_RET = 0x00050000 | errno.ENOSYS

X86_64_ALWAYS_DENIED = {
    "execve": 59, "execveat": 322, "socket": 41, "socketpair": 53, "ptrace": 101,
    "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165, "umount2": 166,
    "unshare": 272, "setns": 308, "pivot_root": 155, "chroot": 161, "bpf": 321,
    "perf_event_open": 298, "userfaultfd": 323, "keyctl": 250, "add_key": 248, "request_key": 249,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "kcmp": 312, "move_pages": 279, "migrate_pages": 256, "memfd_create": 319,
    "personality": 135, "pidfd_getfd": 438, "name_to_handle_at": 303, "open_by_handle_at": 304,
}  # fmt: skip
"""Denied (EPERM) in every sandboxed process: exec, sockets, tracing, mounts, kernel attack surface."""

X86_64_PROGRAM_DENIED = {
    "fork": 57, "vfork": 58, "pidfd_open": 434, "pidfd_send_signal": 424, "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297, "setpriority": 141, "sched_setaffinity": 203, "sched_setscheduler": 144,
    "sched_setparam": 142, "sched_setattr": 314, "ioprio_set": 251, "chmod": 90, "fchmod": 91,
    "fchmodat": 268, "fchmodat2": 452,
}  # fmt: skip
"""Also denied for a program: process creation, signalling and re-prioritising others, chmod."""

_CLONE, _CLONE3, _KILL, _TKILL, _TGKILL, _PRLIMIT64 = 56, 435, 62, 200, 234, 302


def seccomp_supported() -> bool:
    """Whether this module has a syscall table for the machine (x86_64 only)."""
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def _deny(number: int, ret: int = _EPERM_RET) -> bytes:
    return _insn(_JEQ, number, 0, 1) + _insn(_RET, ret)


def _only_self(number: int, own_pid: int, also_zero: bool) -> bytes:
    """Allow syscall ``number`` only when (the low 32 bits of) its first argument is ``own_pid``,
    or 0 when ``also_zero``; deny it otherwise. Other syscalls skip the block."""
    if also_zero:
        return (
            _insn(_JEQ, number, 0, 5)
            + _insn(_LD_ABS, 16)
            + _insn(_JEQ, own_pid, 2, 0)
            + _insn(_JEQ, 0, 1, 0)
            + _insn(_RET, _EPERM_RET)
            + _insn(_RET, _RET_ALLOW)
        )
    return (
        _insn(_JEQ, number, 0, 4)
        + _insn(_LD_ABS, 16)
        + _insn(_JEQ, own_pid, 1, 0)
        + _insn(_RET, _EPERM_RET)
        + _insn(_RET, _RET_ALLOW)
    )


def build_filter(program: bool, own_pid: int = 0) -> bytes:
    """The BPF program: kill on a foreign architecture, deny the listed syscalls.

    With ``program=True`` (the process running untrusted code, ``own_pid`` its pid): also deny
    process creation (``clone`` without ``CLONE_THREAD``; ``clone3`` answers ENOSYS so libc falls
    back to ``clone``), and allow ``kill``/``tkill``/``tgkill``/``prlimit64`` only on itself.
    """
    code = _insn(_LD_ABS, 4) + _insn(_JEQ, _AUDIT_ARCH_X86_64, 1, 0) + _insn(_RET, _RET_KILL_PROCESS)
    code += _insn(_LD_ABS, 0) + _insn(_JGE, 0x40000000, 0, 1) + _insn(_RET, _EPERM_RET)  # x32 ABI
    numbers = dict(X86_64_ALWAYS_DENIED)
    if program:
        numbers.update(X86_64_PROGRAM_DENIED)
        code += _deny(_CLONE3, _ENOSYS_RET)
        code += (
            _insn(_JEQ, _CLONE, 0, 4)
            + _insn(_LD_ABS, 16)
            + _insn(_JSET, CLONE_THREAD, 0, 1)
            + _insn(_RET, _RET_ALLOW)
            + _insn(_RET, _EPERM_RET)
        )
        for number in (_KILL, _TKILL, _TGKILL):
            code += _only_self(number, own_pid, also_zero=False)
        code += _only_self(_PRLIMIT64, own_pid, also_zero=True)
    for number in numbers.values():
        code += _deny(number)
    return code + _insn(_RET, _RET_ALLOW)


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_char_p))


def install_seccomp(bpf: bytes) -> None:
    """Install ``bpf`` as a seccomp filter (needs ``no_new_privs``); filters only ever stack."""
    program = _SockFprog(len(bpf) // 8, bpf)
    _check(_libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0))
