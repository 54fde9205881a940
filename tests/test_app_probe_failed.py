"""NEWCOMER F6/F7 on the live kernel (no kprobes here): a probe that failed to attach reads as failed
with its reason in the CPUs tab (never "0 hits"); the remove dialog says exactly what removing does;
the editor stops showing an old probe's attach error once it is removed or a later probe attaches."""

from __future__ import annotations

import time

import pytest
from rich.console import Console

from fake_source import run_async_tests
from helpers import getppid_child
from ktui.app import KtuiApp
from ktui.app_main import _live_factory
from ktui.doctor import diagnose
from ktui.probes.model import Action, ActionKind, Probe, ProbeKind
from ktui.widgets.confirm import ConfirmScreen
from ktui.widgets.cpu_counts import CpuCounts
from ktui.widgets.event_stream import EventStream
from ktui.widgets.probe_list import ProbeList

pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]


async def wait_for(pilot, predicate, timeout: float = 40.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await pilot.pause(0.05)
    return predicate()


def shown(widget) -> str:
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    console.print(widget._table())
    return console.export_text()


async def test_a_failed_probe_reads_failed_and_its_removal_says_what_happens():
    if diagnose(compile_check=False).checks["kprobe"].ok:
        pytest.skip("this kernel has kprobes: the failure path is not reachable here")
    getppid = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid",
                    actions=[Action(ActionKind.STREAM), Action(ActionKind.COUNT, key=("cpu",))])
    app = KtuiApp(probes=[getppid], source_factory=_live_factory, mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_for(pilot, lambda: app.states.get(0) is not None and app.states[0].status == "attached")
        app.add_probes([Probe(ProbeKind.KPROBE, "schedule", actions=[Action(ActionKind.COUNT, key=("cpu",))])])
        assert await wait_for(pilot, lambda: app.states.get(1) is not None and app.states[1].status == "failed")
        reason = app.states[1].reason
        spec_error = app.main_query("#editor-spec-error")
        assert "kprobe" in str(spec_error.render())
        await pilot.press("2")
        counts = app.main_query(CpuCounts)
        assert await wait_for(pilot, lambda: 1 in counts.counters and 1 in counts.failed)
        text = shown(counts)
        line = next(x for x in text.splitlines() if x.startswith("schedule"))
        assert "failed:" in line and "hits" not in line, text
        assert reason[:20] in " ".join(text.split()), text
        # the failed probe: removing it changes nothing else, and its error leaves the editor
        await pilot.press("5")
        table = app.main_query(ProbeList)
        table.focus()
        await pilot.press("end", "delete")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.consequence == "It never attached, so nothing else changes."
        await pilot.press("y")
        assert await wait_for(pilot, lambda: 1 not in app.states and app.main_query(ProbeList).row_count == 1)
        assert await wait_for(pilot, lambda: not str(spec_error.render()).strip()), str(spec_error.render())
        # a later probe that attaches also clears an earlier failure's sentence
        app.add_probes([Probe(ProbeKind.KPROBE, "vfs_read")])
        assert await wait_for(pilot, lambda: any(s.status == "failed" for s in app.states.values()))
        assert "kprobe" in str(spec_error.render())
        app.add_probes([Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getpid")])
        assert await wait_for(pilot, lambda: sum(s.status == "attached" for s in app.states.values()) == 2)
        assert await wait_for(pilot, lambda: not str(spec_error.render()).strip()), str(spec_error.render())
        # an attached probe: removed in place, its rows stay in the stream (what the dialog says)
        child = getppid_child(50)
        stream = app.main_query(EventStream)
        assert await wait_for(pilot, lambda: stream.window.count(pid=child, probe_id=0) == 50)
        table.focus()
        await pilot.press("home", "delete")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        assert "nothing is cleared" in app.screen.consequence
        await pilot.press("y")
        assert await wait_for(pilot, lambda: 0 not in app.states)
        await pilot.pause(1.0)
        assert stream.window.count(pid=child, probe_id=0) == 50
        await pilot.press("q")


run_async_tests(globals())
