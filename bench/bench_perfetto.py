#!/usr/bin/env python3
"""Perfetto export: peak memory (RSS) and time, this tree's exporter against a baseline.

    .venv/bin/python bench/bench_perfetto.py [--events 3500000] [--baseline REV] [--keep FILE]

Makes a synthetic recording (kprobe:vfs_read entries with their kretprobe returns, a kprobe
with no return probe, and a tracepoint, on 4 CPUs and 200 threads), then exports it to
Perfetto JSON once with ktui/formats/perfetto.py from git revision REV (default: the commit
before the streaming exporter) and once with this tree's, each in its own child process, and
prints each one's peak RSS (ru_maxrss), time and output size, and the ratio. Both runs read
the same recording through this tree's reader and row code (ktui/formats/rows.py), so only
the exporter differs. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ktui.events import FieldLayout, ProbeLayout  # noqa: E402
from ktui.kernel import kernel_identity  # noqa: E402
from ktui.recording import RecordingWriter  # noqa: E402

BASELINE = "59e308c"  # main before the streaming exporter
BATCH = 65536
LAYOUTS = [
    ProbeLayout(0, "vfs_read", "kprobe:vfs_read", (FieldLayout("count", "<u8", "u"), FieldLayout("buf", "<u8", "x"))),
    ProbeLayout(1, "vfs_read_ret", "kretprobe:vfs_read", (FieldLayout("ret", "<i8", "s"),)),
    ProbeLayout(2, "do_sys_openat2", "kprobe:do_sys_openat2", (FieldLayout("filename", "S32", "string"),)),
    ProbeLayout(3, "sched_switch", "tracepoint:sched:sched_switch", (FieldLayout("next_pid", "<u8", "u"),)),
]


def make_recording(path: Path, n: int, seed: int = 3) -> None:
    """n events in time order: 30% vfs_read entries and 30% their returns (same thread, in
    order), 25% do_sys_openat2 with no return probe, 15% sched_switch."""
    rng = np.random.default_rng(seed)
    w = RecordingWriter.create(path, kernel_identity(), LAYOUTS, meta={"bench": True})
    t = 10**12
    done = 0
    while done < n:
        m = min(BATCH, n - done)
        ts = t + np.cumsum(rng.integers(100, 700, m, dtype=np.uint64))
        t = int(ts[-1])
        kind = rng.choice(4, m, p=[0.3, 0.3, 0.25, 0.15])
        tid = (1000 + rng.integers(0, 200, m)).astype(np.uint32)
        # A return follows its entry on the same thread: give each return the tid of the entry before it.
        entries = np.flatnonzero(kind == 0)
        for r in np.flatnonzero(kind == 1):
            k = np.searchsorted(entries, r) - 1
            tid[r] = tid[entries[k]] if k >= 0 else tid[r]
        for layout in LAYOUTS:
            idx = np.flatnonzero(kind == layout.probe_id)
            a = np.zeros(len(idx), dtype=layout.dtype)
            a["ts"], a["probe"], a["tid"], a["pid"] = ts[idx], layout.probe_id, tid[idx], tid[idx]
            a["cpu"] = rng.integers(0, 4, len(idx))
            a["kstack"] = a["ustack"] = -1
            a["comm"] = b"worker"
            names = layout.dtype.names
            if "count" in names:
                a["count"], a["buf"] = 4096, 0x7FFE0000
            if "ret" in names:
                a["ret"] = rng.integers(-2, 4096, len(idx))
            if "filename" in names:
                a["filename"] = b"/etc/passwd"
            if "next_pid" in names:
                a["next_pid"] = tid[idx]
            if len(a):
                w.append(layout.probe_id, a)
        done += m
    w.close()


CHILD = r"""
import importlib.util, resource, sys, time
sys.path.insert(0, {root!r})
from ktui.recording.reader import RecordingReader
spec = importlib.util.spec_from_file_location("exporter_under_test", {module!r})
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
reader = RecordingReader.open({recording!r})
t = time.perf_counter()
with open({out!r}, "w", encoding="utf-8") as f:
    stats = mod.export_perfetto(reader, f)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t, stats)
"""


def run_export(module: Path, recording: Path, out: Path) -> tuple[float, float, str]:
    """(peak RSS in MiB, seconds, stats) of one export in its own child process."""
    code = CHILD.format(root=str(ROOT), module=str(module), recording=str(recording), out=str(out))
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, check=True)
    rss_kib, seconds, stats = proc.stdout.strip().split(" ", 2)
    return int(rss_kib) / 1024, float(seconds), stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=3_500_000)
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the baseline exporter")
    ap.add_argument("--keep", help="keep the recording at this path")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ktui-bench-perfetto-") as tmp:
        tmpd = Path(tmp)
        recording = Path(args.keep) if args.keep else tmpd / "bench.ktrec"
        if not recording.exists():
            t = time.perf_counter()
            make_recording(recording, args.events)
            print(f"recording: {args.events:,} events in {time.perf_counter() - t:.1f} s "
                  f"({recording.stat().st_size / 2**20:.0f} MiB)")
        baseline = tmpd / "perfetto_baseline.py"
        baseline.write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{args.baseline}:ktui/formats/perfetto.py"],
                                            check=True, capture_output=True).stdout)
        rss_new, s_new, stats_new = run_export(ROOT / "ktui/formats/perfetto.py", recording, tmpd / "new.json")
        size_new = (tmpd / "new.json").stat().st_size
        rss_old, s_old, stats_old = run_export(baseline, recording, tmpd / "old.json")
        size_old = (tmpd / "old.json").stat().st_size
        print(f"baseline ({args.baseline}): peak RSS {rss_old:,.0f} MiB, {s_old:.1f} s, "
              f"{size_old / 2**20:,.0f} MiB written, {stats_old}")
        print(f"this tree:          peak RSS {rss_new:,.0f} MiB, {s_new:.1f} s, "
              f"{size_new / 2**20:,.0f} MiB written, {stats_new}")
        print(f"peak RSS ratio (this tree / baseline): {rss_new / rss_old:.2f}")


if __name__ == "__main__":
    main()
