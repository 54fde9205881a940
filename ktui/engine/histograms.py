"""In-kernel histograms (log2 and linear) read out of their maps as Histogram buckets.

The compiler's slot conventions (ktui/compiler/codegen.py):
- log2: slot = bpf_log2l(value), BCC's helper: 0 and 1 both land in slot 1, and
  slot k >= 2 holds [2^(k-1), 2^k).
- linear: slot 0 holds values below lo, slot i in 1..n holds
  [lo + (i-1)*step, lo + i*step), slot n+1 holds hi and above.
"""

from __future__ import annotations

from typing import Any

from ktui.events import Histogram

INT_MIN, INT_MAX = -(1 << 63), 1 << 63


def log2_bounds(slot: int) -> tuple[int, int]:
    if slot <= 1:
        return (0, 2) if slot == 1 else (0, 1)
    return (1 << (slot - 1), 1 << slot)


def linear_bounds(slot: int, lo: int, hi: int, step: int) -> tuple[int, int]:
    n = -(-(hi - lo) // step)
    if slot <= 0:
        return (INT_MIN, lo)
    if slot > n:
        return (hi, INT_MAX)
    low = lo + (slot - 1) * step
    return (low, min(low + step, hi))


def _count(value: Any) -> int:
    if isinstance(value, (list, tuple)):  # per-CPU values
        return sum(_count(v) for v in value)
    return int(getattr(value, "value", value))


def buckets_from_slots(counts: dict[int, int], spec: dict[str, Any]) -> list[tuple[int, int, int]]:
    scale = str(spec.get("scale", "log2"))
    out = []
    for slot in sorted(counts):
        if not counts[slot]:
            continue
        if scale == "linear":
            low, high = linear_bounds(slot, int(spec.get("lo", 0)), int(spec.get("hi", 0)), max(int(spec.get("step", 1)), 1))
        else:
            low, high = log2_bounds(slot)
        out.append((low, high, counts[slot]))
    return out


def read_histogram(bpf: Any, map_name: str, probe_id: int, spec: dict[str, Any]) -> Histogram:
    table = bpf.get_table(map_name.encode())
    counts: dict[int, int] = {}
    for key, value in table.items():
        slot = int(getattr(key, "value", key))
        counts[slot] = counts.get(slot, 0) + _count(value)
    return Histogram(probe_id, str(spec.get("value") or "value"), str(spec.get("scale", "log2")),
                     buckets_from_slots(counts, spec))
