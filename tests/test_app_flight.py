"""The flight recorder from the app's recorder key (ctrl+r), on the real kernel: the dialog's optional
ring/trigger/after/keep fields, one sentence in the dialog for a trigger that does not fit, the status
line's "armed" / "triggered k of N", and a file that holds exactly the window around the trigger and
its mark, as `ktui record --ring --trigger` writes it (tests/test_flight.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pytest
from textual.widgets import Input, Static

from fake_source import run_async_tests
from helpers import build_c
from ktui.app import KtuiApp
from ktui.app_main import _live_factory
from ktui.probes.model import Probe, ProbeKind
from ktui.recording.reader import RecordingReader
from ktui.screens.recording import RecordPathScreen
from ktui.widgets.status_bar import StatusBar
from test_app_live import wait_for
from test_flight import CLOSE_EXIT, EBADF, FLIGHT_C, GETPPID

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]
M, K = 300, 400  # getppid calls just before and just after the failing close(-1)


def parked_flight_child(gap_ms: int) -> subprocess.Popen:
    """Waits for a byte, then execs the load generator (same pid, so the probes' pid filter is exact):
    200 calls, a pause longer than the ring and the after-window, M calls, close(-1), K calls, a pause, 200."""
    binary = str(build_c("flight", FLIGHT_C))
    code = "import os, sys; sys.stdin.buffer.read(1); os.execv(sys.argv[1], sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, binary, str(gap_ms), str(M), str(K)],
                            stdin=subprocess.PIPE)


def _fill(screen: RecordPathScreen, **fields: str) -> None:
    for name, value in fields.items():
        screen.query_one(f"#record-{name}", Input).value = value


async def test_the_recorder_key_records_the_window_around_one_failing_call(tmp_path):
    child = parked_flight_child(1500)
    pid = child.pid
    probes = [Probe(ProbeKind.TRACEPOINT, spec.split(":", 1)[1], filter=f"pid == {pid}")
              for spec in (GETPPID, CLOSE_EXIT)]
    out = tmp_path / "flight.ktrec"
    app = KtuiApp(probes=probes, source_factory=_live_factory, mode="live")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for(pilot, lambda: len(app.states) == 2 and all(
                s.status == "attached" for s in app.states.values())), f"{app.states} / {app.banner}"
            await pilot.press("ctrl+r")
            assert await wait_for(pilot, lambda: isinstance(app.screen, RecordPathScreen))
            dialog = app.screen
            error = dialog.query_one("#record-error", Static)
            # Refused in the dialog, in one sentence, and nothing is created: a name no probe records,
            # a trigger that does not parse, a ring that is not a number, a trigger without a ring.
            for fields, said in (({"ring": "1", "trigger": "nosuch < 0"}, "fits no probe"),
                                 ({"ring": "1", "trigger": "ret <"}, "the trigger, column 6"),
                                 ({"ring": "soon", "trigger": "ret < 0"}, "is not a number of seconds"),
                                 ({"ring": "", "trigger": "ret < 0"}, "a trigger needs a ring")):
                _fill(dialog, path=str(out), after="0.5", keep="1", **fields)
                dialog.query_one("#record-path", Input).focus()
                await pilot.press("enter")
                assert await wait_for(pilot, lambda said=said: said in str(error.render())), str(error.render())
                assert "\n" not in str(error.render()).strip()
                assert app.screen is dialog and not out.exists()
            _fill(dialog, ring="1", trigger="ret < 0")
            await pilot.press("enter")
            status = app.query_one(StatusBar)
            assert await wait_for(pilot, lambda: "● REC armed" in status._text().plain), status._text().plain
            child.stdin.write(b"x")
            child.stdin.close()
            assert await wait_for(pilot, lambda: "triggered 1 of 1" in status._text().plain
                                  or "Flight recorder: triggered 1 of 1" in status.message)
            # One trigger of one: when its window is written the recording finishes by itself.
            assert await wait_for(pilot, lambda: not status.recording), status._text().plain
            assert "Flight recorder: triggered 1 of 1" in status.message
            assert app.recording.path is None
            assert await asyncio.to_thread(child.wait) == 0
    finally:
        if child.poll() is None:
            child.kill()
    with RecordingReader.open(out) as rec:
        names = {i: lay.spec for i, lay in rec.layouts.items()}
        events: dict[str, list[np.ndarray]] = {}
        for arr in rec.events():
            events.setdefault(names[int(arr["probe"][0])], []).append(arr)
        got = {k: np.concatenate(v) for k, v in events.items()}
        marks = rec.marks()
        flight = rec.meta["flight"]
    (close,) = got[CLOSE_EXIT]  # only the failing call (the probes see only the child)
    assert int(close["ret"]) == -EBADF
    t = int(close["ts"])
    ts = got[GETPPID]["ts"].astype(np.int64)
    assert len(ts) == M + K  # none of the 200 + 200 calls outside the window
    assert int((ts < t).sum()) == M and int((ts > t).sum()) == K
    (mark,) = marks
    assert (mark.kind, mark.ts, mark.label) == ("trigger", t, "ret < 0")
    assert (mark.start_ns, mark.end_ns) == (t - 1_000_000_000, t + 500_000_000)
    assert (flight["trigger"], flight["ring_s"], flight["after_s"], flight["keep"], flight["triggers"]) == \
        ("ret < 0", 1.0, 0.5, 1, 1)


async def test_the_window_is_written_off_the_screen_thread_and_the_app_stays_responsive(tmp_path):
    """The flight recorder completes its window on its own thread: while that write is held up (its
    final flush waits here), the app still switches tabs and shows the trigger; released, the file
    holds exactly the window."""
    import threading

    child = parked_flight_child(1500)
    probes = [Probe(ProbeKind.TRACEPOINT, spec.split(":", 1)[1], filter=f"pid == {child.pid}")
              for spec in (GETPPID, CLOSE_EXIT)]
    out = tmp_path / "flight.ktrec"
    app = KtuiApp(probes=probes, source_factory=_live_factory, mode="live")
    screen_thread = threading.get_ident()  # the app runs its screen in this test's event loop
    release, flushing = threading.Event(), []
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for(pilot, lambda: len(app.states) == 2 and all(
                s.status == "attached" for s in app.states.values())), f"{app.states} / {app.banner}"
            await pilot.press("ctrl+r")
            assert await wait_for(pilot, lambda: isinstance(app.screen, RecordPathScreen))
            _fill(app.screen, path=str(out), ring="1", trigger="ret < 0", after="0.5", keep="1")
            app.screen.query_one("#record-path", Input).focus()
            await pilot.press("enter")
            status = app.query_one(StatusBar)
            assert await wait_for(pilot, lambda: "● REC armed" in status._text().plain), status._text().plain
            flight = app.source.recording_flight  # type: ignore[union-attr]
            writer_flush = flight.writer.flush

            def held_flush() -> None:  # the window's final write, held until the screen has answered
                flushing.append(threading.get_ident())
                release.wait(30)
                writer_flush()

            flight.writer.flush = held_flush
            child.stdin.write(b"x")
            child.stdin.close()
            assert await wait_for(pilot, lambda: bool(flushing), timeout=30)
            assert flushing[0] != screen_thread
            await pilot.press("2")  # the screen answers keys while the window is being written
            assert await wait_for(pilot, lambda: app.active_tab == "cpus")
            assert await wait_for(pilot, lambda: "triggered 1 of 1" in status._text().plain)
            release.set()
            assert await wait_for(pilot, lambda: not status.recording, timeout=30), status._text().plain
            assert "Flight recorder: triggered 1 of 1" in status.message
            assert await asyncio.to_thread(child.wait) == 0
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
    assert screen_thread not in flushing
    with RecordingReader.open(out) as rec:
        (mark,) = rec.marks()
        (getppid,) = [i for i, lay in rec.layouts.items() if lay.spec == GETPPID]
        ts = np.concatenate([a["ts"] for a in rec.events(probe_ids=[getppid])]).astype(np.int64)
    assert len(ts) == M + K and int((ts < mark.ts).sum()) == M and int((ts > mark.ts).sum()) == K


run_async_tests(globals())
