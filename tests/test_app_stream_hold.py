"""A held stream (space, HELD) stays still: rows on screen are never evicted under the reader, newer
rows that do not fit are counted and said, and unholding resumes at the live end (NEWCOMER F4)."""

from __future__ import annotations

import subprocess
import time

import pytest

from fake_source import FakeSource, fake_catalog, getppid_layout, make_events, run_async_tests
from helpers import getppid_binary
from ktui.app import KtuiApp
from ktui.app_main import _live_factory
from ktui.events import Update
from ktui.probes.model import Action, ActionKind, Probe, ProbeKind
from ktui.widgets.confirm import ConfirmScreen
from ktui.widgets.event_stream import EventStream, EventWindow
from ktui.widgets.status_bar import StatusBar

LAYOUT = getppid_layout(0)


def test_a_held_window_evicts_nothing_and_counts_what_it_could_not_keep():
    window = EventWindow(100)
    window.append({0: make_events(LAYOUT, 60)})
    window.hold(True)
    first = [int(window.record(window.first + i)[1]["ts"]) for i in range(60)]
    assert window.append({0: make_events(LAYOUT, 70, start=60)}) == 40  # only what fits
    assert len(window) == 100 and window.first == 0 and window.not_kept == 30
    assert [int(window.record(i)[1]["ts"]) for i in range(60)] == first  # the held rows did not move
    assert [int(window.record(i)[1]["ts"]) for i in range(60, 100)] == \
        [int(t) for t in make_events(LAYOUT, 70, start=60)["ts"][:40]]  # the oldest new rows, in order
    assert window.append({0: make_events(LAYOUT, 5, start=130)}) == 0 and window.not_kept == 35
    assert window.hold(False) == 35 and window.not_kept == 0
    window.append({0: make_events(LAYOUT, 10, start=135)})  # released: the newest rows again
    assert len(window) == 100 and int(window.record(window.first + 99)[1]["ts"]) == \
        int(make_events(LAYOUT, 10, start=135)["ts"][-1])


def test_a_held_window_keeps_the_oldest_rows_of_an_update_across_probes_in_time_order():
    window = EventWindow(10)
    window.hold(True)
    a, b = make_events(LAYOUT, 8), make_events(getppid_layout(1), 8, start=4)
    assert window.append({0: a, 1: b}) == 10 and window.not_kept == 6
    ts = [int(window.record(i)[1]["ts"]) for i in range(10)]
    assert ts == sorted(int(t) for t in list(a["ts"]) + list(b["ts"]))[:10]


async def test_c_asks_before_clearing_and_time_keeps_one_clock():
    """F23: c discards rows, so it asks (n keeps them); after a clear TIME still counts from the session's start."""
    source = FakeSource({0: LAYOUT})
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        stream = app.main_query(EventStream)
        source.push(Update(events={0: make_events(LAYOUT, 10, step_ns=1_000_000_000)}))  # 0 s .. 9 s
        await pilot.pause(0.2)
        stream.focus()
        await pilot.press("c")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen) and len(stream.window) == 10
        await pilot.press("n")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmScreen) and len(stream.window) == 10
        await pilot.press("c")
        await pilot.pause(0.1)
        await pilot.press("y")
        await pilot.pause(0.1)
        assert len(stream.window) == 0
        source.push(Update(events={0: make_events(LAYOUT, 2, start=20, step_ns=1_000_000_000)}))  # 20 s, 21 s
        await pilot.pause(0.2)
        assert stream.render_line(0).text.split()[0] == "20.000000"  # not 0.000000: one clock


@pytest.mark.live
@pytest.mark.timeout(120)
async def test_live_held_stream_keeps_its_first_row_while_a_fast_child_runs():
    child = subprocess.Popen([str(getppid_binary()), "2000000000"])  # getppid as fast as it can
    try:
        probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", filter=f"pid == {child.pid}",
                      actions=[Action(ActionKind.STREAM)])
        app = KtuiApp(probes=[probe], source_factory=_live_factory, mode="live")
        async with app.run_test(size=(80, 24)) as pilot:
            stream = app.query_one(EventStream)
            stream.window.capacity = 2000  # a small window fills in a fraction of a second
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and stream.window.total < 3 * 2000:
                await pilot.pause(0.1)
            assert stream.window.total >= 3 * 2000, f"the child's events never came: {app.states}"
            stream.focus()
            await pilot.press("space")
            await pilot.pause(0.2)
            assert not stream.follow
            top = int(stream.scroll_offset.y)
            held = [stream.window.record(stream.window.visible_abs(top + i))[1]["ts"] for i in range(5)]
            lines = [stream.render_line(i).text for i in range(5)]
            for _ in range(6):  # over three seconds the same rows stay on screen
                await pilot.pause(0.5)
                assert int(stream.scroll_offset.y) == top
                assert [stream.render_line(i).text for i in range(5)] == lines
                now = [stream.window.record(stream.window.visible_abs(top + i))[1]["ts"] for i in range(5)]
                assert now == held
            assert stream.window.not_kept > 0  # the child went on: newer rows were counted, not shown
            assert "not shown" in str(app.query_one(StatusBar).render())
            await pilot.press("space")  # resume: the live end again
            await pilot.pause(0.5)
            assert stream.follow and stream.window.not_kept == 0
            newest = int(stream.window.record(stream.window.first + len(stream.window) - 1)[1]["ts"])
            assert newest > max(int(t) for t in held)
            await pilot.press("q")
    finally:
        child.kill()
        child.wait()


run_async_tests(globals())
