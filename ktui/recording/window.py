"""A recording seen through a time window: event rates for a timeline, and the panes' aggregates
recomputed over [start, end) from the recorded events, in bulk with numpy.

Two questions, two costs:

- ``rate_bins``: how many events fall in each of N equal bins across a span. Answered from the
  chunk index alone (each chunk's first and last time and count, spread evenly inside the
  chunk): no chunk is decoded, so a timeline over a 10 M event recording is drawn at once. A
  chunk spans at most the writer's ``max_age_s`` (0.5 s), so the spread is finer than any bin
  of a timeline over more than a few seconds. Old recordings need no extra index for it.
- ``window_aggregates``: the exact per-CPU counts (with a per-CPU rate history), stacks,
  histograms and COUNT tables of the events in a window. Whole chunks inside the window add up
  their summaries (ktui.recording.summary): kept in the file by the writer, or made here once
  and kept in the caller's cache for files without them. Only the chunks the window cuts (and
  chunks without a usable stored summary) are decoded, one at a time, each reduced with
  bincount/unique before the next is read.

A probe that kept no events (aggregation only: counts, stacks or histograms in the kernel)
cannot be recomputed for a part of the recording: it is named in ``not_recomputed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ktui.engine.histograms import buckets_from_slots
from ktui.errors import FileFormatError
from ktui.events import Histogram, KeyCounts, ProbeCounters, StackTrace
from ktui.probes.model import Action, ActionKind
from ktui.recording.reader import ChunkInfo, RecordingReader
from ktui.recording.schema import KeyValues
from ktui.recording.summary import SUB_BINS, ChunkSummary, actions_key, summarize

HISTORY_BINS = 12  # rate samples per CPU across a window (the CPUs pane's sparkline)
COUNT_ROWS_MAX = 500  # as the live engine hands on
STACKS_MAX = 2000  # distinct (kernel, user, pid) stacks symbolized per window


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
    # Probes whose events are only counted in the kernel (no stream action, no events recorded): their
    # window counts are the counters' growth between the counters taken every second around the window
    # (1 s resolution, not exact at the window's bounds).
    coarse: list[int] = field(default_factory=list)
    coarse_s: float = 0.0  # the seconds the coarse counts were taken across (the window reached out to 1 s)
    # False for recordings older than the counters over time: lost (dropped) and filtered counts are
    # not known per window, and count-only probes have no window counts at all.
    losses_known: bool = True

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


_K = TypeVar("_K")


def _add(into: dict[_K, int], more: Mapping[_K, int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


class Cancelled(Exception):
    """The window was replaced by a newer one before its aggregates were done."""


def window_aggregates(reader: RecordingReader, start_ns: int, end_ns: int, bins: int = HISTORY_BINS,
                      cancelled: Callable[[], bool] | None = None,
                      cache: dict[int, ChunkSummary] | None = None) -> WindowAggregates:
    """Aggregates of the events with start_ns <= ts < end_ns (the recording's own clock and ids).

    Chunks wholly inside the window use the summary the writer stored, or are summarized once
    and kept in ``cache`` (by chunk id); chunks the window cuts are decoded and their part
    summarized. ``cancelled`` is asked between
    chunks: when it says so, ``Cancelled`` is raised. The per-CPU rate history spreads each
    summary's sub-bins by their middle time: exact totals, a history as fine as the chunks.
    """
    actions = {pid: _actions(reader, pid) for pid in reader.layouts}
    reduced_for = {pid: actions_key(acts, reader.layouts[pid].dtype.names or ()) for pid, acts in actions.items()}
    ncpu = max((len(c.hits) for c in reader.counters().values()), default=1)
    hits: dict[int, np.ndarray] = {}
    hist: dict[int, np.ndarray] = {}
    stacks: dict[int, dict[tuple[int, int, int], int]] = {}
    slots: dict[int, dict[str, dict[int, int]]] = {}
    keys: dict[int, dict[tuple[str, ...], dict[KeyValues, int]]] = {}
    span = max(end_ns - start_ns, 1)
    for c in reader.chunks_between(start_ns, end_ns):
        if cancelled is not None and cancelled():
            raise Cancelled
        whole = c.first_ts >= start_ns and c.last_ts < end_ns
        summary = cache.get(c.id) if cache is not None and whole else None
        if summary is None and whole:
            summary = reader.stored_summary(c, reduced_for.get(c.probe_id, ""))
            if summary is not None and cache is not None:
                cache[c.id] = summary
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


def _with_losses(delivered: list[int], across: ProbeCounters | None) -> ProbeCounters:
    """A window's counters: its events per CPU delivered, plus the drops and filtered hits counted across it."""
    if across is None:
        zeros = [0] * len(delivered)
        return ProbeCounters(list(delivered), list(delivered), zeros, list(zeros))
    n = max(len(delivered), len(across.dropped), len(across.filtered))

    def pad(values: list[int]) -> list[int]:
        return list(values) + [0] * (n - len(values))

    d, dropped, filtered = pad(delivered), pad(across.dropped), pad(across.filtered)
    return ProbeCounters([a + b + c for a, b, c in zip(d, dropped, filtered)], d, dropped, filtered, across.missed)


def _result(reader: RecordingReader, start_ns: int, end_ns: int, bins: int, actions: dict[int, list[Action]],
            hits: dict[int, np.ndarray], hist: dict[int, np.ndarray], stacks: dict[int, dict[tuple[int, int, int], int]],
            slots: dict[int, dict[str, dict[int, int]]], keys: dict[int, dict[tuple[str, ...], dict[KeyValues, int]]]
            ) -> WindowAggregates:
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

    # Lost events have no record to count: their counts are the counters' change across the window
    # (taken about every second while recording; older files without them show none).
    known = reader.counters_across(start_ns, end_ns)
    across = known or {}
    kept_events = {c.probe_id for c in reader.chunks}
    coarse = []
    for probe_id in sorted(set(hits) | set(across)):
        if probe_id not in kept_events and not any(a.kind == ActionKind.STREAM for a in actions.get(probe_id, ())):
            # counted in the kernel only: the counters taken every second are all the file knows of it
            c = across[probe_id]
            counters[probe_id] = c
            history[probe_id] = [[] for _ in c.hits]
            coarse.append(probe_id)
            continue
        if probe_id not in hits:  # every hit lost or filtered out: no events, but counts
            c = across[probe_id]
            zeros = [0] * max(len(c.dropped), len(c.filtered))
            counters[probe_id] = _with_losses(zeros, c)
            history[probe_id] = [[0.0] * bins for _ in zeros]
            continue
        cpu_hits = hits[probe_id].tolist()
        total += sum(cpu_hits)
        counters[probe_id] = _with_losses(cpu_hits, across.get(probe_id))
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
    missing = sorted(p for p in recorded if p not in kept_events)  # aggregation only: nothing to recompute
    traces.sort(key=lambda s: -s.count)
    span = reader.counters_span(start_ns, end_ns) if coarse else None
    coarse_s = (span[1] - span[0]) / 1e9 if span is not None else 0.0
    return WindowAggregates(start_ns, end_ns, total, counters, history, traces, histograms, counts, missing,
                            coarse, coarse_s, known is not None)


__all__ = ["Cancelled", "ChunkSummary", "rate_bins", "summarize", "window_aggregates", "WindowAggregates", "HISTORY_BINS"]
