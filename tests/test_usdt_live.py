"""USDT markers and perf software/hardware events on the real kernel: exact counts,
strings decoded, semaphores raised only while traced (also after SIGKILL of ktui),
stacks and counts of perf events, recordings that carry them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import busy_loop_binary
from ktui.catalog.usdt import find_marker
from ktui.sources.live import LiveSource
from ktui.probes.model import Action, ActionKind
from ktui.probes.spec import parse_spec

pytestmark = pytest.mark.live

PYTHON = "/usr/bin/python3.11"
ENTRY = f"usdt:{PYTHON}:python:function__entry"
SCRIPT = Path(__file__).parent / "fixtures" / "usdt_calls.py"
needs_python = pytest.mark.skipif(not os.path.exists(PYTHON), reason="needs Debian's python3.11 with SDT markers")


class Collect:
    def __init__(self):
        self.updates = []

    def __call__(self, update) -> None:
        self.updates.append(update)

    def events(self, probe_id: int) -> np.ndarray:
        parts = [u.events[probe_id] for u in self.updates if probe_id in u.events]
        return np.concatenate(parts) if parts else np.empty(0)


class Caller:
    """python3.11 running tests/fixtures/usdt_calls.py: waits, calls target_fn and other_fn
    N times each, waits again, so the test can look at its memory at each step."""

    def __init__(self, n: int):
        self.proc = subprocess.Popen([PYTHON, str(SCRIPT), str(n)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline() == "ready\n"
        self.pid = self.proc.pid

    def step(self, expect: str) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == expect

    def semaphore(self) -> int:
        m = find_marker(PYTHON, "python", "function__entry")
        with open(f"/proc/{self.pid}/mem", "rb") as f:  # non-PIE: the note's address is the address
            f.seek(m.semaphore)
            return int.from_bytes(f.read(2), "little")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _wait_for(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@needs_python
def test_n_calls_give_exactly_n_events_with_names_as_strings_and_the_semaphore_only_while_traced():
    n = 321
    caller = Caller(n)
    try:
        assert caller.semaphore() == 0  # before: nobody traces it
        probe = parse_spec(ENTRY)[0]
        probe.filter = 'funcname == "target_fn"'
        sink = Collect()
        source = LiveSource([probe])
        source.start(sink)
        try:
            assert _wait_for(lambda: sink.updates and sink.updates[-1].probes[0].status == "attached")
            assert caller.semaphore() == 1  # during: the kernel raised it for our uprobe
            caller.step("done\n")
            time.sleep(0.3)
        finally:
            source.stop()
        assert caller.semaphore() == 0  # after: lowered again
        events = sink.events(0)
        mine = events[events["pid"] == caller.pid]
        assert len(mine) == n
        assert set(mine["funcname"].tolist()) == {b"target_fn"}
        assert set(mine["filename"].tolist()) == {str(SCRIPT).encode()}
        assert mine["lineno"].min() > 0
        assert mine["flags"].max() == 0  # no fetch faulted
        assert sink.updates[-1].probes[0].status == "attached"
    finally:
        caller.close()


@needs_python
def test_by_bpftrace_argument_numbers_and_a_count_by_function_name():
    n = 150
    caller = Caller(n)
    try:
        probe = parse_spec(ENTRY)[0]
        probe.filter = f"pid == {caller.pid}"
        probe.actions = [Action(ActionKind.COUNT, key=("arg1",))]  # arg1: funcname, as bpftrace numbers them
        sink = Collect()
        source = LiveSource([probe])
        source.start(sink)
        try:
            assert _wait_for(lambda: sink.updates and sink.updates[-1].probes[0].status == "attached")
            caller.step("done\n")
            time.sleep(0.5)
        finally:
            source.stop()
        rows = {k[0]: c for counts in sink.updates[-1].counts for k, c in counts.rows}
        assert rows.get(b"target_fn", rows.get("target_fn")) == n
        assert rows.get(b"other_fn", rows.get("other_fn")) == n
    finally:
        caller.close()


@needs_python
def test_the_kernel_lowers_the_semaphore_after_sigkill_of_ktui(tmp_path):
    caller = Caller(10)
    ktui = None
    try:
        out = tmp_path / "usdt.ktrec"
        ktui = subprocess.Popen([sys.executable, "-m", "ktui", "record", ENTRY, "-o", str(out), "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert _wait_for(lambda: caller.semaphore() == 1, 60), ktui.stderr.read() if ktui.poll() is not None else ""
        ktui.send_signal(signal.SIGKILL)
        ktui.wait()
        assert _wait_for(lambda: caller.semaphore() == 0, 10)
    finally:
        if ktui is not None and ktui.poll() is None:
            ktui.kill()
            ktui.wait()
        caller.close()


@needs_python
def test_usdt_events_recorded_and_replayed(tmp_path):
    n = 40
    caller = Caller(n)
    try:
        out = tmp_path / "usdt.ktrec"
        ktui = subprocess.Popen([sys.executable, "-m", "ktui", "record", ENTRY, "-o", str(out),
                                 "-p", str(caller.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(ktui.stderr), daemon=True)  # type: ignore[arg-type]
        reader.start()
        assert _wait_for(lambda: caller.semaphore() == 1, 60)
        # The semaphore rises when the uprobe is opened, before the program is attached and switched on;
        # the first progress line comes once the probe runs.
        assert _wait_for(lambda: any(" events, " in line for line in lines), 60), lines
        caller.step("done\n")
        time.sleep(0.5)
        ktui.send_signal(signal.SIGINT)
        assert ktui.wait(30) == 0, lines
        reader.join(10)
    finally:
        caller.close()
    # Replay reads it through the common layout: the export (same reader, no root) shows the strings.
    jsonl = tmp_path / "usdt.jsonl"
    exp = subprocess.run([sys.executable, "-m", "ktui", "export", str(out), "--format", "jsonl", "-o", str(jsonl)],
                         capture_output=True, text=True, timeout=120)
    assert exp.returncode == 0, exp.stderr
    import json

    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    events = [r for r in rows if r.get("pid") == caller.pid]
    assert events and {r["probe"] for r in events} == {"function__entry"}
    names = [r["funcname"] for r in events]
    assert names.count("target_fn") == n and names.count("other_fn") == n, events[:3]
    assert {r["filename"] for r in events if r["funcname"] == "target_fn"} == {str(SCRIPT)}


def test_page_faults_of_a_child_are_at_least_the_pages_it_touches():
    pages = 3000
    probe = parse_spec("software:page-faults:1")[0]
    sink = Collect()
    source = LiveSource([probe])
    source.start(sink)
    try:
        assert _wait_for(lambda: sink.updates and sink.updates[-1].probes[0].status == "attached")
        child = subprocess.Popen([sys.executable, "-c", (
            "import mmap, sys\n"
            f"m = mmap.mmap(-1, {pages} * 4096)\n"
            f"for i in range({pages}):\n"
            "    m[i * 4096] = 1\n")])
        child.wait(30)
        time.sleep(0.3)
    finally:
        source.stop()
    events = sink.events(0)
    assert int((events["pid"] == child.pid).sum()) >= pages
    assert sink.updates[-1].probes[0].spec == "software:page-faults:1"


def test_page_faults_counted_per_cpu_and_by_pid():
    pages = 2000
    probe = parse_spec("s:faults:1")[0]
    probe.actions = [Action(ActionKind.COUNT, key=("pid",)), Action(ActionKind.COUNT, key=("cpu",))]
    sink = Collect()
    source = LiveSource([probe])
    source.start(sink)
    try:
        assert _wait_for(lambda: sink.updates and sink.updates[-1].probes[0].status == "attached")
        child = subprocess.Popen([sys.executable, "-c", (
            "import mmap\n"
            f"m = mmap.mmap(-1, {pages} * 4096)\n"
            f"for i in range({pages}):\n"
            "    m[i * 4096] = 1\n")])
        child.wait(30)
        time.sleep(0.5)
    finally:
        source.stop()
    last = sink.updates[-1]
    by_pid = {k[0]: c for counts in last.counts if counts.key_names == ("pid",) for k, c in counts.rows}
    assert by_pid.get(child.pid, 0) >= pages
    counters = last.counters[0]
    assert sum(counters.hits) >= pages and len(counters.hits) == os.cpu_count()


def test_cpu_clock_sampling_gives_kernel_stacks_that_resolve():
    from ktui.engine.stacks import KernelSymbols

    sink = Collect()
    source = LiveSource(parse_spec("software:cpu-clock:1000000"))
    source.start(sink)
    try:
        subprocess.run([str(busy_loop_binary()), "1500"], check=True)
    finally:
        source.stop()
    stacks = [s for s in sink.updates[-1].stacks if s.kernel]
    assert stacks, "no kernel stacks sampled while a syscall loop ran"
    names = set(KernelSymbols().names)
    frames = [f for s in stacks for f in s.kernel]
    known = [f for f in frames if f in names]
    assert len(known) >= 0.9 * len(frames), frames[:20]
    assert any("getppid" in f or "syscall" in f for f in frames)


def test_a_hardware_event_without_a_pmu_is_one_clear_sentence():
    from ktui.perfopen import hardware_event_status

    ok, why = hardware_event_status(3)
    out = subprocess.run([sys.executable, "-m", "ktui", "record", "hardware:cache-misses", "-o", "/tmp/ktui-usdt-never",
                          "-d", "1", "-q"], capture_output=True, text=True, timeout=120)
    if ok:
        pytest.skip("this machine's PMU samples cache misses")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "hardware:cache-misses:1000000 cannot be sampled on this machine" in out.stderr
    assert why in out.stderr
    assert not os.path.exists("/tmp/ktui-usdt-never")


def test_doctor_says_which_hardware_events_this_pmu_offers_and_why():
    import json

    from ktui.perfopen import CPU_PMU, hardware_event_status
    from ktui.probes.perf_events import HARDWARE

    out = subprocess.run([sys.executable, "-m", "ktui", "doctor", "--json"], capture_output=True, text=True, timeout=300)
    check = json.loads(out.stdout)["hardware_events"]
    offered = [ev.name for ev in HARDWARE if hardware_event_status(ev.config)[0]]
    assert check["ok"] is bool(offered)
    assert check["value"] == ",".join(offered)
    assert len(check["evidence"]) == 1 + len(HARDWARE)
    if not os.path.isdir(CPU_PMU):  # this VM: no PMU, and doctor says so
        assert not offered
        assert "no hardware PMU is exposed" in check["why"] and "virtual machine" in check["why"]
