"""NEWCOMER F4 as a person sees it: the real `ktui` in tmux at 80x24 on the live kernel, a child calling
getppid as fast as it can; space holds the stream and the rows on screen stay the same for seconds, while
the status line says newer rows are not shown; space again follows the live end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import getppid_binary
from helpers.tmux import Tmux, ktui_pid
from ktui.kernel import process_alive as alive

pytestmark = [pytest.mark.live, pytest.mark.timeout(300),
              pytest.mark.skipif(os.geteuid() != 0, reason="live tracing needs root")]
KTUI = Path(sys.executable).with_name("ktui")
SESSION = f"ktui-hold-{os.getpid()}"
_TMUX = Tmux(SESSION, wait_s=90.0, socket=SESSION)


def rows(text: str) -> list[str]:
    """The stream's rows (below its header, above the status line) that are getppid events."""
    return [line for line in text.splitlines() if "sys_enter_getppid" in line and "(" not in line]


def test_space_holds_the_rows_on_screen_while_a_fast_child_runs(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the end-to-end test (apt-get install tmux)")
    child = subprocess.Popen([str(getppid_binary()), "4000000000"])
    session = tmp_path / "hold.toml"
    session.write_text(f'version = 1\n\n[[probes]]\nkind = "tracepoint"\ntarget = "syscalls:sys_enter_getppid"\n'
                       f'name = "sys_enter_getppid"\nfilter = "pid == {child.pid}"\n\n'
                       f'[[probes.actions]]\nkind = "stream"\n')
    try:
        _TMUX.new_session("-x", "80", "-y", "24", "-e", "TERM=xterm-256color",
                          "env", "-u", "COLUMNS", "-u", "LINES", str(KTUI), "--session", str(session))
        _TMUX.run("set-option", "-t", SESSION, "remain-on-exit", "on")
        pid = ktui_pid(int(_TMUX.run("list-panes", "-t", SESSION, "-F", "#{pane_pid}").split()[0]))
        _TMUX.wait(lambda s: len(rows(s)) >= 10 and "FOLLOW" in s, what="getppid rows following")
        _TMUX.keys("1")
        time.sleep(0.5)
        _TMUX.keys("space")
        held = _TMUX.wait(lambda s: " HELD" in s, timeout=30, what="HELD")
        time.sleep(0.5)  # an update on its way when space was pressed has landed
        held = rows(_TMUX.screen())
        assert len(held) >= 10
        for _ in range(5):  # seconds later, the same rows, the first one included
            time.sleep(1.0)
            assert rows(_TMUX.screen()) == held, _TMUX.screen()
        # the child went on: once the window is full the status line says what is not shown
        _TMUX.wait(lambda s: "not shown" in s, timeout=60, what="'HELD +N not shown' in the status line")
        assert rows(_TMUX.screen()) == held
        # F2: the kernel's warning keeps a short form at 80 columns, and f1 shows it whole
        if "kprobes" in _TMUX.screen():
            assert "! no kprobes (f1)" in _TMUX.screen()
            _TMUX.keys("F1")
            _TMUX.wait(lambda s: "CONFIG_KPROBES" in s, timeout=30, what="the whole warning under f1")
            _TMUX.keys("Escape")
            _TMUX.wait(lambda s: "CONFIG_KPROBES" not in s, timeout=30, what="help closed")
        _TMUX.keys("space")
        _TMUX.wait(lambda s: "FOLLOW" in s and rows(s) and rows(s)[-1] not in held, timeout=30,
                   what="the live end again")
        # F23: c asks first (n keeps the rows), and after a clear TIME goes on from the session's start
        _TMUX.keys("c")
        _TMUX.wait(lambda s: "Clear the stream's" in s, timeout=30, what="the clear question")
        _TMUX.keys("n")
        _TMUX.wait(lambda s: "Clear the stream's" not in s and len(rows(s)) >= 10, timeout=30, what="rows kept")
        _TMUX.keys("c")
        _TMUX.wait(lambda s: "Clear the stream's" in s, timeout=30, what="the clear question")
        time.sleep(2.0)  # TIME since the session's start is now well above 2 s
        _TMUX.keys("y")
        after = _TMUX.wait(lambda s: "Clear the stream's" not in s and rows(s), timeout=30, what="new rows")
        assert all(float(r.split()[0]) > 2.0 for r in rows(after)), after
        _TMUX.keys("q")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        assert not alive(pid), _TMUX.screen()
    finally:
        child.kill()
        child.wait()
        _TMUX.run("kill-session", "-t", SESSION, check=False)
        _TMUX.kill_server()
