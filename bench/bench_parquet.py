#!/usr/bin/env python3
"""Parquet export benchmark: a 10 M-event recording exported, against the recording's own write rate.

    .venv/bin/python bench/bench_parquet.py [--events 10000000] [--threads N]

In one run, on the same synthetic events (bench_recording.synthetic: the real record layouts,
80% getppid with no values, 20% openat with ret and a 32-byte filename):
1. the recording's write rate (RecordingWriter.append in 16k batches, as the engine drains);
2. the Parquet export's rate (`ktui export --format parquet`'s path: RecordingReader ->
   export_parquet into a new directory, zstd, bounded row groups), and the ratio export/write
   (goal >= 0.5);
3. export size against the recording's, and peak RSS growth during the export (bounded memory);
4. `ktui query`'s cost on the export: a count by comm over events, and by pid.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_recording import bench_write, synthetic  # noqa: E402

from ktui.formats.parquet import export_parquet  # noqa: E402
from ktui.formats.query import SqlSession  # noqa: E402
from ktui.recording import RecordingReader  # noqa: E402
from ktui.safe_output import output_directory  # noqa: E402


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description="Parquet export benchmark")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--threads", type=int, default=None, help="pyarrow's CPU threads (default: its own)")
    args = parser.parse_args()
    if args.threads:
        import pyarrow

        pyarrow.set_cpu_count(args.threads)
    n = args.events
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        rec = Path(tmp) / "bench.ktrec"
        print(f"generating {n:,} synthetic events ...", flush=True)
        data = synthetic(n)
        cpu = time.process_time()
        write_s = bench_write(rec, data, n)
        write_cpu = time.process_time() - cpu
        del data
        write_rate = n / write_s
        rec_size = rec.stat().st_size
        print(f"\n1. recording write: {write_rate / 1e6:.2f} M events/s ({write_s:.2f} s, CPU time {write_cpu:.2f} s), "
              f"{rec_size / 1e6:.1f} MB")

        out = Path(tmp) / "export"
        rss0 = _rss_mb()
        peak = [rss0]
        running = threading.Event()
        running.set()

        def sample() -> None:  # the export's own peak (ru_maxrss would show the synthetic data's)
            while running.is_set():
                peak[0] = max(peak[0], _rss_mb())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t = time.perf_counter()
        cpu = time.process_time()
        with RecordingReader.open(rec) as reader, output_directory(out, replace=False, owned=".parquet") as d:
            stats = export_parquet(reader, d.create)
        export_s = time.perf_counter() - t
        cpu_s = time.process_time() - cpu
        running.clear()
        sampler.join()
        assert stats.total == n, (stats.total, n)
        export_rate = n / export_s
        ratio = export_rate / write_rate
        print(f"2. Parquet export: {export_rate / 1e6:.2f} M events/s ({export_s:.2f} s); "
              f"export/write ratio {ratio:.3f} (goal >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")
        size = sum(p.stat().st_size for p in out.iterdir())
        print(f"3. export size {size / 1e6:.1f} MB ({size / n:.1f} bytes/event; recording {rec_size / n:.1f}); "
              f"RSS {rss0:.0f} MB before the export, peak {peak[0]:.0f} MB during it (+{peak[0] - rss0:.0f} MB); "
              f"export CPU time {cpu_s:.2f} s (CPU time per event, write / export: {write_cpu / cpu_s:.2f})")

        with SqlSession(out) as s:
            t = time.perf_counter()
            r = s.query("SELECT comm, count(*) FROM events GROUP BY comm")
            by_comm = time.perf_counter() - t
            t = time.perf_counter()
            (pid_count,) = s.query("SELECT count(*) FROM events WHERE pid = 1042").rows[0]
            by_pid = time.perf_counter() - t
        print(f"4. query over the export: count by comm {by_comm * 1000:.0f} ms ({len(r.rows)} groups), "
              f"count of one pid {by_pid * 1000:.0f} ms ({pid_count:,} events)")
        shutil.rmtree(out, True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
