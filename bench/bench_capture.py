#!/usr/bin/env python3
"""Zero-script capture: what recording every field of a tracepoint costs against recording
none of them, measured in the same run, on this machine.

    .venv/bin/python bench/bench_capture.py [--seconds 2] [--repeat 5]

A load generator opens and closes /etc/hostname in a loop under `ktui record` of
`tracepoint:syscalls:sys_enter_openat`, streaming every event to disk:
  * "none": the probe fetches nothing (only the 56-byte header every event carries);
  * "all": nothing ticked, so ktui records every field decoded by type (dfd, filename as a
    64-byte string read from user memory, flags, mode), as the kernel's own trace line shows;
  * "off": no probe, the load alone.
Rounds alternate the order; the figures are medians of the load's open/close rate and of
the events each recording holds. Needs root, BCC and gcc. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = "syscalls:sys_enter_openat"


def build(tmp: Path) -> str:
    out = tmp / "openloop"
    subprocess.run(["gcc", "-O2", "-o", str(out), str(ROOT / "bench" / "openloop.c")], check=True)
    return str(out)


def session_file(tmp: Path, name: str, fetch_nothing: bool) -> Path:
    from ktui.probes.model import Builtin, Fetch, Probe, ProbeKind
    from ktui.session import Session

    # A fetch of the header's own pid adds no column: the probe records the header alone.
    fetches = [Fetch("pid", Builtin("pid"))] if fetch_nothing else []
    path = tmp / f"{name}.toml"
    Session([Probe(ProbeKind.TRACEPOINT, SPEC, fetches=fetches)]).save(path)
    return path


def parse(out: str) -> float:
    return float(out.split()[-1])


def record(loop: str, seconds: float, session: Path | None, tmp: Path, n: int) -> tuple[float, int, int]:
    """(open/close calls per second, events recorded, record bytes per event)."""
    if session is None:
        out = subprocess.run([loop, str(seconds)], capture_output=True, text=True, check=True).stdout
        return parse(out), 0, 0
    rec = tmp / f"r{n}.ktrec"
    proc = subprocess.run([sys.executable, "-W", "ignore", "-m", "ktui", "record", "-q", "--session", str(session),
                           "-o", str(rec), "--", loop, str(seconds)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    from ktui.recording import RecordingReader

    with RecordingReader.open(rec) as r:
        events = r.count()
        size = next(iter(r.layouts.values())).record_size
    rec.unlink()
    return parse(proc.stdout), events, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        loop = build(tmp)
        variants = {"off": None, "none": session_file(tmp, "none", True), "all": session_file(tmp, "all", False)}
        results: dict[str, list[tuple[float, int, int]]] = {k: [] for k in variants}
        order = list(variants)
        for i in range(args.repeat):
            for name in (order if i % 2 == 0 else order[::-1]):
                results[name].append(record(loop, args.seconds, variants[name], tmp, i))
        rate = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
        events = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
        size = {k: v[0][2] for k, v in results.items()}
        print(f"open/close loop, {args.seconds:g} s x {args.repeat} rounds (medians), tracepoint:{SPEC} streamed to disk")
        print(f"  no probe:               {rate['off'] / 1e3:8.1f} k opens/s")
        print(f"  fetch nothing ({size['none']:3d} B): {rate['none'] / 1e3:8.1f} k opens/s, "
              f"{events['none'] / args.seconds / 1e3:8.1f} k events/s recorded")
        print(f"  every field  ({size['all']:3d} B): {rate['all'] / 1e3:8.1f} k opens/s, "
              f"{events['all'] / args.seconds / 1e3:8.1f} k events/s recorded")
        print(f"  every field / nothing: load rate {rate['all'] / rate['none']:.3f}, "
              f"events {events['all'] / max(events['none'], 1):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
