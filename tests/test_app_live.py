"""The app on the real kernel: a real LiveSource streams a tracepoint into the panes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from fake_source import run_async_tests
from helpers import getppid_binary
from ktui.app import KtuiApp
from ktui.app_main import _live_factory
from ktui.probes.model import Action, ActionKind, Probe, ProbeKind
from ktui.widgets.cpu_counts import CpuCounts
from ktui.widgets.event_stream import EventStream

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]
N = 2000


async def wait_for(pilot, predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await pilot.pause(0.05)
    return predicate()


def parked_child() -> subprocess.Popen:
    """A child whose pid is known before it runs the workload: it waits for a byte, then execs
    the getppid loop (same pid), so a filter on its pid is exact even with other tests running."""
    code = "import os, sys; sys.stdin.buffer.read(1); os.execv(sys.argv[1], sys.argv[1:])"
    binary = str(getppid_binary())
    return subprocess.Popen([sys.executable, "-c", code, binary, str(N)], stdin=subprocess.PIPE)


async def test_live_tracepoint_streams_exactly_n_events_into_the_panes():
    child = parked_child()
    pid = child.pid
    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", filter=f"pid == {pid}",
                  actions=[Action(ActionKind.STREAM), Action(ActionKind.COUNT, key=("cpu",))])
    app = KtuiApp(probes=[probe], source_factory=_live_factory, mode="live")
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.states.get(0) is not None and app.states[0].status == "attached"), \
            f"the probe never attached: {app.states} / {app.banner}"
        child.stdin.write(b"x")
        child.stdin.close()
        assert await asyncio.to_thread(child.wait) == 0
        stream = app.query_one(EventStream)
        assert await wait_for(pilot, lambda: stream.window.count(pid=pid) >= N)
        await pilot.pause(0.5)  # anything extra would arrive by now
        assert stream.window.count(pid=pid) == N
        assert stream.window.count() == N  # the filter kept every other process out
        await pilot.press("2")
        counts = app.query_one(CpuCounts)
        assert await wait_for(pilot, lambda: 0 in counts.counters and sum(counts.counters[0].delivered) == N)
        assert sum(counts.counters[0].dropped) == 0
        source = app.source
        await pilot.press("q")
        await pilot.pause(0.2)
    assert app.source is None and source._stopped





async def test_live_count_by_pid_reaches_the_cpus_tab_exactly():
    """A COUNT keyed by pid on the real kernel: its table in the CPUs tab holds the parked child's pid
    with exactly N (the filter keeps everyone else out)."""
    from ktui.widgets.key_counts import KeyCountsView

    child = parked_child()
    pid = child.pid
    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", filter=f"pid == {pid}",
                  actions=[Action(ActionKind.COUNT, key=("pid",))])
    app = KtuiApp(probes=[probe], source_factory=_live_factory, mode="live")
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.states.get(0) is not None and app.states[0].status == "attached"), \
            f"the probe never attached: {app.states} / {app.banner}"
        await pilot.press("2")
        child.stdin.write(b"x")
        child.stdin.close()
        assert await asyncio.to_thread(child.wait) == 0
        view = app.query_one(KeyCountsView)

        def rows():
            return [r for t in view.tables if t.key_names == ("pid",) for r in t.rows]
        assert await wait_for(pilot, lambda: rows() == [((pid,), N)]), rows()
        assert view.display
        await pilot.press("q")


async def test_a_probe_that_cannot_attach_says_why_and_the_rest_keep_running():
    """kprobes are absent on this kernel: the new probe fails with the engine's sentence, next to the
    field and in the probe list, while the tracepoint keeps streaming."""
    app = KtuiApp(probes=[Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid")], source_factory=_live_factory,
                  mode="live")
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.states.get(0) is not None)
        app.add_probes([Probe(ProbeKind.KPROBE, "vfs_read")])
        assert await wait_for(pilot, lambda: app.states.get(1) is not None and app.states[1].status == "failed")
        from ktui.doctor import diagnose

        if diagnose(compile_check=False).checks["kprobe"].ok:
            pytest.skip("this kernel has kprobes: the failure path is not reachable here")
        error = str(app.main_query("#editor-spec-error").render())
        assert "kprobe" in error and "CONFIG_KPROBES" in error
        assert app.main_query("#probe-list").get_row_at(1)[3].plain.startswith("failed: ")
        assert app.states[0].status == "attached" and app.is_running
run_async_tests(globals())
