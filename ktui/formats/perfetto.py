"""Perfetto export, in the Chrome JSON trace event format (ui.perfetto.dev and chrome://tracing open it).

What it shows:
- one track per CPU (a synthetic "CPUs" process above Linux's pid range, one thread
  per CPU) holding every event as an instant, its values as args;
- entry/return pairs (kprobe/kretprobe, fentry/fexit, uprobe/uretprobe, syscall
  enter/exit) as slices on the thread that ran them, nested as they nest;
- a counter of events per CPU over time;
- process and thread names from the recorded comm.
Times are microseconds (the format's unit) with nanosecond decimals.

The trace is written as it is read, in bounded memory: each event is written when it is
read; only the entries still waiting for their return are held, and only for probes whose
return side is in the recording too (a kprobe without its kretprobe opens no slice), at
most MAX_OPEN deep per thread and function (deeper, the oldest is counted unpaired).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Collection
from typing import IO, Any

import numpy as np

from ktui.formats.rows import ordered_rows
from ktui.recording.reader import RecordingReader

CPUS_PID = 5_000_000  # above Linux's largest pid_max (2^22), so it never meets a real process
HEADER_KEYS = ("ts", "cpu", "pid", "tid", "comm", "probe")
MAX_OPEN = 1024  # entries waiting for their return, per thread and function (deeper recursion is lost returns)


def pair_key(spec: str) -> tuple[str, str, str] | None:
    """(pair id, "entry"|"return", slice name) for probes that open or close a slice."""
    kind, _, rest = spec.partition(":")
    if kind in ("kprobe", "fentry", "uprobe"):
        return (f"fn:{rest}", "entry", rest.rsplit(":", 1)[-1])
    if kind in ("kretprobe", "fexit", "uretprobe"):
        return (f"fn:{rest}", "return", rest.rsplit(":", 1)[-1])
    if kind == "tracepoint":
        if m := re.match(r"^syscalls:sys_(enter|exit)_(\w+)$", rest):
            return (f"syscall:{m[2]}", "entry" if m[1] == "enter" else "return", m[2])
        if rest in ("raw_syscalls:sys_enter", "raw_syscalls:sys_exit"):
            return ("syscall:raw", "entry" if rest.endswith("enter") else "return", "syscall")
    return None


def _paired(reader: RecordingReader) -> dict[str, tuple[str, str, str]]:
    """probe name -> pair_key, for probes whose other side is in the recording too."""
    keys = {lay.name: pair_key(lay.spec) for lay in reader.layouts.values()}
    sides: dict[str, set[str]] = defaultdict(set)
    for pk in keys.values():
        if pk is not None:
            sides[pk[0]].add(pk[1])
    return {name: pk for name, pk in keys.items() if pk is not None and sides[pk[0]] == {"entry", "return"}}


def _us(ts_ns: int) -> float:
    return ts_ns / 1000.0


def export_perfetto(reader: RecordingReader, out: IO[str], *, pid: int | None = None, probe_ids: Collection[int] | None = None) -> dict[str, int]:
    """Write the trace; returns counts of what was written (instants, slices, counters)."""
    pairs = _paired(reader)
    # (tid, pair) -> entries waiting for their return: (ts, pid, the entry's own values).
    open_entries: dict[tuple[int, str], list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    thread_names: dict[tuple[int, int], str] = {}
    cpus: set[int] = set()
    lo, hi = reader.time_range()
    bucket = max(1_000_000, (hi - lo) // 2000 + 1)
    nb = (hi - lo) // bucket + 1
    counts: dict[int, np.ndarray] = {}
    stats = {"instants": 0, "slices": 0, "unpaired": 0, "counters": 0}
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    first = True

    def emit(event: dict[str, Any]) -> None:
        nonlocal first
        out.write("\n" if first else ",\n")
        first = False
        out.write(dumps(event))

    out.write('{"displayTimeUnit":"ns","traceEvents":[')
    for row in ordered_rows(reader, pid=pid, probe_ids=probe_ids):
        cpu, tid, ts = row["cpu"], row["tid"], row["ts"]
        if cpu not in cpus:
            cpus.add(cpu)
            counts[cpu] = np.zeros(nb, dtype=np.int64)
        if lo <= ts <= hi:
            counts[cpu][(ts - lo) // bucket] += 1
        thread_names[(row["pid"], tid)] = row["comm"]
        args = {k: v for k, v in row.items() if k not in ("ts", "cpu", "probe")}
        emit({"ph": "i", "s": "t", "name": row["probe"], "pid": CPUS_PID, "tid": CPUS_PID + cpu,
              "ts": _us(ts), "args": args})
        stats["instants"] += 1
        pk = pairs.get(row["probe"])
        if pk is None:
            continue
        key, side, name = pk
        if side == "entry":
            waiting = open_entries[(tid, key)]
            if len(waiting) >= MAX_OPEN:
                del waiting[0]
                stats["unpaired"] += 1
            waiting.append((ts, row["pid"], {k: v for k, v in row.items() if k not in HEADER_KEYS}))
            continue
        stack = open_entries.get((tid, key))
        if not stack:
            stats["unpaired"] += 1
            continue
        entry_ts, entry_pid, slice_args = stack.pop()
        if not stack:
            del open_entries[(tid, key)]
        for k, v in row.items():
            if k not in HEADER_KEYS:
                slice_args[k if k not in slice_args else f"return.{k}"] = v
        emit({"ph": "X", "name": name, "pid": entry_pid, "tid": tid, "ts": _us(entry_ts),
              "dur": (ts - entry_ts) / 1000.0, "args": slice_args})
        stats["slices"] += 1
    stats["unpaired"] += sum(len(s) for s in open_entries.values())

    # Events per CPU over time, as one counter with a series per CPU.
    if counts:
        for b in range(nb):
            emit({"ph": "C", "name": f"events per {bucket / 1e6:g} ms", "pid": CPUS_PID, "ts": _us(lo + b * bucket),
                  "args": {f"cpu{c}": int(counts[c][b]) for c in sorted(counts)}})
            stats["counters"] += 1

    emit({"ph": "M", "name": "process_name", "pid": CPUS_PID, "args": {"name": f"CPUs ({reader.host})"}})
    emit({"ph": "M", "name": "process_sort_index", "pid": CPUS_PID, "args": {"sort_index": -1}})
    for c in sorted(cpus):
        emit({"ph": "M", "name": "thread_name", "pid": CPUS_PID, "tid": CPUS_PID + c, "args": {"name": f"CPU {c}"}})
        emit({"ph": "M", "name": "thread_sort_index", "pid": CPUS_PID, "tid": CPUS_PID + c, "args": {"sort_index": c}})
    processes: dict[int, str] = {}
    for (p, t), comm in sorted(thread_names.items()):
        emit({"ph": "M", "name": "thread_name", "pid": p, "tid": t, "args": {"name": comm}})
        if t == p or p not in processes:
            processes[p] = comm
    for p, comm in sorted(processes.items()):
        emit({"ph": "M", "name": "process_name", "pid": p, "args": {"name": comm}})
    other = {"source": "ktui", "host": reader.host, "kernel": reader.identity.release,
             "probes": {lay.name: lay.spec for lay in reader.layouts.values()}}
    out.write('\n],"otherData":' + dumps(other) + "}\n")
    return stats
