"""The editor's member picker as a person uses it: the real `ktui` in tmux at 80x24 on this
machine's kernel, keys only. rawtracepoint:sched_process_exec(task, old_pid, bprm): the right
arrow on bprm (arg3, a kernel struct pointer described by BTF) lists its members, Down to
arg3->filename, space ticks it, the left arrow folds the list, a filter on the same member is
typed, the probe added; a script that re-execs itself N times gives exactly N rows, each with
the script's path read through the pointer as a string and the script's own pid.
(kprobes are only in the VM: tests/kernel/test_editor_tmux.py does ip_rcv's skb->len there.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers.tmux import Tmux

pytestmark = [pytest.mark.live, pytest.mark.timeout(300),
              pytest.mark.skipif(os.geteuid() != 0, reason="live tracing needs root")]
KTUI = Path(sys.executable).with_name("ktui")


def _rows(screen: str) -> list[str]:
    """Stream rows of the raw tracepoint (TIME CPU COMM PID PROBE VALUES)."""
    return [line for line in screen.splitlines()
            if len(line.split()) >= 6 and line.split()[4].startswith("sched_proc")]


def test_member_picker_by_keys_ticks_a_member_behind_a_pointer_and_gets_exactly_the_execs(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the end-to-end test (apt-get install tmux)")
    from ktui.probes.model import Probe, ProbeKind
    from ktui.session import Session

    n = 4
    short = Path(tempfile.mkdtemp(prefix="km", dir="/tmp"))  # the whole path fits the 80-column stream
    script = short / "x"
    script.write_text('#!/bin/sh\n[ "$1" -gt 1 ] && exec "$0" $(($1 - 1))\nexit 0\n')
    script.chmod(0o755)
    quiet = tmp_path / "quiet.toml"  # one probe that never fires: the stream shows only what is added
    Session([Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", filter="pid == 1")]).save(quiet)
    t = Tmux("ktui-members", socket=f"ktui-members-{os.getpid()}")

    def press(*k: str, literal: bool = False, pause: float = 0.4) -> None:
        t.keys(*k, literal=literal)
        time.sleep(pause)

    t.run("-u", "new-session", "-d", "-x", "80", "-y", "24", "-s", t.session, "-e", "TERM=xterm-256color",
          "env", "-u", "COLUMNS", "-u", "LINES", str(KTUI), "--session", str(quiet))
    t.run("resize-window", "-t", t.session, "-x", "80", "-y", "24", check=False)
    try:
        t.wait(lambda s: "probes 1/1" in s, what="the quiet session attached")
        press("/")
        t.wait(lambda s: "(common first)" in s, what="the catalog loaded")
        press("sched_process_exec", literal=True)
        t.wait(lambda s: "rawtracepoint:sched_pro" in s, what="the raw tracepoint in the browser's details")
        press("Enter")
        t.wait(lambda s: "Probe point" in s and "rawtracepoint:sched_process_exec" in s, what="the editor")
        time.sleep(1.5)  # the spec box takes focus once the entry is loaded
        for _ in range(7):  # spec -> the actions, the count key -> the arguments list (no entry/return here)
            press("Tab", pause=0.3)
        t.wait(lambda s: "struct linux_binprm * arg3 ▸" in s, what="bprm offered as a struct pointer (▸)")
        t.move_to_option("arg3")
        press("Right")
        t.wait(lambda s: "struct linux_binprm * arg3 ▾" in s, what="bprm's members listed")
        t.move_to_option("arg3->filename")
        press("space")
        press("Left")
        # (cut at 80 columns while the browser is shown)
        t.wait(lambda s: "arg3 ▸ (arg3->filen" in s, what="bprm folded, naming its ticked member")
        press("Tab")  # the filter
        press(f'arg3->filename == "{script}"', literal=True)
        t.wait(lambda s: f'arg3->filename == "{script}"' in s, what="the filter typed")
        press("C-n")
        t.wait(lambda s: "probes 2/2" in s, what="the raw tracepoint attached (probes 2/2)")
        press("Escape")
        press("b")  # the browser folds away: the stream gets the whole width
        child = subprocess.Popen([str(script), str(n)])
        assert child.wait(timeout=60) == 0
        t.wait(lambda s: len(_rows(s)) >= n, what=f"{n} exec rows")
        time.sleep(2.0)  # another exec of the script (there is none) would have arrived by now
        screen = t.screen()
        rows = _rows(screen)
        assert len(rows) == n, screen
        assert {row.split()[3] for row in rows} == {str(child.pid)}, screen  # exec keeps the pid
        assert all(row.split()[-1].startswith("arg3_filename='/tmp/km") for row in rows), screen  # cut at 80
        for _ in range(12):  # the stream scrolls sideways: the whole path, read as a string
            press("Right", pause=0.1)
        screen = t.wait(lambda s: sum(f"{script}'" in line for line in s.splitlines()) == n,
                        what=f"{n} rows ending with the script's whole path")
    finally:
        t.run("kill-server", check=False)
        script.unlink()
        short.rmdir()
