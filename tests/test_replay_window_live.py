"""Replay as a time machine on a real recording of this kernel: a tracepoint pair, a uprobe and
profile sampling, recorded by `ktui record`; window aggregates checked against counts computed
independently from the JSON Lines export and the raw events."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ktui.formats.jsonl import export_jsonl
from ktui.probes.model import Action, ActionKind, Arg, Fetch
from ktui.probes.spec import parse_spec
from ktui.recording import RecordingReader
from ktui.recording.window import window_aggregates
from ktui.session import Session
from ktui.sources.replay import ReplaySource

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
BURST_A, BURST_B = 3000, 5000
# Two bursts of getppid() through libc (the uprobe and both tracepoints fire once per call), half a
# second apart, then half a second of spinning for the profile probe to sample.
PRODUCER = (f"import os, time\nfor _ in range({BURST_A}): os.getppid()\ntime.sleep(0.5)\n"
            f"for _ in range({BURST_B}): os.getppid()\nt = time.time()\nwhile time.time() - t < 0.5: pass\n")


def make_session(path: Path) -> None:
    enter = parse_spec("tracepoint:syscalls:sys_enter_getppid")[0]
    enter.actions = [Action(), Action(ActionKind.COUNT, key=("pid",))]
    leave = parse_spec("tracepoint:syscalls:sys_exit_getppid")[0]
    leave.fetches = [Fetch("ret", Arg(name="ret"))]
    leave.actions = [Action(), Action(ActionKind.HIST, value="ret")]
    uprobe = parse_spec(f"uprobe:{LIBC}:getppid")[0]
    profile = parse_spec("profile:hz:99")[0]
    profile.actions = [Action(), Action(ActionKind.STACKS)]
    Session(probes=[enter, leave, uprobe, profile]).save(path)


def record_two_bursts(directory: Path) -> Path:
    session, out = directory / "s.toml", directory / "bursts.ktrec"
    make_session(session)
    proc = subprocess.run([sys.executable, "-m", "ktui", "record", "-q", "--session", str(session), "-o", str(out),
                           "--", sys.executable, "-c", PRODUCER], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def bursts(tmp_path_factory) -> Path:
    return record_two_bursts(tmp_path_factory.mktemp("window"))


def burst_b_start(reader: RecordingReader) -> int:
    """A time inside the half-second gap between the bursts (the largest gap between getppid calls):
    the uprobe of a call fires before its tracepoints, so the gap's middle splits calls cleanly."""
    ts = np.concatenate([a["ts"] for a in reader.events(probe_ids=[0])]).astype(np.int64)
    assert len(ts) == BURST_A + BURST_B
    gap = int(np.argmax(np.diff(ts)))
    assert gap == BURST_A - 1
    return (int(ts[gap]) + int(ts[gap + 1])) // 2


def export_rows(reader: RecordingReader) -> list[dict]:
    buf = io.StringIO()
    export_jsonl(reader, buf)
    return [json.loads(line) for line in buf.getvalue().splitlines()]


@pytest.mark.live
def test_window_aggregates_equal_counts_from_the_export(bursts):
    with RecordingReader.open(bursts) as r:
        lo, hi = burst_b_start(r), r.last_ts + 1
        agg = window_aggregates(r, lo, hi)
        rows = [row for row in export_rows(r) if lo <= row["ts"] < hi]
        names = {pid: lay.name for pid, lay in r.layouts.items()}
        raw = {p: np.concatenate([a for a in r.events(lo, hi, probe_ids=[p])] or [np.zeros(0, r.layouts[p].dtype)])
               for p in r.layouts}
    assert agg.events == len(rows)
    for probe_id, name in names.items():
        mine = [row for row in rows if row["probe"] == name]
        per_cpu = np.bincount([row["cpu"] for row in mine], minlength=len(agg.counters[probe_id].hits)) \
            if mine else np.zeros(0, int)
        if probe_id in agg.counters:
            assert agg.counters[probe_id].hits == per_cpu.tolist() + [0] * (len(agg.counters[probe_id].hits) - len(per_cpu))
        else:
            assert not mine
    # exact where the truth is exact: each call of the second burst is one event of each getppid probe
    for probe_id in (0, 1, 2):
        assert sum(agg.counters[probe_id].hits) == BURST_B
    # COUNT by pid: the producer's pid, every call of the burst
    (table,) = [k for k in agg.counts if k.probe_id == 0]
    producer = {row["pid"] for row in rows if row["probe"] == names[0]}
    assert len(producer) == 1 and table.rows == [((producer.pop(),), BURST_B)]
    # log2 histogram of ret (the parent's pid), bucket by bucket from the exported values
    (hist,) = [h for h in agg.histograms if h.probe_id == 1]
    rets = [row["ret"] for row in rows if row["probe"] == names[1]]
    slots: dict[int, int] = {}
    for v in rets:
        slots[max(int(v).bit_length(), 1)] = slots.get(max(int(v).bit_length(), 1), 0) + 1
    assert [(low, high, n) for low, high, n in hist.buckets] == [
        ((0, 2) if s == 1 else (1 << (s - 1), 1 << s)) + (n,) for s, n in sorted(slots.items())]
    # stacks: every profile sample of the window that took a stack, counted once
    prof = raw[3]
    taken = int(np.sum((prof["kstack"] >= 0) | (prof["ustack"] >= 0)))
    assert sum(s.count for s in agg.stacks if s.probe_id == 3) == taken
    assert all(s.kernel or s.user for s in agg.stacks)
    # the history spreads exactly the window's events
    for probe_id, history in agg.cpu_history.items():
        total = sum(v for row in history for v in row) * agg.duration_s / len(history[0])
        assert total == pytest.approx(sum(agg.counters[probe_id].hits), rel=1e-9)


@pytest.mark.live
def test_replay_shows_a_selected_window_and_the_stream_starts_at_the_cursor(bursts):
    with RecordingReader.open(bursts) as r:
        lo, hi = burst_b_start(r), r.last_ts + 1
        first_after = sorted(int(a["ts"][0]) for a in r.events(lo + 1_000_000, hi))
        expected = window_aggregates(r, lo, hi)
        file_counters = r.counters()
    updates = []
    got = threading.Event()

    def sink(u) -> None:
        updates.append(u)
        got.set()

    src = ReplaySource([bursts])
    try:
        src.start(sink)
        assert got.wait(10)
        assert src.rate_bins(50).sum() == pytest.approx(src.total_events, rel=1e-9)
        # the whole recording: the file's own counters
        assert {p: c.hits for p, c in updates[0].counters.items()} == {p: c.hits for p, c in file_counters.items()}
        generation = src.window_generation
        src.select_window(lo, hi)
        deadline = time.monotonic() + 20
        while src.window_generation == generation and time.monotonic() < deadline:
            time.sleep(0.01)
        assert src.window is not None and src.window.events == expected.events
        n = len(updates)
        deadline = time.monotonic() + 10
        while not any(u.counters.get(0) and sum(u.counters[0].hits) == BURST_B for u in updates[n - 1:]) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        shown = [u for u in updates if u.counters.get(0) and sum(u.counters[0].hits) == BURST_B][-1]
        assert {p: c.hits for p, c in shown.counters.items()} == {p: c.hits for p, c in expected.counters.items()}
        assert shown.counts == expected.counts and shown.histograms == expected.histograms
        # the cursor: the stream starts with the first event at or after it
        cursor = lo + 1_000_000
        before = len(updates)
        src.seek(cursor)
        deadline = time.monotonic() + 10
        while len(updates) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        ts = np.concatenate([a["ts"] for a in updates[before].events.values()])
        assert int(ts.min()) == first_after[0] and int(ts.min()) >= cursor
    finally:
        src.stop()


@pytest.mark.live
def test_summaries_stored_by_the_recorder_give_the_answers_decoding_gives(bursts, tmp_path):
    """`ktui record` stores each chunk's summary; window aggregates from them equal those from decoding
    every chunk (the same file without the table, as written before it existed)."""
    import shutil
    import sqlite3

    old = tmp_path / "old.ktrec"
    shutil.copy(bursts, old)
    with sqlite3.connect(old) as conn:
        stored = conn.execute("SELECT count(*) FROM chunk_summaries").fetchone()[0]
        conn.execute("DROP TABLE chunk_summaries")
    with RecordingReader.open(bursts) as r, RecordingReader.open(old) as o:
        assert stored == len(r.chunks) > 0
        decoded: list[int] = []
        decode = r.chunk_events
        r.chunk_events = lambda c: (decoded.append(c.id), decode(c))[1]  # type: ignore[method-assign]
        for lo, hi in ((r.first_ts, r.last_ts + 1), (burst_b_start(r), r.last_ts + 1)):
            decoded.clear()
            a, b = window_aggregates(r, lo, hi), window_aggregates(o, lo, hi)
            assert a.events == b.events > 0
            assert {p: c.hits for p, c in a.counters.items()} == {p: c.hits for p, c in b.counters.items()}
            assert a.cpu_history == b.cpu_history and a.histograms == b.histograms and a.counts == b.counts
            assert sorted((s.probe_id, s.kernel, s.user, s.count) for s in a.stacks) == \
                sorted((s.probe_id, s.kernel, s.user, s.count) for s in b.stacks)
            cut = [c.id for c in r.chunks_between(lo, hi) if not (c.first_ts >= lo and c.last_ts < hi)]
            assert sorted(decoded) == sorted(cut)  # whole chunks come from their stored summaries
        assert r.problems == []
