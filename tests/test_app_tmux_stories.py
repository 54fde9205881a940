"""More of issue 14's stories as a newcomer lives them: the real `ktui` in tmux at 80x24 on the live
kernel (no kprobes here), driven by keys only, checked on the screen as a person reads it. Each story
starts ktui on an empty session, builds its probe in the editor, makes its own events (a child of the
test: exact counts) and quits; nothing is left in the kernel after.

The editor's keyboard order from the probe point box: Tab 1 where, 2 stream events, 3 count per key,
4 kernel stacks, 5 histogram, 6 count key, 7 arguments, 8 filter."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from helpers import getppid_binary, getppid_child, prog_ids_of, programs_left, run_uprobe_target
from helpers import uprobe_target_binary
from helpers.tmux import Tmux, ktui_pid
from ktui.kernel import process_alive as alive

pytestmark = [pytest.mark.live, pytest.mark.timeout(900),
              pytest.mark.skipif(os.geteuid() != 0, reason="live tracing needs root")]
KTUI = Path(sys.executable).with_name("ktui")
SESSION = f"ktui-stories2-{os.getpid()}"
# A 2-core machine shared with other test suites compiles and draws slowly (one full run of this file took
# 132 s where it usually takes 60): every wait is on what the screen says, so a long bound costs nothing.
STEP_S = 180.0

T = Tmux(SESSION, wait_s=STEP_S, socket=SESSION)  # a private tmux server


@pytest.fixture(autouse=True)
def _session_closed():
    yield
    T.run("kill-session", "-t", SESSION, check=False)


@pytest.fixture(autouse=True, scope="module")
def _server_ended():
    yield
    T.kill_server()


def start(tmp_path: Path) -> int:
    """ktui on an empty session in a fresh 80x24 tmux session; returns ktui's pid once it is live."""
    if shutil.which("tmux") is None or shutil.which("bpftool") is None:
        pytest.fail("tmux and bpftool are needed for the end-to-end tests (apt-get install tmux bpftool)")
    from ktui.session import Session

    empty = tmp_path / "empty.toml"
    Session([]).save(empty)
    T.new_session("-x", "80", "-y", "24", "-e", "TERM=xterm-256color",
                  "env", "-u", "COLUMNS", "-u", "LINES", str(KTUI), "--session", str(empty))
    T.run("set-option", "-t", SESSION, "remain-on-exit", "on")  # a crash stays readable
    T.run("resize-window", "-t", SESSION, "-x", "80", "-y", "24", check=False)
    pid = ktui_pid(int(T.run("list-panes", "-t", SESSION, "-F", "#{pane_pid}").split()[0]))
    T.wait(lambda s: "LIVE" in s and "Search" in s, what="ktui started")
    return pid


def open_editor(spec: str) -> None:
    """The browser's search, Enter on an entry (the editor opens with its probe point box focused),
    then the probe point replaced by ``spec``, Enter and the replacing typed in one go, as a person in
    a hurry does."""
    T.keys("/", "C-u")  # the search box may hold an earlier search
    T.wait(lambda s: "(common first)" in s, what="the catalog loaded in the browser")
    T.keys("sys_enter_getppid", literal=True)
    T.wait(lambda s: re.search(r"\b1 of [\d,]+", s) is not None and "_enter_getppid" in s,
           what="sys_enter_getppid, the one match, in the browser")
    T.keys("Enter", "C-u")
    T.keys(spec, literal=True)
    T.wait(lambda s: spec in s and "Probe point" in s, what=f"{spec} in the editor's probe point box")


def tabs(n: int) -> None:
    for _ in range(n):
        T.keys("Tab")
        time.sleep(0.2)


def add(probes: str) -> None:
    """ctrl+n adds the probe; the status line counts it (``probes`` as it reads then)."""
    T.keys("C-n")
    T.wait(lambda s: probes in s, what=probes)


def quit_leaves_nothing(pid: int, loaded: set[int], within_s: float = 30.0) -> None:
    T.keys("q")
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    assert not alive(pid), f"ktui did not exit within {within_s:.0f} s of q:\n{T.screen()}"
    assert "Traceback" not in T.screen()
    assert loaded, "ktui held no BPF programs while tracing"
    assert not programs_left(loaded), "programs left in the kernel after quit"


def stream_rows(screen: str, probe: str) -> list[str]:
    """Stream rows (TIME CPU COMM PID PROBE VALUES) of one probe."""
    out = []
    for line in screen.splitlines():
        cols = line.split()
        if len(cols) >= 5 and re.fullmatch(r"[0-9]+\.[0-9]+", cols[0]) and cols[4] == probe:
            out.append(line)
    return out


def test_who_opens_which_files(tmp_path):
    """sys_enter_openat with only its filename ticked, the stream filtered to comm=cat; `cat` opens a
    file of the test's three times: exactly three rows with the file's name whole, each by that cat."""
    path = Path("/tmp") / f"kW{uuid.uuid4().hex[:8]}"  # short: the whole name fits at 80 columns
    path.write_text("x")
    try:
        pid = start(tmp_path)
        open_editor("tracepoint:syscalls:sys_enter_openat")
        tabs(7)
        T.wait(lambda s: "filename" in s, what="filename among the fields")
        T.move_to_option("filename")
        T.keys("space")  # only filename is fetched: the row's values are the name alone (checked below)
        add("probes 1/1")
        T.keys("Escape", "b", "1")  # leave the box, fold the browser, the stream
        T.wait(lambda s: "TIME(s)" in s and "VALUES" in s, what="the stream")
        # only cat's opens (the machine's others, tmux's own reads of the screen among them, scroll fast)
        T.keys("f")
        T.keys("comm=cat", literal=True)
        T.keys("Enter")
        T.wait(lambda s: "FILTER comm=cat" in s, what="the filter in force")
        child = subprocess.Popen(["cat", str(path), str(path), str(path)], stdout=subprocess.DEVNULL)
        assert child.wait(timeout=60) == 0
        screen = T.wait(lambda s: sum(f"filename='{path}'" in line for line in s.splitlines()) >= 3,
                        what="three rows of the file")
        time.sleep(1.0)  # a fourth would have come with the three
        screen = T.screen()
        mine = [r for r in stream_rows(screen, "sys_enter_openat") if f"filename='{path}'" in r]
        assert len(mine) == 3, screen  # exactly as many opens as cat made
        # by cat, the test's child, and the name whole: only filename was ticked, so it is the whole value
        assert all(r.split()[2] == "cat" and r.split()[3] == str(child.pid) for r in mine), screen
        assert all(r.rstrip().endswith(f"filename='{path}'") for r in mine), screen
        quit_leaves_nothing(pid, prog_ids_of(pid))
    finally:
        path.unlink(missing_ok=True)


def test_count_schedule_per_cpu_goes_to_the_tracepoint_the_editor_names(tmp_path):
    """`kprobe:schedule` on this kernel without kprobes: the editor names the tracepoint that works
    (sched:sched_switch); the newcomer types it; the CPUs tab shows a row per CPU of this machine,
    every count whole (not `21…`), and the failed kprobe says it failed instead of counting 0."""
    pid = start(tmp_path)
    open_editor("kprobe:schedule")
    T.keys("C-n")
    T.wait(lambda s: "STOPPED" in s or "failed" in s, what="the kprobe refused")
    T.keys("5", "b")  # the editor says why, and what works instead (the whole width to say it)
    T.wait(lambda s: "sched:sched_switch" in s and "cannot be placed here" in s,
           what="the editor naming sched:sched_switch")
    T.wait(lambda s: re.search(r"schedule\s+kprobe:schedule\s+failed", s) is not None,
           what="the probe list saying the kprobe failed (not pending)")
    open_editor("tracepoint:sched:sched_switch")
    add("probes 1/2")
    T.keys("Escape", "b", "2")
    ncpu = os.cpu_count() or 1

    def per_cpu_rows(s: str) -> list[list[str]]:
        lines = s.splitlines()
        at = next((i for i, line in enumerate(lines) if line.startswith("sched_switch ")), None)
        if at is None:
            return []
        return [line.split() for line in lines[at + 2:at + 2 + ncpu] if re.match(r"^\s+\d+\s", line)]

    screen = T.wait(lambda s: len(per_cpu_rows(s)) == ncpu and re.search(r"sched_switch\s+\S+ hits", s) is not None,
                    what=f"sched_switch counted on each of {ncpu} CPUs")
    assert [int(r[0]) for r in per_cpu_rows(screen)] == list(range(ncpu)), screen
    count = re.compile(r"^\d[\d,]*(\.\d+)?[KM]?$")
    assert all(count.match(r[1]) for r in per_cpu_rows(screen)), screen  # hits whole: never "21…"
    assert "…" not in "\n".join(screen.splitlines()[:-2]), screen
    assert re.search(r"schedule\s+failed:", screen), screen
    quit_leaves_nothing(pid, prog_ids_of(pid))


def test_stacks_of_a_known_program_3_then_enter_in_one_burst(tmp_path):
    """sys_enter_getppid with kernel stacks, filtered to the test's getppid program: it calls getppid
    7 times; `3` then Enter typed together open the inspector on its stack: 7 times, with the system
    call's kernel path (do_syscall_64) among the frames."""
    comm = getppid_binary().name[:15]
    pid = start(tmp_path)
    open_editor("tracepoint:syscalls:sys_enter_getppid")
    tabs(4)
    T.keys("space")  # kernel stacks
    tabs(4)
    T.keys(f'comm == "{comm}"', literal=True)
    T.wait(lambda s: f'comm == "{comm}"' in s, what="the filter typed")
    add("probes 1/1")
    T.keys("Escape", "b", "2")
    T.wait(lambda s: "sys_enter_getppid" in s and "hits" in s, what="the CPUs tab")
    getppid_child(7)
    # 7 kept by its filter, or 7 hits when no other program called getppid meanwhile
    T.wait(lambda s: re.search(r"\b7 kept by its filter|sys_enter_getppid +7 hits", s) is not None,
           what="the 7 calls counted")
    # the stack counts are read less often than the counters: seen once on the Stacks tab, they are there
    T.keys("3")
    T.wait(lambda s: re.search(r"\b7 100\.0%.*sys_enter_getppid", s) is not None, what="the stack, 7 times")
    T.keys("1")
    T.wait(lambda s: "TIME(s)" in s, what="the stream")
    T.keys("3", "Enter")  # one burst: the Enter must reach the stacks, not get lost on the way
    screen = T.wait(lambda s: "stack of sys_enter_getppid: 7 times" in s, what="the inspector on the stack")
    assert "do_syscall_64" in screen, screen
    T.keys("Escape")
    T.wait(lambda s: "stack of" not in s, what="the inspector closed")
    quit_leaves_nothing(pid, prog_ids_of(pid))


def test_histogram_buckets_read_as_powers_of_two(tmp_path):
    """A histogram of sys_enter_read's count: dd reads 300,000 bytes 9 times; the Hists tab shows
    the bucket as `[256Ki, 512Ki)` (not `262.1k`) holding exactly 9."""
    n, size = 9, 300_000
    pid = start(tmp_path)
    open_editor("tracepoint:syscalls:sys_enter_read")
    tabs(5)
    T.keys("space")  # histogram
    tabs(2)
    T.wait(lambda s: "size_t count" in s, what="count among the fields")
    T.move_to_option("count")
    T.keys("space")
    tabs(1)
    T.keys(f'comm == "dd" && count == {size}', literal=True)
    T.wait(lambda s: f"count == {size}" in s, what="the filter typed")
    add("probes 1/1")
    T.keys("Escape", "b", "4")
    T.wait(lambda s: "Hists" in s and ("No histograms" in s or "sys_enter_read" in s), what="the Hists tab")
    dd = subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", f"bs={size}", f"count={n}"], capture_output=True)
    assert dd.returncode == 0
    screen = T.wait(lambda s: re.search(rf"\[256Ki, 512Ki\) +\S* +{n}\b", s) is not None,
                    what=f"[256Ki, 512Ki) holding {n}")
    assert re.search(rf"sys_enter_read: count \(log2, {n} samples", screen), screen
    assert "262.1k" not in screen, screen
    quit_leaves_nothing(pid, prog_ids_of(pid))


def _file_offset(binary: Path, symbol: str) -> int:
    """Where a function's code is in the program file (what a uprobe_events line names)."""
    from elftools.elf.elffile import ELFFile

    with binary.open("rb") as f:
        elf = ELFFile(f)
        address = next(s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()
                       if s.name == symbol)
        seg = next(s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"
                   and s["p_vaddr"] <= address < s["p_vaddr"] + s["p_memsz"])
        return address - seg["p_vaddr"] + seg["p_offset"]


def test_pasting_a_uprobe_events_line_builds_the_probe(tmp_path):
    """A `uprobe_events` line pasted (bracketed paste) into the probe point box right after ctrl+u, in
    one burst: the box holds the line (the paste did not overtake ctrl+u), ctrl+n adds the probe under
    the line's own name, and a program calling the function 5 times gives exactly 5 rows of it."""
    binary = uprobe_target_binary()
    line = f"p:kt_paste {binary}:{_file_offset(binary, 'ktui_test_target'):#x}"
    pid = start(tmp_path)
    open_editor("tracepoint:syscalls:sys_enter_getppid")
    T.run("set-buffer", "-b", SESSION, "--", line)
    T.keys("C-u")
    T.run("paste-buffer", "-p", "-d", "-b", SESSION, "-t", SESSION)  # -p: as a terminal pastes, bracketed
    add("probes 1/1")
    T.keys("5")  # the box is narrower than the line: the probe list names what it built
    T.wait(lambda s: "kt_paste" in s and "uprobe:" in s, what="kt_paste, a uprobe, in the probe list")
    T.keys("b", "1")
    T.wait(lambda s: "TIME(s)" in s, what="the stream")
    child = run_uprobe_target(5)
    screen = T.wait(lambda s: len(stream_rows(s, "kt_paste")) >= 5, what="5 rows of kt_paste")
    time.sleep(1.0)  # a sixth would have arrived with the five
    screen = T.screen()
    rows = stream_rows(screen, "kt_paste")
    assert len(rows) == 5 and all(r.split()[3] == str(child) for r in rows), screen
    quit_leaves_nothing(pid, prog_ids_of(pid))


def test_under_a_busy_probe_keys_still_switch_tabs_and_q_quits(tmp_path):
    """raw_syscalls:sys_enter (every system call of the machine) while a child makes about a million
    system calls a second: the tabs still switch on their keys, and q quits within 30 s, leaving
    nothing in the kernel."""
    pid = start(tmp_path)
    open_editor("tracepoint:raw_syscalls:sys_enter")
    add("probes 1/1")
    T.keys("Escape", "b")
    busy = subprocess.Popen(["timeout", "150", "dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=400000000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        T.wait(lambda s: re.search(r"[\d.]+[KM] ev/s|\d{2,},\d{3} ev/s", s) is not None,
               what="a busy stream (thousands of events a second)")
        loaded = prog_ids_of(pid)
        for key, shows in (("2", r"sys_enter\s+\S+ hits"), ("5", r"Probe point"), ("3", r"No stacks yet"),
                           ("4", r"No histograms"), ("1", r"TIME\(s\)")):
            T.keys(key)
            T.wait(lambda s, shows=shows: re.search(shows, s) is not None, 60.0, f"tab {key} ({shows}) under load")
        assert busy.poll() is None, "the load ended before the keys were tried"
        quit_leaves_nothing(pid, loaded)
    finally:
        busy.kill()
        busy.wait()
