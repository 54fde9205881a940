"""The top-style COUNT table on the real kernel: a COUNT by pid on sys_enter_getppid, two parked
children making known numbers of calls; each row shows exactly its child's calls, a rate beside
it, and `s` / `r` change the order the header says."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys

import pytest
from rich.console import Console

from fake_source import run_async_tests
from helpers import getppid_binary
from ktui.app import KtuiApp
from ktui.app_main import _live_factory
from ktui.probes.model import Action, ActionKind, Probe, ProbeKind
from ktui.widgets.key_counts import KeyCountsView
from test_app_live import wait_for

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]
MANY, FEW = 3000, 1200


def parked_child(calls: int) -> subprocess.Popen:
    """Waits for a byte, then execs the getppid loop (same pid): its pid is known before it runs."""
    code = "import os, sys; sys.stdin.buffer.read(1); os.execv(sys.argv[1], sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, str(getppid_binary()), str(calls)], stdin=subprocess.PIPE)


def screen_lines(view: KeyCountsView, width: int) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(view._render_all())
    return out.getvalue().splitlines()


async def test_count_by_pid_rows_are_exact_and_sort_keys_reorder_them():
    many, few = parked_child(MANY), parked_child(FEW)
    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid",
                  filter=f"pid == {many.pid} || pid == {few.pid}", actions=[Action(ActionKind.COUNT, key=("pid",))])
    app = KtuiApp(probes=[probe], source_factory=_live_factory, mode="live")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for(pilot, lambda: app.states.get(0) is not None
                                  and app.states[0].status == "attached"), f"{app.states} / {app.banner}"
            await pilot.press("2")
            for child in (many, few):
                child.stdin.write(b"x")
                child.stdin.close()
            assert await asyncio.to_thread(many.wait) == 0 and await asyncio.to_thread(few.wait) == 0
            view = app.query_one(KeyCountsView)

            def order():
                return [(r.key, r.count) for t in view.tables if t.key_names == ("pid",) for r in view.ordered_rows(t)]
            want = [((many.pid,), MANY), ((few.pid,), FEW)]
            assert await wait_for(pilot, lambda: order() == want), order()
            # Rates: measured from successive snapshots once a time base has passed; the calls are over,
            # so once a base is taken after the last count arrived (a loaded machine delivers them over
            # seconds) the rate of both rows is 0 (not unknown, not the rate while they arrived).
            assert await wait_for(pilot, lambda: all(r.rate == 0 for t in view.tables
                                                     for r in view.rates.rows(t)), timeout=15)
            lines = screen_lines(view, 78)
            head = next(line for line in lines if "count by pid" in line)
            assert "sorted by count ↓" in head and f"{MANY + FEW:,} in 2 keys" in head
            rows = [line.split() for line in lines if line.split()[:1] in ([str(many.pid)], [str(few.pid)])]
            assert [r[:2] for r in rows] == [[str(many.pid), f"{MANY:,}"], [str(few.pid), f"{FEW:,}"]]
            assert all(len(r) >= 3 for r in rows)  # a rate beside each count

            await pilot.press("r")  # smallest count first
            assert order() == want[::-1]
            assert "sorted by count ↑" in next(line for line in screen_lines(view, 78) if "count by pid" in line)
            await pilot.press("r", "s", "s")  # back to largest first, then rate, then key
            assert view.sort_column == "key"
            assert order() == sorted(want)  # by pid, smallest first
            assert "sorted by key ↑" in next(line for line in screen_lines(view, 78) if "count by pid" in line)
            await pilot.press("r")
            assert order() == sorted(want, reverse=True)

            # Enter on a row: the inspector with its key whole, its exact count and its rate; Down moves on.
            from ktui.widgets.inspector import InspectorScreen

            # The highlight was on the first row by count (many) and stayed on that key through the
            # re-sorts (issue 14: the same key, not the same position).
            assert view.cursor_key() == (0, ("pid",), (many.pid,)) and order()[view.cursor][0] == (many.pid,)
            inspected = []
            for index in (0, 1):
                if index:
                    await pilot.press("up" if view.cursor else "down")
                await pilot.press("enter")
                assert await wait_for(pilot, lambda: isinstance(app.screen, InspectorScreen))
                shown = {f.name: f.shown for f in app.screen.fields}
                (pid,), count = order()[view.cursor]
                inspected.append(pid)
                assert shown["pid"] == str(pid) and shown["count"] == f"{count:,}", shown
                assert shown["rate"] == "0/s" and shown["probe"] == "sys_enter_getppid"  # the calls are over
                await pilot.press("escape")
                assert await wait_for(pilot, lambda: not isinstance(app.screen, InspectorScreen))
            assert inspected == [many.pid, few.pid]
            await pilot.press("q")
    finally:
        for child in (many, few):
            if child.poll() is None:
                child.kill()
                child.wait()



async def test_enter_on_a_stack_opens_the_inspector_with_its_frames_whole():
    """Stacks of sys_enter_getppid for one parked child on the real kernel: Enter on the stack opens
    the inspector with the probe, the exact count (every call has the same kernel stack) and the
    frames whole, the syscall entry among them."""
    from ktui.widgets.inspector import InspectorScreen
    from ktui.widgets.stacks import Stacks

    child = parked_child(FEW)
    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", filter=f"pid == {child.pid}",
                  actions=[Action(ActionKind.STACKS, kernel_stack=True)])
    app = KtuiApp(probes=[probe], source_factory=_live_factory, mode="live")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for(pilot, lambda: app.states.get(0) is not None
                                  and app.states[0].status == "attached"), f"{app.states} / {app.banner}"
            await pilot.press("3")
            child.stdin.write(b"x")
            child.stdin.close()
            assert await asyncio.to_thread(child.wait) == 0
            stacks = app.query_one(Stacks)
            assert await wait_for(pilot, lambda: sum(s.count for s in stacks.stacks) == FEW), stacks.stacks
            stacks.focus()
            await pilot.press("enter")
            assert await wait_for(pilot, lambda: isinstance(app.screen, InspectorScreen))
            screen = app.screen
            shown = {f.name: f.shown for f in screen.fields}
            top = max(stacks.stacks, key=lambda s: s.count)
            assert shown["probe"] == "sys_enter_getppid" and shown["count"] == f"{top.count:,}"
            assert screen.stack[:len(top.kernel)] == list(top.kernel) and top.kernel
            assert any("sys" in f.lower() for f in screen.stack)  # the syscall path, named
            await pilot.press("escape")
            assert await wait_for(pilot, lambda: not isinstance(app.screen, InspectorScreen))
            await pilot.press("q")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


run_async_tests(globals())
