"""The editor flow as a person does it: the real `ktui` in tmux at 80x24 on the live kernel.
Pick sys_enter_openat, tick nothing, filter on the file name, add; a child's opens of that
path appear with the name as a string, and nothing else does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.tmux import Tmux

pytestmark = [pytest.mark.live, pytest.mark.timeout(240),
              pytest.mark.skipif(os.geteuid() != 0, reason="live tracing needs root")]
KTUI = Path(sys.executable).with_name("ktui")
SESSION = f"ktui-probes-{os.getpid()}"


_TMUX = Tmux(SESSION, socket=SESSION)  # a private server (helpers.tmux.Tmux.new_session)
tmux, screen, wait_screen = _TMUX.run, _TMUX.screen, _TMUX.wait


def keys(*k: str, literal: bool = False, pause: float = 0.3) -> None:
    tmux("send-keys", "-t", SESSION, *(["-l"] if literal else []), *k)
    time.sleep(pause)


def test_editor_zero_script_capture_and_string_filter_in_tmux_80x24(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the end-to-end test (apt-get install tmux)")
    from ktui.probes.model import Probe, ProbeKind
    from ktui.session import Session

    # a session whose one probe never fires, so the stream shows only what the test adds
    quiet = tmp_path / "quiet.toml"
    Session([Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", filter="pid == 1")]).save(quiet)
    _TMUX.new_session("-x", "80", "-y", "24", "-e", "TERM=xterm-256color",
                      "env", "-u", "COLUMNS", "-u", "LINES", str(KTUI), "--session", str(quiet))
    tmux("resize-window", "-t", SESSION, "-x", "80", "-y", "24", check=False)
    try:
        wait_screen(lambda s: "probes 1/1" in s)
        time.sleep(1.0)
        keys("/")  # at 80 columns the browser starts folded: / brings it back, searching
        wait_screen(lambda s: "(common first)" in s)  # the catalog is loaded
        keys("sys_enter_openat", literal=True)
        # the narrow browser cuts names; the details below it name the highlighted entry whole
        wait_screen(lambda s: any(line.rstrip(" ▕").endswith("_enter_openat") for line in s.splitlines()))
        keys("Enter")
        wait_screen(lambda s: "Probe point" in s and "count per key" in s)
        time.sleep(1.5)  # the editor takes focus once the entry is loaded
        for _ in range(8):  # through where, actions, count key and the (unticked) fields to the filter
            keys("Tab")
        keys('filename == "/etc/hostname"', literal=True)
        wait_screen(lambda s: 'filename == "/etc/hostname"' in s)
        keys("C-n")
        wait_screen(lambda s: "probes 2/2" in s)
        child = subprocess.run(["cat", "/etc/hostname", "/etc/passwd", "/etc/hostname"], capture_output=True)
        keys("Escape")
        keys("b")  # hide the browser: the values get the width the stream has
        # at 80 columns the value is cut ('/etc/hostn…'), which already tells it from /etc/passwd
        text = wait_screen(lambda s: sum("filename='/etc/hostn" in line for line in s.splitlines()) >= 2)
        rows = [line for line in text.splitlines() if "sys_enter_op" in line]
        assert child.returncode == 0
        assert len(rows) == 2, text
        pids = {line.split()[3] for line in rows}
        assert len(pids) == 1 and all(" cat " in line and "dfd=-100" in line for line in rows), text
        for _ in range(12):  # the stream scrolls sideways: the whole name, read as a string
            keys("Right", pause=0.1)
        text = wait_screen(lambda s: sum("/etc/hostname'" in line for line in s.splitlines()) == 2)
        assert "/etc/passwd" not in text, text
    finally:
        _TMUX.kill_server()
