"""The recorder as one sink of the drained stream (the panes are the other).

It runs on a thread of its own behind a queue with a byte budget. When the budget is spent
the drain waits (the kernel then drops, and counts it) - but never for long: a writer that
has not caught up within STALL_S, or whose thread has ended, is declared failed. Any
failure (a full disk, an I/O error, a bug) is kept as one sentence, the sink detaches
(nothing more is queued or written), and tracing goes on; what was written stays readable.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ktui.errors import KtuiError
from ktui.events import Histogram, KeyCounts, ProbeCounters, ProbeLayout, StackTrace, Update

RECORD_QUEUE_BYTES = 32 << 20  # events waiting for the writer before the drain waits
STALL_S = 10.0  # the longest the drain waits for a writer that does not catch up
COUNTERS_EVERY_S = 1.0  # counters written this often, so a killed run still has recent ones


def _sentence(err: BaseException) -> KtuiError:
    if isinstance(err, KtuiError):
        return err
    if isinstance(err, OSError):
        return KtuiError(f"the recording stopped: {err.strerror or err}.")
    return KtuiError(f"the recording stopped: {err}.")


def counters_since(now: Mapping[int, ProbeCounters], base: Mapping[int, ProbeCounters]) -> dict[int, ProbeCounters]:
    """Counters counted after ``base`` was read (a recording started while tracing ran)."""
    out = {}
    for gid, c in now.items():
        b = base.get(gid)
        if b is None:
            out[gid] = c
            continue
        out[gid] = ProbeCounters([x - y for x, y in zip(c.hits, b.hits)],
                                 [x - y for x, y in zip(c.delivered, b.delivered)],
                                 [x - y for x, y in zip(c.dropped, b.dropped)],
                                 [x - y for x, y in zip(c.filtered, b.filtered)], max(c.missed - b.missed, 0))
    return out


@dataclass(frozen=True)
class AggregateBaseline:
    """The session's stacks, histograms and COUNT tables as a recording from the app starts: the
    kernel's maps and the engine's tallies count since tracing began, a recording only from here."""

    stacks: list[StackTrace] = field(default_factory=list)
    histograms: list[Histogram] = field(default_factory=list)
    counts: list[KeyCounts] = field(default_factory=list)


def aggregates_since(update: Update, base: AggregateBaseline | None) -> tuple[
        list[StackTrace], list[Histogram], list[KeyCounts]]:
    """``update``'s stacks, histograms and COUNT tables minus ``base`` (entries left at zero go)."""
    if base is None:
        return list(update.stacks), list(update.histograms), list(update.counts)
    before_s = {(s.probe_id, s.kernel, s.user): s.count for s in base.stacks}
    stacks = [StackTrace(s.probe_id, s.kernel, s.user, n) for s in update.stacks
              if (n := s.count - before_s.get((s.probe_id, s.kernel, s.user), 0)) > 0]
    before_h = {(h.probe_id, h.value, lo, hi): n for h in base.histograms for lo, hi, n in h.buckets}
    hists = [Histogram(h.probe_id, h.value, h.scale,
                       [(lo, hi, n - before_h.get((h.probe_id, h.value, lo, hi), 0)) for lo, hi, n in h.buckets
                        if n > before_h.get((h.probe_id, h.value, lo, hi), 0)]) for h in update.histograms]
    before_k = {(k.probe_id, k.key_names, key): n for k in base.counts for key, n in k.rows}
    counts = []
    for k in update.counts:
        rows = [(key, n - before_k.get((k.probe_id, k.key_names, key), 0)) for key, n in k.rows
                if n > before_k.get((k.probe_id, k.key_names, key), 0)]
        counts.append(KeyCounts(k.probe_id, k.key_names, sorted(rows, key=lambda r: -r[1])))
    return stacks, hists, counts


class RecorderSink:
    def __init__(self, writer: Any, path: str, counters: Callable[[], dict[int, ProbeCounters]], *,
                 baseline: Mapping[int, ProbeCounters] | None = None,
                 aggregates: AggregateBaseline | None = None, owns_writer: bool = False) -> None:
        self.writer = writer  # a ktui.recording.RecordingWriter
        self.path = path
        self.error: KtuiError | None = None
        self.events_written = 0
        self._counters = counters
        self._baseline = dict(baseline or {})
        self._aggregates = aggregates  # subtracted from the final stacks, histograms and COUNT tables
        self._owns_writer = owns_writer
        self._q: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._bytes = 0
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="ktui-record", daemon=True)
        self._closed = False

    def start(self) -> None:
        self._thread.start()

    # --- fed by the drain (its thread) -----------------------------------------------------
    def events(self, probe_id: int, records: np.ndarray, stopping: threading.Event) -> None:
        if self.error is not None or self._closed:
            return
        with self._cv:
            since = None
            while self._bytes > RECORD_QUEUE_BYTES and self.error is None and not stopping.is_set():
                now = time.monotonic()
                since = since or now
                if not self._thread.is_alive():
                    self._fail(KtuiError("the recording stopped: its writer thread ended."))
                elif now - since >= STALL_S:
                    self._fail(KtuiError(f"the recording stopped: writing {self.path} fell "
                                         f"{RECORD_QUEUE_BYTES >> 20} MiB behind for {STALL_S:g} s."))
                else:
                    self._cv.wait(0.1)
            if self.error is not None or self._closed:
                return
            self._bytes += records.nbytes
            self._q.put(("events", probe_id, records))

    def probe(self, layout: ProbeLayout, model: dict[str, Any]) -> None:
        if self.error is None and not self._closed:
            self._q.put(("probe", layout, model))

    def finish(self, update: Update, stack_ids: Callable[[Any], None] | None = None) -> None:
        """The final snapshots (after the last events), then the thread ends; the writer is closed
        here when this sink made it. Idempotent."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._q.put(("final", update, stack_ids))
            self._q.put(None)
        if not self._wait_for_writer():
            return  # stuck in a write: the writer stays open to it; what was written stays readable
        if self._owns_writer:
            try:
                self.writer.close()
            except Exception as err:
                self._fail(err)

    def _wait_for_writer(self) -> bool:
        """Wait for the thread to write what is queued and end, as long as it makes progress; a writer
        that makes none for STALL_S (a hung file system) is declared failed, so stop() never hangs."""
        progress, since = (-1, -1), time.monotonic()
        while self._thread.is_alive():
            self._thread.join(0.1)
            now = (self._bytes, self.events_written)
            if now != progress:
                progress, since = now, time.monotonic()
            elif time.monotonic() - since >= STALL_S:
                self._fail(KtuiError(f"the recording stopped: writing {self.path} made no progress for {STALL_S:g} s."))
                return False
        return True

    # --- its thread ---------------------------------------------------------------------------
    def _fail(self, err: BaseException) -> None:
        with self._cv:
            if self.error is None:
                self.error = _sentence(err)
            self._cv.notify_all()

    def _loop(self) -> None:
        rec = self.writer
        counted = time.monotonic()
        while True:
            try:  # counters are taken on time also while no event comes (a window's losses need them)
                item: tuple[Any, ...] | None = self._q.get(timeout=COUNTERS_EVERY_S)
            except queue.Empty:
                item = ("tick",)
            if item is None:
                return
            try:
                if item[0] == "events":
                    _, probe_id, records = item
                    with self._cv:
                        self._bytes -= records.nbytes
                        self._cv.notify_all()
                    if self.error is None:
                        rec.append(probe_id, records)
                        self.events_written += len(records)
                elif self.error is not None:
                    continue  # detached: what is queued is let go without writing
                elif item[0] == "probe":
                    rec.add_probe(item[1], item[2])
                elif item[0] == "final":
                    self._finish(item[1], item[2])
                    continue  # its counters are the last: none read later may replace them
                if self.error is None and time.monotonic() - counted > COUNTERS_EVERY_S:
                    rec.set_counters(counters_since(self._counters(), self._baseline), at_ns=time.monotonic_ns())
                    counted = time.monotonic()
            except Exception as err:  # a sink fails alone: reported, detached, tracing goes on
                self._fail(err)

    def _finish(self, update: Update, stack_ids: Callable[[Any], None] | None) -> None:
        rec = self.writer
        rec.flush()
        # an end snapshot without counters (tracing stopped by a signal before it could read them): as now
        rec.set_counters(counters_since(update.counters or self._counters(), self._baseline), at_ns=time.monotonic_ns())
        rec.set_probe_states(update.probes)
        stacks, histograms, counts = aggregates_since(update, self._aggregates)
        if stacks:
            rec.set_stacks(stacks)
        if histograms:
            rec.set_histograms(histograms)
        if counts:  # the recording format has no table of its own for them: kept as metadata
            rec.set_meta(key_counts=[{"probe_id": k.probe_id, "key_names": list(k.key_names),
                                      "rows": [[list(key), n] for key, n in k.rows]} for k in counts])
        if stack_ids is not None:
            stack_ids(rec)
