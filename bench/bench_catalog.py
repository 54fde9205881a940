"""Catalog benchmark: cold/warm load, per-keystroke search, and `ktui list` beside `bpftrace -l`.

    .venv/bin/python bench/bench_catalog.py [--runs N]

Cold = no ktui cache (a fresh KTUI_CACHE_DIR), in a fresh interpreter, imports included; "ready for
search" also builds the search texts. Warm = same with the cache present. Every figure is a median.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

CHILD = r"""
import time, json, sys
t0 = time.perf_counter(); c0 = time.process_time()
from ktui.catalog import Catalog
cat = Catalog.load()
t1 = time.perf_counter(); c1 = time.process_time()
cat._ensure_text(); cat._ensure_fuzzy_text()
t2 = time.perf_counter(); c2 = time.process_time()
print(json.dumps({"load": t1 - t0, "ready": t2 - t0, "cpu_load": c1 - c0, "cpu_ready": c2 - c0,
                  "n": len(cat), "cached": cat.from_cache}))
"""


def child(cache: str) -> dict:
    import json

    env = dict(os.environ, KTUI_CACHE_DIR=cache)
    out = subprocess.run([PY, "-c", CHILD], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return json.loads(out.stdout)


def ms(x: float) -> str:
    return f"{x * 1000:8.1f} ms"


def bench_load(runs: int) -> str:
    colds, warms = [], []
    n = 0
    for _ in range(runs):
        d = tempfile.mkdtemp(prefix="ktui-bench-")
        try:
            c = child(d)
            assert not c["cached"]
            w = child(d)
            assert w["cached"]
            colds.append(c)
            warms.append(w)
            n = c["n"]
        finally:
            shutil.rmtree(d, ignore_errors=True)
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    print(f"catalog entries: {n}")
    print("wall time (CPU time of the process in brackets: less sensitive to other load)")
    for label, rows, target in (("cold", colds, 1000), ("warm", warms, 300)):
        print(f"{label}  load {ms(med(rows, 'load'))} [{ms(med(rows, 'cpu_load'))}]   ready for search "
              f"{ms(med(rows, 'ready'))} [{ms(med(rows, 'cpu_ready'))}]   (target < {target} ms)")
    return d


def keystrokes(cat, word: str, mode: str, make, cpu: bool = False) -> tuple[float, float, int]:
    times = []
    hits = 0
    clock = time.process_time if cpu else time.perf_counter
    for k in range(1, len(word) + 1):
        pat = make(word[:k])
        t = clock()
        hits = len(cat.search_indices(pat, mode=mode, limit=None if mode != "fuzzy" else 100))
        times.append(clock() - t)
    return statistics.median(times), max(times), hits


def bench_search(cat, label: str) -> None:
    print(f"\nper-keystroke search over {len(cat)} entries ({label}); median / worst per keystroke, target < 30 ms"
          f"\n  (wall time, then CPU time in brackets; the first keystroke of a new letter also fills a cache)")
    for word in ("sched_switch", "do_sys_openat2", "tcp_sendmsg"):
        for mode, make in (("glob", lambda s: f"*{s}*"), ("regex", lambda s: s), ("fuzzy", lambda s: s)):
            med, worst, hits = keystrokes(cat, word, mode, make)
            cmed, cworst, _ = keystrokes(cat, word, mode, make, cpu=True)
            print(f"  {mode:5} typing {word!r:18} {ms(med)} / {ms(worst)}  [{ms(cmed)} / {ms(cworst)}]"
                  f"   ({hits} hits at the last key)")


def scaled(cat, factor: int = 2):
    """The same catalog with every name repeated ``factor`` times (suffix _xN): search at 122k+ entries."""
    import numpy as np

    from ktui.catalog.core import Catalog

    names = list(cat.names)
    for k in range(2, factor + 1):
        names += [f"{n}_x{k}" for n in cat.names]
    order = sorted(range(len(names)), key=names.__getitem__)
    names = [names[i] for i in order]
    idx = np.asarray(order) % len(cat.names)
    return Catalog(names, cat.kind[idx], cat.addr[idx], cat.mod[idx], cat.trace[idx], cat.ref[idx], cat.modules,
                   {}, cat.reasons, [], {}, origin="scaled")


def wall(cmd: list[str], env=None, runs: int = 3) -> tuple[float, str]:
    best = []
    out = ""
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        best.append(time.perf_counter() - t)
        out = r.stdout
    return statistics.median(best), out


def bench_vs_bpftrace(cache: str) -> None:
    bpftrace = shutil.which("bpftrace")
    print("\n`ktui list` vs `bpftrace -l` (wall time per run, median of 3, warm ktui cache; same run)")
    if not bpftrace:
        print("  bpftrace is not installed: no comparison")
        return
    env = dict(os.environ, KTUI_CACHE_DIR=cache)
    for pattern in ("tracepoint:*", "tracepoint:sched:*", "tracepoint:*:sys_enter_open*", "t:irq:*", "*"):
        kt, kout = wall([PY, "-m", "ktui", "list", pattern], env=env)
        bt, bout = wall([bpftrace, "-l", pattern])
        kl = sorted(kout.splitlines())
        bl = sorted(line for line in bout.splitlines() if line and not line.endswith(":"))
        same = "same list" if kl == bl else f"ktui {len(kl)} lines, bpftrace {len(bl)} lines"
        print(f"  {pattern:30} ktui {ms(kt)}  bpftrace {ms(bt)}  ratio ktui/bpftrace {kt / bt:5.2f}   ({same})")
    t, _ = wall([PY, "-c", "pass"])
    print(f"  (python interpreter start alone: {ms(t)})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.2f} (other work on the machine skews every figure)")
    bench_load(args.runs)
    cache = tempfile.mkdtemp(prefix="ktui-bench-")
    os.environ["KTUI_CACHE_DIR"] = cache
    try:
        from ktui.catalog import Catalog

        cat = Catalog.load()
        cat._ensure_text()
        cat._ensure_fuzzy_text()
        bench_search(cat, "this machine")
        big = scaled(cat, 2)
        big._ensure_text()
        big._ensure_fuzzy_text()
        bench_search(big, "names doubled, to exceed 122k")
        bench_vs_bpftrace(cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
