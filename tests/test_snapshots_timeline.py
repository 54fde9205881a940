"""Snapshot pictures of the replay timeline and the flame graph (pictures in snapshots/).

Fake data, for pictures only: the behaviour behind each is tested on a real recording in
test_flame_view.py, test_replay_window_live.py and test_replay_timeline_tmux.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from fake_source import sample_stacks
from ktui.widgets.flame import FlameGraph, FlameView
from ktui.widgets.timeline import Timeline
from snapshot_apps.widget_app import WidgetApp

pytestmark = pytest.mark.timeout(120)
SECOND = 1_000_000_000


def _bins(n: int) -> np.ndarray:
    """A burst, a pause, a longer burst: events per bin over 10 s."""
    t = (np.arange(n) + 0.5) / n * 10
    return np.where(t < 2, 900.0, 0.0) + np.where((t > 4) & (t < 8), 400.0 + 300 * np.sin(t * 3) ** 2, 0.0)


def _timeline(selected: bool):
    def setup(app):
        timeline = app.query_one(Timeline)
        timeline.display = True
        timeline.set_span(0, 10 * SECOND, _bins, "rate: all probes")
        timeline.set_cursor(4_500_000_000)
        if selected:
            timeline.set_selection((4 * SECOND, 8 * SECOND))
    return WidgetApp(lambda: Timeline(), setup)


@pytest.mark.parametrize("selected", [False, True], ids=["cursor", "window"])
def test_timeline(snap_compare, selected):
    """80 columns: the rate line (a burst, a pause, a longer burst) with the cursor at 4.5 s; with a
    window, 4-8 s highlighted and named on the second line."""
    assert snap_compare(_timeline(selected), terminal_size=(80, 4))


def _flame(state: str):
    def setup(app):
        view = app.query_one(FlameView)
        view.display = True
        view.set_stacks(sample_stacks(), {2: "profile_99hz"})
        graph = app.query_one(FlameGraph)
        if state == "zoomed":
            graph.selected = ("main",)
            graph.action_zoom()
        elif state == "search":
            graph.set_query("page")
            graph.action_next_match()
    return WidgetApp(lambda: FlameView(), setup)


@pytest.mark.parametrize("state", ["all", "zoomed", "search"])
def test_flame_graph(snap_compare, state):
    """80x24 flame graph of three stacks (idle, a page fault, a read from main): all; zoomed into main
    (its frames across the whole width); searching 'page' (two frames marked, their share in the header)."""
    assert snap_compare(_flame(state), terminal_size=(80, 24))


def _diff_flame(state: str):
    from ktui.diff.flame import diff_flame
    from ktui.events import StackTrace
    from ktui.widgets.diff_flame import DiffFlameGraph, DiffFlameView

    a = sample_stacks()
    b = [StackTrace(2, a[0].kernel, (), 290), StackTrace(2, a[1].kernel, (), 160),
         StackTrace(2, ("copy_user_generic", "new_sync_write", "vfs_write", "ksys_write"), ("write", "main"), 60)]

    def setup(app):
        view = app.query_one(DiffFlameView)
        view.display = True
        view.set_diff(diff_flame(a, {2: "profile_99hz"}, b, {2: "profile_99hz"}))
        graph = app.query_one(DiffFlameGraph)
        if state == "zoomed":
            graph.selected = ("profile_99hz", "main")
            graph.action_zoom()
        elif state == "search":
            graph.set_query("write")
            graph.action_next_match()
    return WidgetApp(lambda: DiffFlameView(), setup)


@pytest.mark.parametrize("state", ["all", "zoomed", "search"])
def test_differential_flame_graph(snap_compare, state):
    """80x24 differential flame graph: idle within noise (grey, no mark), the page fault grew (▲, red),
    the read gone (-, blue), a write only B has (+, deep red); zoomed into main (gone and new side by
    side); searching 'write' (three frames underlined, the first selected with its exact counts)."""
    assert snap_compare(_diff_flame(state), terminal_size=(80, 24))
