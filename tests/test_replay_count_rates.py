"""A replay's COUNT tables have rates, as live ones do: a table in a recording is the total over a
known span (the whole recording, or the window selected on the timeline), so each key's rate is its
count over that span's seconds (ktui/rates.py). Before, the same totals arrived with every frame and
read as no growth (rate 0), and a selected window's table had no rate at all."""

from __future__ import annotations

import json
import sqlite3

import pytest

from fake_source import run_async_tests
from ktui.app import KtuiApp
from ktui.events import KeyCounts
from ktui.rates import KeyRates
from ktui.recording import RecordingReader
from ktui.recording.window import window_aggregates
from ktui.sources.replay import ReplaySource
from ktui.widgets.key_counts import KeyCountsView
from test_app_live import wait_for
from test_recording_summaries import write

pytestmark = pytest.mark.timeout(120)
TABLE = {"probe_id": 1, "key_names": ["comm"], "rows": [[["sh"], 900], [["cat"], 30]]}


def test_totals_over_a_span_give_the_average_rate_and_no_span_gives_none():
    rates = KeyRates()
    kc = KeyCounts(1, ("comm",), [((b"sh",), 900), ((b"cat",), 30)])
    rates.over_span([kc], 3.0)
    assert [(r.key, r.count, r.rate) for r in rates.rows(kc)] == [((b"sh",), 900, 300.0), ((b"cat",), 30, 10.0)]
    rates.over_span([kc], 0.0)
    assert [r.rate for r in rates.rows(kc)] == [None, None]


async def test_replay_count_tables_show_rates_over_the_recording_then_over_a_window(tmp_path):
    path = tmp_path / "counts.ktrec"
    write(path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", ("key_counts", json.dumps([TABLE])))
    with RecordingReader.open(path) as r:
        start, end = r.first_ts, r.last_ts
    source = ReplaySource([path])
    app = KtuiApp(source=source, mode="replay", banner="Replaying counts.ktrec (read-only).")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        view = app.query_one(KeyCountsView)

        def rates() -> dict:
            return {r.key: (r.count, r.rate) for t in view.tables for r in view.rates.rows(t)}
        assert await wait_for(pilot, lambda: rates().get(("sh",), (0, None))[1] is not None, 60), rates()
        span = (source.end_ns - source.start_ns) / 1e9
        assert span > 0
        assert rates()[("sh",)] == (900, pytest.approx(900 / span)) and rates()[("cat",)][1] == pytest.approx(30 / span)
        # the rate column is drawn beside each count
        from test_app_count_table import screen_lines

        sh = next(line for line in screen_lines(view, 98) if line.split()[:2] == ["sh", "900"])
        assert len(sh.split()) >= 3 and sh.split()[2] != "-"

        # A selected window: its own counts, over its own length.
        lo, hi = start + (end - start) // 4, start + (end - start) // 2
        with RecordingReader.open(path) as r:
            expected = window_aggregates(r, lo, hi)
        want = {tuple(k): n for t in expected.counts if t.key_names == ("comm",) for k, n in t.rows}
        assert want
        app.replay.select(lo, hi)
        seconds = (hi - lo) / 1e9

        def window_shown() -> bool:
            got = {k: c for k, (c, _) in rates().items() if len(k) == 1}
            return got == want and all(rt is not None for _, rt in rates().values())
        assert await wait_for(pilot, window_shown, 60), (rates(), want)
        for key, (count, rate) in rates().items():
            if len(key) == 1:
                assert rate == pytest.approx(count / seconds, rel=1e-6), (key, count, rate, seconds)


run_async_tests(globals())
