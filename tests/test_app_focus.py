"""The focus model's one rule, walked over every tab and widget: global keys (tab numbers, help)
work unless a text box has focus; Escape leaves a text box without changing what it applies; no
key edits a box the user did not focus."""

from __future__ import annotations

import pytest
from textual.widgets import Input, TabbedContent

from fake_source import FakeSource, fake_catalog, getppid_layout, make_events, run_async_tests
from ktui.app import KtuiApp
from ktui.events import Update
from ktui.widgets.event_stream import EventStream
from ktui.widgets.help_screen import HelpScreen
from ktui.widgets.probe_list import ProbeList

pytestmark = pytest.mark.timeout(180)
TABS = {"1": "stream", "2": "cpus", "3": "stacks", "4": "hists", "5": "probes"}


async def settle(app, pilot, times: int = 2) -> None:
    for _ in range(times):
        await app.workers.wait_for_complete()
        await pilot.pause()


def make_app() -> KtuiApp:
    g = getppid_layout(0)
    return KtuiApp(source=FakeSource({0: g}, [Update(events={0: make_events(g, 50)})]), catalog_loader=fake_catalog)


def texts(app) -> dict[str, str]:
    return {box.id or "": box.value for box in app.query(Input)}


async def test_number_keys_switch_tabs_from_every_widget_that_is_not_a_text_box():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        tabs = app.query_one(TabbedContent)
        for start_key, start_tab in TABS.items():
            await pilot.press(start_key)
            await settle(app, pilot)
            assert tabs.active == start_tab
            pane = tabs.get_pane(start_tab)
            widgets = [w for w in pane.query("*") if w.focusable and not isinstance(w, Input)]
            widgets += [w for w in app.query("#symbol-list")]
            for n, widget in enumerate(widgets):
                key = list(TABS)[(list(TABS).index(start_key) + 1 + n) % len(TABS)]  # another tab each time
                before = texts(app)
                widget.focus()
                await pilot.pause()
                await pilot.press(key)
                await pilot.pause()
                assert tabs.active == TABS[key], (widget, key)
                assert not isinstance(app.focused, Input), (widget, key, app.focused)
                assert texts(app) == before, (widget, key)  # no key edited a box nobody focused
                await pilot.press(start_key)
                await pilot.pause()
            widget = widgets[0]
            widget.focus()
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen), widget
            await pilot.press("escape")
            await pilot.pause()


async def test_escape_leaves_every_text_box_unchanged_and_then_global_keys_work():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        tabs = app.query_one(TabbedContent)
        for tab_key, tab in [("5", "probes"), ("1", "stream")]:
            await pilot.press(tab_key)
            await settle(app, pilot)
            boxes = [b for b in tabs.get_pane(tab).query(Input) if b.id not in ("stream-filter", "stream-search")]
            boxes += list(app.query("#symbol-search"))
            for box in boxes:
                box.value = "kept"
                box.focus()
                await settle(app, pilot, 1)
                await pilot.press("escape")
                await settle(app, pilot, 1)
                assert not isinstance(app.focused, Input), box
                await pilot.press("x", "y")  # keys after Escape never reach the box
                assert box.value == "kept", box
                await pilot.press("2")
                await settle(app, pilot, 1)
                assert tabs.active == "cpus", box
                await pilot.press(tab_key)
                await settle(app, pilot, 1)


async def test_after_a_stream_search_number_keys_and_space_still_work():
    """The story: s, text, Enter; then 2 switches to CPUs, 1 back, space pauses; the search box
    never takes the keyboard, and Escape in the filter box leaves the filter in force unchanged."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        tabs = app.query_one(TabbedContent)
        stream = app.query_one(EventStream)
        await pilot.press("1", "s", *"pid=4242", "enter")
        await settle(app, pilot)
        assert stream.search_query == "pid=4242"
        for key, tab in [("2", "cpus"), ("1", "stream"), ("3", "stacks"), ("1", "stream")]:
            await pilot.press(key)
            await settle(app, pilot, 1)
            assert tabs.active == tab and not isinstance(app.focused, Input)
        follow = stream.follow
        await pilot.press("space")
        assert stream.follow != follow
        assert app.query_one("#stream-search", Input).value == "pid=4242"
        await pilot.press("f", *"pid=1", "enter")
        await settle(app, pilot)
        await pilot.press("f", "backspace", "9", "escape")  # edit, then change the mind
        await settle(app, pilot)
        assert app.query_one("#stream-filter", Input).value == "pid=1"
        assert not app.query_one("#stream-filter", Input).display


async def test_end_in_the_probe_list_moves_to_the_last_probe():
    from ktui.probes.model import Probe, ProbeKind

    probes = [Probe(ProbeKind.TRACEPOINT, t) for t in ("sched:sched_switch", "syscalls:sys_enter_openat",
                                                        "syscalls:sys_enter_getppid")]
    app = KtuiApp(catalog_loader=fake_catalog, mode="live", probes=probes)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        await settle(app, pilot)
        table = app.query_one(ProbeList)
        assert app.focused is table
        await pilot.press("end")
        assert table.cursor_row == 2
        await pilot.press("home")
        assert table.cursor_row == 0



async def test_delete_asks_before_removing_a_probe():
    from fake_source import RecordingFactory
    from ktui.probes.model import Probe, ProbeKind
    from ktui.widgets.confirm import ConfirmScreen

    probes = [Probe(ProbeKind.TRACEPOINT, t) for t in ("sched:sched_switch", "syscalls:sys_enter_openat")]
    factory = RecordingFactory()
    app = KtuiApp(catalog_loader=fake_catalog, mode="live", probes=probes, source_factory=factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("5", "end", "delete")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "sys_enter_openat" in app.screen.question
        starts = len(factory.calls)
        await pilot.press("n")  # keep it: nothing restarts, nothing is cleared
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert [p.name for p in app.probes] == ["sched_switch", "sys_enter_openat"]
        assert len(factory.calls) == starts
        await pilot.press("delete", "y")
        await settle(app, pilot)
        assert [p.name for p in app.probes] == ["sched_switch"]


run_async_tests(globals())
