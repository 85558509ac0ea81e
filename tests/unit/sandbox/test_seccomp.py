"""The seccomp policy compiles to well-formed BPF and OCI JSON (no process needed)."""

from __future__ import annotations

import errno
import struct

import pytest

from agentbox.sandbox import seccomp


@pytest.mark.parametrize("arch", list(seccomp.ARCHES.values()), ids=list(seccomp.ARCHES))
def test_every_rule_has_a_number_and_the_program_is_well_formed(arch: seccomp.Arch) -> None:
    prog = seccomp.bpf(arch)
    assert len(prog) % 8 == 0
    insns = [struct.unpack("<HBBI", prog[i : i + 8]) for i in range(0, len(prog), 8)]
    assert len(insns) < 4096  # BPF_MAXINSNS
    assert insns[0] == (0x20, 0, 0, 4)  # load arch first
    assert insns[1][3] == arch.audit
    assert insns[-1] == (0x06, 0, 0, seccomp.RET_ALLOW)
    for index, (code, jt, jf, _) in enumerate(insns):
        if code & 0x07 == 0x05:  # a jump stays inside the program
            assert index + 1 + max(jt, jf) < len(insns)
    denied = {k for code, _, _, k in insns if code == 0x15}
    assert {arch.numbers[name] for name in seccomp.DENIED} <= denied


def _run(prog: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    """A tiny interpreter for the subset of classic BPF the policy uses."""
    data = struct.pack("<iI", nr, arch) + struct.pack("<Q", 0) + struct.pack("<Q", arg0)
    insns = [struct.unpack("<HBBI", prog[i : i + 8]) for i in range(0, len(prog), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x06:
            return k
        else:
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        pc += 1


def test_the_x86_64_program_answers_as_the_policy_says() -> None:
    arch = seccomp.X86_64
    prog = seccomp.bpf(arch)
    n = arch.numbers
    assert _run(prog, n["ptrace"], arch.audit) == seccomp.RET_ERRNO | errno.EPERM
    assert _run(prog, n["clone3"], arch.audit) == seccomp.RET_ERRNO | errno.ENOSYS
    assert _run(prog, n["clone"], arch.audit, 0x003D0F00) == seccomp.RET_ALLOW  # pthread_create's flags
    assert _run(prog, n["clone"], arch.audit, 0x10000000 | 17) == seccomp.RET_ERRNO | errno.EPERM
    assert _run(prog, n["socket"], arch.audit, 1) == seccomp.RET_ALLOW
    assert _run(prog, n["socket"], arch.audit, 2) == seccomp.RET_ERRNO | errno.EAFNOSUPPORT
    assert _run(prog, 0, arch.audit) == seccomp.RET_ALLOW  # read
    assert _run(prog, 0x40000000 + 101, arch.audit) == seccomp.RET_ERRNO | errno.ENOSYS  # x32 ptrace
    assert _run(prog, 101, 0x40000003) == seccomp.RET_KILL_PROCESS  # i386 ABI


def test_oci_policy_mirrors_the_deny_list_without_clone3() -> None:
    policy = seccomp.oci(seccomp.X86_64)
    names = {name for rule in policy["syscalls"] for name in rule["names"]}
    assert set(seccomp.DENIED) | {"clone", "socket", "socketpair"} == names
    assert policy["defaultAction"] == "SCMP_ACT_ALLOW"
