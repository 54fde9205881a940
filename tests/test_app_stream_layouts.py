"""A probe id names another probe once its source is replaced (a new source numbers from 0): rows
already in the stream are read with the layout they were decoded with, and updates of a replaced
source are dropped even when they were queued before the replacement.

Regression: ``ValueError: no field of name filename`` in the stream's row rendering, once seen
after probes were replaced while rows were on screen.
"""

from __future__ import annotations

import pytest

from fake_source import FakeSource, fake_catalog, getppid_layout, make_events, openat_layout, run_async_tests
from ktui.app import KtuiApp
from ktui.events import Update
from ktui.widgets.event_stream import EventStream, EventWindow

pytestmark = pytest.mark.timeout(60)
SIZE = (100, 30)


async def settle(app, pilot, times: int = 3) -> None:
    for _ in range(times):
        await app.workers.wait_for_complete()
        await pilot.pause()


def screen_text(stream: EventStream) -> list[str]:
    return ["".join(seg.text for seg in stream.render_line(y)) for y in range(stream.size.height)]


def test_a_window_chunk_keeps_the_layout_that_fits_it():
    window = EventWindow(100)
    getppid, openat = getppid_layout(0), openat_layout(0)
    window.append({0: make_events(getppid, 3)}, {0: getppid})
    window.append({0: make_events(openat, 2, start=3)}, {0: openat})
    window.append({0: make_events(getppid, 1, start=5)}, {0: openat})  # a layout that cannot read them
    kept = [window.entry(window.first + i)[2] for i in range(len(window))]
    assert kept == [getppid] * 3 + [openat] * 2 + [None]


async def test_rows_of_a_replaced_probe_render_with_their_own_layout():
    """Probe 0 was getppid (no fields); after the source is replaced, probe 0 is openat (filename):
    the getppid rows on screen still render, under their own name, and the new rows show filename."""
    getppid, openat = getppid_layout(0), openat_layout(0)
    first = FakeSource({0: getppid}, [Update(events={0: make_events(getppid, 5)})])
    app = KtuiApp(source=first, catalog_loader=fake_catalog, mode="replay")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        stream = app.query_one(EventStream)
        assert stream.window.total == 5
        second = FakeSource({0: openat})
        app.live.adopt(second)  # the new source, numbered from 0 like every new one
        await settle(app, pilot)
        second.push(Update(events={0: make_events(openat, 3, start=5)}))
        await settle(app, pilot)
        assert stream.window.total == 8
        lines = [line for line in screen_text(stream) if "sys_enter_" in line]
        assert len(lines) == 8
        assert all("sys_enter_getppid" in line and "filename=" not in line for line in lines[:5])
        assert all("sys_enter_openat" in line and "filename='/etc/file" in line for line in lines[5:])
        title, fields = stream.inspect(stream.window.first)  # the inspector reads the old row the same way
        assert title.startswith("sys_enter_getppid") and "filename" not in [f.name for f in fields]


async def test_an_update_queued_before_its_source_was_replaced_is_dropped():
    """The sink checked the generation, then the source was replaced before the update was applied:
    the update is not applied (its probe ids are the old source's)."""
    getppid, openat = getppid_layout(0), openat_layout(0)
    first = FakeSource({0: getppid})
    app = KtuiApp(source=first, catalog_loader=fake_catalog, mode="replay")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        stream = app.query_one(EventStream)
        first.push(Update(events={0: make_events(getppid, 4)}))  # queued, its message not yet handled
        app.live.adopt(FakeSource({0: openat}))
        await settle(app, pilot)
        assert stream.window.total == 0
        assert all("sys_enter_getppid" not in line for line in screen_text(stream))


run_async_tests(globals())
