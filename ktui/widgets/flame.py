"""Stacks as a flame graph (icicle: callers on top, callees below), in character cells.

The tree and its layout come from the core (ktui.stacks.flame); this widget draws the boxes,
keeps the zoom path and the selected frame, and highlights search matches. Keys when focused:
arrows move between frames (left/right: neighbours in the row, up: the caller, down: the
widest callee), enter zooms into the frame, backspace goes back out, s searches (n: next
match), escape clears the search.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input

from ktui.events import StackTrace
from ktui.stacks.flame import FlameBox, FlameNode, build_flame_tree, folded_stacks, layout, search
from ktui.textsafe import term_safe

# Warm colours, as flame graphs have them; a frame keeps its colour wherever it is drawn.
PALETTE = ("#b5432a", "#c8642f", "#d98b35", "#c9a33c", "#a8542a", "#d0773a", "#b88a2e", "#9e3d24")
MATCH = "#b04fc0"


def _colour(name: str) -> str:
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]


class SearchWanted(Message):
    """s in the flame graph: the view opens its search box."""


class FlameGraph(Widget, can_focus=True):
    """Renders a FlameNode tree from a zoomed frame down; the selected frame is drawn reversed."""

    DEFAULT_CSS = """
    FlameGraph { height: 1fr; }
    """

    BINDINGS = [
        Binding("left", "move(-1)", "Frame left", show=False, id="flame.left"),
        Binding("right", "move(1)", "Frame right", show=False, id="flame.right"),
        Binding("up", "up", "Caller", show=False, id="flame.up"),
        Binding("down", "down", "Callee", show=False, id="flame.down"),
        Binding("enter", "zoom", "Zoom in", id="flame.zoom"),
        Binding("backspace", "back", "Zoom out", id="flame.back"),
        Binding("s", "search", "Search", id="flame.search"),
        Binding("n", "next_match", "Next match", show=False, id="flame.next"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.root = FlameNode("all")
        self.zoom: tuple[str, ...] = ()  # the frame drawn across the whole width (path below root)
        self.selected: tuple[str, ...] = ()
        self.query_text = ""
        self.matches: set[tuple[str, ...]] = set()
        self.matched_samples = 0
        self._rows: list[list[FlameBox]] = []
        self._signature: tuple = ()

    # --- data in ------------------------------------------------------------------------------
    def set_stacks(self, stacks: list[StackTrace], names: Mapping[int, str]) -> None:
        """Full snapshots; the zoom and the selection stay where they are when their frames still exist."""
        signature = tuple((s.probe_id, s.kernel, s.user, s.count) for s in stacks)
        if signature == self._signature:
            return
        self._signature = signature
        probes = {s.probe_id for s in stacks}
        self.set_tree(build_flame_tree(folded_stacks(stacks, names, by_probe=len(probes) > 1)))

    def set_tree(self, root: FlameNode) -> None:
        self.root = root
        if root.find(self.zoom) is None:
            self.zoom = ()
        if root.find(self.selected) is None:
            self.selected = self.zoom
        self._search()
        self.refresh()

    # --- geometry -----------------------------------------------------------------------------
    def _layout(self) -> list[list[FlameBox]]:
        node = self.root.find(self.zoom) or self.root
        rows = max(self.size.height - len(self._header_lines()), 1)
        self._rows = layout(node, max(self.size.width, 1), max_rows=rows, root_path=self.zoom)
        return self._rows

    def _box(self, path: tuple[str, ...]) -> tuple[int, FlameBox] | None:
        for depth, row in enumerate(self._rows):
            for box in row:
                if box.path == path:
                    return depth, box
        return None

    # --- drawing ------------------------------------------------------------------------------
    def render(self) -> Text:
        width = max(self.size.width, 1)
        rows = self._layout()
        out = Text(no_wrap=True, overflow="crop")
        for i, line in enumerate(self._header_lines()):
            out.append(_fit(line, width) + "\n", "bold" if i == 0 else "")
        if not rows:
            out.append("No stacks yet: a probe with the stacks action (e.g. profile:hz:49) fills this.", "dim")
            return out
        for row in rows:
            x = 0
            for box in row:
                if box.x > x:
                    out.append(" " * (box.x - x))
                label = self._label(box)
                text = label[: box.width - 1] if box.width > 1 else ""
                text = text.ljust(box.width - 1) + "▏"
                style = "bold reverse" if box.path == self.selected else self._box_style(box)
                out.append(text[: box.width], style)
                x = box.x + box.width
            out.append("\n")
        return out

    def _label(self, box: FlameBox) -> str:
        """The text in a frame's box (cut to its width by the caller)."""
        return term_safe(box.node.name if box.path else (self.zoom[-1] if self.zoom else "all"))

    def _box_style(self, box: FlameBox) -> str:
        return f"black on {MATCH if box.path in self.matches else _colour(box.node.name)}"

    def _header_lines(self) -> list[str]:
        """The lines above the frames (the first bold): what is selected, the zoom, the search."""
        return [self._header()]

    def _header(self) -> str:
        node = self.root.find(self.selected) or self.root
        total = self.root.value or 1
        name = node.name if self.selected else "all"
        parts = [f"{term_safe(name)}: {node.value:,} samples ({100 * node.value / total:.1f}%)"]
        if self.zoom:
            parts.append("zoomed: " + " > ".join(term_safe(z) for z in self.zoom[-2:]))
        if self.query_text:
            parts.append(f"'{term_safe(self.query_text)}': {len(self.matches)} frames, "
                         f"{100 * self.matched_samples / total:.1f}%")
        return "  ".join(parts)

    # --- keys ---------------------------------------------------------------------------------
    def action_move(self, step: int) -> None:
        found = self._box(self.selected)
        if found is None:
            self.selected = self.zoom
        else:
            depth, box = found
            row = self._rows[depth]
            i = row.index(box) + step
            if 0 <= i < len(row):
                self.selected = row[i].path
        self.refresh()

    def action_up(self) -> None:
        if len(self.selected) > len(self.zoom):
            self.selected = self.selected[:-1]
            self.refresh()

    def action_down(self) -> None:
        node = self.root.find(self.selected)
        if node is not None and node.children:
            widest = max(node.children.values(), key=lambda c: (c.value, c.name))
            self.selected = (*self.selected, widest.name)
            self.refresh()

    def action_zoom(self) -> None:
        if self.root.find(self.selected) is not None:
            self.zoom = self.selected
            self.refresh()

    def action_back(self) -> None:
        if self.zoom:
            self.zoom = self.zoom[:-1]
            self.refresh()

    def action_search(self) -> None:
        self.post_message(SearchWanted())

    def action_next_match(self) -> None:
        """The next matching frame after the selected one (depth first), zooming out if it is outside."""
        if not self.matches:
            return
        order = [p for p, _ in self.root.walk() if p in self.matches]
        later = [p for p in order if p > self.selected]
        target = later[0] if later else order[0]
        if target[: len(self.zoom)] != self.zoom:
            self.zoom = ()
        self.selected = target
        self.refresh()

    def set_query(self, text: str) -> None:
        self.query_text = text.strip()
        self._search()
        self.refresh()

    def _search(self) -> None:
        self.matches, self.matched_samples = search(self.root, self.query_text) if self.query_text else (set(), 0)


class FlameView(Vertical):
    """The flame graph with its search box (s opens it, enter keeps the search, escape clears it)."""

    DEFAULT_CSS = """
    FlameView { height: 1fr; display: none; }
    FlameView > Input { dock: bottom; display: none; }
    """

    graph_class: type[FlameGraph] = FlameGraph  # the differential view draws with its own kind

    def compose(self) -> ComposeResult:
        yield self.graph_class(id="flame-graph")
        yield Input(placeholder="frame name contains… (enter: find, escape: clear)", id="flame-search")

    @property
    def graph(self) -> FlameGraph:
        return self.query_one(FlameGraph)

    @on(SearchWanted)
    def _open_search(self, event: SearchWanted) -> None:
        event.stop()
        box = self.query_one(Input)
        box.value = self.graph.query_text
        box.display = True
        box.focus()

    @on(Input.Submitted, "#flame-search")
    def _searched(self, event: Input.Submitted) -> None:
        event.stop()
        self.graph.set_query(event.value)
        event.input.display = False
        self.graph.action_next_match()
        self.graph.focus()

    def on_key(self, event: events.Key) -> None:
        box = self.query_one(Input)
        if event.key == "escape" and box.has_focus:  # escape: no search, back to the graph
            event.stop()
            box.value = ""
            box.display = False
            self.graph.set_query("")
            self.graph.focus()

    def set_stacks(self, stacks: list[StackTrace], names: Mapping[int, str]) -> None:
        self.graph.set_stacks(stacks, names)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
