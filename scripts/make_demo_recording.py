#!/usr/bin/env python3
"""Make ktui/data/demo.ktrec, the recording the app shows when live tracing is impossible.

The data is real: this machine's own ftrace (scheduler and syscall tracepoints)
captured for a moment while a small workload runs, then imported with ktui's
ftrace importer. The capture uses a private tracefs instance, so the global trace
buffer and its settings are never touched, and the instance is removed after.

    sudo .venv/bin/python scripts/make_demo_recording.py            # capture and import
    .venv/bin/python scripts/make_demo_recording.py --from trace.txt  # import a saved capture
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ktui.formats.ftrace import import_ftrace  # noqa: E402
from ktui.kernel import tracefs_path  # noqa: E402
from ktui.recording import RecordingReader  # noqa: E402

DEMO = ROOT / "ktui" / "data" / "demo.ktrec"
EVENTS = [
    "sched/sched_switch", "sched/sched_wakeup", "sched/sched_process_fork", "sched/sched_process_exec",
    "sched/sched_process_exit", "syscalls/sys_enter_openat", "syscalls/sys_exit_openat",
    "syscalls/sys_enter_read", "syscalls/sys_exit_read", "signal/signal_generate",
]
WORKLOAD = [
    ["sh", "-c", "for i in 1 2 3 4 5; do cat /etc/hostname /etc/os-release > /dev/null; ls /nonexistent-$i; done"],
    ["python3", "-c", "import json, os; [open('/etc/passwd').read() for _ in range(20)]; os.listdir('/proc')"],
    ["sh", "-c", "echo -n 'demo worker' > /proc/self/comm; head -c 65536 /dev/urandom | gzip > /dev/null"],
]


def capture(seconds: float) -> str:
    tracefs = tracefs_path()
    if tracefs is None:
        raise SystemExit("tracefs is not available (need root)")
    inst = Path(tracefs) / "instances" / f"ktui-demo-{os.getpid()}"
    inst.mkdir()
    try:
        (inst / "buffer_size_kb").write_text("4096")
        for ev in EVENTS:
            enable = inst / "events" / ev / "enable"
            if enable.exists():
                enable.write_text("1")
        (inst / "tracing_on").write_text("1")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for cmd in WORKLOAD:
                subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.05)
        (inst / "tracing_on").write_text("0")
        return (inst / "trace").read_text(errors="surrogateescape")
    finally:
        (inst / "tracing_on").write_text("0")
        (inst / "set_event").write_text("")
        inst.rmdir()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", help="import this saved ftrace text instead of capturing")
    parser.add_argument("--seconds", type=float, default=1.0, help="how long to capture (default 1)")
    parser.add_argument("-o", "--output", default=str(DEMO))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text_path = Path(args.source) if args.source else Path(tmp) / "trace.txt"
        if not args.source:
            text_path.write_text(capture(args.seconds), errors="surrogateescape")
        report = import_ftrace(text_path, args.output, overwrite=True, host="ktui-demo")
    for line in report.problem_lines():
        print(line, file=sys.stderr)
    size = os.path.getsize(args.output)
    with RecordingReader.open(args.output) as r:
        span = (r.last_ts - r.first_ts) / 1e9
    print(f"{args.output}: {report.summary()}")
    print(f"{size} bytes, {span:.3f} s of events")
    if size >= 1_000_000:
        print("warning: the demo should stay under 1 MB; capture fewer seconds", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
