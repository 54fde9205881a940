"""The event stream pane: a bounded window of events, rendered lazily line by line.

Events stay in the numpy arrays the source delivered; the window only keeps two
small integer arrays (which chunk, which row) per event, so a million events a
second cost no Python object each. A row becomes text only when it is on screen,
and rendered strips are kept in an LRU cache (toolong's ``LogLines`` pattern).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.message import Message
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from ktui.events import ProbeLayout
from ktui.row_filter import placeholder as filter_placeholder, text_filter
from ktui.formats.rows import FAULT_TEXT, faulted_fields, flag_words
from ktui.textsafe import term_safe
from ktui.units import c_string, format_value, short_labels

# Column widths (time, cpu, comm, pid, probe); the values column takes the rest of the line and
# the stream scrolls sideways for what does not fit. The probe column is as wide as the probes'
# labels (short_labels: never two names made equal), within a cap that leaves room for values.
WIDE = (12, 3, 15, 7, 18)
NARROW = (10, 2, 10, 6, 12)
# Below 80 columns (down to the 60 the app needs) the name columns give way, so a row still shows a
# value: at 60x16 the values column held only "filename…" (NEWCOMER F20).
TINY = (10, 2, 8, 6, 10)
TINY_BELOW = 70  # a stream narrower than this (not 80 columns, nor 100 with the browser beside it)
PROBE_CAP = {"wide": 32, "narrow": 20, "tiny": 10}
HOST_CAP = {False: 15, True: 24}  # the HOST column (shown when the probes run on several hosts)
MAX_ROW = 4096  # cells kept of one row (a row is at most a few hundred in practice)


def size_class(width: int) -> str:
    return "wide" if width >= 100 else "narrow" if width >= TINY_BELOW else "tiny"


def columns_for(width: int, labels: dict[int, str] | None = None) -> tuple[int, int, int, int, int]:
    t, c, m, p, r = {"wide": WIDE, "narrow": NARROW, "tiny": TINY}[size_class(width)]
    if labels:
        r = max(5, max(len(v) for v in labels.values()))
    return t, c, m, p, r


def header_for(width: int, labels: dict[int, str] | None = None) -> str:
    t, c, m, p, r = columns_for(width, labels)
    return f"{'TIME(s)':>{t}} {'CPU'[:c]:>{c}} {'COMM':<{m}} {'PID':>{p}} {'PROBE':<{r}} VALUES"


HEADER = header_for(100)
FIRST_HINT = (
    " No events yet. Next steps:",
    "   /       search a probe point (try openat, sched_switch); Enter edits it",
    "   ctrl+p  recipes: opensnoop, execsnoop, tcpconnect, syscount, profile...",
    "   5       this session's probes (space toggles, Delete removes)",
    "   f1      every key of this mode",
)
_DIM, _CYAN, _BOLD = Style(dim=True), Style(color="cyan"), Style(bold=True)
_FAULT = Style(color="red", italic=True)  # a fetch whose read faulted
_GREEN, _MAGENTA, _PLAIN = Style(color="green"), Style(color="magenta"), Style()
_FOUND = Style(reverse=True)  # the row the quick search found


class EventWindow:
    """The last ``capacity`` events in time order, as references into delivered arrays.

    Pure data (no Textual) so it can be tested and benchmarked on its own. Rows have
    absolute numbers that never change, so caches keyed by them stay valid as old
    rows fall off the front.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        # The source's time zero when it has one (a replay: the recording's start, the timeline's
        # clock), kept across clears so TIME never restarts after a seek; None: the first event.
        self.time_zero: int | None = None
        # Held (the user reads, the stream does not follow): no kept row is evicted, so the rows on
        # screen never move; once the window is full, newer rows are counted in ``not_kept`` instead.
        self.held = False
        self.not_kept = 0
        self.base_ts: int | None = None  # time zero of the TIME column (see clear)
        self.clear()

    def clear(self) -> None:
        # chunk id -> (probe id, records, the layout they were decoded with; None when unknown)
        self._chunks: dict[int, tuple[int, np.ndarray, ProbeLayout | None]] = {}
        self._next_chunk = 0
        self._chunk_of = np.zeros(0, np.int64)
        self._row_of = np.zeros(0, np.int64)
        self.first = 0  # absolute number of the oldest row kept
        self.total = 0  # events ever appended
        # Time zero of the TIME column: one clock for the session, so clearing rows never restarts it
        # (the source's own zero when it has one, else the first event ever shown).
        self.base_ts = self.time_zero if self.time_zero is not None else self.base_ts
        self._match: Callable[[int, np.ndarray], np.ndarray] | None = None
        self._visible = np.zeros(0, np.int64)  # absolute numbers of rows passing the filter
        self.not_kept = 0

    def hold(self, held: bool) -> int:
        """Hold (True) or release the window; returns how many rows were not kept while it was held."""
        skipped = self.not_kept if self.held and not held else 0
        self.held = held
        if not held:
            self.not_kept = 0
        return skipped

    def __len__(self) -> int:
        return len(self._chunk_of)

    @property
    def visible_count(self) -> int:
        return len(self._visible)

    def append(self, events: dict[int, np.ndarray], layouts: dict[int, ProbeLayout] | None = None) -> int:
        """Add one update's events (per probe id), merged in time order. Returns how many.

        Each chunk keeps the layout it is decoded with, taken now from ``layouts`` and only when it
        fits the records (every field of the layout is a field of the array): a probe id names another
        probe once its source is replaced (a new source numbers from 0), so rows already kept must
        never be read through a layout bound later."""
        parts = [(pid, arr) for pid, arr in events.items() if len(arr)]
        if not parts:
            return 0
        if self.held:  # keep what fits without evicting a row, count the rest
            parts = self._held_room(parts)
            if not parts:
                return 0
        n = sum(len(a) for _, a in parts)
        keep_from = max(0, n - self.capacity)  # an update larger than the window keeps its tail
        chunk_ids, rows, stamps = [], [], []
        for probe_id, arr in parts:
            cid = self._next_chunk
            self._next_chunk += 1
            self._chunks[cid] = (probe_id, arr, fitting_layout((layouts or {}).get(probe_id), arr))
            chunk_ids.append(np.full(len(arr), cid, np.int64))
            rows.append(np.arange(len(arr), dtype=np.int64))
            stamps.append(arr["ts"])
        chunk_of = np.concatenate(chunk_ids)
        row_of = np.concatenate(rows)
        if len(parts) > 1:
            order = np.argsort(np.concatenate(stamps), kind="stable")
            chunk_of, row_of = chunk_of[order], row_of[order]
        if keep_from:
            chunk_of, row_of = chunk_of[keep_from:], row_of[keep_from:]
        if self.base_ts is None:
            self.base_ts = int(min(int(a["ts"].min()) for _, a in parts))
        start_abs = self.total + keep_from
        self.total += n
        # Rows skipped inside an oversized update count as trimmed.
        if keep_from:
            self._chunk_of = self._chunk_of[:0]
            self._row_of = self._row_of[:0]
            self.first = start_abs
            self._visible = self._visible[:0]
        self._chunk_of = np.concatenate([self._chunk_of, chunk_of])
        self._row_of = np.concatenate([self._row_of, row_of])
        new_abs = np.arange(start_abs, start_abs + len(chunk_of), dtype=np.int64)
        self._visible = np.concatenate([self._visible, self._filter_new(new_abs, chunk_of, row_of)])
        self._trim()
        return n

    def _held_room(self, parts: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
        """The oldest rows of this update that fit in the held window without evicting any."""
        n = sum(len(a) for _, a in parts)
        room = max(0, self.capacity - len(self))
        if n <= room:
            return parts
        if not room:
            self.not_kept += n
            return []
        cutoff = np.sort(np.concatenate([a["ts"] for _, a in parts]), kind="stable")[room - 1]
        kept: list[tuple[int, np.ndarray]] = []
        for probe_id, arr in parts:  # rows up to the cutoff time; ties beyond the room are cut last
            take = arr[arr["ts"] <= cutoff][:room - sum(len(a) for _, a in kept)]
            if len(take):
                kept.append((probe_id, take))
        self.not_kept += n - sum(len(a) for a in (a for _, a in kept))
        return kept

    def _filter_new(self, new_abs: np.ndarray, chunk_of: np.ndarray, row_of: np.ndarray) -> np.ndarray:
        if self._match is None:
            return new_abs
        keep = np.zeros(len(new_abs), bool)
        for cid in np.unique(chunk_of):
            sel = chunk_of == cid
            probe_id, arr, _ = self._chunks[int(cid)]
            keep[sel] = self._match(probe_id, arr[row_of[sel]])
        return new_abs[keep]

    def _trim(self) -> None:
        extra = len(self._chunk_of) - self.capacity
        if extra > 0:
            self._chunk_of = self._chunk_of[extra:]
            self._row_of = self._row_of[extra:]
            self.first += extra
        if len(self._visible) and self._visible[0] < self.first:
            self._visible = self._visible[np.searchsorted(self._visible, self.first):]
        # Chunks of one update interleave by time: the oldest still referenced is the minimum, not the first.
        oldest = int(self._chunk_of.min()) if len(self._chunk_of) else self._next_chunk
        for cid in [c for c in self._chunks if c < oldest]:
            del self._chunks[cid]

    def set_filter(self, match: Callable[[int, np.ndarray], np.ndarray] | None) -> None:
        """``match(probe_id, records) -> bool array``; None shows every row."""
        self._match = match
        all_abs = np.arange(self.first, self.first + len(self._chunk_of), dtype=np.int64)
        self._visible = self._filter_new(all_abs, self._chunk_of, self._row_of)

    def find(self, match: Callable[[int, np.ndarray], np.ndarray], start: int, step: int,
             block: int = 4096) -> int | None:
        """The first visible index from ``start`` going ``step`` (+1 or -1) whose row matches, or None.
        Rows are tested a block at a time, vectorized per delivered chunk."""
        n = len(self._visible)
        i = max(0, min(start, n - 1)) if n else 0
        while 0 <= i < n:
            lo, hi = (i, min(n, i + block)) if step > 0 else (max(0, i - block + 1), i + 1)
            idx = self._visible[lo:hi] - self.first
            chunks = self._chunk_of[idx]
            hits = np.zeros(len(idx), bool)
            for cid in np.unique(chunks):
                sel = chunks == cid
                probe_id, arr, _ = self._chunks[int(cid)]
                hits[sel] = match(probe_id, arr[self._row_of[idx[sel]]])
            found = np.flatnonzero(hits)
            if len(found):
                return lo + int(found[0] if step > 0 else found[-1])
            i = hi if step > 0 else lo - 1
        return None

    def kept_layouts(self) -> list[ProbeLayout]:
        """The layouts the kept rows were decoded with, each once."""
        seen: list[ProbeLayout] = []
        for _, _, layout in self._chunks.values():
            if layout is not None and layout not in seen:
                seen.append(layout)
        return seen

    def visible_abs(self, index: int) -> int:
        return int(self._visible[index])

    def record(self, absolute: int) -> tuple[int, np.void]:
        """The (probe id, record) of the row with this absolute number."""
        probe_id, rec, _ = self.entry(absolute)
        return probe_id, rec

    def entry(self, absolute: int) -> tuple[int, np.void, ProbeLayout | None]:
        """The (probe id, record, the layout it was decoded with) of the row with this absolute number."""
        i = absolute - self.first
        probe_id, arr, layout = self._chunks[int(self._chunk_of[i])]
        return probe_id, arr[int(self._row_of[i])], layout

    def count(self, *, pid: int | None = None, probe_id: int | None = None) -> int:
        """How many kept rows match (used by tests and the status line)."""
        total = 0
        for cid in np.unique(self._chunk_of):
            sel = self._chunk_of == cid
            pr, arr, _ = self._chunks[int(cid)]
            if probe_id is not None and pr != probe_id:
                continue
            recs = arr[self._row_of[sel]]
            total += int(np.count_nonzero(recs["pid"] == pid)) if pid is not None else len(recs)
        return total


def fitting_layout(layout: ProbeLayout | None, records: np.ndarray) -> ProbeLayout | None:
    """``layout`` when it can read these records (each of its fields is one of theirs), else None."""
    if layout is None:
        return None
    names = records.dtype.names or ()
    return layout if all(f.name in names for f in layout.fields) else None


class EventStream(ScrollView, can_focus=True):
    """Virtualized list of events; follows the newest unless paused."""

    BINDINGS = [
        Binding("space", "toggle_follow", "Follow/pause", id="stream.follow"),
        Binding("f", "filter", "Filter", id="stream.filter"),
        Binding("c", "clear", "Clear", id="stream.clear", show=False),
        Binding("s", "search", "Find", id="stream.search", show=False),
        Binding("n", "find(1)", "Find next", id="stream.find_next", show=False),
        Binding("N", "find(-1)", "Find previous", id="stream.find_previous", show=False),
        Binding("enter", "inspect", "Inspect", id="stream.inspect"),
    ]

    follow: reactive[bool] = reactive(True)
    # A replay's space pauses and plays the replay (PlayPauseRequested), not only the view: holding
    # the rows while the replay ran on left the user's place moving away (set by the app's replay).
    space_plays = False

    def __init__(self, capacity: int = 100_000, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.window = EventWindow(capacity)
        self.layouts: dict[int, ProbeLayout] = {}
        self.symbolize: Callable[[int, int | None], str] | None = None
        # The frames behind an event's stack ids (the source's EventStacks), for the inspector.
        self.stack_frames: Callable[[int, int, bool, int | None], list[str]] | None = None
        self._strips: LRUCache[tuple[int, int], Strip] = LRUCache(2048)
        self._stale = False  # rows arrived while hidden, not yet sized or scrolled to
        self.hint: list[str] = list(FIRST_HINT)  # shown until the first event arrives
        self.labels: dict[int, str] = {}  # probe id -> the label shown in the PROBE column
        self.hosts: dict[int, tuple[str, str]] = {}  # probe id -> (host, own name): ktui.events.ProbeHosts
        self.host_w = 0  # width of the HOST column; 0: no such column (the probes run on one machine)
        self.cols: tuple[int, int, int, int, int] = columns_for(80)
        self._shown_width = 0  # the width it last had on screen (0: never shown yet)
        self._widest = 0  # the widest row drawn so far: how far the stream scrolls sideways
        self.search_query = ""  # the quick search (s), found with n / N; rows stay shown
        # A replay: n / N ask the source for the next match in the whole recording (FindRequested).
        self.searches_source = False
        self.match_abs: int | None = None  # the row found last (drawn reversed)

    # --- data in -------------------------------------------------------------
    def set_layouts(self, layouts: dict[int, ProbeLayout], symbolize: Callable | None = None,
                    hosts: dict[int, tuple[str, str]] | None = None) -> None:
        """``hosts``: each probe's host and own name (ktui.events.ProbeHosts); with more than one host
        the stream has a HOST column and the PROBE column shows the probes' own names."""
        self.layouts = dict(layouts)
        self.symbolize = symbolize
        several = len({host for host, _ in (hosts or {}).values()}) > 1
        self.hosts = {pid: h for pid, h in (hosts or {}).items() if pid in self.layouts} if several else {}
        self._relabel()
        self.refresh()

    def _relabel(self) -> None:
        """Probe labels and column widths for this width (names change with the probes, caps with width)."""
        # A hidden stream (another tab on screen) has no size: lay out for the width it last had on
        # screen, since showing it again at that width sends no resize to correct a guess.
        width = self.size.width or self._shown_width or 80
        names = {pid: self.hosts[pid][1] if pid in self.hosts else lay.name for pid, lay in self.layouts.items()}
        cap = PROBE_CAP[size_class(width)]
        self.host_w = min(HOST_CAP[width >= 100], max([4, *(len(h) for h, _ in self.hosts.values())])) \
            if self.hosts else 0
        self.labels = short_labels(names, cap) if names else {}
        # Rows of probes no longer in the source (replaced or removed) keep their own names: room for them.
        gone = [lay.name for lay in self.window.kept_layouts() if self.layouts.get(lay.probe_id) != lay]
        self.cols = columns_for(width, {**self.labels, **{-1 - i: n[:cap] for i, n in enumerate(gone)}})
        self._strips.clear()
        self._widest = width
        self._update_header()

    def _update_header(self) -> None:
        """The header scrolls sideways with the rows."""
        if self.parent is None:
            return
        t, c, m, p, r = self.cols
        host = f"{'HOST':<{self.host_w}} " if self.host_w else ""
        text = f"{'TIME(s)':>{t}} {'CPU'[:c]:>{c}} {'COMM':<{m}} {'PID':>{p}} {host}{'PROBE':<{r}} VALUES"
        x = int(self.scroll_offset.x)
        for h in self.parent.query("#stream-header"):
            if isinstance(h, Static):
                h.update(text[x:] if x else text)

    def append(self, events: dict[int, np.ndarray], *, visible: bool = True) -> None:
        """Add events; ``visible=False`` (another tab is shown) keeps them and draws nothing until
        ``catch_up``: scrolling and repainting a hidden pane thirty times a second is wasted work."""
        if not events or not self.window.append(events, self.layouts):
            return
        if not visible:
            self._stale = True
            return
        self._stale = False
        self._resize()
        self._follow_end()
        self.refresh()

    def catch_up(self) -> None:
        """The pane is on screen again: size, scroll and paint for the rows that arrived meanwhile."""
        if self._stale:
            self._stale = False
            self._resize()
            self._follow_end()
            self.refresh()

    def _follow_end(self) -> None:
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
            # The first rows make the scrollbar appear only after layout: scroll again then.
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)

    def set_time_zero(self, t_ns: int | None) -> None:
        """TIME counts from this source time (None: from the first event shown)."""
        self.window.time_zero = t_ns
        self.window.base_ts = t_ns if t_ns is not None else self.window.base_ts
        self._strips.clear()
        self.refresh()

    def clear(self, *, resize: bool = True) -> None:
        """Drop every row. ``resize=False`` when rows are appended at once (a replay's seek): the size
        changes once, to theirs, not to empty and back."""
        self.window.clear()
        self.match_abs = None
        self._strips.clear()
        if resize:
            self._resize()
        self.refresh()

    def set_filter(self, query: str) -> None:
        self.window.set_filter(text_filter(query, self.layouts))
        self._resize()
        self._follow_end()
        self.refresh()

    def _resize(self) -> None:
        self.virtual_size = Size(max(self.scrollable_content_region.width, self._widest), self.window.visible_count)

    @property
    def allow_horizontal_scroll(self) -> bool:
        """Left/right scroll rows wider than the pane (no scrollbar: the row's last cell says "…")."""
        return not self._check_disabled() and self.virtual_size.width > self.scrollable_content_region.width

    # --- actions ---------------------------------------------------------------
    def action_toggle_follow(self) -> None:
        if self.space_plays:  # a replay: space pauses and plays the replay itself (the app answers)
            self.post_message(self.PlayPauseRequested())
            return
        self.set_follow(not self.follow)

    def set_follow(self, follow: bool) -> None:
        """Follow the newest rows, or hold the view still for reading."""
        self.follow = follow
        if self.follow:
            self._set_match(None)
        self._follow_end()

    def action_filter(self) -> None:
        self.post_message(self.FilterRequested())

    def action_clear(self) -> None:
        """c clears the rows kept (the counters and the TIME clock go on): ask first, it discards data."""
        if not self.window.total:
            return
        from ktui.widgets.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.clear()
        self.app.push_screen(ConfirmScreen(f"Clear the stream's {len(self.window):,} rows?",
                                           "The rows are discarded; the counters and the TIME clock go on."),
                             answered)

    def action_search(self) -> None:
        self.post_message(self.SearchRequested())

    def set_search(self, query: str) -> bool:
        """Search for ``query`` (the filter's syntax). Following the newest rows, it finds the newest
        match (backwards from the end); held, the first match from the top row on screen, forward.
        Either way it wraps around. Returns found."""
        self.search_query = query.strip()
        self._set_match(None)
        if not self.search_query:
            return False
        return self.find(-1 if self.follow else 1, first=True)

    def action_find(self, step: int) -> None:
        if not self.search_query:
            self.post_message(self.SearchRequested())
            return
        if self.searches_source:  # a replay: the match may lie anywhere in the recording
            self.post_message(self.FindRequested(self.search_query, step))
            return
        if not self.find(step):
            self.notify(f"no row matches {self.search_query!r}", severity="warning", timeout=2)

    def find(self, step: int, *, first: bool = False) -> bool:
        """Move to the next (step 1) or previous (-1) row matching the search, wrapping around at
        either end (a notice says so); reading stops following."""
        match = text_filter(self.search_query, self.layouts)
        if match is None:
            return False
        n = self.window.visible_count
        if not n:
            return False
        current = self._match_index()
        if current is None:  # from the rows on screen: the top one forward, the bottom one back
            top = int(self.scroll_offset.y)
            bottom = min(n - 1, top + self.scrollable_content_region.height - 1)
            start = (top if step > 0 else bottom) if not (first and self.follow) else n - 1
        else:
            start = current if first else current + step
        wrapped = False
        if not 0 <= start < n:
            start, wrapped = (0 if step > 0 else n - 1), True
        index = self.window.find(match, start, step)
        if index is None and start != (0 if step > 0 else n - 1):
            index = self.window.find(match, 0 if step > 0 else n - 1, step)
            wrapped = index is not None
        if index is None:
            return False
        if wrapped:
            self.notify(f"search wrapped to the {'top' if step > 0 else 'bottom'}", timeout=2)
        self.follow = False
        self._set_match(self.window.visible_abs(index))
        height = max(1, self.scrollable_content_region.height)
        if not (self.scroll_offset.y <= index < self.scroll_offset.y + height):
            self.scroll_to(y=max(0, index - height // 2), animate=False, immediate=True)
        return True

    def _match_index(self) -> int | None:
        if self.match_abs is None or self.match_abs < self.window.first:
            return None
        i = int(np.searchsorted(self.window._visible, self.match_abs))
        return i if i < self.window.visible_count and self.window.visible_abs(i) == self.match_abs else None

    def _set_match(self, absolute: int | None) -> None:
        self.match_abs = absolute
        self.refresh()

    # Moving up means the user wants to read: stop following.
    def action_scroll_up(self) -> None:
        self._move_cursor(-1)

    def action_scroll_down(self) -> None:
        self._move_cursor(1)

    def _move_cursor(self, step: int) -> None:
        """Up/down move the row cursor (the reversed row Enter inspects); the first press puts it on
        the bottom row on screen (up) or the top one (down). Moving it means the user reads: the stream
        stops following."""
        n = self.window.visible_count
        if not n:
            return
        self.follow = False
        current = self._match_index()
        if current is None:
            top = int(self.scroll_offset.y)
            index = min(n - 1, top + self.scrollable_content_region.height - 1) if step < 0 else min(n - 1, top)
        else:
            index = max(0, min(n - 1, current + step))
        self._set_match(self.window.visible_abs(index))
        self._scroll_to_index(index)

    def _scroll_to_index(self, index: int) -> None:
        height = max(1, self.scrollable_content_region.height)
        top = int(self.scroll_offset.y)
        if index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False, immediate=True)

    def cursor_row(self) -> int | None:
        """The absolute number of the row Enter inspects: the cursor's, else the newest on screen."""
        current = self._match_index()
        if current is not None:
            return self.window.visible_abs(current)
        n = self.window.visible_count
        if not n:
            return None
        top = int(self.scroll_offset.y)
        return self.window.visible_abs(min(n - 1, top + self.scrollable_content_region.height - 1))

    def action_inspect(self) -> None:
        absolute = self.cursor_row()
        if absolute is None:
            return
        from ktui.widgets.inspector import InspectorScreen

        title, fields = self.inspect(absolute)

        def chosen(query: str | None) -> None:
            if query:
                self.post_message(self.FilterChosen(query))
        self.app.push_screen(InspectorScreen(title, fields, self.event_stack(absolute)), chosen)

    def event_stack(self, absolute: int) -> list[str]:
        """The row's own stack, kernel frames then user frames, when its probe takes stacks."""
        probe_id, rec, _ = self.window.entry(absolute)
        names = rec.dtype.names or ()
        if self.stack_frames is None:
            return []
        pid = int(rec["pid"])
        kernel = self.stack_frames(probe_id, int(rec["kstack"]), False, None) if "kstack" in names else []
        user = self.stack_frames(probe_id, int(rec["ustack"]), True, pid) if "ustack" in names else []
        return kernel + ([f"-- user ({pid})"] + user if user else [])

    def inspect(self, absolute: int) -> tuple[str, list]:
        """One row's every field in full (what the inspector shows)."""
        from ktui.units import errno_text
        from ktui.widgets.inspector import InspectedField

        probe_id, rec, kept = self.window.entry(absolute)
        layout = self.layout_for(probe_id, rec, kept)
        name = layout.name if layout else f"probe{probe_id}"
        base = self.window.base_ts or 0
        comm = c_string(bytes(rec["comm"]))
        fields = [
            InspectedField("probe", name, layout.spec if layout else name, f"probe={name}"),
            InspectedField("time", f"{(int(rec['ts']) - base) / 1e9:.9f}s", f"ts={int(rec['ts'])}ns", ""),
            InspectedField("cpu", str(int(rec["cpu"])), str(int(rec["cpu"])), f"cpu={int(rec['cpu'])}"),
            InspectedField("comm", comm, comm, f"comm={comm}"),
            InspectedField("pid", str(int(rec["pid"])), str(int(rec["pid"])), f"pid={int(rec['pid'])}"),
            InspectedField("tid", str(int(rec["tid"])), str(int(rec["tid"])), f"tid={int(rec['tid'])}"),
            InspectedField("uid", str(int(rec["uid"])), str(int(rec["uid"])), f"uid={int(rec['uid'])}"),
        ]
        faults = set(faulted_fields(layout, int(rec["flags"]))) if layout else set()
        for f in layout.fields if layout else ():
            value = rec[f.name]
            if f.name in faults:  # its stored 0 or '' is no value: say the read faulted
                fields.append(InspectedField(f.name, FAULT_TEXT, FAULT_TEXT, ""))
                continue
            if isinstance(value, bytes):
                text = c_string(value)
                fields.append(InspectedField(f.name, repr(text), repr(text), f"{f.name}={text}"))
                continue
            try:
                number = int(value)
            except (TypeError, ValueError):
                fields.append(InspectedField(f.name, str(value), str(value), ""))
                continue
            shown = format_value(value, f.display, self.symbolize, int(rec["pid"]))
            if f.display == "errno" or (f.name in ("ret", "retval") and number < 0):
                shown = errno_text(number)
            raw = f"{number} = {number & ((1 << 64) - 1):#x}" if number < 0 else f"{number} = {number:#x}"
            fields.append(InspectedField(f.name, shown, raw, f"{f.name}={number}"))
        flags = int(rec["flags"])
        words = flag_words(layout, flags) if layout else []
        fields.append(InspectedField("flags", "; ".join(words) or "none", f"{flags:#x}", ""))
        return f"{name}  ({layout.spec if layout else ''})", fields

    class FilterChosen(Message):
        """The user chose a filter for the stream outside its box (the inspector's p / c / v)."""

        def __init__(self, query: str) -> None:
            super().__init__()
            self.query = query

    def action_page_up(self) -> None:
        self.follow = False
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.follow = False
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self.follow = True
        self._set_match(None)  # following the newest: no row cursor
        super().action_scroll_end()

    class PlayPauseRequested(Message):
        """space in a replay: pause the playback (the stream holds) or play on (it follows)."""

    class FollowChanged(Message):
        """Following the newest rows, or paused for reading (the status line shows which)."""

        def __init__(self, follow: bool) -> None:
            super().__init__()
            self.follow = follow

    def watch_follow(self, follow: bool) -> None:
        skipped = self.window.hold(not follow)  # held: the rows on screen stay put
        if skipped:
            self.notify(f"{skipped:,} rows that arrived while held were not kept; the stream goes on from now",
                        timeout=4)
        self.post_message(self.FollowChanged(follow))

    class FilterRequested(Message):
        """The user asked to filter the stream (the pane shows its filter box)."""

    class SearchRequested(Message):
        """The user asked to search the stream (the pane shows its search box)."""

    class FindRequested(Message):
        """n / N in a stream whose source searches (a replay: the whole recording, not the rows held)."""

        def __init__(self, query: str, step: int) -> None:
            super().__init__()
            self.query = query
            self.step = step

    # --- rendering -------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def on_resize(self) -> None:
        self._shown_width = self.size.width or self._shown_width
        self._relabel()
        self._resize()
        self._follow_end()

    def watch_scroll_x(self, old: float, new: float) -> None:
        super().watch_scroll_x(old, new)
        self._update_header()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width  # without the scrollbar's gutter
        if index >= self.window.visible_count:
            if not self.window.total and y < len(self.hint):  # nothing yet: say what to do next
                return Strip([Segment(self.hint[y], _DIM if y else _BOLD)]).crop_extend(0, width, self.rich_style)
            return Strip.blank(width, self.rich_style)
        absolute = self.window.visible_abs(index)
        strip = self._strips.get((absolute, 0))
        if strip is None:
            strip = self._render_row(absolute)
            self._strips[(absolute, 0)] = strip
            if strip.cell_length > self._widest:  # a longer row: the stream scrolls further sideways
                self._widest = strip.cell_length
                self.call_later(self._resize)
        if absolute == self.match_abs:
            strip = strip.apply_style(_FOUND)
        more = strip.cell_length > scroll_x + width  # the row goes on to the right: say so
        strip = strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)
        if more and width > 1:
            strip = Strip.join([strip.crop(0, width - 1), Strip([Segment("…", _DIM)], 1)])
        return strip

    def _render_row(self, absolute: int) -> Strip:
        """One whole row as segments built directly (no rich Text and console render per row: rows
        are painted thirty times a second when following); the view crops it to the window."""
        probe_id, rec, layout = self.window.entry(absolute)
        segments: list[Segment] = []
        used = 0
        for text, style in self.row_pieces(probe_id, rec, self.cols, layout):
            n = cell_len(text)
            if used + n > MAX_ROW:
                segments.append(Segment(set_cell_size(text, MAX_ROW - used), style))
                used = MAX_ROW
                break
            segments.append(Segment(text, style))
            used += n
        return Strip(segments, used)

    def layout_for(self, probe_id: int, rec: np.void, kept: ProbeLayout | None = None) -> ProbeLayout | None:
        """The layout to read a row with: the one its chunk was decoded with, else the probe's current one
        if it fits the record (a record is never read through another probe's fields)."""
        if kept is not None:
            return kept
        names = rec.dtype.names or ()
        current = self.layouts.get(probe_id)
        return current if current is not None and all(f.name in names for f in current.fields) else None

    def row_pieces(self, probe_id: int, rec: np.void, cols: tuple[int, ...] = WIDE,
                   kept: ProbeLayout | None = None) -> list[tuple[str, Style]]:
        time_w, cpu_w, comm_w, pid_w, probe_w = cols
        layout = self.layout_for(probe_id, rec, kept)
        base = self.window.base_ts or 0
        secs = (int(rec["ts"]) - base) / 1e9
        comm = term_safe(c_string(bytes(rec["comm"])))
        # The short label is the current probe's: a row of a replaced probe shows its own name.
        current = layout is not None and self.layouts.get(probe_id) == layout
        if layout is not None and current:
            name = term_safe(self.labels.get(probe_id) or layout.name)
        else:  # a probe no longer in the source: its own name, cut in the middle if it must be
            own = layout.name if layout else f"probe{probe_id}"
            name = term_safe(short_labels({0: own}, probe_w)[0] if len(own) > probe_w else own)
        pieces = [
            (f"{secs:>{time_w}.6f} ", _DIM),
            (f"{int(rec['cpu']):>{cpu_w}} ", _CYAN),
            (f"{comm[:comm_w]:<{comm_w}} ", _BOLD),
            (f"{int(rec['pid']):>{pid_w}} ", _GREEN),
            (f"{name[:probe_w]:<{probe_w}} ", _MAGENTA),
        ]
        if self.host_w:  # several hosts: which one, before the probe's own name
            # a row of a probe no longer in the source has "" here: its own name says HOST:probe
            host = term_safe(self.hosts[probe_id][0]) if current and probe_id in self.hosts else ""
            pieces.insert(4, (f"{host[:self.host_w]:<{self.host_w}} ", _CYAN))
        if layout and layout.fields:
            faults = set(faulted_fields(layout, int(rec["flags"])))
            for i, f in enumerate(layout.fields):
                sep = " " if i else ""
                if f.name in faults:  # a read that faulted has no value: never show its 0 or ''
                    pieces.append((term_safe(f"{sep}{f.name}={FAULT_TEXT}"), _FAULT))
                else:
                    value = format_value(rec[f.name], f.display, self.symbolize, int(rec['pid']))
                    pieces.append((term_safe(f"{sep}{f.name}={value}"), _PLAIN))
        return pieces

    def row_text(self, probe_id: int, rec: np.void, cols: tuple[int, ...] = WIDE,
                 kept: ProbeLayout | None = None) -> Text:
        text = Text(no_wrap=True)
        for piece, style in self.row_pieces(probe_id, rec, cols, kept):
            text.append(piece, style or None)
        return text


class StreamFilter(Input):
    """The stream's quick filter box (Escape hides it)."""


class StreamSearch(Input):
    """The stream's quick search box: Enter finds the first match, then n / N (Escape hides it)."""


class EventStreamPane(Vertical):
    """Header, the stream, its filter box and its search box."""

    def compose(self):
        yield Static(HEADER, id="stream-header", markup=False)
        yield EventStream(id="event-stream")
        yield StreamFilter(placeholder=filter_placeholder("filter"), id="stream-filter")
        yield StreamSearch(placeholder=filter_placeholder("find (n/N)"), id="stream-search")
