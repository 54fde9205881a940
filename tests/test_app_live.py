"""The app on the real kernel: a real LiveSource streams a tracepoint into the panes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from fake_source import run_async_tests
from helpers import getppid_binary, programs_left
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
@pytest.mark.timeout(400)
async def test_quick_probe_changes_while_events_flow_keep_ids_unique_and_hit_their_probe():
    """Many adds, toggles and removes submitted at once through the app while a child makes getppid
    calls: every probe gets an id of its own, each toggle reaches the kernel's switch for its own
    probe, a removed probe is gone, and after quit none of the programs is in the kernel."""
    import os

    from helpers import busy_loop_binary, prog_ids_of
    from ktui.compiler.control import enabled as kernel_enabled

    busy = subprocess.Popen([str(busy_loop_binary()), "600000"])  # killed at the end
    try:
        pid = busy.pid
        spec = "syscalls:sys_enter_getppid"
        app = KtuiApp(probes=[Probe(ProbeKind.TRACEPOINT, spec, filter=f"pid == {pid}")],
                      source_factory=_live_factory, mode="live")
        async with app.run_test(size=(120, 40)) as pilot:
            assert await wait_for(pilot, lambda: app.states.get(0) is not None
                                  and app.states[0].status == "attached"), app.banner
            # Five probes submitted back to back (each compiles for about a second), toggles on the
            # first probe in between: nothing waits for anything.
            for i in range(5):
                app.add_probes([Probe(ProbeKind.TRACEPOINT, spec, filter=f"pid == {pid} && tid > {i}")])
                app.toggle_probe(0)
            assert await wait_for(pilot, lambda: not app.live.adding, timeout=90), "adds never got ids"
            ids = list(app.live.probes)
            assert len(ids) == len(set(ids)) == 6
            source = app.source
            assert sorted(source.probe_ids) == sorted(ids)
            # Toggle every odd id off, remove id 2: each change must land on its own probe.
            for probe_id in ids[1::2]:
                app.toggle_probe(probe_id)
            app.remove_probe(ids[2])
            await app.workers.wait_for_complete()
            # Probe 0 was toggled five times (off), the odd ids once (off), the rest never (on).
            want = {i: i != ids[0] and i not in ids[1::2] for i in ids if i != ids[2]}
            assert await wait_for(pilot, lambda: ids[2] not in app.states and all(
                app.states.get(i) is not None and app.states[i].status == ("attached" if on else "disabled")
                for i, on in want.items())), app.states
            for probe_id, on in want.items():
                unit = source._loader.unit_of[probe_id]
                local = next(k for k, v in unit.global_ids.items() if v == probe_id)
                assert kernel_enabled(unit.bpf, local) is on, probe_id
                assert app.live.probes[probe_id].enabled is on
            # Events keep flowing for a probe that is on.
            pane = app.pane(CpuCounts)
            assert await wait_for(pilot, lambda: ids[4] in pane.counters and sum(pane.counters[ids[4]].delivered) > 0), \
                (ids, {k: c.totals() for k, c in source.counters().items()}, busy.poll())
            loaded = prog_ids_of(os.getpid())
            assert loaded
            await pilot.press("q")
            await pilot.pause(0.2)
        assert app.source is None
        assert not programs_left(loaded), "programs left in the kernel after quit"
    finally:
        busy.kill()
        busy.wait()


run_async_tests(globals())
