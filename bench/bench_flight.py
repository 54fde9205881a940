"""The flight recorder's memory and disk over a long ring (issue 15: bounded however long it runs).

Runs the real `ktui record` twice on the same load (bench/loadgen.c: getppid flat out on one
thread, traced by its tgid through `-- loadgen`), for the same time:
  - baseline: a plain recording of every event;
  - flight: `--ring RING --trigger 'pid == 1'` (a trigger that never fires: everything stays in the ring).
Samples the recorder's RSS every 0.5 s and prints, per run, the peak RSS, the RSS over the last
third (flat when bounded), the events seen and the file size. The ring is bounded in time and
in bytes (RING_BYTES_DEFAULT): at this rate RING seconds do not fit, the oldest go first.

    sudo .venv/bin/python bench/bench_flight.py [--seconds 30] [--ring 600]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_engine import build_loadgen  # noqa: E402
from ktui.recording.flight import RING_BYTES_DEFAULT  # noqa: E402
from ktui.recording.reader import RecordingReader  # noqa: E402


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(tmp: Path, loadgen: str, seconds: float, extra: list[str], name: str) -> dict:
    out = tmp / f"{name}.ktrec"
    argv = [sys.executable, "-m", "ktui", "record", "tracepoint:syscalls:sys_enter_getppid", "-o", str(out), "-q",
            *extra, "--", loadgen, str(seconds + 15), "0", "1"]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    t0 = None
    while proc.poll() is None:
        time.sleep(0.5)
        if t0 is None:  # count from the moment the command runs: after compiling and attaching
            if _children(proc.pid):
                t0 = time.monotonic()
            continue
        samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
        if time.monotonic() - t0 >= seconds:
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    with RecordingReader.open(out) as rec:
        flight = rec.meta.get("flight") or {}
        events = rec.count()
    last = [r for t, r in samples if t >= seconds * 2 / 3]
    quarters = [max((r for t, r in samples if t <= seconds * q / 4), default=0.0) for q in (1, 2, 3, 4)]
    return {"name": name, "quarters": quarters, "peak": max(r for _, r in samples), "last_min": min(last), "last_max": max(last),
            "events_on_disk": events, "seen": flight.get("events_seen"), "overflowed": flight.get("events_overflowed"),
            "file_mb": out.stat().st_size / 1e6, "stderr": err.strip().splitlines()[-1:]}


def _children(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--ring", type=float, default=600.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_flight needs root (it traces)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        loadgen = build_loadgen(tmp)
        base = run(tmp, loadgen, args.seconds, [], "baseline")
        flight = run(tmp, loadgen, args.seconds, ["--ring", str(args.ring), "--trigger", "pid == 1"], "flight")
    print(f"{args.seconds:g} s of getppid flat out; flight ring {args.ring:g} s, "
          f"byte budget {RING_BYTES_DEFAULT >> 20} MiB")
    for r in (base, flight):
        print(f"{r['name']:>8}: peak RSS {r['peak']:.0f} MB, last third {r['last_min']:.0f}-{r['last_max']:.0f} MB, "
              f"file {r['file_mb']:.1f} MB, {r['events_on_disk']:,} events on disk"
              + (f", {r['seen']:,} seen, {r['overflowed']:,} let go by the byte budget" if r["seen"] is not None else ""))
        print(f"          peak RSS by quarter of the run: {', '.join(f'{q:.0f}' for q in r['quarters'])} MB")
    print(f"flight/baseline peak RSS: {flight['peak'] / base['peak']:.2f}; "
          f"flight file {flight['file_mb']:.2f} MB vs {base['file_mb']:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
