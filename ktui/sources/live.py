"""LiveSource: the live EventSource. Compiles, loads, attaches, drains, accounts, publishes.

Threads, each with one job, so a slow consumer never stalls the drain:
- the drain thread empties the rings (mmap + numpy, ``ringbuf.py``) and, at most
  ``update_hz`` times a second, reads the counters and builds an Update;
- the post thread hands the newest Update to the sink; when the sink is slow,
  updates waiting for it are merged (events appended up to the window, snapshots
  replaced), never queued without bound, and the merging is done by this thread;
- the aggregates thread reads stack and histogram maps and symbolizes, which can
  take long for big maps, off the drain's path;
- the recorder, when there is one, is a sink of the same drained stream as the panes
  (``ktui/engine/recorder_sink.py``): its own thread and byte-budgeted queue; a recorder
  that fails or stalls is reported and detached, tracing goes on. ``ktui record`` gives
  one at construction; the app starts and stops one while tracing (events.Recordable).
"""

from __future__ import annotations

import ctypes as ct
import gc
import os
import threading
import time
from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np

from ktui.engine import cleanup
from ktui.engine.attach import AttachError, Attachment, attach_plan, detach
from ktui.engine.counters import DeliveredCounts, EntryCounters, KernelCounters, missed_returns, probe_counters
from ktui.engine.histograms import read_histogram
from ktui.engine.launch import StoppedCommand
from ktui.engine.recorder_sink import RecorderSink
from ktui.kernel import process_alive
from ktui.engine.ringbuf import PAGE, RingPoller, RingReader
from ktui.engine.stacks import UNKNOWN, KernelSymbols, StackReader, UserSymbols
from ktui.errors import KtuiError, UsageError
from ktui.events import Histogram, KeyCounts, ProbeCounters, ProbeLayout, ProbeState, StackTrace, Update
from ktui.kernel import possible_cpus

RING_BUDGET_BYTES = 64 << 20  # ring memory for a whole session, shared by its probes
RING_MIN_BYTES, RING_MAX_BYTES = 1 << 20, 16 << 20  # RSS counts a ring twice (mapped twice)
STACKS_EVERY_S = 0.5  # stack, histogram and count maps are read less often than counters
COUNT_ROWS_MAX = 500  # rows of a COUNT table handed on (the largest counts)
IN_FLIGHT_GRACE_S = 0.01  # after the switch-off, for program runs already past it (they take microseconds)
OUTBOX_MAX = 4  # updates waiting for a slow sink before they are merged (and trimmed to the window)
BATCH_MIN, BATCH_PAUSE_S = 8192, 0.002  # a ring of RING_MIN_BYTES holds ~14k records: pausing 2 ms is safe


@dataclass
class _Unit:
    """One loaded BPF object (the session's, or one more per probe added while running)."""
    bpf: object
    program: object  # ktui.compiler CompiledProgram
    global_ids: dict[int, int]  # the program's probe id -> the session's
    readers: list[tuple[int, RingReader]] = field(default_factory=list)  # (session id, reader)
    counters: KernelCounters | None = None
    entries: EntryCounters | None = None
    stacks: StackReader | None = None
    attachments: list[Attachment] = field(default_factory=list)
    by_probe: dict[int, list[Attachment]] = field(default_factory=dict)  # session id -> its attachments


class LiveSource:
    """Live tracing behind ktui.events.EventSource."""

    live = True

    def __init__(self, probes, catalog=None, target=None, ring_pages: int | None = None, recorder=None,
                 *, window_events: int = 100_000, update_hz: float = 30.0, program=None, trace_self: bool = False):
        self.probes = list(probes)
        # ktui's own system calls (opening files, bpf(), its threads waking) would flood a stream
        # of its own making: its process is excluded in the kernel unless asked.
        self.trace_self = trace_self
        # Ids are handed out here, never taken from list positions by callers: the probes given
        # now get 0..n-1 in order (known before start), each add_probe the next one, under _lock.
        self.probe_ids: list[int] = list(range(len(self.probes)))
        self._next_id = len(self.probes)
        self._removed: set[int] = set()
        self.catalog = catalog
        self.target = target
        self.ring_pages = ring_pages
        self.recorder = recorder
        self.window_events = window_events
        self.update_period = 1.0 / update_hz
        self.layouts: dict[int, ProbeLayout] = {}
        self.states: dict[int, ProbeState] = {}
        self.notes: list[str] = []
        self.target_pid: int | None = None
        self.command: StoppedCommand | None = None
        self._recording: RecorderSink | None = None  # the recorder sink, while one is attached
        self._recording_error: KtuiError | None = None  # why the last one stopped early
        self.finished = threading.Event()  # the drain has ended (stop, or the target exited)
        self._precompiled = program
        self._units: list[_Unit] = []
        self._compiled: dict[int, object] = {}  # session id -> CompiledProbe
        self._unit_of: dict[int, _Unit] = {}
        self._ncpu = possible_cpus()
        self._delivered = DeliveredCounts(self._ncpu)
        self._fresh: dict[int, list[np.ndarray]] = {}
        self._stack_counts: dict[int, dict[tuple, int]] = {}
        self._stack_ids: set[tuple[int, int]] = set()  # (kstack or -1, ustack or -1) seen in records, unit 0
        self._histograms: list[Histogram] = []
        self._map_counts: dict[tuple[int, str], KeyCounts] = {}  # (probe id, map) -> as last read (aggregates)
        self._in_flight: dict[int, int] = {}  # probe id -> entries waiting in its stash (calls running)
        self._counts_due = 0.0  # a big COUNT table is read less often (its read time x 10)
        self._stacks: list[StackTrace] = []
        self._ksyms: KernelSymbols | None = None
        self._usyms = UserSymbols()
        self._frames_cache: dict[tuple, tuple[str, ...]] = {}
        self._lock = threading.RLock()  # units and readers change under it (add_probe)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sink: Callable[[Update], None] | None = None
        self._outbox: list[tuple[Update, dict[int, list[np.ndarray]]]] = []  # not yet handed over, oldest first
        self._outbox_cv = threading.Condition()
        self._agg_lock = threading.Lock()
        self._poller: RingPoller | None = None
        self._t0 = 0.0
        self._prepared = False
        self._stopped = False
        self.events_delivered = 0
        self.first_event_at: float | None = None  # time.monotonic() of the first event read
        self.last_update: Update | None = None

    @classmethod
    def from_program(cls, program, **kwargs) -> LiveSource:
        """A source for an already compiled program (tests, or a caller that compiled itself)."""
        return cls([cp.probe for cp in program.probes], program=program, **kwargs)

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
            program = self._precompiled or self._compile(self.probes)
            if self.target_pid and not program.target_pid:
                program.target_pid = self.target_pid
            self._load_unit(program, {cp.probe_id: cp.probe_id for cp in program.probes})
        except BaseException:
            self._abandon_command()
            raise
        if not any(s.status in ("attached", "disabled") for s in self.states.values()):
            reasons = "; ".join(f"{s.spec}: {s.reason}" for s in self.states.values())
            self._teardown()
            self._abandon_command()
            raise KtuiError(f"no probe could attach ({reasons})")
        cleanup.register(self)

    def _resolve_target(self) -> None:
        if self.target is None:
            return
        if self.target.pid is not None:
            if not process_alive(self.target.pid):
                raise UsageError(f"there is no process with pid {self.target.pid}.")
            self.target_pid = self.target.pid
        elif self.target.command:
            self.command = StoppedCommand(list(self.target.command))
            self.target_pid = self.command.pid

    def _abandon_command(self) -> None:
        if self.command is not None and self.command.returncode is None:
            self.command.abandon()

    def _compile(self, probes):
        try:
            from ktui.compiler import compile_session
        except ImportError as err:
            raise KtuiError(f"the probe compiler is not available ({err}).") from None
        pages = self.ring_pages or default_ring_pages(len(probes))
        return compile_session(probes, catalog=self.catalog, target_pid=self.target_pid, ring_pages=pages)

    def _load_unit(self, program, global_ids: dict[int, int]) -> _Unit:
        from ktui.bccload import load_bcc

        from ktui.compiler.verify import bpf_class

        load_bcc()
        try:
            # BCC's auto-attach off: fentry programs are named kfunc__<fn>, which plain BPF would attach
            bpf = bpf_class()(text=program.c_text.encode())
        except Exception as err:  # BCC: "Failed to compile BPF module" / verifier text on stderr
            raise KtuiError("the generated BPF program did not compile or load; `ktui compile` shows it "
                            f"({str(err).splitlines()[0] if str(err) else type(err).__name__}).",
                            detail=str(err)) from None
        unit = _Unit(bpf, program, global_ids)
        try:
            self._configure(unit)
            for cp in program.probes:
                gid = global_ids[cp.probe_id]
                self._compiled[gid] = cp
                self._unit_of[gid] = unit
                layout = ProbeLayout(gid, cp.layout.name, cp.layout.spec, cp.layout.fields) \
                    if gid != cp.probe_id else cp.layout
                self.layouts[gid] = layout
                self.states[gid] = self._attach_one(unit, cp, gid)
                self.notes.extend(cp.notes)
                if cp.ring and self.states[gid].status != "failed":
                    table = bpf.get_table(cp.ring.encode())
                    unit.readers.append((gid, RingReader(table.map_fd, int(table.max_entries), cp.layout.dtype)))
        except BaseException:
            detach(unit.attachments)
            bpf.cleanup()
            raise
        with self._lock:
            if self._stopped:  # stop() ran while this unit was attaching: it must not outlive the source
                detach(unit.attachments)
                for _, reader in unit.readers:
                    reader.close()
                bpf.cleanup()
                raise UsageError("tracing has stopped: the probe was not added.")
            self._units.append(unit)
            if self._poller is not None:
                for _, reader in unit.readers:
                    self._poller.add(reader.fd)
        return unit

    def _configure(self, unit: _Unit) -> None:
        bpf = unit.bpf
        unit.counters = KernelCounters(bpf)
        if getattr(unit.program, "uses_stacks", False) or _has_table(bpf, "ktui_stacks"):
            unit.stacks = StackReader(bpf)
        if _has_table(bpf, "ktui_entries"):
            unit.entries = EntryCounters(bpf)
        if _has_table(bpf, "ktui_config"):
            from ktui.compiler.control import set_exclude, set_target

            if self.target_pid:
                set_target(bpf, self.target_pid)
            if not self.trace_self:
                set_exclude(bpf, os.getpid())

    def _attach_one(self, unit: _Unit, cp, gid: int) -> ProbeState:
        spec = cp.layout.spec or cp.probe.spec
        if cp.error:
            return ProbeState(gid, cp.layout.name, spec, "failed", cp.error)
        attached: list[Attachment] = []
        try:
            for plan in cp.attach_plans:
                attached += attach_plan(unit.bpf, plan)
        except AttachError as err:
            detach(attached)  # an entry helper attached before its return probe failed
            return ProbeState(gid, cp.layout.name, spec, "failed", str(err))
        unit.attachments += attached
        unit.by_probe[gid] = attached
        enabled = bool(getattr(cp.probe, "enabled", True))
        self._write_enabled(unit, cp.probe_id, enabled)
        return ProbeState(gid, cp.layout.name, spec, "attached" if enabled else "disabled")

    @staticmethod
    def _write_enabled(unit: _Unit, local_id: int, enabled: bool) -> None:
        if _has_table(unit.bpf, "ktui_config"):
            from ktui.compiler.control import set_enabled

            set_enabled(unit.bpf, local_id, enabled)

    # ------------------------------------------------------------------ control

    def start(self, sink: Callable[[Update], None]) -> None:
        self.prepare()
        self._sink = sink
        self._t0 = time.monotonic()
        with self._lock:
            self._poller = RingPoller([r.fd for u in self._units for _, r in u.readers])
        # Long-lived objects (BCC's, the catalog's) out of the collector's way: a full
        # collection pausing the drain for milliseconds is a full ring at millions of events/s.
        gc.collect()
        gc.freeze()
        _trim_heap()
        if self.command is not None:
            self.command.release()
        if self.recorder is not None and self._recording is None:  # `ktui record`: the recorder is the sink
            self._recording = RecorderSink(self.recorder, str(self.recorder.path), self.counters)
            self._recording.start()
        # Listed once started: a signal (Ctrl-C) arriving in between leaves stop() only started ones to join.
        for target, name in ((self._drain_loop, "ktui-drain"), (self._post_loop, "ktui-post"),
                             (self._aggregate_loop, "ktui-aggregates")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Detach everything, deliver what is left, finish the recorder's data. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._quiesce()  # before the drain's last read: what it counts after this is nothing
        self._stop.set()
        for t in self._threads:
            if t.name in ("ktui-drain", "ktui-aggregates") and t is not threading.current_thread():
                t.join()
        with self._outbox_cv:
            self._outbox_cv.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():  # stop() may be called from the sink
                t.join()
        recording = self._recording
        if recording is not None and not self.finished.is_set():  # stopped before the drain ran (a signal
            self._end_recording(recording, self._snapshot())   # during start): the file still gets its end
        self._teardown()
        cleanup.unregister(self)
        if self.command is not None and self.command.returncode is None:
            if self.command.released:
                self.command.poll()
            else:
                self.command.abandon()

    def _teardown(self) -> None:
        with self._lock:
            for unit in self._units:
                detach(unit.attachments)
                for _, reader in unit.readers:
                    reader.close()
                unit.bpf.cleanup()
            self._units = []
            if self._poller is not None:
                self._poller.close()
                self._poller = None

    def _loaded(self, probe_id: int) -> tuple[_Unit, int, ProbeState]:
        """The unit, program-local id and state of a loaded probe (UsageError for an unknown,
        failed or removed id)."""
        state = self.states.get(probe_id)
        unit = self._unit_of.get(probe_id)
        if state is None or unit is None or state.status == "failed" or probe_id in self._removed:
            raise UsageError(f"probe {probe_id} is not attached.")
        local = next(k for k, v in unit.global_ids.items() if v == probe_id)
        return unit, local, state

    def enable_probe(self, probe_id: int, enabled: bool) -> None:
        with self._lock:
            unit, local, state = self._loaded(probe_id)
            self._write_enabled(unit, local, enabled)
            state.status = "attached" if enabled else "disabled"

    def remove_probe(self, probe_id: int) -> None:
        """Switch the probe off and detach it; its events already delivered keep their layout."""
        with self._lock:
            if probe_id in self.states and self.states[probe_id].status == "failed":
                del self.states[probe_id]
                self._removed.add(probe_id)
                return
            unit, local, _ = self._loaded(probe_id)
            self._write_enabled(unit, local, False)
            attached = unit.by_probe.pop(probe_id, [])
            unit.attachments[:] = [a for a in unit.attachments if a not in attached]
            detach(attached)
            # The ring stays mapped until teardown (the drain may be reading it right now); it
            # just leaves the list the drain walks.
            unit.readers[:] = [(gid, r) for gid, r in unit.readers if gid != probe_id]
            self._removed.add(probe_id)
            del self.states[probe_id]
            if probe_id in self.probe_ids:
                self.probe_ids.remove(probe_id)

    def add_probe(self, probe) -> int:
        """Attach one more probe while the others run (a BPF object of its own); returns its id.

        The id is taken under the lock before the (second-long) compile, so concurrent calls get
        distinct ids; a probe that cannot be compiled or loaded keeps its id with state "failed"
        and the reason (the next update carries it), so no later id shifts."""
        with self._lock:
            if self._stopped:
                raise UsageError("tracing has stopped: the probe was not added.")
            gid = self._next_id
            self._next_id += 1
            self.probe_ids.append(gid)
            self.states[gid] = ProbeState(gid, probe.name, probe.spec, "pending")
        try:
            program = self._compile([probe])
            if self.target_pid and not program.target_pid:
                program.target_pid = self.target_pid
            self._load_unit(program, {program.probes[0].probe_id: gid})
        except Exception as err:
            reason = str(err) if isinstance(err, KtuiError) else f"the probe could not be loaded ({err})"
            with self._lock:
                if gid in self.states:
                    self.states[gid] = ProbeState(gid, probe.name, probe.spec, "failed", reason)
            return gid
        self.probes.append(program.probes[0].probe)
        recording = self._recording
        if recording is not None:
            recording.probe(self.layouts[gid], self._compiled[gid].probe.to_dict())
        return gid

    # ------------------------------------------------------------------ recording (events.Recordable)

    @property
    def _own(self) -> RecorderSink | None:
        """The sink of a recorder given by the caller (`ktui record`): ended only by stop()."""
        return self._recording if self.recorder is not None else None

    @property
    def recorder_error(self) -> KtuiError | None:
        recording = self._recording
        return recording.error if recording is not None and recording.error is not None else self._recording_error

    @property
    def recording_path(self) -> str | None:
        recording = self._recording
        return recording.path if recording is not None and recording.error is None else None

    def start_recording(self, path: str) -> None:
        """Record the running probes' events from now on into a new file (0600, refused if it exists)."""
        from ktui.kernel import kernel_identity
        from ktui.recording import RecordingWriter

        with self._lock:
            if self._recording is not None:
                raise UsageError(f"already recording to {self._recording.path}.")
            if not self._threads or self._stopped:
                raise UsageError("tracing is not running: there is nothing to record.")
            ids = [gid for gid, s in list(self.states.items()) if s.status != "failed" and gid in self._compiled]
            layouts = [self.layouts[gid] for gid in ids]
            models = {gid: self._compiled[gid].probe.to_dict() for gid in ids}
        meta = {"argv": [], "specs": [lay.spec for lay in layouts], "target_pid": self.target_pid,
                "notes": list(self.notes), "recorded_from": "app"}
        writer = RecordingWriter.create(path, kernel_identity(), layouts, models, meta)
        # Counters in the file count from here: the session's so far are the baseline.
        recording = RecorderSink(writer, path, self.counters, baseline=self.counters(), owns_writer=True)
        recording.start()
        self._recording_error = None
        self._recording = recording

    def stop_recording(self) -> str:
        """Finish the recording (its counters, stacks, histograms); one sentence on what was written."""
        recording = self._recording
        if recording is None:
            if self._recording_error is not None:
                err, self._recording_error = self._recording_error, None
                return str(err)
            raise UsageError("no recording is running.")
        self._end_recording(recording, self._snapshot())
        err, self._recording_error = self._recording_error, None
        if err is not None:
            return f"{err} {recording.events_written:,} events were written to {recording.path}."
        return f"{recording.events_written:,} events recorded to {recording.path}"

    def _end_recording(self, recording: RecorderSink, update: Update) -> None:
        if self._recording is recording and recording is not self._own:
            self._recording = None  # the drain hands it nothing more
        recording.finish(update, self._record_stack_ids)
        if recording.error is not None:
            self._recording_error = recording.error

    def _snapshot(self) -> Update:
        counters = self.counters()
        return Update(counters=counters, probes=[_copy_state(s) for s in list(self.states.values())],
                      stacks=list(self._stacks), histograms=list(self._histograms),
                      counts=self.key_counts(counters), now_ns=time.monotonic_ns())

    # ------------------------------------------------------------------ reading

    def counters(self) -> dict[int, ProbeCounters]:
        """Kernel counts with user-space delivered counts; read after draining (see counters.py)."""
        out = {}
        with self._lock:
            for unit in self._units:
                if unit.counters is None:
                    continue
                rows = unit.counters.read(unit.global_ids.keys())
                for local, gid in unit.global_ids.items():
                    if gid in self._removed:
                        continue
                    cp = self._compiled[gid]
                    has_ring = bool(cp.ring)
                    missed = 0
                    if unit.entries is not None and "entries" in cp.maps:
                        calls, returns = unit.entries.calls_and_returns(local)
                        missed = missed_returns(calls, returns, self._in_flight.get(gid, 0))
                    out[gid] = probe_counters(rows[local], self._delivered.get(gid) if has_ring else None, missed)
        return out

    def key_counts(self, counters: dict[int, ProbeCounters] | None = None) -> list[KeyCounts]:
        """Every COUNT action's table: by nothing or by cpu from the counters (hits - filtered
        per CPU), keyed ones as last read from their maps (every STACKS_EVERY_S or slower)."""
        counters = self.counters() if counters is None else counters
        out = []
        for gid, cp in sorted(self._compiled.items()):
            c = counters.get(gid) if gid not in self._removed else None
            if c is None:
                continue
            for spec in getattr(cp, "counts", ()):
                if spec["map"] is not None:
                    read = self._map_counts.get((gid, spec["map"]))
                    out.append(read if read is not None else KeyCounts(gid, tuple(spec["key"]), []))
                    continue
                per_cpu = [h - f for h, f in zip(c.hits, c.filtered)]
                if spec["key"] == ("cpu",):
                    rows = sorted((((cpu,), n) for cpu, n in enumerate(per_cpu) if n > 0), key=lambda r: -r[1])
                else:
                    rows = [((), sum(per_cpu))]
                out.append(KeyCounts(gid, tuple(spec["key"]), rows))
        return out

    def symbolize(self, address: int, pid: int | None = None) -> str:
        if pid:
            return self._usyms.lookup(pid, address)
        return self._kernel_symbols().lookup(address)

    def _kernel_symbols(self) -> KernelSymbols:
        if self._ksyms is None:
            self._ksyms = KernelSymbols()
        return self._ksyms

    # ------------------------------------------------------------------ the drain

    def _drain_once(self) -> int:
        total = 0
        with self._lock:
            units = list(self._units)
        for unit in units:
            for gid, reader in unit.readers:
                recs = reader.read()
                if not len(recs):
                    continue
                if gid != int(recs["probe"][0]):
                    recs["probe"] = gid
                total += len(recs)
                self._take(gid, recs, unit)
        if total:
            self.events_delivered += total
            if self.first_event_at is None:
                self.first_event_at = time.monotonic()
        return total

    def _take(self, gid: int, recs: np.ndarray, unit: _Unit) -> None:
        self._delivered.add(gid, recs)
        fresh = self._fresh.setdefault(gid, [])
        fresh.append(recs)
        if unit.stacks is not None:
            self._count_stacks(gid, recs, unit is self._units[0])
        recording = self._recording
        if recording is not None:
            recording.events(gid, recs, self._stop)

    def _count_stacks(self, gid: int, recs: np.ndarray, first_unit: bool) -> None:
        k, u = recs["kstack"], recs["ustack"]
        has = (k >= 0) | (u >= 0)
        if not has.any():
            return
        keys = np.stack([k[has].astype(np.int64), u[has].astype(np.int64),
                         np.where(u[has] >= 0, recs["pid"][has], 0).astype(np.int64)], axis=1)
        uniq, counts = np.unique(keys, axis=0, return_counts=True)
        with self._lock:
            table = self._stack_counts.setdefault(gid, {})
            for (ks, us, pid), c in zip(uniq.tolist(), counts.tolist()):
                table[(ks, us, pid)] = table.get((ks, us, pid), 0) + c
                if first_unit:
                    self._stack_ids.add((ks, us))
        for (_ks, us, pid) in uniq.tolist():
            if us >= 0:
                self._usyms.remember(pid)  # while the process still lives

    def _drain_loop(self) -> None:
        next_update = time.monotonic()
        try:
            while not self._stop.is_set():
                poller = self._poller
                got = self._drain_once()
                if got == 0 and poller is not None:
                    # With no ring (aggregation only) there is nothing to wait for but the next update:
                    # waking 100 times a second would take CPU from the traced program for nothing.
                    poller.wait(0.01 if self._has_rings() else max(next_update - time.monotonic(), 0.0))
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
            self._quiesce()
            self._drain_in_flight()
            message = ""
            if self.command is not None and self.command.returncode is not None:
                message = f"{os.path.basename(self.command.argv[0])} exited with status {self.command.returncode}"
            elif self.target_pid and not self._stop.is_set():
                message = f"process {self.target_pid} exited"
            try:
                self._read_aggregates(final=True)
            except Exception as err:  # the final update (and finished) must come whatever a map read does
                message = message or f"reading the in-kernel aggregates failed ({err})"
            self._publish(time.monotonic(), finished=True, message=message)
            self.finished.set()

    def _quiesce(self) -> None:
        """Switch every probe off in the kernel (the control value) without detaching anything.
        A program checks the switch before it counts a hit, so from here on the counters only
        move for runs already past the check, and ktui's own teardown (bpf() calls, closing fds,
        a command exiting) is never counted: hits = delivered + dropped + filtered at stop."""
        with self._lock:
            units = list(self._units)
        for unit in units:
            for local in unit.global_ids:
                try:
                    self._write_enabled(unit, local, False)
                except (IndexError, OSError, KeyError):  # a program without that slot: nothing runs it
                    pass

    def _drain_in_flight(self) -> None:
        """Runs already past the switch finish within microseconds: let them, then read every ring
        until it is empty, so their events are delivered before the last counters are read."""
        time.sleep(IN_FLIGHT_GRACE_S)
        for _ in range(100):
            if self._drain_once() == 0 and not any(r.pending_bytes() for u in self._units for _, r in u.readers):
                return

    def _has_rings(self) -> bool:
        return any(u.readers for u in self._units)

    def _target_gone(self) -> bool:
        if self.command is not None:
            return self.command.poll() is not None
        if self.target_pid:
            return not process_alive(self.target_pid)
        return False

    def _publish(self, now: float, *, finished: bool = False, message: str = "") -> None:
        fresh, self._fresh = self._fresh, {}
        counters = self.counters()
        counts = self.key_counts(counters)
        if self.recorder_error is not None and not message:
            message = str(self.recorder_error)
        update = Update(counters=counters, probes=[_copy_state(s) for s in list(self.states.values())],
                        stacks=list(self._stacks), histograms=list(self._histograms), counts=counts,
                        now_ns=time.monotonic_ns(), elapsed_s=now - self._t0, message=message, finished=finished)
        self.last_update = update
        recording = self._recording
        if recording is not None and (finished or (recording.error is not None and recording is not self._own)):
            # The end (its snapshots; the events went one by one), or a recording from the app that
            # failed: finished now, so the file holds what was written and is readable.
            self._end_recording(recording, update)
        self._post(update, fresh)

    def _aggregate_loop(self) -> None:
        while not self._stop.wait(STACKS_EVERY_S):
            try:
                self._read_aggregates()
            except Exception:  # a map read failing now is retried at the next round; tracing goes on
                pass

    def _read_aggregates(self, final: bool = False) -> None:
        with self._agg_lock:
            self._read_aggregates_locked(final)

    def _read_aggregates_locked(self, final: bool = False) -> None:
        hists, stacks, counts = [], [], {}
        read_counts = final or time.monotonic() >= self._counts_due
        t0 = time.monotonic()
        with self._lock:
            units = list(self._units)
        for unit in units:
            for _local, gid in unit.global_ids.items():
                cp = self._compiled[gid]
                state = self.states.get(gid)
                if state is None or state.status == "failed":
                    continue
                hist_map = cp.maps.get("hist")
                if hist_map:
                    try:
                        hists.append(read_histogram(unit.bpf, hist_map, gid, cp.hist))
                    except (KeyError, OSError):
                        pass
                stack_map = cp.maps.get("stacks") or cp.maps.get("stackcount")
                if stack_map and unit.stacks is not None:
                    stacks.extend(self._read_stack_counts(unit, stack_map, gid))
                stash = cp.maps.get("start")
                if stash and "entries" in cp.maps:
                    try:
                        self._in_flight[gid] = _map_len(unit.bpf.get_table(stash.encode()))
                    except (KeyError, OSError):
                        pass
                if read_counts:
                    for spec in getattr(cp, "counts", ()):
                        if spec["map"] is not None:
                            try:
                                counts[(gid, spec["map"])] = read_key_counts(unit.bpf, spec["map"], gid,
                                                                             tuple(spec["key"]))
                            except (KeyError, OSError):
                                pass
        with self._lock:
            counted = {gid: dict(table) for gid, table in self._stack_counts.items()}
        for gid, table in counted.items():
            unit = self._unit_of[gid]
            for (ks, us, pid), count in table.items():
                stacks.append(StackTrace(gid, self._frames(unit, ks, None), self._frames(unit, us, pid), count))
        self._histograms, self._stacks = hists, _merge_stacks(stacks)
        if read_counts:
            self._map_counts = counts
            self._counts_due = time.monotonic() + max(0.0, 10 * (time.monotonic() - t0) - STACKS_EVERY_S)

    def _read_stack_counts(self, unit: _Unit, map_name: str, gid: int) -> list[StackTrace]:
        out = []
        try:
            items = unit.bpf.get_table(map_name.encode()).items()
        except (KeyError, OSError):
            return out
        for key, value in items:
            ks = _field(key, ("k", "kstack"), -1)  # struct ktui_stackkey { s32 k; s32 u; u32 pid; }
            us = _field(key, ("u", "ustack"), -1)
            pid = _field(key, ("pid", "tgid"), 0)
            count = sum(int(getattr(v, "value", v)) for v in value) if isinstance(value, list) \
                else int(getattr(value, "value", value))
            if us >= 0 and pid:
                self._usyms.remember(pid)
            out.append(StackTrace(gid, self._frames(unit, ks, None), self._frames(unit, us, pid), count))
        return out

    def _frames(self, unit: _Unit, stack_id: int, pid: int | None) -> tuple[str, ...]:
        if stack_id is None or stack_id < 0 or unit.stacks is None:
            return ()
        key = (id(unit), stack_id, pid)
        cached = self._frames_cache.get(key)
        if cached is not None:
            return cached
        addrs = unit.stacks.addresses(stack_id)
        if pid is None:
            frames = tuple(self._kernel_symbols().lookup_many(addrs))
        else:
            frames = tuple(self._usyms.lookup(pid, a) for a in addrs)
        if addrs:
            self._frames_cache[key] = frames
        return frames or (UNKNOWN,)

    # ------------------------------------------------------------------ handoffs

    def _post(self, update: Update, fresh: dict[int, list[np.ndarray]]) -> None:
        """Leave the update, with the event arrays read since the last one, for the post thread.
        When the sink is slow, what waits is merged (Update.merge, newest window_events per probe)."""
        with self._outbox_cv:
            self._outbox.append((update, fresh))
            if len(self._outbox) > OUTBOX_MAX:
                self._outbox = [(Update.merge(self._as_updates(self._outbox), window=self.window_events), {})]
            self._outbox_cv.notify()

    @staticmethod
    def _as_updates(pending: list[tuple[Update, dict[int, list[np.ndarray]]]]) -> list[Update]:
        """Each read's events as an update of its own, then the snapshot they came with, in order."""
        out: list[Update] = []
        for update, fresh in pending:
            out.extend(Update(events={gid: arr}) for gid, parts in fresh.items() for arr in parts)
            out.append(update)
        return out

    def _post_loop(self) -> None:
        while True:
            with self._outbox_cv:
                while not self._outbox and not (self._stop.is_set() and self.finished.is_set()):
                    self._outbox_cv.wait(0.1)
                pending, self._outbox = self._outbox, []
            if not pending:
                return
            update = Update.merge(self._as_updates(pending), window=self.window_events)
            if self._sink is not None:
                try:
                    self._sink(update)
                except Exception:  # a failing sink must not stop tracing; the app reports its own errors
                    pass
            if update.finished:
                return

    def _record_stack_ids(self, rec) -> None:
        """The addresses behind the stack ids events carry, with their symbols, for replay."""
        if not self._stack_ids or not self._units or self._units[0].stacks is None:
            return
        unit = self._units[0]
        kernel, user, ksyms, usyms = {}, {}, {}, {}
        pids_of: dict[int, int] = {}
        for table in self._stack_counts.values():
            for _ks, us, pid in table:
                if us >= 0:
                    pids_of[us] = pid
        for ks, us in self._stack_ids:
            if ks >= 0 and ks not in kernel:
                kernel[ks] = unit.stacks.addresses(ks)
                for a, name in zip(kernel[ks], self._kernel_symbols().lookup_many(kernel[ks])):
                    ksyms[a] = name
            if us >= 0 and us not in user:
                user[us] = unit.stacks.addresses(us)
                pid = pids_of.get(us, 0)
                for a in user[us]:
                    usyms[(pid, a)] = self._usyms.lookup(pid, a)
        rec.add_stack_ids(kernel, user)
        rec.add_symbols(ksyms, usyms)


def default_ring_pages(n_probes: int) -> int:
    """Pages per ring: big rings ride out a drain thread's scheduling hiccups at millions of events/s
    (1 MiB lasts 4 ms at 3.9 M/s here; a busy 2-core machine can stall a thread for 90 ms),
    within a session-wide budget."""
    per_ring = RING_BUDGET_BYTES // max(n_probes, 1)
    size = 1 << max(per_ring, 1).bit_length() - 1
    size = min(max(size, RING_MIN_BYTES), RING_MAX_BYTES)
    return max(size // PAGE, 1)


def _trim_heap() -> None:
    """Give back the heap clang used to compile the program (about 30 MB here)."""
    try:
        ct.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _plain(value):
    """A key member as a Python value: bytes (comm, strings) as text, numbers as int."""
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("utf-8", "replace")
    if hasattr(value, "value"):
        return _plain(value.value)
    return int(value) if not isinstance(value, (str, float)) else value


def read_key_counts(bpf, map_name: str, probe_id: int, key_names: tuple[str, ...]) -> KeyCounts:
    """A COUNT map (per-CPU hash, struct key of the key names in order) as rows, largest first, capped."""
    table = bpf.get_table(map_name.encode())
    rows = []
    for key, value in table.items():
        n = _total(value)
        fields = [name for name, *_ in getattr(key, "_fields_", ()) if not name.startswith("__pad")]
        values = tuple(_plain(getattr(key, f)) for f in fields) if fields else (_plain(key),)
        rows.append((values, n))
    rows.sort(key=lambda r: -r[1])
    return KeyCounts(probe_id, key_names, rows[:COUNT_ROWS_MAX])


def _total(value) -> int:
    """A per-CPU u64 value summed, however BCC hands it over (raw bytes, a list, a ctypes array)."""
    if isinstance(value, (bytes, bytearray)):
        return int(np.frombuffer(bytes(value[: len(value) // 8 * 8]), "<u8").sum())
    if hasattr(value, "value"):
        return int(value.value)
    try:
        return sum(int(getattr(v, "value", v)) for v in value)
    except TypeError:
        return int(value)


def _map_len(table) -> int:
    n = 0
    for _ in table.keys():
        n += 1
    return n


def _has_table(bpf, name: str) -> bool:
    try:
        bpf[name.encode()]
        return True
    except KeyError:
        return False


def _field(key, names, default):
    for name in names:
        if hasattr(key, name):
            return int(getattr(key, name))
    return default


def _copy_state(s: ProbeState) -> ProbeState:
    return ProbeState(s.probe_id, s.name, s.spec, s.status, s.reason)


def _merge_stacks(stacks: list[StackTrace]) -> list[StackTrace]:
    merged: dict[tuple, StackTrace] = {}
    for s in stacks:
        key = (s.probe_id, s.kernel, s.user)
        if key in merged:
            merged[key].count += s.count
        else:
            merged[key] = StackTrace(s.probe_id, s.kernel, s.user, s.count)
    return sorted(merged.values(), key=lambda s: -s.count)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
