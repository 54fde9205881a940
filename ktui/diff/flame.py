"""The differential flame graph of two recordings: one tree of frames with both sides' samples.

Both recordings' stacks are folded with the flame graph's own builder (ktui/stacks/flame.py:
``folded_stacks`` + ``build_flame_tree``, root first: probe, user frames outermost first,
then kernel frames), and the two trees are merged node by node: every frame either side has,
with its inclusive count in A and in B. ``changed_paths`` walks it the way a reader of a
differential flame graph looks: down the frames whose change stands out of noise (the noise
rule of ktui/diff/noise.py), folding a chain of single callees into one line. ``as_flame_tree``
gives the flame graph's layout a tree to draw (width: both sides' samples), and each frame's
``status``/``mark`` says how it changed (new, grew, shrank, gone, or within noise).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ktui.diff.noise import significant
from ktui.events import StackTrace
from ktui.stacks.flame import FlameNode, build_flame_tree, folded_stacks


# One character per status, drawn before a frame's name in the differential flame graph (NO_COLOR
# terminals read the change from it; colour only repeats it). A frame within noise has none.
MARKS = {"new": "+", "grew": "▲", "shrank": "▼", "gone": "-", "same": ""}


@dataclass
class DiffFrame:
    name: str
    a: int = 0  # samples through this frame in A (callees included)
    b: int = 0
    children: dict[str, DiffFrame] = field(default_factory=dict)

    @property
    def delta(self) -> int:
        return self.b - self.a

    @property
    def flagged(self) -> bool:
        return significant(self.a, self.b)

    @property
    def status(self) -> str:
        """new (only B has it), gone (only A), grew or shrank (beyond noise), same (within noise)."""
        if self.a == 0 and self.b > 0:
            return "new"
        if self.b == 0 and self.a > 0:
            return "gone"
        if self.flagged:
            return "grew" if self.delta > 0 else "shrank"
        return "same"

    @property
    def mark(self) -> str:
        """The status as one character drawn before the frame's name, so it reads without colour."""
        return MARKS[self.status]

    def ordered_children(self) -> list[DiffFrame]:
        """Largest change first (then by name, so equal changes keep one order)."""
        return sorted(self.children.values(), key=lambda c: (-abs(c.delta), -max(c.a, c.b), c.name))

    def find(self, path: Iterable[str]) -> DiffFrame | None:
        """The frame at a root-first path below this one (the path excludes this frame's own name)."""
        node: DiffFrame | None = self
        for name in path:
            node = node.children.get(name) if node is not None else None
        return node

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "a": self.a, "b": self.b, "delta": self.delta,
                "children": [c.to_json() for c in self.ordered_children()]}


def _merge(into: DiffFrame, node: FlameNode, side: str) -> None:
    todo = [(into, node)]
    while todo:
        d, n = todo.pop()
        setattr(d, side, getattr(d, side) + n.value)
        for child in n.children.values():
            todo.append((d.children.setdefault(child.name, DiffFrame(child.name)), child))


def diff_flame(stacks_a: Iterable[StackTrace], keys_a: dict[int, str],
               stacks_b: Iterable[StackTrace], keys_b: dict[int, str]) -> DiffFrame:
    """One tree of both recordings' stacks; the first level is the probe (by its matching key)."""
    root = DiffFrame("all")
    _merge(root, build_flame_tree(folded_stacks(stacks_a, keys_a, by_probe=True)), "a")
    _merge(root, build_flame_tree(folded_stacks(stacks_b, keys_b, by_probe=True)), "b")
    return root


def as_flame_tree(root: DiffFrame) -> FlameNode:
    """The merged tree as a flame tree to lay out: a frame is as wide as its samples in A and B together,
    so frames only A has (gone) and only B has (new) both get width, and children tile their parent."""
    out = FlameNode(root.name)
    todo = [(out, root)]
    while todo:
        node, frame = todo.pop()
        node.value = frame.a + frame.b
        for child in frame.children.values():
            sub = node.children[child.name] = FlameNode(child.name)
            todo.append((sub, child))
        node.self_value = node.value - sum(c.a + c.b for c in frame.children.values())
    return out


@dataclass(frozen=True)
class ChangedPath:
    """One line of the differential view: a frame (and the single-callee chain folded into it) and its depth."""
    depth: int
    names: tuple[str, ...]  # the frame, then callees folded into the same line (same counts)
    a: int
    b: int
    flagged: bool

    @property
    def delta(self) -> int:
        return self.b - self.a


def changed_paths(root: DiffFrame, max_lines: int = 16) -> Iterator[ChangedPath]:
    """Frames whose count changed beyond noise, depth first, largest change first; a frame with one
    callee of the same counts is shown with it on one line."""
    shown = 0
    todo: list[tuple[int, DiffFrame]] = [(0, c) for c in reversed(root.ordered_children())]
    while todo and shown < max_lines:
        depth, node = todo.pop()
        if not node.flagged:
            continue
        names = [node.name]
        while len(node.children) == 1:
            (only,) = node.children.values()
            if (only.a, only.b) != (node.a, node.b):
                break
            node = only
            names.append(node.name)
        yield ChangedPath(depth, tuple(names), node.a, node.b, True)
        shown += 1
        todo.extend((depth + 1, c) for c in reversed(node.ordered_children()))
