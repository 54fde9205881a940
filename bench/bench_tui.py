"""How responsive the app stays while a source pours events in.

Measures, with the app rendering real terminal output (sent to a sink, not a tty):
  * key-press-to-screen latency: a key that switches tabs is posted, and the clock
    stops at the first frame whose bytes show the new tab (median and p95; goal < 100 ms);
  * refreshes per second of the screen while events stream (goal >= 10).
Each figure is printed beside a baseline measured in the same run with an idle source,
and as a ratio to it.

    .venv/bin/python bench/bench_tui.py [--rate 1000000] [--seconds 4] [--presses 30] [--live]

--live uses the real engine (root, BCC): a getppid loop as fast as it runs, traced by
tracepoint:syscalls:sys_enter_getppid, so the rate is the engine's highest sustained one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from ktui.app import KtuiApp  # noqa: E402
from ktui.events import ProbeCounters, ProbeLayout, ProbeState, Update  # noqa: E402

LAYOUT = ProbeLayout(0, "sys_enter_getppid", "tracepoint:syscalls:sys_enter_getppid")
UPDATE_HZ = 30


class SyntheticSource:
    """Delivers ``rate`` events a second in 30 Hz updates (real record layout, fresh arrays)."""

    live = True

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.layouts = {0: LAYOUT}
        self.delivered = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, sink) -> None:
        self._thread = threading.Thread(target=self._run, args=(sink,), daemon=True)
        self._thread.start()

    def _run(self, sink) -> None:
        per_update = self.rate // UPDATE_HZ
        template = np.zeros(per_update, dtype=LAYOUT.dtype)
        template["pid"] = 4242
        template["comm"] = b"loadgen"
        template["cpu"] = np.arange(per_update) % 2
        counters = ProbeCounters.zeros(2)
        t0 = time.monotonic()
        n = 0
        while not self._stop.wait(1 / UPDATE_HZ):
            batch = template.copy()  # a real source hands over new arrays every time
            batch["ts"] = np.arange(n, n + per_update, dtype=np.uint64) * 1000
            n += per_update
            for cpu in (0, 1):
                counters.hits[cpu] = counters.delivered[cpu] = n // 2
            self.delivered = n
            sink(Update(events={0: batch} if per_update else {}, counters={0: counters},
                        probes=[ProbeState(0, LAYOUT.name, LAYOUT.spec, "attached")],
                        elapsed_s=time.monotonic() - t0, now_ns=n * 1000))

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def symbolize(self, address: int, pid: int | None = None) -> str:
        return hex(address)


def live_source():
    """The real engine on a getppid loop running flat out."""
    from ktui.app_main import _live_factory
    from ktui.probes.model import Action, ActionKind, Probe, ProbeKind

    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid",
                  actions=[Action(ActionKind.STREAM), Action(ActionKind.COUNT, key=("cpu",))])
    return _live_factory([probe])


class FramedApp(KtuiApp):
    """The app, rendering every frame to bytes as a terminal app does, into a recorder."""

    @property
    def is_headless(self) -> bool:  # render frames for real (the headless driver drops them)
        return False

    def on_mount(self) -> None:
        self.frames: list[tuple[float, str]] = []
        driver = self._driver

        def write(data: str) -> None:
            self.frames.append((time.perf_counter(), data))
        driver.write = write


async def measure(source, seconds: float, presses: int) -> dict:
    app = FramedApp(source=source, mode="live")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(1.0)  # start, attach, first frames
        # Refreshes per second while streaming.
        start_frames, start_events = len(app.frames), app.query_one("#event-stream").window.total
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - t0
        refreshes = (len(app.frames) - start_frames) / elapsed
        shown = (app.query_one("#event-stream").window.total - start_events) / elapsed
        # Key press to screen: stop at the first frame showing the key's effect.
        latencies = {"hold": [], "tab": []}
        for i in range(presses):
            kind = "hold" if i < 2 * (presses // 4) else "tab"  # an even number: the stream follows again
            key, marker = {("hold", 0): ("space", " HELD"), ("hold", 1): ("space", " FOLLOW"),
                           ("tab", 0): ("2", "rate history"), ("tab", 1): ("1", "TIME(s)")}[kind, i % 2]
            mark = len(app.frames)
            sent = time.perf_counter()
            app.post_message(events.Key(key, " " if key == "space" else key))
            deadline = sent + 5
            seen = None
            while seen is None and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
                for when, data in app.frames[mark:]:
                    if marker in data:
                        seen = when
                        break
            latencies[kind].append((seen or deadline) - sent)
            await asyncio.sleep(0.05)
        await pilot.press("q")
    figures = {"refreshes_per_s": refreshes, "events_shown_per_s": shown}
    for kind, values in latencies.items():
        values.sort()
        figures[f"{kind}_key_median_ms"] = 1000 * statistics.median(values)
        figures[f"{kind}_key_p95_ms"] = 1000 * values[int(0.95 * (len(values) - 1))]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1_000_000, help="synthetic events per second")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--live", action="store_true", help="the real engine on a flat-out getppid loop")
    parser.add_argument("--profile", metavar="N", type=int, default=0,
                        help="profile the loaded run (cProfile, the UI thread) and print the top N functions")
    args = parser.parse_args()
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

    baseline = asyncio.run(measure(SyntheticSource(0), args.seconds, args.presses))
    loader = None
    if args.live:
        sys.path.insert(0, str(ROOT / "tests"))
        from helpers import getppid_binary

        loader = subprocess.Popen([str(getppid_binary()), str(10**12)])
        source, label = live_source(), "live engine, getppid flat out"
    else:
        source, label = SyntheticSource(args.rate), f"synthetic {args.rate:,} events/s"
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        loaded = asyncio.run(measure(source, args.seconds, args.presses))
    finally:
        if profiler is not None:
            profiler.disable()
        if loader is not None:
            loader.kill()
            loader.wait()

    print(f"ktui TUI responsiveness ({args.presses} key presses, {args.seconds:g} s of streaming, 120x36)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other work on the machine inflates these)")
    print(f"{'':28}{'idle baseline':>16}{label:>36}{'ratio':>8}")
    for key, unit, goal in (("hold_key_median_ms", "ms", "< 100 ms (space: hold/follow the stream)"),
                            ("hold_key_p95_ms", "ms", ""),
                            ("tab_key_median_ms", "ms", "(1/2: switch panes, a full relayout)"),
                            ("tab_key_p95_ms", "ms", ""),
                            ("refreshes_per_s", "/s", ">= 10/s"), ("events_shown_per_s", "/s", "")):
        b, v = baseline[key], loaded[key]
        ratio = f"{v / b:.2f}" if b else "-"
        print(f"{key:28}{b:>14,.1f}{unit:2}{v:>34,.1f}{unit:2}{ratio:>8}   {goal}")
    if profiler is not None:
        import pstats

        print(f"\nprofile of the loaded run (UI thread), top {args.profile} by own time:")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
    ok = loaded["hold_key_median_ms"] < 100 and loaded["refreshes_per_s"] >= 10
    print("goals met" if ok else "goals NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
