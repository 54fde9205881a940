"""perf's software and hardware events by bpftrace's names: one table for the parser,
the compiler, the catalog and ``ktui doctor``.

    software:page-faults:100     s:faults:100     software:cpu-clock (default period)
    hardware:cache-misses:1000000                 h:cycles:1000000

The numbers are the kernel's ``perf_type_id`` and ``perf_sw_ids``/``perf_hw_id``
(include/uapi/linux/perf_event.h); the default periods are bpftrace's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ktui.numbers import Range

PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1


@dataclass(frozen=True)
class PerfEvent:
    kind: str  # "software" or "hardware"
    name: str  # bpftrace's (and perf's) name
    alias: str  # bpftrace's short name, "" if none
    config: int  # PERF_COUNT_SW_* / PERF_COUNT_HW_*
    default_period: int
    what: str

    @property
    def type(self) -> int:
        return PERF_TYPE_SOFTWARE if self.kind == "software" else PERF_TYPE_HARDWARE


SOFTWARE = (
    PerfEvent("software", "cpu-clock", "cpu", 0, 1_000_000, "CPU clock, a high-resolution per-CPU timer (ns)"),
    PerfEvent("software", "task-clock", "", 1, 1, "clock time the task runs (ns)"),
    PerfEvent("software", "page-faults", "faults", 2, 100, "page faults"),
    PerfEvent("software", "context-switches", "cs", 3, 1000, "context switches"),
    PerfEvent("software", "cpu-migrations", "", 4, 1, "moves of a task to another CPU"),
    PerfEvent("software", "minor-faults", "", 5, 100, "page faults served without I/O"),
    PerfEvent("software", "major-faults", "", 6, 1, "page faults that needed I/O"),
    PerfEvent("software", "alignment-faults", "", 7, 1, "unaligned accesses the kernel fixed up"),
    PerfEvent("software", "emulation-faults", "", 8, 1, "instructions the kernel emulated"),
    PerfEvent("software", "dummy", "", 9, 1, "a placeholder event that never counts"),
    PerfEvent("software", "bpf-output", "", 10, 1, "BPF programs' perf output"),
)

HARDWARE = (
    PerfEvent("hardware", "cpu-cycles", "cycles", 0, 1_000_000, "CPU cycles"),
    PerfEvent("hardware", "instructions", "", 1, 1_000_000, "instructions retired"),
    PerfEvent("hardware", "cache-references", "", 2, 1_000_000, "last-level cache accesses"),
    PerfEvent("hardware", "cache-misses", "", 3, 1_000_000, "last-level cache misses"),
    PerfEvent("hardware", "branch-instructions", "branches", 4, 100_000, "branch instructions retired"),
    PerfEvent("hardware", "branch-misses", "", 5, 100_000, "mispredicted branches"),
    PerfEvent("hardware", "bus-cycles", "", 6, 100_000, "bus cycles"),
    PerfEvent("hardware", "frontend-stalls", "", 7, 1_000_000, "cycles the front end stalled"),
    PerfEvent("hardware", "backend-stalls", "", 8, 1_000_000, "cycles the back end stalled"),
    PerfEvent("hardware", "ref-cycles", "", 9, 1_000_000, "reference cycles, unaffected by frequency scaling"),
)

EVENTS = SOFTWARE + HARDWARE
MAX_PERIOD = 1 << 62
PERF_PERIOD = Range(1, MAX_PERIOD, "a perf event's period (events per sample)")


def lookup(kind: str, name: str) -> PerfEvent | None:
    """The event ``name`` (or its alias) of ``kind`` ("software"/"hardware"), else None."""
    for ev in EVENTS:
        if ev.kind == kind and name in (ev.name, ev.alias):
            return ev
    return None


def by_config(kind: str, config: int) -> PerfEvent | None:
    for ev in EVENTS:
        if ev.kind == kind and ev.config == config:
            return ev
    return None


def names(kind: str) -> list[str]:
    return [ev.name for ev in EVENTS if ev.kind == kind]
