"""NEWCOMER F8: each command-palette entry's second line is for a user (its key and where it works),
never an internal binding id."""

from __future__ import annotations

from fake_source import FakeSource, fake_catalog, getppid_layout, run_async_tests
from ktui.app import KtuiApp


async def test_palette_entries_say_key_and_where_not_ids():
    app = KtuiApp(source=FakeSource({0: getppid_layout(0)}), catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        commands = list(app.get_system_commands(app.screen))
        helps = {c.title: c.help for c in commands}
        assert not [h for h in helps.values() if "binding id" in h or "app." in h or "stream." in h], helps
        cpus = next(t for t in helps if t.startswith("CPUs"))
        assert helps[cpus] == "key 2, anywhere", helps[cpus]
        follow = next(t for t in helps if t.startswith("Follow/pause"))
        assert helps[follow].endswith("in the stream (tab 1)") and helps[follow].startswith("key "), helps[follow]


run_async_tests(globals())
