"""The event stream as a person reads it in a pilot test: its header line and the rows on screen."""

from __future__ import annotations

from textual.widgets import Static

from ktui.app import KtuiApp
from ktui.sources.replay import ReplaySource
from ktui.widgets.event_stream import EventStream


def stream_screen(app: KtuiApp) -> tuple[str, list[str]]:
    stream = app.main_query(EventStream)
    header = str(app.main_query("#stream-header", Static).render())
    rows = [stream.render_line(y).text for y in range(stream.scrollable_content_region.height)]
    return header, [r for r in rows if r.strip()]


async def replayed_screen(paths, expect: int, size: tuple[int, int] = (80, 24)) -> tuple[str, list[str], ReplaySource]:
    """Replay ``paths`` in the app until ``expect`` events reached the stream; its header and rows then."""
    source = ReplaySource([str(p) for p in paths])
    app = KtuiApp(source=source, mode="replay")
    async with app.run_test(size=size) as pilot:
        stream = app.main_query(EventStream)
        for _ in range(600):
            await pilot.pause(0.05)
            if stream.window.total >= expect:
                break
        await pilot.pause(0.3)  # and no more than expected arrives
        assert stream.window.total == expect
        header, rows = stream_screen(app)
        await pilot.press("q")
    return header, rows, source
