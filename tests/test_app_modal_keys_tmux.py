"""Keys typed with no pause into every dialog and text box of the real ktui at 80x24, live on this
kernel: each whole sequence goes in ONE tmux send-keys call (as fast typing, a paste or a slow SSH
link delivers it), and the screen must show the text where it was meant and nothing else changed.

A key that opens a dialog (ctrl+r, ctrl+o, Delete, F1, ctrl+g, Enter, ctrl+p) is followed at once
by the keys meant for the dialog; Escape is followed at once by a key meant for the main screen
(tmux sends them as the two bytes ESC x, which a terminal parser reads as Alt+x unless told)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import getppid_binary, getppid_child
from helpers.tmux import Tmux, ktui_pid
from ktui.kernel import process_alive as alive

pytestmark = [pytest.mark.live, pytest.mark.timeout(300),
              pytest.mark.skipif(os.geteuid() != 0, reason="live tracing needs root")]
KTUI = Path(sys.executable).with_name("ktui")
SESSION = f"ktui-modal-keys-{os.getpid()}"
T = Tmux(SESSION, wait_s=90.0)
TABS = ("Stream", "CPUs", "Stacks", "Hists", "Probes")


def active_tab(text: str) -> str | None:
    """The tab whose label sits over the highlighted stretch of the tab bar's underline."""
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if all(t in line for t in TABS):
            under = lines[i + 1]
            a, b = under.find("╸"), under.find("╺")
            if a < 0 or b < 0 or b <= a:
                return "Stream" if b > 0 and a < 0 else None  # the first tab: its left end is the edge
            label = line[a + 1:b].strip()
            return label if label in TABS else None
    return None


def status(text: str) -> str:
    lines = text.splitlines()
    return lines[-2] if len(lines) >= 2 else ""


def on_tab(tab: str, more=lambda s: True):
    return lambda s: active_tab(s) == tab and more(s)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One ktui for every dialog (each test leaves the main screen as it found it)."""
    if shutil.which("tmux") is None or shutil.which("bpftool") is None:
        pytest.fail("tmux and bpftool are needed for the end-to-end tests (apt-get install tmux bpftool)")
    getppid_binary()
    home = tmp_path_factory.mktemp("modal")
    session = home / "start.toml"
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    T.run("new-session", "-d", "-x", "80", "-y", "24", "-s", SESSION, "-c", str(home), "-e", "TERM=xterm-256color",
          "env", "-u", "COLUMNS", "-u", "LINES", str(KTUI), "--session", str(session))
    T.run("set-option", "-t", SESSION, "remain-on-exit", "on")
    subprocess.run(["tmux", "resize-window", "-t", SESSION, "-x", "80", "-y", "24"], capture_output=True)
    pid = ktui_pid(int(T.run("list-panes", "-t", SESSION, "-F", "#{pane_pid}").split()[0]))
    T.wait(lambda s: "LIVE" in s and "probes 3/3" in s and active_tab(s) == "Stream", what="the live app")
    try:
        yield home, pid
    finally:
        T.keys("q")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
        assert not alive(pid), "ktui did not exit on q"


@pytest.fixture(autouse=True)
def _on_main_screen(app):
    """Every test starts and ends on the stream with no dialog, filter or search in force."""
    yield
    text = T.screen()
    assert "Traceback" not in text, text
    T.keys("1")
    T.wait(on_tab("Stream", lambda s: "FILTER" not in status(s) and "FIND" not in status(s)),
           what="the stream with no filter or search")


def test_recorder_dialog_gets_every_key_typed_right_after_ctrl_r(app):
    home, _ = app
    path = home / "fast.ktrec"
    T.keys("C-r", "C-u", str(path), "Tab", "5", "Tab", 'comm == "cp"')
    text = T.wait(lambda s: "Record the running probes" in s and 'comm == "cp"' in s and str(path) in s,
                  what="the dialog filled in")
    lines = text.splitlines()
    assert any(str(path) in ln for ln in lines), text  # the path field holds the path, whole
    assert any("ring seconds" in ln and " 5 " in f"{ln} " for ln in lines), text
    assert any("trigger" in ln and 'comm == "cp"' in ln and "5" not in ln for ln in lines), text
    assert active_tab(text) == "Stream" and "FILTER" not in status(text)  # nothing reached the stream
    # Escape cancels, and the keys right after it are the main screen's: f opens the filter box, the
    # text goes in it, Escape leaves it unchanged (no "pid=1£"), 3 switches to the Stacks tab.
    T.keys("Escape", "f", "pid=1", "Escape", "3")
    text = T.wait(on_tab("Stacks", lambda s: "Record the running" not in s), what="Stacks with the dialog gone")
    assert "FILTER" not in status(text) and "pid=1" not in text, text
    assert not path.exists()  # cancelled: nothing recorded
    assert "REC" not in status(text)


def test_recorder_starts_and_stops_from_keys_typed_at_once(app):
    home, _ = app
    path = home / "quick.ktrec"
    T.keys("C-r", "C-u", str(path), "Enter", "2")
    text = T.wait(on_tab("CPUs", lambda s: "● REC" in status(s) and "Record the running" not in s),
                  what="recording, on the CPUs tab")
    assert path.exists(), text
    T.keys("C-r", "1")
    T.wait(on_tab("Stream", lambda s: "REC" not in status(s)), what="the recording stopped")
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_save_as_prompt_gets_the_path_typed_right_after_ctrl_o(app):
    home, _ = app
    path = home / "saved-fast.toml"
    T.keys("C-o", "C-u", str(path), "Enter", "4")
    T.wait(on_tab("Hists", lambda s: "Save the session as" not in s), what="Hists with the prompt gone")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.1)
    assert path.exists() and "sys_enter_openat" in path.read_text()
    assert os.stat(path).st_mode & 0o777 == 0o600
    other = home / "never.toml"
    T.keys("C-o", "C-u", str(other), "Escape", "2")
    text = T.wait(on_tab("CPUs", lambda s: "Save the session as" not in s), what="CPUs with the prompt gone")
    assert not other.exists() and str(other) not in text


def test_filter_and_search_boxes_get_the_text_and_the_keys_after_go_on(app):
    T.keys("f", "comm=nosuchcomm", "Enter", "3")
    text = T.wait(on_tab("Stacks", lambda s: "FILTER comm=nosuchcomm" in status(s)), what="the filter in force")
    assert "comm=nosuchcomm" not in text.splitlines()[0]
    T.keys("1", "f", "C-u", "Enter", "s", "sys_enter", "Enter", "4")
    text = T.wait(on_tab("Hists", lambda s: "FIND sys_enter" in status(s) and "FILTER" not in status(s)),
                  what="the search in force, the filter cleared")
    T.keys("1", "s", "C-u", "Enter")
    T.wait(on_tab("Stream", lambda s: "FIND" not in status(s)), what="the search cleared")


def test_help_closes_on_escape_and_the_next_key_is_global(app):
    T.keys("F1", "End", "Escape", "4")
    text = T.wait(on_tab("Hists", lambda s: "ktui keys" not in s), what="Hists with help closed")
    assert "FILTER" not in status(text)


def test_inspector_filter_key_typed_right_after_enter(app):
    getppid_child(5)
    T.keys("1", "Enter", "p")
    text = T.wait(lambda s: "FILTER pid=" in status(s), what="the stream filtered to the row's pid")
    assert active_tab(text) == "Stream"
    T.keys("f", "C-u", "Enter")
    T.wait(lambda s: "FILTER" not in status(s), what="the filter cleared")


def test_palette_gets_the_command_typed_right_after_ctrl_p(app):
    T.keys("C-p", "Hists", "Enter")
    T.wait(on_tab("Hists", lambda s: "Search for commands" not in s), what="the palette's Hists chosen")


def test_browser_search_then_editor_then_generated_c_then_add_typed_at_once(app):
    """/, a name, Enter (the editor opens on it), ctrl+g (its C shows); then Escape (the C closes),
    ctrl+n (adds it), Escape, b (the browser folds)."""
    T.keys("/", "sys_enter_getppid", "Enter", "C-g")
    T.wait(lambda s: "Generated BCC program" in s and "#include" in s, what="the generated C")
    T.keys("Escape", "C-n", "Escape", "b")
    text = T.wait(lambda s: "probes 4/4" in status(s) and "search symbols" not in s,
                  what="the probe added and the browser folded")
    assert active_tab(text) == "Stream"
    T.keys("5")
    T.wait(on_tab("Probes", lambda s: "sys_enter_getppid" in s), what="the new probe listed")


def test_delete_confirmation_answered_at_once(app):
    """Last, as it removes a probe: Delete then n keeps it; Delete then y removes exactly it."""
    T.keys("5", "End", "DC", "n", "2")
    text = T.wait(on_tab("CPUs", lambda s: "Remove the probe" not in s), what="CPUs with the question gone")
    assert "probes 4/4" in status(text)
    T.keys("5", "End", "DC", "y")
    text = T.wait(on_tab("Probes", lambda s: "probes 3/3" in status(s) and "Remove the probe" not in s),
                  what="the last probe removed")
    rows = [ln for ln in text.splitlines() if "●" in ln or "○" in ln]  # the probe list's rows
    assert not any("sys_enter_getppid" in ln for ln in rows), text
    assert any("sys_enter_openat" in ln for ln in rows) and any("profile_49hz" in ln for ln in rows), text
