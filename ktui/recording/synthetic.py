"""Synthetic records for the format's own tests and benchmark (never shown as real data)."""

from __future__ import annotations

import numpy as np

from ktui.events import FieldLayout, ProbeLayout

LAYOUTS = [
    ProbeLayout(0, "sys_enter_getppid", "tracepoint:syscalls:sys_enter_getppid"),
    ProbeLayout(1, "sys_exit_openat", "tracepoint:syscalls:sys_exit_openat",
                (FieldLayout("ret", "<i8", "s"), FieldLayout("filename", "S32", "string"))),
]


def records(layout: ProbeLayout, n: int, t0: int = 1_000_000, step: int = 100, seed: int = 0,
            ncpu: int = 2, npid: int = 50) -> np.ndarray:
    """n records of one probe, every `step` ns from t0, pids 1000..1000+npid-1."""
    rng = np.random.default_rng(seed)
    a = np.zeros(n, dtype=layout.dtype)
    a["ts"] = t0 + np.arange(n, dtype=np.uint64) * step
    a["probe"] = layout.probe_id
    a["cpu"] = rng.integers(0, ncpu, n)
    a["pid"] = 1000 + rng.integers(0, npid, n)
    a["tid"] = a["pid"]
    a["kstack"] = -1
    a["ustack"] = -1
    a["comm"] = np.array([b"worker-%d" % i for i in range(npid)])[a["pid"] - 1000]
    names = layout.dtype.names or ()
    if "ret" in names:
        a["ret"] = rng.integers(-2, 10, n)
    if "filename" in names:
        a["filename"] = b"/etc/passwd"
    return a
