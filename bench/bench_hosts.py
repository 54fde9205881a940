#!/usr/bin/env python3
"""Several hosts: what the stream costs, each figure against a baseline measured in the same run.

    .venv/bin/python bench/bench_hosts.py [--seconds 3] [--rounds 3]

Events/s delivered to the local side under one getppid producer (bench/loadgen.c, filtered to
its pid) through `ktui stream` read by HostsSource over a pipe (the frames, the decoding, the
clock shift and the merge; ssh's own encryption is not in it), against the same engine's
LiveSource delivering in this process (the baseline). Also the clock estimate over the pipe:
offset (should be 0: same clock) and its stated uncertainty. Needs root, BCC, gcc. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GETPPID = "tracepoint:syscalls:sys_enter_getppid"


def build_loadgen(tmp: Path) -> str:
    out = tmp / "loadgen"
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(out), str(ROOT / "bench" / "loadgen.c")], check=True)
    return str(out)


def held_load(loadgen: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(["sh", "-c", f'read _; exec "{loadgen}" {seconds} 0 1'], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def release(proc: subprocess.Popen) -> dict:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.close()
    out = proc.stdout.read()
    proc.wait()
    calls, secs, rate = out.split()[-3:]
    return {"calls": int(calls), "rate": float(rate)}


def through_stream(loadgen: str, seconds: float) -> dict:
    from ktui.remote.hosts import HostLink
    from ktui.remote.source import HostsSource

    load = held_load(loadgen, seconds)
    link = HostLink("bench", [sys.executable, "-W", "ignore", "-m", "ktui", "stream", "--filter",
                              f"pid == {load.pid}", "--", GETPPID])
    source = HostsSource([link])
    got = [0]
    source.start(lambda u: got.__setitem__(0, got[0] + sum(len(a) for a in u.events.values())))
    t0 = time.monotonic()
    load_figures = release(load)
    source.stop()
    elapsed = time.monotonic() - t0
    (c,) = source.last_update.counters.values() if source.last_update else [None]
    totals = c.totals() if c is not None else {"hits": 0, "dropped": 0}
    return {"delivered": got[0], "rate": got[0] / min(elapsed, seconds), "hits": totals["hits"],
            "dropped": totals["dropped"], "calls": load_figures["calls"], "offset_ns": link.clock.offset_ns,
            "uncertainty_ns": link.clock.uncertainty_ns, "samples": link.clock.samples}


def in_process(loadgen: str, seconds: float) -> dict:
    from ktui.probes.spec import parse_spec
    from ktui.sources.live import LiveSource

    load = held_load(loadgen, seconds)
    probes = parse_spec(GETPPID)
    for p in probes:
        p.filter = f"pid == {load.pid}"
    source = LiveSource(probes)
    got = [0]
    source.prepare()
    source.start(lambda u: got.__setitem__(0, got[0] + sum(len(a) for a in u.events.values())))
    t0 = time.monotonic()
    load_figures = release(load)
    source.stop()
    elapsed = time.monotonic() - t0
    totals = source.last_update.counters[0].totals() if source.last_update else {"hits": 0, "dropped": 0}
    return {"delivered": got[0], "rate": got[0] / min(elapsed, seconds), "hits": totals["hits"],
            "dropped": totals["dropped"], "calls": load_figures["calls"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        loadgen = build_loadgen(Path(tmp))
        ratios = []
        for i in range(args.rounds):
            base = in_process(loadgen, args.seconds)
            remote = through_stream(loadgen, args.seconds)
            ratio = remote["rate"] / base["rate"] if base["rate"] else float("nan")
            ratios.append(ratio)
            print(f"round {i + 1}: in-process {base['rate']:,.0f} ev/s ({base['dropped']:,} dropped of "
                  f"{base['hits']:,}); through ktui stream {remote['rate']:,.0f} ev/s ({remote['dropped']:,} dropped "
                  f"of {remote['hits']:,}, delivered {remote['delivered']:,}); ratio {ratio:.2f}; clock offset "
                  f"{remote['offset_ns'] / 1e3:+.1f} us ± {remote['uncertainty_ns'] / 1e3:.1f} us "
                  f"({remote['samples']} round trips)", flush=True)
        print(f"median ratio, stream / in-process: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
