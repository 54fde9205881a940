"""Facts about the running kernel: identity, tracefs location, a few sysctls.

Mounting tracefs is the one change ktui makes to the system: BCC and the kernel's
own tracers need it, and it is what ``mount -t tracefs`` at boot would have done.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ktui.numbers import PID

# the light half lives in ktui.sysfacts (`ktui list` reads it on every run); re-exported here
from ktui.sysfacts import (  # noqa: F401,I001
    TRACEFS_CANDIDATES as TRACEFS_CANDIDATES,
    _is_tracefs as _is_tracefs,
    _mount as _mount,
    build_id_from_notes as _build_id_from_notes,
    identity_fields as identity_fields,
    tracefs_path as tracefs_path,
)


@dataclass(frozen=True)
class KernelIdentity:
    release: str
    version: str
    machine: str
    build_id: str  # GNU build id of vmlinux from /sys/kernel/notes, or a BTF hash

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> KernelIdentity:
        return cls(**{k: str(data.get(k, "")) for k in ("release", "version", "machine", "build_id")})


def kernel_identity() -> KernelIdentity:
    return KernelIdentity(*identity_fields())


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
