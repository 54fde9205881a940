"""The app's memory at full rate over time (issue 13: < 300 MB RSS after 10 minutes).

Runs the real app (KtuiApp with the real live engine, headless through Textual's pilot) with
its default session plus tracepoint:syscalls:sys_enter_getppid while getppid loops run flat out
on every CPU, and prints RSS each minute, the peak (VmHWM) and the growth per minute over the
second half of the run (after the windows have filled: growth there is a leak).

    sudo .venv/bin/python bench/bench_memory.py [--minutes 10] [--where]

--where also traces Python's allocations (tracemalloc, from the first minute's end) and prints
the lines whose memory grew most by the end, with how much of RSS Python's heap explains.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import busy_loop_binary  # noqa: E402
from ktui.app import KtuiApp  # noqa: E402
from ktui.app_main import _live_factory, default_probes  # noqa: E402
from ktui.probes.model import Probe, ProbeKind  # noqa: E402

TARGET_MB = 300


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(minutes: float, where: bool = False) -> list[tuple[float, float]]:
    probes = [*default_probes(), Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid")]
    app = KtuiApp(probes=probes, source_factory=_live_factory, mode="live")
    samples: list[tuple[float, float]] = []
    producers = [subprocess.Popen([str(busy_loop_binary()), str(int(minutes * 60_000 + 120_000))])
                 for _ in range(os.cpu_count() or 1)]
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (app.states and all(
                    s.status == "attached" for s in app.states.values())):
                await pilot.pause(0.2)
            t0 = time.monotonic()
            print(f"attached: RSS {status_mb('VmRSS'):6.0f} MB, peak so far {status_mb('VmHWM'):.0f} MB", flush=True)
            next_print = 0.0
            first: tracemalloc.Snapshot | None = None
            while (elapsed := time.monotonic() - t0) < minutes * 60:
                await pilot.pause(5)
                rss = status_mb("VmRSS")
                samples.append((elapsed, rss))
                if elapsed >= next_print:
                    print(f"{elapsed / 60:5.1f} min  RSS {rss:6.0f} MB (anonymous {status_mb('RssAnon'):.0f}, "
                          f"files {status_mb('RssFile'):.0f}, shared {status_mb('RssShmem'):.0f})  "
                          f"updates applied {app.updates_applied:,}", flush=True)
                    next_print += 60
                    if where and first is None and elapsed >= 60:
                        tracemalloc.start(1)
                        first = tracemalloc.take_snapshot()
            if first is not None:
                last = tracemalloc.take_snapshot()
                traced, _ = tracemalloc.get_traced_memory()
                print(f"Python heap traced since minute 1: {traced / 2**20:.0f} MB; grew most:")
                for stat in last.compare_to(first, "lineno")[:15]:
                    print(f"  {stat.size_diff / 2**20:+8.1f} MB  {stat.count_diff:+9,} blocks  {stat.traceback}")
                tracemalloc.stop()
            await pilot.press("q")
    finally:
        for p in producers:
            p.kill()
            p.wait()
    return samples


def growth_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over the second half of the run, in MB per minute."""
    half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    if len(half) < 2:
        return 0.0
    mx = sum(t for t, _ in half) / len(half)
    my = sum(r for _, r in half) / len(half)
    den = sum((t - mx) ** 2 for t, _ in half)
    return 60 * sum((t - mx) * (r - my) for t, r in half) / den if den else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--where", action="store_true", help="trace Python allocations, print the growth")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_memory needs root (live tracing)", file=sys.stderr)
        return 2
    samples = asyncio.run(run(args.minutes, args.where))
    peak = status_mb("VmHWM")
    growth = growth_per_minute(samples)
    last = samples[-1][1] if samples else 0.0
    print(f"after {args.minutes:g} min: RSS {last:.0f} MB, peak {peak:.0f} MB (target < {TARGET_MB}), "
          f"growth {growth:+.1f} MB/min over the second half")
    return 0 if peak < TARGET_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
