"""Exports: JSON Lines (one event a line, exact values) and Perfetto's Chrome JSON (tracks, slices, counters)."""

from __future__ import annotations

import io
import json
import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from ktui.cli import main
from ktui.events import FieldLayout, ProbeLayout
from ktui.formats.ftrace import import_ftrace
from ktui.formats.jsonl import export_jsonl
from ktui.formats.perfetto import CPUS_PID, export_perfetto, pair_key
from ktui.kernel import KernelIdentity
from ktui.recording import RecordingReader, RecordingWriter

FIX = Path(__file__).parent / "fixtures" / "ftrace"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "mixed.ktrec"
    import_ftrace(FIX / "mixed.txt", out)
    return out


def test_jsonl_is_one_exact_event_per_line_in_time_order(mixed):
    reader = RecordingReader.open(mixed)
    buf = io.StringIO()
    n = export_jsonl(reader, buf)
    lines = buf.getvalue().splitlines()
    assert n == len(lines) == reader.count()
    rows = [json.loads(ln) for ln in lines]
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    for r in rows:
        layout = next(lay for lay in reader.layouts.values() if lay.name == r["probe"])
        assert list(r) == ["ts", "cpu", "pid", "tid", "comm", "probe"] + [f.name for f in layout.fields]
    # compare every sched_switch row with the recorded array
    sw_id = next(i for i, lay in reader.layouts.items() if lay.name == "sched_switch")
    arr = np.concatenate(list(reader.events(probe_ids=[sw_id])))
    got = [r for r in rows if r["probe"] == "sched_switch"]
    assert [r["next_pid"] for r in got] == arr["next_pid"].tolist()
    assert [r["prev_comm"] for r in got] == [c.decode() for c in arr["prev_comm"].tolist()]
    opens = [r for r in rows if r["probe"] == "sys_enter_openat"]
    assert all(re.fullmatch(r"0x[0-9a-f]+", r["filename"]) for r in opens)


def test_jsonl_pid_filter(mixed):
    reader = RecordingReader.open(mixed)
    every = np.concatenate([a[["pid"]] for a in reader.events()])
    pid = int(np.bincount(every["pid"]).argmax())
    buf = io.StringIO()
    n = export_jsonl(reader, buf, pid=pid)
    assert n == int(np.sum(every["pid"] == pid))
    assert {json.loads(ln)["pid"] for ln in buf.getvalue().splitlines()} == {pid}


def test_pair_keys():
    assert pair_key("kprobe:do_sys_openat2") == ("fn:do_sys_openat2", "entry", "do_sys_openat2")
    assert pair_key("kretprobe:do_sys_openat2") == ("fn:do_sys_openat2", "return", "do_sys_openat2")
    assert pair_key("uretprobe:/bin/bash:readline") == ("fn:/bin/bash:readline", "return", "readline")
    assert pair_key("tracepoint:syscalls:sys_enter_openat") == ("syscall:openat", "entry", "openat")
    assert pair_key("tracepoint:syscalls:sys_exit_openat") == ("syscall:openat", "return", "openat")
    assert pair_key("tracepoint:sched:sched_switch") is None


def _expected_slices(text: str) -> list[tuple[int, int, int]]:
    """(tid, enter ts ns, exit ts ns) of each openat, straight from the text."""
    pending, out = defaultdict(list), []
    for ln in text.splitlines():
        m = re.match(r"\s*.+?-(\d+)\s+.*?(\d+)\.(\d+): sys_openat(\(| ->)", ln)
        if not m:
            continue
        tid, ts = int(m[1]), int(m[2]) * 10**9 + int(m[3].ljust(9, "0"))
        if m[4] == "(":
            pending[tid].append(ts)
        elif pending[tid]:
            out.append((tid, pending[tid].pop(), ts))
    return sorted(out)


def test_perfetto_trace_has_cpu_tracks_slices_and_counters(mixed):
    reader = RecordingReader.open(mixed)
    buf = io.StringIO()
    stats = export_perfetto(reader, buf)
    trace = json.loads(buf.getvalue())
    events = trace["traceEvents"]
    instants = [e for e in events if e["ph"] == "i"]
    assert len(instants) == stats["instants"] == reader.count()
    assert all(e["pid"] == CPUS_PID and e["tid"] - CPUS_PID == e_cpu for e, e_cpu in
               zip(instants, [e["tid"] - CPUS_PID for e in instants]))
    slices = [e for e in events if e["ph"] == "X"]
    want = _expected_slices((FIX / "mixed.txt").read_text())
    # microseconds, the text's precision (same-time events are a few ns apart to keep their order)
    got = sorted((e["tid"], round(e["ts"]) * 1000, round(e["ts"] + e["dur"]) * 1000) for e in slices)
    assert got == want and stats["slices"] == len(want) > 0
    assert all(e["name"] == "openat" and "ret" in e["args"] and "dfd" in e["args"] for e in slices)
    counters = [e for e in events if e["ph"] == "C"]
    assert sum(sum(e["args"].values()) for e in counters) == reader.count()
    meta = [e for e in events if e["ph"] == "M"]
    cpu_names = {e["args"]["name"] for e in meta if e["name"] == "thread_name" and e["pid"] == CPUS_PID}
    assert cpu_names == {f"CPU {c}" for c in {e["tid"] - CPUS_PID for e in instants}}
    thread_names = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta
                    if e["name"] == "thread_name" and e["pid"] != CPUS_PID}
    assert all(thread_names[(e["pid"], e["tid"])] for e in slices)
    assert trace["otherData"]["probes"]["sched_switch"] == "tracepoint:sched:sched_switch"


def test_kprobe_pairs_become_nested_slices(tmp_path):
    out = tmp_path / "k.ktrec"
    import_ftrace(FIX / "kprobes_modern.txt", out)
    buf = io.StringIO()
    export_perfetto(RecordingReader.open(out), buf)
    slices = [e for e in json.loads(buf.getvalue())["traceEvents"] if e["ph"] == "X"]
    assert [(e["name"], e["args"]["ret"], e["args"]["filename"]) for e in slices] == [
        ("do_sys_openat2", 3, "/etc/ld.so.cache"), ("do_sys_openat2", -2, "/no such/file"),
        ("do_sys_openat2", -14, "(fault)")]
    assert [round(e["dur"] * 1000) for e in slices] == [3000, 30000, 2000]


def test_stacks_are_symbolized_in_exports(tmp_path):
    layout = ProbeLayout(0, "tick", "profile:hz:99", (FieldLayout("ip", "<u8", "symbol"),))
    path = tmp_path / "s.ktrec"
    w = RecordingWriter.create(path, KernelIdentity("r", "v", "m", "b"), [layout])
    arr = np.zeros(2, dtype=layout.dtype)
    arr["ts"] = [10, 20]
    arr["kstack"] = [7, -1]
    arr["ustack"] = -1
    arr["ip"] = [0xFFFFFFFF81000010, 0xFFFFFFFF81000100]
    w.append(0, arr)
    w.add_symbols(kernel={0xFFFFFFFF81000000: "do_sys_openat2", 0xFFFFFFFF81000100: "vfs_open"})
    w.add_stack_ids(kernel={7: [0xFFFFFFFF81000100, 0xFFFFFFFF81000010]})
    w.close()
    buf = io.StringIO()
    export_jsonl(RecordingReader.open(path), buf)
    rows = [json.loads(ln) for ln in buf.getvalue().splitlines()]
    assert rows[0]["ip"] == "do_sys_openat2+0x10" and rows[0]["kstack"] == ["vfs_open", "do_sys_openat2+0x10"]
    assert rows[1]["ip"] == "vfs_open" and "kstack" not in rows[1]


def test_cli_import_then_export(tmp_path, capsys):
    rec = tmp_path / "t.ktrec"
    # line 22 is not an event: named on stderr, the rest imported, and the exit status says so
    assert main(["import", str(FIX / "kprobes_modern.txt"), "-o", str(rec)]) == 4
    out, err = capsys.readouterr()
    assert "imported 9 event(s)" in out and "kprobes_modern.txt:22:" in err
    assert os.stat(rec).st_mode & 0o777 == 0o600
    assert main(["import", str(FIX / "kprobes_modern.txt"), "-o", str(rec)]) == 1  # exists
    assert "exists" in capsys.readouterr().err
    jl = tmp_path / "t.jsonl"
    assert main(["export", str(rec), "--format", "jsonl", "-o", str(jl)]) == 0
    assert len(jl.read_text().splitlines()) == 9 and os.stat(jl).st_mode & 0o777 == 0o600
    pf = tmp_path / "t.json"
    assert main(["export", str(FIX / "sched_syscalls.txt"), "--format", "perfetto", "-o", str(pf)]) == 0
    assert json.loads(pf.read_text())["traceEvents"]
    assert main(["export", str(rec), "--format", "jsonl", "-o", str(jl)]) == 1
    assert main(["export", str(rec), "--format", "jsonl", "-o", str(jl), "--force", "--pid", "0"]) == 0
    assert [json.loads(ln)["comm"] for ln in jl.read_text().splitlines()] == ["<idle>"]
    assert main(["export", str(tmp_path / "missing.ktrec"), "-f", "jsonl", "-o", str(tmp_path / "x")]) == 4
    assert "no such file" in capsys.readouterr().err
    assert sorted(os.listdir(FIX)) == sorted(p.name for p in FIX.iterdir())  # nothing written beside inputs


def test_cli_import_from_standard_input(tmp_path, capsys, monkeypatch):
    text = "\n".join(ln for ln in (FIX / "kprobes_modern.txt").read_text().splitlines() if not ln.startswith("#"))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    rec = tmp_path / "stdin.ktrec"
    assert main(["import", "-", "-o", str(rec)]) == 4  # line 10 is not an event line
    out, err = capsys.readouterr()
    assert "imported 9 event(s)" in out and "<stdin>:10: unknown event format" in err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"nothing here\n")))
    assert main(["import", "-", "-o", str(tmp_path / "x.ktrec")]) == 4
    assert capsys.readouterr().err.startswith("ktui: <stdin>: holds no ftrace event lines")
