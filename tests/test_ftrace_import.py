"""ftrace text import: real captures from this machine, the kernel docs' kprobe format, bad lines."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ktui.errors import FileFormatError, KtuiError
from ktui.formats.ftrace import ParsedLine, import_ftrace, looks_like_ftrace, parse_line, split_fields
from ktui.recording import RecordingReader
from ktui.sources.replay import ReplaySource

FIX = Path(__file__).parent / "fixtures" / "ftrace"
REAL = ["sched_syscalls.txt", "sched_syscalls_noirq.txt", "sched_syscalls_tgid.txt", "mixed.txt"]


def _import(tmp_path, name):
    out = tmp_path / (Path(name).stem + ".ktrec")
    report = import_ftrace(FIX / name, out)
    return report, RecordingReader.open(out)


def _by_name(reader):
    out = {}
    for arr in reader.events():
        name = reader.layouts[int(arr["probe"][0])].name
        out[name] = np.concatenate([out[name], arr]) if name in out else arr
    return out


@pytest.mark.parametrize("name", REAL)
def test_real_captures_import_every_line(tmp_path, name):
    text = (FIX / name).read_text()
    event_lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    report, reader = _import(tmp_path, name)
    assert report.problem_count == 0 and report.problem_lines() == []
    assert report.events == len(event_lines) == reader.count()
    assert report.per_event["sched_switch"] == text.count(" sched_switch: ")
    assert report.per_event["sys_enter_openat"] == len(re.findall(r": sys_openat\(", text))
    assert report.per_event["sys_exit_openat"] == text.count(": sys_openat -> ")
    specs = {lay.name: lay.spec for lay in reader.layouts.values()}
    assert specs["sched_switch"] == "tracepoint:sched:sched_switch"
    assert specs["sys_enter_openat"] == "tracepoint:syscalls:sys_enter_openat"
    # per-CPU counters add up to what was imported
    assert sum(sum(c.delivered) for c in reader.counters().values()) == report.events


@pytest.mark.parametrize("name", REAL)
def test_real_values_survive_exactly(tmp_path, name):
    text = (FIX / name).read_text()
    _, reader = _import(tmp_path, name)
    ev = _by_name(reader)
    sw = ev["sched_switch"]
    lines = [ln for ln in text.splitlines() if " sched_switch: " in ln]
    want_next = [int(re.search(r"next_pid=(\d+)", ln)[1]) for ln in lines]
    want_prev_comm = [re.search(r"prev_comm=(.*?) prev_pid=", ln)[1].encode() for ln in lines]
    want_ts = [round(float(re.search(r" (\d+\.\d+): sched_switch", ln)[1]) * 1e6) * 1000 for ln in lines]
    order = np.argsort(want_ts, kind="stable")
    assert sw["next_pid"].tolist() == [want_next[i] for i in order]
    assert sw["prev_comm"].tolist() == [want_prev_comm[i] for i in order]
    # exact to the printed microsecond; same-time events sit a few ns apart to keep their text order
    assert [t // 1000 * 1000 for t in sw["ts"].tolist()] == [want_ts[i] for i in order]
    assert all(0 <= t % 1000 < 10 for t in sw["ts"].tolist())
    ret = ev["sys_exit_openat"]["ret"]
    want_ret = sorted(int(x, 16) if int(x, 16) < 2**63 else int(x, 16) - 2**64
                      for x in re.findall(r": sys_openat -> (0x[0-9a-f]+)", text))
    assert sorted(ret.tolist()) == want_ret
    enter = ev["sys_enter_openat"]
    assert set(enter["dfd"].tolist()) <= {0xFFFFFF9C} | set(range(0, 1024))
    assert reader.layouts[int(enter["probe"][0])].fields[0].display == "x"


def test_events_printed_at_the_same_time_keep_their_text_order(tmp_path):
    _, reader = _import(tmp_path, "mixed.txt")
    ev = _by_name(reader)
    # mixed.txt lines 98-99: "sys_openat -> 0xfff...fe" then "sys_openat(" both at 3522.793044
    exit_ts = [t for t in ev["sys_exit_openat"]["ts"].tolist() if t // 1000 == 3522793044]
    enter_ts = [t for t in ev["sys_enter_openat"]["ts"].tolist() if t // 1000 == 3522793044]
    assert len(exit_ts) == len(enter_ts) == 1 and exit_ts[0] < enter_ts[0]


def test_comm_with_spaces_and_dashes_and_tgid_column(tmp_path):
    _, reader = _import(tmp_path, "sched_syscalls_tgid.txt")
    ev = _by_name(reader)
    every = np.concatenate([a[["comm", "pid", "tid"]] for a in ev.values()])
    mine = every[every["comm"] == b"my prog-1"]
    assert len(mine) > 0
    line = next(ln for ln in (FIX / "sched_syscalls_tgid.txt").read_text().splitlines() if "my prog-1-" in ln)
    m = re.match(r"\s*my prog-1-(\d+)\s+\(\s*(\d+)\)", line)
    assert (int(m[1]), int(m[2])) in set(zip(mine["tid"].tolist(), mine["pid"].tolist()))


def test_parse_line_shapes():
    p = parse_line("       my prog-1-14664   (  14664) [000] d..2.  3522.746662: sched_switch: prev_comm=my prog-1 "
                   "prev_pid=14664 prev_prio=120 prev_state=R ==> next_comm=kworker/u8:0 next_pid=12 next_prio=120")
    assert isinstance(p, ParsedLine)
    assert (p.comm, p.tid, p.tgid, p.cpu, p.ts) == ("my prog-1", 14664, 14664, 0, 3522_746662000)
    assert p.key == ("tracepoint", "sched_switch")
    assert dict(p.fields)["prev_comm"] == "my prog-1" and dict(p.fields)["next_comm"] == "kworker/u8:0"
    p = parse_line("bash-13373   [001] .....  3500.226583: sys_openat(dfd: 0xffffff9c, filename: 0x55e840151490, "
                   "flags: 0x441, mode: 0x1b6)")
    assert p.key == ("syscall_enter", "sys_enter_openat") and p.target == "syscalls:sys_enter_openat"
    assert p.fields == [("dfd", "0xffffff9c"), ("filename", "0x55e840151490"), ("flags", "0x441"), ("mode", "0x1b6")]
    p = parse_line("bash-13373   [001] .....  3500.226728: sys_openat -> 0xfffffffffffffffe")
    assert p.key == ("syscall_exit", "sys_exit_openat") and p.fields == [("ret", "-2")]
    p = parse_line("bash-1447    [001] .....  1038282.286878: myretprobe: (__x64_sys_openat+0x55/0x80 <- "
                   "do_sys_openat2) ret=-2")
    assert p.key == ("kretprobe", "myretprobe") and p.target == "do_sys_openat2"
    assert p.fields == [("caller", "__x64_sys_openat+0x55/0x80"), ("ret", "-2")]
    p = parse_line("<idle>-0 [000] d.s2. 1038282.300001: p_tcp_select_initial_window_0: "
                   "(tcp_select_initial_window+0x0/0xf0) sk=0xffff8880051b9a00 space=65483 mss=65495")
    assert p.key == ("kprobe", "p_tcp_select_initial_window_0") and p.target == "tcp_select_initial_window"
    assert p.comm == "<idle>" and p.tid == 0
    assert "not an event line" in parse_line("hello world")
    assert "unknown event format" in parse_line("bash-1 [000] ..... 1.000001: this line is broken")


def test_split_fields_quoted_and_spaced_values():
    assert split_fields('dfd=0xffffff9c filename="/no such/file" flags=0') == (
        [("dfd", "0xffffff9c"), ("filename", "/no such/file"), ("flags", "0")], "")
    assert split_fields("work struct 00000: function foo") == ([], "work struct 00000: function foo")


def test_kprobe_events_in_todays_format(tmp_path):
    report, reader = _import(tmp_path, "kprobes_modern.txt")
    ev = _by_name(reader)
    assert report.per_event == {"myprobe": 3, "myretprobe": 3, "p_tcp_select_initial_window_0": 1,
                                "r_do_sys_openat2_0": 1, "function": 1}
    assert ev["myprobe"]["filename"].tolist() == [b"/etc/ld.so.cache", b"/no such/file", b"(fault)"]
    assert ev["myprobe"]["dfd"].tolist() == [0xFFFFFF9C, 0xFFFFFF9C, 3]
    assert ev["myretprobe"]["ret"].tolist() == [3, -2, -14]
    assert ev["r_do_sys_openat2_0"]["arg1"].tolist() == [2**64 - 2]
    assert ev["r_do_sys_openat2_0"]["comm"].tolist() == [b"Web Content"]
    assert ev["p_tcp_select_initial_window_0"][["sk", "space", "mss"]].tolist() == [(0xFFFF8880051B9A00, 65483, 65495)]
    specs = {lay.name: lay.spec for lay in reader.layouts.values()}
    assert specs["myprobe"] == "kprobe:do_sys_openat2" and specs["myretprobe"] == "kretprobe:do_sys_openat2"
    assert ev["function"][["function", "parent"]].tolist() == [(b"do_sys_openat2", b"__x64_sys_openat")]
    # the broken line is named with its number, the loss lines are reported, the rest imported
    problems = report.problem_lines()
    assert problems[0].startswith(f"{FIX / 'kprobes_modern.txt'}:22: unknown event format")
    assert any("lost 3 event(s)" in p and "CPU 1: 3" in p for p in problems)
    assert any("3 older event(s) were overwritten" in p for p in problems)


def test_kprobe_events_in_the_kernel_docs_legacy_format(tmp_path):
    _, reader = _import(tmp_path, "kprobes_docs.txt")
    ev = _by_name(reader)
    assert ev["myprobe"][["dfd", "filename", "ev_flags", "mode"]].tolist() == [
        (3, 0x7FFFD1EC4440, 0x8000, 0), (0xFFFFFF9C, 0x40413C, 0x8000, 0x1B6)]
    assert ev["myretprobe"]["retval"].tolist() == [0xFFFFFFFFFFFFFFFE, 3]
    assert ev["myretprobe"]["comm"].tolist() == [b"<...>", b"<...>"]


def test_trace_pipe_text_without_header(tmp_path):
    body = "\n".join(ln for ln in (FIX / "sched_syscalls.txt").read_text().splitlines() if not ln.startswith("#"))
    pipe = tmp_path / "pipe.txt"
    pipe.write_text(body + "\n")
    assert looks_like_ftrace(pipe)
    report = import_ftrace(pipe, tmp_path / "pipe.ktrec")
    assert report.events == len(body.splitlines()) and report.problem_count == 0


def test_not_ftrace_and_bad_outputs(tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\nworld\n")
    assert not looks_like_ftrace(junk)
    with pytest.raises(FileFormatError, match="no ftrace event lines") as err:
        import_ftrace(junk, tmp_path / "j.ktrec")
    assert "junk.txt" in str(err.value)
    assert not (tmp_path / "j.ktrec").exists()
    with pytest.raises(KtuiError, match="overwrite the text"):
        import_ftrace(junk, junk)
    out = tmp_path / "exists.ktrec"
    out.write_bytes(b"mine")
    with pytest.raises(KtuiError, match="exists"):
        import_ftrace(FIX / "kprobes_docs.txt", out)
    assert out.read_bytes() == b"mine"
    with pytest.raises(FileFormatError, match="no such file"):
        import_ftrace(tmp_path / "none.txt", tmp_path / "n.ktrec")


def test_replay_opens_ftrace_text_directly_and_writes_nothing_next_to_it(tmp_path):
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    shutil.copy(FIX / "mixed.txt", src_dir / "mixed.txt")
    before = sorted(os.listdir(src_dir))
    replay = ReplaySource([src_dir / "mixed.txt"])
    workdir = replay._workdir
    got = []
    replay.start(got.append)
    replay.set_speed(None)
    replay.play()
    deadline = time.monotonic() + 10
    while not (got and got[-1].finished) and time.monotonic() < deadline:
        time.sleep(0.02)
    replay.stop()
    total = sum(len(a) for u in got for a in u.events.values())
    text = (FIX / "mixed.txt").read_text()
    assert total == len([ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")])
    assert sorted(os.listdir(src_dir)) == before
    assert not os.path.exists(workdir)


LINES = [ln for ln in (FIX / "mixed.txt").read_text().splitlines()[12:40]] + \
        [ln for ln in (FIX / "kprobes_modern.txt").read_text().splitlines()]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200),
                 st.builds(lambda ln, i, c: ln[:i] + c + ln[i:], st.sampled_from(LINES), st.integers(0, 200),
                           st.text(max_size=5)),
                 st.builds(lambda ln, i: ln[:i], st.sampled_from(LINES), st.integers(0, 200))))
def test_any_line_parses_or_says_why(line):
    result = parse_line(line)
    assert isinstance(result, (ParsedLine, str))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(LINES), st.text(max_size=80),
                          st.builds(lambda ln, i, c: ln[:i] + c + ln[i:], st.sampled_from(LINES),
                                    st.integers(0, 200), st.text(max_size=5))), max_size=30))
def test_any_text_imports_or_is_a_ktui_error(tmp_path_factory, lines):
    d = tmp_path_factory.mktemp("fuzz")
    src = d / "t.txt"
    src.write_text("\n".join(lines), encoding="utf-8", errors="surrogateescape")
    try:
        report = import_ftrace(src, d / "t.ktrec")
    except KtuiError:
        return
    r = RecordingReader.open(d / "t.ktrec")
    assert r.count() == report.events
    r.close()


@pytest.mark.live
def test_live_capture_of_n_calls_imports_n_events(tmp_path):
    """This machine's own tracefs: exactly N getppid calls traced give exactly N imported events."""
    import ctypes

    from ktui.kernel import tracefs_path

    tracefs = tracefs_path()
    assert tracefs is not None
    inst = Path(tracefs) / "instances" / f"ktui-test-{os.getpid()}"
    inst.mkdir()
    n = 1234
    try:
        (inst / "set_event_pid").write_text(str(os.getpid()))
        (inst / "events" / "syscalls" / "sys_enter_getppid" / "enable").write_text("1")
        (inst / "events" / "syscalls" / "sys_exit_getppid" / "enable").write_text("1")
        libc = ctypes.CDLL(None, use_errno=True)
        (inst / "tracing_on").write_text("1")
        for _ in range(n):
            libc.syscall(110)  # SYS_getppid on x86_64, straight to the kernel
        (inst / "tracing_on").write_text("0")
        text = (inst / "trace").read_text()
    finally:
        (inst / "tracing_on").write_text("0")
        (inst / "set_event").write_text("")
        inst.rmdir()
    src = tmp_path / "live.txt"
    src.write_text(text)
    report = import_ftrace(src, tmp_path / "live.ktrec")
    assert report.problem_count == 0
    assert report.per_event == {"sys_enter_getppid": n, "sys_exit_getppid": n}
    reader = RecordingReader.open(tmp_path / "live.ktrec")
    ev = _by_name(reader)
    assert set(ev["sys_exit_getppid"]["ret"].tolist()) == {os.getppid()}
    assert set(ev["sys_enter_getppid"]["pid"].tolist()) == {os.getpid()}


def test_free_text_events_keep_their_text(tmp_path):
    """trace_marker writes and events with their own print format (real capture from this machine)."""
    report, reader = _import(tmp_path, "markers_workqueue.txt")
    assert report.problem_count == 0
    ev = _by_name(reader)
    marks = ev["tracing_mark_write"]
    assert marks["text"].tolist() == [b"hello from ktui tests", b""]
    assert marks[["x", "y"]].tolist()[1] == (1, b"two words")
    wq = ev["workqueue_execute_start"]
    assert len(wq) == 6
    assert wq["text"].tolist()[0] == b"work struct 000000001487e6b3: function wb_update_bandwidth_workfn"
    assert wq["comm"].tolist()[0] == b"kworker/u8:2"
