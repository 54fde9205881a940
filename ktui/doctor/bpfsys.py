"""The few bpf() and perf_event_open() calls doctor needs, made directly through ctypes.

Doctor asks the kernel itself, without BCC or headers, so its answer about a
mechanism does not depend on the toolchain. Every call returns a file
descriptor (the caller closes it, which also detaches whatever it attached) or
raises ``OSError`` with the kernel's errno. Programs are two instructions
(``r0 = 0; exit``): they are verified and attached, never do anything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import struct

# (bpf, perf_event_open) syscall numbers per architecture.
_SYSCALLS = {
    "x86_64": (321, 298),
    "aarch64": (280, 241),
    "arm64": (280, 241),
    "riscv64": (280, 241),
    "ppc64le": (361, 319),
    "s390x": (351, 331),
}

BPF_MAP_CREATE = 0
BPF_PROG_LOAD = 5
BPF_RAW_TRACEPOINT_OPEN = 17

MAP_ARRAY = 2
MAP_STACK_TRACE = 7
MAP_RINGBUF = 27

PROG_KPROBE = 2
PROG_TRACEPOINT = 5
PROG_RAW_TRACEPOINT = 17
PROG_TRACING = 26
ATTACH_TRACE_FENTRY = 24
ATTACH_TRACE_FEXIT = 25

PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_FLAG_FD_CLOEXEC = 8
PERF_EVENT_IOC_SET_BPF = 0x40042408  # _IOW('$', 8, __u32)
PERF_ATTR_SIZE = 112  # PERF_ATTR_SIZE_VER5: has config1/config2 for the probe PMUs

# r0 = 0; exit
TRIVIAL_PROGRAM = bytes.fromhex("b700000000000000") + bytes.fromhex("9500000000000000")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


class SyscallUnsupported(OSError):
    """This architecture's syscall numbers are not known to doctor."""


def _numbers() -> tuple[int, int]:
    machine = platform.machine()
    if machine not in _SYSCALLS:
        raise SyscallUnsupported(0, f"doctor does not know the bpf syscall number on {machine}")
    return _SYSCALLS[machine]


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, len(attr))
    return _check(_libc.syscall(ctypes.c_long(_numbers()[0]), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr))))


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int) -> int:
    attr = struct.pack("=IIIII", map_type, key_size, value_size, max_entries, 0).ljust(72, b"\0")
    return bpf(BPF_MAP_CREATE, attr)


def _kernel_version_code() -> int:
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in os.uname().release.split(".")[:3]]
    parts += [0] * (3 - len(parts))
    return (parts[0] << 16) + (parts[1] << 8) + min(parts[2], 255)


def prog_load(prog_type: int, *, expected_attach_type: int = 0, attach_btf_id: int = 0, name: bytes = b"ktui_doctor") -> int:
    """Load the trivial program; on failure the OSError carries the verifier log's last line."""
    insns = ctypes.create_string_buffer(TRIVIAL_PROGRAM, len(TRIVIAL_PROGRAM))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(4096)
    attr = struct.pack(
        "=IIQQIIQII16sIIIIQIIQII",
        prog_type,
        len(TRIVIAL_PROGRAM) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_),
        1,  # log_level: keep the verifier's reason
        len(log),
        ctypes.addressof(log),
        _kernel_version_code(),
        0,  # prog_flags
        name[:15],
        0,  # prog_ifindex
        expected_attach_type,
        0,  # prog_btf_fd
        0,  # func_info_rec_size
        0,  # func_info
        0,  # func_info_cnt
        0,  # line_info_rec_size
        0,  # line_info
        0,  # line_info_cnt
        attach_btf_id,
    ).ljust(128, b"\0")
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except OSError as err:
        lines = [ln for ln in log.value.decode(errors="replace").splitlines() if ln.strip()]
        if lines:
            err.verifier_log = lines[-1]  # type: ignore[attr-defined]  # carried on the OSError to the caller's sentence
        raise


def raw_tracepoint_open(prog_fd: int, name: bytes | None) -> int:
    """Attach a raw tracepoint program (by name) or a tracing program (name None)."""
    keep = ctypes.create_string_buffer(name) if name is not None else None
    attr = struct.pack("=QI", ctypes.addressof(keep) if keep is not None else 0, prog_fd).ljust(16, b"\0")
    return bpf(BPF_RAW_TRACEPOINT_OPEN, attr)


def perf_event_open(
    type_: int,
    config: int = 0,
    *,
    config1: int = 0,
    config2: int = 0,
    sample_period: int = 0,
    pid: int = -1,
    cpu: int = 0,
) -> int:
    flags = 1  # disabled: nothing runs until someone enables it, and nobody does
    attr = struct.pack(
        "=IIQQQQQIIQQ", type_, PERF_ATTR_SIZE, config, sample_period, 0, 0, flags, 0, 0, config1, config2
    ).ljust(PERF_ATTR_SIZE, b"\0")
    buf = ctypes.create_string_buffer(attr, len(attr))
    return _check(
        _libc.syscall(
            ctypes.c_long(_numbers()[1]),
            buf,
            ctypes.c_int(pid),
            ctypes.c_int(cpu),
            ctypes.c_int(-1),
            ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC),
        )
    )


def perf_set_bpf(perf_fd: int, prog_fd: int) -> None:
    _libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_int]
    _check(_libc.ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd))


def close_all(fds: list[int]) -> None:
    for fd in reversed(fds):
        try:
            os.close(fd)
        except OSError:
            pass
