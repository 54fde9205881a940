"""Recordings of this machine's real kernel: `ktui record` through the writer, then read, replayed, exported."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ktui.formats.jsonl import export_jsonl
from ktui.recording import RecordingReader
from ktui.sources.replay import ReplaySource

N = 20000
PRODUCER = ("import ctypes, sys\nlibc = ctypes.CDLL(None)\n"
            "for _ in range(int(sys.argv[1])):\n    libc.syscall(110)  # SYS_getppid\n")


def _record(path: Path, calls: int, extra=()) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ktui", "record", "-q", "tracepoint:syscalls:sys_enter_getppid", "-o", str(path),
         *extra, "--", sys.executable, "-c", PRODUCER, str(calls)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.live
def test_n_real_calls_are_n_recorded_replayed_and_exported_events(tmp_path):
    path = tmp_path / "live.ktrec"
    proc = _record(path, N)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["live.ktrec"]  # closed cleanly: one file, no WAL
    with RecordingReader.open(path) as r:
        assert r.count() == N and r.problems == []
        (c,) = r.counters().values()
        assert sum(c.delivered) == N and sum(c.dropped) == 0
        events = np.concatenate(list(r.events()))
        assert len(set(events["pid"].tolist())) == 1 and bytes(events["comm"][0]).startswith(b"python")
        assert r.identity.release == os.uname().release
        buf = io.StringIO()
        assert export_jsonl(r, buf) == N
        assert json.loads(buf.getvalue().splitlines()[0])["probe"] == "sys_enter_getppid"
    src = ReplaySource([path])
    got = []
    src.start(got.append)
    src.set_speed(None)
    src.play()
    deadline = time.monotonic() + 30
    while not (got and got[-1].finished) and time.monotonic() < deadline:
        time.sleep(0.02)
    src.stop()
    assert sum(len(a) for u in got for a in u.events.values()) == N


@pytest.mark.live
def test_sigkill_of_the_recorder_keeps_what_it_committed(tmp_path):
    path = tmp_path / "killed.ktrec"
    proc = _record(path, 10**9)  # runs until killed
    try:
        deadline = time.monotonic() + 120
        seen = 0
        while time.monotonic() < deadline and seen < 100_000:
            time.sleep(0.3)
            if path.exists():
                try:
                    with RecordingReader.open(path) as r:  # a private copy: the recorder is not disturbed
                        seen = r.count()
                except Exception:  # noqa: BLE001 -- the file may be mid-creation
                    seen = 0
        assert seen >= 100_000, "the recorder committed nothing in time"
    finally:
        children = _descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for pid in children:  # the producer the recorder started: ours to end, by its id
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    before = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
    with RecordingReader.open(path) as r:
        assert r.recovered and r.count() >= seen and r.problems == []
        times = np.concatenate([a["ts"] for a in r.events()])
        assert np.all(np.diff(np.sort(times)) > 0)
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == before


def _descendants(root: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out
