"""Aggregated stack traces, most frequent first; Enter expands one to its frames."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree

from ktui.events import StackTrace
from ktui.textsafe import term_safe

MAX_STACKS = 200  # the long tail is summarized, the tree stays small


def _key(s: StackTrace) -> tuple:
    return (s.probe_id, s.kernel, s.user)


class Stacks(Tree):
    """A tree rebuilt from full snapshots; expanded stacks stay expanded across updates."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("stacks", id=id)
        self.show_root = False
        self.guide_depth = 2
        self.stacks: list[StackTrace] = []
        self.names: dict[int, str] = {}
        self._expanded: set[tuple] = set()
        self._signature: tuple = ()
        self.root.add_leaf("No stacks yet: a probe with the stacks action (e.g. profile:hz:49) fills this.")

    def set_stacks(self, stacks: list[StackTrace], names: dict[int, str]) -> None:
        ordered = sorted(stacks, key=lambda s: -s.count)[:MAX_STACKS]
        signature = tuple((_key(s), s.count) for s in ordered)
        if signature == self._signature:
            return
        self._signature = signature
        self.stacks = ordered
        self.names = dict(names)
        self._expanded = {n.data for n in self._walk() if n.data is not None and n.is_expanded}
        cursor = self.cursor_line
        self.clear()
        total = sum(s.count for s in stacks) or 1
        for s in ordered:
            top = s.kernel[0] if s.kernel else (s.user[0] if s.user else "(no stack: idle or not taken)")
            label = Text(f"{s.count:>8,} {100 * s.count / total:5.1f}%  ")
            label.append(term_safe(top), "bold")
            label.append(f"  {term_safe(self.names.get(s.probe_id, s.probe_id))}", "dim")
            node = self.root.add(label, data=_key(s), expand=_key(s) in self._expanded)
            for frame in s.kernel:  # Text, not markup: frames hold brackets ("[kernel]")
                node.add_leaf(Text(term_safe(frame)))
            if s.user:
                if s.kernel:
                    node.add_leaf(Text("-- user --", "dim"))
                for frame in s.user:
                    node.add_leaf(Text(term_safe(frame)))
        if ordered:  # keep the reader's place; start on the most frequent stack
            self.cursor_line = cursor if 0 <= cursor < len(ordered) else 0

    def _walk(self):
        return list(self.root.children)
