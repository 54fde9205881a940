"""Keys that wait together in the app's queue (typed while the app starts or is busy, such as during
the first compile) are handled one after another, each after the one before has finished: none is
lost or sent to a widget that no longer has the keyboard."""

from __future__ import annotations

import pytest
from textual import events

from fake_source import RecordingFactory, fake_catalog, run_async_tests
from ktui.app import KtuiApp
from ktui.probes.model import Probe, ProbeKind
from ktui.widgets.event_stream import EventStream

pytestmark = pytest.mark.timeout(120)
SIZE = (80, 24)


async def settle(app, pilot, times: int = 4) -> None:
    for _ in range(times):
        await app.workers.wait_for_complete()
        await pilot.pause()


def type_at_once(app: KtuiApp, keys: list[str]) -> None:
    """Queue every key before any is handled, as the terminal delivers them to a busy app."""
    names = {"/": "slash", "_": "underscore", "=": "equals_sign", " ": "space"}
    for k in keys:
        key = names.get(k, k)
        char = k if len(k) == 1 else ("\r" if k == "enter" else None)
        app.post_message(events.Key(key, char))


def live_app() -> KtuiApp:
    probes = [Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid")]
    return KtuiApp(catalog_loader=fake_catalog, mode="live", probes=probes, source_factory=RecordingFactory())


async def test_slash_then_a_name_typed_at_once_all_land_in_the_search_box():
    app = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        type_at_once(app, ["/", *"getppid"])
        await settle(app, pilot)
        assert app.query_one("#symbol-search").value == "getppid"
        assert not app.query_one("#stream-search").display  # no letter went to the stream


async def test_filter_typed_at_once_then_escape_then_a_tab_key():
    """f, a filter, Enter, then 5: the filter is applied and the tab switched; then f, text, Escape, 1:
    the box is left unchanged and the 1 switches the tab (it is not typed into the box)."""
    app = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        type_at_once(app, ["f", *"pid=7", "enter", "5"])
        await settle(app, pilot)
        assert app.query_one("#status").filter_text == "pid=7"
        assert app.query_one("#panes").active == "probes"
        type_at_once(app, ["1", "f", *"xyz", "escape", "1", "3"])
        await settle(app, pilot)
        assert app.query_one("#stream-filter").value == "pid=7"  # Escape put back the filter in force
        assert app.query_one("#status").filter_text == "pid=7"
        assert app.query_one("#panes").active == "stacks"


async def test_enter_typed_before_raw_mode_arrives_as_ctrl_j_and_still_submits():
    app = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        type_at_once(app, ["s", *"cpu=1", "ctrl+j"])
        await settle(app, pilot)
        assert app.query_one(EventStream).search_query == "cpu=1"
        assert not app.query_one("#stream-search").display


async def test_enter_before_the_catalog_is_loaded_opens_the_first_match_when_it_is():
    import threading

    loaded = threading.Event()

    def slow_catalog():
        loaded.wait(30)
        return fake_catalog()

    app = KtuiApp(catalog_loader=slow_catalog, mode="live", probes=[], source_factory=RecordingFactory())
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        type_at_once(app, ["/", *"getppid", "enter", "ctrl+n"])  # ctrl+n must add what Enter opens
        for _ in range(5):
            await pilot.pause()
        assert app.query_one("#panes").active == "stream"  # nothing to open yet
        assert app.probes == []  # ctrl+n waits for the entry Enter opens
        loaded.set()
        await settle(app, pilot, 8)
        assert "getppid" in app.query_one("#editor-spec").value
        assert [p.spec for p in app.probes] == ["tracepoint:syscalls:sys_enter_getppid"]


async def test_keys_typed_right_after_a_key_that_opens_a_dialog_go_to_the_dialog(tmp_path):
    """ctrl+o pushes the save-as prompt; the keys queued behind it go to its path field once it is
    mounted (not to the stream), Enter answers it, and the key after goes to the main screen again.
    Then the same with Escape: the prompt closes unchanged, nothing is saved, 3 switches the tab."""
    app = live_app()
    path = tmp_path / "typed-at-once.toml"
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        type_at_once(app, ["ctrl+o", "ctrl+u", *str(path), "enter", "5"])
        await settle(app, pilot, 8)
        assert path.exists() and "sys_enter_getppid" in path.read_text()
        assert app.query_one("#panes").active == "probes"
        assert len(app.screen_stack) == 1
        other = tmp_path / "never.toml"
        type_at_once(app, ["ctrl+o", "ctrl+u", *str(other), "escape", "3"])
        await settle(app, pilot, 8)
        assert not other.exists() and len(app.screen_stack) == 1
        assert app.query_one("#panes").active == "stacks"
        assert not app.query_one("#stream-search").display and app.query_one(EventStream).search_query == ""


async def test_a_paste_takes_its_turn_behind_the_keys_typed_before_it():
    """Keys and a bracketed paste arriving together reach the box in the order typed (NEWCOMER F10: the
    paste overtook the queued keys: 'hello' then a paste gave 'htracepoint:...ello', and ctrl+u then a
    paste left the box empty)."""
    from textual.widgets import Input

    pasted = "tracepoint:sched:sched_process_exec"
    app = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        type_at_once(app, ["5"])
        await settle(app, pilot)
        spec = app.query_one("#editor-spec", Input)
        spec.focus()
        await settle(app, pilot)
        spec.value = ""
        type_at_once(app, [*"hello"])
        app.post_message(events.Paste(pasted))
        await settle(app, pilot, 6)
        assert spec.value == "hello" + pasted
        type_at_once(app, ["ctrl+u"])
        app.post_message(events.Paste(pasted))
        await settle(app, pilot, 6)
        assert spec.value == pasted
        type_at_once(app, ["ctrl+u"])  # and keys typed right after a paste go after it
        app.post_message(events.Paste("tracepoint:sched:"))
        type_at_once(app, [*"sched_wakeup"])
        await settle(app, pilot, 6)
        assert spec.value == "tracepoint:sched:sched_wakeup"


run_async_tests(globals())
