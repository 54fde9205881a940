"""The shape of events and updates, shared by the compiler, the engine, recordings,
replay and the panes.

Every event record is fixed-size per probe: a common header (below) followed by the
probe's fetched values. Fixed layouts let the engine read a ring buffer's records
as one numpy structured array (no Python object per event) and let recordings
store raw record bytes in compressed chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from collections.abc import Callable

import numpy as np

# The C struct every record starts with (the compiler emits the same layout):
#   struct ktui_hdr { u64 ts; u32 probe; u32 cpu; u32 pid; u32 tid; u32 uid;
#                     s32 kstack; s32 ustack; u32 flags; char comm[16]; };   // 56 bytes
HEADER_FIELDS: list[tuple[str, str]] = [
    ("ts", "<u8"),  # bpf_ktime_get_ns(): CLOCK_MONOTONIC nanoseconds
    ("probe", "<u4"),  # probe id within the session
    ("cpu", "<u4"),
    ("pid", "<u4"),  # thread group id (what users call the pid)
    ("tid", "<u4"),
    ("uid", "<u4"),
    ("kstack", "<i4"),  # stack id in the stack map, or negative when not taken
    ("ustack", "<i4"),
    ("flags", "<u4"),
    ("comm", "S16"),
]
HEADER_DTYPE = np.dtype(HEADER_FIELDS)
HEADER_SIZE = HEADER_DTYPE.itemsize  # 56
assert HEADER_SIZE == 56

# Per-probe counters, in a BPF_PERCPU_ARRAY indexed probe_id * N_COUNTERS + slot.
HITS, SUBMITTED, DROPPED, FILTERED = 0, 1, 2, 3
N_COUNTERS = 4  # slots counted in the kernel; "delivered" and "missed" are added in user space


@dataclass(frozen=True)
class FieldLayout:
    """One fetched value in a record: its column name, numpy dtype and how to show it."""
    name: str
    dtype: str  # numpy dtype string: "<u8", "<i4", "S64", ...
    display: str = "u"  # "u", "s", "x", "string", "symbol", "errno", "ns"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "dtype": self.dtype, "display": self.display}

    @classmethod
    def from_dict(cls, d: dict) -> FieldLayout:
        return cls(str(d["name"]), str(d["dtype"]), str(d.get("display", "u")))


@dataclass(frozen=True)
class ProbeLayout:
    """The fixed record layout of one probe's events."""
    probe_id: int
    name: str  # display name of the probe
    spec: str  # bpftrace-style spec, e.g. "tracepoint:syscalls:sys_enter_getppid"
    fields: tuple[FieldLayout, ...] = ()

    @property
    def dtype(self) -> np.dtype:
        # Fields are laid out by the compiler with the same alignment C uses; the
        # record size is padded to 8 as the ring buffer does.
        names = [n for n, _ in HEADER_FIELDS] + [f.name for f in self.fields]
        formats = [t for _, t in HEADER_FIELDS] + [f.dtype for f in self.fields]
        offsets, off = [], 0
        for fmt in formats:
            dt = np.dtype(fmt)
            align = min(dt.itemsize, 8) if dt.kind != "S" else 1
            off = (off + align - 1) // align * align
            offsets.append(off)
            off += dt.itemsize
        size = (off + 7) // 8 * 8
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})

    @property
    def record_size(self) -> int:
        return self.dtype.itemsize

    def to_dict(self) -> dict[str, Any]:
        return {"probe_id": self.probe_id, "name": self.name, "spec": self.spec,
                "fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, d: dict) -> ProbeLayout:
        return cls(int(d["probe_id"]), str(d["name"]), str(d["spec"]),
                   tuple(FieldLayout.from_dict(f) for f in d.get("fields", [])))


@dataclass
class ProbeCounters:
    """Loss accounting for one probe, per CPU: hits = delivered + dropped + filtered (+ in flight)."""
    hits: list[int]
    delivered: list[int]
    dropped: list[int]
    filtered: list[int]
    missed: int = 0  # kretprobe instances missed (maxactive exhausted)

    @classmethod
    def zeros(cls, ncpu: int) -> ProbeCounters:
        return cls([0] * ncpu, [0] * ncpu, [0] * ncpu, [0] * ncpu)

    def totals(self) -> dict[str, int]:
        return {"hits": sum(self.hits), "delivered": sum(self.delivered), "dropped": sum(self.dropped),
                "filtered": sum(self.filtered), "missed": self.missed}


@dataclass
class ProbeState:
    probe_id: int
    name: str
    spec: str
    status: str  # "attached", "disabled", "failed", "pending", "recorded"
    reason: str = ""  # why it failed, in one sentence


@dataclass
class StackTrace:
    """An aggregated stack: frames innermost first, already symbolized, and how often seen."""
    probe_id: int
    kernel: tuple[str, ...]
    user: tuple[str, ...]
    count: int


@dataclass
class Histogram:
    probe_id: int
    value: str  # what is counted: a fetch name or "latency"
    scale: str  # "log2" or "linear"
    buckets: list[tuple[int, int, int]]  # (low inclusive, high exclusive, count)


@dataclass
class KeyCounts:
    """A COUNT action's table, kept in the kernel: each key (values of the action's key fetches) and its count."""
    probe_id: int
    key_names: tuple[str, ...]
    rows: list[tuple[tuple, int]]  # (key values, count), largest count first


@dataclass
class Update:
    """What a source (live engine or replay) hands the panes, at most ~30 times a second.

    ``events`` holds only the events new since the previous update, one structured
    array per probe id (dtype = that probe's ProbeLayout.dtype). Counters, stacks
    and histograms are full snapshots (they are aggregates, not deltas).
    """
    events: dict[int, np.ndarray] = field(default_factory=dict)
    counters: dict[int, ProbeCounters] = field(default_factory=dict)
    probes: list[ProbeState] = field(default_factory=list)
    stacks: list[StackTrace] = field(default_factory=list)
    histograms: list[Histogram] = field(default_factory=list)
    counts: list[KeyCounts] = field(default_factory=list)
    now_ns: int = 0  # the source's clock (event time base), for rates and the status line
    elapsed_s: float = 0.0
    message: str = ""  # a status sentence (a warning, "replay finished"...)
    finished: bool = False


class EventSource(Protocol):
    """Live tracing and replay both feed the panes through this interface.

    ``start`` begins producing Updates on the source's own thread and calls ``sink``
    with each (the app turns that into a Textual message with post_message, which
    is thread-safe). ``stop`` ends it and releases everything (for live: detaches
    every probe). ``layouts`` says how to decode each probe's events.
    """

    layouts: dict[int, ProbeLayout]
    live: bool

    def start(self, sink: Callable[[Update], None]) -> None: ...

    def stop(self) -> None: ...

    def symbolize(self, address: int, pid: int | None = None) -> str: ...
