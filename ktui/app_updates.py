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
