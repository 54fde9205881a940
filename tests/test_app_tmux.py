"""End to end: the real `ktui` in tmux on the live kernel, driven by keys, read from the screen."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from helpers.tmux import Tmux, ktui_pid

from helpers import getppid_binary, getppid_child, prog_ids_of, programs_left
from ktui.kernel import process_alive as alive

pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]
KTUI = Path(sys.executable).with_name("ktui")
SESSION = f"ktui-e2e-{os.getpid()}"


_TMUX = Tmux(SESSION, wait_s=40.0, socket=SESSION)  # a private server (helpers.tmux.Tmux.new_session)
tmux, screen, wait_screen = _TMUX.run, _TMUX.screen, _TMUX.wait


@pytest.fixture
def ktui_in_tmux():
    if shutil.which("tmux") is None or shutil.which("bpftool") is None:
        pytest.fail("tmux and bpftool are needed for the end-to-end test (apt-get install tmux bpftool)")
    getppid_binary()  # built before the screen is watched
    _TMUX.new_session("-x", "120", "-y", "40", "-e", "TERM=xterm-256color",
                      # The test session pins COLUMNS/LINES (conftest); ktui must see the real tmux size.
                      "env", "-u", "COLUMNS", "-u", "LINES", str(KTUI))
    tmux("set-option", "-t", SESSION, "remain-on-exit", "on")  # a crash stays readable on the screen
    tmux("resize-window", "-t", SESSION, "-x", "120", "-y", "40", check=False)
    try:
        yield int(tmux("list-panes", "-t", SESSION, "-F", "#{pane_pid}").split()[0])
    finally:
        tmux("kill-session", "-t", SESSION, check=False)


@pytest.fixture(autouse=True, scope="module")
def _server_ended():
    yield
    _TMUX.kill_server()


def test_ktui_live_in_tmux_add_a_tracepoint_by_keys_and_see_its_events(ktui_in_tmux):
    pid = ktui_pid(ktui_in_tmux)
    # The default session comes alive: openat events stream without any key.
    # (keys typed while the probes are still compiling can be lost: type once they are attached)
    wait_screen(lambda s: "sys_enter_op" in s and "LIVE" in s and "probes 3/3" in s)
    # Add a probe through keys: search, pick, add.
    time.sleep(1.0)  # let startup settle (the catalog's first listing) before typing
    tmux("send-keys", "-t", SESSION, "/")
    time.sleep(0.5)
    tmux("send-keys", "-t", SESSION, "-l", "sys_enter_getppid")
    wait_screen(lambda s: "syscalls:sys_enter_ge" in s)
    tmux("send-keys", "-t", SESSION, "Enter")
    wait_screen(lambda s: "Probe point" in s)
    tmux("send-keys", "-t", SESSION, "C-n")
    wait_screen(lambda s: "4/4" in s)  # the status line counts the new probe attached
    wait_screen(lambda s: "TIME(s)" in s)  # adding a probe shows the stream
    comm = getppid_binary().name[:10]  # the narrow COMM column shows 10 characters


    def shows_getppid(text: str) -> bool:  # the PROBE column shows the whole name
        return any(comm in line and "sys_enter_getppid" in line for line in text.splitlines())

    deadline = time.monotonic() + 40
    seen = screen()
    while time.monotonic() < deadline and not shows_getppid(seen):
        getppid_child(20)  # other processes' openat events scroll by too: call until it is seen
        time.sleep(0.3)
        seen = screen()
    assert shows_getppid(seen), seen
    loaded = prog_ids_of(pid)
    assert loaded, "ktui should hold its BPF programs while tracing"
    # Quit detaches everything.
    tmux("send-keys", "-t", SESSION, "q")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    assert not alive(pid), f"ktui did not exit on q:\n{screen()}"
    still = programs_left(loaded)
    assert not still, f"programs left in the kernel after quit: {still}"


def test_sigterm_detaches_everything(ktui_in_tmux):
    import signal

    pid = ktui_pid(ktui_in_tmux)
    wait_screen(lambda s: "LIVE" in s and "probes 3/3" in s)
    loaded = prog_ids_of(pid)
    assert loaded
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    assert not alive(pid), f"ktui did not exit on SIGTERM:\n{screen()}"
    assert not programs_left(loaded), "programs left in the kernel after SIGTERM"
