"""A recording seen through a time window: event rates for a timeline, and the panes' aggregates
recomputed over [start, end) from the recorded events, in bulk with numpy.

Two questions, two costs:

- ``rate_bins``: how many events fall in each of N equal bins across a span. Answered from the
  chunk index alone (each chunk's first and last time and count, spread evenly inside the
  chunk): no chunk is decoded, so a timeline over a 10 M event recording is drawn at once. A
  chunk spans at most the writer's ``max_age_s`` (0.5 s), so the spread is finer than any bin
  of a timeline over more than a few seconds. Old recordings need no extra index for it.
- ``window_aggregates``: the exact per-CPU counts (with a per-CPU rate history), stacks,
  histograms and COUNT tables of the events in a window. The chunks the window covers are
  decoded (one at a time, bounded memory); each is reduced with bincount/unique before the
  next is read.

A probe that kept no events (aggregation only: counts, stacks or histograms in the kernel)
cannot be recomputed for a part of the recording: it is named in ``not_recomputed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ktui.engine.histograms import buckets_from_slots
from ktui.errors import FileFormatError
from ktui.events import Histogram, KeyCounts, ProbeCounters, StackTrace
from ktui.probes.model import Action, ActionKind
from ktui.recording.reader import ChunkInfo, RecordingReader

HISTORY_BINS = 12  # rate samples per CPU across a window (the CPUs pane's sparkline)
COUNT_ROWS_MAX = 500  # as the live engine hands on
STACKS_MAX = 2000  # distinct (kernel, user, pid) stacks symbolized per window
_POW2 = np.array([1 << i for i in range(64)], dtype=np.uint64)  # 2^0 .. 2^63, for bit lengths


def rate_bins(chunks: Iterable[ChunkInfo], start_ns: int, end_ns: int, n: int) -> np.ndarray:
    """Events per bin (float, n bins over [start_ns, end_ns)), each chunk's count spread evenly
    over [first_ts, last_ts + 1). Sums to the events in the span (up to rounding at its ends)."""
    out = np.zeros(n, dtype=np.float64)
    span = end_ns - start_ns
    if n <= 0 or span <= 0:
        return out
    rows = [(c.first_ts, c.last_ts + 1, c.count) for c in chunks if c.last_ts >= start_ns and c.first_ts < end_ns]
    if not rows:
        return out
    arr = np.array(rows, dtype=np.float64)
    first, last, count = arr[:, 0], arr[:, 1], arr[:, 2]
    edges = start_ns + np.arange(n + 1, dtype=np.float64) * (span / n)
    for lo in range(0, len(arr), 4096):  # bounded memory: a block of chunks against every edge
        f, la, c = first[lo:lo + 4096, None], last[lo:lo + 4096, None], count[lo:lo + 4096, None]
        before = c * np.clip((edges[None, :] - f) / (la - f), 0.0, 1.0)  # each chunk's events before each edge
        out += np.diff(before.sum(axis=0))
    return out


SUB_BINS = 16  # per-CPU counts kept per chunk summary, evenly over its time span (for rate histories)


@dataclass
class ChunkSummary:
    """One chunk's events (or the part of one inside a window) reduced to what the panes aggregate.

    Summaries of whole chunks are kept by the caller (``cache``), so a later window over them adds
    up summaries instead of decoding again; the file is never written.
    """

    probe_id: int
    t0: int  # first and last event time summarized
    t1: int
    cpu_hits: np.ndarray  # events per CPU
    cpu_sub: np.ndarray  # [cpu, SUB_BINS] events, bins evenly over [t0, t1]
    stacks: dict[tuple[int, int, int], int] = field(default_factory=dict)  # (kstack, ustack, pid or -1) -> n
    slots: dict[str, dict[int, int]] = field(default_factory=dict)  # histogram value -> slot -> n
    keys: dict[tuple[str, ...], dict[tuple, int]] = field(default_factory=dict)  # COUNT key names -> key -> n

    @property
    def events(self) -> int:
        return int(self.cpu_hits.sum())


def _count_rows(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of equal-length columns: (index of one row of each, how many), in bulk.

    Rows are hashed to one u64 and the hashes counted (a sort of integers, not of rows); every
    row is then compared with its group's representative, and only when two different rows
    share a hash are the rows counted exactly.
    """
    n = len(columns[0])
    packed = np.zeros(n, dtype=[(f"c{i}", c.dtype) for i, c in enumerate(columns)])
    for i, c in enumerate(columns):
        packed[f"c{i}"] = c
    raw = packed.view(np.uint8).reshape(n, -1)
    pad = (-raw.shape[1]) % 8
    if pad:
        raw = np.hstack([raw, np.zeros((n, pad), np.uint8)])
    words = np.ascontiguousarray(raw).view(np.uint64)
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            h = (h ^ words[:, j]) * np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(29)
    _, first, inverse, counts = np.unique(h, return_index=True, return_inverse=True, return_counts=True)
    if bool(np.all(raw == raw[first[inverse]])):
        return first, counts
    _, first, counts = np.unique(packed, return_index=True, return_counts=True)  # a collision: exact
    return first, counts


def summarize(arr: np.ndarray, actions: Iterable[Action]) -> ChunkSummary:
    """One probe's records (sorted by time, non-empty) reduced: per-CPU counts and sub-bins, stacks,
    histogram slots and COUNT keys (for the probe's hist and count actions whose values it records)."""
    probe_id = int(arr["probe"][0])
    ts = arr["ts"].astype(np.int64)
    t0, t1 = int(ts[0]), int(ts[-1])
    cpu = arr["cpu"].astype(np.int64)
    ncpu = int(cpu.max()) + 1
    sub = ((ts - t0) * SUB_BINS // max(t1 - t0 + 1, 1)).clip(0, SUB_BINS - 1)
    out = ChunkSummary(probe_id, t0, t1, np.bincount(cpu, minlength=ncpu),
                       np.bincount(cpu * SUB_BINS + sub, minlength=ncpu * SUB_BINS).reshape(ncpu, SUB_BINS))
    k, u = arr["kstack"].astype(np.int64), arr["ustack"].astype(np.int64)
    has = (k >= 0) | (u >= 0)
    if has.any():
        k, u = k[has], u[has]
        if bool((u < 0).all()) and int(k.max()) < 1 << 20:  # kernel stacks only: count ids directly
            counts = np.bincount(k)
            out.stacks = {(int(i), -1, -1): int(counts[i]) for i in np.flatnonzero(counts)}
        else:  # pid matters only for user frames (their symbols are per process)
            pid = np.where(u >= 0, arr["pid"][has].astype(np.int64), -1)
            first, counts = _count_rows([k, u, pid])
            out.stacks = {(int(k[i]), int(u[i]), int(pid[i])): int(n) for i, n in zip(first, counts)}
    names = arr.dtype.names or ()
    for action in actions:
        if action.kind == ActionKind.HIST and action.value and action.value in names:
            counts = np.bincount(_slots(arr[action.value], action))
            out.slots[action.value] = {int(i): int(counts[i]) for i in np.flatnonzero(counts)}
        elif action.kind == ActionKind.COUNT and action.key and all(k_ in names for k_ in action.key):
            first, counts = _count_rows([arr[name] for name in action.key])
            out.keys[action.key] = {tuple(_plain(arr[name][i]) for name in action.key): int(n)
                                    for i, n in zip(first, counts)}
    return out


@dataclass
class WindowAggregates:
    """What the panes show for [start_ns, end_ns) of one recording (its own probe ids and clock)."""

    start_ns: int
    end_ns: int
    events: int
    counters: dict[int, ProbeCounters]
    cpu_history: dict[int, list[list[float]]]  # probe -> per CPU -> events/s per bin
    stacks: list[StackTrace]
    histograms: list[Histogram]
    counts: list[KeyCounts]
    not_recomputed: list[int]  # probes with aggregates in the file but no recorded events at all

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 1) / 1e9


def _actions(reader: RecordingReader, probe_id: int) -> list[Action]:
    out = []
    for a in reader.probes.get(probe_id, {}).get("actions", []) or []:
        try:
            out.append(Action.from_dict(a))
        except FileFormatError:
            continue  # a damaged action: nothing to recompute for it
    return out


def _slots(values: np.ndarray, action: Action) -> np.ndarray:
    """Histogram slots by the compiler's conventions (ktui/engine/histograms.py)."""
    if action.scale == "linear":
        v = values.astype(np.int64) if values.dtype.kind in "iu" else values.astype(np.float64)
        n = -(-(action.hi - action.lo) // max(action.step, 1))
        inner = (v - action.lo) // max(action.step, 1) + 1
        return np.where(v < action.lo, 0, np.where(v >= action.hi, n + 1, inner)).astype(np.int64)
    # log2 as bpf_log2l on the value as u64: 0 and 1 in slot 1, [2^(k-1), 2^k) in slot k
    u = values.astype(np.int64).view(np.uint64) if values.dtype.kind == "i" else values.astype(np.uint64)
    return np.maximum(np.searchsorted(_POW2, u, side="right"), 1).astype(np.int64)


def _plain(value: object) -> object:
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).split(b"\0", 1)[0].decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _add(into: dict, more: dict) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


class Cancelled(Exception):
    """The window was replaced by a newer one before its aggregates were done."""


def window_aggregates(reader: RecordingReader, start_ns: int, end_ns: int, bins: int = HISTORY_BINS,
                      cancelled: Callable[[], bool] | None = None,
                      cache: dict[int, ChunkSummary] | None = None) -> WindowAggregates:
    """Aggregates of the events with start_ns <= ts < end_ns (the recording's own clock and ids).

    Chunks wholly inside the window are summarized once and kept in ``cache`` (by chunk id);
    chunks the window cuts are decoded and their part summarized. ``cancelled`` is asked between
    chunks: when it says so, ``Cancelled`` is raised. The per-CPU rate history spreads each
    summary's sub-bins by their middle time: exact totals, a history as fine as the chunks.
    """
    actions = {pid: _actions(reader, pid) for pid in reader.layouts}
    ncpu = max((len(c.hits) for c in reader.counters().values()), default=1)
    hits: dict[int, np.ndarray] = {}
    hist: dict[int, np.ndarray] = {}
    stacks: dict[int, dict[tuple[int, int, int], int]] = {}
    slots: dict[int, dict[str, dict[int, int]]] = {}
    keys: dict[int, dict[tuple[str, ...], dict[tuple, int]]] = {}
    span = max(end_ns - start_ns, 1)
    for c in reader.chunks_between(start_ns, end_ns):
        if cancelled is not None and cancelled():
            raise Cancelled
        whole = c.first_ts >= start_ns and c.last_ts < end_ns
        summary = cache.get(c.id) if cache is not None and whole else None
        if summary is None:
            data = reader.chunk_events(c)
            if data is None:
                continue
            if not whole:
                ts = data["ts"]
                data = data[int(np.searchsorted(ts, start_ns, "left")):int(np.searchsorted(ts, end_ns, "left"))]
                if not len(data):
                    continue
            summary = summarize(data, actions.get(c.probe_id, ()))
            if cache is not None and whole:
                cache[c.id] = summary
        p = summary.probe_id
        n = max(ncpu, len(summary.cpu_hits))
        h = hits.setdefault(p, np.zeros(n, np.int64))
        hb = hist.setdefault(p, np.zeros((n, bins), np.int64))
        if n > len(h):
            h = hits[p] = np.concatenate([h, np.zeros(n - len(h), np.int64)])
            hb = hist[p] = np.vstack([hb, np.zeros((n - len(hb), bins), np.int64)])
        m = len(summary.cpu_hits)
        h[:m] += summary.cpu_hits
        mids = summary.t0 + (np.arange(SUB_BINS) * 2 + 1) * (summary.t1 - summary.t0 + 1) // (2 * SUB_BINS)
        where = ((mids - start_ns) * bins // span).clip(0, bins - 1)
        for j in range(SUB_BINS):
            hb[:m, where[j]] += summary.cpu_sub[:, j]
        _add(stacks.setdefault(p, {}), summary.stacks)
        for value, slot_counts in summary.slots.items():
            _add(slots.setdefault(p, {}).setdefault(value, {}), slot_counts)
        for key, key_counts in summary.keys.items():
            _add(keys.setdefault(p, {}).setdefault(key, {}), key_counts)
    return _result(reader, start_ns, end_ns, bins, actions, hits, hist, stacks, slots, keys)


def _result(reader, start_ns, end_ns, bins, actions, hits, hist, stacks, slots, keys) -> WindowAggregates:
    counters: dict[int, ProbeCounters] = {}
    history: dict[int, list[list[float]]] = {}
    traces: list[StackTrace] = []
    histograms: list[Histogram] = []
    counts: list[KeyCounts] = []
    bin_s = max(end_ns - start_ns, 1) / 1e9 / bins
    total = 0
    frames: dict[tuple[int, bool, int], tuple[str, ...]] = {}

    def symbolized(stack_id: int, user: bool, pid: int) -> tuple[str, ...]:
        key = (stack_id, user, pid)
        if key not in frames:
            frames[key] = tuple(reader.stack_frames(stack_id, user, pid if user else None))
        return frames[key]

    for probe_id in sorted(hits):
        cpu_hits = hits[probe_id].tolist()
        total += sum(cpu_hits)
        zeros = [0] * len(cpu_hits)
        counters[probe_id] = ProbeCounters(cpu_hits, list(cpu_hits), list(zeros), list(zeros))
        history[probe_id] = [(row / bin_s).tolist() for row in hist[probe_id]]
        merged: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = {}
        for (k, u, pid), n in sorted(stacks.get(probe_id, {}).items(), key=lambda kv: -kv[1])[:STACKS_MAX]:
            key = (symbolized(k, False, pid), symbolized(u, True, pid))
            merged[key] = merged.get(key, 0) + n
        traces.extend(StackTrace(probe_id, kf, uf, n) for (kf, uf), n in merged.items())
        for action in actions.get(probe_id, ()):
            if action.kind == ActionKind.HIST and action.value in slots.get(probe_id, {}):
                spec = {"scale": action.scale, "lo": action.lo, "hi": action.hi, "step": action.step}
                histograms.append(Histogram(probe_id, action.value or "value", action.scale,
                                            buckets_from_slots(slots[probe_id][action.value or ""], spec)))
            elif action.kind == ActionKind.COUNT and action.key in keys.get(probe_id, {}):
                rows = sorted(keys[probe_id][action.key].items(), key=lambda r: -r[1])[:COUNT_ROWS_MAX]
                counts.append(KeyCounts(probe_id, action.key, rows))
    recorded = {s.probe_id for s in reader.stacks()} | {h.probe_id for h in reader.histograms()} \
        | {k.probe_id for k in reader.key_counts()}
    kept_events = {c.probe_id for c in reader.chunks}
    missing = sorted(p for p in recorded if p not in kept_events)  # aggregation only: nothing to recompute
    traces.sort(key=lambda s: -s.count)
    return WindowAggregates(start_ns, end_ns, total, counters, history, traces, histograms, counts, missing)


__all__ = ["Cancelled", "ChunkSummary", "rate_bins", "summarize", "window_aggregates", "WindowAggregates", "HISTORY_BINS"]
