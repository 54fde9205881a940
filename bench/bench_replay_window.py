#!/usr/bin/env python3
"""Replay as a time machine over a 10 M event recording: first screen, cursor moves, window aggregates.

    .venv/bin/python bench/bench_replay_window.py [--events 10000000] [--keep FILE]

The recording is written through the real RecordingWriter (records in the real layouts, 2 CPUs,
200 processes): a sampled probe whose events carry kernel stack ids (200 distinct stacks with
their addresses and symbols in the file), and an openat-return probe with a log2 histogram of
``ret`` and a COUNT keyed by ``comm``, both streaming their events.

Figures, each beside its goal and a baseline measured in the same run:
1. First screen: ReplaySource opened, its first Update delivered, and the timeline's 200 rate
   bins computed. Goal < 1 s.
2. Moving the cursor: a seek to a random time until the Update that shows it (40 moves, median
   and worst), while the source's whole-recording pass runs beside it. Goal < 100 ms. Baseline in
   the same run, alternating with it: the same moves decoding every chunk they touch whole (as
   before chunks were decoded only part way); also the reader alone seeking and reading 200 events.
3. Window aggregates (per-CPU counts and rate history, stacks, histogram, COUNT table) over 1%,
   10% and all of the recording. Goal < 1 s. Baseline: decoding the same chunks and doing
   nothing with them (the floor any aggregate pays). These are cold: every chunk is decoded.
4. The same through ReplaySource as the app uses it: on opening it reduces every chunk once in
   the background (kept in memory, never written); windows selected afterwards add up those
   summaries and decode only the chunks the window cuts.
5. Moving the cursor through the app as a user does (KtuiApp headless at 80x24, paused, keys L and l):
   from the key to the seek's screen applied to the panes, and to the first frame the compositor
   draws after it (App._display), with no window and with a 10% window selected; then a burst of 10
   keys queued at once: until the last position's screen is drawn, and how many screens were built for it.
   With ``--before-tree DIR`` (a checkout of an older ktui), the same moves run alternately against it
   in separate processes (same recording, same machine, same minute): the figure before.

    .venv/bin/python bench/bench_replay_window.py --app-only --keep /tmp/r.ktrec --before-tree /tmp/old
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
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

from _common import write_recording  # noqa: E402
from ktui.events import FieldLayout, ProbeLayout  # noqa: E402
from ktui.recording import RecordingReader, RecordingWriter  # noqa: E402
from ktui.recording.window import window_aggregates  # noqa: E402
from ktui.sources.replay import ReplaySource  # noqa: E402

LAYOUTS = [
    ProbeLayout(0, "profile", "profile:hz:999"),
    ProbeLayout(1, "sys_exit_openat", "tracepoint:syscalls:sys_exit_openat",
                (FieldLayout("ret", "<i8", "s"),)),
]
PROBES = {
    0: {"spec": "profile:hz:999", "actions": [{"kind": "stream"}, {"kind": "stacks"}]},
    1: {"spec": "tracepoint:syscalls:sys_exit_openat",
        "actions": [{"kind": "stream"}, {"kind": "hist", "value": "ret", "scale": "log2"},
                    {"kind": "count", "key": ["comm"]}]},
}
KBASE = 0xFFFFFFFF81000000


def build(path: Path, n: int, seed: int = 1) -> float:
    rng = np.random.default_rng(seed)
    ts = 10**12 + np.cumsum(rng.integers(100, 700, n, dtype=np.uint64))
    probe = (rng.random(n) < 0.3).astype(np.uint32)
    pids = 1000 + rng.integers(0, 200, n).astype(np.uint32)
    comms = np.array([b"proc-%d" % i for i in range(200)])
    arrays = []
    for layout in LAYOUTS:
        idx = np.flatnonzero(probe == layout.probe_id)
        a = np.zeros(len(idx), dtype=layout.dtype)
        a["ts"], a["probe"], a["cpu"] = ts[idx], layout.probe_id, rng.integers(0, 2, len(idx))
        a["pid"] = a["tid"] = pids[idx]
        a["comm"] = comms[pids[idx] - 1000]
        a["ustack"] = -1
        if layout.probe_id == 0:
            a["kstack"] = rng.zipf(1.5, len(idx)) % 200
        else:
            a["kstack"] = -1
            a["ret"] = rng.integers(-2, 4000, len(idx))
        arrays.append((layout.probe_id, a))

    def stacks(w: RecordingWriter) -> None:
        # 200 kernel stacks of 3..12 frames over 64 functions, with their symbols
        w.add_stack_ids(kernel={i: [KBASE + 0x100 * ((i * 7 + j) % 64) for j in range(3 + i % 10)] for i in range(200)})
        w.add_symbols(kernel={KBASE + 0x100 * f: f"func_{f}" for f in range(64)})

    return write_recording(path, LAYOUTS, arrays, PROBES, before_close=stacks)


def summary_write_cost(tmp: Path, n: int = 1_000_000, rounds: int = 3) -> tuple[list, list]:
    """(CPU seconds of this process, wall seconds of the write) for n events through the writer, with
    the chunk summaries (as shipped) and without them (the writer's summary step switched off), alternating."""
    with_s: list[tuple[float, float]] = []
    without_s: list[tuple[float, float]] = []
    real = RecordingWriter._summary_text
    for i in range(rounds * 2):
        off = i % 2 == 1
        RecordingWriter._summary_text = (lambda self, p, r: None) if off else real  # type: ignore[method-assign]
        path = tmp / f"cost{i}.ktrec"
        t = time.process_time()
        wall = build(path, n)
        (without_s if off else with_s).append((time.process_time() - t, wall))
        path.unlink()
    RecordingWriter._summary_text = real  # type: ignore[method-assign]
    return with_s, without_s


def first_screen(path: Path) -> tuple[float, float]:
    t = time.perf_counter()
    got = threading.Event()
    src = ReplaySource([path])
    src.start(lambda u: got.set())
    got.wait(30)
    update_s = time.perf_counter() - t
    src.rate_bins(200)
    total_s = time.perf_counter() - t
    src.stop()
    return update_s, total_s


def cursor_moves(path: Path, count: int = 30, whole_chunks: bool = False) -> list[float]:
    """Seconds from seek() to the Update showing the cursor, for ``count`` random times. With
    ``whole_chunks``, the reader decodes every chunk the screen touches whole, as before the partial
    decoding (the figure before, measured in the same run)."""
    real = RecordingReader._chunk_prefix
    if whole_chunks:
        RecordingReader._chunk_prefix = lambda self, c, start, need: self._chunk(c)  # type: ignore[method-assign]
    try:
        return _cursor_moves(path, count)
    finally:
        RecordingReader._chunk_prefix = real  # type: ignore[method-assign]


def _cursor_moves(path: Path, count: int) -> list[float]:
    got = threading.Event()
    seen: list[int] = []

    def sink(u) -> None:
        seen.append(u.now_ns)
        got.set()

    src = ReplaySource([path])
    src.start(sink)
    got.wait(30)
    rng = np.random.default_rng(3)
    times = []
    for target in rng.integers(src.start_ns, src.end_ns, count):
        got.clear()
        t = time.perf_counter()
        src.seek(int(target))
        got.wait(30)
        times.append(time.perf_counter() - t)
    src.stop()
    return times


def reader_seeks(path: Path, count: int = 30) -> list[float]:
    """Baseline for a cursor move: the reader alone seeking to the same times and reading 200 events."""
    r = RecordingReader.open(path)
    rng = np.random.default_rng(3)
    times = []
    for target in rng.integers(r.first_ts, r.last_ts, count):
        t = time.perf_counter()
        r.seek(int(target))
        r.read(max_events=200)
        times.append(time.perf_counter() - t)
    r.close()
    return times


def windows(path: Path) -> list[tuple[str, int, float, float]]:
    r = RecordingReader.open(path)
    span = r.last_ts + 1 - r.first_ts
    out = []
    for label, frac in (("1%", 0.01), ("10%", 0.10), ("all", 1.0)):
        lo = r.first_ts + int(span * (1 - frac) / 2)
        hi = lo + int(span * frac)
        t = time.perf_counter()
        n = sum(len(a) for a in r.events(lo, hi))
        decode_s = time.perf_counter() - t
        t = time.perf_counter()
        agg = window_aggregates(r, lo, hi)
        agg_s = time.perf_counter() - t
        assert agg.events == n, (agg.events, n)
        out.append((label, n, decode_s, agg_s))
    r.close()
    return out


def replay_windows(path: Path) -> tuple[float, list[tuple[str, float]]]:
    """Through ReplaySource as the app uses it: the whole-recording pass it starts on opening (which
    keeps every chunk's summary), then windows selected on the timeline, each until its aggregates
    are ready."""
    src = ReplaySource([path])
    t = time.perf_counter()
    src.start(lambda u: None)
    while src.window_generation < 1:
        time.sleep(0.005)
    warmup_s = time.perf_counter() - t
    span = src.end_ns - src.start_ns
    out = []
    for label, frac in (("1%", 0.01), ("10%", 0.10), ("all", 1.0)):
        lo = src.start_ns + int(span * (1 - frac) / 3)
        before = src.window_generation
        t = time.perf_counter()
        src.select_window(lo, lo + int(span * frac) + 1)
        while src.window_generation == before:
            time.sleep(0.002)
        out.append((label, time.perf_counter() - t))
    src.stop()
    return warmup_s, out


APP_MOVES = ["L", "l", "l"]  # ten columns, then one, then one: new places each time, chunks apart


async def _app_moves(path: str, moves: int, window: bool) -> dict[str, list[float]]:
    """In this process (whichever ktui is on sys.path): key -> applied, key -> drawn, per move, and a burst."""
    from textual import events

    from ktui.app import KtuiApp
    from ktui.widgets.event_stream import EventStream
    from ktui.widgets.timeline import Timeline

    src = ReplaySource([path])
    app = KtuiApp(source=src, mode="replay", banner="Replaying")
    applied: dict[int, float] = {}
    drawn: dict[int, float] = {}
    screens: list[int] = []
    out: dict[str, list[float]] = {"applied": [], "drawn": [], "burst": [], "burst_screens": [], "cpu": []}
    async with app.run_test(size=(80, 24)) as pilot:
        stream, timeline = app.main_query(EventStream), app.main_query(Timeline)
        while stream.window.visible_count == 0:
            await asyncio.sleep(0.01)
        await pilot.press("p")
        while src.window_generation < 1:  # the whole-recording pass is done: moves alone are timed
            await asyncio.sleep(0.02)
        if window:
            span = src.end_ns - src.start_ns
            app.replay.select(src.start_ns + span // 3, src.start_ns + span // 3 + span // 10)
            while src.window is None or src.window.start_ns != src.start_ns + span // 3:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        real_apply, real_display = app.apply_update, app._display

        def apply(update):  # type: ignore[no-untyped-def]
            real_apply(update)
            if update.events and update.seek_generation == src.seek_generation:
                applied.setdefault(update.seek_generation, time.perf_counter())
                screens.append(update.seek_generation)

        wake = asyncio.Event()  # set when a screen is drawn: the measuring loop never polls (no CPU of its own)

        def display(screen, renderable):  # type: ignore[no-untyped-def]
            real_display(screen, renderable)
            for gen in applied:
                drawn.setdefault(gen, time.perf_counter())
            wake.set()

        async def until_drawn(gen: int) -> None:
            while gen not in drawn:
                wake.clear()
                if gen not in drawn:
                    await wake.wait()

        app.apply_update = apply  # type: ignore[method-assign]
        app._display = display  # type: ignore[method-assign]
        app.replay.seek_to(src.start_ns)
        await asyncio.sleep(0.5)
        for i in range(moves):
            if timeline.cursor_ns > src.start_ns + (src.end_ns - src.start_ns) * 8 // 10:
                app.replay.seek_to(src.start_ns)
                await asyncio.sleep(0.3)
            gen = src.seek_generation + 1
            t, cpu = time.perf_counter(), time.process_time()
            await pilot.press(APP_MOVES[i % len(APP_MOVES)])
            await until_drawn(gen)
            out["cpu"].append(time.process_time() - cpu)  # every thread of the process (and the waiting loop)
            out["applied"].append(applied[gen] - t)
            out["drawn"].append(drawn[gen] - t)
            await asyncio.sleep(0.05)
        for _ in range(3):  # bursts: ten keys at once, the screen of the last position
            app.replay.seek_to(src.start_ns)
            await asyncio.sleep(0.3)
            first = src.seek_generation + 1
            screens.clear()
            t = time.perf_counter()
            for _ in range(10):  # as a terminal's key repeat delivers them: queued, not one at a time
                app.post_message(events.Key("l", "l"))
            while src.seek_generation < first + 9:
                await asyncio.sleep(0.005)
            last = src.seek_generation
            await until_drawn(last)
            out["burst"].append(drawn[last] - t)
            out["burst_screens"].append(float(len([g for g in screens if g >= first])))
        await pilot.press("q")
    return out


def app_moves_in(tree: Path, path: Path, moves: int, window: bool) -> dict[str, list[float]]:
    """_app_moves in a process of its own with ``tree``'s ktui first on the path."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, "-c",
           "import sys, asyncio, json; sys.path.insert(0, sys.argv[1] + '/bench'); sys.argv = sys.argv[1:]; "
           "import bench_replay_window as b; "
           "print(json.dumps(asyncio.run(b._app_moves(sys.argv[1], int(sys.argv[2]), sys.argv[3] == '1'))))",
           str(tree), str(path), str(moves), "1" if window else "0"]
    got = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=str(tree))
    if got.returncode != 0:
        raise RuntimeError(got.stderr[-2000:])
    return json.loads(got.stdout.strip().splitlines()[-1])


def _figures(xs: list[float]) -> str:
    xs = sorted(xs)
    return (f"median {statistics.median(xs) * 1e3:.0f} ms, p95 {xs[min(len(xs) - 1, int(len(xs) * 0.95))] * 1e3:.0f} ms, "
            f"worst {xs[-1] * 1e3:.0f} ms")


def app_section(path: Path, before_tree: Path | None, rounds: int = 2, moves: int = 15, hogs: int = 0) -> None:
    trees = [("now", ROOT)] + ([("before", before_tree)] if before_tree is not None else [])
    # Busy processes at this process's own niceness: a loaded machine for the bench (both trees alike),
    # without taking the CPUs from anything of a higher priority.
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
    try:
        print(f"through the app at 80x24, {hogs} busy processes beside it "
              f"(load average {os.getloadavg()[0]:.1f} at the start):")
        _app_section(path, trees, rounds, moves)
    finally:
        for p in busy:
            p.kill()
            p.wait()


def _app_section(path: Path, trees: list[tuple[str, Path]], rounds: int, moves: int) -> None:
    for window in (False, True):
        got: dict[str, dict[str, list[float]]] = {name: {} for name, _ in trees}
        for _ in range(rounds):  # alternating, so the machine's load falls on both alike
            for name, tree in trees:
                for key, xs in app_moves_in(tree, path, moves, window).items():
                    got[name].setdefault(key, []).extend(xs)
        what = "a 10% window selected" if window else "no window selected"
        for name, _ in trees:
            g = got[name]
            print(f"  {name:>6}, {what}: key to screen applied {_figures(g['applied'])}; key to drawn "
                  f"{_figures(g['drawn'])} ({len(g['drawn'])} moves), CPU time per move median "
                  f"{statistics.median(g['cpu']) * 1e3:.0f} ms; a burst of 10 keys to the last one drawn "
                  f"{_figures(g['burst'])}, screens built {', '.join(str(int(n)) for n in g['burst_screens'])}")
    print(f"  (load average {os.getloadavg()[0]:.1f} at the end; goal < 100 ms)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--keep", help="write the recording here and keep it")
    ap.add_argument("--write-cost", action="store_true",
                    help="only measure what storing the chunk summaries costs the writer (1 M events, 3 rounds)")
    ap.add_argument("--app-only", action="store_true", help="only the moves through the app (section 5)")
    ap.add_argument("--before-tree", help="a checkout of an older ktui to measure the app's moves against")
    ap.add_argument("--hogs", type=int, default=0, help="busy processes beside the app's moves (a loaded machine)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ktui-bench-") as tmp:
        if args.write_cost:
            with_s, without_s = summary_write_cost(Path(tmp))
            for i, what in ((0, "CPU seconds (whole process)"), (1, "wall seconds of the write")):
                a, b = [x[i] for x in with_s], [x[i] for x in without_s]
                print(f"writing 1,000,000 events, {what}: with chunk summaries {', '.join(f'{x:.2f}' for x in a)}; "
                      f"without {', '.join(f'{x:.2f}' for x in b)}; median ratio "
                      f"{statistics.median(a) / statistics.median(b):.3f}")
            return
        path = Path(args.keep) if args.keep else Path(tmp) / "bench.ktrec"
        if path.exists() and args.keep:
            print(f"using the existing {path}")
        else:
            write_s = build(path, args.events)
            print(f"recording: {args.events:,} events written in {write_s:.2f} s "
                  f"({args.events / write_s / 1e6:.2f} M/s), {path.stat().st_size / 1e6:.0f} MB")
        if args.app_only:
            app_section(path, Path(args.before_tree) if args.before_tree else None, hogs=args.hogs)
            return
        update_s, total_s = first_screen(path)
        print(f"first screen: first Update {update_s * 1e3:.0f} ms, with the timeline's rate bins "
              f"{total_s * 1e3:.0f} ms (goal < 1000 ms)")
        # Alternating rounds, so the machine's load falls on both alike.
        moves: list[float] = []
        before: list[float] = []
        for _ in range(2):
            moves += cursor_moves(path, 20)
            before += cursor_moves(path, 20, whole_chunks=True)
        base = reader_seeks(path)
        print(f"moving the cursor (seek to the Update showing it, {len(moves)} moves, while the whole-recording "
              f"pass runs): median {statistics.median(moves) * 1e3:.0f} ms, worst {max(moves) * 1e3:.0f} ms "
              f"(goal < 100 ms); before (whole chunks decoded), alternating with it: median "
              f"{statistics.median(before) * 1e3:.0f} ms, worst {max(before) * 1e3:.0f} ms; median ratio "
              f"{statistics.median(moves) / statistics.median(before):.2f}")
        print(f"the reader alone seeking and reading 200 events: median {statistics.median(base) * 1e3:.0f} ms, "
              f"worst {max(base) * 1e3:.0f} ms")
        for label, n, decode_s, agg_s in windows(path):
            print(f"window aggregate over {label:>3} ({n:,} events): {agg_s * 1e3:.0f} ms "
                  f"(goal < 1000 ms; decoding alone {decode_s * 1e3:.0f} ms, x{agg_s / max(decode_s, 1e-9):.2f})")
        warmup_s, selected = replay_windows(path)
        print(f"replay: the whole-recording pass on opening (per-CPU history, chunk summaries kept): "
              f"{warmup_s * 1e3:.0f} ms, in the background after the first screen")
        for label, s in selected:
            print(f"replay: window over {label:>3} selected on the timeline, aggregates ready in {s * 1e3:.0f} ms "
                  f"(goal < 1000 ms)")
        app_section(path, Path(args.before_tree) if args.before_tree else None, hogs=args.hogs)


if __name__ == "__main__":
    main()
