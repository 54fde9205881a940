"""Recording what is traced: the recorder sink (``recorder_sink.py``) attached to the drain and
detached again. ``ktui record`` gives its writer at construction (the recorder is then the only
sink, ended only by stop); the app starts and stops recordings while tracing (events.Recordable).

Lock discipline: starting takes the loader's lock for the probes to record; the drain reads the
current sink through one attribute (``Drain.recording``), set and cleared here, never edited.

A recording from the app covers exactly its own interval: its counters, stacks, histograms and
COUNT tables are the session's at its end minus a baseline read as it starts. Both are read
between two drained batches (``Drain.take_lock``: delivered counts and record-tallied stacks agree
with the recorded events), and each probe's maps while it was not hit (its hits the same before
and after the read, a few tries: Aggregates.read_settled), so its map counts agree with its hits.
"""

from __future__ import annotations

from dataclasses import replace
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ktui.engine.accounting import key_counts
from ktui.engine.aggregates import Aggregates
from ktui.engine.drain import Drain
from ktui.engine.loader import Loader
from ktui.engine.recorder_sink import AggregateBaseline, RecorderSink
from ktui.errors import KtuiError, UsageError
from ktui.events import ProbeCounters, ProbeLayout, Update

if TYPE_CHECKING:
    from ktui.recording.flight import FlightSettings


BASELINE_TRIES = 20  # reads of a probe's maps tried for one during which it was not hit
SETTLE_S = 0.002  # longer than any program run: its map updates follow its hit count


class Recordings:
    def __init__(self, loader: Loader, drain: Drain, aggregates: Aggregates,
                 counters: Callable[[], dict[int, ProbeCounters]], writer: Any = None):
        self._loader = loader
        self._drain = drain
        self._aggregates = aggregates
        self._counters = counters
        self.writer = writer  # `ktui record`'s RecordingWriter, or None
        self._error: KtuiError | None = None  # why the last recording stopped early

    @property
    def current(self) -> RecorderSink | None:
        return self._drain.recording

    @property
    def own(self) -> RecorderSink | None:
        """The sink of a writer given by the caller (`ktui record`): ended only by stop()."""
        return self.current if self.writer is not None else None

    @property
    def error(self) -> KtuiError | None:
        sink = self.current
        return sink.error if sink is not None and sink.error is not None else self._error

    @property
    def path(self) -> str | None:
        sink = self.current
        return sink.path if sink is not None and sink.error is None else None

    def begin_own(self) -> None:
        """`ktui record`: its writer becomes a sink as tracing starts."""
        if self.writer is not None and self.current is None:
            sink = RecorderSink(self.writer, str(self.writer.path), self._counters)
            sink.start()
            self._drain.recording = sink

    def start(self, path: str, running: bool, flight: FlightSettings | None = None) -> None:
        """Record the running probes' events from now on into a new file (0600, refused if it exists)."""
        from ktui.kernel import kernel_identity
        from ktui.recording.flight import create_recorder, flight_of

        loader = self._loader
        with loader.lock:
            if self.current is not None:
                raise UsageError(f"already recording to {self.current.path}.")
            if not running:
                raise UsageError("tracing is not running: there is nothing to record.")
            ids = [gid for gid, s in list(loader.states.items()) if s.status != "failed" and gid in loader.compiled]
            layouts = [loader.layouts[gid] for gid in ids]
            models = {gid: loader.compiled[gid].probe.to_dict() for gid in ids}
            specs = [lay.spec for lay in layouts]
            # A probe that failed to attach is in the file too, with no events: its counters row and
            # its state (failed, and why) then have a name, as in the app.
            given = dict(zip(loader.probe_ids, loader.probes))
            for gid, state in list(loader.states.items()):
                if state.status == "failed" and gid not in ids and gid not in loader.removed and gid in given:
                    layouts.append(loader.layouts.get(gid) or ProbeLayout(gid, state.name, state.spec))
                    models[gid] = given[gid].to_dict()
        meta = {"argv": [], "specs": specs, "target_pid": loader.target_pid,
                "notes": list(loader.notes), "recorded_from": "app"}
        # With a flight recorder, only the windows around its triggers (ktui/recording/flight.py).
        writer = create_recorder(path, kernel_identity(), layouts, models, meta, flight)
        recorder = flight_of(writer)
        if recorder is not None:  # its windows complete on its own thread, never on the caller's (the app's screen)
            recorder.poll_in_background()
        with self._drain.take_lock:  # between two batches: nothing is delivered or tallied meanwhile
            counters, aggregates = self._settled()
            sink = RecorderSink(writer, path, self._counters, baseline=counters, aggregates=aggregates,
                                owns_writer=True)
            sink.start()
            self._error = None
            self._drain.recording = sink

    def _settled(self) -> tuple[dict[int, ProbeCounters], AggregateBaseline]:
        """The session's counters and aggregates as of now, read so that they agree (called under
        ``Drain.take_lock``): what a recording subtracts as it starts, and what it ends with."""
        settled: dict[int, ProbeCounters] = {}

        def hits(gid: int) -> object:
            c = self._counters().get(gid)
            if c is None:
                return None
            settled[gid] = c  # the counters of the probe's last map read
            return tuple(c.hits)

        hists, stacks, map_counts = self._aggregates.read_settled(hits, BASELINE_TRIES, SETTLE_S)
        counters = self._counters()
        counters.update(settled)
        return counters, AggregateBaseline(stacks, hists, key_counts(self._loader, counters, map_counts))

    def stop(self, snapshot: Callable[[], Update]) -> str:
        """Finish the recording (its counters, stacks, histograms); one sentence on what was written."""
        sink = self.current
        if sink is None:
            if self._error is not None:
                err, self._error = self._error, None
                return str(err)
            raise UsageError("no recording is running.")
        if sink is self.own:
            self.end(sink, snapshot())
        else:
            with self._drain.take_lock:  # the last batch recorded is the last one counted
                counters, now = self._settled()
                update = replace(snapshot(), counters=counters, stacks=now.stacks, histograms=now.histograms,
                                 counts=now.counts)
                if self.current is sink:
                    self._drain.recording = None
            self.end(sink, update)
        failed, self._error = self._error, None
        if failed is not None:
            return f"{failed} {sink.events_written:,} events were written to {sink.path}."
        return f"{sink.events_written:,} events recorded to {sink.path}"

    def published(self, update: Update) -> None:
        """After each update: the end (its snapshots; the events went one by one), or a recording from
        the app that failed: finished now, so the file holds what was written and is readable."""
        sink = self.current
        if sink is not None and (update.finished or (sink.error is not None and sink is not self.own)):
            self.end(sink, update)

    def end(self, sink: RecorderSink, update: Update) -> None:
        if self.current is sink and sink is not self.own:
            self._drain.recording = None  # the drain hands it nothing more
        sink.finish(update, self._aggregates.record_stack_ids)
        if sink.error is not None:
            self._error = sink.error

    def probe_added(self, gid: int) -> None:
        sink = self.current
        if sink is not None:
            sink.probe(self._loader.layouts[gid], self._loader.compiled[gid].probe.to_dict())
