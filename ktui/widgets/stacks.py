"""Aggregated stack traces, most frequent first; space expands one to its frames, Enter opens the
inspector on it (its frames whole, its count and share, its probe)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree

from ktui.events import StackTrace
from ktui.textsafe import term_safe

MAX_STACKS = 200  # the long tail is summarized, the tree stays small


def _key(s: StackTrace) -> tuple:
    return (s.probe_id, s.kernel, s.user)


class Stacks(Tree):
    """A tree rebuilt from full snapshots; expanded stacks stay expanded across updates."""

    BINDINGS = [Binding("enter", "inspect", "Inspect", show=False, id="stacks.inspect")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("stacks", id=id)
        self.show_root = False
        self.guide_depth = 2
        self.stacks: list[StackTrace] = []
        self.names: dict[int, str] = {}
        self._expanded: set[tuple] = set()
        self._signature: tuple = ()
        self.root.add_leaf("No stacks yet: a probe with the stacks action (e.g. profile:hz:49) fills this.")

    def set_stacks(self, stacks: list[StackTrace], names: dict[int, str], *, empty: str | None = None) -> None:
        """``empty``: the sentence to show when there are none (a replay's window says why)."""
        ordered = sorted(stacks, key=lambda s: -s.count)[:MAX_STACKS]
        signature = tuple((_key(s), s.count) for s in ordered) or ((empty,) if empty else ())
        if signature == self._signature:
            return
        self._signature = signature
        self.stacks = ordered
        self.names = dict(names)
        self._expanded = {n.data for n in self._walk() if n.data is not None and n.is_expanded}
        cursor = self.cursor_line
        self.clear()
        total = sum(s.count for s in stacks) or 1
        if not ordered and empty:
            self.root.add_leaf(Text(empty, "dim"))
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

    def cursor_stack(self) -> StackTrace | None:
        """The stack under the cursor (on a frame line: the stack it belongs to)."""
        node = self.cursor_node
        while node is not None and node.parent is not None and node.parent is not self.root:
            node = node.parent
        if node is None or node.data is None:
            return None
        return next((s for s in self.stacks if _key(s) == node.data), None)

    def inspect_fields(self, s: StackTrace) -> tuple[str, list, list[str]]:
        """What the inspector shows for one stack: probe, count and share, then every frame whole."""
        from ktui.widgets.inspector import InspectedField

        name = term_safe(self.names.get(s.probe_id, f"probe{s.probe_id}"))
        total = sum(t.count for t in self.stacks) or 1
        fields = [InspectedField("probe", name, name, ""),  # no stream filter from here: Escape closes
                  InspectedField("count", f"{s.count:,}", str(s.count), ""),
                  InspectedField("share", f"{100 * s.count / total:.1f}% of the stacks shown", f"{s.count}/{total}", ""),
                  InspectedField("frames", f"{len(s.kernel)} kernel, {len(s.user)} user",
                                 f"{len(s.kernel)} kernel, {len(s.user)} user", "")]
        frames = [term_safe(f) for f in s.kernel]
        if s.user:
            frames += (["-- user --"] if s.kernel else []) + [term_safe(f) for f in s.user]
        return f"stack of {name}: {s.count:,} times", fields, frames

    def action_inspect(self) -> None:
        s = self.cursor_stack()
        if s is None:
            return
        from ktui.widgets.inspector import InspectorScreen

        title, fields, frames = self.inspect_fields(s)
        self.app.push_screen(InspectorScreen(title, fields, frames or ["(no frames: idle or not taken)"],
                                             filters=False))
