"""The flame tree (ktui.stacks.flame): folding, inclusive/self counts, layout in cells, search."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from ktui.events import StackTrace
from ktui.stacks.flame import build_flame_tree, folded_stacks, layout, search


STACKS = {
    ("main", "work", "memcpy"): 30,
    ("main", "work"): 10,
    ("main", "idle"): 60,
    ("other",): 0,
}


def test_values_are_inclusive_and_self_is_where_stacks_end():
    root = build_flame_tree(STACKS)
    assert root.value == 100 and root.self_value == 0
    main = root.find(["main"])
    assert main is not None and main.value == 100 and main.self_value == 0
    work = root.find(["main", "work"])
    assert work is not None and (work.value, work.self_value) == (40, 10)
    assert root.find(["main", "work", "memcpy"]).value == 30  # type: ignore[union-attr]
    assert root.find(["other"]) is None  # a zero count adds no frame
    assert [c.name for c in main.ordered_children()] == ["idle", "work"]
    assert root.depth == 3


def test_equal_paths_add_up_and_negative_counts_are_refused():
    assert build_flame_tree({("a", "b"): 2, ("a",): 3}).find(["a"]).value == 5  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        build_flame_tree({("a",): -1})


def test_folded_stacks_put_user_frames_outermost_and_kernel_innermost():
    traces = [StackTrace(0, ("memcpy", "sys_write"), ("write", "main"), 3),
              StackTrace(1, (), (), 2),
              StackTrace(0, ("memcpy", "sys_write"), ("write", "main"), 4)]
    folded = folded_stacks(traces)
    assert folded == {("main", "write", "sys_write", "memcpy"): 7, ("(no stack)",): 2}
    by_probe = folded_stacks(traces, {0: "profile", 1: "tp"}, by_probe=True)
    assert by_probe[("profile", "main", "write", "sys_write", "memcpy")] == 7
    assert by_probe[("tp", "(no stack)")] == 2


def test_layout_tiles_each_parent_in_proportion():
    root = build_flame_tree(STACKS)
    rows = layout(root, 100)
    assert [(b.path, b.x, b.width) for b in rows[0]] == [((), 0, 100)]
    assert [(b.path, b.x, b.width) for b in rows[2]] == [(("main", "idle"), 0, 60), (("main", "work"), 60, 40)]
    assert [(b.path, b.x, b.width) for b in rows[3]] == [(("main", "work", "memcpy"), 60, 30)]
    assert len(layout(root, 100, max_rows=2)) == 2
    assert layout(build_flame_tree({}), 80) == []
    # zoomed: a subtree laid out across the whole width keeps full paths
    work = root.find(["main", "work"])
    assert work is not None
    zoomed = layout(work, 80, root_path=("main", "work"))
    assert [(b.path, b.x, b.width) for b in zoomed[1]] == [(("main", "work", "memcpy"), 0, 60)]


def test_search_counts_nested_matches_once():
    root = build_flame_tree({("a", "mem", "memcpy"): 5, ("b", "memset"): 2, ("c",): 1})
    paths, covered = search(root, "MEM")
    assert paths == {("a", "mem"), ("a", "mem", "memcpy"), ("b", "memset")}
    assert covered == 7
    assert search(root, "") == (set(), 0)


paths = st.lists(st.sampled_from("abcde"), min_size=0, max_size=6).map(tuple)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(paths, st.integers(0, 1000), max_size=30), st.integers(1, 300))
def test_layout_boxes_stay_inside_their_parent_and_never_overlap(stacks, width):
    root = build_flame_tree(stacks)
    assert root.value == sum(stacks.values())
    rows = layout(root, width)
    for depth, row in enumerate(rows):
        assert all(len(b.path) == depth for b in row)
        for a, b in zip(row, row[1:]):
            assert a.x + a.width <= b.x  # no overlap, left to right
        if depth:
            parents = {b.path: b for b in rows[depth - 1]}
            for b in row:
                p = parents[b.path[:-1]]
                assert p.x <= b.x and b.x + b.width <= p.x + p.width
        for b in row:
            assert b.node.value >= sum(c.value for c in b.node.children.values())
