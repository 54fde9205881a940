"""F11 (NEWCOMER.md): the editor's choices for one probe do not carry over to the next: after a
probe with a histogram is added, a pasted kprobe_events line is added with that probe's defaults."""

from __future__ import annotations

import pytest
from textual.widgets import Checkbox

from fake_source import RecordingFactory, fake_catalog, run_async_tests
from ktui.app import KtuiApp
from ktui.probes.draft import ProbeDraft
from ktui.probes.model import ActionKind

SIZE = (80, 24)
pytestmark = pytest.mark.timeout(60)
PASTED = "p:myprobe do_sys_openat2 dfd=%di:s32 how=+0(%dx):x64"  # a kprobe_events line: its first value a number


async def _settle(app, pilot) -> None:
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause()


async def test_a_histogram_ticked_for_one_probe_is_not_added_to_the_next():
    factory = RecordingFactory()
    app = KtuiApp(mode="live", source_factory=factory, catalog_loader=fake_catalog)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(app, pilot)
        await pilot.press("slash", *"sys_enter_openat", "enter")
        await _settle(app, pilot)
        app.query_one("#editor-args").select("dfd")
        app.query_one("#act-hist", Checkbox).value = True
        await pilot.press("ctrl+n")
        await _settle(app, pilot)
        first = app.probes[-1]
        assert [(a.kind, a.value) for a in first.actions if a.kind is ActionKind.HIST] == [(ActionKind.HIST, "dfd")]
        # what the screen shows for the next probe is what it will get: the defaults
        assert not app.query_one("#act-hist", Checkbox).value and list(app.query_one("#editor-args").selected) == []
        spec = app.query_one("#editor-spec")
        spec.value = ""
        spec.focus()
        await pilot.press(*PASTED, "ctrl+n")
        await _settle(app, pilot)
        second = app.probes[-1]
        assert second.name == "myprobe" and len(app.probes) == 2
        defaults = ProbeDraft()
        assert [a.kind for a in second.actions] == [ActionKind.STREAM, ActionKind.COUNT]
        assert (defaults.stream, defaults.count, defaults.stacks, defaults.hist) == (True, True, False, False)


run_async_tests(globals())
