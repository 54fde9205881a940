"""The bundled demo recording: small, real, and readable by the current reader."""

from __future__ import annotations

from pathlib import Path

from ktui.recording import RecordingReader

DEMO = Path(__file__).resolve().parents[1] / "ktui" / "data" / "demo.ktrec"


def test_demo_is_small_real_and_readable():
    assert DEMO.stat().st_size < 1_000_000
    with RecordingReader.open(DEMO) as r:
        assert r.problems == []
        names = {lay.name for lay in r.layouts.values()}
        assert {"sched_switch", "sys_enter_openat", "sys_exit_openat"} <= names
        assert r.meta["source"] == "ftrace text"  # captured from this machine's tracefs, then imported
        assert r.count() > 10_000
        assert sum(sum(c.delivered) for c in r.counters().values()) == r.count()
        first, last = r.time_range()
        assert 0 < last - first < 60 * 10**9
