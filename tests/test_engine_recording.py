"""The recorder as a sink of the live stream: started and stopped while tracing runs, and a
recorder that fails (its disk fills) is reported and detached while tracing goes on."""

from __future__ import annotations

import os
import subprocess
import time

import numpy as np
import pytest

from helpers import busy_loop_binary, getppid_child
from ktui.events import Recordable
from ktui.probes.spec import parse_spec
from ktui.recording import RecordingReader
from ktui.sources.live import LiveSource

pytestmark = [pytest.mark.live, pytest.mark.timeout(300)]
GETPPID = "tracepoint:syscalls:sys_enter_getppid"


class Collect:
    def __init__(self) -> None:
        self.updates: list = []

    def __call__(self, update) -> None:
        self.updates.append(update)

    def pid_events(self, pid: int) -> int:
        return sum(int((u.events[0]["pid"] == pid).sum()) for u in self.updates if 0 in u.events)


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_recording_started_while_tracing_holds_what_the_stream_showed(tmp_path):
    n = 3000
    sink = Collect()
    source = LiveSource(parse_spec(GETPPID))
    assert isinstance(source, Recordable)
    path = tmp_path / "from-app.ktrec"
    source.start(sink)
    try:
        before = getppid_child(n)  # before the recording: shown, not recorded
        source.start_recording(str(path))
        assert source.recording_path == str(path)
        during = getppid_child(n)
        assert _wait(lambda: sink.pid_events(during) == n)
        sentence = source.stop_recording()
        assert source.recording_path is None and str(path) in sentence
        after = getppid_child(n)  # after: shown, not recorded
        assert _wait(lambda: sink.pid_events(after) == n)
    finally:
        source.stop()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with RecordingReader.open(path) as r:
        events = np.concatenate(list(r.events()))
        assert int((events["pid"] == during).sum()) == n == sink.pid_events(during)
        assert int((events["pid"] == before).sum()) == 0 and int((events["pid"] == after).sum()) == 0
        (c,) = r.counters().values()
        assert sum(c.delivered) >= n  # counted from the start of the recording, not of the session


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_recorder_whose_disk_fills_is_reported_and_tracing_goes_on(small_tmpfs):
    sink = Collect()
    source = LiveSource(parse_spec(GETPPID))
    path = small_tmpfs / "full.ktrec"
    producer = subprocess.Popen([str(busy_loop_binary()), "120000"])
    source.start(sink)
    try:
        source.start_recording(str(path))
        assert _wait(lambda: source.recorder_error is not None, timeout=120), "the disk never filled"
        assert "recording" in str(source.recorder_error)
        assert _wait(lambda: source.recording_path is None)  # detached on its own
        # Reported to the panes, and the stream keeps flowing after the failure.
        seen = len(sink.updates)
        assert _wait(lambda: any(str(source.recorder_error) in u.message for u in sink.updates[seen:]))
        flowing = sum(len(u.events.get(0, ())) for u in sink.updates[seen:])
        assert _wait(lambda: sum(len(u.events.get(0, ())) for u in sink.updates[seen:]) > flowing + 1000)
        sentence = source.stop_recording()
        assert str(path) in sentence  # the one sentence says which file and why
    finally:
        producer.kill()
        producer.wait()
        source.stop()
    assert sink.updates[-1].finished
    with RecordingReader.open(path) as r:  # what was written before the disk filled stays readable
        assert r.count() > 0
        assert sum(len(a) for a in r.events()) == r.count()


def test_stop_while_recording_finishes_the_file(tmp_path):
    """Quit with a recording running: the file is complete, not left half-written."""
    n = 1000
    path = tmp_path / "at-quit.ktrec"
    sink = Collect()
    source = LiveSource(parse_spec(GETPPID))
    source.start(sink)
    try:
        source.start_recording(str(path))
        child = getppid_child(n)
        assert _wait(lambda: sink.pid_events(child) == n)
    finally:
        source.stop()
    assert not os.path.exists(f"{path}-wal")
    with RecordingReader.open(path) as r:
        events = np.concatenate(list(r.events()))
        assert int((events["pid"] == child).sum()) == n
