"""`ktui stream` on this kernel, read by the local side's decoder (no ssh here; tests/test_remote_hosts.py
runs it behind real sshds): exact counts, the clock answered on the records' clock, and the end of
stdin (what ssh passes on when the local ktui ends) detaching every probe."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import getppid_binary, prog_ids_of
from ktui.remote import protocol as P
from ktui.remote.hosts import HostLink
from ktui.remote.source import HostsSource

pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]

KTUI = [sys.executable, "-W", "ignore", "-m", "ktui"]
GETPPID = "tracepoint:syscalls:sys_enter_getppid"
ROOT = Path(__file__).resolve().parents[1]


def held_generator(n: int) -> subprocess.Popen:
    """A getppid child that waits for a line on stdin, then makes exactly n calls (same pid throughout)."""
    return subprocess.Popen(["sh", "-c", f'read _; exec "{getppid_binary()}" {n}'], stdin=subprocess.PIPE)


def kernel_prog_ids() -> set[int]:
    out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True, check=True).stdout
    return {p["id"] for p in json.loads(out or "[]")}


def test_stream_delivers_exact_counts_and_its_clock_matches_the_records(tmp_path):
    gen = held_generator(1777)
    link = HostLink("here", [*KTUI, "stream", "--filter", f"pid == {gen.pid}", "--", GETPPID])
    source = HostsSource([link], record_dir=str(tmp_path / "rec"))
    updates = []
    try:
        source.start(updates.append)
        assert link.status == "streaming", link.describe()
        before = time.monotonic_ns()
        gen.stdin.write(b"\n")
        gen.stdin.close()
        assert gen.wait(30) == 0
        after = time.monotonic_ns()
        time.sleep(0.5)
    finally:
        source.stop()
    events = [a for u in updates for a in u.events.values()]
    ts = [int(t) for a in events for t in a["ts"]]
    assert len(ts) == 1777
    assert {int(p) for a in events for p in a["pid"]} == {gen.pid}
    last = updates[-1]
    assert last.finished
    (counters,) = last.counters.values()
    assert counters.totals()["delivered"] == 1777 and counters.totals()["dropped"] == 0
    assert [s.name for s in last.probes] == ["here:sys_enter_getppid"]
    # Same machine, same clock: the estimated offset is 0 within the stated uncertainty, and
    # every merged timestamp lies within the generator's run, give or take that uncertainty.
    u = link.clock.uncertainty_ns
    assert link.clock.samples >= 8 and abs(link.clock.offset_ns) <= u
    assert before - u <= min(ts) and max(ts) <= after + u
    assert link.status == "ended"
    # The per-host recording holds the same events, on the host's clock, with its offset.
    from ktui.recording.reader import RecordingReader

    (path,) = source.recording_paths()
    assert path.name == "here.ktrec" and oct(path.stat().st_mode & 0o777) == "0o600"
    rec = RecordingReader.open(path)
    assert rec.host == "here" and rec.meta["clock_offset_uncertainty_ns"] == link.clock.uncertainty_ns
    assert rec.count() == 1777 and rec.counters()[0].totals()["delivered"] == 1777 and not rec.problems


def test_the_end_of_stdin_stops_the_engine_and_leaves_no_probe():
    proc = subprocess.Popen([*KTUI, "stream", "--", GETPPID], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    try:
        P.read_magic(proc.stdout)
        kinds = []
        while (fr := P.read_frame(proc.stdout)) is not None and fr.kind != P.HELLO:
            kinds.append(fr.kind)
        assert fr is not None, proc.stderr.read().decode()
        held = prog_ids_of(proc.pid)
        assert held and held <= kernel_prog_ids()
        proc.stdin.close()  # what ssh does when the local ktui is gone (quit, Ctrl-C, SIGKILL)
        rest = proc.stdout.read()
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert not held & kernel_prog_ids()
    import io

    f = io.BytesIO(rest)
    tail = [fr.kind for fr in iter(lambda: P.read_frame(f), None)]
    assert tail[-1] == P.END


def test_a_spec_that_cannot_be_traced_is_one_sentence_in_an_error_frame():
    proc = subprocess.run([*KTUI, "stream", "--", "tracepoint:nosuch:thing"], stdin=subprocess.PIPE,
                          capture_output=True, cwd=ROOT, timeout=120)
    f = __import__("io").BytesIO(proc.stdout)
    P.read_magic(f)
    frames = list(iter(lambda: P.read_frame(f), None))
    assert frames[-1].kind == P.ERROR and proc.returncode != 0
    sentence = P.decode_sentence(frames[-1].payload, "error")
    assert "nosuch" in sentence and "\n" not in sentence and "Traceback" not in proc.stderr.decode()


def test_stream_refuses_a_terminal():
    import pty
    import os

    master, slave = pty.openpty()
    try:
        proc = subprocess.run([*KTUI, "stream", GETPPID], stdout=slave, stderr=subprocess.PIPE, cwd=ROOT, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 2 and b"does not write to a terminal" in proc.stderr


def test_stacks_sampled_on_the_host_arrive_symbolized_and_are_recorded(tmp_path):
    from helpers import busy_loop_binary
    from ktui.recording.reader import RecordingReader

    busy = subprocess.Popen(["sh", "-c", f'read _; exec "{busy_loop_binary()}" 1500'], stdin=subprocess.PIPE)
    # Only the loop's samples: symbolizing every process's user stacks at the end takes long on a busy machine.
    link = HostLink("here", [*KTUI, "stream", "--filter", f"pid == {busy.pid}", "--", "profile:hz:99"])
    source = HostsSource([link], record_dir=str(tmp_path / "rec"))
    updates = []
    try:
        source.start(updates.append)
        busy.stdin.write(b"\n")
        busy.stdin.close()
        assert busy.wait(30) == 0
        time.sleep(1.0)  # the engine reads its stack map every 0.5 s
    finally:
        source.stop()
    (gid,) = source.layouts
    stacks = [s for s in updates[-1].stacks if s.kernel]
    assert stacks and {s.probe_id for s in stacks} == {gid}
    assert any("getppid" in f or "syscall" in f for s in stacks for f in s.kernel)
    (path,) = source.recording_paths()
    recorded = RecordingReader.open(path).stacks()
    assert sum(s.count for s in recorded) == sum(s.count for s in updates[-1].stacks)
