"""The replay timeline: the event rate over the whole recording, a cursor and a selected window.

Two lines across the top of the panes. The first is the rate (one cell per bin, from the
recording's chunk index, all probes or one), with the selected window highlighted and the
cursor drawn; the second says where the cursor and the window are, in seconds from the start
of the recording (the clock of the stream's TIME column). A click moves the cursor; a drag
selects a window. Keys are the app's (h/l, H/L, v, x, t); this widget renders and posts what
the user wants.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from ktui.textsafe import term_safe

BLOCKS = " ▁▂▃▄▅▆▇█"


class Timeline(Widget):
    """Renders the rate, cursor and window it is given; posts CursorMoved and WindowSelected."""

    DEFAULT_CSS = """
    Timeline { height: 2; display: none; }
    """

    class CursorMoved(Message):
        def __init__(self, t_ns: int) -> None:
            super().__init__()
            self.t_ns = t_ns

    class WindowSelected(Message):
        """start_ns None: back to the whole recording."""

        def __init__(self, start_ns: int | None, end_ns: int | None) -> None:
            super().__init__()
            self.start_ns = start_ns
            self.end_ns = end_ns

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.start_ns = 0
        self.end_ns = 0
        self.cursor_ns = 0
        self.mark_ns: int | None = None  # one end of a window being chosen with the keys
        self.selection: tuple[int, int] | None = None
        self.probe_label = "all probes"
        self.note = ""  # e.g. "recomputing…", what a window could not recompute
        self.marks: list[int] = []  # times of marks (a flight recorder's triggers), drawn as ▼
        self._bins_for: Callable[[int], np.ndarray] | None = None
        self._bins: np.ndarray = np.zeros(0)
        self._drag_from: int | None = None

    # --- state in -------------------------------------------------------------------------
    def set_span(self, start_ns: int, end_ns: int, bins_for: Callable[[int], np.ndarray], label: str) -> None:
        """The recording's time span and how to get n rate bins over it (called again on resize)."""
        self.start_ns, self.end_ns = start_ns, max(end_ns, start_ns + 1)
        self._bins_for = bins_for
        self.probe_label = label
        self._bins = np.zeros(0)
        self.refresh()

    def set_marks(self, marks: list[int]) -> None:
        self.marks = sorted(marks)
        self.refresh()

    def set_cursor(self, t_ns: int) -> None:
        t_ns = min(max(int(t_ns), self.start_ns), self.end_ns)
        if t_ns != self.cursor_ns:
            self.cursor_ns = t_ns
            self.refresh()

    def set_selection(self, selection: tuple[int, int] | None, note: str = "") -> None:
        self.selection = selection
        self.note = note
        self.refresh()

    # --- geometry ---------------------------------------------------------------------------
    @property
    def columns(self) -> int:
        return max(self.size.width, 1)

    def column_ns(self) -> float:
        return (self.end_ns - self.start_ns) / self.columns

    def time_at(self, x: int) -> int:
        """The time at the left edge of column x (x == columns: the end)."""
        x = min(max(x, 0), self.columns)
        return self.start_ns + int(x * self.column_ns())

    def column_of(self, t_ns: int) -> int:
        return min(max(int((t_ns - self.start_ns) / max(self.column_ns(), 1e-9)), 0), self.columns - 1)

    def seconds(self, t_ns: int) -> str:
        return f"{(t_ns - self.start_ns) / 1e9:.3f}s"

    # --- drawing ------------------------------------------------------------------------------
    def render(self) -> Text:
        width = self.columns
        if self._bins_for is not None and len(self._bins) != width:
            self._bins = self._bins_for(width)
        bins = self._bins if len(self._bins) == width else np.zeros(width)
        top = bins.max() if len(bins) else 0
        levels = np.zeros(width, int) if top <= 0 else np.ceil(bins / top * (len(BLOCKS) - 1)).astype(int)
        sel = None if self.selection is None else (self.column_of(self.selection[0]), self.column_of(self.selection[1] - 1))
        mark = None if self.mark_ns is None else self.column_of(self.mark_ns)
        cursor = self.column_of(self.cursor_ns)
        marked = {self.column_of(t) for t in self.marks}
        # Redrawn on every cursor move: cells of one style go in as one run (a span per run, not per cell).
        runs: list[tuple[str, str]] = []
        for x in range(width):
            char, style = BLOCKS[int(levels[x])], "cyan"
            if sel is not None and sel[0] <= x <= sel[1]:
                style = "black on yellow"
            if x in marked:
                char, style = "▼", "bold magenta"
            if x == mark:
                char, style = "╎", "bold yellow"
            if x == cursor:
                char, style = "┃", "bold reverse"
            char = char if char != " " else "·" if style == "cyan" else " "
            if runs and runs[-1][1] == style:
                runs[-1] = (runs[-1][0] + char, style)
            else:
                runs.append((char, style))
        line = Text.assemble(*runs, no_wrap=True, overflow="crop")
        line.append("\n")
        cur = f"▶ {self.seconds(self.cursor_ns)}"
        if self.selection is not None:
            a, b = self.selection
            win = f"window {self.seconds(a)}–{self.seconds(b)} ({(b - a) / 1e9:.3f}s)"
        elif self.mark_ns is not None:
            win = f"from {self.seconds(self.mark_ns)}: v ends the window"
        else:
            win = "window: all (v marks one)"
        parts = [cur, win, f"of {(self.end_ns - self.start_ns) / 1e9:.3f}s", term_safe(self.probe_label)]
        if self.marks:
            parts.append(f"▼ {len(self.marks)} mark{'s' if len(self.marks) != 1 else ''}")
        if self.note:
            parts.append(term_safe(self.note))
        line.append(_fit("  ".join(parts), width), "dim")
        return line

    # --- mouse: click moves the cursor, drag selects --------------------------------------------
    def on_mouse_down(self, event: events.MouseDown) -> None:
        self._drag_from = event.x
        self.capture_mouse()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        self.release_mouse()
        start, self._drag_from = self._drag_from, None
        if start is None:
            return
        if abs(event.x - start) >= 1:
            lo, hi = sorted((start, event.x))
            self.post_message(self.WindowSelected(self.time_at(lo), self.time_at(hi + 1)))
        else:
            self.post_message(self.CursorMoved(self.time_at(event.x)))

    def on_resize(self) -> None:
        self._bins = np.zeros(0)
        self.refresh()


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
