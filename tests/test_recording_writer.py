"""Writing recordings: exact round trips, 0600 files, no overwrite, crash safety, disk full."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from ktui.errors import KtuiError
from ktui.events import Histogram, ProbeCounters, ProbeState, StackTrace
from ktui.kernel import KernelIdentity
from ktui.recording import RecordingReader, RecordingWriter
from ktui.recording.synthetic import LAYOUTS, records

IDENT = KernelIdentity("6.1.0-test", "#1 SMP", "x86_64", "abc123")
PROBE_DICTS = [{"kind": "tracepoint", "target": "syscalls:sys_enter_getppid", "name": "sys_enter_getppid"},
               {"kind": "tracepoint", "target": "syscalls:sys_exit_openat", "name": "sys_exit_openat"}]


def _write(path, n0=5000, n1=3000, **kw):
    w = RecordingWriter.create(path, IDENT, LAYOUTS, PROBE_DICTS, {"command": "test"}, **kw)
    a0 = records(LAYOUTS[0], n0, seed=1)
    a1 = records(LAYOUTS[1], n1, t0=1_000_050, seed=2)
    for part in np.array_split(a0, 7):
        w.append(0, part)
    w.append(1, a1)
    return w, a0, a1


def test_round_trip_is_exact(tmp_path):
    path = tmp_path / "r.ktrec"
    w, a0, a1 = _write(path, chunk_events=1000)
    w.set_counters({0: ProbeCounters([3000, 2100], [2900, 2100], [100, 0], [0, 0], 0),
                    1: ProbeCounters([3000], [3000], [0], [0], 2)})
    w.set_probe_states([ProbeState(1, "sys_exit_openat", "x", "failed", "it broke")])
    w.add_stacks([StackTrace(0, ("a", "b"), (), 5)])
    w.add_stacks([StackTrace(0, ("a", "b"), (), 2), StackTrace(1, (), ("main",), 1)])
    w.set_histograms([Histogram(1, "ret", "log2", [(0, 1, 4), (1, 2, 9)])])
    w.add_symbols(kernel={0xFFFFFFFF81000000: "do_sys_openat2", 0xFFFFFFFF81000100: "vfs_open"},
                  user={("/bin/true", 0x1000): "main", (1234, 0x2000): "worker"})
    w.add_stack_ids(kernel={7: [0xFFFFFFFF81000010, 0xFFFFFFFF81000100]})
    w.close()
    assert w.events_written == 8000

    with RecordingReader.open(path) as r:
        assert r.identity == IDENT
        assert set(r.layouts) == {0, 1} and r.layouts[1] == LAYOUTS[1]
        assert r.probes[1]["target"] == "syscalls:sys_exit_openat"
        assert r.meta["command"] == "test" and r.meta["end_ns"] >= r.meta["start_ns"]
        assert r.count() == 8000
        got0 = np.concatenate(list(r.events(probe_ids=[0])))
        got1 = np.concatenate(list(r.events(probe_ids=[1])))
        assert got0.tobytes() == a0.tobytes()
        assert got1.tobytes() == a1.tobytes()
        assert r.time_range() == (int(a0["ts"][0]), max(int(a0["ts"][-1]), int(a1["ts"][-1])))
        c = r.counters()
        assert c[0].hits == [3000, 2100] and c[0].dropped == [100, 0] and c[1].missed == 2
        states = {s.probe_id: s for s in r.probe_states()}
        assert states[1].status == "failed" and states[1].reason == "it broke" and states[0].status == "recorded"
        stacks = {(s.probe_id, s.kernel, s.user): s.count for s in r.stacks()}
        assert stacks == {(0, ("a", "b"), ()): 7, (1, (), ("main",)): 1}
        assert r.histograms() == [Histogram(1, "ret", "log2", [(0, 1, 4), (1, 2, 9)])]
        assert r.symbolize(0xFFFFFFFF81000000) == "do_sys_openat2"
        assert r.symbolize(0xFFFFFFFF81000104) == "vfs_open+0x4"
        assert r.symbolize(0x1004, binary="/bin/true") == "main+0x4"
        assert r.symbolize(0x2000, pid=1234) == "worker"
        assert r.stack_frames(7) == ["do_sys_openat2+0x10", "vfs_open"]
        assert r.problems == []


def test_file_is_owner_only_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        w, _, _ = _write(tmp_path / "r.ktrec")
        for name in os.listdir(tmp_path):  # the -wal and -shm too
            assert os.stat(tmp_path / name).st_mode & 0o777 == 0o600, name
        w.close()
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "r.ktrec").st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["r.ktrec"]  # closed: one self-contained file


def test_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "r.ktrec"
    path.write_bytes(b"precious")
    with pytest.raises(KtuiError, match="exists"):
        RecordingWriter.create(path, IDENT, LAYOUTS)
    assert path.read_bytes() == b"precious"
    w = RecordingWriter.create(path, IDENT, LAYOUTS, overwrite=True)
    w.close()
    assert RecordingReader.open(path).count() == 0


def test_unwritable_place_is_one_clear_error(tmp_path):
    with pytest.raises(KtuiError, match="cannot create") as err:
        RecordingWriter.create(tmp_path / "no" / "such" / "dir.ktrec", IDENT, LAYOUTS)
    assert "dir.ktrec" in str(err.value)


def test_unsorted_records_are_sorted_within_chunks(tmp_path):
    path = tmp_path / "r.ktrec"
    w = RecordingWriter.create(path, IDENT, LAYOUTS)
    a = records(LAYOUTS[0], 1000)
    shuffled = a[np.random.default_rng(3).permutation(len(a))]
    w.append(0, shuffled)
    w.close()
    got = np.concatenate(list(RecordingReader.open(path).events()))
    assert got.tobytes() == a.tobytes()


def test_wrong_record_size_and_unknown_probe_are_refused(tmp_path):
    w = RecordingWriter.create(tmp_path / "r.ktrec", IDENT, LAYOUTS)
    with pytest.raises(KtuiError, match="layout"):
        w.append(0, records(LAYOUTS[1], 3))
    with pytest.raises(KtuiError, match="probe 9"):
        w.append(9, records(LAYOUTS[0], 3))
    w.close()


def test_disk_full_keeps_what_was_committed(tmp_path):
    path = tmp_path / "r.ktrec"
    w = RecordingWriter.create(path, IDENT, LAYOUTS, chunk_events=1000)
    w.append(0, records(LAYOUTS[0], 3000, seed=1))
    w.flush()  # three chunks committed
    pages = w._conn.execute("PRAGMA page_count").fetchone()[0]
    # SQLite's own "database or disk is full" path: no room for one more page.
    w._conn.execute(f"PRAGMA max_page_count={pages}")
    noise = np.random.default_rng(0).integers(0, 255, (5000, LAYOUTS[0].record_size), dtype=np.uint8)
    incompressible = noise.view(LAYOUTS[0].dtype).reshape(-1).copy()
    incompressible["ts"] = np.sort(incompressible["ts"])
    with pytest.raises(KtuiError, match="full") as err:
        w.append(0, incompressible)
        w.flush()  # the write happens on the writer's thread; its failure surfaces here at the latest
    assert str(path) in str(err.value)
    with pytest.raises(KtuiError, match="full"):
        w.append(0, records(LAYOUTS[0], 10))  # and every later call says so too
    with pytest.raises(KtuiError):
        w.close()
    r = RecordingReader.open(path)
    assert r.count() >= 3000 and r.problems == []


def test_sigkill_keeps_every_committed_chunk(tmp_path):
    path = tmp_path / "r.ktrec"
    code = textwrap.dedent(f"""
        import os, sys
        from ktui.recording import RecordingWriter
        from ktui.recording.synthetic import LAYOUTS, records
        from ktui.kernel import KernelIdentity
        w = RecordingWriter.create({str(path)!r}, KernelIdentity("r", "v", "m", "b"), LAYOUTS, chunk_events=1000,
                                   max_age_s=60)  # nothing committed by the timer before the kill
        w.append(0, records(LAYOUTS[0], 4500))   # 4 chunks committed, 500 buffered
        w.append(1, records(LAYOUTS[1], 10))
        w.flush()                               # now all 4510 are committed
        w.append(0, records(LAYOUTS[0], 200, t0=10**9))  # buffered only: lost on SIGKILL
        print("ready", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert os.path.exists(f"{path}-wal")  # the recorder died mid-recording
    before = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
    with RecordingReader.open(path) as r:
        assert r.recovered
        assert r.count() == 4510
        assert r.count(probe_ids=[1]) == 10
        assert sum(len(a) for a in r.events()) == 4510
    after = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
    assert before == after  # reading the crashed recording touched nothing beside it


def test_close_is_idempotent_and_append_after_close_is_refused(tmp_path):
    w = RecordingWriter.create(tmp_path / "r.ktrec", IDENT, LAYOUTS)
    w.close()
    w.close()
    with pytest.raises(KtuiError, match="closed"):
        w.append(0, records(LAYOUTS[0], 1))


def test_probes_keyed_by_id_and_added_later(tmp_path):
    path = tmp_path / "r.ktrec"
    w = RecordingWriter.create(path, IDENT, LAYOUTS[:1], {0: PROBE_DICTS[0]})
    w.add_probe(LAYOUTS[1], PROBE_DICTS[1])
    w.append(1, records(LAYOUTS[1], 5))
    w.close()
    r = RecordingReader.open(path)
    assert r.probes == {0: PROBE_DICTS[0], 1: PROBE_DICTS[1]} and r.count(probe_ids=[1]) == 5


def test_time_based_flush_commits_old_buffers(tmp_path):
    w = RecordingWriter.create(tmp_path / "idle.ktrec", IDENT, LAYOUTS, max_age_s=0.2)
    w.append(0, records(LAYOUTS[0], 10))  # and then nothing more: the writer's timer commits it
    conn = sqlite3.connect(str(tmp_path / "idle.ktrec"))
    deadline = time.monotonic() + 5
    while conn.execute("SELECT sum(count) FROM chunks").fetchone()[0] != 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    # another process sees it without close or flush
    assert conn.execute("SELECT sum(count) FROM chunks").fetchone()[0] == 10
    conn.close()
    w.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_a_really_full_disk_is_one_error_and_keeps_the_committed_chunks(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    try:
        path = mnt / "r.ktrec"
        w = RecordingWriter.create(path, IDENT, LAYOUTS, chunk_events=1000)
        rng = np.random.default_rng(1)
        committed = 0
        with pytest.raises(KtuiError) as err:
            for i in range(200):  # 200 x 56 KB of incompressible records: far more than 2 MB
                noise = rng.integers(0, 255, (1000, LAYOUTS[0].record_size), dtype=np.uint8)
                batch = noise.view(LAYOUTS[0].dtype).reshape(-1).copy()
                batch["ts"] = np.arange(1000) + i * 1000
                w.append(0, batch)
                w.flush()
                committed += 1000
        assert str(path) in str(err.value) and "full" in str(err.value)
        with pytest.raises(KtuiError):
            w.close()
        with RecordingReader.open(path) as r:
            assert r.count() == committed > 0
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_flush_means_committed_even_while_the_timer_writes(tmp_path):
    path = tmp_path / "r.ktrec"
    w = RecordingWriter.create(path, IDENT, LAYOUTS, chunk_events=500, max_age_s=0.001)
    conn = sqlite3.connect(str(path))
    total = 0
    for i in range(40):
        w.append(i % 2, records(LAYOUTS[i % 2], 37 * (i + 1), t0=10**6 * (i + 1)))
        total += 37 * (i + 1)
        if i % 3 == 0:
            time.sleep(0.002)  # let the timer take a buffer now and then
        w.flush()
        assert conn.execute("SELECT sum(count) FROM chunks").fetchone()[0] == total
    conn.close()
    w.close()


def test_big_records_make_smaller_chunks(tmp_path):
    from ktui.events import FieldLayout, ProbeLayout

    big = ProbeLayout(0, "big", "uprobe:/bin/x:f", (FieldLayout("data", "S4096", "string"),))
    path = tmp_path / "r.ktrec"
    w = RecordingWriter.create(path, IDENT, [big])
    a = np.zeros(3000, dtype=big.dtype)
    a["ts"] = np.arange(3000)
    w.append(0, a)
    w.close()
    r = RecordingReader.open(path)
    assert r.count() == 3000 and max(c.count for c in r.chunks) <= (4 << 20) // big.record_size


def test_a_refused_creation_leaves_no_file(tmp_path):
    from ktui.events import FieldLayout, ProbeLayout

    path = tmp_path / "r.ktrec"
    with pytest.raises(KtuiError, match="share a probe id"):
        RecordingWriter.create(path, IDENT, [LAYOUTS[0], LAYOUTS[0]])
    with pytest.raises(KtuiError, match="unusable layout"):
        RecordingWriter.create(path, IDENT, [ProbeLayout(0, "x", "y", (FieldLayout("a", "nonsense"),))])
    with pytest.raises(KtuiError, match="description"):
        RecordingWriter.create(path, IDENT, LAYOUTS, meta={"bad": object()})
    with pytest.raises(KtuiError, match="2 probe models for 1 layouts"):
        RecordingWriter.create(path, IDENT, LAYOUTS[:1], [{}, {}])
    assert os.listdir(tmp_path) == []
