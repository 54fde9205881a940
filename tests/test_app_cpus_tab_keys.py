"""NEWCOMER F24: the CPUs tab offers sort and inspect keys only when a COUNT table is there to act on, and
a probe with a filter shows what it kept beside its hits (its rate is of every hit, not of the kept rows)."""

from __future__ import annotations

from rich.console import Console

from fake_source import FakeSource, fake_catalog, getppid_layout, run_async_tests
from ktui.app import KtuiApp
from ktui.events import ProbeCounters, Update
from ktui.widgets.cpu_counts import CpuCounts
from ktui.widgets.key_counts import CountsScroll


def shown(widget: CpuCounts, width: int = 80) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    console.print(widget._table())
    return console.export_text()


async def test_no_sort_or_inspect_offered_on_per_cpu_tables_alone():
    source = FakeSource({0: getppid_layout(0)})
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        source.push(Update(counters={0: ProbeCounters([35_300, 38_300], [4, 3], [0, 0], [35_296, 38_297])}))
        await pilot.press("2")
        await pilot.pause(0.3)
        scroll = app.main_query(CountsScroll)
        scroll.focus()
        await pilot.pause(0.1)
        offered = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        assert "sort_next" not in offered and "sort_reverse" not in offered and "inspect" not in offered, offered
        counts = app.main_query(CpuCounts)
        text = shown(counts)
        assert "73.6K hits  7 kept by its filter" in text, text
        header = next(line for line in text.splitlines() if "cpu" in line)
        assert header.split()[:3] == ["cpu", "hits", "kept"], header
        row0 = next(line for line in text.splitlines() if line.split()[:1] == ["0"])
        assert row0.split()[1:3] == ["35.3K", "4"], row0


run_async_tests(globals())
