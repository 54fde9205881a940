"""Issue 12 in the VM, as a person does it: the real `ktui` in tmux at 80x24, driven by keys
only. Search a kernel function in the browser, open it in the editor, tick an argument (or a
struct member through the member picker), type a filter, add the probe, and read the stream.

kprobes exist only in this VM, so this is where the editor's kprobe path is proven live:
``kprobe:do_sys_openat2`` with ``filename`` by name from BTF (a user string) filtered in the
kernel, and ``kprobe:ip_rcv`` with ``skb->len`` picked under ``skb``. Both stories share one
app start (each adds its probe to it); their counts are exact and keyed to what the test alone
did (a child's pid and a file name nobody else opens; datagram sizes nobody else sends on the
VM's loopback)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from helpers.tmux import Tmux
from kernel_live import udp_datagrams

# The VM is software-emulated: BCC compiles, the catalog loads and Textual draws slowly there.
SLOW_S = 900.0
STEP_S = 120.0
pytestmark = pytest.mark.timeout(2400)


class App:
    """`ktui` in tmux, and how many probes the stories have added to it."""

    def __init__(self, t: Tmux) -> None:
        self.t = t
        self.added = 0


@pytest.fixture(scope="module")
def app(ktui_bin, tmp_path_factory):
    """One `ktui` at 80x24 in a private tmux server for both stories (an app start and its
    compiles cost minutes in the emulated VM), on an empty session: nothing is compiled before
    the first story adds its probe, and the stream shows only what the stories add."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed in the VM (the guest sees the host's /usr: apt-get install tmux)")
    from ktui.session import Session

    empty = tmp_path_factory.mktemp("editor") / "empty.toml"
    Session([]).save(empty)
    t = Tmux("ktui-editor", wait_s=STEP_S, socket=f"ktui-vm-{os.getpid()}")
    # -u: the guest may have no UTF-8 locale, and the screen is drawn with box characters
    t.run("-u", "new-session", "-d", "-x", "80", "-y", "24", "-s", t.session,
          "-e", "TERM=xterm-256color", "-e", "LANG=C.UTF-8",
          "env", "-u", "COLUMNS", "-u", "LINES", ktui_bin, "--session", str(empty))
    t.run("resize-window", "-t", t.session, "-x", "80", "-y", "24", check=False)
    try:
        t.wait(lambda s: "LIVE" in s and "Search" in s, SLOW_S, "ktui started")
        yield App(t)
    finally:
        t.run("kill-server", check=False)


def press(t: Tmux, *keys: str, literal: bool = False, pause: float = 0.6) -> None:
    t.keys(*keys, literal=literal)
    time.sleep(pause)


def open_in_editor(t: Tmux, function: str) -> None:
    """The browser's search, as a person uses it: / then the name, Enter on the highlighted entry."""
    press(t, "/")
    press(t, "C-u")  # the search box may hold an earlier story's name
    t.wait(lambda s: "(common first)" in s, SLOW_S, "the catalog loaded in the browser")
    press(t, function, literal=True)
    t.wait(lambda s: f"kprobe:{function}" in s, STEP_S, f"kprobe:{function} in the browser's details")
    press(t, "Enter")
    # the editor keeps its scroll position from the story before: its top may be out of view
    t.wait(lambda s: "Probe point" in s or "Arguments / fields" in s, STEP_S, "the editor")
    time.sleep(2.0)  # the editor's spec box takes focus once the entry is loaded
    for _ in range(8):  # spec -> where, the actions, the count key -> the arguments list
        press(t, "Tab", pause=0.4)


def add_and_show_stream(app: App) -> None:
    t = app.t
    press(t, "C-n")
    app.added += 1
    k = app.added
    t.wait(lambda s: f"probes {k}/{k}" in s, SLOW_S, f"the new kprobe attached (probes {k}/{k})")
    press(t, "Escape")
    press(t, "b")  # the browser folds away: the stream gets the whole width
    press(t, "1")
    t.wait(lambda s: "PROBE" in s and "COMM" in s, STEP_S, "the stream")


def rows_of(screen: str, probe_prefix: str) -> list[str]:
    """Stream rows of one probe (TIME CPU COMM PID PROBE VALUES): the probe column starts so."""
    out = []
    for line in screen.splitlines():
        cols = line.split()
        if len(cols) >= 6 and re.fullmatch(r"[0-9.]+", cols[0]) and cols[4].startswith(probe_prefix):
            out.append(line)
    return out


def test_do_sys_openat2_filename_ticked_and_filtered_by_keys(app):
    """kprobe:do_sys_openat2: tick `filename` (a user string by name from BTF), filter
    filename == "PATH", add; a child that opens PATH N times and another file in between
    gives exactly N rows, each with the child's pid and the name as a string."""
    t, n = app.t, 5
    path = Path("/tmp") / f"kE{uuid.uuid4().hex[:8]}"  # short: the whole value fits at 80 columns
    other = Path("/tmp") / f"kO{uuid.uuid4().hex[:8]}"
    path.write_text("x")
    other.write_text("y")
    try:
        open_in_editor(t, "do_sys_openat2")
        t.wait(lambda s: "const char * filename" in s, STEP_S, "filename typed from BTF in the arguments list")
        t.move_to_option("filename")
        press(t, "space")  # tick it: only filename is fetched
        press(t, "Tab")  # the filter
        press(t, f'filename == "{path}"', literal=True)
        t.wait(lambda s: f'filename == "{path}"' in s, STEP_S, "the filter typed")
        add_and_show_stream(app)
        child = subprocess.Popen(["cat", *([str(path), str(other)] * n)], stdout=subprocess.DEVNULL)
        assert child.wait(timeout=STEP_S) == 0
        screen = t.wait(lambda s: len(rows_of(s, "do_sys_open")) >= n, SLOW_S, f"{n} rows of do_sys_openat2")
        time.sleep(3.0)  # anything more (the other file, another process) would arrive by now
        screen = t.screen()
        rows = rows_of(screen, "do_sys_open")
        assert len(rows) == n, screen
        assert all(row.split()[2] == "cat" and row.split()[3] == str(child.pid) for row in rows), screen
        assert all(row.rstrip().endswith(f"filename='{path}'") for row in rows), screen
        assert str(other) not in screen, screen
    finally:
        path.unlink()
        other.unlink()


def _ip_len(payload: int) -> int:
    return payload + 8 + 20  # skb->len at ip_rcv: IPv4 header + UDP header + payload


def test_ip_rcv_skb_len_picked_in_the_member_picker_by_keys(app):
    """kprobe:ip_rcv: the right arrow on `skb` opens its members (from BTF), Down to `skb->len`,
    space ticks it, the left arrow folds them (the ticked member still named); a filter on the
    member keeps the large datagrams only: each row's skb_len is the length the test sent."""
    t = app.t
    small, large, n_small, n_large = 301, 1201, 3, 4
    open_in_editor(t, "ip_rcv")
    t.wait(lambda s: "struct sk_buff * skb ▸" in s, STEP_S, "skb offered as a struct pointer (▸)")
    t.move_to_option("skb")
    press(t, "Right")
    t.wait(lambda s: "struct sk_buff * skb ▾" in s and " skb->" in s, STEP_S, "skb's members listed")
    t.move_to_option("skb->len")
    press(t, "space")
    press(t, "Left")
    t.wait(lambda s: "skb ▸ (skb->len)" in s, STEP_S, "skb folded, naming its ticked member")
    press(t, "Tab")  # the filter
    press(t, f"skb->len > {_ip_len(small) + 100}", literal=True)
    t.wait(lambda s: "skb->len > " in s, STEP_S, "the filter typed")
    add_and_show_stream(app)
    assert udp_datagrams(n_small, small) == n_small
    assert udp_datagrams(n_large, large) == n_large
    screen = t.wait(lambda s: len(rows_of(s, "ip_rcv")) >= n_large, SLOW_S, f"{n_large} rows of ip_rcv")
    time.sleep(3.0)
    screen = t.screen()
    rows = rows_of(screen, "ip_rcv")
    assert len(rows) == n_large, screen
    assert all(row.split()[-1] == f"skb_len={_ip_len(large)}" for row in rows), screen
    assert f"skb_len={_ip_len(small)}" not in screen, screen
