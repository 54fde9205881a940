"""NEWCOMER F2: at 80 columns the status line keeps the kernel's warning in a short form that points
to f1 (which shows it whole), also beside an active filter and search and a held stream."""

from __future__ import annotations

from fake_source import FakeSource, fake_catalog, getppid_layout, run_async_tests
from ktui.app import KtuiApp
from ktui.events import ProbeState
from ktui.widgets.help_screen import HelpScreen
from ktui.widgets.status_bar import StatusBar, short_warning

WARNING = "no kprobes (kernel without CONFIG_KPROBES)"


def test_short_warning_keeps_the_first_clause():
    assert short_warning(WARNING) == "no kprobes (f1)"
    assert short_warning("no uprobes here") == "no uprobes here"  # whole: nothing more under f1
    assert short_warning("no kprobes on this kernel") == "no kprobes on this… (f1)"


async def test_warning_fits_at_80_columns_with_filter_search_and_held():
    app = KtuiApp(source=FakeSource({0: getppid_layout(0)}), catalog_loader=fake_catalog, warnings=[WARNING])
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        status = app.main_query(StatusBar)
        status.not_shown = 141_000
        status.set_state(filter_text="comm=bash", search_text="pid=42", following=False)
        await pilot.pause()
        line = str(status.render())
        assert "! no kprobes (f1)" in line and "FILTER comm=bash" in line and "HELD +141K not shown" in line, line
        await pilot.press("f1")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen) and app.screen.warnings == [WARNING]


async def test_an_old_message_gives_its_room_to_the_search_and_the_probe_count():
    """The CI failure of the fourth session: a held stream's count and the message of a recording
    stopped long before pushed FIND and the probe count off an 80-column line."""
    app = KtuiApp(source=FakeSource({0: getppid_layout(0)}), catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        status = app.main_query(StatusBar)
        status.not_shown = 187_000
        status.probes = [ProbeState(i, f"p{i}", f"tracepoint:x:p{i}", "attached") for i in range(4)]
        message = "478 events recorded to /root/.local/share/ktui/recordings/app-20261206.ktrec"
        status.set_state(search_text="sys_enter", following=False, message=message)
        await pilot.pause()
        fresh = str(status.render())
        assert "478 events recorded" in fresh, fresh  # just said: it is read first
        status._message_at -= 60  # a minute later
        status.set_state(rate=12_300.0)
        await pilot.pause()
        old = str(status.render())
        assert "FIND sys_enter" in old and "probes 4/4" in old and "HELD +187K not shown" in old, old
        assert "478 events" not in old, old  # 14 columns left: too few for a readable piece of it


run_async_tests(globals())
