"""ReplaySource: the same Updates as live, from recordings; exact event accounting and controls."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import numpy as np
import pytest

from ktui.errors import KtuiError
from ktui.events import ProbeCounters, Update
from ktui.kernel import KernelIdentity
from ktui.recording import RecordingReader, RecordingWriter
from ktui.sources.replay import ReplaySource
from ktui.recording.synthetic import LAYOUTS, records

IDENT = KernelIdentity("6.1.0-test", "#1", "x86_64", "abc")
T0 = 5_000_000_000


def _make(path, host="alpha", offset=10**18, n0=20000, n1=2000, t0=T0, seed=0, step0=100_000):
    w = RecordingWriter.create(path, IDENT, LAYOUTS, meta={"host": host, "clock_offset_ns": offset},
                               chunk_events=1000)
    # probe 0 every 100 us, probe 1 every 1 ms shifted by 50 us: no two events share a time
    w.append(0, records(LAYOUTS[0], n0, t0=t0, step=step0, seed=seed))
    w.append(1, records(LAYOUTS[1], n1, t0=t0 + 50_000, step=1_000_000, seed=seed + 1))
    w.set_counters({0: ProbeCounters([n0 + 5], [n0], [5], [0]), 1: ProbeCounters([n1], [n1], [0], [0], 1)})
    w.close()
    return path


class Collector:
    def __init__(self):
        self.updates: list[Update] = []
        self.event = threading.Event()

    def __call__(self, update: Update) -> None:
        self.updates.append(update)
        self.event.set()

    def wait_for(self, predicate, timeout=10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.updates):
                return
            time.sleep(0.01)
        raise AssertionError("replay did not get there in time")

    def wait_quiet(self, quiet=0.25):
        n = -1
        while n != len(self.updates):
            n = len(self.updates)
            time.sleep(quiet)

    def events(self, updates=None) -> np.ndarray:
        parts = [a[["ts", "probe", "pid", "comm"]] for u in (self.updates if updates is None else updates) for a in u.events.values()]
        return np.concatenate(parts) if parts else np.zeros(0)


@pytest.fixture
def rec(tmp_path):
    return _make(tmp_path / "alpha.ktrec")


def _run(paths, **kw):
    src = ReplaySource(paths, **kw)
    sink = Collector()
    src.start(sink)
    sink.wait_for(lambda u: len(u) >= 1)
    return src, sink


def test_first_update_describes_and_shows_the_first_screen(rec):
    src, sink = _run([rec])
    try:
        first = sink.updates[0]
        assert "replaying alpha" in first.message and "22000 events" in first.message
        ts = np.sort(sink.events([first])["ts"])
        assert len(ts) == 200 and ts[0] == T0
        assert first.counters[0].dropped == [5] and first.counters[1].missed == 1
        assert {p.probe_id: p.status for p in first.probes} == {0: "recorded", 1: "recorded"}
        assert not src.playing
    finally:
        src.stop()


def test_max_speed_delivers_every_event_once_in_order(rec):
    src, sink = _run([rec])
    try:
        src.set_speed(None)
        src.play()
        sink.wait_for(lambda u: u and u[-1].finished)
        ev = sink.events()
        assert len(ev) == 22000
        assert len(np.unique(ev[["ts", "probe"]])) == 22000
        per_update = [np.concatenate([x["ts"] for x in u.events.values()]) for u in sink.updates if u.events]
        bounds = [(int(t.min()), int(t.max())) for t in per_update]
        assert all(prev[1] < nxt[0] for prev, nxt in zip(bounds, bounds[1:]))  # updates never overlap
        assert sink.updates[-1].message.endswith("replay finished") and not src.playing
    finally:
        src.stop()


@pytest.mark.parametrize("files", [1, 2])
def test_a_recording_within_the_first_screen_plays_once_when_play_follows_start(tmp_path, files):
    """The app calls play() right after start(): when the first screen already held every event,
    that play must not start the replay over (it once delivered 2x the events, in a race)."""
    paths = [_make(tmp_path / f"h{i}.ktrec", host=f"h{i}", n0=40, n1=0, t0=T0 + i * 1000, step0=10_000_000)
             for i in range(files)]
    for _ in range(5):  # the race needs the worker's first screen before play(): try both orders
        src = ReplaySource(paths)
        sink = Collector()
        src.start(sink)
        src.play()
        try:
            sink.wait_for(lambda u: any(x.finished for x in u))
            sink.wait_quiet()
            assert len(sink.events()) == 40 * files
        finally:
            src.stop()
        src = ReplaySource(paths)
        sink = Collector()
        src.start(sink)
        try:
            sink.wait_for(lambda u: any(x.finished for x in u))
            src.play()
            sink.wait_quiet()
            assert len(sink.events()) == 40 * files
            assert sum(x.finished for x in sink.updates) == 1
        finally:
            src.stop()


def test_at_most_30_updates_a_second(rec):
    src, sink = _run([rec])
    try:
        src.set_speed(1.0)
        src.play()
        time.sleep(1.0)
        src.pause()
        sink.wait_quiet()
        assert 5 <= len(sink.updates) <= 1 + 31
    finally:
        src.stop()


def test_speed_1x_follows_the_clock_and_10x_is_faster(tmp_path):
    src, sink = _run([_make(tmp_path / "long.ktrec", step0=2_000_000)])  # 40 s of recording
    try:
        start = src.position_ns
        src.set_speed(1.0)
        src.play()
        time.sleep(0.5)
        src.pause()
        sink.wait_quiet()
        one = src.position_ns - start
        src.set_speed(10.0)
        src.play()
        time.sleep(0.5)
        src.pause()
        sink.wait_quiet()
        ten = src.position_ns - start - one
        assert 0.2e9 < one < 1.5e9
        assert ten > 4 * one
    finally:
        src.stop()


def test_pause_stops_updates(rec):
    src, sink = _run([rec])
    try:
        src.play()
        time.sleep(0.2)
        src.pause()
        sink.wait_quiet()
        n, pos = len(sink.updates), src.position_ns
        time.sleep(0.3)
        assert len(sink.updates) == n and src.position_ns == pos
    finally:
        src.stop()


def test_step_shows_exactly_n_events(rec):
    src, sink = _run([rec])
    try:
        before = len(sink.updates)
        last_shown = int(sink.events()["ts"].max())
        # Updates without events may come between (the whole-recording window pass, off the worker):
        # wait for the step's events, then for quiet, and count them all.
        src.step(5)
        sink.wait_for(lambda u: len(sink.events(u[before:])) >= 5)
        sink.wait_quiet()
        ev = sink.events(sink.updates[before:])
        assert len(ev) == 5 and ev["ts"].min() > last_shown
        after = len(sink.updates)
        src.step(1)
        sink.wait_for(lambda u: len(sink.events(u[after:])) >= 1)
        sink.wait_quiet()
        assert len(sink.events(sink.updates[after:])) == 1
    finally:
        src.stop()


def test_seek_starts_the_stream_at_the_cursor_then_plays_from_there(rec):
    src, sink = _run([rec])
    try:
        target = T0 + 1_234_567_000
        before = len(sink.updates)
        src.seek(target)
        # the seek's first screen: the first Update built for this seek (one built before it, e.g. the
        # whole recording's aggregates arriving, may land after ``before`` with no events)
        sink.wait_for(lambda u: any(x.seek_generation == 1 for x in u[before:]))
        screen = sink.events([next(x for x in sink.updates[before:] if x.seek_generation == 1)])
        reader = RecordingReader.open(rec)
        reader.seek(target)
        first = np.sort(np.concatenate([a["ts"] for a in reader.read(max_events=200).values()]))
        assert len(screen) == 200 and np.array_equal(np.sort(screen["ts"]), first)  # the first 200 from the cursor
        assert screen["ts"].min() >= target
        assert src.seek_generation == 1
        n = len(sink.updates)
        src.set_speed(None)
        src.play()
        sink.wait_for(lambda u: u[-1].finished)
        after = sink.events(sink.updates[n:])
        assert after["ts"].min() > screen["ts"].max()
        expected = reader.count(start_ns=target)
        assert len(screen) + len(after) == expected
    finally:
        src.stop()


def test_filters_by_pid_probe_and_comm_are_exact(rec):
    reader = RecordingReader.open(rec)
    want = sum(int(np.sum(a["pid"] == 1007)) for a in reader.events())
    src, sink = _run([rec])
    try:
        src.set_filter(pid=1007)
        src.seek(src.start_ns)
        src.set_speed(None)
        n = len(sink.updates)
        src.play()
        sink.wait_for(lambda u: u[-1].finished)
        ev = sink.events(sink.updates[n:])
        assert set(ev["pid"].tolist()) == {1007} and len(ev) == want
        src.set_filter(probe_ids=[1], comm="worker-7")
        src.seek(src.start_ns)
        n = len(sink.updates)
        src.play()
        sink.wait_for(lambda u: len(u) > n and u[-1].finished)
        ev = sink.events(sink.updates[n:])
        assert set(ev["probe"].tolist()) == {1}
        assert all(c.startswith(b"worker-7") for c in ev["comm"].tolist())
        assert len(ev) == sum(int(np.sum(a["comm"] == b"worker-7")) for a in reader.events(probe_ids=[1]))
    finally:
        src.stop()


def test_search_finds_the_first_match_after_the_position(rec):
    reader = RecordingReader.open(rec)
    src = ReplaySource([rec])
    try:
        every = np.concatenate([a[["ts", "pid", "comm"]] for a in reader.events()])
        every = every[np.argsort(every["ts"], kind="stable")]
        after = every[every["ts"] >= T0 + 10**9]
        assert src.search("worker-13", T0 + 10**9) == int(after["ts"][after["comm"] == b"worker-13"][0])
        assert src.search("1013", T0) == int(every["ts"][every["pid"] == 1013][0])
        assert src.search("sys_exit_openat", T0 + 1) == T0 + 50_000
        assert src.search("no such thing") is None
    finally:
        src.stop()


def test_several_hosts_merge_by_wall_clock_each_its_own_track(tmp_path):
    a = _make(tmp_path / "a.ktrec", host="alpha", offset=10**18, n0=1000, n1=100)
    # beta's monotonic clock reads 3 s less at the same wall time: same moments, different numbers
    b = _make(tmp_path / "b.ktrec", host="beta", offset=10**18 + 3 * 10**9, n0=1000, n1=100,
              t0=T0 - 3 * 10**9 + 20_000, seed=5)
    src, sink = _run([a, b])
    try:
        assert sorted(lay.name for lay in src.layouts.values()) == [
            "alpha:sys_enter_getppid", "alpha:sys_exit_openat", "beta:sys_enter_getppid", "beta:sys_exit_openat"]
        assert len(src.layouts) == 4 and len({p.probe_id for p in sink.updates[0].probes}) == 4
        assert len(sink.updates[0].counters) == 4
        src.set_speed(None)
        src.play()
        sink.wait_for(lambda u: u[-1].finished)
        ev = sink.events()
        assert len(ev) == 2200
        beta_ids = {i for i, lay in src.layouts.items() if lay.name.startswith("beta:")}
        beta = ev[np.isin(ev["probe"], list(beta_ids))]
        alpha = ev[~np.isin(ev["probe"], list(beta_ids))]
        # on the timeline beta's events fall 20 us after alpha's
        assert np.sort(beta["ts"])[0] == np.sort(alpha["ts"])[0] + 20_000
    finally:
        src.stop()


def test_replay_changes_no_byte_and_leaves_nothing_behind(rec):
    directory = rec.parent

    def snapshot():
        return {n: hashlib.sha256((directory / n).read_bytes()).hexdigest() for n in os.listdir(directory)}

    before = snapshot()
    src, sink = _run([rec])
    src.set_speed(None)
    src.play()
    sink.wait_for(lambda u: u[-1].finished)
    src.seek(T0 + 10**8)
    src.step(3)
    src.search("worker-1")
    src.stop()
    assert snapshot() == before


def test_no_recordings_is_a_clear_error():
    with pytest.raises(KtuiError, match="at least one"):
        ReplaySource([])


def test_temp_dirs_left_by_a_killed_ktui_are_swept(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from ktui.recording.tempdirs import private_tempdir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"ktui-replay-{dead.pid}-abc"
    stale.mkdir()
    (stale / "recording.ktrec").write_bytes(b"x")
    alive = tmp_path / f"ktui-import-{os.getppid()}-abc"
    alive.mkdir()
    mine = private_tempdir("import")
    assert not stale.exists() and alive.exists() and os.path.isdir(mine)
    assert oct(os.stat(mine).st_mode & 0o777) == oct(0o700)


def test_a_burst_of_seeks_builds_the_screen_where_it_stops(rec):
    """Ten seeks at once: the stream's screen is built for the last one (and at most the first, already on
    its way), not for each, and it starts at the last target. (Seeks spaced as keys come are coalesced by
    SEEK_SETTLE_S: a matter of timing, measured in bench/bench_replay_window.py, not tested here.)"""
    src, sink = _run([rec])
    try:
        src.pause()
        sink.wait_quiet()
        first = src.seek_generation + 1
        targets = [T0 + 100_000_000 * (i + 1) for i in range(10)]
        for t in targets:
            src.seek(t)
        last = src.seek_generation
        assert last == first + 9
        sink.wait_for(lambda u: any(x.seek_generation == last and x.events for x in u))
        sink.wait_quiet()
        built = {x.seek_generation for x in sink.updates if x.events and x.seek_generation >= first}
        assert last in built and built <= {first, last}, built
        screen = sink.events([next(x for x in sink.updates if x.seek_generation == last and x.events)])
        reader = RecordingReader.open(rec)
        reader.seek(targets[-1])
        expected = np.sort(np.concatenate([a["ts"] for a in reader.read(max_events=200).values()]))
        assert np.array_equal(np.sort(screen["ts"]), expected)
    finally:
        src.stop()
