"""space in a replay pauses the playback, not only the view (issue 15): while it plays, space stops
the replay's clock (PAUSED on the status line; the position and the stream's rows stand still), and
space again plays on from where it stopped, the stream following."""

from __future__ import annotations

import pytest

from fake_source import run_async_tests
from ktui.app import KtuiApp
from ktui.kernel import KernelIdentity
from ktui.recording import RecordingWriter
from ktui.recording.synthetic import LAYOUTS, records
from ktui.sources.replay import ReplaySource
from ktui.widgets.event_stream import EventStream
from ktui.widgets.status_bar import StatusBar

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def long_recording(tmp_path):
    """60 s of recording time, an event every 10 ms: at speed 1 it plays for a minute."""
    path = tmp_path / "long.ktrec"
    w = RecordingWriter.create(path, KernelIdentity("6.1.0-test", "#1", "x86_64", "abc"), LAYOUTS)
    w.append(0, records(LAYOUTS[0], 6000, t0=10**9, step=10_000_000, seed=1))
    w.close()
    return path


async def _until(pilot, predicate, tries: int = 400) -> bool:
    for _ in range(tries):
        await pilot.pause(0.05)
        if predicate():
            return True
    return False


async def test_space_pauses_the_replay_and_space_again_plays_on(long_recording):
    source = ReplaySource([long_recording])
    app = KtuiApp(source=source, mode="replay", banner="Replaying (read-only).")
    async with app.run_test(size=(80, 24)) as pilot:
        stream, status = app.main_query(EventStream), app.main_query(StatusBar)
        start = source.position_ns
        assert await _until(pilot, lambda: source.playing and source.position_ns > start + 300_000_000)
        assert not status.paused
        await pilot.press("space")
        assert await _until(pilot, lambda: not source.playing)
        assert status.paused and "PAUSED" in status.render().plain
        assert "not shown" not in status.render().plain  # the rows on their way landed: none held back
        await pilot.pause(0.3)  # an Update already on its way lands
        held_at, rows = source.position_ns, stream.window.visible_count
        await pilot.pause(1.0)  # a second of the replay's clock, had it run on
        assert source.position_ns == held_at and stream.window.visible_count == rows
        assert not source.playing and status.paused
        await pilot.press("space")
        assert await _until(pilot, lambda: source.playing and source.position_ns > held_at + 300_000_000)
        assert not status.paused and "PAUSED" not in status.render().plain
        assert stream.follow  # playing on, the stream follows the newest rows again
        assert await _until(pilot, lambda: stream.window.visible_count > rows)
        await pilot.press("q")


run_async_tests(globals())
