"""What a person sees at 80x24 (pilot, fake source): whole probe names, counts never cut, the
status line's important facts, sideways scroll, the filter marker, resizing, NO_COLOR contrast."""

from __future__ import annotations

import re

import pytest

from fake_source import (FakeSource, counters_for, fake_catalog, getppid_layout, make_events, openat_layout,
                         run_async_tests)
from ktui.app import KtuiApp
from ktui.events import ProbeLayout, ProbeState, Update
from ktui.widgets.event_stream import EventStream
from ktui.widgets.status_bar import StatusBar

pytestmark = pytest.mark.timeout(90)


async def settle(app, pilot, times: int = 3) -> None:
    for _ in range(times):
        await app.workers.wait_for_complete()
        await pilot.pause()


def screen_lines(app) -> list[str]:
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


def openat2_layout(probe_id: int) -> ProbeLayout:
    base = openat_layout(probe_id)
    return ProbeLayout(probe_id, "sys_enter_openat2", "tracepoint:syscalls:sys_enter_openat2", base.fields)


async def test_probe_names_are_whole_at_80x24():
    """sys_enter_openat and sys_enter_openat2 must not both read sys_enter_op."""
    o, o2 = openat_layout(0), openat2_layout(1)
    source = FakeSource({0: o, 1: o2}, [Update(events={0: make_events(o, 5), 1: make_events(o2, 5, start=5)})])
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        lines = screen_lines(app)
        assert any("sys_enter_openat2" in line for line in lines), "\n".join(lines)
        assert any("sys_enter_openat " in line for line in lines), "\n".join(lines)


async def test_the_stream_scrolls_sideways_to_the_values():
    o = openat_layout(0)
    source = FakeSource({0: o}, [Update(events={0: make_events(o, 5)})])
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        stream = app.query_one(EventStream)
        stream.focus()
        assert not any("oflags=0x80000" in line for line in screen_lines(app))
        assert any(line.rstrip().endswith("…") for line in screen_lines(app))  # the row goes on: said
        for _ in range(60):
            await pilot.press("right")
        await settle(app, pilot)
        assert stream.scroll_x > 0
        assert any("oflags=0x80000" in line for line in screen_lines(app)), "\n".join(screen_lines(app))
        assert any("VALUES" in line for line in screen_lines(app))  # the header scrolled with the rows


async def test_cpu_counts_are_never_cut():
    g = getppid_layout(0)
    counters = counters_for({0: 3_456_789}, dropped=12_345)
    source = FakeSource({0: g}, [Update(events={0: make_events(g, 3)}, counters=counters)])
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await settle(app, pilot)
        app._draw_slow_panes()
        await settle(app, pilot)
        text = "\n".join(screen_lines(app))
        assert "hits" in text and "dropped" in text
        assert re.search(r"3\.4\dM hits", text), text
        right = [line[26:] for line in screen_lines(app)[2:12]]  # the pane, right of the browser
        assert not any("…" in line for line in right), "\n".join(right)


async def test_status_line_keeps_what_matters_at_80_columns():
    g = getppid_layout(0)
    states = [ProbeState(0, "a", "tracepoint:a:a", "attached"),
              ProbeState(1, "b", "tracepoint:b:b", "failed", "no such tracepoint"),
              ProbeState(2, "c", "tracepoint:c:c", "attached")]
    source = FakeSource({0: g}, [Update(events={0: make_events(g, 3)}, counters=counters_for({0: 3}, dropped=7),
                                        probes=states)])
    app = KtuiApp(source=source, catalog_loader=fake_catalog,
                  warnings=["no kprobes (kernel built without CONFIG_KPROBES)"])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        line = screen_lines(app)[-2]
        assert "LIVE" in line and "dropped 7" in line and "1 failed" in line, line
        assert "! no kprobes" in line, line  # the warning keeps its words, never a bare "!"
        assert line.rstrip()[-1] != "!"


async def test_an_active_filter_is_always_visible():
    g = getppid_layout(0)
    source = FakeSource({0: g}, [Update(events={0: make_events(g, 10)})])
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.query_one(EventStream).focus()
        await pilot.press("f", *"pid=4242", "enter")
        await settle(app, pilot)
        assert app.query_one(StatusBar).filter_text == "pid=4242"
        assert "FILTER pid=4242" in screen_lines(app)[-2]
        await pilot.press("s", *"cpu=1", "enter")
        await settle(app, pilot)
        assert "FIND cpu=1" in screen_lines(app)[-2]


async def test_the_too_small_message_goes_when_the_terminal_reaches_the_minimum():
    app = KtuiApp(catalog_loader=fake_catalog)
    async with app.run_test(size=(60, 15)) as pilot:
        await settle(app, pilot)
        assert any("needs at least 60x16" in line for line in screen_lines(app))
        await pilot.resize_terminal(60, 16)
        await settle(app, pilot)
        assert not app.screen.has_class("too-small")
        assert not any("needs at least" in line for line in screen_lines(app)), "\n".join(screen_lines(app))


def test_no_color_text_is_never_dark_on_dark():
    from rich.style import Style
    from textual.color import Color

    from ktui.widgets.no_color import MIN_CONTRAST, legible_style

    black, white = Color(0, 0, 0), Color(255, 255, 255)
    for color in ("magenta", "red", "blue", "green", "cyan", "color(237)", "yellow"):
        for bg in (black, white):
            style = legible_style(Style(color=color), bg)
            fg = Color.from_rich_color(style.color)
            assert abs(fg.brightness - bg.brightness) >= MIN_CONTRAST, (color, bg, fg)
            assert fg.r == fg.g == fg.b, "no colour under NO_COLOR"
    dim = legible_style(Style(dim=True, color="white"), black)
    assert not dim.dim and Color.from_rich_color(dim.color).brightness > 0.5


async def test_no_color_app_uses_the_legible_filter(monkeypatch):
    from ktui.widgets.no_color import LegibleMonochrome

    monkeypatch.setenv("NO_COLOR", "1")
    app = KtuiApp(catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert any(isinstance(f, LegibleMonochrome) for f in app._filters)



def ret_layout(probe_id: int = 0) -> ProbeLayout:
    from ktui.events import FieldLayout

    return ProbeLayout(probe_id, "sys_exit_openat", "tracepoint:syscalls:sys_exit_openat",
                       (FieldLayout("ret", "<i8", "errno"), FieldLayout("filename", "S32", "string")))


async def test_enter_inspects_a_row_in_full_and_p_filters_to_its_pid():
    from ktui.widgets.inspector import InspectorScreen

    lay = ret_layout(0)
    events = make_events(lay, 6)
    events["ret"] = [3, -2, 4, -13, 5, 6]
    events["pid"] = [10, 11, 10, 12, 10, 10]
    events["filename"] = [b"/a/long/path/the/row/cuts/x.txt"] * 6
    source = FakeSource({0: lay}, [Update(events={0: events})])
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        stream = app.query_one(EventStream)
        stream.focus()
        await pilot.press("home", "down", "down", "enter")  # the cursor on row 1 (second), then inspect
        await settle(app, pilot)
        assert isinstance(app.screen, InspectorScreen)
        text = "\n".join(screen_lines(app))
        assert "-2 ENOENT" in text, text
        assert "/a/long/path/the/row/cuts/x.txt" in text
        await pilot.press("p")
        await settle(app, pilot)
        assert not isinstance(app.screen, InspectorScreen)
        assert stream.window.visible_count == 1  # only pid 11
        assert app.query_one(StatusBar).filter_text == "pid=11"


async def test_inspector_value_filter_and_escape():
    from ktui.widgets.inspector import InspectorScreen

    lay = ret_layout(0)
    events = make_events(lay, 4)
    events["ret"] = [-2, -2, 5, -13]
    source = FakeSource({0: lay}, [Update(events={0: events})])
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        stream = app.query_one(EventStream)
        stream.focus()
        await pilot.press("home", "down", "enter")  # row 0: ret=-2
        await settle(app, pilot)
        assert isinstance(app.screen, InspectorScreen)
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, InspectorScreen) and stream.window.visible_count == 4
        await pilot.press("enter")
        await settle(app, pilot)
        fields = app.screen.fields
        row = next(i for i, f in enumerate(fields) if f.name == "ret")
        app.screen.query_one("#inspector-fields").highlighted = row
        await pilot.press("v")
        await settle(app, pilot)
        assert stream.window.visible_count == 2  # ret == -2 twice


run_async_tests(globals())
