"""The flight recorder: keep only the last seconds of events, write the window around a trigger.

`ktui record SPEC --ring SECONDS --trigger FILTER [--after SECONDS] [--keep N]` puts a
FlightRecorder between the engine's recorder sink and the RecordingWriter. Events wait
in memory, per probe, for as long as the ring lasts (and within a byte budget, so a
flood cannot grow memory); nothing reaches the disk until an event matches the trigger
(the filter language, evaluated over the delivered records: ktui/probes/filter_records.py).
Then the events of every probe in [T - ring, T + after] are written, with a mark (the
recording's `marks` table) at the trigger event's time T. After the window the recorder
either stops (`done` is set) or re-arms, up to `keep` triggers in all. A trigger that
matches inside a window being written is part of that window; the next trigger is the
first match after it. Windows never overlap: a window starts after the previous one ended.

The window after T is complete once the clock has passed T + after by DRAIN_GRACE_NS
(events reach user space within the engine's drain interval), checked on every batch
and by poll() from the caller's loop, so a quiet system still completes its window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ktui.errors import ParseError, UsageError
from ktui.events import Histogram, ProbeCounters, ProbeLayout, ProbeState, StackTrace
from ktui.probes.filter import parse_filter
from ktui.probes.filter_records import RecordsFilter, records_filter
from ktui.recording.writer import RecordingWriter

DRAIN_GRACE_NS = 300_000_000  # events are drained within the engine's 100 ms interval; margin for load
RING_BYTES_DEFAULT = 128 << 20  # memory for the ring across probes; the oldest events go first beyond it


def trigger_filters(trigger: str, layouts: Iterable[ProbeLayout]) -> dict[int, RecordsFilter]:
    """probe id -> the trigger over that probe's records, for every probe recording what it names;
    one sentence (UsageError or ParseError) when the trigger is malformed or fits no probe."""
    node = parse_filter(trigger)
    if node is None:
        raise UsageError("--trigger needs a condition, e.g. 'ret < 0'.")
    filters: dict[int, RecordsFilter] = {}
    refusals = []
    for layout in layouts:
        try:
            filters[layout.probe_id] = records_filter(node, layout, trigger)
        except ParseError as err:
            refusals.append(f"{layout.name}: {err}")
    if not filters:
        raise UsageError(f"the trigger {trigger!r} fits no probe ({refusals[0] if refusals else 'none given'}).")
    return filters


class FlightRecorder:
    """A RecordingWriter's stand-in for the recorder sink: events are kept in a time ring and only
    the windows around triggers are written. The other writer calls go straight through."""

    def __init__(self, writer: RecordingWriter, layouts: Iterable[ProbeLayout], trigger: str, *,
                 ring_s: float, after_s: float = 0.0, keep: int = 1, ring_bytes: int = RING_BYTES_DEFAULT,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        if not ring_s > 0:
            raise UsageError("--ring must be a positive number of seconds.")
        if after_s < 0:
            raise UsageError("--after must be zero or a positive number of seconds.")
        if keep < 1:
            raise UsageError("--keep must be at least 1.")
        self.writer = writer
        self.path = writer.path
        self.trigger = trigger
        self.ring_ns = int(ring_s * 1e9)
        self.after_ns = int(after_s * 1e9)
        self.keep = keep
        self.ring_bytes = ring_bytes
        self._clock = clock
        self._node = parse_filter(trigger)
        self._filters = trigger_filters(trigger, layouts)
        self._ring: dict[int, deque[np.ndarray]] = {}
        self._bytes = 0
        self._newest = 0
        self._lock = threading.RLock()
        self.state = "armed"  # armed -> after -> armed ... -> done
        self.done = threading.Event()
        self._window: tuple[int, int] | None = None
        self._last_end = -1  # windows never overlap
        self._pending: tuple[int, int] | None = None  # a trigger seen during a window: (ts, probe id)
        self.marks: list[tuple[int, int, int, int]] = []  # (ts, probe id, start, end) of each trigger
        self.events_seen = 0
        self.events_kept = 0
        self.events_overflowed = 0  # dropped from memory by the byte budget before their time was up

    def _add_filter(self, layout: ProbeLayout) -> None:
        try:
            self._filters[layout.probe_id] = records_filter(self._node, layout, self.trigger)
        except ParseError:  # this probe does not record what the trigger names: it is not watched
            pass

    @property
    def watched(self) -> list[int]:
        """Probe ids whose events are tested against the trigger."""
        return sorted(self._filters)

    # -- the writer's interface, as the recorder sink uses it --------------------------------------

    def append(self, probe_id: int, records: np.ndarray) -> None:
        if not len(records):
            return
        with self._lock:
            self.events_seen += len(records)
            if self.done.is_set():
                return
            rest = records
            if self.state == "after" and self._window is not None:
                start, end = self._window
                ts = records["ts"]
                inside = (ts >= start) & (ts <= end)
                if inside.any():
                    self._write(probe_id, records[inside])
                rest = records[ts > end]
            if len(rest):
                self._remember(probe_id, rest)
                self._look_for_trigger(probe_id, rest)
            self._advance(self._clock())

    def poll(self) -> None:
        """Complete a window whose time is up on a quiet system (call every 100 ms or so)."""
        with self._lock:
            self._advance(self._clock())

    def add_probe(self, layout: ProbeLayout, probe: dict | None = None) -> None:
        with self._lock:
            self.writer.add_probe(layout, probe)
            self._add_filter(layout)

    def set_counters(self, counters: Mapping[int, ProbeCounters]) -> None:
        self.writer.set_counters(counters)

    def set_probe_states(self, states: Iterable[ProbeState]) -> None:
        self.writer.set_probe_states(states)

    def set_stacks(self, stacks: Iterable[StackTrace]) -> None:
        self.writer.set_stacks(stacks)

    def set_histograms(self, histograms: Iterable[Histogram]) -> None:
        self.writer.set_histograms(histograms)

    def add_stack_ids(self, kernel: Mapping[int, Sequence[int]] | None = None,
                      user: Mapping[int, Sequence[int]] | None = None) -> None:
        self.writer.add_stack_ids(kernel, user)

    def add_symbols(self, kernel: Mapping[int, str] | None = None,
                    user: Mapping[tuple[str | int, int], str] | None = None) -> None:
        self.writer.add_symbols(kernel, user)

    def set_meta(self, **values: Any) -> None:
        self.writer.set_meta(**values)

    def flush(self) -> None:
        with self._lock:
            self.writer.flush()

    def close(self, end_ns: int | None = None) -> None:
        """Finish: a window still open keeps what arrived; the flight's figures go to the meta table."""
        with self._lock:
            try:
                self.writer.set_meta(flight={
                    "trigger": self.trigger, "ring_s": self.ring_ns / 1e9, "after_s": self.after_ns / 1e9,
                    "keep": self.keep, "triggers": len(self.marks), "events_seen": self.events_seen,
                    "events_kept": self.events_kept, "events_overflowed": self.events_overflowed})
            finally:
                self.writer.close(end_ns)

    # -- the ring --------------------------------------------------------------------------------

    def _remember(self, probe_id: int, records: np.ndarray) -> None:
        # A copy: the engine's arrays may be views over ring-buffer memory it reuses.
        kept = np.array(records, copy=True)
        self._ring.setdefault(probe_id, deque()).append(kept)
        self._bytes += kept.nbytes
        self._newest = max(self._newest, int(kept["ts"].max()))
        self._evict()

    def _evict(self) -> None:
        cutoff = self._newest - self.ring_ns
        for q in self._ring.values():
            while q and int(q[0]["ts"].max()) < cutoff:
                self._bytes -= q.popleft().nbytes
        while self._bytes > self.ring_bytes:  # over the byte budget: the oldest batch of any probe goes
            oldest = min((q for q in self._ring.values() if q), key=lambda q: int(q[0]["ts"][0]))
            gone = oldest.popleft()
            self._bytes -= gone.nbytes
            self.events_overflowed += len(gone)

    def _look_for_trigger(self, probe_id: int, records: np.ndarray) -> None:
        if len(self.marks) + (self._pending is not None) >= self.keep:
            return
        test = self._filters.get(probe_id)
        if test is None:
            return
        if self.state == "armed":
            # After a window the next trigger is the first match after its end.
            records = records[records["ts"] > self._last_end] if self._last_end >= 0 else records
        hits = np.flatnonzero(test(records))
        if not len(hits):
            return
        ts = int(records["ts"][hits].min())
        if self.state == "armed":
            self._fire(ts, probe_id)
        elif self._pending is None or ts < self._pending[0]:
            self._pending = (ts, probe_id)

    def _fire(self, ts: int, probe_id: int) -> None:
        start = max(ts - self.ring_ns, self._last_end + 1, 0)
        end = ts + self.after_ns
        self._window = (start, end)
        self.state = "after"
        for pid, q in self._ring.items():
            if not q:
                continue
            arr = np.concatenate(list(q)) if len(q) > 1 else q[0]
            t = arr["ts"]
            inside = (t >= start) & (t <= end)
            if inside.any():
                self._write(pid, arr[inside])
            later = arr[t > end]
            self._bytes -= sum(a.nbytes for a in q)
            q.clear()
            if len(later):
                q.append(later)
                self._bytes += later.nbytes
        self.marks.append((ts, probe_id, start, end))
        self.writer.add_mark(ts, "trigger", self.trigger, probe_id=probe_id, start_ns=start, end_ns=end)

    def _advance(self, now: int) -> None:
        if self.state != "after" or self._window is None or now <= self._window[1] + DRAIN_GRACE_NS:
            return
        self._last_end = self._window[1]
        self._window = None
        if len(self.marks) >= self.keep:
            self.state = "done"
            self._ring.clear()
            self._bytes = 0
            self.writer.flush()
            self.done.set()
            return
        self.state = "armed"
        if self._pending is not None:
            ts, probe_id = self._pending
            self._pending = None
            self._fire(ts, probe_id)  # seen after the window's end (only later events are tested then)

    def _write(self, probe_id: int, records: np.ndarray) -> None:
        self.writer.append(probe_id, records)
        self.events_kept += len(records)
