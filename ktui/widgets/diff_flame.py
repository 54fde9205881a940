"""The differential flame graph of two recordings (`ktui diff A B --view`, key g).

The merged tree and each frame's change (new, grew, shrank, gone, within noise) come from the core
(ktui/diff/flame.py); this draws it with the flame graph's own widget: a frame is as wide as its
samples in A and B together, its box starts with the change's mark (+ new, ▲ grew, ▼ shrank,
- gone; none within noise) and is coloured by it (reds for growth, blues for shrinkage, grey within
noise), so the picture reads without colour too. The header says the selected frame's counts in A
and B and its exact change. Zoom (enter), back (backspace), search (s, n) as in the flame graph.
"""

from __future__ import annotations

from ktui.diff.flame import MARKS, DiffFrame, as_flame_tree
from ktui.stacks.flame import FlameBox
from ktui.textsafe import term_safe
from ktui.widgets.flame import MATCH, FlameGraph, FlameView

COLOURS = {"new": "#c0392b", "grew": "#e08a6e", "shrank": "#8fb1dc", "gone": "#3e6fb0", "same": "#a0a0a0"}
LEGEND = "  ".join(f"{mark}{status}" for status, mark in MARKS.items() if mark) + " (beyond noise)  width: A+B"


class DiffFlameGraph(FlameGraph):
    """A FlameGraph of a DiffFrame tree: marks and colours by change, counts of both sides in the header."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.diff = DiffFrame("all")

    def set_diff(self, root: DiffFrame) -> None:
        self.diff = root
        self.set_tree(as_flame_tree(root))

    def frame(self, path: tuple[str, ...]) -> DiffFrame | None:
        return self.diff.find(path)

    def _label(self, box: FlameBox) -> str:
        frame = self.frame(box.path)
        return (frame.mark if frame is not None else "") + super()._label(box)

    def _box_style(self, box: FlameBox) -> str:
        frame = self.frame(box.path)
        status = frame.status if frame is not None else "same"
        if box.path in self.matches:  # underlined too: a match shows without colour
            return f"black underline on {MATCH}"
        return f"black on {COLOURS[status]}"

    def _header_lines(self) -> list[str]:
        frame = self.frame(self.selected) or self.diff
        name = term_safe(frame.name if self.selected else "all")
        change = f"{frame.delta:+,}"
        if frame.a:
            change += f" ({100 * frame.delta / frame.a:+.1f}%)"
        status = "within noise" if frame.status == "same" else frame.status
        first = f"{frame.mark}{name}: A {frame.a:,} → B {frame.b:,}  {change} {status}"
        second = []
        if self.zoom:
            second.append("zoomed: " + " > ".join(term_safe(z) for z in self.zoom[-2:]))
        if self.query_text:
            second.append(f"'{term_safe(self.query_text)}': {len(self.matches)} frames")
        return [first, "  ".join(second) if second else LEGEND]


class DiffFlameView(FlameView):
    """The differential flame graph with the flame graph's search box."""

    graph_class = DiffFlameGraph

    @property
    def diff_graph(self) -> DiffFlameGraph:
        return self.query_one(DiffFlameGraph)

    def set_diff(self, root: DiffFrame) -> None:
        self.diff_graph.set_diff(root)
