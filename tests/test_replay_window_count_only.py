"""A replay window of a count-only probe (its calls counted in the kernel, no event recorded) and of a
recording without counters over time (issue 15), on the live kernel.

A C child makes 3000 getppid calls, sleeps 5 s, then makes 2000 more; getppid is recorded with a COUNT
action only (no stream), getpid (streamed) marks where each burst begins and ends. A window over the
first burst gives getppid exactly 3000 hits from the counters the recorder takes every second (taken in
the pause, so the window's 1 s resolution is exact here), one over the second exactly 2000; the CPUs
tab says they are at 1 s resolution. The same file with its counter_history table dropped (as files
older than the table) says lost/dropped counts are not known per window instead of showing 0.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from rich.console import Console

from fake_source import run_async_tests
from helpers import build_c
from ktui.app import KtuiApp
from ktui.cli import main
from ktui.recording import RecordingReader
from ktui.recording.window import window_aggregates
from ktui.sources.replay import ReplaySource
from ktui.units import human_count, human_rate
from ktui.widgets.cpu_counts import CpuCounts
from ktui.widgets.timeline import Timeline
from test_replay_window_losses import BURSTS_C

pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]

GETPPID, GETPID = 0, 1


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[Path, Path, int, int]:
    """(the recording, a copy without counter_history, end of the first burst, start of the second)."""
    from ktui.probes.model import Action, ActionKind, Probe, ProbeKind
    from ktui.session import Session

    tmp = tmp_path_factory.mktemp("count-only")
    session = tmp / "count-only.toml"
    Session(probes=[Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid",
                          actions=[Action(ActionKind.COUNT, key=("comm",))]),
                    Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getpid")]).save(session)
    out = tmp / "count-only.ktrec"
    assert main(["record", "--session", str(session), "-o", str(out), "-q", "--",
                 str(build_c("window-count-only", BURSTS_C)), "3000", "2000"]) == 0
    with RecordingReader.open(out) as r:
        assert r.count(probe_ids=[GETPPID]) == 0  # counted in the kernel, never recorded
        assert sum(r.counters()[GETPPID].hits) == 5000
        marks = sorted(int(t) for a in r.events(probe_ids=[GETPID]) for t in a["ts"])
    assert len(marks) == 4, marks
    old = tmp / "no-history.ktrec"
    shutil.copyfile(out, old)
    with sqlite3.connect(old) as db:
        db.execute("DROP TABLE counter_history")
    return out, old, marks[1], marks[2]


def test_count_only_window_counts_come_from_the_counters_at_1s(recording):
    path, _, first_end, second_start = recording
    with RecordingReader.open(path) as r:
        assert any(first_end < ts < second_start for ts, _ in r.counter_history())
        first = window_aggregates(r, r.first_ts, first_end + 1)
        second = window_aggregates(r, first_end + 3_000_000_000, r.last_ts + 1)
        whole = window_aggregates(r, r.first_ts, r.last_ts + 1)
    assert (sum(first.counters[GETPPID].hits), sum(second.counters[GETPPID].hits)) == (3000, 2000)
    assert sum(whole.counters[GETPPID].hits) == 5000
    assert first.coarse == second.coarse == [GETPPID] and first.losses_known
    # the streamed probe's window counts are its events, exact
    assert sum(first.counters[GETPID].hits) == 2 and GETPID not in first.coarse


def test_without_counter_history_window_losses_are_not_known(recording):
    _, old, first_end, _ = recording
    with RecordingReader.open(old) as r:
        assert r.counter_history() == []
        agg = window_aggregates(r, r.first_ts, first_end + 1)
    assert not agg.losses_known
    assert sum(agg.counters[GETPID].hits) == 2  # events are still counted exactly
    assert GETPPID not in agg.counters  # a count-only probe has no window counts at all in such a file


async def _until(pilot, predicate, tries: int = 400) -> bool:
    for _ in range(tries):
        await pilot.pause(0.05)
        if predicate():
            return True
    return False


async def _cpus_text_of_window(path: Path, end_ns: int) -> tuple[str, str, CpuCounts]:
    """The CPUs tab's text (as drawn at its width, 80x24) and the timeline's note for the window
    [start, end_ns) selected in the app."""
    source = ReplaySource([path])
    app = KtuiApp(source=source, mode="replay", banner="Replaying (read-only).")
    async with app.run_test(size=(80, 24)) as pilot:
        cpus, timeline = app.main_query(CpuCounts), app.main_query(Timeline)
        await pilot.pause(0.3)
        await pilot.press("2")  # the CPUs tab
        app.replay.select(source.start_ns, end_ns + source.tracks[0].shift_ns)
        assert await _until(pilot, lambda: source.window is not None and source.selection is not None
                            and (source.window.start_ns, source.window.end_ns) == source.selection
                            and timeline.note != "recomputing…")
        await pilot.pause(0.5)
        console = Console(width=cpus.size.width, record=True, file=open(os.devnull, "w"))
        console.print(cpus._table())
        text = " ".join(console.export_text().split())  # a title too long for the pane wraps
        note = timeline.note
        await pilot.press("q")
    return text, note, cpus


async def test_the_cpus_tab_says_1s_resolution_and_counts_the_window(recording):
    path, _, first_end, _ = recording
    text, note, cpus = await _cpus_text_of_window(path, first_end + 1)
    assert sum(cpus.counters[GETPPID].hits) == 3000
    assert "sys_enter_getppid 3,000 hits window counts at 1 s resolution (counted in the kernel; over " in text, text
    # its rate is over the seconds its counts cover (from the recording's start to the counters taken in
    # the pause), not over the few milliseconds of the burst the window holds
    with RecordingReader.open(path) as r:
        lo, hi = r.counters_span(r.first_ts, first_end + 1)
    assert hi > first_end and f"over {(hi - lo) / 1e9:.1f} s)" in text
    for hits in cpus.counters[GETPPID].hits:  # each CPU's row: its hits over the seconds counted
        assert hits == 0 or f" {human_count(hits)} {human_rate(hits / ((hi - lo) / 1e9))} " in text, text
    assert "at 1 s resolution: sys_enter_getppid" in note
    assert "not known per window" not in text


async def test_the_cpus_tab_says_losses_are_not_known_without_counter_history(recording):
    _, old, first_end, _ = recording
    text, note, cpus = await _cpus_text_of_window(old, first_end + 1)
    assert "lost/dropped counts are not known per window in this recording" in text, text
    assert note.startswith("lost/dropped counts are not known per window")
    assert GETPPID not in cpus.counters and sum(cpus.counters[GETPID].hits) == 2
    # every CPU row's dropped and filtered cells say ? (not a false 0)
    assert "dropped filtered" in text and text.count(" ? ?") == len(cpus.counters[GETPID].hits) >= 1, text


run_async_tests(globals())
