"""perf_event_open(2) through ctypes, for the two things BCC's Python does not offer:
asking the kernel which hardware events this machine's PMU has (``ktui doctor``), and
opening a uprobe through the uprobe PMU with a reference counter offset, so the kernel
itself raises a USDT marker's semaphore while the probe exists and lowers it when the
probe's fd is closed, by ktui or, after SIGKILL, by the kernel closing ktui's files.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

UPROBE_PMU = "/sys/bus/event_source/devices/uprobe"
CPU_PMU = "/sys/bus/event_source/devices/cpu"
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_SET_BPF = 0x40042408
_SYSCALL = {"x86_64": 298, "aarch64": 241}

_libc = ctypes.CDLL(None, use_errno=True)


class PerfEventAttr(ctypes.Structure):
    """perf_event_attr up to config2 (PERF_ATTR_SIZE_VER1, 72 bytes): all that is needed here."""
    _fields_ = [("type", ctypes.c_uint32), ("size", ctypes.c_uint32), ("config", ctypes.c_uint64),
                ("sample_period", ctypes.c_uint64), ("sample_type", ctypes.c_uint64),
                ("read_format", ctypes.c_uint64), ("flags", ctypes.c_uint64),
                ("wakeup_events", ctypes.c_uint32), ("bp_type", ctypes.c_uint32),
                ("config1", ctypes.c_uint64), ("config2", ctypes.c_uint64)]


FLAG_DISABLED = 1 << 0
FLAG_EXCLUDE_HV = 1 << 6


def perf_event_open(attr: PerfEventAttr, pid: int, cpu: int, group_fd: int = -1, flags: int = PERF_FLAG_FD_CLOEXEC) -> int:
    """The fd, or raises OSError with the kernel's errno."""
    nr = _SYSCALL.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"perf_event_open is not wired up for {platform.machine()} in ktui")
    attr.size = ctypes.sizeof(PerfEventAttr)
    fd = _libc.syscall(nr, ctypes.byref(attr), pid, cpu, group_fd, flags)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(fd)


def _ioctl(fd: int, request: int, arg: int) -> None:
    if _libc.ioctl(fd, ctypes.c_ulong(request), ctypes.c_int(arg)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _pmu_int(path: str) -> int:
    with open(path, encoding="ascii") as f:
        return int(f.read().strip())


def ref_ctr_shift() -> int | None:
    """Where the uprobe PMU takes ref_ctr_offset in ``config`` ("config:32-63"), or None
    when this kernel's uprobe PMU has no reference counter support (before 4.20)."""
    try:
        with open(os.path.join(UPROBE_PMU, "format", "ref_ctr_offset"), encoding="ascii") as f:
            text = f.read().strip()
    except OSError:
        return None
    if not text.startswith("config:"):
        return None
    return int(text.split(":", 1)[1].split("-", 1)[0])


def open_uprobe(path: str, offset: int, ref_ctr_offset: int, pid: int, prog_fd: int) -> list[int]:
    """A uprobe on ``path`` at file ``offset`` running BPF program ``prog_fd``, with the
    kernel keeping the semaphore at file offset ``ref_ctr_offset`` (0: none). Returns the
    fd in a list; closing it detaches the probe and lowers the semaphore. Raises OSError."""
    ptype = _pmu_int(os.path.join(UPROBE_PMU, "type"))
    shift = ref_ctr_shift() if ref_ctr_offset else 0
    if ref_ctr_offset and shift is None:
        raise OSError(errno.EOPNOTSUPP, "this kernel's uprobe PMU has no ref_ctr_offset (semaphore) support")
    path_buf = ctypes.create_string_buffer(os.fsencode(path))
    fds: list[int] = []
    # One perf event: a BPF program on a uprobe runs for every hit of the probe, on any CPU,
    # whatever CPU the event is bound to (BCC opens pid -1 / cpu 0 the same way); one per
    # CPU would run it once per CPU. The kernel needs a CPU when no pid is given.
    cpus = [-1] if pid >= 0 else [min(_online_cpus() or {0})]
    try:
        for cpu in cpus:
            attr = PerfEventAttr()
            attr.type = ptype
            attr.config = (ref_ctr_offset << (shift or 0)) if ref_ctr_offset else 0
            attr.sample_period = 1
            attr.wakeup_events = 1
            attr.config1 = ctypes.cast(path_buf, ctypes.c_void_p).value or 0
            attr.config2 = offset
            fd = perf_event_open(attr, pid if pid >= 0 else -1, cpu)
            fds.append(fd)
            _ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd)
            _ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def _online_cpus() -> set[int]:
    try:
        with open("/sys/devices/system/cpu/online", encoding="ascii") as f:
            text = f.read().strip()
    except OSError:
        return set(range(os.cpu_count() or 1))
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def hardware_event_status(config: int) -> tuple[bool, str]:
    """Whether this machine can sample hardware event ``config`` (PERF_COUNT_HW_*), and why:
    decided by opening it (on this process, disabled, never enabled) and closing it again."""
    attr = PerfEventAttr()
    attr.type = 0  # PERF_TYPE_HARDWARE
    attr.config = config
    attr.sample_period = 1_000_000
    attr.flags = FLAG_DISABLED | FLAG_EXCLUDE_HV
    try:
        fd = perf_event_open(attr, 0, -1)
    except OSError as err:
        if err.errno == errno.ENOENT:
            why = ("no hardware PMU is exposed (no " + CPU_PMU + "; a virtual machine often offers none)"
                   if not os.path.isdir(CPU_PMU) else "this PMU does not count it")
        elif err.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            why = "this PMU counts it but cannot sample it (no overflow interrupt)"
        elif err.errno in (errno.EACCES, errno.EPERM):
            why = "not allowed (perf_event_paranoid, or missing CAP_PERFMON)"
        elif err.errno == errno.ENODEV:
            why = "no PMU for it on this CPU"
        else:
            why = f"perf_event_open failed: {err.strerror}"
        return False, why
    os.close(fd)
    return True, "perf_event_open accepted it for sampling"
