"""Whether this process may load BPF programs, asked before BCC is (its own error for a missing
privilege is a raw map error, printed by the C library straight to the terminal)."""

from __future__ import annotations

import os
from pathlib import Path

from ktui.errors import CapabilityError

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def may_load_bpf() -> bool:
    """Root, or the capabilities that stand for it here (CAP_BPF with CAP_PERFMON, or CAP_SYS_ADMIN)."""
    if os.geteuid() == 0:
        return True
    try:
        line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("CapEff:"))
        caps = int(line.split()[1], 16)
    except (OSError, StopIteration, ValueError, IndexError):
        return False
    return bool(caps >> CAP_SYS_ADMIN & 1 or (caps >> CAP_BPF & 1 and caps >> CAP_PERFMON & 1))


def require_bpf(what: str, *, instead: str = "") -> None:
    """One sentence and a non-zero exit when ``what`` cannot work without root."""
    if not may_load_bpf():
        raise CapabilityError(f"{what} needs root (loading BPF programs needs CAP_BPF and CAP_PERFMON); "
                              f"run it with sudo{instead}.")
