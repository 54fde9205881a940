"""HostsSource: several hosts' engines, over ssh, as one live EventSource on the local clock.

Each host's probes get ids from this source when their layouts arrive (the order hosts
answer in), and their names carry the host (``b:tracepoint:...``): the stream's probe
column and every pane show which host an event came from. Timestamps are moved onto the
local CLOCK_MONOTONIC with the host's estimated offset (``clock.py``) as they arrive;
counters and probe states are each host's own. A host that fails to start or drops off is
marked (its probes "failed" with the reason, and the status line names it) and the others
go on. With ``record_dir``, each host's events are also written, on the host's own clock,
to a recording of their own (its identity and clock offset in the file's metadata).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ktui.errors import KtuiError, UsageError
from ktui.events import Histogram, KeyCounts, ProbeCounters, ProbeLayout, ProbeState, StackTrace, Update
from ktui.remote import protocol as P
from ktui.remote.hosts import HostLink, LinkEvents
from ktui.units import short_hosts

if TYPE_CHECKING:
    from ktui.recording import RecordingWriter

READY_WAIT_S = 120.0  # for every host's engine to compile and attach (BCC takes seconds)


class HostsSource(LinkEvents):
    """Live tracing on several hosts behind ktui.events.EventSource and ProbeHosts (each probe's host,
    for the stream's HOST column); no ProbeControl: the probe set is fixed."""

    live = True

    def __init__(self, links: list[HostLink], *, record_dir: str | None = None, update_hz: float = 30.0,
                 window_events: int = 100_000) -> None:
        self.links = links
        self.layouts: dict[int, ProbeLayout] = {}
        # ProbeHosts: probe id -> (host's short name, the probe's own name); filled before ``layouts``
        # so a reader that sees a layout also sees its host.
        self.probe_hosts: dict[int, tuple[str, str]] = {}
        self._short = short_hosts([link.label for link in links])
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.window_events = window_events
        self._period = 1.0 / update_hz
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, int], int] = {}  # (host label, the host's probe id) -> this source's id
        self._next_id = 0
        self._pending: dict[int, list[np.ndarray]] = {}
        self._counters: dict[int, ProbeCounters] = {}
        self._states: dict[int, ProbeState] = {}
        self._writers: dict[str, RecordingWriter] = {}  # host label -> its recording
        self._host_counters: dict[str, dict[int, ProbeCounters]] = {}
        self._host_states: dict[str, list[ProbeState]] = {}
        # host label -> its aggregates as last sent, on the host's ids (recordings) and on ours (panes)
        self._host_aggregates: dict[str, tuple[list[StackTrace], list[Histogram], list[KeyCounts]]] = {}
        self._aggregates: dict[str, tuple[list[StackTrace], list[Histogram], list[KeyCounts]]] = {}
        self.record_errors: list[str] = []
        self.events_delivered: dict[str, int] = {link.label: 0 for link in links}
        self._sink: Callable[[Update], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._prepared = False
        self._made_dir = False
        self._stopped = False
        self._t0 = 0.0
        self.finished = threading.Event()
        self.last_update: Update | None = None

    # -- EventSource

    def prepare(self, wait_s: float = READY_WAIT_S) -> None:
        """Start every host's link and wait for each to describe its probes or fail."""
        if self._prepared:
            return
        self._prepared = True
        if self.record_dir is not None:
            _make_private_dir(self.record_dir)
            self._made_dir = True
        for link in self.links:
            link.start(self)
        deadline = time.monotonic() + wait_s
        for link in self.links:
            link.ready.wait(max(0.0, deadline - time.monotonic()))
        if not any(link.status == "streaming" for link in self.links):
            self.stop()
            raise KtuiError("no host could start tracing: " + "; ".join(link.describe() for link in self.links))

    def start(self, sink: Callable[[Update], None]) -> None:
        self.prepare()
        self._sink = sink
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._post_loop, name="ktui-hosts-post", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        stoppers = [threading.Thread(target=link.stop, daemon=True) for link in self.links]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        else:
            self._publish(finished=True)
        self._close_recordings()
        if self.record_dir is not None and self._made_dir:
            try:
                self.record_dir.rmdir()  # only when empty: no host got as far as its recording
            except OSError:
                pass

    def enable_probe(self, probe_id: int, enabled: bool) -> None:
        """Switch one host's probe (this source's id) on or off: a TOGGLE to that host's engine under
        the id its engine gave it. The state shown changes when the host's STATES frame says so."""
        with self._lock:
            where = next(((label, rid) for (label, rid), gid in self._ids.items() if gid == probe_id), None)
        if where is None:
            raise UsageError(f"there is no probe {probe_id} on any host.")
        link = next(link for link in self.links if link.label == where[0])
        link.send_toggle(where[1], enabled)

    def symbolize(self, address: int, pid: int | None = None) -> str:
        return f"0x{address:x}"  # symbols live on each host: its stacks arrive symbolized

    # -- what the links report (their reader threads)

    def hello(self, link: HostLink, hello: P.Hello) -> None:
        with self._lock:
            for rid, layout in sorted(hello.layouts.items()):
                gid = self._next_id
                self._next_id += 1
                self._ids[(link.label, rid)] = gid
                self.probe_hosts[gid] = (self._short[link.label], layout.name)
                self.layouts[gid] = ProbeLayout(gid, f"{link.label}:{layout.name}", layout.spec, layout.fields)
            self._host_states[link.label] = hello.states
            self._apply_states(link, hello.states)
        if self.record_dir is not None:
            self._open_recording(link, hello)

    def events(self, link: HostLink, probe_id: int, records: np.ndarray) -> None:
        writer = self._writers.get(link.label)
        if writer is not None:
            try:
                writer.append(probe_id, records)
            except KtuiError as err:
                self._writers.pop(link.label, None)
                self.record_errors.append(f"{link.label}: {err}")
        gid = self._ids.get((link.label, probe_id))
        if gid is None:
            return
        local = records.copy()
        offset = link.clock.offset_ns
        if offset:
            local["ts"] += np.uint64(offset % (1 << 64))  # modular: a negative offset wraps back exactly
        local["probe"] = gid
        with self._lock:
            parts = self._pending.setdefault(gid, [])
            parts.append(local)
            n = sum(len(p) for p in parts)
            while len(parts) > 1 and n - len(parts[0]) >= self.window_events:  # a slow sink: newest kept
                n -= len(parts.pop(0))
            self.events_delivered[link.label] += len(records)

    def counters(self, link: HostLink, counters: dict[int, ProbeCounters]) -> None:
        with self._lock:
            self._host_counters[link.label] = counters
            for rid, c in counters.items():
                gid = self._ids.get((link.label, rid))
                if gid is not None:
                    self._counters[gid] = c

    def states(self, link: HostLink, states: list[ProbeState]) -> None:
        with self._lock:
            self._host_states[link.label] = states
            self._apply_states(link, states)

    def aggregates(self, link: HostLink, stacks: list[StackTrace], histograms: list[Histogram],
                   counts: list[KeyCounts]) -> None:
        with self._lock:
            ids = {rid: gid for (label, rid), gid in self._ids.items() if label == link.label}
            self._host_aggregates[link.label] = (stacks, histograms, counts)
            self._aggregates[link.label] = (
                [StackTrace(ids[s.probe_id], s.kernel, s.user, s.count) for s in stacks if s.probe_id in ids],
                [Histogram(ids[h.probe_id], h.value, h.scale, h.buckets) for h in histograms if h.probe_id in ids],
                [KeyCounts(ids[k.probe_id], k.key_names, k.rows) for k in counts if k.probe_id in ids])

    def ended(self, link: HostLink) -> None:
        with self._lock:
            if link.status == "failed":
                for (label, _rid), gid in self._ids.items():
                    state = self._states.get(gid)
                    if label == link.label and state is not None:
                        state.status, state.reason = "failed", f"host {link.label} {link.reason}"

    def _apply_states(self, link: HostLink, states: list[ProbeState]) -> None:
        for s in states:
            gid = self._ids.get((link.label, s.probe_id))
            if gid is not None:
                self._states[gid] = ProbeState(gid, f"{link.label}:{s.name}", s.spec, s.status, s.reason)

    # -- updates

    def host_summary(self) -> str:
        """One sentence on the hosts that are not streaming ('' while all are)."""
        down = [link for link in self.links if link.status == "failed"]
        if not down:
            return ""
        return f"{len(down)} of {len(self.links)} hosts down: " + "; ".join(f"{link.label} ({link.reason})"
                                                                            for link in down)

    def _post_loop(self) -> None:
        while not self._stop.wait(self._period):
            self._publish()
            if all(link.done.is_set() for link in self.links):
                break
        self._publish(finished=True)
        self.finished.set()

    def _publish(self, finished: bool = False) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            counters = {gid: c for gid, c in self._counters.items()}
            states = [ProbeState(s.probe_id, s.name, s.spec, s.status, s.reason) for s in self._states.values()]
            aggregates = list(self._aggregates.values())
        events = {gid: parts[0] if len(parts) == 1 else np.concatenate(parts) for gid, parts in pending.items()}
        message = self.host_summary()
        if finished and not message:
            message = "every host stopped"
        update = Update(events=events, counters=counters, probes=states, now_ns=time.monotonic_ns(),
                        stacks=sorted((st for a in aggregates for st in a[0]), key=lambda st: -st.count),
                        histograms=[h for a in aggregates for h in a[1]], counts=[k for a in aggregates for k in a[2]],
                        elapsed_s=time.monotonic() - self._t0, message=message, finished=finished)
        self.last_update = update
        if self._sink is not None:
            try:
                self._sink(update)
            except Exception:  # a failing sink must not stop tracing; the app reports its own errors
                pass

    # -- recordings, one per host

    def _open_recording(self, link: HostLink, hello: P.Hello) -> None:
        from ktui.kernel import KernelIdentity
        from ktui.recording import RecordingWriter

        assert self.record_dir is not None
        mono, real = time.monotonic_ns(), time.time_ns()
        try:
            self._writers[link.label] = RecordingWriter.create(
                self.record_dir / f"{link.label}.ktrec", KernelIdentity.from_dict(hello.kernel),
                list(hello.layouts.values()), hello.probes, self._host_meta(link, hello, mono, real))
        except KtuiError as err:
            self.record_errors.append(f"{link.label}: {err}")

    @staticmethod
    def _host_meta(link: HostLink, hello: P.Hello, mono: int, real: int) -> dict[str, object]:
        offset = link.clock.offset_ns
        # The file's times are the host's clock; realtime - host clock = (realtime - local) + offset.
        return {"host": link.label, "remote": link.host, "hostname": hello.host, "start_ns": mono - offset,
                "clock_offset_ns": real - mono + offset, "clock_offset_uncertainty_ns": link.clock.uncertainty_ns,
                "clock_samples": link.clock.samples, "timens_offset_ns": hello.timens_offset_ns,
                "notes": hello.notes, "recorded_from": "ktui --host"}

    def _close_recordings(self) -> None:
        for link in self.links:
            writer = self._writers.pop(link.label, None)
            if writer is None or link.hello is None:
                continue
            try:
                mono, real = time.monotonic_ns(), time.time_ns()
                meta = self._host_meta(link, link.hello, mono, real)
                meta.pop("start_ns")
                meta["host_status"] = link.status
                meta["host_reason"] = link.reason
                writer.set_counters(self._host_counters.get(link.label, {}))
                writer.set_probe_states(self._host_states.get(link.label, []))
                stacks, histograms, counts = self._host_aggregates.get(link.label, ([], [], []))
                if stacks:
                    writer.set_stacks(stacks)
                if histograms:
                    writer.set_histograms(histograms)
                if counts:  # as `ktui record` keeps them (ktui/engine/recorder_sink.py)
                    meta["key_counts"] = [{"probe_id": k.probe_id, "key_names": list(k.key_names),
                                           "rows": [[list(key), n] for key, n in k.rows]} for k in counts]
                writer.set_meta(**meta)
                writer.close(end_ns=mono - link.clock.offset_ns)
            except KtuiError as err:
                self.record_errors.append(f"{link.label}: {err}")

    def recording_paths(self) -> list[Path]:
        assert self.record_dir is not None
        return sorted(self.record_dir.glob("*.ktrec"))


def _make_private_dir(path: Path) -> None:
    if os.path.lexists(path):
        raise UsageError(f"{path} exists; choose another name (a recording of several hosts is a new directory).")
    try:
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)
    except OSError as err:
        raise KtuiError(f"cannot create the directory {path}: {err.strerror}.") from None
