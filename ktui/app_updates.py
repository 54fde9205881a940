"""Coalescing Updates: when the UI is busy, a source's updates merge instead of queueing.

Events are deltas, so they are concatenated (nothing is lost); counters, stacks,
histograms and COUNT tables are snapshots, so the newer one wins. This keeps at most one update
message in the app's queue however fast the source is (toolong's ``can_replace``
idea, without dropping events).
"""

from __future__ import annotations

import numpy as np

from ktui.events import Update


def merge_updates(older: Update, newer: Update) -> Update:
    events = dict(older.events)
    for probe_id, arr in newer.events.items():
        if probe_id in events and len(events[probe_id]):
            events[probe_id] = np.concatenate([events[probe_id], arr]) if len(arr) else events[probe_id]
        else:
            events[probe_id] = arr
    return Update(
        events=events,
        counters=newer.counters or older.counters,
        probes=newer.probes or older.probes,
        stacks=newer.stacks or older.stacks,
        histograms=newer.histograms or older.histograms,
        counts=newer.counts or older.counts,
        now_ns=newer.now_ns or older.now_ns,
        elapsed_s=newer.elapsed_s or older.elapsed_s,
        message=newer.message or older.message,
        finished=older.finished or newer.finished,
    )


def merge_many(updates: list[Update]) -> Update:
    """Updates in arrival order as one: each probe's events concatenated once (merging pairwise
    would copy the growing arrays again for every update), the newest snapshots."""
    if len(updates) == 1:
        return updates[0]
    parts: dict[int, list[np.ndarray]] = {}
    for u in updates:
        for probe_id, arr in u.events.items():
            parts.setdefault(probe_id, []).append(arr)
    events = {pid: (arrs[0] if len(arrs) == 1 else np.concatenate([a for a in arrs if len(a)] or arrs[:1]))
              for pid, arrs in parts.items()}
    merged = Update(events=events, finished=any(u.finished for u in updates))
    for u in updates:  # the newest non-empty snapshot of each kind wins
        merged.counters = u.counters or merged.counters
        merged.probes = u.probes or merged.probes
        merged.stacks = u.stacks or merged.stacks
        merged.histograms = u.histograms or merged.histograms
        merged.counts = u.counts or merged.counts
        merged.now_ns = u.now_ns or merged.now_ns
        merged.elapsed_s = u.elapsed_s or merged.elapsed_s
        merged.message = u.message or merged.message
    return merged
