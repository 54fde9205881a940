"""Replay's filter and search see the whole recording, not the few hundred rows read after the cursor
(newcomer F14): a real recording of this kernel (`ktui record` of a child opening /dev/null thousands
of times and, a while later, a file of its own a few times); the needle's rows lie far past the first
screen, and the search, n / N, the filter and a seek after it are checked against the file's own events."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from fake_source import run_async_tests
from ktui.app import KtuiApp
from ktui.probes.spec import parse_spec
from ktui.recording import RecordingReader
from ktui.session import Session
from ktui.sources.replay import ReplaySource
from ktui.widgets.event_stream import EventStream
from ktui.widgets.status_bar import StatusBar
from ktui.widgets.timeline import Timeline

pytestmark = [pytest.mark.live, pytest.mark.timeout(300)]

NOISE, NEEDLES = 3000, 7
# Noise before and after: the needles lie thousands of rows past any first screen.
PRODUCER = ("import os, sys, time\nneedle = sys.argv[1]\n"
            f"for _ in range({NOISE}): os.close(os.open('/dev/null', os.O_RDONLY))\n"
            "time.sleep(0.3)\n"
            f"for _ in range({NEEDLES}):\n    os.close(os.open(needle, os.O_RDONLY))\n    time.sleep(0.02)\n"
            "time.sleep(0.3)\n"
            f"for _ in range({NOISE}): os.close(os.open('/dev/null', os.O_RDONLY))\n")


@pytest.fixture(scope="module")
def needles(tmp_path_factory) -> tuple[Path, str]:
    return record_needles(tmp_path_factory.mktemp("find"))


def record_needles(d: Path) -> tuple[Path, str]:
    """`ktui record` of the producer: (the recording, the needle's path)."""
    # a short path: the recorded filename is a fixed-size string, a long pytest path would be cut
    needle = Path(tempfile.mkdtemp(prefix="kn", dir="/tmp")) / "needle-file"
    needle.write_text("x")
    session, out = d / "s.toml", d / "opens.ktrec"
    Session(probes=parse_spec("tracepoint:syscalls:sys_enter_openat")).save(session)
    proc = subprocess.run([sys.executable, "-m", "ktui", "record", "-q", "--session", str(session), "-o", str(out),
                           "--", sys.executable, "-c", PRODUCER, str(needle)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return out, str(needle)


def needle_times(path: Path, needle: str) -> tuple[np.ndarray, int]:
    """The needle's open times, read straight from the file (not through replay), and the start."""
    with RecordingReader.open(path) as r:
        every = np.concatenate(list(r.events()))
        every = every[np.argsort(every["ts"], kind="stable")]
        hits = every[every["filename"] == needle.encode()]["ts"].astype(np.int64)
        assert len(hits) == NEEDLES
        assert int(np.searchsorted(every["ts"], hits[0])) > 1000  # far past a first screen
        return hits, r.first_ts


def test_find_and_the_row_filter_cover_the_whole_recording(needles):
    path, needle = needles
    hits, first = needle_times(path, needle)
    src = ReplaySource([path])
    try:
        assert src.find("needle-file", first, 1) == hits[0]  # a value column, as the live search
        assert src.find("needle-file", int(hits[2]) + 1, 1) == hits[3]
        assert src.find("needle-file", int(hits[3]), -1) == hits[2]
        assert src.find("needle-file", int(hits[0]), -1) is None
        assert src.find("needle-file", int(hits[-1]) + 1, 1) is None
        got: list = []
        src.start(got.append)
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        src.set_row_filter(f"filename={needle}")
        got.clear()
        src.seek(first)  # the first screen from the start: every needle, nothing else
        while not any(u.events for u in got) and time.monotonic() < deadline:
            time.sleep(0.02)
        rows = np.concatenate([a for u in got for a in u.events.values()])
        assert rows["ts"].astype(np.int64).tolist() == hits.tolist()
    finally:
        src.stop()


async def _until(pilot, predicate, tries: int = 600) -> bool:
    for _ in range(tries):
        await pilot.pause(0.05)
        if predicate():
            return True
    return False


def _rows(stream: EventStream) -> list[tuple[int, bytes]]:
    out = []
    for i in range(stream.window.visible_count):
        _, rec = stream.window.record(stream.window.visible_abs(i))
        out.append((int(rec["ts"]), bytes(rec["filename"])))
    return out


async def test_search_n_and_filter_in_the_app_move_the_cursor_over_the_recording(needles):
    path, needle = needles
    hits, first = needle_times(path, needle)
    source = ReplaySource([path])
    app = KtuiApp(source=source, mode="replay", banner="Replaying (read-only).")
    async with app.run_test(size=(80, 24)) as pilot:
        stream, timeline = app.main_query(EventStream), app.main_query(Timeline)
        assert await _until(pilot, lambda: stream.window.visible_count > 0)
        await pilot.press("p")  # hold the replay at its start
        assert await _until(pilot, lambda: not source.playing)
        await pilot.press("home")
        await pilot.press("s", *"needle-file", "enter")
        # the cursor moves to the first match, 1000s of events later; the found row is the needle's
        assert await _until(pilot, lambda: timeline.cursor_ns == hits[0] and stream.match_abs is not None)
        _, rec = stream.window.record(stream.match_abs)
        assert int(rec["ts"]) == hits[0] and bytes(rec["filename"]) == needle.encode()
        assert _rows(stream)[0][0] == hits[0]  # the stream starts at the cursor
        for k in (1, 2):
            await pilot.press("n")
            want = int(hits[k])
            assert await _until(pilot, lambda: timeline.cursor_ns == want and stream.match_abs is not None  # noqa: B023
                                and int(stream.window.record(stream.match_abs)[1]["ts"]) == want)  # noqa: B023
        await pilot.press("N")
        assert await _until(pilot, lambda: timeline.cursor_ns == hits[1])
        # the filter: every needle row of the recording, also after moving the cursor back to the start
        await pilot.press("f", *f"filename={needle}", "enter")
        assert app.main_query(StatusBar).filter_text == f"filename={needle}"
        await pilot.press("H", "H", "H", "H", "H", "H", "H", "H")
        assert await _until(pilot, lambda: timeline.cursor_ns == source.start_ns
                            and [t for t, _ in _rows(stream)] == hits.tolist())
        assert all(f == needle.encode() for _, f in _rows(stream))
        # space plays on from the cursor after a seek
        assert not source.playing
        await pilot.press("space")
        assert await _until(pilot, lambda: source.playing or source.position_ns > source.end_ns)
        await pilot.press("q")


async def test_one_clock_seek_keys_move_the_cursor_and_help_lists_replay_keys_only(needles):
    """F18: [ and ] move the timeline cursor (the one clock) and the stream starts there; the empty
    stream says where the replay is, not the live "Next steps"; help lists no browser or / key."""
    from ktui.widgets.help_screen import HelpScreen

    path, _ = needles
    with RecordingReader.open(path) as r:
        every = np.sort(np.concatenate(list(r.events()))["ts"].astype(np.int64))
    source = ReplaySource([path])
    app = KtuiApp(source=source, mode="replay", banner="Replaying (read-only).")
    async with app.run_test(size=(80, 24)) as pilot:
        stream, timeline = app.main_query(EventStream), app.main_query(Timeline)
        assert await _until(pilot, lambda: stream.window.visible_count > 0)
        await pilot.press("l", "l", "l", "l", "l")
        assert await _until(pilot, lambda: timeline.cursor_ns > source.start_ns)
        await pilot.press("left_square_bracket")  # back 10 s: the start of this 1 s recording
        assert await _until(pilot, lambda: timeline.cursor_ns == source.start_ns and stream.window.visible_count
                            and _rows(stream)[0][0] == every[0])
        await pilot.press("right_square_bracket")  # forward 10 s: its end, where the last event is
        assert await _until(pilot, lambda: timeline.cursor_ns == source.end_ns and stream.window.visible_count
                            and _rows(stream)[0][0] == every[-1])
        assert not source.playing  # a seek holds the replay at the cursor
        await pilot.press("f", *"filename=/no/such/file", "enter")
        assert await _until(pilot, lambda: stream.window.total == 0 and source.row_filter)
        shown = "\n".join(stream.render_line(y).text for y in range(3))
        assert "No event from the cursor on matches the filter" in shown and "Next steps" not in shown
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        ids = {row[3] for row in app.screen.rows}
        assert {"app.mark_next", "app.mark_previous", "app.seek_back", "stream.search"} <= ids
        assert not {"app.search", "app.browser", "browser.mode", "browser.choose"} & ids
        await pilot.press("escape")
        await pilot.press("q")


async def test_window_end_stacks_note_whole_rates_and_the_status_rate(needles):
    """F13: v .. v selects exactly from one cursor to the other (no column rounding); a window
    without stacks says so; x after a window shows the whole recording's rates (count / length), not
    0; the status line's ev/s is the recording's rate at the cursor, from the file's events."""
    from ktui.widgets.cpu_counts import CpuCounts
    from ktui.widgets.stacks import Stacks

    path, _ = needles
    with RecordingReader.open(path) as r:
        every = np.sort(np.concatenate(list(r.events()))["ts"].astype(np.int64))
    source = ReplaySource([path])
    app = KtuiApp(source=source, mode="replay", banner="Replaying (read-only).")
    async with app.run_test(size=(80, 24)) as pilot:
        stream, timeline, status = app.main_query(EventStream), app.main_query(Timeline), app.main_query(StatusBar)
        assert await _until(pilot, lambda: stream.window.visible_count > 0)
        await pilot.press(*["H"] * 9)  # the replay played to its end: back to the start
        assert await _until(pilot, lambda: timeline.cursor_ns == source.start_ns)
        await pilot.press("l")
        assert await _until(pilot, lambda: timeline.cursor_ns > source.start_ns)
        lo = timeline.cursor_ns
        await pilot.press("v", "l", "l", "l")
        assert await _until(pilot, lambda: timeline.cursor_ns > lo)
        await pilot.pause(0.3)
        hi = timeline.cursor_ns
        await pilot.press("v")
        assert await _until(pilot, lambda: source.selection is not None)
        assert source.selection == (lo, hi + 1)
        await pilot.press("3")
        tree = app.main_query(Stacks)
        assert await _until(pilot, lambda: any("No stacks in this window" in str(n.label) for n in tree.root.children))
        # the whole recording again: rates are its events over its length
        await pilot.press("2", "x")
        cpus = app.main_query(CpuCounts)
        duration = (source.end_ns + 1 - source.start_ns) / 1e9
        assert await _until(pilot, lambda: cpus._window is not None and abs(cpus._window[1] - duration) < 1e-6)
        # ev/s at the cursor: the middle of the first noise burst, against the file's own events around it
        mid = int(every[len(every) // 4])
        app.replay.seek_to(mid)
        span = source.end_ns + 1 - source.start_ns
        i = (mid - source.start_ns) * 200 // span  # the 1/200 of the recording that holds the cursor
        b_lo, b_hi = source.start_ns + i * span // 200, source.start_ns + (i + 1) * span // 200
        near = np.count_nonzero((every >= b_lo) & (every < b_hi)) / ((b_hi - b_lo) / 1e9)
        assert near > 0
        assert await _until(pilot, lambda: status.rate_given and abs(status.rate - near) < 1e-6 * near), \
            (status.rate, near)
        await pilot.press("q")


run_async_tests(globals())
