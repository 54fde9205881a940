"""Loss accounting: the kernel's per-CPU counters plus what user space has delivered.

For every probe on every CPU: hits = delivered + dropped + filtered + in flight,
where in flight is what was submitted to the ring and not yet read. Read the
kernel's counters *after* draining the rings, so delivered never runs ahead.

A probe without a ring (aggregation only) does not count SUBMITTED in the kernel
(one increment less per hit): its delivered is derived, hits - dropped - filtered,
i.e. every hit that reached its maps. The slots are read in the order FILTERED,
DROPPED, SUBMITTED, HITS: the kernel counts HITS first, so a hit happening during
the read is in none or only in HITS, and the derived count is never negative.

Missed returns (kretprobe/uretprobe): the entry helper counts calls (``ktui_entries``
slot probe*2) and the return side counts returns that found their entry (probe*2+1).
missed = calls - matched returns - calls still running, where "still running" is the
number of entries waiting in the probe's stash map. An approximation: a return the
kernel missed leaves its entry in the stash until that thread calls again, so while
running it is counted as still running (an undercount), and a recursive call that
overwrote its caller's entry counts as missed. Once the traced calls have all
returned (the stash is empty) it is exact.
"""

from __future__ import annotations

import ctypes as ct
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from ktui.events import DROPPED, FILTERED, HITS, N_COUNTERS, ProbeCounters
from ktui.kernel import possible_cpus


class PerCpuArray:
    """Raw lookups in a BPF per-CPU array of u64 (no Python object per CPU, one shared buffer)."""

    def __init__(self, bpf: Any, map_name: str):
        from bcc.libbcc import lib  # loaded by ktui.bccload before any BPF object exists

        self._lookup = lib.bpf_lookup_elem
        table = bpf.get_table(map_name)
        self._fd = table.map_fd
        self.slots = int(table.max_entries)
        self.ncpu = possible_cpus()
        self._key = ct.c_uint32(0)
        self._value = np.zeros(self.ncpu, dtype="<u8")
        self._value_ptr = self._value.ctypes.data_as(ct.c_void_p)
        self.lock = threading.Lock()  # the key and value buffers are shared: hold it around lookups

    def lookup(self, index: int) -> np.ndarray | None:
        """The per-CPU values of one slot (a view of the shared buffer), or None if absent."""
        if index >= self.slots:
            return None
        self._key.value = index
        if self._lookup(self._fd, ct.byref(self._key), self._value_ptr) != 0:
            return None
        return self._value


class KernelCounters:
    """Reads ``ktui_counters`` (PERCPU_ARRAY of u64, slot probe_id * 4 + kind)."""

    def __init__(self, bpf: Any, map_name: str = "ktui_counters"):
        self._array = PerCpuArray(bpf, map_name)
        self.ncpu = self._array.ncpu

    def read(self, probe_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """probe id -> array of shape (N_COUNTERS, ncpu)."""
        out = {}
        with self._array.lock:
            for pid in probe_ids:
                rows = np.zeros((N_COUNTERS, self.ncpu), dtype=np.int64)
                for slot in reversed(range(N_COUNTERS)):  # HITS last: see the module's docstring
                    index = pid * N_COUNTERS + slot
                    if index >= self._array.slots:
                        break
                    value = self._array.lookup(index)
                    if value is not None:
                        rows[slot] = value
                out[pid] = rows
        return out


class DeliveredCounts:
    """Events read from the rings, per probe per CPU (from each record's cpu field)."""

    def __init__(self, ncpu: int):
        self.ncpu = ncpu
        self._counts: dict[int, np.ndarray] = {}

    def add(self, probe_id: int, records: np.ndarray) -> None:
        if len(records) == 0:
            return
        counts = self._counts.setdefault(probe_id, np.zeros(self.ncpu, dtype=np.int64))
        per_cpu = np.bincount(records["cpu"], minlength=self.ncpu)
        if len(per_cpu) > self.ncpu:  # a cpu field out of range can only be a bug; keep the count anyway
            counts.resize(len(per_cpu), refcheck=False)
            self.ncpu = len(per_cpu)
        counts[: len(per_cpu)] += per_cpu

    def get(self, probe_id: int) -> np.ndarray:
        return self._counts.get(probe_id, np.zeros(self.ncpu, dtype=np.int64))


def probe_counters(kernel: np.ndarray, delivered: np.ndarray | None, missed: int = 0) -> ProbeCounters:
    """One probe's ProbeCounters. Without a ring (in-kernel aggregation) the kernel does not count
    SUBMITTED: delivered = hits - dropped - filtered (what reached its maps)."""
    ncpu = kernel.shape[1]
    if delivered is None:
        got = np.maximum(kernel[HITS] - kernel[DROPPED] - kernel[FILTERED], 0)
    else:
        got = np.zeros(max(ncpu, len(delivered)), dtype=np.int64)
        got[: len(delivered)] = delivered
    return ProbeCounters(
        hits=[int(v) for v in kernel[HITS]],
        delivered=[int(v) for v in got],
        dropped=[int(v) for v in kernel[DROPPED]],
        filtered=[int(v) for v in kernel[FILTERED]],
        missed=missed,
    )


class EntryCounters:
    """Reads ``ktui_entries`` (PERCPU_ARRAY of u64: slot probe*2 calls, probe*2+1 matched returns)."""

    def __init__(self, bpf: Any, map_name: str = "ktui_entries"):
        self._array = PerCpuArray(bpf, map_name)

    def calls_and_returns(self, probe_id: int) -> tuple[int, int]:
        if probe_id * 2 + 1 >= self._array.slots:
            return 0, 0
        out = []
        with self._array.lock:
            for slot in (probe_id * 2 + 1, probe_id * 2):  # returns first: never more returns than calls
                value = self._array.lookup(slot)
                out.append(int(value.sum()) if value is not None else 0)
        returns, calls = out
        return calls, returns


def missed_returns(calls: int, returns: int, in_flight: int) -> int:
    """Returns the kernel missed, approximately (see the module's docstring)."""
    return max(calls - returns - in_flight, 0)
