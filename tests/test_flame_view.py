"""The flame graph and the timeline in the app (pilot), on a real recording of this kernel: profile
samples' stacks folded and drawn, zoom, search and back; a window selected on the timeline reaches
the CPUs pane."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from fake_source import run_async_tests
from ktui.app import KtuiApp
from ktui.recording import RecordingReader
from ktui.sources.replay import ReplaySource
from ktui.stacks.flame import build_flame_tree, folded_stacks
from ktui.widgets.cpu_counts import CpuCounts
from ktui.widgets.flame import FlameGraph, FlameView
from ktui.widgets.histograms import Histograms
from ktui.widgets.key_counts import KeyCountsView
from ktui.widgets.timeline import Timeline
from test_replay_window_live import burst_b_start, record_two_bursts

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def bursts(tmp_path_factory):
    return record_two_bursts(tmp_path_factory.mktemp("flame"))


async def _until(pilot, predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("the app never got there")


async def test_flame_graph_of_recorded_stacks_zooms_searches_and_goes_back(bursts):
    with RecordingReader.open(bursts) as r:
        stacks = r.stacks()
        names = {p: lay.name for p, lay in r.layouts.items()}
    assert stacks, "the profile probe recorded no stacks"
    truth = build_flame_tree(folded_stacks(stacks, names))
    app = KtuiApp(source=ReplaySource([bursts]), mode="replay")
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: app._latest is not None and bool(app._latest.stacks))
        await pilot.press("3")
        await pilot.press("g")
        await _until(pilot, lambda: app.query_one(FlameGraph).root.value > 0)
        graph = app.query_one(FlameGraph)
        assert app.query_one(FlameView).display and graph.has_focus
        assert graph.root.value == truth.value == sum(s.count for s in stacks)
        # down twice: the widest callee each time, as the tree says
        await pilot.press("down", "down")
        first = max(truth.children.values(), key=lambda c: (c.value, c.name))
        second = max(first.children.values(), key=lambda c: (c.value, c.name)) if first.children else None
        want = (first.name,) + ((second.name,) if second is not None else ())
        assert graph.selected == want
        await pilot.press("enter")
        assert graph.zoom == want
        rows = graph._rows
        assert rows[0][0].path == want and rows[0][0].width == 80  # the zoomed frame across the width
        await pilot.press("backspace")
        assert graph.zoom == want[:-1]
        # search: frames containing the text, and the samples under them counted once
        needle = next(n for n in (first.name[:4], "asm", "sys") if n)
        await pilot.press("s")
        await pilot.press(*needle, "enter")
        expected_paths = {p for p, node in truth.walk() if p and needle.lower() in node.name.lower()}
        assert graph.matches == expected_paths and graph.matches
        covered = sum(node.value for p, node in truth.walk()
                      if p in expected_paths and not any(p[:i] in expected_paths for i in range(1, len(p))))
        assert graph.matched_samples == covered
        assert graph.selected in expected_paths  # enter went to the first match
        await pilot.press("g")
        assert not app.query_one(FlameView).display


async def test_a_window_selected_on_the_timeline_reaches_the_cpus_pane(bursts):
    with RecordingReader.open(bursts) as r:
        lo = burst_b_start(r)
        hi = r.last_ts + 1
        pids = {int(a["pid"][0]) for a in r.events(lo, hi, probe_ids=[0])}
        expected = {}
        for arr in r.events(lo, hi):
            c = np.bincount(arr["cpu"].astype(np.int64))
            p = int(arr["probe"][0])
            prev = expected.get(p, np.zeros(0, np.int64))
            n = max(len(prev), len(c))
            expected[p] = np.pad(prev, (0, n - len(prev))) + np.pad(c, (0, n - len(c)))
    app = KtuiApp(source=ReplaySource([bursts]), mode="replay")
    async with app.run_test(size=(80, 24)) as pilot:
        timeline = app.query_one(Timeline)
        await _until(pilot, lambda: timeline.display and timeline.end_ns > timeline.start_ns)
        timeline.post_message(Timeline.WindowSelected(lo, hi))
        cpus = app.query_one(CpuCounts)

        def shown() -> bool:
            return set(cpus.counters) == set(expected) and all(
                [h for h in cpus.counters[p].hits if h] == [int(v) for v in expected[p] if v] for p in expected)

        await _until(pilot, shown)
        assert app.source.selection == (lo, hi)  # type: ignore[union-attr]
        assert timeline.selection == (lo, hi)
        keyed, hists = app.query_one(KeyCountsView), app.query_one(Histograms)
        assert [t.rows for t in keyed.tables if t.probe_id == 0] == [[((pid,), 5000)] for pid in pids]
        # a window in the pause between the bursts: no getppid call, so no COUNT row and no histogram
        # (not the whole recording's tables left on screen)
        timeline.post_message(Timeline.WindowSelected(lo - 1_000_000, lo))
        await _until(pilot, lambda: app.source.selection == (lo - 1_000_000, lo)  # type: ignore[union-attr]
                     and not [t for t in keyed.tables if t.probe_id == 0] and not hists.histograms)
        await asyncio.sleep(0)
        await pilot.press("x")  # back to the whole recording: the file's own counters
        with RecordingReader.open(bursts) as r:
            whole = {p: c.hits for p, c in r.counters().items()}
        await _until(pilot, lambda: {p: c.hits for p, c in cpus.counters.items()} == whole)
        assert timeline.selection is None



async def test_flight_recorder_triggers_are_marks_on_the_timeline(tmp_path):
    from test_flight import _record

    path = _record(tmp_path, "--keep", "2", pairs=((300, 400), (200, 100)))
    with RecordingReader.open(path) as r:
        marks = [m.ts for m in r.marks()]
    assert len(marks) == 2
    app = KtuiApp(source=ReplaySource([path]), mode="replay")
    async with app.run_test(size=(80, 24)) as pilot:
        timeline = app.query_one(Timeline)
        await _until(pilot, lambda: timeline.display and timeline.end_ns > timeline.start_ns)
        assert timeline.marks == marks

        def marks_drawn() -> bool:  # every mark's column not under the cursor shows ▼
            line = timeline.render().plain.splitlines()
            columns = {timeline.column_of(t) for t in marks} - {timeline.column_of(timeline.cursor_ns)}
            return bool(columns) and all(line[0][c] == "▼" for c in columns) and "▼ 2 marks" in line[1]

        try:
            await _until(pilot, marks_drawn, timeout=3)
        except AssertionError:  # the cursor (following the replay) sits on the marks' column: move it
            await pilot.press("L", "L", "L")
            await _until(pilot, marks_drawn)



async def test_flame_graph_in_live_mode_of_profile_samples():
    import subprocess

    from helpers import busy_loop_binary
    from ktui.app_main import _live_factory
    from ktui.probes.model import Action, ActionKind, Probe, ProbeKind

    probe = Probe(ProbeKind.PROFILE, "", frequency=99, actions=[Action(ActionKind.STACKS)])
    app = KtuiApp(probes=[probe], source_factory=_live_factory, mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: app.states.get(0) is not None and app.states[0].status == "attached", 60)
        child = subprocess.Popen([str(busy_loop_binary()), "3000"])
        try:
            await pilot.press("g")  # from the Stream tab: to the Stacks tab, as a flame graph
            assert app.active_tab == "stacks" and app.query_one(FlameView).display
            graph = app.query_one(FlameGraph)
            await _until(pilot, lambda: graph.root.value >= 20, 60)
        finally:
            child.wait(timeout=60)
        from ktui.engine.stacks import KernelSymbols

        given = graph._signature  # the engine's stacks as last handed to the graph: (probe, kernel, user, count)
        assert graph.root.value == sum(count for *_, count in given)
        for _, kernel, user, count in given:  # every stack is a root-first path of the tree with its count
            node = graph.root.find(tuple(reversed(user)) + tuple(reversed(kernel)) or ("(no stack)",))
            assert node is not None and node.value >= count
        names = set(KernelSymbols().names)
        frames = [f for _, kernel, _, _ in given for f in kernel]
        assert frames and sum(f in names for f in frames) >= 0.9 * len(frames)
        await pilot.press("down", "enter")
        assert graph.zoom and graph._rows[0][0].width == 80



async def test_the_mouse_moves_the_cursor_and_a_drag_selects_a_window(bursts):
    app = KtuiApp(source=ReplaySource([bursts]), mode="replay")
    async with app.run_test(size=(80, 24)) as pilot:
        timeline = app.query_one(Timeline)
        await _until(pilot, lambda: timeline.display and timeline.end_ns > timeline.start_ns)
        await _until(pilot, lambda: app.source.position_ns > app.source.end_ns)  # type: ignore[union-attr]
        await pilot.click(Timeline, offset=(20, 0))
        await _until(pilot, lambda: timeline.cursor_ns == timeline.time_at(20))
        await _until(pilot, lambda: app.source.seek_generation >= 1)  # type: ignore[union-attr]
        await pilot.mouse_down(Timeline, offset=(30, 0))
        await pilot.mouse_up(Timeline, offset=(50, 0))
        want = (timeline.time_at(30), timeline.time_at(51))
        await _until(pilot, lambda: app.source.selection == want)  # type: ignore[union-attr]
        assert timeline.selection == want


run_async_tests(globals())
