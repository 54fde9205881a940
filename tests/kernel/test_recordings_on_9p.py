"""Recordings anywhere: `ktui record` onto the VM's 9p share (the run directory that
scripts/test-kernel.sh shares with --rwdir), then read back from there without writing.

9p has no coherent shared memory, so SQLite's WAL index (-shm) cannot live there: this
failed with "disk I/O error" before the writer learned to keep the index in its own
memory on such filesystems (ktui/recording/filesystems.py)."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

N = 3000
SPEC = "tracepoint:syscalls:sys_enter_getppid"
CALLS = f"import os\nfor _ in range({N}): os.getppid()"


@pytest.fixture
def share(tmp_path) -> Path:
    from ktui.recording.filesystems import mount_type, wal_can_share_memory

    root = os.environ.get("KTUI_VM_SHARE")
    assert root, "guest.sh exports KTUI_VM_SHARE (the shared run directory)"
    assert mount_type(root) == "9p" and not wal_can_share_memory(root), Path("/proc/self/mountinfo").read_text()
    d = Path(root) / f"recordings-{os.getpid()}-{tmp_path.name}"
    d.mkdir()
    return d


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_record_onto_the_9p_share_then_replay_it_read_only(ktui_bin, share):
    from ktui.recording.reader import RecordingReader

    out = share / "calls.ktrec"
    result = subprocess.run([ktui_bin, "record", SPEC, "-o", str(out), "--", sys.executable, "-c", CALLS],
                            capture_output=True, text=True, timeout=1200)  # BCC compiles slowly in the emulated VM
    assert result.returncode == 0, result.stderr
    assert "complete" in result.stderr and "disk I/O error" not in result.stderr
    assert sorted(p.name for p in share.iterdir()) == ["calls.ktrec"]  # no -wal, -shm or -journal left
    before = _sha(out)
    with RecordingReader.open(out) as reader:
        assert reader.count() == N and reader.problems == [] and not reader.unfinished
        assert sum(reader.counters()[0].delivered) == N
    # Read-only on 9p: the file and its directory made read-only, exported to elsewhere.
    os.chmod(out, 0o400)
    os.chmod(share, 0o500)
    try:
        jl = Path("/run") / f"ktui-9p-{os.getpid()}.jsonl"
        exported = subprocess.run([ktui_bin, "export", str(out), "-f", "jsonl", "-o", str(jl)],
                                  capture_output=True, text=True, timeout=120)
        assert exported.returncode == 0 and exported.stderr == "", exported.stderr
        assert len(jl.read_text().splitlines()) == N
        jl.unlink()
    finally:
        os.chmod(share, 0o700)
    assert _sha(out) == before and sorted(p.name for p in share.iterdir()) == ["calls.ktrec"]


def test_a_recording_killed_on_the_9p_share_opens_as_unfinished(ktui_bin, share):
    from ktui.recording.reader import RecordingReader

    out = share / "killed.ktrec"
    loop = "import os, time\nend = time.time() + 60\nwhile time.time() < end:\n    os.getppid(); time.sleep(0.001)"
    proc = subprocess.Popen([ktui_bin, "record", SPEC, "-o", str(out), "--", sys.executable, "-c", loop],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress: list[str] = []
    reader_thread: threading.Thread | None = None
    try:
        end = time.monotonic() + 1200
        while not out.exists() and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.1)
        assert out.exists(), proc.communicate()[1] if proc.poll() is not None else "never created"
        # Killed once events are flowing (its progress line counts some) and two counter periods later
        # (chunks every half second, counters every second): the emulated guest, busy beside the host
        # suite, can take seconds to start the child, and a fixed wait then killed it before any event.
        reader_thread = threading.Thread(target=lambda: progress.extend(iter(proc.stderr.readline, "")), daemon=True)
        reader_thread.start()
        while time.monotonic() < end and proc.poll() is None and not any(
                re.match(r"[1-9][0-9,]* events", line) for line in list(progress)):
            time.sleep(0.1)
        assert proc.poll() is None, "".join(progress)
        time.sleep(2.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        if reader_thread is not None:
            reader_thread.join(timeout=30)  # it reads stderr to its end; communicate() reads what is left
        proc.communicate()
    names = sorted(p.name for p in share.iterdir())
    before = {n: _sha(share / n) for n in names}
    with RecordingReader.open(out) as reader:
        assert reader.unfinished and reader.problems == []
        assert reader.count() > 0 and sum(reader.counters()[0].delivered) > 0
        child = reader.meta.get("target_pid")
    if isinstance(child, int) and child > 0:  # the traced command outlives a killed recorder
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert {p.name: _sha(p) for p in share.iterdir()} == before  # reading an unfinished one writes nothing there
