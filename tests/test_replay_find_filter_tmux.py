"""The replay's search, filter and seek keys as a person uses them: the real ktui in tmux at 80x24
replays a real recording (a child opening a file 7 times between 6000 opens of /dev/null); s finds
the needle far past the first screen and the timeline cursor shows its time, the filter keeps exactly
the needle's rows after the cursor goes back to the start, and ] moves the timeline cursor too."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from helpers.tmux import Tmux
from test_replay_find_filter_live import NEEDLES, needle_times, record_needles

pytestmark = [pytest.mark.live, pytest.mark.timeout(300)]
KTUI = Path(sys.executable).with_name("ktui")
_TMUX = Tmux(f"ktui-find-{os.getpid()}", wait_s=60.0, socket=f"ktui-find-{os.getpid()}")
ROW = re.compile(r"^\s*(\d+\.\d{6})\s")


def rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if ROW.match(line)]


def cursor(text: str) -> str | None:
    m = re.search(r"▶ (\d+\.\d{3})s", text)
    return m.group(1) if m else None


def test_search_filter_and_seek_keys_in_the_real_ktui(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the end-to-end test (apt-get install tmux)")
    path, needle = record_needles(tmp_path)
    hits, first = needle_times(path, needle)
    first_hit = f"{(int(hits[0]) - first) / 1e9:.6f}"
    _TMUX.new_session("-x", "80", "-y", "24", "-e", "TERM=xterm-256color",
                      "env", "-u", "COLUMNS", "-u", "LINES", str(KTUI), "replay", str(path))
    try:
        _TMUX.wait(lambda s: "replay finished" in s, what="the replay playing to its end")
        _TMUX.keys("s")
        _TMUX.keys("needle-file", literal=True)
        _TMUX.keys("Enter")
        # the first row is the needle's open, at the cursor's time (one clock)
        text = _TMUX.wait(lambda s: bool(rows(s)) and ROW.match(rows(s)[0]).group(1) == first_hit  # type: ignore[union-attr]
                          and "'/tmp/kn" in rows(s)[0], what="the needle's row first")
        assert cursor(text) == f"{float(first_hit):.3f}", text
        _TMUX.keys("f")
        _TMUX.keys(f"filename={needle}", literal=True)
        _TMUX.keys("Enter")
        for _ in range(9):
            _TMUX.keys("H")  # back to the start: still only the needle's rows, every one of them
        text = _TMUX.wait(lambda s: cursor(s) == "0.000" and len(rows(s)) == NEEDLES,
                          what="the seven needle rows from the start")
        assert all("'/tmp/kn" in r for r in rows(text)), text  # the needle's directory (80 columns cut its name)
        assert "FILTER" in text
        _TMUX.keys("f", "C-u", "Enter")  # no filter; ] moves the timeline cursor to the end
        _TMUX.keys("]")
        end = f"{(source_end := int(needle_times_end(path))) / 1e9:.3f}"
        text = _TMUX.wait(lambda s: cursor(s) == end, what=f"the cursor at the end ({end} s)")
        assert source_end > 0
        _TMUX.keys("q")
    finally:
        _TMUX.run("kill-session", "-t", _TMUX.session, check=False)
        _TMUX.kill_server()


def needle_times_end(path: Path) -> int:
    """The recording's length on the timeline's clock (last event - first), from the file."""
    from ktui.recording import RecordingReader

    with RecordingReader.open(path) as r:
        return r.last_ts - r.first_ts
