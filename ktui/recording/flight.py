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

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ktui.errors import ParseError, UsageError
from ktui.events import Histogram, ProbeCounters, ProbeLayout, ProbeState, StackTrace
from ktui.probes.filter import parse_filter
from ktui.probes.filter_records import RecordsFilter, records_filter
from ktui.recording.writer import RecordingWriter

DRAIN_GRACE_NS = 300_000_000  # events are drained within the engine's 100 ms interval; margin for load
RING_BYTES_DEFAULT = 128 << 20  # memory for the ring across probes; the oldest events go first beyond it


def parse_trigger(trigger: str, where: str = "--trigger") -> None:
    """The trigger's syntax, checked before anything is attached or created; one sentence, said as
    the trigger's (``where``), not as a probe filter's."""
    try:
        node = parse_filter(trigger)
    except ParseError as err:
        at = f", column {err.pos + 1}" if err.pos is not None else ""
        raise ParseError(err.message, text=err.text, pos=err.pos, where=f"{where}{at}") from None
    if node is None:
        raise UsageError(f"{where} needs a condition, e.g. 'ret < 0'.")


@dataclass(frozen=True)
class FlightSettings:
    """What a flight recorder is asked for, by `ktui record --ring/--trigger/--after/--keep` or by
    the app's recording dialog; checked here once for both."""

    trigger: str
    ring_s: float
    after_s: float = 0.0
    keep: int = 1

    def check(self, where: str = "--trigger") -> None:
        """One sentence for the first thing wrong (the trigger's names are checked against the
        probes by trigger_filters, once their records are known)."""
        if not (math.isfinite(self.ring_s) and self.ring_s > 0):
            raise UsageError("the ring must be a positive number of seconds.")
        if not (math.isfinite(self.after_s) and self.after_s >= 0):
            raise UsageError("the time after a trigger must be zero or a positive number of seconds.")
        if not 1 <= self.keep <= 1_000_000:
            raise UsageError("the number of triggers to keep must be between 1 and 1000000.")
        parse_trigger(self.trigger, where)

    @classmethod
    def from_fields(cls, trigger: str, ring: str, after: str = "", keep: str = "") -> FlightSettings | None:
        """From the app's text fields: None when both ring and trigger are empty (a plain recording)."""
        trigger, ring, after, keep = trigger.strip(), ring.strip(), after.strip(), keep.strip()
        if not trigger and not ring:
            if after or keep:
                raise UsageError("after and keep belong to the flight recorder: give a ring and a trigger too.")
            return None
        if not trigger:
            raise UsageError("a ring needs a trigger: the filter whose event's window is kept.")
        if not ring:
            raise UsageError("a trigger needs a ring: the seconds kept before it.")
        settings = cls(trigger, _number(ring, "the ring"), _number(after, "after") if after else 0.0,
                       _whole(keep, "keep") if keep else 1)
        settings.check("the trigger")
        return settings

    def meta(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "ring_s": self.ring_s, "after_s": self.after_s, "keep": self.keep}

    def recorder(self, writer: RecordingWriter, layouts: Iterable[ProbeLayout]) -> FlightRecorder:
        return FlightRecorder(writer, layouts, self.trigger, ring_s=self.ring_s, after_s=self.after_s,
                              keep=self.keep)


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number of seconds.") from None


def _whole(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a whole number.") from None


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
        self._poller: threading.Thread | None = None  # poll_in_background's thread
        self._closing = threading.Event()

    def _add_filter(self, layout: ProbeLayout) -> None:
        try:
            self._filters[layout.probe_id] = records_filter(self._node, layout, self.trigger)
        except ParseError:  # this probe does not record what the trigger names: it is not watched
            pass

    @property
    def status(self) -> str:
        """For a status line: "armed" until the first trigger, then "triggered k of N"."""
        return f"triggered {len(self.marks)} of {self.keep}" if self.marks else "armed"

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

    def poll_in_background(self, every_s: float = 0.1) -> None:
        """poll() from a thread of the recorder's own until it is closed or done. Completing a window
        writes it (a pending trigger's whole ring window, the final flush): the app's screen must not
        be the thread that waits for that, so it only reads ``status`` and ``done``."""
        with self._lock:
            if self._poller is not None:
                return
            self._poller = threading.Thread(target=self._poll_loop, args=(every_s,), name="ktui-flight-poll",
                                            daemon=True)
        self._poller.start()

    def _poll_loop(self, every_s: float) -> None:
        while not self._closing.wait(every_s) and not self.done.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 -- the writer failed: the recorder sink says so on its next write
                return

    def add_probe(self, layout: ProbeLayout, probe: dict[str, Any] | None = None) -> None:
        with self._lock:
            self.writer.add_probe(layout, probe)
            self._add_filter(layout)

    def set_counters(self, counters: Mapping[int, ProbeCounters], at_ns: int | None = None) -> None:
        self.writer.set_counters(counters, at_ns)

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
        self._closing.set()
        poller = self._poller
        if poller is not None and poller is not threading.current_thread():
            poller.join(timeout=30)  # outside the lock: it may be waiting for it
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


def create_recorder(path: str, identity: Any, layouts: Sequence[ProbeLayout], models: Mapping[int, dict[str, Any]],
                    meta: dict[str, Any], flight: FlightSettings | None = None) -> RecordingWriter | FlightRecorder:
    """A new recording (RecordingWriter.create), behind a flight recorder when ``flight`` is given;
    the trigger is checked against the probes' records before the file exists, so a trigger that
    fits no probe leaves nothing behind."""
    if flight is None:
        return RecordingWriter.create(path, identity, layouts, models, meta)
    flight.check()
    trigger_filters(flight.trigger, layouts)
    writer = RecordingWriter.create(path, identity, layouts, models, {**meta, "flight": flight.meta()})
    return flight.recorder(writer, layouts)


def flight_of(recorder: object) -> FlightRecorder | None:
    """The flight recorder behind a recorder sink's writer, if it is one."""
    return recorder if isinstance(recorder, FlightRecorder) else None


@runtime_checkable
class FlightRecordable(Protocol):
    """A live source that can record through a flight recorder (ktui/sources/live.py)."""

    @property
    def recording_path(self) -> str | None: ...

    @property
    def recording_flight(self) -> FlightRecorder | None: ...

    def start_recording(self, path: str, flight: FlightSettings | None = None) -> None: ...

    def stop_recording(self) -> str: ...
