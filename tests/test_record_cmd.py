"""`ktui record`: exact recordings, every way of stopping leaves a complete file and nothing in the kernel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import UPROBE_SYMBOL, getppid_binary, uprobe_target_binary
from ktui.cli import main
from ktui.recording import RecordingReader

ROOT = Path(__file__).resolve().parents[1]
GETPPID = "tracepoint:syscalls:sys_enter_getppid"


def _ktui(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-W", "ignore", "-m", "ktui", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _bpftool(*args: str):
    out = subprocess.run(["bpftool", *args, "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def _wait_for(predicate, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _uprobe_events() -> str:
    from ktui.kernel import tracefs_path

    return Path(tracefs_path(), "uprobe_events").read_text()


# --- arguments and files, no kernel needed

def test_an_existing_output_file_is_refused(tmp_path, capsys):
    out = tmp_path / "r.ktrec"
    out.write_text("keep me")
    assert main(["record", GETPPID, "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_an_output_in_a_missing_directory_is_a_clear_error(tmp_path, capsys):
    assert main(["record", GETPPID, "-o", str(tmp_path / "no" / "r.ktrec")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_pid_and_command_together_are_refused(tmp_path, capsys):
    assert main(["record", GETPPID, "-o", str(tmp_path / "r"), "-p", "1", "--", "true"]) == 2
    assert "not both" in capsys.readouterr().err


def test_a_bad_spec_is_a_clear_error(tmp_path, capsys):
    assert main(["record", "nonsense:::", "-o", str(tmp_path / "r")]) != 0
    err = capsys.readouterr().err
    assert err.startswith("ktui: ") and "Traceback" not in err
    assert not (tmp_path / "r").exists()


# --- the real kernel

@pytest.mark.live
def test_recording_a_command_holds_exactly_its_calls(tmp_path, capsys):
    out = tmp_path / "r.ktrec"
    n = 50_000
    assert main(["record", GETPPID, "-o", str(out), "--", str(getppid_binary()), str(n)]) == 0
    assert os.stat(out).st_mode & 0o777 == 0o600
    err = capsys.readouterr().err
    assert f"{n:,} events" in err
    with RecordingReader.open(out) as rec:
        assert rec.count() == n
        totals = rec.counters()[0].totals()
        assert totals["hits"] == totals["delivered"] == n and totals["dropped"] == 0
        assert [s.status for s in rec.probe_states()] == ["attached"]
        pids = {int(p) for arr in rec.events() for p in set(arr["pid"].tolist())}
        assert len(pids) == 1


@pytest.mark.live
def test_duration_ends_the_recording(tmp_path):
    out = tmp_path / "r.ktrec"
    start = time.monotonic()
    assert main(["record", GETPPID, "-o", str(out), "--duration", "0.5", "-q"]) == 0
    assert time.monotonic() - start < 10
    with RecordingReader.open(out) as rec:
        assert 0 in rec.counters()


@pytest.mark.live
def test_a_pid_that_does_not_exist_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "r.ktrec"
    # A pid the kernel could hand out but that no process has (beyond PID_MAX_LIMIT is an option
    # error, tested in test_bounds_inputs).
    free = next(p for p in range(2**22, 1, -1) if not os.path.exists(f"/proc/{p}"))
    assert main(["record", GETPPID, "-o", str(out), "-p", str(free)]) == 2
    assert "no process with pid" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.live
def test_an_unwritable_output_is_a_clear_error_and_leaves_no_probe(tmp_path, capsys):
    assert main(["record", GETPPID, "-o", "/proc/ktui-cannot-write.ktrec"]) != 0
    err = capsys.readouterr().err
    assert "cannot" in err and "Traceback" not in err
    # The probe was attached before the file failed: it must be gone (other processes' may not be).
    assert not [p for p in _bpftool("perf", "show") if p["pid"] == os.getpid()]


@pytest.mark.live
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_with_a_complete_file_and_detaches(tmp_path, sig):
    out = tmp_path / "r.ktrec"
    proc = _ktui("record", GETPPID, "-o", str(out), "--duration", "60")
    try:
        assert _wait_for(lambda: any(p["pid"] == proc.pid for p in _bpftool("perf", "show")) or out.exists())
        assert _wait_for(out.exists)
        time.sleep(0.3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "interrupted" in err
    with RecordingReader.open(out) as rec:
        assert 0 in rec.counters()
        assert [s.status for s in rec.probe_states()] == ["attached"]
    assert not any(p["pid"] == proc.pid for p in _bpftool("perf", "show"))


@pytest.mark.live
def test_sigkill_leaves_nothing_in_uprobe_events_or_the_kernel(tmp_path):
    """A uprobe, a tracepoint and a sampling probe: all attached by fds the kernel closes with the process."""
    binary = str(uprobe_target_binary())
    out = tmp_path / "r.ktrec"
    assert binary not in _uprobe_events()
    proc = _ktui("record", f"uprobe:{binary}:{UPROBE_SYMBOL}", GETPPID, "profile:hz:49", "-o", str(out),
                 "--duration", "60")
    try:
        # bpftool lists tracepoint and uprobe attachments by pid (not sampling ones): wait for both.
        # Compiling three probes takes BCC seconds, many more on a loaded machine: wait while ktui
        # is alive (a ktui that died is reported with what it said), up to a generous bound.
        attached = _wait_for(lambda: proc.poll() is not None or {
            p.get("fd_type") for p in _bpftool("perf", "show") if p["pid"] == proc.pid} >= {"uprobe", "tracepoint"},
            timeout=180)
        assert proc.poll() is None, f"ktui record ended before attaching: {proc.communicate()[1]}"
        assert attached, "the uprobe and the tracepoint never attached"
        prog_ids = {p["prog_id"] for p in _bpftool("perf", "show") if p["pid"] == proc.pid}
        # Attached through the uprobe PMU (an fd), so nothing was written to uprobe_events.
        assert binary not in _uprobe_events()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.communicate()
    assert _wait_for(lambda: not ({p["id"] for p in _bpftool("prog", "show")} & prog_ids), 10)
    assert not any(p["pid"] == proc.pid for p in _bpftool("perf", "show"))
    assert binary not in _uprobe_events()


@pytest.mark.live
def test_a_full_disk_is_reported_and_what_was_written_stays_readable(tmp_path, capsys):
    disk = tmp_path / "small"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], check=True)
    try:
        out = disk / "r.ktrec"
        code = main(["record", GETPPID, "-o", str(out), "--", str(getppid_binary()), "3000000"])
        err = capsys.readouterr().err
        assert code != 0
        assert "Traceback" not in err and ("full" in err or "cannot" in err), err
        with RecordingReader.open(out) as rec:
            assert rec.count() > 0
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.live
def test_a_recorded_profile_keeps_its_stacks_symbolized_for_replay(tmp_path):
    from helpers import busy_loop_binary
    from ktui.engine.stacks import KernelSymbols

    out = tmp_path / "p.ktrec"
    assert main(["record", "profile:hz:199", "-o", str(out), "-q", "--", str(busy_loop_binary()), "1500"]) == 0
    names = set(KernelSymbols().names)
    with RecordingReader.open(out) as rec:
        events = [arr for arr in rec.events()]
        assert events and rec.count() > 10  # 199 Hz on a loop that may share a busy CPU
        kstack_ids = {int(k) for arr in events for k in arr["kstack"] if k >= 0}
        assert kstack_ids
        frames = [f for k in kstack_ids for f in rec.stack_frames(k)]
        assert frames and sum(f in names for f in frames) >= 0.9 * len(frames)
        stacks = rec.stacks()
        assert stacks and sum(s.count for s in stacks) <= rec.count()


@pytest.mark.live
def test_count_tables_are_kept_in_the_recording_meta(tmp_path):
    """The recording format has no table for COUNT results: the engine keeps the final ones as
    metadata (key_counts), exactly n for the traced child."""
    from ktui.events import KeyCounts
    from ktui.sources.live import LiveSource
    from ktui.kernel import kernel_identity
    from ktui.probes.model import Action, ActionKind, Probe, ProbeKind, TargetProcess
    from ktui.recording import RecordingWriter

    n = 3_000
    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid",
                  actions=[Action(ActionKind.COUNT, key=("pid",)), Action(ActionKind.COUNT)])
    source = LiveSource([probe], target=TargetProcess(command=[str(getppid_binary()), str(n)]))
    source.prepare()
    out = tmp_path / "counts.ktrec"
    rec = RecordingWriter.create(out, kernel_identity(), list(source.layouts.values()),
                                 {0: probe.to_dict()}, {})
    source.recorder = rec
    source.start(lambda update: None)
    try:
        assert source.finished.wait(30)
    finally:
        source.stop()
        rec.close()
    with RecordingReader.open(out) as reader:
        kept = reader.meta["key_counts"]
        totals = reader.counters()[0].totals()
        tables = reader.key_counts()
    assert kept == [{"probe_id": 0, "key_names": ["pid"], "rows": [[[source.target_pid], n]]},
                    {"probe_id": 0, "key_names": [], "rows": [[[], n]]}]
    # ...and replay hands them to the panes as the live engine did.
    assert tables == [KeyCounts(0, ("pid",), [((source.target_pid,), n)]), KeyCounts(0, (), [((), n)])]
    from ktui.sources.replay import ReplaySource

    replay = ReplaySource([out])
    try:
        assert replay.key_counts() == tables
    finally:
        replay.stop()
    assert totals["hits"] == n and totals["delivered"] == n and totals["dropped"] == 0
