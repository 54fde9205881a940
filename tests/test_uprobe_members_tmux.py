"""The member picker on a uprobe, as a person uses it: the real `ktui` in tmux at 80x24, keys
only. A program compiled here with `gcc -g -O0` passes `struct point *p` to `touch` N times;
the spec `uprobe:PROG:touch` is typed in the editor, the right arrow on `p` lists p->x, p->y and
p->name from the program's DWARF, space ticks p->y and p->name, the left arrow folds them, a
filter on p->x is typed, the probe added; the stream shows exactly the calls the filter keeps,
with the values the program passed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.tmux import Tmux

pytestmark = [pytest.mark.live, pytest.mark.timeout(300),
              pytest.mark.skipif(os.geteuid() != 0, reason="live tracing needs root"),
              pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")]
KTUI = Path(sys.executable).with_name("ktui")

POINT_C = r"""
#include <stdio.h>
#include <stdlib.h>
struct point { int x; long y; const char *name; };
__attribute__((noinline, used)) void touch(struct point *p) { __asm__ volatile("" ::: "memory"); }
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    char buf[16];
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "pt%d", i);
        struct point p = { i, i * 1000L, buf };
        touch(&p);
    }
    return 0;
}
"""


def _rows(screen: str) -> list[str]:
    """Stream rows of the uprobe (TIME CPU COMM PID PROBE VALUES)."""
    return [line for line in screen.splitlines() if len(line.split()) >= 6 and line.split()[4] == "touch"]


def test_uprobe_member_picker_by_keys_gets_exactly_the_values_passed(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the end-to-end test (apt-get install tmux)")
    from ktui.probes.model import Probe, ProbeKind
    from ktui.session import Session

    n, floor = 6, 2
    (tmp_path / "point.c").write_text(POINT_C)
    prog = tmp_path / "pt"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(prog), str(tmp_path / "point.c")], check=True)
    quiet = tmp_path / "quiet.toml"  # one probe that never fires: the stream shows only what is added
    Session([Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", filter="pid == 1")]).save(quiet)
    t = Tmux("ktui-umembers", socket=f"ktui-umembers-{os.getpid()}")

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
        press("sys_enter_getppid", literal=True)
        t.wait(lambda s: "tracepoint:syscalls:sys" in s, what="a tracepoint in the browser's details")
        press("Enter")
        t.wait(lambda s: "Probe point" in s, what="the editor")
        time.sleep(1.5)  # the spec box takes focus once the entry is loaded
        press("C-a", pause=0.2)  # the spec is replaced by the uprobe, typed by hand
        press("C-k", pause=0.2)
        press(f"uprobe:{prog}:touch", literal=True)
        time.sleep(1.0)  # the program's arguments are read from its DWARF
        for _ in range(12):  # Tab past the actions (the last one is the histogram's)
            if t.highlighted_option().startswith("histogram"):
                break
            press("Tab", pause=0.3)
        press("Tab", pause=0.3)  # the count key
        press("Tab", pause=0.3)  # the arguments list (scrolled into view)
        t.move_to_option("p")
        t.wait(lambda s: "struct point * p ▸" in s, what="p offered as a struct pointer (▸)")
        press("Right")
        t.wait(lambda s: "struct point * p ▾" in s and "const char * p->name" in s, what="p's members listed")
        screen = t.screen()
        assert [m for m in ("int p->x", "long int p->y", "const char * p->name") if m in screen] == [
            "int p->x", "long int p->y", "const char * p->name"], screen
        t.move_to_option("p->y")
        press("space")
        t.move_to_option("p->name")
        press("space")
        press("Left")
        t.wait(lambda s: "p ▸ (p->name, p->y)" in s, what="p folded, naming its ticked members")
        press("Tab")  # the filter
        press(f"p->x >= {floor}", literal=True)
        t.wait(lambda s: "✓ filter ok" in s, what="the filter accepted")
        press("C-n")
        t.wait(lambda s: "probes 2/2" in s, what="the uprobe attached (probes 2/2)")
        press("Escape")
        press("b")  # the browser folds away: the stream gets the whole width
        press("1")
        child = subprocess.Popen([str(prog), str(n)])
        assert child.wait(timeout=60) == 0
        t.wait(lambda s: len(_rows(s)) >= n - floor, what=f"{n - floor} touch rows")
        time.sleep(2.0)  # another call would have arrived by now
        screen = t.screen()
        rows = _rows(screen)
        assert len(rows) == n - floor, screen
        assert {row.split()[3] for row in rows} == {str(child.pid)}, screen
        assert [row.split()[5:] for row in rows] == [
            [f"p_name='pt{i}'", f"p_y={i * 1000}", f"p_x={i}"] for i in range(floor, n)], screen
    finally:
        t.kill_server()
