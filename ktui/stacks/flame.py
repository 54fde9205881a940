"""Flame graphs as data: stacks folded into a tree, and the tree laid out in character cells.

Stacks come in as *root-first* frame paths with a count (Brendan Gregg's "folded" form,
``main;work;memcpy 42``): ``build_flame_tree({("main", "work", "memcpy"): 42, ...})``.
Every node holds its inclusive ``value`` (samples through it) and ``self_value`` (samples
that end there). ``layout`` turns a subtree into rows of boxes with integer columns, so a
widget only paints them; ``search`` finds frames by name; ``folded_stacks`` turns ktui's
``StackTrace`` list (frames innermost first, kernel and user apart) into root-first paths.

For a differential flame graph, build one tree per recording and compare them node by
node with ``FlameNode.child`` / ``FlameNode.walk`` (paths are the same in both trees).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from ktui.events import StackTrace

ROOT_NAME = "all"


@dataclass
class FlameNode:
    """One frame at one place in the tree (the same function under two callers is two nodes)."""

    name: str
    value: int = 0  # samples through this frame, its callees included
    self_value: int = 0  # samples whose innermost frame is this one
    children: dict[str, FlameNode] = field(default_factory=dict)

    def child(self, name: str) -> FlameNode | None:
        return self.children.get(name)

    def ordered_children(self) -> list[FlameNode]:
        """Children left to right: by name, as flame graphs do, so two trees line up frame by frame."""
        return [self.children[k] for k in sorted(self.children)]

    def find(self, path: Iterable[str]) -> FlameNode | None:
        """The node at a root-first path below this one (the path excludes this node's own name)."""
        node: FlameNode | None = self
        for name in path:
            node = node.children.get(name) if node is not None else None
        return node

    def walk(self, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], FlameNode]]:
        """Every node below this one with its path from here (depth first, children by name)."""
        stack: list[tuple[tuple[str, ...], FlameNode]] = [(prefix, self)]
        while stack:
            path, node = stack.pop()
            yield path, node
            for child in reversed(node.ordered_children()):
                stack.append(((*path, child.name), child))

    @property
    def depth(self) -> int:
        """Frames in the deepest stack below this node (0 for a leaf)."""
        best = 0
        todo = [(self, 0)]
        while todo:
            node, d = todo.pop()
            best = max(best, d)
            todo.extend((c, d + 1) for c in node.children.values())
        return best


def build_flame_tree(stacks: Mapping[tuple[str, ...], int], root_name: str = ROOT_NAME) -> FlameNode:
    """Fold root-first stacks with counts into one tree; counts of equal paths add up.

    Negative counts are refused (a flame graph of one recording counts samples); an empty
    path counts toward the root's own samples.
    """
    root = FlameNode(root_name)
    for path, count in stacks.items():
        if count < 0:
            raise ValueError(f"a stack count is negative ({count})")
        if not count:
            continue
        node = root
        node.value += count
        for name in path:
            nxt = node.children.get(name)
            if nxt is None:
                nxt = node.children[name] = FlameNode(name)
            nxt.value += count
            node = nxt
        node.self_value += count
    return root


def folded_stacks(traces: Iterable[StackTrace], names: Mapping[int, str] | None = None,
                  by_probe: bool = False) -> dict[tuple[str, ...], int]:
    """ktui's aggregated stacks as root-first paths: user frames outermost first, then kernel frames.

    With ``by_probe``, each path starts with the probe's name (``names`` maps probe id to it),
    so several probes' stacks stay apart. A trace with no frames counts as "(no stack)".
    """
    out: dict[tuple[str, ...], int] = {}
    for t in traces:
        path = tuple(reversed(t.user)) + tuple(reversed(t.kernel))
        if not path:
            path = ("(no stack)",)
        if by_probe:
            path = (str((names or {}).get(t.probe_id, t.probe_id)), *path)
        out[path] = out.get(path, 0) + t.count
    return out


@dataclass(frozen=True)
class FlameBox:
    """One frame drawn in one row: columns [x, x + width), the node and its root-first path."""

    x: int
    width: int
    node: FlameNode
    path: tuple[str, ...]


def layout(root: FlameNode, width: int, max_rows: int | None = None,
           root_path: tuple[str, ...] = ()) -> list[list[FlameBox]]:
    """Rows of boxes (row 0 is ``root`` across the whole width, row k the frames k calls deep).

    Columns come from cumulative sums (x = floor(before * width / total)), so siblings
    tile their parent exactly and never overlap; a frame narrower than one column is not
    drawn (its samples stay in its parent's width). ``root_path`` is root's own path, so
    boxes carry full paths when a zoomed-in subtree is laid out.
    """
    rows: list[list[FlameBox]] = []
    total = root.value
    if width <= 0 or total <= 0:
        return rows
    level = [FlameBox(0, width, root, root_path)]
    while level and (max_rows is None or len(rows) < max_rows):
        rows.append(level)
        nxt: list[FlameBox] = []
        for box in level:
            before = 0
            # Offsets inside the parent are scaled from the parent's own share of the total,
            # so rounding never pushes a child outside its parent.
            for child in box.node.ordered_children():
                x0 = box.x + (before * box.width) // box.node.value
                before += child.value
                x1 = box.x + (before * box.width) // box.node.value
                if x1 > x0:
                    nxt.append(FlameBox(x0, x1 - x0, child, (*box.path, child.name)))
        level = nxt
    return rows


def search(root: FlameNode, text: str) -> tuple[set[tuple[str, ...]], int]:
    """Paths (below root) of the frames whose name contains ``text`` (case-insensitive), and the
    samples they cover (a match under another match is not counted twice)."""
    needle = text.lower()
    matched: set[tuple[str, ...]] = set()
    covered = 0
    if not needle:
        return matched, 0
    todo: list[tuple[tuple[str, ...], FlameNode, bool]] = [((), root, False)]
    while todo:
        path, node, inside = todo.pop()
        hit = bool(path) and needle in node.name.lower()
        if hit:
            matched.add(path)
            if not inside:
                covered += node.value
        for child in node.children.values():
            todo.append(((*path, child.name), child, inside or hit))
    return matched, covered


__all__ = ["FlameNode", "FlameBox", "build_flame_tree", "folded_stacks", "layout", "search", "ROOT_NAME"]
