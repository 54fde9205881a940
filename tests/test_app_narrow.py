"""The app at its smallest (60x16, NEWCOMER F20) and panes laid out while their tab is hidden (pilot,
fake source): the stream's rows keep room for a value, the CPUs tables never cut a count, and a
filtered probe's table says how many events per second its filter kept."""

from __future__ import annotations

import re

import pytest

from fake_source import FakeSource, counters_for, fake_catalog, getppid_layout, make_events, openat_layout
from fake_source import run_async_tests
from ktui.app import KtuiApp
from ktui.events import FieldLayout, ProbeLayout, Update

pytestmark = pytest.mark.timeout(90)


async def settle(app, pilot, times: int = 3) -> None:
    for _ in range(times):
        await app.workers.wait_for_complete()
        await pilot.pause()


def screen_lines(app) -> list[str]:
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


def four_probes() -> dict[int, ProbeLayout]:
    return {0: openat_layout(0), 1: getppid_layout(1),
            2: ProbeLayout(2, "sched_switch", "tracepoint:sched:sched_switch"),
            3: ProbeLayout(3, "profile_49hz", "profile:hz:49")}


def tick(source: FakeSource, i: int) -> None:
    """One second of the source: counts in the tens of millions (six cells with M), rates from the second on."""
    source.push(Update(events={0: make_events(source.layouts[0], 5, start=5 * i)},
                       counters=counters_for({0: 21_456_789 * i, 1: 83_000_000 * i, 2: 5_000_000 * i, 3: 1000 * i}),
                       elapsed_s=float(i)))


def count_cells(lines: list[str]) -> list[str]:
    """The per-CPU rows of the CPUs tables (a CPU number, then the counts)."""
    return [line for line in lines if re.match(r"^\s+[01]\s+\d", line)]


async def test_cpu_counts_drawn_while_hidden_are_not_cut_when_the_tab_comes_back_at_60_columns():
    """The CPUs tab seen at 60x16, then the stream while updates come (the CPUs tables are built with
    no width then), then the CPUs tab again: the counts are whole (the newcomer saw `21…`)."""
    source = FakeSource(four_probes(), [])
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(60, 16)) as pilot:
        await settle(app, pilot)
        tick(source, 1)
        await pilot.press("2")
        await settle(app, pilot)
        await pilot.press("1")
        await settle(app, pilot)
        for i in range(2, 5):
            tick(source, i)
            await settle(app, pilot)
            app._draw_slow_panes()
        await pilot.press("2")
        await settle(app, pilot)
        lines = screen_lines(app)
        rows = count_cells(lines)
        assert rows, "\n".join(lines)
        assert not any("…" in line for line in lines[:-2]), "\n".join(lines)  # nothing cut (the footer may be)
        assert any(re.search(r"\b42\.9M\b", line) for line in rows), "\n".join(lines)  # 4 x 21,456,789 / 2 CPUs


def filename_layout(probe_id: int = 0) -> ProbeLayout:
    """sys_enter_openat as the default session has it: the file name only."""
    return ProbeLayout(probe_id, "sys_enter_openat", "tracepoint:syscalls:sys_enter_openat",
                       (FieldLayout("filename", "S32", "string"),))


async def test_the_stream_at_60x16_shows_values_not_only_a_field_name():
    """The newcomer saw `sys_enter_openat filename…` and no value at all at 60x16."""
    o = filename_layout()
    source = FakeSource({0: o, 1: getppid_layout(1)}, [Update(events={0: make_events(o, 5)})])
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(60, 16)) as pilot:
        await settle(app, pilot)
        lines = screen_lines(app)
        rows = [line for line in lines if "loadgen" in line]
        assert rows, "\n".join(lines)
        assert all(re.search(r"filename='/etc/f\w*", line) for line in rows), "\n".join(lines)
        assert all("openat" in line for line in rows), "\n".join(lines)  # the probe's name tells which


async def test_the_stream_laid_out_while_hidden_keeps_its_width_when_shown_again():
    """A probe added while another tab is shown (the stream has no size then) must not lay the stream
    out for a guessed 80 columns: back on the stream at 60 columns the rows still show a value."""
    o = filename_layout()
    source = FakeSource({0: o}, [Update(events={0: make_events(o, 5)})])
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(60, 16)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await settle(app, pilot)
        from ktui.widgets.event_stream import EventStream

        stream = app.query_one(EventStream)
        stream.set_layouts({0: o, 1: getppid_layout(1)})  # what a source change does while hidden
        await pilot.press("1")
        await settle(app, pilot)
        rows = [line for line in screen_lines(app) if "loadgen" in line]
        assert rows and all(re.search(r"filename='/etc/f\w*", line) for line in rows), "\n".join(screen_lines(app))


async def test_a_filtered_probe_shows_the_rate_its_filter_kept_beside_the_hit_rate():
    g = getppid_layout(0)
    source = FakeSource({0: g}, [])
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        for i in (1, 2):
            counters = counters_for({0: 10_000 * i})
            for cpu in (0, 1):  # 5,000 hits a second on each CPU; the filter kept 30 (cpu 0) and 7 (cpu 1)
                counters[0].delivered[cpu] = (30, 7)[cpu] * i
                counters[0].filtered[cpu] = counters[0].hits[cpu] - counters[0].delivered[cpu]
            source.push(Update(events={}, counters=counters, elapsed_s=float(i)))
            await settle(app, pilot)
            app._draw_slow_panes()
            await settle(app, pilot)
        lines = screen_lines(app)
        header = next((line for line in lines if "kept/s" in line), "")
        assert header and "rate/s" in header, "\n".join(lines)
        cols = header.split()
        rows = count_cells(lines)
        assert len(rows) == 2, "\n".join(lines)
        for cpu, row in enumerate(rows):
            cells = dict(zip(cols, row.split()))
            assert cells["hits"] == "10K" and cells["rate/s"] == "5,000", row
            assert cells["kept"] == str((30, 7)[cpu] * 2) and cells["kept/s"] == str((30, 7)[cpu]), row


run_async_tests(globals())
