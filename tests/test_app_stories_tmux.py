"""Issue 14's stories as a newcomer lives them: the real `ktui` in tmux at 80x24 on the live kernel,
driven by keys, checked on the screen as a person would read it, and after quit nothing left in the
kernel (bpftool). Each test is one story."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from helpers import getppid_binary, getppid_child, prog_ids_of, programs_left
from helpers.tmux import Tmux, ktui_pid
from ktui.kernel import process_alive as alive

pytestmark = [pytest.mark.live, pytest.mark.timeout(300),
              pytest.mark.skipif(os.geteuid() != 0, reason="live tracing needs root")]
KTUI = Path(sys.executable).with_name("ktui")
SESSION = f"ktui-stories-{os.getpid()}"

# A private tmux server (the default one is shared with whatever else runs tmux on the machine).
_TMUX = Tmux(SESSION, wait_s=90.0, socket=SESSION)  # a loaded 2-core machine compiles the first probes slowly
tmux, screen, wait_screen = _TMUX.run, _TMUX.screen, _TMUX.wait


def keys(*k: str, literal: bool = False, pause: float = 0.3) -> None:
    tmux("send-keys", "-t", SESSION, *(["-l"] if literal else []), *k)
    time.sleep(pause)


def start(*args: str) -> int:
    """ktui in a fresh 80x24 tmux session; returns ktui's pid."""
    if shutil.which("tmux") is None or shutil.which("bpftool") is None:
        pytest.fail("tmux and bpftool are needed for the end-to-end tests (apt-get install tmux bpftool)")
    _TMUX.new_session("-x", "80", "-y", "24", "-e", "TERM=xterm-256color",
                      "env", "-u", "COLUMNS", "-u", "LINES", str(KTUI), *args)
    tmux("set-option", "-t", SESSION, "remain-on-exit", "on")  # a crash stays readable
    tmux("resize-window", "-t", SESSION, "-x", "80", "-y", "24", check=False)
    return ktui_pid(int(tmux("list-panes", "-t", SESSION, "-F", "#{pane_pid}").split()[0]))


def quit_leaves_nothing(pid: int, loaded: set[int]) -> None:
    keys("q")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    assert not alive(pid), f"ktui did not exit on q:\n{screen()}"
    assert "Traceback" not in screen()
    assert not programs_left(loaded), "programs left in the kernel after quit"


@pytest.fixture(autouse=True)
def _session_closed():
    yield
    tmux("kill-session", "-t", SESSION, check=False)


@pytest.fixture(autouse=True, scope="module")
def _server_ended():
    yield
    _TMUX.kill_server()


def test_first_start_then_keys_typed_before_the_screen_shows_add_a_probe():
    """First start at 80x24: the newcomer types at once, before the first probes have compiled: search
    for getppid, Enter, ctrl+n. Nothing typed is lost: the probe is added and its events show with
    the whole name; the browser had folded away at 80 columns and the first screen said what to do."""
    getppid_binary()  # built before the clock starts
    pid = start()
    time.sleep(0.5)  # ktui is still importing: the terminal is not even in raw mode yet
    keys("/", pause=0)
    keys("sys_enter_getppid", literal=True, pause=0)
    keys("Enter", pause=0)
    keys("C-n", pause=0)
    text = wait_screen(lambda s: "probes 4/4" in s)
    assert "LIVE" in text
    keys("Escape")
    keys("b")  # the browser (opened by /) folds again: the stream gets the 80 columns
    comm = getppid_binary().name[:10]

    def shows_getppid(s: str) -> bool:
        return any(comm in line and "sys_enter_getppid" in line for line in s.splitlines())

    deadline = time.monotonic() + 60
    seen = screen()
    while time.monotonic() < deadline and not shows_getppid(seen):
        getppid_child(20)
        time.sleep(0.3)
        seen = screen()
    assert shows_getppid(seen), seen
    # The default probes' names, whole, beside the new one (the stream may show only getppid rows now).
    keys("5")
    listed = wait_screen(lambda s: "sys_enter_getppid" in s and "sys_enter_openat" in s)
    assert "probes 4/4" in listed
    quit_leaves_nothing(pid, prog_ids_of(pid))


def test_session_restores_filter_tab_and_browser_and_saves_as(tmp_path):
    """Sessions: set a stream filter, switch to the Stacks tab, show the browser, save (ctrl+s);
    reopen: the FILTER marker is on, the Stacks pane is on screen, the browser is shown. Then save as
    (ctrl+o) under another path: the new file has the same layout and probes."""
    path = tmp_path / "mine.toml"
    pid = start("--session", str(path))
    wait_screen(lambda s: "LIVE" in s and "probes 3/3" in s)
    keys("f")
    keys("comm=nosuchcomm", literal=True)
    keys("Enter")
    keys("3")
    keys("b")
    wait_screen(lambda s: "FILTER comm=nosuchcomm" in s and "search symbols" in s)
    keys("C-s")
    wait_screen(lambda s: "Session saved" in s)
    quit_leaves_nothing(pid, prog_ids_of(pid))
    saved = path.read_text()
    assert 'tab = "stacks"' in saved and "browser = true" in saved and 'filter = "comm=nosuchcomm"' in saved
    assert os.stat(path).st_mode & 0o777 == 0o600

    pid = start("--session", str(path))
    text = wait_screen(lambda s: "LIVE" in s and "probes 3/3" in s and "FILTER comm=nosuchcomm" in s)
    assert "search symbols" in text  # the browser shown, as saved (80 columns would fold it)
    assert "TIME(s)" not in text  # the Stacks pane, not the stream
    other = tmp_path / "other.toml"
    keys("C-o")
    wait_screen(lambda s: "Save the session as" in s)
    keys("C-u")  # clear the suggested path (readline's kill-line works in Textual's inputs)
    keys(str(other), literal=True)
    keys("Enter")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not other.exists():
        time.sleep(0.2)
    assert other.exists(), screen()
    wait_screen(lambda s: "Session saved" in s)
    assert 'tab = "stacks"' in other.read_text() and "sys_enter_openat" in other.read_text()
    quit_leaves_nothing(pid, prog_ids_of(pid))


def test_end_in_the_probe_list_then_space_disables_the_last_probe_and_delete_asks_first():
    """Toggling: 5, End, space disables the last probe (profile) and only it; Delete asks first, and
    Escape there keeps the probe."""
    pid = start()
    wait_screen(lambda s: "LIVE" in s and "probes 3/3" in s)
    keys("5")
    wait_screen(lambda s: "Probe point" in s)
    keys("End")
    keys("space")
    text = wait_screen(lambda s: "probes 2/3" in s)
    rows = [line for line in text.splitlines() if "profile" in line or "sys_enter_openat" in line
            or "sched_switch" in line]
    assert any("○" in line and "profile" in line for line in rows), text
    assert all("●" in line for line in rows if "profile" not in line), text
    keys("DC")  # tmux's name of the Delete key
    wait_screen(lambda s: "Remove the probe profile_49hz?" in s)
    keys("Escape")
    text = wait_screen(lambda s: "Remove the probe" not in s)
    assert any("○" in line and "profile_49hz" in line for line in text.splitlines()), text  # still there
    quit_leaves_nothing(pid, prog_ids_of(pid))


def grey_level(n: int) -> int | None:
    """The grey level (0-255) of a 256-colour palette index, or None when it is a colour."""
    if 232 <= n <= 255:
        return 8 + 10 * (n - 232)
    system = {0: 0, 7: 192, 8: 128, 15: 255, 16: 0, 59: 95, 102: 135, 145: 175, 188: 215, 231: 255}
    return system.get(n)


def cells_with_colours(line: str):
    """(foreground, background, text) runs of one ``capture-pane -e`` line; None is the default."""
    import re

    fg = bg = None
    for code, text in re.findall(r"\x1b\[([0-9;]*)m([^\x1b]*)", "\x1b[m" + line):
        parts = [int(p) for p in code.split(";") if p] or [0]
        i = 0
        while i < len(parts):
            p = parts[i]
            if p == 0:
                fg = bg = None
            elif p in (38, 48) and i + 2 < len(parts) and parts[i + 1] == 5:
                if p == 38:
                    fg = ("256", parts[i + 2])
                else:
                    bg = ("256", parts[i + 2])
                i += 2
            elif p in (38, 48) and i + 4 < len(parts) and parts[i + 1] == 2:
                value = ("rgb", tuple(parts[i + 2:i + 5]))
                if p == 38:
                    fg = value
                else:
                    bg = value
                i += 4
            elif 30 <= p <= 37 or 90 <= p <= 97:
                fg = ("basic", p)
            elif 40 <= p <= 47 or 100 <= p <= 107:
                bg = ("basic", p)
            elif p == 39:
                fg = None
            elif p == 49:
                bg = None
            i += 1
        if text:
            yield fg, bg, text


def level(colour, default: int) -> int:
    if colour is None:
        return default
    kind, value = colour
    if kind == "256":
        grey = grey_level(value)
        assert grey is not None, f"a colour under NO_COLOR: palette index {value}"
        return grey
    if kind == "rgb":
        r, g, b = value
        assert r == g == b, f"a colour under NO_COLOR: rgb{value}"
        return r
    raise AssertionError(f"a colour under NO_COLOR: SGR {value}")


def test_no_color_is_grey_only_and_every_text_legible():
    """NO_COLOR=1 at 80x24: only greys on the screen (capture-pane -e), and every run of text, the
    status line's warning and the stream's PROBE column included, at least 80 grey levels away from
    its background (the issue saw the PROBE column grey 237 on black)."""
    _TMUX.new_session("-x", "80", "-y", "24", "-e", "TERM=xterm-256color",
                      "env", "-u", "COLUMNS", "-u", "LINES", "NO_COLOR=1", str(KTUI))
    tmux("set-option", "-t", SESSION, "remain-on-exit", "on")
    pid = ktui_pid(int(tmux("list-panes", "-t", SESSION, "-F", "#{pane_pid}").split()[0]))
    wait_screen(lambda s: "LIVE" in s and "probes 3/3" in s)
    wait_screen(lambda s: "sys_enter_openat" in s)  # the default session's openat rows show
    coloured = tmux("capture-pane", "-p", "-e", "-t", SESSION)
    checked = 0
    for line in coloured.splitlines():
        for fg, bg, text in cells_with_colours(line):
            if not text.strip() or not any(c.isalnum() for c in text):
                continue  # borders and blanks carry no text to read
            contrast = abs(level(fg, 229) - level(bg, 0))
            assert contrast >= 80, f"{text.strip()!r}: fg {fg} on bg {bg} (contrast {contrast})"
            checked += 1
    assert checked > 10
    # the editor's boxes and radios say their state by shape, not by a grey level: empty when off
    tmux("send-keys", "-t", SESSION, "5")
    screen = wait_screen(lambda s: "both+latency" in s and "kernel stacks" in s)
    assert "▐●▌ entry" in screen and "▐ ▌ return" in screen and "▐ ▌ both+latency" in screen, screen
    assert "▐X▌ stream events" in screen and "▐ ▌ kernel stacks" in screen and "▐ ▌ histogram" in screen, screen
    quit_leaves_nothing(pid, prog_ids_of(pid))
