"""Replay controls: pause, seek, step, speed, for a source that declares events.Playback; the
timeline (cursor, window, rate per probe) for one that declares events.TimeWindows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ktui.events import Playback, RecordedRows, TimeWindows, Update
from ktui.recording.window import WindowAggregates
from ktui.widgets.cpu_counts import CpuCounts
from ktui.widgets.flame import FlameView
from ktui.widgets.histograms import Histograms
from ktui.widgets.key_counts import KeyCountsView
from ktui.widgets.stacks import Stacks
from ktui.widgets.event_stream import EventStream
from ktui.widgets.status_bar import StatusBar
from ktui.widgets.timeline import Timeline

if TYPE_CHECKING:
    from ktui.app import KtuiApp


# The stream's empty state in a replay: nothing after the cursor (the live "Next steps" would offer to add
# probes, which a recording cannot take).
REPLAY_END_HINT = (
    " No events from the cursor on: the replay is at its end.",
    "   h H [   move the cursor back (the timeline above; m M jump to marks)",
    "   x       the whole recording in the other tabs; v v selects a window",
    "   f1      every key of a replay",
)


def replay_hint(filter_text: str) -> list[str]:
    if not filter_text:
        return list(REPLAY_END_HINT)
    return [f" No event from the cursor on matches the filter {filter_text!r}.",
            "   h H [   move the cursor back; f changes the filter (empty: every event)",
            "   f1      every key of a replay"]


def window_note(agg: WindowAggregates, names: dict[int, str]) -> str:
    """The timeline's note for a selected window: what it could not recompute exactly."""
    parts = []
    if not agg.losses_known:
        parts.append("lost/dropped counts are not known per window in this recording")
    coarse = [names.get(p, str(p)) for p in agg.coarse]
    if coarse:
        parts.append(f"at 1 s resolution: {', '.join(coarse)}")
    missing = [names.get(p, str(p)) for p in agg.not_recomputed]
    if missing:
        parts.append(f"whole recording only: {', '.join(missing)}")
    return "; ".join(parts)


class ReplayController:
    def __init__(self, app: KtuiApp) -> None:
        self.app = app
        self.paused = False
        self.speed = 1.0
        self.rate_probe: int | None = None  # the timeline's rate: of one probe, or None for all
        self._window_generation = -1  # the source's window the panes show
        # The user put the cursor somewhere (keys, mouse, a window): it stays there, where the
        # stream starts, instead of following the replay's clock, until playing resumes.
        self.cursor_held = False
        self._to_top = False  # a seek's first screen should be shown from its first row
        self._mark_found = False  # ... and its first row matching the search is the one found

    @property
    def playback(self) -> Playback | None:
        source = self.app.source
        return source if isinstance(source, Playback) else None

    @property
    def rows(self) -> RecordedRows | None:
        source = self.app.source
        return source if isinstance(source, RecordedRows) else None

    @property
    def windows(self) -> TimeWindows | None:
        source = self.app.source
        return source if isinstance(source, TimeWindows) else None

    def started(self) -> None:
        """A replay starts paused; the panes should move at once."""
        self.attach_timeline()
        self.app.main_query(EventStream).space_plays = self.playback is not None
        if self.playback is not None:
            self.playback.play()

    # --- the timeline -------------------------------------------------------------------------
    def attach_timeline(self) -> None:
        """Show the timeline for a source with time windows; the stream's TIME counts from the
        recording's start, the timeline's clock."""
        timeline = self.app.main_query(Timeline)
        windows = self.windows
        timeline.display = windows is not None
        if windows is None:
            return
        self.rate_probe = None
        self._window_generation = -1

        stream = self.app.main_query(EventStream)
        stream.set_time_zero(windows.start_ns)
        stream.searches_source = self.rows is not None  # n / N search the recording, not the rows held
        stream.hint = replay_hint("")
        timeline.set_span(windows.start_ns, windows.end_ns, self._bins, self._rate_label())
        timeline.set_selection(windows.selection)
        timeline.set_marks(windows.marks())

    def _bins(self, n: int) -> np.ndarray:
        windows = self.windows
        return windows.rate_bins(n, self.rate_probe) if windows is not None else np.zeros(n)

    def _rate_label(self) -> str:
        source = self.app.source
        if self.rate_probe is None or source is None:
            return "rate: all probes"
        layout = source.layouts.get(self.rate_probe)
        return f"rate: {layout.name if layout else self.rate_probe}"

    def on_update(self, update: Update) -> None:
        """The cursor follows the replay's clock; a newly computed window reaches the CPUs pane."""
        windows, playback, rows = self.windows, self.playback, self.rows
        if windows is None:
            return
        timeline = self.app.pane(Timeline)
        if self._to_top and update.events:  # the screen from the cursor has arrived
            self._to_top = False
            stream = self.app.pane(EventStream)
            stream.scroll_home(animate=False, immediate=True)
            if self._mark_found:  # the search moved the cursor to its match: the first matching row
                self._mark_found = False
                stream.find(1, first=True)
        if playback is not None and not self.cursor_held:  # playing: the cursor is the replay's clock
            timeline.set_cursor(playback.position_ns)
        if rows is not None:  # ev/s: the recording's own rate at the cursor, not frames of the replay
            self.app.pane(StatusBar).set_state(rate=rows.rate_at(timeline.cursor_ns))
        agg = windows.window
        shown = windows.selection or (windows.start_ns, windows.end_ns + 1)
        if windows.window_generation != self._window_generation and agg is not None \
                and (agg.start_ns, agg.end_ns) == shown:  # never a stale window under a new selection
            self._window_generation = windows.window_generation
            cpus = self.app.pane(CpuCounts)
            whole = windows.selection is None
            coarse = {p: agg.coarse_s for p in agg.coarse}
            cpus.show_window(None if whole else agg.counters, agg.cpu_history, agg.duration_s, coarse, agg.losses_known)
            names = self.app._names()
            if not whole:
                self._show_window_aggregates(agg, names)
            timeline.set_selection(windows.selection, "" if whole else window_note(agg, names))

    def _show_window_aggregates(self, agg: WindowAggregates, names: dict[int, str]) -> None:
        """A selected window's stacks, histograms and COUNT tables, set as they are, empty ones too:
        updates merge snapshots by "the newest non-empty wins", which would leave the whole
        recording's tables on screen for a window without any."""
        self.app._latest = Update(counters=agg.counters, stacks=agg.stacks, histograms=agg.histograms,
                                  counts=agg.counts)
        empty = ("stacks are recorded as totals, not per event: the window shows none; x shows the whole "
                 "recording's" if agg.not_recomputed else "No stacks in this window; x shows the whole recording's.")
        self.app.pane(Stacks).set_stacks(agg.stacks, names, empty=empty)
        self.app.pane(FlameView).set_stacks(agg.stacks, names)
        self.app.pane(Histograms).set_histograms(agg.histograms, names)
        self.app.pane(KeyCountsView).set_counts([kc for kc in agg.counts if kc.key_names != ("cpu",)], names,
                                                span_s=agg.duration_s)

    def counts_span_s(self) -> float | None:
        """The seconds a replay's COUNT tables were counted over: the selected window, else the whole
        recording. None live (live tables are running snapshots) or for a source without a timeline."""
        if self.app.mode == "live":
            return None
        windows = self.windows
        if windows is None:
            return None
        start, end = windows.selection or (windows.start_ns, windows.end_ns)
        return max(end - start, 0) / 1e9

    def move_cursor(self, columns: int) -> None:
        playback, windows = self.playback, self.windows
        if playback is None or windows is None:
            return
        timeline = self.app.main_query(Timeline)
        t = int(timeline.cursor_ns + columns * max(timeline.column_ns(), 1.0))
        t = min(max(t, windows.start_ns), windows.end_ns)
        self.seek_to(t)

    def seek_to(self, t_ns: int) -> None:
        """Every seek (cursor keys, mouse, [ ], a window, a search): the replay pauses at the cursor,
        the one clock; the stream starts there; space or p plays on from it."""
        playback = self.playback
        if playback is None:
            return
        self.cursor_held = True
        self._mark_found = False
        # the panes keep the shown window's counts across a seek (apply_update forgets only frame rates)
        if self.windows is not None:
            t_ns = min(max(int(t_ns), self.windows.start_ns), self.windows.end_ns)
        playback.pause()
        self.paused = True
        self.app.main_query(StatusBar).set_state(paused=True)
        self.app.main_query(Timeline).set_cursor(t_ns)
        self.app.main_query(EventStream).follow = False  # the stream shows its top: the cursor's event
        self._to_top = True
        playback.seek(t_ns)

    def jump_mark(self, step: int) -> None:
        """m / M: the cursor to the next or previous mark (a flight recorder's trigger)."""
        windows = self.windows
        if windows is None:
            return
        cursor = self.app.main_query(Timeline).cursor_ns
        marks = windows.marks()
        later = [t for t in marks if t > cursor] if step > 0 else [t for t in marks if t < cursor]
        if not later:
            self.app.main_query(StatusBar).set_state(
                message="no marks in this recording" if not marks else f"no mark {'after' if step > 0 else 'before'} the cursor")
            return
        t = later[0] if step > 0 else later[-1]
        self.seek_to(t)
        self.app.main_query(StatusBar).set_state(message=f"mark {marks.index(t) + 1} of {len(marks)}")

    def mark(self) -> None:
        """v: the first press marks one end of a window at the cursor, the second selects it."""
        timeline = self.app.main_query(Timeline)
        if timeline.mark_ns is None:
            timeline.mark_ns = timeline.cursor_ns
            timeline.refresh()
            self.app.main_query(StatusBar).set_state(message="window from the cursor: move it, then v again")
            return
        lo, hi = sorted((timeline.mark_ns, timeline.cursor_ns))
        timeline.mark_ns = None
        self.select(lo, hi + 1)  # from one cursor to the other, its event included: no column rounding

    def select(self, start_ns: int | None, end_ns: int | None) -> None:
        windows = self.windows
        if windows is None:
            return
        timeline = self.app.main_query(Timeline)
        timeline.mark_ns = None
        windows.select_window(start_ns, end_ns)
        if windows.selection is None:
            timeline.set_selection(None)
            self.app.pane(CpuCounts).show_window(None, {}, 0.0)
            self.app.main_query(StatusBar).set_state(message="window: the whole recording")
            return
        timeline.set_selection(windows.selection, "recomputing…")
        self.seek_to(windows.selection[0])  # the stream starts at the window
        a, b = windows.selection
        self.app.main_query(StatusBar).set_state(message=f"window {timeline.seconds(a)}–{timeline.seconds(b)}")

    def cycle_rate_probe(self) -> None:
        """t: the timeline's rate of each probe in turn, then of all."""
        source = self.app.source
        if source is None or self.windows is None:
            return
        ids = sorted(source.layouts)
        if self.rate_probe is None:
            self.rate_probe = ids[0] if ids else None
        else:
            later = [i for i in ids if i > self.rate_probe]
            self.rate_probe = later[0] if later else None
        timeline = self.app.main_query(Timeline)
        timeline.set_span(timeline.start_ns, timeline.end_ns, self._bins, self._rate_label())

    def toggle_pause(self) -> None:
        playback = self.playback
        if playback is None:
            return
        rows = self.rows
        self.paused = rows.playing if rows is not None else not self.paused  # what the replay does, not a guess
        if not self.paused:
            self.cursor_held = False
        (playback.pause if self.paused else playback.play)()
        self.app.main_query(StatusBar).set_state(paused=self.paused)

    def play_pause(self) -> None:
        """space in a replay: playing, it pauses (PAUSED, the clock and the rows stand still); paused or
        held at the cursor, it plays on from there and the stream follows. Pausing does not hold the
        view: the rows already on their way land and the stream ends where the replay stopped (held, they
        would read as '+N not shown')."""
        stream = self.app.main_query(EventStream)
        if self.playback is None:  # nothing plays: space holds or follows the rows, as live
            stream.set_follow(not stream.follow)
            return
        self.toggle_pause()
        if not self.paused:
            stream.set_follow(True)

    def resume(self) -> None:
        """space in a held replay: play on from the cursor."""
        rows = self.rows
        if self.playback is not None and rows is not None and self.paused and not rows.playing:
            self.toggle_pause()

    def seek(self, seconds: float) -> None:
        """[ and ]: the cursor (the replay's one clock) moves by seconds."""
        playback = self.playback
        if playback is None:
            return
        base = (self.app.main_query(Timeline).cursor_ns if self.windows is not None
                else playback.position_ns)
        self.seek_to(int(base + seconds * 1e9))
        self.app.main_query(StatusBar).set_state(message=f"seek {seconds:+g}s")

    # --- the stream's filter and search, over the whole recording ------------------------------
    def set_filter(self, query: str) -> bool:
        """The stream's filter applies to the recording's events; the stream is read again from the
        cursor. False when this source has no recording to filter (the stream filters its rows)."""
        rows = self.rows
        if rows is None:
            return False
        rows.set_row_filter(query)
        self.app.main_query(EventStream).hint = replay_hint(query.strip())
        self.seek_to(self.app.main_query(Timeline).cursor_ns)
        return True

    def find(self, query: str, step: int, from_ns: int | None = None) -> bool | None:
        """The next (step 1: at or after from_ns, default the cursor) or previous (-1: before it) event
        matching the search anywhere in the recording, wrapping around at either end; the cursor moves
        to it. None when this source cannot search a recording."""
        rows, windows = self.rows, self.windows
        if rows is None or windows is None:
            return None
        start = self.app.main_query(Timeline).cursor_ns if from_ns is None else from_ns
        t = rows.find(query, start, step)
        if t is None:
            t = rows.find(query, windows.start_ns if step > 0 else windows.end_ns + 1, step)
            if t is None:
                return False
            self.app.notify(f"search wrapped to the {'start' if step > 0 else 'end'} of the recording", timeout=2)
        self.seek_to(t)
        self._mark_found = True
        return True

    def find_next(self, query: str, step: int) -> None:
        """n / N: from the row found last (else the cursor) to the next or previous match."""
        stream = self.app.main_query(EventStream)
        from_ns = None
        if stream.match_abs is not None and stream.match_abs >= stream.window.first:
            _, rec = stream.window.record(stream.match_abs)
            from_ns = int(rec["ts"]) + (1 if step > 0 else 0)
        elif step < 0:
            from_ns = self.app.main_query(Timeline).cursor_ns
        if not self.find(query, step, from_ns):
            self.app.notify(f"no event of the recording matches {query!r}", severity="warning", timeout=2)

    def step(self) -> None:
        playback = self.playback
        if playback is None:
            return
        self.paused = True
        playback.step(1)
        self.app.main_query(StatusBar).set_state(paused=True)

    def change_speed(self, factor: float) -> None:
        playback = self.playback
        if playback is None:
            return
        self.speed = max(0.125, min(64.0, self.speed * factor))
        playback.set_speed(self.speed)
        self.app.main_query(StatusBar).set_state(message=f"speed x{self.speed:g}")
