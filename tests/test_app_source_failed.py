"""When no probe could attach, the probes say failed (not "pending", as if still coming), and adding a
probe afterwards builds a new source (pilot, fake sources; the live story is in
tests/test_app_tmux_stories.py: kprobe:schedule then sched:sched_switch on this kernel)."""

from __future__ import annotations

import pytest

from fake_source import FakeSource, fake_catalog, run_async_tests
from ktui.app import KtuiApp
from ktui.errors import KtuiError
from ktui.events import ProbeLayout
from ktui.probes.model import Probe, ProbeKind
from ktui.widgets.probe_list import ProbeList

pytestmark = pytest.mark.timeout(90)


class Refused(FakeSource):
    def start(self, sink) -> None:
        raise KtuiError("no probe could attach (kprobe:schedule: kprobes are not available here)")


class Factory:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, probes: list[Probe]):
        self.calls.append([p.spec for p in probes])
        layouts = {i: ProbeLayout(i, p.name, p.spec) for i, p in enumerate(probes)}
        return (Refused if len(self.calls) == 1 else FakeSource)(layouts)


async def settle(app, pilot, times: int = 4) -> None:
    for _ in range(times):
        await app.workers.wait_for_complete()
        await pilot.pause()


def statuses(app: KtuiApp) -> list[str]:
    table = app.query_one(ProbeList)
    return [str(table.get_row_at(i)[3]) for i in range(table.row_count)]


async def test_probes_of_a_source_that_could_not_start_read_failed_and_a_new_probe_starts_afresh():
    factory = Factory()
    app = KtuiApp(catalog_loader=fake_catalog, mode="live", source_factory=factory,
                  probes=[Probe(ProbeKind.KPROBE, "schedule")])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert factory.calls == [["kprobe:schedule"]]
        [status] = statuses(app)
        assert status.startswith("failed: no probe could attach"), status
        app.add_probes([Probe(ProbeKind.TRACEPOINT, "sched:sched_switch")])
        await settle(app, pilot)
        assert factory.calls[-1] == ["kprobe:schedule", "tracepoint:sched:sched_switch"]
        assert not any(s.startswith("failed") for s in statuses(app))  # the new source says anew


run_async_tests(globals())
