"""Facts about the running kernel: identity, tracefs location, a few sysctls.

Mounting tracefs is the one change ktui makes to the system: BCC and the kernel's
own tracers need it, and it is what ``mount -t tracefs`` at boot would have done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ktui.numbers import PID

TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


@dataclass(frozen=True)
class KernelIdentity:
    release: str
    version: str
    machine: str
    build_id: str  # GNU build id of vmlinux from /sys/kernel/notes, or a BTF hash

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> KernelIdentity:
        return cls(**{k: str(data.get(k, "")) for k in ("release", "version", "machine", "build_id")})


def _build_id_from_notes(path: str = "/sys/kernel/notes") -> str | None:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    pos = 0
    while pos + 12 <= len(data):
        namesz = int.from_bytes(data[pos : pos + 4], "little")
        descsz = int.from_bytes(data[pos + 4 : pos + 8], "little")
        ntype = int.from_bytes(data[pos + 8 : pos + 12], "little")
        name_start = pos + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        name = data[name_start : name_start + namesz].rstrip(b"\0")
        if name == b"GNU" and ntype == 3:  # NT_GNU_BUILD_ID
            return data[desc_start : desc_start + descsz].hex()
        pos = desc_start + ((descsz + 3) & ~3)
    return None


def kernel_identity() -> KernelIdentity:
    uts = os.uname()
    build_id = _build_id_from_notes()
    if build_id is None:
        try:
            btf = Path("/sys/kernel/btf/vmlinux").read_bytes()
            build_id = "btf-sha256:" + hashlib.sha256(btf).hexdigest()[:32]
        except OSError:
            build_id = ""
    return KernelIdentity(uts.release, uts.version, uts.machine, build_id)


def _is_tracefs(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "available_events")) or os.path.isdir(os.path.join(path, "events"))


def _mount(source: str, target: str, fstype: str) -> bool:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return libc.mount(source.encode(), target.encode(), fstype.encode(), 0, None) == 0


def tracefs_path(mount: bool = True) -> str | None:
    """The tracefs directory; mounts it at /sys/kernel/tracing when absent and we are root."""
    for path in TRACEFS_CANDIDATES:
        if _is_tracefs(path):
            return path
    if mount and os.geteuid() == 0 and os.path.isdir(TRACEFS_CANDIDATES[0]):
        if _mount("tracefs", TRACEFS_CANDIDATES[0], "tracefs") and _is_tracefs(TRACEFS_CANDIDATES[0]):
            return TRACEFS_CANDIDATES[0]
    return None


def debugfs_path(mount: bool = True) -> str | None:
    path = "/sys/kernel/debug"
    if os.path.isdir(path) and os.listdir(path):
        return path
    if mount and os.geteuid() == 0 and os.path.isdir(path) and _mount("debugfs", path, "debugfs"):
        return path
    return None


def read_sysctl(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def possible_cpus() -> int:
    """Number of possible CPUs (what per-CPU BPF maps are sized by)."""
    text = read_sysctl("/sys/devices/system/cpu/possible") or "0"
    total = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        total += (int(hi) if hi else int(lo)) - int(lo) + 1
    return total


def process_alive(pid: int) -> bool:
    """Whether a process exists and has not exited (a zombie has exited for our purposes)."""
    if not 0 < pid <= PID.hi:  # kill(0 or -1, 0) asks about groups; no pid beyond PID_MAX_LIMIT exists
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
