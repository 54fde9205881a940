"""Recording from the app, as a person does it: the real ktui in tmux at 80x24, a key starts a
recording into a file named in a dialog, the status line marks it, the key stops it, and the
file replays exactly the events the stream was given while it ran."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.tmux import Tmux, ktui_pid

from helpers import getppid_binary, getppid_child, prog_ids_of, programs_left
from ktui.kernel import process_alive as alive
from ktui.probes.model import Probe, ProbeKind
from ktui.session import Session
from ktui.sources.replay import ReplaySource

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]
KTUI = Path(sys.executable).with_name("ktui")
SESSION = f"ktui-rec-{os.getpid()}"
N = 4000


_TMUX = Tmux(SESSION, socket=SESSION)  # a private server (helpers.tmux.Tmux.new_session)
tmux, screen, wait_screen = _TMUX.run, _TMUX.screen, _TMUX.wait


def test_record_from_the_app_by_keys_then_replay_it(tmp_path):
    if shutil.which("tmux") is None or shutil.which("bpftool") is None:
        pytest.fail("tmux and bpftool are needed for the end-to-end test (apt-get install tmux bpftool)")
    # Only the test's own child's calls (its comm, filtered in the kernel): once another program's
    # getppid flood (a benchmark's load generator, 187K events/s) poured into the app and its
    # recording, and the REC marker never showed.
    comm = getppid_binary().name[:15]
    session = tmp_path / "s.toml"
    Session(probes=[Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid",
                          filter=f'comm == "{comm}"')]).save(str(session))
    out = tmp_path / "shown.ktrec"
    _TMUX.new_session("-x", "80", "-y", "24", "-e", "TERM=xterm-256color",
                      "env", "-u", "COLUMNS", "-u", "LINES", str(KTUI), "--session", str(session))
    tmux("set-option", "-t", SESSION, "remain-on-exit", "on")
    tmux("resize-window", "-t", SESSION, "-x", "80", "-y", "24", check=False)
    try:
        pid = ktui_pid(int(tmux("list-panes", "-t", SESSION, "-F", "#{pane_pid}").split()[0]))
        wait_screen(lambda s: "LIVE" in s and "1/1" in s)
        time.sleep(1.0)
        tmux("send-keys", "-t", SESSION, "C-r")
        wait_screen(lambda s: "Record the running probes" in s)
        tmux("send-keys", "-t", SESSION, "C-u")  # clear the suggested name
        tmux("send-keys", "-t", SESSION, "-l", str(out))
        tmux("send-keys", "-t", SESSION, "Enter")
        wait_screen(lambda s: "● REC" in s)  # the marker, on an 80-column status line
        child = getppid_child(N)
        wait_screen(lambda s: comm[:10] in s)  # the stream shows the child's calls
        time.sleep(1.0)  # the drain hands them on within a frame; one second is plenty
        tmux("send-keys", "-t", SESSION, "C-r")
        text = wait_screen(lambda s: "● REC" not in s and "events recorded" in s)
        assert "REC" not in text.splitlines()[-2]
        loaded = prog_ids_of(pid)
        tmux("send-keys", "-t", SESSION, "q")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        assert not alive(pid), screen()
    finally:
        _TMUX.kill_server()
    assert not programs_left(loaded)
    # Replayed: exactly the child's N calls (the child ran wholly inside the recording).
    src = ReplaySource([out])
    got = []
    src.start(got.append)
    src.set_speed(None)
    src.play()
    deadline = time.monotonic() + 60
    while not (got and got[-1].finished) and time.monotonic() < deadline:
        time.sleep(0.05)
    src.stop()
    events = [u.events[0] for u in got if 0 in u.events]
    assert events, "the recording replayed no event"
    pids = np.concatenate(events)["pid"]
    assert int((pids == child).sum()) == N
