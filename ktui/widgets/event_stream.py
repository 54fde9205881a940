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
from ktui.textsafe import term_safe
from ktui.widgets.value_format import format_value

# Column widths (time, cpu, comm, pid, probe); the values column takes the rest of the line.
# Below 100 cells the narrow set leaves room for values at 80x24.
WIDE = (12, 3, 15, 7, 18)
NARROW = (10, 2, 10, 6, 12)


def columns_for(width: int) -> tuple[int, int, int, int, int]:
    return WIDE if width >= 100 else NARROW


def header_for(width: int) -> str:
    t, c, m, p, r = columns_for(width)
    return f"{'TIME(s)':>{t}} {'CPU'[:c]:>{c}} {'COMM':<{m}} {'PID':>{p}} {'PROBE':<{r}} VALUES"


HEADER = header_for(100)
_DIM, _CYAN, _BOLD = Style(dim=True), Style(color="cyan"), Style(bold=True)
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
        self.clear()

    def clear(self) -> None:
        self._chunks: dict[int, tuple[int, np.ndarray]] = {}
        self._next_chunk = 0
        self._chunk_of = np.zeros(0, np.int64)
        self._row_of = np.zeros(0, np.int64)
        self.first = 0  # absolute number of the oldest row kept
        self.total = 0  # events ever appended
        self.base_ts: int | None = None  # time zero of the TIME column
        self._match: Callable[[int, np.ndarray], np.ndarray] | None = None
        self._visible = np.zeros(0, np.int64)  # absolute numbers of rows passing the filter

    def __len__(self) -> int:
        return len(self._chunk_of)

    @property
    def visible_count(self) -> int:
        return len(self._visible)

    def append(self, events: dict[int, np.ndarray]) -> int:
        """Add one update's events (per probe id), merged in time order. Returns how many."""
        parts = [(pid, arr) for pid, arr in events.items() if len(arr)]
        if not parts:
            return 0
        n = sum(len(a) for _, a in parts)
        keep_from = max(0, n - self.capacity)  # an update larger than the window keeps its tail
        chunk_ids, rows, stamps = [], [], []
        for probe_id, arr in parts:
            cid = self._next_chunk
            self._next_chunk += 1
            self._chunks[cid] = (probe_id, arr)
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

    def _filter_new(self, new_abs: np.ndarray, chunk_of: np.ndarray, row_of: np.ndarray) -> np.ndarray:
        if self._match is None:
            return new_abs
        keep = np.zeros(len(new_abs), bool)
        for cid in np.unique(chunk_of):
            sel = chunk_of == cid
            probe_id, arr = self._chunks[int(cid)]
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
                probe_id, arr = self._chunks[int(cid)]
                hits[sel] = match(probe_id, arr[self._row_of[idx[sel]]])
            found = np.flatnonzero(hits)
            if len(found):
                return lo + int(found[0] if step > 0 else found[-1])
            i = hi if step > 0 else lo - 1
        return None

    def visible_abs(self, index: int) -> int:
        return int(self._visible[index])

    def record(self, absolute: int) -> tuple[int, np.void]:
        """The (probe id, record) of the row with this absolute number."""
        i = absolute - self.first
        probe_id, arr = self._chunks[int(self._chunk_of[i])]
        return probe_id, arr[int(self._row_of[i])]

    def count(self, *, pid: int | None = None, probe_id: int | None = None) -> int:
        """How many kept rows match (used by tests and the status line)."""
        total = 0
        for cid in np.unique(self._chunk_of):
            sel = self._chunk_of == cid
            pr, arr = self._chunks[int(cid)]
            if probe_id is not None and pr != probe_id:
                continue
            recs = arr[self._row_of[sel]]
            total += int(np.count_nonzero(recs["pid"] == pid)) if pid is not None else len(recs)
        return total


def text_filter(query: str, layouts: dict[int, ProbeLayout]) -> Callable[[int, np.ndarray], np.ndarray] | None:
    """The stream's quick filter: ``pid=N``, ``cpu=N``, ``probe=NAME``, or text in the comm or probe name."""
    query = query.strip()
    if not query:
        return None
    key, sep, value = query.partition("=")
    key, value = key.strip(), value.strip()
    if sep and key in ("pid", "tid", "cpu", "uid") and value.isdigit():
        number = int(value)
        return lambda _p, recs: recs[key] == number
    if sep and key == "probe":
        return lambda p, recs: np.full(len(recs), value in (layouts[p].name if p in layouts else ""), bool)
    needle = query.encode(errors="replace")

    def match(p: int, recs: np.ndarray) -> np.ndarray:
        in_comm = np.char.find(recs["comm"], needle) >= 0
        name = layouts[p].name if p in layouts else ""
        return in_comm | (query in name)

    return match


class EventStream(ScrollView, can_focus=True):
    """Virtualized list of events; follows the newest unless paused."""

    BINDINGS = [
        Binding("space", "toggle_follow", "Follow/pause", id="stream.follow"),
        Binding("f", "filter", "Filter", id="stream.filter"),
        Binding("c", "clear", "Clear", id="stream.clear", show=False),
        Binding("s", "search", "Find", id="stream.search", show=False),
        Binding("n", "find(1)", "Find next", id="stream.find_next", show=False),
        Binding("N", "find(-1)", "Find previous", id="stream.find_previous", show=False),
    ]

    follow: reactive[bool] = reactive(True)

    def __init__(self, capacity: int = 100_000, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.window = EventWindow(capacity)
        self.layouts: dict[int, ProbeLayout] = {}
        self.symbolize: Callable[[int, int | None], str] | None = None
        self._strips: LRUCache[tuple[int, int], Strip] = LRUCache(2048)
        self._stale = False  # rows arrived while hidden, not yet sized or scrolled to
        self.search_query = ""  # the quick search (s), found with n / N; rows stay shown
        self.match_abs: int | None = None  # the row found last (drawn reversed)

    # --- data in -------------------------------------------------------------
    def set_layouts(self, layouts: dict[int, ProbeLayout], symbolize: Callable | None = None) -> None:
        self.layouts = dict(layouts)
        self.symbolize = symbolize
        self._strips.clear()
        self.refresh()

    def append(self, events: dict[int, np.ndarray], *, visible: bool = True) -> None:
        """Add events; ``visible=False`` (another tab is shown) keeps them and draws nothing until
        ``catch_up``: scrolling and repainting a hidden pane thirty times a second is wasted work."""
        if not events or not self.window.append(events):
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

    def clear(self) -> None:
        self.window.clear()
        self.match_abs = None
        self._strips.clear()
        self._resize()
        self.refresh()

    def set_filter(self, query: str) -> None:
        self.window.set_filter(text_filter(query, self.layouts))
        self._resize()
        self._follow_end()
        self.refresh()

    def _resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.window.visible_count)

    # --- actions ---------------------------------------------------------------
    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self._follow_end()

    def action_filter(self) -> None:
        self.post_message(self.FilterRequested())

    def action_clear(self) -> None:
        self.clear()

    def action_search(self) -> None:
        self.post_message(self.SearchRequested())

    def set_search(self, query: str) -> bool:
        """Search for ``query`` (the filter's syntax) from the row on screen, forward. Returns found."""
        self.search_query = query.strip()
        self._set_match(None)
        if not self.search_query:
            return False
        return self.find(1, first=True)

    def action_find(self, step: int) -> None:
        if not self.search_query:
            self.post_message(self.SearchRequested())
            return
        if not self.find(step):
            self.notify(f"no {'later' if step > 0 else 'earlier'} row matches {self.search_query!r}",
                        severity="warning", timeout=2)

    def find(self, step: int, *, first: bool = False) -> bool:
        """Move to the next (step 1) or previous (-1) row matching the search; reading stops following."""
        match = text_filter(self.search_query, self.layouts)
        if match is None:
            return False
        current = self._match_index()
        if current is None:  # from the rows on screen: the top one forward, the bottom one back
            top = int(self.scroll_offset.y)
            start = top if step > 0 else top + self.scrollable_content_region.height - 1
        else:
            start = current if first else current + step
        index = self.window.find(match, start, step)
        if index is None:
            return False
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
        self.follow = False
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.follow = False
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.follow = False
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self.follow = True
        super().action_scroll_end()

    class FollowChanged(Message):
        """Following the newest rows, or paused for reading (the status line shows which)."""

        def __init__(self, follow: bool) -> None:
            super().__init__()
            self.follow = follow

    def watch_follow(self, follow: bool) -> None:
        self.post_message(self.FollowChanged(follow))

    class FilterRequested(Message):
        """The user asked to filter the stream (the pane shows its filter box)."""

    class SearchRequested(Message):
        """The user asked to search the stream (the pane shows its search box)."""

    # --- rendering -------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def on_resize(self) -> None:
        self._strips.clear()
        header = self.parent.query("#stream-header") if self.parent is not None else []
        for h in header:
            h.update(header_for(self.size.width))
        self._resize()
        self._follow_end()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        if index >= self.window.visible_count:
            return Strip.blank(width, self.rich_style)
        absolute = self.window.visible_abs(index)
        key = (absolute, width)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._render_row(absolute, width)
            self._strips[key] = strip
        if absolute == self.match_abs:
            strip = strip.apply_style(_FOUND)
        return strip.crop(scroll_x, scroll_x + width)

    def _render_row(self, absolute: int, width: int) -> Strip:
        """One row as segments built directly (the same segments ``row_text`` renders to, without a
        rich Text and a console render per row: rows are painted thirty times a second when following)."""
        probe_id, rec = self.window.record(absolute)
        segments: list[Segment] = []
        used = 0
        for text, style in self.row_pieces(probe_id, rec, columns_for(width)):
            n = cell_len(text)
            if used + n > width:  # as Text.truncate(width, overflow="ellipsis") does
                if width - 1 < used:  # the cut falls in an earlier piece: render it the slow way
                    return self._render_row_text(probe_id, rec, width)
                segments.append(Segment(set_cell_size(text, width - 1 - used) + "…", style))
                used = width
                break
            segments.append(Segment(text, style))
            used += n
        return Strip(segments, used).extend_cell_length(width, self.rich_style)

    def _render_row_text(self, probe_id: int, rec: np.void, width: int) -> Strip:
        text = self.row_text(probe_id, rec, columns_for(width))
        text.truncate(width, overflow="ellipsis")
        segments = list(text.render(self.app.console))
        return Strip(segments).extend_cell_length(width, self.rich_style).crop(0, width)

    def row_pieces(self, probe_id: int, rec: np.void, cols: tuple[int, ...] = WIDE) -> list[tuple[str, Style]]:
        time_w, cpu_w, comm_w, pid_w, probe_w = cols
        layout = self.layouts.get(probe_id)
        base = self.window.base_ts or 0
        secs = (int(rec["ts"]) - base) / 1e9
        comm = term_safe(bytes(rec["comm"]).split(b"\0", 1)[0].decode(errors="replace"))
        name = term_safe(layout.name) if layout else f"probe{probe_id}"
        pieces = [
            (f"{secs:>{time_w}.6f} ", _DIM),
            (f"{int(rec['cpu']):>{cpu_w}} ", _CYAN),
            (f"{comm[:comm_w]:<{comm_w}} ", _BOLD),
            (f"{int(rec['pid']):>{pid_w}} ", _GREEN),
            (f"{name[:probe_w]:<{probe_w}} ", _MAGENTA),
        ]
        if layout and layout.fields:
            pieces.append((term_safe(" ".join(
                f"{f.name}={format_value(rec[f.name], f.display, self.symbolize, int(rec['pid']))}"
                for f in layout.fields)), _PLAIN))
        return pieces

    def row_text(self, probe_id: int, rec: np.void, cols: tuple[int, ...] = WIDE) -> Text:
        text = Text(no_wrap=True)
        for piece, style in self.row_pieces(probe_id, rec, cols):
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
        yield StreamFilter(placeholder="filter: pid=N  cpu=N  probe=NAME  or text in comm", id="stream-filter")
        yield StreamSearch(placeholder="find (then n / N): pid=N  cpu=N  probe=NAME  or text in comm",
                           id="stream-search")
