"""`ktui diff`: two real recordings of a C load generator at known call counts (live kernel),
and the comparison's rules on recordings written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import build_c
from ktui.cli import main
from ktui.diff import changed_paths, compare, significant
from ktui.diff.text import render
from ktui.recording.reader import RecordingReader

# common getppid calls from one function, extra ones from another (a stack only B has), `wsize`-byte
# writes to /dev/null (a histogram of the write size), 50 getpid calls (a probe that never changes).
DIFF_LOAD_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
/* libc's syscall() keeps no frame of its own: a frame-pointer walk from it skips its direct caller
   (ktui_diff_call), so the functions that tell the stacks apart are one call further out. */
__attribute__((noinline, used)) void ktui_diff_call(void) { syscall(SYS_getppid); __asm__ volatile("" ::: "memory"); }
__attribute__((noinline, used)) void ktui_diff_common(void) { ktui_diff_call(); __asm__ volatile("" ::: "memory"); }
__attribute__((noinline, used)) void ktui_diff_extra(void) { ktui_diff_call(); __asm__ volatile("" ::: "memory"); }
static char buf[65536];
int main(int argc, char **argv) {
    long common = atol(argv[1]), extra = atol(argv[2]), wsize = atol(argv[3]);
    int fd = open("/dev/null", O_WRONLY);
    for (long i = 0; i < common; i++) ktui_diff_common();
    for (long i = 0; i < extra; i++) ktui_diff_extra();
    for (int i = 0; i < 100; i++) if (write(fd, buf, wsize) < 0) return 1;
    for (int i = 0; i < 50; i++) syscall(SYS_getpid);
    usleep(1200000); /* alive while the recorder reads its user stacks (every 0.5 s) */
    return 0;
}
"""

GETPPID = "tracepoint:syscalls:sys_enter_getppid"
GETPID = "tracepoint:syscalls:sys_enter_getpid"
WRITE = "tracepoint:syscalls:sys_enter_write"


def _session(tmp: Path) -> Path:
    from ktui.probes.model import Action, ActionKind, Probe, ProbeKind
    from ktui.session import Session

    path = tmp / "diff-session.toml"
    if not path.exists():
        Session(probes=[
            Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid",
                  actions=[Action(ActionKind.STACKS, kernel_stack=True, user_stack=True)]),
            Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getpid"),
            Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_write", actions=[Action(ActionKind.HIST, value="count")]),
        ]).save(path)
    return path


def _record(tmp: Path, name: str, common: int, extra: int, wsize: int) -> Path:
    out = tmp / f"{name}.ktrec"
    binary = build_c("diff-load", DIFF_LOAD_C)
    assert main(["record", "--session", str(_session(tmp)), "-o", str(out), "-q", "--",
                 str(binary), str(common), str(extra), str(wsize)]) == 0
    return out


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """A and A2: the same workload twice; B: 700 extra getppid calls from another function;
    C: the same calls as A with 4000-byte writes instead of 100-byte ones."""
    tmp = tmp_path_factory.mktemp("diff")
    return {"a": _record(tmp, "a", 2000, 0, 100), "a2": _record(tmp, "a2", 2000, 0, 100),
            "b": _record(tmp, "b", 2000, 700, 100), "c": _record(tmp, "c", 2000, 0, 4000)}


def _walk(node, path=()):
    for child in node.children.values():
        yield (*path, child.name), child
        yield from _walk(child, (*path, child.name))


def _diff(a: Path, b: Path):
    with RecordingReader.open(a) as ra, RecordingReader.open(b) as rb:
        return compare(ra, rb)


@pytest.mark.live
def test_the_same_workload_twice_differs_only_by_noise(recordings):
    d = _diff(recordings["a"], recordings["a2"])
    assert d.flagged == []
    counts = {p.key: (p.count_a, p.count_b) for p in d.probes}
    assert counts == {GETPPID: (2000, 2000), GETPID: (50, 50), WRITE: (100, 100)}
    assert all(not h.flagged and h.shift == 0 for h in d.histograms) and len(d.histograms) == 1
    assert d.stacks and all(s.delta == 0 and not s.flagged for s in d.stacks)
    assert list(changed_paths(d.flame)) == [] and d.flame.a == d.flame.b == 2000
    assert not any(line.startswith("!") for line in render(d))


@pytest.mark.live
def test_an_added_workload_is_the_one_probe_at_the_top_with_exactly_its_calls(recordings):
    d = _diff(recordings["a"], recordings["b"])
    top = d.probes[0]
    assert (top.key, top.count_a, top.count_b, top.delta, top.flagged) == (GETPPID, 2000, 2700, 700, True)
    assert [p.key for p in d.flagged] == [GETPPID]
    # The stack of the added calls is new in B with exactly their count; the common one is unchanged.
    new = [s for s in d.stacks if s.status == "new"]
    assert len(new) == 1 and new[0].count_b == 700 and new[0].key == GETPPID and new[0].flagged
    assert "ktui_diff_extra" in new[0].user and "main" in new[0].user
    common = [s for s in d.stacks if "ktui_diff_common" in s.user]
    assert len(common) == 1 and common[0].count_a == common[0].count_b == 2000
    assert d.stacks[0] is new[0]  # the largest change first
    # The differential flame graph: the added calls' frame is new with exactly 700, its sibling unchanged.
    frames = {name: node for path, node in _walk(d.flame) for name in [path]}
    (extra,) = [n for p, n in frames.items() if p[-1] == "ktui_diff_extra"]
    (common,) = [n for p, n in frames.items() if p[-1] == "ktui_diff_common"]
    assert (extra.a, extra.b) == (0, 700) and (common.a, common.b) == (2000, 2000)
    assert d.flame.children[GETPPID].delta == 700 and d.flame.delta == 700
    lines = list(changed_paths(d.flame))
    assert [p.delta for p in lines] == [700, 700] and lines[1].names[0] == "ktui_diff_extra"
    assert not any("ktui_diff_common" in p.names for p in lines)


@pytest.mark.live
def test_a_histogram_shift_is_shown_side_by_side(recordings):
    d = _diff(recordings["a"], recordings["c"])
    assert d.flagged == []  # the same number of writes: only their sizes changed
    (h,) = d.histograms
    assert h.flagged and h.total_a == h.total_b == 100
    assert h.median_a == (64, 128) and h.median_b == (2048, 4096) and h.shift == 5
    assert [(lo, hi, a, b) for lo, hi, a, b in h.buckets if a or b] == [(64, 128, 100, 0), (2048, 4096, 0, 100)]
    text = render(d)
    i = next(i for i, line in enumerate(text) if line.startswith("! HISTOGRAM count of " + WRITE))
    assert text[i + 1] == "  median [64, 128) → [2Ki, 4Ki), shift +5 bucket(s)"
    assert text[0 + 2] == "changed beyond noise (!): 1 of 1 histogram(s)"


@pytest.mark.live
def test_the_command_prints_80_columns_and_json_for_scripts(recordings, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["diff", str(recordings["a"]), str(recordings["b"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert len(lines) <= 30, lines
    first = next(i for i, line in enumerate(lines) if "PROBE" in line)
    assert lines[first + 1].startswith("! ") and GETPPID in lines[first + 1] and "+700" in lines[first + 1]
    assert any("new" in line and "+700" in line for line in lines)
    assert main(["diff", str(recordings["a"]), str(recordings["b"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["probes"][0]["key"] == GETPPID and data["probes"][0]["delta"] == 700
    assert [s["status"] for s in data["stacks"] if s["delta"]] == ["new"]
    assert data["noise_rule"].startswith("|B-A| > max(3*sqrt(A+B)")
    assert data["flame"]["delta"] == 700 and data["flame"]["children"][0]["name"] == GETPPID
    assert any("FLAME Δ" in line for line in lines) and any("ktui_diff_extra" in line and "+700" in line
                                                            for line in lines)
    # sentences and frames are wrapped, never cut: a long note and every frame read whole
    d = _diff(recordings["a"], recordings["b"])
    d.notes.append("the recordings last 1.93 s and 1.31 s: counts compare whole recordings; compare the "
                   "rates (--json has them) for a steady load")
    text = render(d, 80)
    assert all(len(line) <= 80 for line in text)
    joined = " ".join(line.strip() for line in text)
    assert f"note: {d.notes[-1]}" in joined and "noise rule: " + d.noise_rule in joined
    frames = next(s for s in d.stacks if s.status == "new").user
    assert " < ".join(frames) in joined
    # into a file, COLUMNS sets the width (the default is 80)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["diff", str(recordings["a"]), str(recordings["b"])]) == 0
    wide = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in wide) > 80 and all(len(line) <= 200 for line in wide)


def test_the_noise_rule():
    assert not significant(2000, 2000)
    assert not significant(10_000, 10_150)  # under 3 sigma (about 424) and 2 %
    assert significant(2000, 2700)
    assert significant(0, 10) and not significant(0, 9)  # 3*sqrt(9) = 9: a few stray events are no change
    assert not significant(1_000_000, 1_015_000)  # 1.5 %: within the fraction however many events


def test_bad_inputs_are_one_sentence(tmp_path, capsys):
    demo = str(Path(__file__).parent.parent / "ktui" / "data" / "demo.ktrec")
    assert main(["diff", str(tmp_path / "missing.ktrec"), demo]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err
    junk = tmp_path / "junk.ktrec"
    junk.write_bytes(b"\x00" * 100)
    assert main(["diff", demo, str(junk)]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a ktui recording" in err
    with pytest.raises(SystemExit):
        main(["diff", demo, demo, "--stacks", "-1"])
    assert "out of range" in capsys.readouterr().err


def test_a_recording_against_itself_has_no_change_and_fits_80_columns(capsys):
    demo = str(Path(__file__).parent.parent / "ktui" / "data" / "demo.ktrec")
    assert main(["diff", demo, demo, "--all"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "no probe changed beyond noise (10 compared)" in out
    assert all(len(line) <= 80 for line in out) and not any(line.startswith("!") for line in out)


@pytest.mark.live
def test_the_view_shows_the_diff_at_80x24_and_all_probes_on_a(recordings):
    import asyncio

    from ktui.app_diff import DiffApp

    app = DiffApp(_diff(recordings["a"], recordings["b"]))

    async def drive() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            shown = str(app.query_one("#diff-text").render())
            assert any(line.startswith("! ") and line.split()[1].endswith("sys_enter_getppid") and "+700" in line
                       for line in shown.splitlines())
            assert "(2 more within noise" in shown and all(len(line) <= 80 for line in shown.splitlines())
            await pilot.press("a")
            shown = str(app.query_one("#diff-text").render())
            assert GETPID in shown and WRITE in shown and "more within noise" not in shown
            await pilot.press("q")

    asyncio.run(drive())
    assert app.return_code == 0


@pytest.mark.live
def test_the_differential_flame_graph_in_the_view_marks_the_new_stack_and_the_growth_exactly(recordings):
    """g in the view: the flame graph of A and B; the frame only B has is marked new (+) with its 700
    calls, the frames above it grew by exactly 700 (▲), the common function is unmarked (2,000 both);
    search finds the new frame, enter zooms into it, backspace goes back, escape returns to the text."""
    import asyncio

    from ktui.app_diff import DiffApp
    from ktui.widgets.diff_flame import DiffFlameGraph, DiffFlameView

    d = _diff(recordings["a"], recordings["b"])
    app = DiffApp(d)

    def boxes(graph):
        return {box.path: (box, graph._label(box)) for row in graph._rows for box in row}

    async def drive() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("g")
            graph = app.query_one(DiffFlameGraph)
            assert app.query_one(DiffFlameView).display and graph.has_focus
            await pilot.pause()
            lines = graph.render().plain.splitlines()
            assert lines[0] == "▲all: A 2,000 → B 2,700  +700 (+35.0%) grew"
            assert all(len(line) <= 80 for line in lines) and len(lines) <= 23
            shown = boxes(graph)
            (extra,) = [p for p in shown if p and p[-1] == "ktui_diff_extra"]
            (common,) = [p for p in shown if p and p[-1] == "ktui_diff_common"]
            assert shown[extra][1] == "+ktui_diff_extra" and graph.frame(extra).status == "new"
            assert shown[common][1] == "ktui_diff_common"  # within noise: no mark
            assert (graph.frame(common).a, graph.frame(common).b) == (2000, 2000)
            for i in range(1, len(extra)):  # every caller of the new frame grew by exactly its calls
                above = graph.frame(extra[:i])
                assert above.delta == 700 and shown[extra[:i]][1].startswith("▲"), extra[:i]
            assert lines[2 + len(extra)].count("+ktui_diff_") == 1  # drawn in its row
            # search: the new frame is selected, its exact counts in the header
            await pilot.press("s", *"diff_extra", "enter")
            assert graph.selected == extra and graph.matches == {extra}
            header = graph.render().plain.splitlines()
            assert header[0] == "+ktui_diff_extra: A 0 → B 700  +700 new"
            assert header[1] == "'diff_extra': 1 frames"
            await pilot.press("enter")
            assert graph.zoom == extra and graph._rows[0][0].path == extra and graph._rows[0][0].width == 80
            await pilot.press("backspace")
            assert graph.zoom == extra[:-1]
            await pilot.press("escape")  # out of the graph, back to the text
            assert not app.query_one(DiffFlameView).display and app.query_one("#diff-body").display
            await pilot.press("q")

    asyncio.run(drive())
    assert app.return_code == 0


@pytest.mark.live
def test_the_differential_flame_graph_in_the_real_ktui_at_80x24_without_colour(recordings):
    """As a person uses it: `ktui diff A B --view` in tmux at 80x24 with NO_COLOR, g, search, zoom, back.
    The change reads from the marks alone: the frame only B has starts with +, its callers with ▲."""
    import os
    import shutil
    import sys

    from helpers.tmux import Tmux

    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the end-to-end test (apt-get install tmux)")
    term = Tmux(f"ktui-diff-{os.getpid()}", wait_s=60.0, socket=f"ktui-diff-{os.getpid()}")
    ktui = Path(sys.executable).with_name("ktui")
    term.run("new-session", "-d", "-x", "80", "-y", "24", "-s", term.session, "-e", "TERM=xterm-256color",
             "env", "-u", "COLUMNS", "-u", "LINES", "NO_COLOR=1", str(ktui), "diff", str(recordings["a"]),
             str(recordings["b"]), "--view")
    try:
        term.wait(lambda s: "PROBE" in s, what="the diff's text")
        term.keys("g")
        text = term.wait(lambda s: s.startswith("▲all: A 2,000 → B 2,700  +700 (+35.0%) grew"), what="the flame graph")
        lines = text.splitlines()
        assert lines[1].startswith("+new  ▲grew  ▼shrank  -gone")
        assert any("▏+ktui_diff_" in line for line in lines) and any(line.startswith("ktui_diff_common") for line in lines)
        assert any(line.startswith("▲main ") for line in lines)
        term.keys("s")  # typed straight on, as a person does: the box takes every key after s
        term.keys("diff_extra", literal=True)
        term.wait(lambda s: "diff_extra" in s.splitlines()[-3], what="the typed search")
        term.keys("Enter")
        term.wait(lambda s: s.startswith("+ktui_diff_extra: A 0 → B 700  +700 new"), what="the new frame selected")
        term.keys("Enter")
        text = term.wait(lambda s: "zoomed: " in s, what="the zoom")
        assert text.splitlines()[2].startswith("+ktui_diff_extra ")  # across the whole width
        term.keys("BSpace")
        term.wait(lambda s: "zoomed: " in s and "> ktui_diff_extra" not in s.splitlines()[1], what="one level out")
        term.keys("Escape")
        term.wait(lambda s: "PROBE" in s, what="the text again")
        term.keys("q")
        term.wait(lambda s: "PROBE" not in s, timeout=10, what="ktui gone")
    finally:
        term.run("kill-server", check=False)
