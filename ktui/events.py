"""The shape of events and updates, shared by the compiler, the engine, recordings,
replay and the panes.

Every event record is fixed-size per probe: a common header (below) followed by the
probe's fetched values. Fixed layouts let the engine read a ring buffer's records
as one numpy structured array (no Python object per event) and let recordings
store raw record bytes in compressed chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ktui.probes.model import Probe

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
    def from_dict(cls, d: dict[str, Any]) -> FieldLayout:
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
    def from_dict(cls, d: dict[str, Any]) -> ProbeLayout:
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
    rows: list[tuple[tuple[Any, ...], int]]  # (key values, count), largest count first


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
    # What a replay could not read so far (damaged chunks, rows), one sentence per file; "" when
    # everything read. A snapshot like the counters: the app keeps it on screen as a banner.
    damage: str = ""
    # A replay's seek count when the update was built: events from before a seek are not from the
    # cursor's time, and are dropped by merge and by the app (always 0 for a live source).
    seek_generation: int = 0

    @classmethod
    def merge(cls, updates: Sequence[Update], *, window: int | None = None) -> Update:
        """The one rule for coalescing updates (engine outbox, app queue, slow panes alike).

        Updates in arrival order become one: events are deltas, so each probe's are
        concatenated once (nothing lost; with ``window``, only each probe's newest ``window``
        are kept); counters, probe states, stacks, histograms, COUNT tables, clocks and the
        message are snapshots, so the newest non-empty one wins; finished sticks.
        """
        if len(updates) == 1 and window is None:
            return updates[0]
        parts: dict[int, list[np.ndarray]] = {}
        newest = max(u.seek_generation for u in updates)
        for u in updates:
            if u.seek_generation != newest:
                continue  # events from before a seek: another time than the cursor's
            for probe_id, arr in u.events.items():
                parts.setdefault(probe_id, []).append(arr)
        events = {}
        for probe_id, arrs in parts.items():
            if window is not None:  # drop whole old arrays first, so the concatenation copies only what stays
                n = sum(len(a) for a in arrs)
                while len(arrs) > 1 and n - len(arrs[0]) >= window:
                    n -= len(arrs.pop(0))
            nonempty = [a for a in arrs if len(a)]
            arr = arrs[0] if len(arrs) == 1 else np.concatenate(nonempty or arrs[:1])
            events[probe_id] = arr[-window:] if window is not None and len(arr) > window else arr
        merged = cls(events=events, finished=any(u.finished for u in updates), seek_generation=newest)
        for u in updates:
            merged.counters = u.counters or merged.counters
            merged.probes = u.probes or merged.probes
            merged.stacks = u.stacks or merged.stacks
            merged.histograms = u.histograms or merged.histograms
            merged.counts = u.counts or merged.counts
            merged.now_ns = u.now_ns or merged.now_ns
            merged.elapsed_s = u.elapsed_s or merged.elapsed_s
            merged.message = u.message or merged.message
            merged.damage = u.damage or merged.damage
        return merged

    def snapshots(self) -> Update:
        """This update without its events (what the slowly redrawn panes keep)."""
        return Update(counters=self.counters, stacks=self.stacks, histograms=self.histograms, counts=self.counts,
                      now_ns=self.now_ns, elapsed_s=self.elapsed_s)


# --- What a source is and what it can do -------------------------------------------------
# Declared capabilities (harlequin's adapters, STYLE.md): the app asks ``isinstance(source,
# ProbeControl)`` once, never getattr. Each is @runtime_checkable so that question is cheap.

@runtime_checkable
class EventSource(Protocol):
    """Live tracing and replay both feed the panes through this interface.

    ``start`` begins producing Updates on the source's own thread and calls ``sink``
    with each (the app turns that into a Textual message with post_message, which
    is thread-safe). ``stop`` ends it and releases everything (for live: detaches
    every probe); it is idempotent. ``layouts`` says how to decode each probe's events.
    """

    layouts: dict[int, ProbeLayout]
    live: bool

    def start(self, sink: Callable[[Update], None]) -> None: ...

    def stop(self) -> None: ...

    def symbolize(self, address: int, pid: int | None = None) -> str: ...


@runtime_checkable
class EventStacks(Protocol):
    """The frames behind the stack ids an event's record carries (kstack, ustack), for the inspector.
    A live source looks them up in the program's stack map as it is now; a replay in the file."""

    def stack_frames(self, probe_id: int, stack_id: int, user: bool = False, pid: int | None = None) -> list[str]: ...


@runtime_checkable
class ProbeControl(Protocol):
    """Probes changed while tracing, keyed by the ids the source hands out (never list positions).

    ``probe_ids`` are the ids of the probes the source was built with, in their order, known
    before ``start``. ``add_probe`` allocates the next id under one lock (the engine's loader)
    before it compiles, so two calls never share one; a probe that fails to load keeps its id (state
    "failed"), so later ids do not shift. Unknown ids raise UsageError."""

    probe_ids: list[int]

    def add_probe(self, probe: Probe) -> int: ...

    def enable_probe(self, probe_id: int, enabled: bool) -> None: ...

    def remove_probe(self, probe_id: int) -> None: ...


@runtime_checkable
class ProbeHosts(Protocol):
    """A source whose probes run on several hosts (``ktui --host``, replay of per-host recordings).

    ``probe_hosts`` maps a probe id to (the host's short name, the probe's own name there); it is
    empty when every probe comes from one machine. Layout names stay ``HOST:probe`` (one name per
    probe in every pane); the event stream shows a HOST column beside the plain probe name."""

    probe_hosts: dict[int, tuple[str, str]]


@runtime_checkable
class Playback(Protocol):
    """A source that moves through time at the user's command (replay)."""

    seek_generation: int  # bumps on every seek: the panes drop what they show

    @property
    def position_ns(self) -> int: ...

    def play(self) -> None: ...

    def pause(self) -> None: ...

    def step(self, n: int = 1) -> None: ...

    def seek(self, t_ns: int) -> None: ...

    def set_speed(self, speed: float | None) -> None: ...


@runtime_checkable
class TimeWindows(Protocol):
    """replay: the timeline's span, rates over it, and a selected window whose aggregates the
    source recomputes (``window`` and ``window_generation`` move when they are ready)."""

    start_ns: int
    end_ns: int
    selection: tuple[int, int] | None
    window_generation: int

    @property
    def window(self) -> Any: ...  # ktui.recording.window.WindowAggregates of the shown window, or None

    def rate_bins(self, n: int, probe_id: int | None = None) -> Any: ...  # numpy array of n event counts

    def select_window(self, start_ns: int | None, end_ns: int | None = None) -> None: ...

    def marks(self) -> list[int]: ...  # timeline times of marks (flight recorder triggers)


@runtime_checkable
class RecordedRows(Protocol):
    """replay: the stream's filter and search over the whole recording, not only the rows on screen
    (the query language is ktui.row_filter's)."""

    @property
    def playing(self) -> bool: ...

    def set_row_filter(self, query: str) -> None: ...

    def rate_at(self, t_ns: int, bins: int = 200) -> float: ...  # events per recording second around t_ns

    def find(self, query: str, from_ns: int, step: int = 1) -> int | None: ...  # a match's time, or None


@runtime_checkable
class Recordable(Protocol):
    """A source that can write what it shows to a recording file while it runs (live)."""

    @property
    def recording_path(self) -> str | None: ...

    def start_recording(self, path: str) -> None: ...

    def stop_recording(self) -> str: ...  # one sentence: what was written where
