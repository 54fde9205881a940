#!/usr/bin/env python3
"""Recording benchmark: 10 million synthetic events (numpy arrays with the real record layouts).

    .venv/bin/python bench/bench_recording.py [--events 10000000] [--keep FILE]

Figures, each with its goal or a baseline measured in the same run:
1. Write rate (events/s) through RecordingWriter.append in 16k batches, as the engine
   drains its rings, against writing the same raw bytes to a plain file (the disk's
   ceiling here) and against the engine's own delivery rate on this machine (2.65 M/s
   from KERNEL.md: the writer must keep up with it).
2. Bytes per event on disk, against the raw record size.
3. Open to first screen: RecordingReader.open + the first 200 events in time order,
   and ReplaySource to its first Update. Goal < 1 s.
4. Seek to any time: 50 random seeks, each followed by reading the 200 events there.
   Goal < 100 ms (worst case reported).
5. Full filter by pid: every event of one pid over the whole recording. Goal < 3 s.
6. Replay at full speed: events/s that ReplaySource hands the panes (at most 30 Updates/s),
   over 5 s.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import BATCH, write_recording  # noqa: E402
from ktui.events import FieldLayout, ProbeLayout  # noqa: E402
from ktui.recording import RecordingReader  # noqa: E402
from ktui.sources.replay import ReplaySource  # noqa: E402

ENGINE_RATE = 2.65e6  # events/s delivered by the engine's mmap ring reader here (KERNEL.md)
LAYOUTS = [
    ProbeLayout(0, "sys_enter_getppid", "tracepoint:syscalls:sys_enter_getppid"),
    ProbeLayout(1, "sys_exit_openat", "tracepoint:syscalls:sys_exit_openat",
                (FieldLayout("ret", "<i8", "s"), FieldLayout("filename", "S32", "string"))),
]


def synthetic(n: int, seed: int = 1) -> list[tuple[int, np.ndarray]]:
    """n events: 80% getppid, 20% openat, ~400 ns apart, 2 CPUs, 200 processes."""
    rng = np.random.default_rng(seed)
    ts = 10**12 + np.cumsum(rng.integers(100, 700, n, dtype=np.uint64))
    probe = (rng.random(n) < 0.2).astype(np.uint32)
    pids = 1000 + rng.integers(0, 200, n).astype(np.uint32)
    comms = np.array([b"proc-%d" % i for i in range(200)])
    out = []
    for layout in LAYOUTS:
        idx = np.flatnonzero(probe == layout.probe_id)
        a = np.zeros(len(idx), dtype=layout.dtype)
        a["ts"] = ts[idx]
        a["probe"] = layout.probe_id
        a["cpu"] = rng.integers(0, 2, len(idx))
        a["pid"] = pids[idx]
        a["tid"] = pids[idx]
        a["kstack"] = -1
        a["ustack"] = -1
        a["comm"] = comms[pids[idx] - 1000]
        if layout.probe_id == 1:
            a["ret"] = rng.integers(-2, 40, len(idx))
            a["filename"] = np.array([b"/etc/passwd", b"/usr/lib/x86_64-linux-gnu/libc.so.6", b"/proc/self/stat"])[
                rng.integers(0, 3, len(idx))]
        out.append((layout.probe_id, a))
    return out


def bench_write(path: Path, data, n: int) -> float:
    return write_recording(path, LAYOUTS, data)  # the two probes' batches interleaved in time, as the engine drains


def bench_raw_write(path: Path, data) -> float:
    t = time.perf_counter()
    with open(path, "wb") as f:
        for _, arr in data:
            for start in range(0, len(arr), BATCH):
                f.write(arr[start:start + BATCH].tobytes())
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - t


def first_screen(path: Path) -> tuple[float, float]:
    t = time.perf_counter()
    r = RecordingReader.open(path)
    r.seek(r.first_ts)
    screen = r.read(max_events=200)
    assert sum(len(a) for a in screen.values()) >= 200
    reader_s = time.perf_counter() - t
    r.close()
    t = time.perf_counter()
    got = threading.Event()
    src = ReplaySource([path])
    src.start(lambda u: got.set())
    got.wait(30)
    replay_s = time.perf_counter() - t
    src.stop()
    return reader_s, replay_s


def seeks(path: Path, count: int = 50) -> list[float]:
    r = RecordingReader.open(path)
    rng = np.random.default_rng(7)
    times = []
    for target in rng.integers(r.first_ts, r.last_ts, count):
        t = time.perf_counter()
        r.seek(int(target))
        r.read(max_events=200)
        times.append(time.perf_counter() - t)
    r.close()
    return times


def pid_filter(path: Path, pid: int) -> tuple[float, int]:
    r = RecordingReader.open(path)
    t = time.perf_counter()
    n = sum(len(a) for a in r.events(pid=pid))
    s = time.perf_counter() - t
    r.close()
    return s, n


def replay_rate(path: Path, seconds: float = 5.0) -> tuple[float, int]:
    got = [0, 0]

    def sink(update):
        got[0] += sum(len(a) for a in update.events.values())
        got[1] += 1

    src = ReplaySource([path])
    src.start(sink)
    time.sleep(0.2)
    src.set_speed(None)
    start_events = got[0]
    t = time.perf_counter()
    src.play()
    time.sleep(seconds)
    src.pause()
    dt = time.perf_counter() - t
    src.stop()
    return (got[0] - start_events) / dt, got[1]


def main() -> int:
    parser = argparse.ArgumentParser(description="recording format benchmark")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--keep", help="keep the recording at this path")
    args = parser.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "bench.ktrec"
        if path.exists():
            path.unlink()
        print(f"generating {n:,} synthetic events ...", flush=True)
        data = synthetic(n)
        raw_bytes = sum(a.nbytes for _, a in data)

        raw_s = bench_raw_write(Path(tmp) / "raw.bin", data)
        os.unlink(Path(tmp) / "raw.bin")
        write_s = bench_write(path, data, n)
        size = path.stat().st_size
        rate = n / write_s
        print(f"\n1. write: {rate / 1e6:.2f} M events/s ({write_s:.2f} s); raw uncompressed file write "
              f"{n / raw_s / 1e6:.2f} M events/s; ratio {rate / (n / raw_s):.2f}")
        print(f"   vs the engine's delivery rate here ({ENGINE_RATE / 1e6:.2f} M/s): {rate / ENGINE_RATE:.2f}x "
              f"({'keeps up' if rate >= ENGINE_RATE else 'SLOWER than the engine'})")
        print(f"2. size: {size / 1e6:.1f} MB, {size / n:.1f} bytes/event (raw records {raw_bytes / n:.1f}; "
              f"ratio {raw_bytes / size:.1f}x smaller)")

        del data
        reader_s, replay_s = first_screen(path)
        print(f"3. open to first screen: reader {reader_s * 1000:.0f} ms, ReplaySource first Update "
              f"{replay_s * 1000:.0f} ms (goal < 1000 ms)")
        st = seeks(path)
        print(f"4. seek + 200 events: median {statistics.median(st) * 1000:.1f} ms, worst {max(st) * 1000:.1f} ms "
              f"over {len(st)} random seeks (goal < 100 ms)")
        pf, matched = pid_filter(path, 1042)
        print(f"5. full filter by pid: {pf:.2f} s for {n:,} events, {matched:,} matched "
              f"({n / pf / 1e6:.1f} M events/s scanned; goal < 3 s)")
        rr, updates = replay_rate(path)
        print(f"6. replay at full speed: {rr / 1e6:.2f} M events/s handed to the panes in {updates} Updates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
