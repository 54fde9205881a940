"""Draining the rings: every loaded probe's committed records copied out (``ringbuf.py``), counted
as delivered, tallied by stack, handed to the recorder when one is attached, and kept for the
next update.

Only the drain thread calls ``drain_once`` (and, after it has ended, ``stop()`` through
``drain_in_flight``), so the delivered counts and the fresh arrays need no lock of their own; the
rings to read are a snapshot taken under the loader's lock.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ktui.engine.aggregates import Aggregates
from ktui.engine.counters import DeliveredCounts
from ktui.engine.loader import Loader
from ktui.engine.outbox import Fresh
from ktui.engine.recorder_sink import RecorderSink
from ktui.kernel import possible_cpus

IN_FLIGHT_GRACE_S = 0.01  # after the switch-off, for program runs already past it (they take microseconds)


class Drain:
    def __init__(self, loader: Loader, aggregates: Aggregates, stopping: threading.Event):
        self._loader = loader
        self._aggregates = aggregates
        self._stopping = stopping  # a recorder that cannot keep up is waited for only until this is set
        self.delivered = DeliveredCounts(possible_cpus())
        self.recording: RecorderSink | None = None  # set and cleared by the source
        # Held while a batch is counted as delivered, tallied by stack and handed to the recorder, so a
        # recording from the app starts between two batches: its baseline and its first event agree.
        self.take_lock = threading.Lock()
        self._fresh: Fresh = {}
        self.events_delivered = 0
        self.first_event_at: float | None = None  # time.monotonic() of the first event read

    def drain_once(self) -> int:
        """Read every ring once; the number of events read."""
        total = 0
        units = self._loader.units()
        first = units[0] if units else None
        for unit in units:
            for gid, reader in list(unit.readers):
                recs = reader.read()
                if not len(recs):
                    continue
                if gid != int(recs["probe"][0]):
                    recs["probe"] = gid
                total += len(recs)
                self._take(gid, recs, unit is first, unit.stacks is not None)
        if total:
            self.events_delivered += total
            if self.first_event_at is None:
                self.first_event_at = time.monotonic()
        return total

    def _take(self, gid: int, recs: np.ndarray, first_unit: bool, has_stacks: bool) -> None:
        with self.take_lock:
            self.delivered.add(gid, recs)
            self._fresh.setdefault(gid, []).append(recs)
            if has_stacks:
                # A probe with the stacks action counts its stacks in its own map (read with the other
                # maps): its records' stack ids are kept for the inspector but not tallied again, or a
                # streamed probe with stacks showed each stack twice as often as it was hit.
                in_map = any(role.startswith("stacks") for role in self._loader.compiled[gid].maps)
                self._aggregates.count_stacks(gid, recs, first_unit, tally=not in_map)
            recording = self.recording
            if recording is not None:
                recording.events(gid, recs, self._stopping)

    def drain_in_flight(self) -> None:
        """Runs already past the switch-off finish within microseconds: let them, then read every
        ring until it is empty, so their events are delivered before the last counters are read."""
        time.sleep(IN_FLIGHT_GRACE_S)
        for _ in range(100):
            if self.drain_once() == 0 and not any(r.pending_bytes() for _, _, r in self._loader.readers()):
                return

    def take_fresh(self) -> Fresh:
        """The event arrays read since the last call."""
        fresh, self._fresh = self._fresh, {}
        return fresh
