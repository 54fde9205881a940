"""Writing a loaded program's control value (``struct ktui_control`` in ``ktui_config[0]``):
which probes run and which process is traced. One value, so a hit costs one array lookup.

    set_enabled(bpf, probe_id, True)    # every probe starts disabled
    set_target(bpf, tgid)               # 0 = every process
    set_exclude(bpf, tgid)              # a process never traced (ktui itself), 0 = none
    set_cgroup(bpf, cgroup_id)          # trace that cgroup v2's processes (before target), 0 = none
"""

from __future__ import annotations

import ctypes as ct
import threading
from collections.abc import Callable
from typing import Any

# ``bpf`` is BCC's BPF object and the config value a ctypes struct BCC builds from the program's
# BTF: BCC ships no type information, so both are Any to mypy.

_lock = threading.Lock()  # read-modify-write of the one value


def _update(bpf: Any, change: Callable[[Any], None]) -> None:
    table = bpf[b"ktui_config"]
    key = ct.c_int(0)
    with _lock:
        value = table[key]
        change(value)
        table[key] = value


def set_enabled(bpf: Any, probe_id: int, enabled: bool) -> None:
    def change(value: Any) -> None:
        if not 0 <= probe_id < len(value.enabled):
            raise IndexError(f"probe {probe_id} is not in this program")
        value.enabled[probe_id] = 1 if enabled else 0

    _update(bpf, change)


def set_target(bpf: Any, tgid: int | None) -> None:
    def change(value: Any) -> None:
        value.target = int(tgid or 0)

    _update(bpf, change)


def set_cgroup(bpf: Any, cgroup_id: int | None) -> None:
    def change(value: Any) -> None:
        value.cgroup = int(cgroup_id or 0)

    _update(bpf, change)


def set_exclude(bpf: Any, tgid: int | None) -> None:
    def change(value: Any) -> None:
        value.exclude = int(tgid or 0)

    _update(bpf, change)


def enabled(bpf: Any, probe_id: int) -> bool:
    return bool(bpf[b"ktui_config"][ct.c_int(0)].enabled[probe_id])
