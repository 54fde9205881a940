"""In-kernel histograms (log2 and linear) read out of their maps as Histogram buckets.

The one definition of the slot layout: the compiler emits ``log2_slot_c``, the recording's chunk
summaries (replay windows, diffs) use ``log2_slots``, and every reader turns slots into buckets here.
- log2: slot = bpf_log2l(value), BCC's helper: 0 and 1 both land in slot 1, and
  slot k >= 2 holds [2^(k-1), 2^k). A signed value below zero is never folded into them (a
  read's -EISDIR is not a 0-byte read): slot NEGATIVE + k holds its mirror, [-2^k, -2^(k-1)), by
  bpf_log2l(~x) (slot NEGATIVE + 1 holds [-2, 0)), so bounds stay powers of two.
- linear: slot 0 holds values below lo, slot i in 1..n holds
  [lo + (i-1)*step, lo + i*step), slot n+1 holds hi and above.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ktui.events import Histogram

INT_MIN, INT_MAX = -(1 << 63), 1 << 63
NEGATIVE = 64  # slot NEGATIVE + k mirrors slot k for values below zero
LOG2_SLOTS = 2 * NEGATIVE + 1  # slots 0..64 for values >= 0 (as u64), 65..128 for values < 0
_POW2 = np.array([1 << i for i in range(64)], dtype=np.uint64)  # 2^0 .. 2^63, for bit lengths


def log2_bounds(slot: int) -> tuple[int, int]:
    if slot > NEGATIVE:
        low, high = log2_bounds(slot - NEGATIVE)
        return (-high, -low)
    if slot <= 1:
        return (0, 2) if slot == 1 else (0, 1)
    return (1 << (slot - 1), 1 << slot)


def log2_slot(value: int, signed: bool) -> int:
    """The slot the compiled program gives ``value`` (the reference for the C and numpy forms)."""
    if signed and value < 0:
        return NEGATIVE + max((~value).bit_length(), 1)
    return max((value % (1 << 64)).bit_length(), 1)


def log2_slot_c(expr: str, signed: bool) -> str:
    """C for the slot of ``expr``, as ``log2_slot`` (bpf_log2l(v) is v's bit length, at least 1)."""
    if not signed:
        return f"bpf_log2l((u64)({expr}))"
    return f"((s64)({expr}) < 0 ? {NEGATIVE} + bpf_log2l(~(u64)(s64)({expr})) : bpf_log2l((u64)({expr})))"


def log2_slots(values: np.ndarray) -> np.ndarray:
    """``log2_slot`` for an array: signed when its dtype is (as the compiler's operand is)."""
    if values.dtype.kind == "i":
        v = values.astype(np.int64)
        neg = v < 0
        magnitude = np.where(neg, ~v, v).view(np.uint64)
        return (np.maximum(np.searchsorted(_POW2, magnitude, side="right"), 1) + np.where(neg, NEGATIVE, 0)
                ).astype(np.int64)
    u = values.astype(np.uint64)
    return np.maximum(np.searchsorted(_POW2, u, side="right"), 1).astype(np.int64)


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
    return sorted(out)  # by value: negative slots come after the positive ones


def read_histogram(bpf: Any, map_name: str, probe_id: int, spec: dict[str, Any]) -> Histogram:
    table = bpf.get_table(map_name.encode())
    counts: dict[int, int] = {}
    for key, value in table.items():
        slot = int(getattr(key, "value", key))
        counts[slot] = counts.get(slot, 0) + _count(value)
    return Histogram(probe_id, str(spec.get("value") or "value"), str(spec.get("scale", "log2")),
                     buckets_from_slots(counts, spec))
