"""Replay: recordings (or ftrace text) fed to the panes through the same EventSource as live.

Several files play on one timeline, merged by time, each host its own track: probe
ids are renumbered per file and, when there is more than one file, probe names are
prefixed with the host. Clocks are aligned by each recording's wall-clock offset
(its CLOCK_MONOTONIC to realtime difference); files that lack one start together.

A worker thread owns the readers and posts at most ``rate_hz`` Updates a second.
Controls (play, pause, speed, step, seek, filters) only change shared state under
a lock and wake the worker.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from collections.abc import Callable, Iterable

import numpy as np

from ktui.errors import FileFormatError, KtuiError
from ktui.events import Histogram, KeyCounts, ProbeCounters, ProbeLayout, ProbeState, StackTrace, Update
from ktui.inputs import NotRegularFileError, open_input
from ktui.recording.reader import SQLITE_MAGIC, RecordingReader
from ktui.recording.tempdirs import private_tempdir
from ktui.row_filter import RowMatch, text_filter
from ktui.units import short_hosts
from ktui.recording.window import HISTORY_BINS, Cancelled, ChunkSummary, WindowAggregates, rate_bins, window_aggregates

# What the panes show of the recording (or of the selected window): counters, probe states, stacks,
# histograms, COUNT tables.
_Aggregates = tuple[dict[int, ProbeCounters], list[ProbeState], list[StackTrace], list[Histogram], list[KeyCounts]]
# The event filters, read together under the lock: pid, probe ids, comm, the stream's filter (a
# RowMatch on timeline probe ids, over the whole recording).
_Filters = tuple[int | None, set[int] | None, bytes | None, RowMatch | None]

SPEEDS = (1.0, 10.0, None)  # None: as fast as possible
# A burst of seeks (a key held, keys queued): the screen is built where the cursor stops, once no seek
# came for SEEK_SETTLE_S, and at least every SEEK_BURST_MAX_S while they go on. A seek after a pause
# (the gap before it longer than SEEK_SETTLE_S) is served at once.
SEEK_SETTLE_S = 0.04
SEEK_BURST_MAX_S = 0.15
RATE_REST_S = 0.25  # the exact rate at the cursor is counted once it rested this long (rate_at)


@dataclass
class Track:
    """One opened file on the shared timeline."""
    reader: RecordingReader
    name: str  # the host (or file name) shown as the track
    shift_ns: int  # add to this file's timestamps to get timeline time
    ids: dict[int, int]  # file probe id -> timeline probe id
    # Whole chunks already reduced for window aggregates (in memory: replay never writes the file).
    summaries: dict[int, ChunkSummary] = field(default_factory=dict)


def open_recording(path: str | os.PathLike[str], workdir: str | None = None) -> RecordingReader:
    """A recording, or ftrace text imported into ``workdir`` (never next to the input)."""
    path = Path(path)
    try:  # a FIFO or a device is refused here, before anything opens it blocking (SQLite, the importer)
        with open_input(path, what="a recording (or ftrace text)") as f:
            head = f.read(len(SQLITE_MAGIC))
    except NotRegularFileError:
        raise
    except (FileFormatError, OSError):
        head = b""  # missing or unreadable: the reader says so in its own words
    if head == SQLITE_MAGIC or workdir is None or not head:
        return RecordingReader.open(path)
    from ktui.formats.ftrace import looks_like_ftrace, import_ftrace

    if not looks_like_ftrace(path):
        return RecordingReader.open(path)
    out = Path(workdir) / f"{len(os.listdir(workdir))}-{path.stem}.ktrec"
    report = import_ftrace(path, out)
    reader = RecordingReader.open(out)
    # Lines the ftrace parser skipped are its report, as `ktui import` prints them; not damage of the recording.
    reader.warnings[:0] = report.problem_lines()
    return reader


class ReplaySource:
    """An EventSource over recordings: play, pause, speed, step, seek, filter and search."""

    live = False

    def __init__(self, paths: Iterable[str | os.PathLike[str]], *, rate_hz: float = 30.0, max_batch: int = 100_000):
        path_list = [Path(p) for p in paths]
        if not path_list:
            raise KtuiError("replay needs at least one recording")
        self._workdir = private_tempdir("import")
        self.tracks: list[Track] = []
        try:
            readers = [open_recording(p, self._workdir) for p in path_list]
        except BaseException:
            shutil.rmtree(self._workdir, True)
            raise
        self._build_tracks(readers, path_list)
        self._problems_shown = 0  # damage sentences already sent in an Update's message
        self._damage_for, self._damage = 0, ""  # the damage summary, for that many problems
        self.stopped_reason: str | None = None  # set when the worker died: "replay stopped: <reason>"
        self._interval = 1.0 / min(rate_hz, 30.0)
        self._max_batch = max_batch
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._sink: Callable[[Update], None] | None = None
        self._stopped = False
        self._playing = False
        self._speed: float | None = 1.0
        self._position = self.start_ns
        self._steps = 0
        self._pending_message = ""
        self._reset = False
        self._window_ns = 1_000_000  # adaptive read window at full speed
        self._finished_sent = False
        # The first play() after start() runs the replay; it must not start it over when the first
        # screen (a small recording) already reached the end, or every event is delivered twice.
        self._first_play = True
        self.pid_filter: int | None = None
        self.probe_filter: set[int] | None = None
        self.comm_filter: bytes | None = None
        self._rates: dict[tuple[int, int], float] = {}  # rate_at's exact answers, by (bins, bin)
        self._rate_wanted: tuple[int, int] | None = None  # the newest bin rate_at was asked for, not yet counted
        self._rate_thread: threading.Thread | None = None  # counts the wanted bins (_count_rates)
        self._index_bins: dict[int, np.ndarray] = {}  # rate_bins(n) of every probe, from the chunk index
        self.row_filter = ""  # the stream's filter (ktui.row_filter), applied to the recording's events
        self._row_match: RowMatch | None = None
        self.seek_generation = 0  # bumps on every seek: the panes should drop what they show
        self._aggregates: _Aggregates | None = None  # counters, states, stacks, histograms, COUNT tables
        # The timeline's window: None is the whole recording (the file's own aggregates); a
        # selected window's aggregates are recomputed from its events off the worker thread.
        self.selection: tuple[int, int] | None = None
        self.window: WindowAggregates | None = None  # the shown window's aggregates (timeline ids), once computed
        self.window_generation = 0  # bumps when ``window`` changes
        self._refresh = False  # aggregates changed: send an Update even when paused
        self._window_asked = 0  # selections asked for; only the newest one's result is kept
        self._seeking = False  # the worker is building the screen after a seek
        self._last_seek_at = 0.0  # monotonic time of the last seek
        self._seek_gap = float("inf")  # seconds between the last two seeks
        self._unserved_since = 0.0  # when the first seek whose screen is not built yet came
        self._window_threads: list[threading.Thread] = []  # joined by stop() before the readers close

    # -- building the timeline ------------------------------------------------------

    def _build_tracks(self, readers: list[RecordingReader], paths: list[Path]) -> None:
        several = len(readers) > 1
        names: list[str] = []
        for r, p in zip(readers, paths):
            name = r.host if several else p.stem
            if name in names:
                name = f"{name}#{names.count(name) + 1}" if r.host not in names else f"{r.host}:{p.stem}"
            names.append(name)
        known = all(r.clock_offset_ns for r in readers)
        # The base is the earliest-booted host (or the latest-starting file), so no shift is
        # negative and timeline times stay unsigned like recorded ones.
        base = (min(readers, key=lambda r: r.clock_offset_ns) if known
                else max(readers, key=lambda r: r.first_ts))
        self.layouts: dict[int, ProbeLayout] = {}
        # ProbeHosts (ktui.events): each probe's host and own name, for the stream's HOST column
        self.probe_hosts: dict[int, tuple[str, str]] = {}
        short = short_hosts(names)
        next_id = 0
        for r, name in zip(readers, names):
            if known:
                shift = r.clock_offset_ns - base.clock_offset_ns
            else:  # no wall clock to align by: start the files together
                shift = base.first_ts - r.first_ts
            ids = {}
            for old_id, layout in sorted(r.layouts.items()):
                new_id = old_id if not several else next_id
                next_id = max(next_id, new_id) + 1
                ids[old_id] = new_id
                self.layouts[new_id] = replace(layout, probe_id=new_id,
                                               name=f"{name}:{layout.name}" if several else layout.name)
                if several:
                    self.probe_hosts[new_id] = (short[name], layout.name)
            self.tracks.append(Track(r, name, shift, ids))
        spans = [(t.reader.first_ts + t.shift_ns, t.reader.last_ts + t.shift_ns) for t in self.tracks
                 if t.reader.chunks]
        self.start_ns = min((s for s, _ in spans), default=0)
        self.end_ns = max((e for _, e in spans), default=self.start_ns)
        self.total_events = sum(t.reader.count() for t in self.tracks)

    # -- damage -----------------------------------------------------------------------

    @property
    def problems(self) -> list[str]:
        """Damage found so far in every file (grows as damaged chunks are met), one sentence each."""
        return [p for t in self.tracks for p in t.reader.problems]

    @property
    def warnings(self) -> list[str]:
        """What is worth saying but not damage: an unfinished recording, lines an ftrace import skipped."""
        return [w for t in self.tracks for w in t.reader.warnings]

    def damage_summary(self) -> str | None:
        """One sentence per damaged file (what could not be read), or None when everything read."""
        parts = [s for t in self.tracks if (s := t.reader.damage_summary()) is not None]
        return "; ".join(parts) or None

    # -- aggregates, remapped ----------------------------------------------------------

    def counters(self) -> dict[int, ProbeCounters]:
        return {t.ids[pid]: c for t in self.tracks for pid, c in t.reader.counters().items() if pid in t.ids}

    def probe_states(self) -> list[ProbeState]:
        out = []
        for t in self.tracks:
            for s in t.reader.probe_states():
                new = t.ids[s.probe_id]
                out.append(ProbeState(new, self.layouts[new].name, s.spec, s.status, s.reason))
        return out

    def stacks(self) -> list[StackTrace]:
        return [replace(s, probe_id=t.ids[s.probe_id]) for t in self.tracks for s in t.reader.stacks()
                if s.probe_id in t.ids]

    def histograms(self) -> list[Histogram]:
        return [replace(h, probe_id=t.ids[h.probe_id]) for t in self.tracks for h in t.reader.histograms()
                if h.probe_id in t.ids]

    def key_counts(self) -> list[KeyCounts]:
        return [replace(k, probe_id=t.ids[k.probe_id]) for t in self.tracks for k in t.reader.key_counts()
                if k.probe_id in t.ids]

    def track_of(self, probe_id: int) -> Track:
        for t in self.tracks:
            if probe_id in t.ids.values():
                return t
        raise KeyError(probe_id)

    def symbolize(self, address: int, pid: int | None = None) -> str:
        fallback = f"0x{address:x}"
        for t in self.tracks:
            name = t.reader.symbolize(address, pid)
            if name != fallback:
                return name
        return fallback

    def stack_frames(self, probe_id: int, stack_id: int, user: bool = False, pid: int | None = None) -> list[str]:
        return self.track_of(probe_id).reader.stack_frames(stack_id, user, pid)

    # -- the timeline ----------------------------------------------------------------

    def rate_bins(self, n: int, probe_id: int | None = None) -> np.ndarray:
        """Events in each of n equal bins over [start_ns, end_ns] (of one probe, or all), from the
        chunk index: nothing is decoded."""
        if probe_id is None and n in self._index_bins:
            return self._index_bins[n].copy()
        out = np.zeros(max(n, 0), dtype=np.float64)
        for t in self.tracks:
            old = None if probe_id is None else [o for o, new in t.ids.items() if new == probe_id]
            if old == []:
                continue
            chunks = t.reader.chunks if old is None else [c for c in t.reader.chunks if c.probe_id in old]
            out += rate_bins(chunks, self.start_ns - t.shift_ns, self.end_ns + 1 - t.shift_ns, n)
        if probe_id is None:
            self._index_bins[n] = out.copy()
        return out

    def marks(self) -> list[int]:
        """Timeline times of the recordings' marks (a flight recorder's triggers), in order."""
        return sorted(m.ts + t.shift_ns for t in self.tracks for m in t.reader.marks())

    def select_window(self, start_ns: int | None, end_ns: int | None = None) -> None:
        """Show [start_ns, end_ns) in the aggregate panes (None: the whole recording). The
        aggregates are recomputed on a thread of their own; ``window_generation`` bumps and an
        Update carries them when they are ready."""
        if start_ns is None or end_ns is None:
            selection = None
        else:
            lo, hi = sorted((int(start_ns), int(end_ns)))
            selection = (max(lo, self.start_ns), min(max(hi, lo + 1), self.end_ns + 1))
        with self._lock:
            self.selection = selection
            self._window_asked += 1
            if selection is None and self._aggregates is not None:  # back to the file's own, at once
                self._aggregates = None
                self._refresh = True
                self._lock.notify_all()
            asked = self._window_asked
        lo, hi = selection if selection is not None else (self.start_ns, self.end_ns + 1)
        thread = threading.Thread(target=self._compute_window, args=(asked, lo, hi, selection is None),
                                  name="ktui-replay-window", daemon=True)
        with self._lock:
            if self._stopped:
                return
            self._window_threads = [t for t in self._window_threads if t.is_alive()] + [thread]
        thread.start()

    def _compute_window(self, asked: int, lo: int, hi: int, whole: bool) -> None:
        def replaced() -> bool:  # read without the lock: a stale answer costs one more chunk
            # A seek being served goes first: the pass waits between chunks so the cursor's
            # screen is not slowed by it (both need the one interpreter lock and the CPUs).
            deadline = time.monotonic() + 2.0
            while (self._reset or self._seeking) and not self._stopped and time.monotonic() < deadline:
                time.sleep(0.005)
            return asked != self._window_asked or self._stopped

        try:
            agg = self.window_aggregates(lo, hi, cancelled=replaced)
        except Cancelled:
            return
        except Exception as err:  # noqa: BLE001 -- a window that cannot be read is a sentence
            with self._lock:
                self._pending_message = f"window not recomputed: {err}"
            return
        with self._lock:
            if asked != self._window_asked or self._stopped:
                return  # a newer selection replaced this one
            self.window = agg
            self.window_generation += 1
            if whole:  # the file's own aggregates (with drops and filtered counts) stay; the panes
                # take the rate history from ``window`` when they see window_generation move
                self._aggregates = None
            else:
                self._aggregates = (agg.counters, self.probe_states(), agg.stacks, agg.histograms, agg.counts)
            self._refresh = True  # also for the whole recording: a paused replay sends no other Update
            self._lock.notify_all()

    def window_aggregates(self, start_ns: int, end_ns: int, bins: int = HISTORY_BINS,
                          cancelled: Callable[[], bool] | None = None) -> WindowAggregates:
        """Aggregates of every track's events in the timeline window [start_ns, end_ns), timeline ids."""
        counters: dict[int, ProbeCounters] = {}
        history: dict[int, list[list[float]]] = {}
        stacks: list[StackTrace] = []
        histograms: list[Histogram] = []
        counts: list[KeyCounts] = []
        missing: list[int] = []
        coarse: list[int] = []
        coarse_s = 0.0
        losses_known = True
        events = 0
        for t in self.tracks:
            agg = window_aggregates(t.reader, max(start_ns - t.shift_ns, 0), max(end_ns - t.shift_ns, 0), bins,
                                    cancelled, t.summaries)
            events += agg.events
            counters.update({t.ids[p]: c for p, c in agg.counters.items() if p in t.ids})
            history.update({t.ids[p]: h for p, h in agg.cpu_history.items() if p in t.ids})
            stacks += [replace(s, probe_id=t.ids[s.probe_id]) for s in agg.stacks if s.probe_id in t.ids]
            histograms += [replace(h, probe_id=t.ids[h.probe_id]) for h in agg.histograms if h.probe_id in t.ids]
            counts += [replace(k, probe_id=t.ids[k.probe_id]) for k in agg.counts if k.probe_id in t.ids]
            missing += [t.ids[p] for p in agg.not_recomputed if p in t.ids]
            coarse += [t.ids[p] for p in agg.coarse if p in t.ids]
            coarse_s = max(coarse_s, agg.coarse_s)
            losses_known = losses_known and agg.losses_known
        stacks.sort(key=lambda s: -s.count)
        return WindowAggregates(start_ns, end_ns, events, counters, history, stacks, histograms, counts, missing,
                                coarse, coarse_s, losses_known)

    # -- controls ------------------------------------------------------------------

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def speed(self) -> float | None:
        return self._speed

    @property
    def position_ns(self) -> int:
        return self._position

    def play(self) -> None:
        with self._lock:
            first, self._first_play = self._first_play, False
            if self._position > self.end_ns:
                if first:  # the first screen already held the whole recording: nothing left to play
                    return
                self._position = self.start_ns  # play at the end starts over
                self._reset = True
            self._playing = True
            self._finished_sent = False
            self._lock.notify_all()

    def pause(self) -> None:
        with self._lock:
            self._playing = False
            self._lock.notify_all()

    def set_speed(self, speed: float | None) -> None:
        """1.0, 10.0 or any factor; None plays as fast as the panes take it."""
        if speed is not None and speed <= 0:
            raise KtuiError("replay speed must be positive")
        with self._lock:
            self._speed = speed

    def step(self, n: int = 1) -> None:
        """Pause and show the next n events (merged over every track, filters applied)."""
        with self._lock:
            self._playing = False
            self._steps += max(1, int(n))
            self._lock.notify_all()

    def seek(self, t_ns: int) -> None:
        """Jump to a timeline time; the next Update starts with the first event at or after it."""
        now = time.monotonic()
        with self._lock:
            if not self._reset:
                self._unserved_since = now
            self._seek_gap, self._last_seek_at = now - self._last_seek_at, now
            self._position = min(max(int(t_ns), self.start_ns), self.end_ns + 1)
            self._reset = True
            self._finished_sent = False
            self.seek_generation += 1
            self._lock.notify_all()

    def set_filter(self, pid: int | None = None, probe_ids: Iterable[int] | None = None,
                   comm: str | None = None) -> None:
        """Keep only events of this pid, these probes and a comm containing this text (None: all)."""
        with self._lock:
            self.pid_filter = pid
            self.probe_filter = None if probe_ids is None else set(probe_ids)
            self.comm_filter = comm.encode() if comm else None

    def set_row_filter(self, query: str) -> None:
        """The stream's filter (ktui.row_filter's language) over the whole recording: every screen,
        step and played window holds only matching events. Seek to show it from a time."""
        match = text_filter(query, self.layouts)
        with self._lock:
            self.row_filter = query.strip() if match is not None else ""
            self._row_match = match

    def rate_at(self, t_ns: int, bins: int = 200) -> float:
        """Events per second of recording time in the 1/bins of the recording that holds t_ns (every
        probe). Exact once counted (only the chunks cut by the bin's bounds are decoded, part way; each
        bin counted once); until then the chunk index's estimate (nothing decoded) while a thread of its
        own counts the bin, and an Update brings the exact figure. Asked by the UI thread on every
        Update, so it never decodes there: a cursor move stays bounded (bench/bench_replay_window.py)."""
        key = self._rate_bin(t_ns, bins)
        with self._lock:
            exact = self._rates.get(key)
            if exact is not None:
                return exact
            self._rate_wanted = key
            thread = None
            if self._rate_thread is None and not self._stopped:
                thread = self._rate_thread = threading.Thread(target=self._count_rates, name="ktui-replay-rate",
                                                              daemon=True)
                self._window_threads.append(thread)  # joined by stop() like a window's
        if thread is not None:
            thread.start()
        lo, hi = self._rate_bounds(key)
        return float(self.rate_bins(bins)[key[1]]) / max((hi - lo) / 1e9, 1e-9)

    def rate_known(self, t_ns: int, bins: int = 200) -> bool:
        """Whether rate_at's answer for t_ns is the exact count (not the chunk index's estimate)."""
        return self._rate_bin(t_ns, bins) in self._rates

    def _rate_bin(self, t_ns: int, bins: int) -> tuple[int, int]:
        span = max(self.end_ns + 1 - self.start_ns, 1)
        return bins, min(max((int(t_ns) - self.start_ns) * bins // span, 0), bins - 1)

    def _rate_bounds(self, key: tuple[int, int]) -> tuple[int, int]:
        bins, i = key
        span = max(self.end_ns + 1 - self.start_ns, 1)
        return self.start_ns + i * span // bins, self.start_ns + (i + 1) * span // bins

    def _count_rates(self) -> None:
        """The rate thread: counts the newest bin asked for (a burst of cursor moves counts only where
        the cursor stopped), then sends an Update so the status line shows the exact figure."""
        try:
            while True:
                with self._lock:
                    key, self._rate_wanted = self._rate_wanted, None
                    if key is None or self._stopped:
                        self._rate_thread = None
                        return
                # The cursor's own screen goes first (both need the interpreter lock and the CPUs), and the
                # cursor rests a moment: moves in a row draw first, the exact rate of where it stops after.
                deadline = time.monotonic() + 2.0
                while (self._reset or self._seeking or time.monotonic() - self._last_seek_at < RATE_REST_S) \
                        and not self._stopped and time.monotonic() < deadline:
                    time.sleep(0.02)
                with self._lock:  # the newest bin asked for while resting
                    key, self._rate_wanted = self._rate_wanted or key, None
                lo, hi = self._rate_bounds(key)
                n = sum(t.reader.count(max(lo - t.shift_ns, 0), max(hi - t.shift_ns, 0)) for t in self.tracks)
                with self._lock:
                    self._rates[key] = n / max((hi - lo) / 1e9, 1e-9)
                    self._refresh = True
                    self._lock.notify_all()
        except Exception as err:  # noqa: BLE001 -- a bin that cannot be counted keeps its estimate
            with self._lock:
                self._rate_thread = None
                self._pending_message = f"rate not counted: {err}"

    def find(self, query: str, from_ns: int, step: int = 1) -> int | None:
        """Timeline time of the first event at or after ``from_ns`` (step 1) or of the last one before
        it (step -1) that matches ``query`` (ktui.row_filter's language, the stream's search) and the
        filter in force; None when there is none that way. Reads the chunks in bulk, nearest first."""
        match = text_filter(query, self.layouts)
        if match is None:
            return None
        with self._lock:
            filters = (self.pid_filter, self.probe_filter, self.comm_filter, self._row_match)
        best: int | None = None
        for t in self.tracks:
            hit = self._find_in(t, match, filters, from_ns - t.shift_ns, step)
            if hit is not None:
                hit += t.shift_ns
                best = hit if best is None else (min(best, hit) if step > 0 else max(best, hit))
        return best

    def _find_in(self, t: Track, match: RowMatch, filters: _Filters, from_ns: int, step: int) -> int | None:
        """One track's nearest match (file time): forward chunk by chunk in order; backward through
        ever longer spans before from_ns, so a near match does not read the whole recording."""
        pid, probes, comm, rows = filters
        wanted = None if probes is None else [old for old, new in t.ids.items() if new in probes]
        if wanted == []:
            return None

        def hits(arr: np.ndarray) -> np.ndarray:
            new_id = t.ids.get(int(arr["probe"][0]), int(arr["probe"][0]))
            arr = _filter(arr, pid, comm, rows, new_id)
            if not len(arr):
                return np.zeros(0, np.int64)
            return arr["ts"][match(new_id, arr)].astype(np.int64)

        if step > 0:
            best: int | None = None
            for arr in t.reader.events(start_ns=max(from_ns, 0), probe_ids=wanted):
                if best is not None and int(arr["ts"][0]) >= best:
                    break  # chunks come in order of their first event: none later can be nearer
                found = hits(arr)
                if len(found):
                    best = int(found.min()) if best is None else min(best, int(found.min()))
            return best
        first = t.reader.first_ts
        span = 1_000_000_000
        hi = from_ns
        while hi > first:
            lo = max(first, hi - span)
            ends = [int(h.max()) for arr in t.reader.events(start_ns=lo, end_ns=hi, probe_ids=wanted)
                    if len(h := hits(arr))]
            if ends:
                return max(ends)
            hi, span = lo, span * 4
        return None

    def search(self, text: str, start_ns: int | None = None) -> int | None:
        """Timeline time of the first event at or after start_ns (default: the position) that matches
        ``text`` as the stream's search does (``find``)."""
        return self.find(text, self._position if start_ns is None else start_ns, 1)

    # -- EventSource ---------------------------------------------------------------

    def start(self, sink: Callable[[Update], None]) -> None:
        """Post a first Update (probes, counters, the first screen of events) and start the clock paused.

        Call ``play()`` to run; the app decides whether replay starts playing.
        """
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name="ktui-replay", daemon=True)
        with self._lock:
            self._steps = 0
            self._reset = True
        self._thread.start()
        self.select_window(None)  # the whole recording's per-CPU rate history, off the worker

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for thread in self._window_threads:  # each stops at its next chunk once it sees _stopped
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        for t in self.tracks:
            t.reader.close()
        shutil.rmtree(self._workdir, True)

    # -- the worker ----------------------------------------------------------------

    def _run(self) -> None:
        last = time.monotonic()
        try:
            while True:
                with self._lock:
                    if self._stopped:
                        return
                    if not (self._playing or self._steps or self._reset or self._refresh):
                        self._lock.wait(self._interval)
                        last = time.monotonic()
                        continue
                    settle = self._settle_wait()
                    if settle > 0:  # seeks in a burst: the screen of where they stop, not of each
                        self._lock.wait(settle)
                        continue
                now = time.monotonic()
                wait = self._interval - (now - last)
                with self._lock:  # a seek or new aggregates are shown at once; only playing is paced
                    if self._reset or self._refresh:
                        wait = 0
                if wait > 0:
                    time.sleep(wait)
                    now = time.monotonic()
                dt_ns = int((now - last) * 1e9)
                last = now
                update = self._next_update(dt_ns)
                if update is not None and self._sink is not None:
                    self._sink(update)
        except Exception as err:  # noqa: BLE001 -- a dead worker must say so, never leave the screen waiting
            # A reader failed mid-replay (damage no check foresaw, a file gone): one sentence,
            # and the replay ends in a state the status line shows.
            reason = str(err) if isinstance(err, KtuiError) else f"{type(err).__name__}: {err}"
            reason = reason.splitlines()[0][:300] if reason.strip() else type(err).__name__
            with self._lock:
                self._playing = False
                self.stopped_reason = f"replay stopped: {reason}"
            if self._sink is not None:
                try:
                    self._sink(Update(message=self.stopped_reason, finished=True))
                except Exception:  # noqa: BLE001 -- the app is gone; nothing left to tell
                    pass

    def _settle_wait(self) -> float:
        """Seconds to wait before building a seek's screen (under the lock): while seeks come in a burst."""
        if not self._reset or self._seek_gap >= SEEK_SETTLE_S:
            return 0.0
        now = time.monotonic()
        return max(0.0, min(SEEK_SETTLE_S - (now - self._last_seek_at),
                            SEEK_BURST_MAX_S - (now - self._unserved_since)))

    def _next_update(self, dt_ns: int) -> Update | None:
        with self._lock:
            reset, self._reset = self._reset, False
            steps, self._steps = self._steps, 0
            refresh, self._refresh = self._refresh, False
            playing, speed, pos = self._playing, self._speed, self._position
            filters = (self.pid_filter, self.probe_filter, self.comm_filter, self._row_match)
            pending, self._pending_message = self._pending_message, ""
            generation = self.seek_generation  # read with _reset: the screen built below belongs to it
        messages = [pending] if pending else []
        if reset:
            self._seeking = True
            try:
                events = self._screen_after(pos, filters)
            finally:
                self._seeking = False
            target = pos
            messages.append(self._describe() if self.seek_generation == 0 and pos == self.start_ns
                            else f"at {(pos - self.start_ns) / 1e9:.6f} s")
        elif steps:
            target = self._time_after_n(pos, steps, filters)
            events = self._window(pos, target, filters)
        elif playing:
            if speed is None:
                target = pos + self._window_ns
            else:
                target = pos + max(1, int(dt_ns * speed))
            events = self._window(pos, target, filters)
            if speed is None:  # aim at max_batch events per Update
                n = sum(len(a) for a in events.values())
                if n < self._max_batch // 2:
                    self._window_ns = min(self._window_ns * 2, 1 << 40)
                elif n > self._max_batch:
                    self._window_ns = max(self._window_ns // 2, 1000)
        elif refresh:  # new aggregates for the panes; the stream stays where it is
            target, events = pos, {}
        else:
            return None
        finished = False
        with self._lock:
            if self._reset:  # a seek arrived meanwhile: drop this window
                return None
            self._position = max(self._position, target)
            if self._position > self.end_ns and not self._finished_sent:
                finished = True
                self._finished_sent = True
                self._playing = False
                messages.append("replay finished")
            position = self._position
        problems = self.problems
        if finished:
            damage = self.damage_summary()
            if damage:
                messages.append(damage)
        elif len(problems) > self._problems_shown:  # damage met since the last Update: say it now
            messages.extend(problems[self._problems_shown:self._problems_shown + 3])
        self._problems_shown = len(problems)
        if reset and self.seek_generation == 0:
            messages.extend(self.warnings[:2])
        if self._aggregates is None:  # a recording does not change: read its aggregates once
            self._aggregates = (self.counters(), self.probe_states(), self.stacks(), self.histograms(),
                                self.key_counts())
        counters, probes, stacks, histograms, counts = self._aggregates
        if len(problems) != self._damage_for:  # one summary per change, not per frame
            self._damage_for, self._damage = len(problems), self.damage_summary() or ""
        return Update(events=events, counters=counters, probes=probes, stacks=stacks,
                      histograms=histograms, counts=counts, damage=self._damage, now_ns=min(position, self.end_ns),
                      elapsed_s=(min(position, self.end_ns) - self.start_ns) / 1e9,
                      message="; ".join(m for m in messages if m), finished=finished, seek_generation=generation)

    def _describe(self) -> str:
        hosts = ", ".join(t.name for t in self.tracks)
        return (f"replaying {hosts}: {self.total_events} events over "
                f"{(self.end_ns - self.start_ns) / 1e9:.3f} s")

    def _window(self, start: int, end: int, filters: _Filters) -> dict[int, np.ndarray]:
        """Every event with start <= time < end, remapped to the timeline, filtered."""
        out: dict[int, np.ndarray] = {}
        pid, probes, comm, rows = filters
        for t in self.tracks:
            wanted = None
            if probes is not None:
                wanted = [old for old, new in t.ids.items() if new in probes]
                if not wanted:
                    continue
            t.reader.seek(max(start - t.shift_ns, 0))
            for old_id, arr in t.reader.read(until_ns=max(end - t.shift_ns, 0), probe_ids=wanted).items():
                arr = _filter(arr, pid, comm, rows, t.ids.get(old_id, old_id))
                if not len(arr):
                    continue
                new_id = t.ids.get(old_id, old_id)
                # A copy, writable like the live engine's arrays (the reader's are read-only views).
                arr = arr.copy()
                if new_id != old_id or t.shift_ns:
                    arr["probe"] = new_id
                    arr["ts"] = arr["ts"].astype(np.int64) + t.shift_ns
                out[new_id] = arr
        return out

    def _time_after_n(self, start: int, n: int, filters: _Filters) -> int:
        """The timeline time just after the n-th filtered event from start (end + 1 if fewer remain)."""
        pid, probes, comm, rows = filters
        times = []
        for t in self.tracks:
            wanted = None if probes is None else [old for old, new in t.ids.items() if new in probes]
            if wanted == []:
                continue
            t.reader.seek(max(start - t.shift_ns, 0))
            got = 0
            while got < n:
                batch = t.reader.read(max_events=max(n, 1024), probe_ids=wanted)
                if not batch:
                    break
                kept = [_filter(a, pid, comm, rows, t.ids.get(o, o))["ts"].astype(np.int64) + t.shift_ns
                        for o, a in batch.items()]
                merged = np.sort(np.concatenate(kept))[:n]
                times.append(merged)
                got += len(merged)
        all_t = np.sort(np.concatenate(times)) if times else np.zeros(0, np.int64)
        if not len(all_t):
            return self.end_ns + 1
        return int(all_t[min(n, len(all_t)) - 1]) + 1

    def _screen_after(self, pos: int, filters: _Filters, n: int = 200) -> dict[int, np.ndarray]:
        """After a seek: the first n events at or after the position (the stream starts at the
        cursor), and the position moves past them so playing goes on from there.

        One read per track, decoding only as far as n events past the cursor (a cursor move on a
        10 M event recording: bench/bench_replay_window.py), then cut at the n-th event in time."""
        pid, probes, comm, rows = filters
        got: list[tuple[Track, int, np.ndarray]] = []  # (track, file probe id, events in timeline time)
        for t in self.tracks:
            wanted = None if probes is None else [old for old, new in t.ids.items() if new in probes]
            if wanted == []:
                continue
            t.reader.seek(max(pos - t.shift_ns, 0))
            kept = 0
            size = n  # a rare filter reads on in ever larger batches, not n events at a time
            while kept < n:
                batch = t.reader.read(max_events=size, probe_ids=wanted)
                if not batch:
                    break
                size = min(size * 4, 1 << 20)
                for old_id, arr in batch.items():
                    arr = _filter(arr, pid, comm, rows, t.ids.get(old_id, old_id))
                    if len(arr):
                        got.append((t, old_id, arr))
                        kept += len(arr)
        times = np.sort(np.concatenate([a["ts"].astype(np.int64) + t.shift_ns for t, _, a in got])) if got \
            else np.zeros(0, np.int64)
        end = int(times[min(n, len(times)) - 1]) + 1 if len(times) else self.end_ns + 1
        parts: dict[int, list[np.ndarray]] = {}
        for t, old_id, arr in got:
            arr = arr[: np.searchsorted(arr["ts"].astype(np.int64) + t.shift_ns, end, side="left")]
            if not len(arr):
                continue
            new_id = t.ids.get(old_id, old_id)
            arr = arr.copy()  # writable like the live engine's arrays (the reader's are read-only views)
            if new_id != old_id or t.shift_ns:
                arr["probe"] = new_id
                arr["ts"] = arr["ts"].astype(np.int64) + t.shift_ns
            parts.setdefault(new_id, []).append(arr)
        events = {p: (a[0] if len(a) == 1 else np.concatenate(a)) for p, a in parts.items()}
        with self._lock:
            if not self._reset:
                self._position = max(self._position, end)
        return events


def _filter(arr: np.ndarray, pid: int | None, comm: bytes | None, rows: RowMatch | None = None,
            probe_id: int = -1) -> np.ndarray:
    """The events that pass the filters; ``rows`` sees them under their timeline probe id."""
    if pid is not None:
        arr = arr[arr["pid"] == pid]
    if comm is not None and len(arr):
        arr = arr[np.char.find(arr["comm"], comm) >= 0]
    if rows is not None and len(arr):
        arr = arr[rows(probe_id, arr)]
    return arr


__all__ = ["ReplaySource", "Track", "open_recording", "SPEEDS"]
