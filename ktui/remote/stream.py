"""The remote half: `ktui stream SPEC...` runs the live engine headless and writes frames to stdout.

Started by the local ktui through ssh (``ktui/remote/hosts.py``); never meant for a terminal.
Its stdout carries only frames (``protocol.py``): the real fd 1 is kept privately and fd 1 is
pointed at stderr before anything loads, so a library printing text (BCC, clang) cannot
corrupt the stream. Its stdin carries the local side's clock probes; the end of stdin (ssh
closes it when the local ktui ends, however it ends) stops the engine, as do SIGTERM, SIGHUP
and SIGINT and a stdout nobody reads any more: the probes are detached on every path.

Timestamps: records carry bpf_ktime_get_ns(), the kernel's CLOCK_MONOTONIC. A process in a
time namespace sees that clock shifted (``/proc/self/timens_offsets``); the stream puts records
on the clock this process sees, the one its clock answers come from, so the local side's
offset estimate covers both.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ktui.errors import KtuiError
from ktui.events import ProbeControl, ProbeState, Update
from ktui.remote import protocol as P

if TYPE_CHECKING:
    from ktui.sources.live import LiveSource

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
COUNTERS_EVERY_S = 0.1
AGGREGATES_EVERY_S = 0.5  # the engine reads its maps every 0.5 s too


def timens_offset_ns(path: str = "/proc/self/timens_offsets") -> int:
    """This process's time-namespace shift of CLOCK_MONOTONIC (0 outside one, or on an old kernel)."""
    try:
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] in ("monotonic", "1"):
                return int(parts[1]) * 1_000_000_000 + int(parts[2])
    except (OSError, ValueError):
        pass
    return 0


class FrameWriter:
    """Whole frames to one fd from several threads; the first failed write marks the reader gone."""

    def __init__(self, fd: int, on_broken: Callable[[], None]) -> None:
        self.fd = fd
        self._lock = threading.Lock()
        self.broken = False
        self._on_broken = on_broken

    def write(self, *frames: bytes) -> None:
        with self._lock:
            if self.broken:
                return
            try:
                for data in frames:
                    view = memoryview(data)
                    while view:
                        n = os.write(self.fd, view)
                        view = view[n:]
            except OSError:  # EPIPE: ssh (and the local ktui behind it) went away
                self.broken = True
                self._on_broken()

    def close(self) -> None:
        with self._lock:
            self.broken = True
            try:
                os.close(self.fd)
            except OSError:
                pass


class Control:
    """Probe toggles from the local side, applied to the engine once it exists (the local side
    sends them only after HELLO, which comes after the engine is ready)."""

    def __init__(self) -> None:
        self.source: ProbeControl | None = None
        self.problem = ""  # why the request stream was cut short, one sentence ("" if it was not)

    def toggle(self, probe_id: int, enabled: bool) -> None:
        source = self.source
        if source is None or probe_id not in source.probe_ids:
            # a request for a probe this engine does not have: said on stderr (ssh carries it), not fatal
            print(f"ktui stream: a toggle names probe {probe_id}, which this engine does not have.",
                  file=sys.stderr, flush=True)
            return
        try:
            source.enable_probe(probe_id, enabled)
        except KtuiError as err:
            print(f"ktui stream: probe {probe_id}: {err}", file=sys.stderr, flush=True)


def _read_probes(fd: int, writer: FrameWriter, stop: threading.Event, control: Control | None = None) -> None:
    """Clock probes and probe toggles from stdin, each handled at once; the end of stdin is the order
    to stop. The requests are untrusted like the stream: a malformed one ends the engine with its sentence."""
    f = os.fdopen(fd, "rb", buffering=0, closefd=False)
    try:
        while True:
            fr = P.read_frame(f, allowed=(P.CLOCK_PROBE, P.TOGGLE))
            if fr is None:
                break
            if fr.kind == P.TOGGLE:
                probe_id, enabled = P.decode_toggle(fr.payload)
                if control is not None:
                    control.toggle(probe_id, enabled)
                continue
            seq = P.decode_probe(fr.payload)
            writer.write(P.clock_frame(seq, time.monotonic_ns()))
    except KtuiError as err:  # a damaged request stream is treated as the local side gone, and said
        if control is not None:
            control.problem = f"the local side's requests are damaged: {err}"
    except (OSError, ValueError):
        pass
    finally:
        stop.set()


class _Streamer:
    """The engine's sink: events shifted onto this process's clock, counters and states as frames."""

    def __init__(self, writer: FrameWriter, shift_ns: int) -> None:
        self.writer = writer
        self.shift = np.uint64(shift_ns % (1 << 64))  # modular add: a negative shift wraps back exactly
        self.shifted = shift_ns != 0
        self.shift_ns = shift_ns
        self._states: list[tuple[int, str, str]] = []
        self._counters_at = 0.0
        self._aggregates: tuple[object, object, object] = ([], [], [])
        self._aggregates_at = 0.0
        self.last: Update | None = None

    def __call__(self, update: Update) -> None:
        self.last = update
        frames: list[bytes] = []
        for probe_id, arr in sorted(update.events.items()):
            if not len(arr):
                continue
            if self.shifted:
                arr = arr.copy()
                arr["ts"] += self.shift
            frames.extend(P.events_frames(probe_id, arr))
        states = [(s.probe_id, s.status, s.reason) for s in update.probes]
        if update.probes and states != self._states:
            self._states = states
            frames.append(P.states_frame(update.probes))
        now = time.monotonic()
        if update.counters and (update.finished or now - self._counters_at >= COUNTERS_EVERY_S):
            self._counters_at = now
            frames.append(P.counters_frame(update.counters))
        aggregates = (update.stacks, update.histograms, update.counts)
        if any(aggregates) and aggregates != self._aggregates and (
                update.finished or now - self._aggregates_at >= AGGREGATES_EVERY_S):
            self._aggregates, self._aggregates_at = aggregates, now
            frames.append(P.aggregates_frame(*aggregates))
        if frames:
            self.writer.write(*frames)


def run_stream(specs: list[str], *, filter_text: str | None = None, pid: int | None = None,
               ring_pages: int | None = None) -> int:
    """The whole life of one remote engine; returns the exit status."""
    # fd 1 is the stream: keep it, and send anything else written to fd 1 to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stop = threading.Event()
    writer = FrameWriter(out_fd, stop.set)
    writer.write(P.MAGIC)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    control = Control()
    threading.Thread(target=_read_probes, args=(0, writer, stop, control), name="ktui-clock", daemon=True).start()
    source = None
    streamer = _Streamer(writer, timens_offset_ns())
    status = 0
    try:
        try:
            source = _prepare(specs, filter_text, pid, ring_pages)
        except KtuiError as err:
            writer.write(P.json_frame(P.ERROR, {"message": str(err)}))  # the last frame: no END after it
            writer.close()
            return err.exit_code
        control.source = source
        writer.write(_hello(source, streamer.shift_ns))
        if stop.is_set():
            return 0
        source.start(streamer)
        while not stop.is_set() and not source.finished.is_set():
            stop.wait(0.1)
    finally:
        reason = ""
        if source is not None:
            try:
                source.stop()  # detaches; its last update (final counters) reaches the streamer
            except KtuiError as err:
                reason, status = str(err), 1
            last = source.last_update
            if last is not None and last.message and not reason:
                reason = last.message
        reason = control.problem or reason
        writer.write(P.json_frame(P.END, {"message": reason}))
        writer.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _prepare(specs: list[str], filter_text: str | None, pid: int | None, ring_pages: int | None) -> LiveSource:
    from ktui.commands.record import _load_catalog, _parse_probes
    from ktui.privilege import require_bpf
    from ktui.probes.model import TargetProcess
    from ktui.sources.live import LiveSource

    require_bpf("ktui stream")
    catalog = _load_catalog()
    probes = _parse_probes(specs, None, filter_text, catalog)
    target = TargetProcess(pid=pid) if pid is not None else None
    source = LiveSource(probes, catalog=catalog, target=target, ring_pages=ring_pages)
    source.prepare()
    return source


def _hello(source: LiveSource, shift_ns: int) -> bytes:
    from ktui.kernel import kernel_identity

    states: list[ProbeState] = list(source.states.values())
    models = {gid: model for gid, model in source.models().items() if gid in source.layouts}
    return P.hello_frame(socket.gethostname(), kernel_identity().to_dict(), list(source.layouts.values()), models,
                         states, list(source.notes), shift_ns)
