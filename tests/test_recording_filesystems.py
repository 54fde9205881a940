"""Recordings on filesystems without shared memory (NFS, 9p...): the filesystem is told by
statfs, and there the writer keeps WAL's index in its own memory (no -shm file, ever).
The real 9p case runs in the VM: tests/kernel/test_recordings_on_9p.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ktui.kernel import KernelIdentity
from ktui.recording import RecordingReader, RecordingWriter, filesystems
from ktui.recording.synthetic import LAYOUTS, records

IDENT = KernelIdentity("6.1.0-test", "#1", "x86_64", "abc")


@pytest.mark.parametrize("path", ["/tmp", "/proc", "/sys", "/dev/shm"])
def test_filesystem_type_is_what_stat_f_says(path):
    shown = subprocess.run(["stat", "-f", "-c", "%t", path], capture_output=True, text=True, check=True).stdout
    assert filesystem_type_hex(path) == shown.strip()


def filesystem_type_hex(path: str) -> str:
    f_type = filesystems.filesystem_type(path)
    assert f_type is not None
    return f"{f_type:x}"


@pytest.mark.parametrize("path", ["/tmp", "/proc/self", "/sys/kernel", "/dev/shm", "/"])
def test_mount_type_is_what_findmnt_says(path):
    shown = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", path], capture_output=True, text=True,
                           check=True).stdout
    assert filesystems.mount_type(path) == shown.split()[-1]  # mounts stacked on one point: the top one


def test_a_9p_mount_is_known_by_the_mount_table_although_statfs_says_ext4(tmp_path):
    """Inside the VM the share's statfs f_type is the host's ext4; mountinfo says 9p."""
    info = tmp_path / "mountinfo"
    info.write_text("22 1 0:20 / / rw,relatime - ext4 /dev/vda1 rw\n"
                    "40 22 0:35 / /tmp/ktui-vm.x rw,relatime - 9p ktui rw,trans=virtio\n"
                    "41 22 0:36 / /mnt/with\\040space rw - nfs4 host:/e rw\n")
    assert filesystems.mount_type("/tmp/ktui-vm.x/a/new.ktrec", str(info)) == "9p"
    assert filesystems.mount_type("/tmp/ktui-vm.xy", str(info)) == "ext4"
    assert filesystems.mount_type("/mnt/with space/r.ktrec", str(info)) == "nfs4"


def test_unknown_paths_are_treated_as_without_shared_memory(tmp_path):
    assert filesystems.filesystem_type(tmp_path / "missing" / "x") is None
    assert not filesystems.wal_can_share_memory(tmp_path / "missing" / "x")
    assert filesystems.wal_can_share_memory(tmp_path)  # the test machine's /tmp is local
    assert filesystems.filesystem_name(0x01021997) == "9p" and filesystems.filesystem_name(0x6969) == "nfs"


def test_without_shared_memory_no_shm_file_is_ever_made_and_the_file_is_exact(tmp_path, monkeypatch):
    monkeypatch.setattr("ktui.recording.writer.wal_can_share_memory", lambda path: False)
    out = tmp_path / "r.ktrec"
    w = RecordingWriter.create(out, IDENT, LAYOUTS, chunk_events=500)
    w.append(0, records(LAYOUTS[0], 3000, seed=1))
    w.flush()
    assert Path(f"{out}-wal").exists() and not Path(f"{out}-shm").exists()
    w.append(1, records(LAYOUTS[1], 1000, seed=2))
    w.close()
    assert sorted(os.listdir(tmp_path)) == ["r.ktrec"]
    with RecordingReader.open(out) as r:
        assert r.count() == 4000 and r.problems == [] and not r.unfinished


def test_without_shared_memory_a_killed_writer_leaves_a_readable_unfinished_file(tmp_path):
    out = tmp_path / "k.ktrec"
    child = textwrap.dedent(f"""
        import os, signal
        import ktui.recording.writer as wr
        wr.wal_can_share_memory = lambda path: False
        from ktui.kernel import KernelIdentity
        from ktui.recording.synthetic import LAYOUTS, records
        w = wr.RecordingWriter.create({str(out)!r}, KernelIdentity("r", "v", "m", "b"), LAYOUTS, chunk_events=500)
        w.append(0, records(LAYOUTS[0], 2500, seed=1))
        w.flush()
        w.append(0, records(LAYOUTS[0], 100, t0=10**9, seed=2))  # buffered, never committed
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not Path(f"{out}-shm").exists() and Path(f"{out}-wal").exists()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with RecordingReader.open(out) as r:
        assert r.recovered and r.unfinished and r.problems == [] and r.count() == 2500
        assert any("unfinished" in w for w in r.warnings)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
