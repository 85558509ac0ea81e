"""The seccomp policy of a session: one rule table, compiled to classic BPF (bwrap) and to OCI JSON (gVisor).

Deny-list over an allow-all default, as spec/sandbox.md §3.3 lists it: the syscalls a Python kernel
never needs and an attacker wants (ptrace, bpf, userfaultfd, io_uring, keyctl, the mount family,
unshare/setns, module and kexec calls), clone with a CLONE_NEW* flag, clone3 (ENOSYS, so glibc falls
back to clone where the flags can be checked) and sockets of any family but AF_UNIX.

The BPF is written here rather than by libseccomp so the server needs no extra package; the layout:

    ld  arch            ; any other ABI (i386, x32 on x86_64) is killed
    jeq NATIVE, 1, 0
    ret KILL_PROCESS
    ld  nr
    [x86_64] jge 0x40000000 → ret ERRNO(ENOSYS)      ; x32 numbers share the native arch
    per rule: jeq nr, 0, skip; [ld arg0; test; ret ERRNO; ret ALLOW] or ret ERRNO
    ret ALLOW

Pure: no process, no file; the session manager hands the bytes to bwrap on an fd.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from typing import Any

# BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16  # struct seccomp_data; arg0's low word on little-endian

AF_UNIX = 1
CLONE_NEW_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
_CLONE_NEW_MASK = sum(CLONE_NEW_FLAGS.values())

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev",
    "keyctl", "add_key", "request_key",
    "bpf", "userfaultfd", "perf_event_open",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "unshare", "setns",
    "mount", "umount2", "pivot_root", "chroot",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "open_by_handle_at", "name_to_handle_at",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
)  # fmt: skip
"""Always EPERM."""


@dataclass(frozen=True, slots=True)
class Arch:
    name: str
    audit: int  # AUDIT_ARCH_*
    oci: str  # SCMP_ARCH_*
    numbers: dict[str, int]
    x32_bit: int | None = None


# fmt: off
_X86_64_NUMBERS = {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
        "keyctl": 250, "add_key": 248, "request_key": 249,
        "bpf": 321, "userfaultfd": 323, "perf_event_open": 298,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "unshare": 272, "setns": 308,
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442,
        "name_to_handle_at": 303, "open_by_handle_at": 304,
        "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176,
        "clone": 56, "clone3": 435, "socket": 41, "socketpair": 53,
}
_AARCH64_NUMBERS = {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "keyctl": 219, "add_key": 217, "request_key": 218,
        "bpf": 280, "userfaultfd": 282, "perf_event_open": 241,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "unshare": 97, "setns": 268,
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442,
        "name_to_handle_at": 264, "open_by_handle_at": 265,
        "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106,
        "clone": 220, "clone3": 435, "socket": 198, "socketpair": 199,
}
# fmt: on
X86_64 = Arch("x86_64", 0xC000003E, "SCMP_ARCH_X86_64", _X86_64_NUMBERS, x32_bit=0x40000000)
AARCH64 = Arch("aarch64", 0xC00000B7, "SCMP_ARCH_AARCH64", _AARCH64_NUMBERS)
ARCHES = {a.name: a for a in (X86_64, AARCH64)}


def host_arch() -> Arch | None:
    """The table for this machine, or None where we have none (then there is no filter: doctor says so)."""
    return ARCHES.get(os.uname().machine)


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def bpf(arch: Arch) -> bytes:
    """The filter as `struct sock_filter[]` bytes, ready for `bwrap --seccomp FD`."""
    n = arch.numbers
    prog = [
        _insn(_LD_W_ABS, 0, 0, _OFF_ARCH),
        _insn(_JEQ_K, 1, 0, arch.audit),
        _insn(_RET_K, 0, 0, RET_KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if arch.x32_bit is not None:
        prog += [_insn(_JGE_K, 0, 1, arch.x32_bit), _insn(_RET_K, 0, 0, RET_ERRNO | errno.ENOSYS)]
    for name in DENIED:
        prog += [_insn(_JEQ_K, 0, 1, n[name]), _insn(_RET_K, 0, 0, RET_ERRNO | errno.EPERM)]
    prog += [_insn(_JEQ_K, 0, 1, n["clone3"]), _insn(_RET_K, 0, 0, RET_ERRNO | errno.ENOSYS)]
    # clone: EPERM when any CLONE_NEW* bit is set. The accumulator now holds arg0, so both outcomes return.
    prog += [
        _insn(_JEQ_K, 0, 4, n["clone"]),
        _insn(_LD_W_ABS, 0, 0, _OFF_ARG0),
        _insn(_JSET_K, 0, 1, _CLONE_NEW_MASK),
        _insn(_RET_K, 0, 0, RET_ERRNO | errno.EPERM),
        _insn(_RET_K, 0, 0, RET_ALLOW),
    ]
    for name in ("socket", "socketpair"):
        prog += [
            _insn(_JEQ_K, 0, 4, n[name]),
            _insn(_LD_W_ABS, 0, 0, _OFF_ARG0),
            _insn(_JEQ_K, 1, 0, AF_UNIX),
            _insn(_RET_K, 0, 0, RET_ERRNO | errno.EAFNOSUPPORT),
            _insn(_RET_K, 0, 0, RET_ALLOW),
        ]
    prog.append(_insn(_RET_K, 0, 0, RET_ALLOW))
    return b"".join(prog)


def oci(arch: Arch) -> dict[str, Any]:
    """The same policy as an OCI `linux.seccomp` object (runsc --oci-seccomp applies it inside gVisor).

    runsc 20221219 ignores errnoRet (every denial is EPERM, so sockets get EPERM, not EAFNOSUPPORT)
    and has no clone3 (ENOSYS already): a clone3 rule there would answer EPERM and break glibc's
    fallback to clone, i.e. every new thread.
    """
    rules: list[dict[str, Any]] = [
        {"names": list(DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
    ]
    for flag in CLONE_NEW_FLAGS.values():
        arg = {"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM, "args": [arg]})
    arg = {"index": 0, "value": AF_UNIX, "valueTwo": 0, "op": "SCMP_CMP_NE"}
    rules.append(
        {
            "names": ["socket", "socketpair"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EAFNOSUPPORT,
            "args": [arg],
        }
    )
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [arch.oci], "syscalls": rules}
