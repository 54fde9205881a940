"""LiveSource: the live EventSource, assembled from the engine's parts (``ktui/engine/``).

Each part has one job and its own lock discipline (see each module):
- ``loader.py``      compiling, loading, attaching; the probe ids; on/off and removal;
- ``drain.py``       the rings read into numpy, delivered counts, the recorder fed;
- ``aggregates.py``  stacks, histograms and keyed counts from the maps, symbolized;
- ``accounting.py``  the counters: hits = delivered + dropped + filtered;
- ``outbox.py``      updates handed to a slow consumer, merged, never queued without bound;
- ``recording.py``   the recorder sink attached and detached (events.Recordable).

Threads, each with one job, so a slow consumer never stalls the drain:
- the drain thread empties the rings and, at most ``update_hz`` times a second, reads the
  counters and builds an Update;
- the post thread hands the newest Update to the sink (the outbox's loop);
- the aggregates thread reads stack and histogram maps and symbolizes, which can take long for
  big maps, off the drain's path;
- the recorder, when there is one, has its own thread and byte-budgeted queue; a recorder that
  fails or stalls is reported and detached, tracing goes on.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ktui.compiler.program import CompiledProgram
from ktui.engine import cleanup
from ktui.engine.accounting import key_counts, read_counters
from ktui.engine.aggregates import STACKS_EVERY_S, Aggregates
from ktui.engine.drain import Drain
from ktui.engine.launch import StoppedCommand
from ktui.engine.loader import Loader, default_ring_pages
from ktui.engine.outbox import Outbox
from ktui.engine.recording import Recordings
from ktui.engine.ringbuf import RingPoller
from ktui.errors import KtuiError, UsageError
from ktui.events import KeyCounts, ProbeCounters, ProbeLayout, ProbeState, Update
from ktui.kernel import process_alive
from ktui.probes.model import Probe, TargetProcess

if TYPE_CHECKING:
    from ktui.recording.flight import FlightRecorder, FlightSettings

__all__ = ["LiveSource", "default_ring_pages"]

BATCH_MIN, BATCH_PAUSE_S = 8192, 0.002  # a ring of RING_MIN_BYTES holds ~14k records: pausing 2 ms is safe


class LiveSource:
    """Live tracing behind ktui.events.EventSource, ProbeControl and Recordable."""

    live = True

    def __init__(self, probes: Iterable[Probe], catalog: Any = None, target: TargetProcess | None = None,
                 ring_pages: int | None = None, recorder: Any = None, *, window_events: int = 100_000,
                 update_hz: float = 30.0, program: CompiledProgram | None = None, trace_self: bool = False):
        self._loader = Loader(probes, catalog=catalog, ring_pages=ring_pages, trace_self=trace_self,
                              program=program)
        # The loader's own objects, shared (never rebound): what the protocols name.
        self.probes: list[Probe] = self._loader.probes
        self.probe_ids: list[int] = self._loader.probe_ids
        self.layouts: dict[int, ProbeLayout] = self._loader.layouts
        self.states: dict[int, ProbeState] = self._loader.states
        self.notes: list[str] = self._loader.notes
        self.trace_self = trace_self
        self.target = target
        self.recorder = recorder  # `ktui record`'s writer: may be set until start()
        self.window_events = window_events
        self.update_period = 1.0 / update_hz
        self.command: StoppedCommand | None = None
        self.finished = threading.Event()  # the drain has ended (stop, or the target exited)
        self._stop = threading.Event()
        self._aggregates = Aggregates(self._loader)
        self._drain = Drain(self._loader, self._aggregates, self._stop)
        self._outbox = Outbox(window_events)
        self._recordings = Recordings(self._loader, self._drain, self._aggregates, self.counters)
        self._threads: list[threading.Thread] = []
        self._poller: RingPoller | None = None
        self._t0 = 0.0
        self._prepared = False
        self._stopped = False
        self.last_update: Update | None = None

    @property
    def target_pid(self) -> int | None:
        return self._loader.target_pid

    @property
    def events_delivered(self) -> int:
        return self._drain.events_delivered

    @property
    def first_event_at(self) -> float | None:
        return self._drain.first_event_at

    def models(self) -> dict[int, dict[str, Any]]:
        """Each loaded probe's model as the recording format stores it, by id."""
        return {gid: cp.probe.to_dict() for gid, cp in self._loader.compiled.items()}

    # ------------------------------------------------------------------ setup

    def prepare(self) -> None:
        """Compile, load and attach; raises KtuiError when no probe at all could attach."""
        if self._prepared:
            return
        self._prepared = True
        from ktui.bccload import load_bcc
        from ktui.engine.ringbuf import check_memory_ordering
        from ktui.headers import ensure_headers

        check_memory_ordering()  # before any work: one sentence on a machine the reader is not correct on
        self._resolve_target()
        try:
            ensure_headers()
            load_bcc()
            self._loader.load_session()
        except BaseException:
            self._abandon_command()
            raise
        if not self._loader.attached():
            # a reason that starts with its probe's spec is not prefixed with it again
            reasons = "; ".join(s.reason if s.reason.startswith(s.spec) else f"{s.spec}: {s.reason}"
                                for s in self.states.values())
            self._loader.teardown()
            self._abandon_command()
            raise KtuiError(f"no probe could attach ({reasons})")
        cleanup.register(self)

    def _resolve_target(self) -> None:
        if self.target is None:
            return
        if self.target.pid is not None:
            if not process_alive(self.target.pid):
                raise UsageError(f"there is no process with pid {self.target.pid}.")
            self._loader.target_pid = self.target.pid
        elif self.target.command:
            self.command = StoppedCommand(list(self.target.command))
            self._loader.target_pid = self.command.pid
            if self.command.cgroup is not None:
                self._loader.target_cgroup = self.command.cgroup.id
            else:
                self._loader.notes.append(f"only the command's own process {self.command.pid} is traced, not the "
                                          f"processes it starts: {self.command.follow_error}")

    def _abandon_command(self) -> None:
        if self.command is not None and self.command.returncode is None:
            self.command.abandon()

    # ------------------------------------------------------------------ control

    def start(self, sink: Callable[[Update], None]) -> None:
        self.prepare()
        self._t0 = time.monotonic()
        self._poller = RingPoller()
        self._loader.watch(self._poller)
        # Long-lived objects (BCC's, the catalog's) out of the collector's way: a full
        # collection pausing the drain for milliseconds is a full ring at millions of events/s.
        gc.collect()
        gc.freeze()
        if self.command is not None:
            self.command.release()
        self._recordings.writer = self.recorder
        self._recordings.begin_own()  # `ktui record`: the recorder is the sink
        # Listed once started: a signal (Ctrl-C) arriving in between leaves stop() only started ones to join.
        for target, name in ((self._drain_loop, "ktui-drain"), (lambda: self._outbox.run(sink), "ktui-post"),
                             (self._aggregate_loop, "ktui-aggregates")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Detach everything, deliver what is left, finish the recorder's data. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        with self._loader.lock:
            self._loader.stopped = True  # a probe being added now is unloaded, not kept
        self._loader.quiesce()  # before the drain's last read: what it counts after this is nothing
        self._stop.set()
        for t in self._threads:
            if t.name in ("ktui-drain", "ktui-aggregates") and t is not threading.current_thread():
                t.join()
        self._outbox.close()
        for t in self._threads:
            if t is not threading.current_thread():  # stop() may be called from the sink
                t.join()
        recording = self._recordings.current
        if recording is not None and not self.finished.is_set():  # stopped before the drain ran (a signal
            self._recordings.end(recording, self._snapshot())      # during start): the file still gets its end
        self._loader.teardown()
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        cleanup.unregister(self)
        if self.command is not None and self.command.returncode is None:
            if self.command.released:
                self.command.poll()
            else:
                self.command.abandon()

    def enable_probe(self, probe_id: int, enabled: bool) -> None:
        self._loader.enable_probe(probe_id, enabled)

    def remove_probe(self, probe_id: int) -> None:
        """Switch the probe off and detach it; its events already delivered keep their layout."""
        self._loader.remove_probe(probe_id)

    def add_probe(self, probe: Probe) -> int:
        """Attach one more probe while the others run; returns its id (see Loader.add_probe)."""
        gid = self._loader.add_probe(probe)
        if self.states.get(gid) is not None and self.states[gid].status != "failed":
            self._recordings.probe_added(gid)
        return gid

    # ------------------------------------------------------------------ recording (events.Recordable)

    @property
    def recorder_error(self) -> KtuiError | None:
        return self._recordings.error

    @property
    def recording_path(self) -> str | None:
        return self._recordings.path

    @property
    def recording_flight(self) -> FlightRecorder | None:
        """The flight recorder of the recording from the app, when it was started with one."""
        from ktui.recording.flight import flight_of

        sink = self._recordings.current
        return flight_of(sink.writer) if sink is not None else None

    def start_recording(self, path: str, flight: FlightSettings | None = None) -> None:
        """Record the running probes' events from now on into a new file (0600, refused if it exists);
        with ``flight``, only the windows around its triggers (ktui/recording/flight.py)."""
        self._recordings.start(path, running=bool(self._threads) and not self._stopped, flight=flight)

    def stop_recording(self) -> str:
        """Finish the recording (its counters, stacks, histograms); one sentence on what was written."""
        return self._recordings.stop(self._snapshot)

    # ------------------------------------------------------------------ reading

    def counters(self) -> dict[int, ProbeCounters]:
        """Kernel counts with user-space delivered counts; read after draining (see counters.py)."""
        return read_counters(self._loader, self._drain.delivered, self._aggregates.in_flight)

    def key_counts(self, counters: dict[int, ProbeCounters] | None = None) -> list[KeyCounts]:
        """Every COUNT action's table (see accounting.key_counts)."""
        counters = self.counters() if counters is None else counters
        return key_counts(self._loader, counters, self._aggregates.map_counts)

    def symbolize(self, address: int, pid: int | None = None) -> str:
        return self._aggregates.symbolize(address, pid)

    def stack_frames(self, probe_id: int, stack_id: int, user: bool = False, pid: int | None = None) -> list[str]:
        return self._aggregates.event_frames(probe_id, stack_id, user, pid)

    def _snapshot(self, *, now: float | None = None, finished: bool = False, message: str = "") -> Update:
        counters = self.counters()
        return Update(counters=counters, probes=[_copy_state(s) for s in list(self.states.values())],
                      stacks=list(self._aggregates.stacks), histograms=list(self._aggregates.histograms),
                      counts=self.key_counts(counters), now_ns=time.monotonic_ns(),
                      elapsed_s=now - self._t0 if now is not None else 0.0, message=message, finished=finished)

    # ------------------------------------------------------------------ the threads

    def _drain_loop(self) -> None:
        next_update = time.monotonic()
        drain = self._drain
        try:
            while not self._stop.is_set():
                poller = self._poller
                got = drain.drain_once()
                if got == 0 and poller is not None:
                    # With no ring (aggregation only) there is nothing to wait for but the next update:
                    # waking 100 times a second would take CPU from the traced program for nothing.
                    poller.wait(0.01 if self._loader.has_rings() else max(next_update - time.monotonic(), 0.0))
                elif got < BATCH_MIN:
                    # Let records accumulate: the cost of a read is per batch, not per event,
                    # and a spinning reader would take the CPU from the traced program.
                    time.sleep(BATCH_PAUSE_S)
                now = time.monotonic()
                if now >= next_update:
                    self._publish(now)
                    next_update = now + self.update_period
                    if self._target_gone():
                        break
        finally:
            self._loader.quiesce()
            drain.drain_in_flight()
            message = ""
            if self.command is not None and self.command.returncode is not None:
                message = f"{os.path.basename(self.command.argv[0])} exited with status {self.command.returncode}"
            elif self.target_pid and not self._stop.is_set():
                message = f"process {self.target_pid} exited"
            try:
                self._aggregates.read(final=True)
            except Exception as err:  # the final update (and finished) must come whatever a map read does
                message = message or f"reading the in-kernel aggregates failed ({err})"
            self._publish(time.monotonic(), finished=True, message=message)
            self.finished.set()

    def _target_gone(self) -> bool:
        if self.command is not None:
            return self.command.poll() is not None
        if self.target_pid:
            return not process_alive(self.target_pid)
        return False

    def _publish(self, now: float, *, finished: bool = False, message: str = "") -> None:
        fresh = self._drain.take_fresh()
        error = self.recorder_error
        update = self._snapshot(now=now, finished=finished,
                                message=message or (str(error) if error is not None else ""))
        self.last_update = update
        self._recordings.published(update)
        self._outbox.post(update, fresh)

    def _aggregate_loop(self) -> None:
        while not self._stop.wait(STACKS_EVERY_S):
            try:
                self._aggregates.read()
            except Exception:  # a map read failing now is retried at the next round; tracing goes on
                pass


def _copy_state(s: ProbeState) -> ProbeState:
    return ProbeState(s.probe_id, s.name, s.spec, s.status, s.reason)
