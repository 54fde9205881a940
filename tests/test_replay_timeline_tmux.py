"""The timeline as a person uses it: record this kernel with `ktui record`, replay the file in the
real ktui in tmux at 80x24, move the cursor with the keys, select a window with v, and read the
CPUs pane: its counts equal the events of that window counted independently from the file."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.tmux import Tmux
from ktui.recording import RecordingReader
from test_replay_window_live import record_two_bursts

pytestmark = [pytest.mark.live, pytest.mark.timeout(300)]
KTUI = Path(sys.executable).with_name("ktui")
SESSION = f"ktui-timeline-{os.getpid()}"
COLUMNS = 80

_TMUX = Tmux(SESSION, wait_s=60.0, socket=SESSION)  # a private server (helpers.tmux.Tmux.new_session)
tmux, screen, wait_screen = _TMUX.run, _TMUX.screen, _TMUX.wait


def quiet_column(reader: RecordingReader) -> int:
    """A timeline column in the pause between the bursts with no event of any probe within a column
    of it either way, so where exactly the window starts inside it changes no count."""
    ts = np.sort(np.concatenate([a["ts"] for a in reader.events()]).astype(np.int64))
    start, span = reader.first_ts, reader.last_ts - reader.first_ts
    col_ns = span / COLUMNS
    for c in range(COLUMNS // 2, 2, -1):
        lo, hi = start + (c - 1.5) * col_ns, start + (c + 1.5) * col_ns
        if not np.any((ts >= lo) & (ts < hi)):
            return c
    raise AssertionError("no quiet column between the bursts")


def _first_row(text: str) -> str:
    rows = [line.strip() for line in text.splitlines() if re.match(r"^\s+\d+\.\d{6}\s", line)]
    return rows[0] if rows else ""


def shown_cpu_tables(text: str) -> dict[str, tuple[int, dict[int, int]]]:
    """The CPUs pane as read off the screen: probe -> (hits in its title, hits per CPU row)."""
    out: dict[str, tuple[int, dict[int, int]]] = {}
    current = None
    for line in text.splitlines():
        title = re.match(r"^(\S+)\s+([\d,]+) hits", line)
        if title:
            current = title.group(1)
            out[current] = (int(title.group(2).replace(",", "")), {})
            continue
        row = re.match(r"^\s+(\d+)\s+([\d,]+)\s", line)
        if row and current is not None:
            out[current][1][int(row.group(1))] = int(row.group(2).replace(",", ""))
    return out


def test_select_a_window_by_keys_and_the_cpus_pane_counts_its_events(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the end-to-end test (apt-get install tmux)")
    path = record_two_bursts(tmp_path)
    with RecordingReader.open(path) as r:
        column = quiet_column(r)
        lo = r.first_ts + column * (r.last_ts - r.first_ts) / COLUMNS
        names = {p: lay.name for p, lay in r.layouts.items()}
        expected: dict[str, dict[int, int]] = {}
        for arr in r.events():  # independently of ktui's window code: every event, kept or not by time
            keep = arr[arr["ts"].astype(np.int64) >= lo]
            per = expected.setdefault(names[int(arr["probe"][0])], {})
            for cpu, n in zip(*np.unique(keep["cpu"], return_counts=True)):
                per[int(cpu)] = per.get(int(cpu), 0) + int(n)
    _TMUX.new_session("-x", str(COLUMNS), "-y", "24", "-e", "TERM=xterm-256color",
                      "env", "-u", "COLUMNS", "-u", "LINES", str(KTUI), "replay", str(path))
    tmux("resize-window", "-t", SESSION, "-x", str(COLUMNS), "-y", "24", check=False)
    try:
        wait_screen(lambda s: "replay finished" in s and "window: all" in s)
        for _ in range(9):  # to the start: the cursor stops there
            tmux("send-keys", "-t", SESSION, "H")
        # the stream starts at the cursor (the first event, at 0 on the timeline's clock)
        wait_screen(lambda s: "▶ 0.000s" in s and _first_row(s).startswith("0.000000"))
        for _ in range(column):
            tmux("send-keys", "-t", SESSION, "l")
        wait_screen(lambda s: "▶ 0.000s" not in s)
        tmux("send-keys", "-t", SESSION, "v")
        for _ in range(9):  # to the end
            tmux("send-keys", "-t", SESSION, "L")
        tmux("send-keys", "-t", SESSION, "v")
        wait_screen(lambda s: "window " in s and "–" in s)
        tmux("send-keys", "-t", SESSION, "2")
        deadline = time.monotonic() + 30
        shown: dict[str, tuple[int, dict[int, int]]] = {}
        while time.monotonic() < deadline:
            shown = shown_cpu_tables(screen())
            if shown and all(sum(expected[n].values()) == hits for n, (hits, _) in shown.items() if n in expected):
                break
            time.sleep(0.3)
        text = screen()
        assert shown, text
        for name, (hits, rows) in shown.items():
            assert hits == sum(expected[name].values()), (name, text)
            for cpu, n in rows.items():
                assert n == expected[name].get(cpu, 0), (name, cpu, text)
        assert sum(expected["sys_enter_getppid"].values()) == 5000  # the second burst, whole
        assert "sys_enter_getppid" in shown
        tmux("send-keys", "-t", SESSION, "q")
    finally:
        _TMUX.kill_server()
