"""The session's counters: for every probe, the kernel's per-CPU counts (``counters.py``) joined
with what the drain delivered and the calls still running, and the COUNT tables derived from them.

Read after draining (see counters.py): delivered never runs ahead of the kernel's counts. The
kernel counters are read under the loader's lock (the units do not change during a read; the
per-CPU reads are a few bpf() calls, never a map walk).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ktui.engine.counters import DeliveredCounts, missed_returns, probe_counters
from ktui.engine.loader import Loader
from ktui.events import KeyCounts, ProbeCounters


def read_counters(loader: Loader, delivered: DeliveredCounts, in_flight: Mapping[int, int]) -> dict[int, ProbeCounters]:
    """Every loaded probe's counters (removed ones left out)."""
    out: dict[int, ProbeCounters] = {}
    with loader.lock:
        for unit in loader.units():
            if unit.counters is None:
                continue
            rows = unit.counters.read(unit.global_ids.keys())
            for local, gid in unit.global_ids.items():
                if gid in loader.removed:
                    continue
                cp = loader.compiled[gid]
                missed = 0
                if unit.entries is not None and "entries" in cp.maps:
                    calls, returns = unit.entries.calls_and_returns(local)
                    missed = missed_returns(calls, returns, in_flight.get(gid, 0))
                out[gid] = probe_counters(rows[local], delivered.get(gid) if cp.ring else None, missed)
    return out


def key_counts(loader: Loader, counters: Mapping[int, ProbeCounters],
               map_counts: Mapping[tuple[int, str], KeyCounts]) -> list[KeyCounts]:
    """Every COUNT action's table: by nothing or by cpu from the counters (hits - filtered per
    CPU), keyed ones as last read from their maps (``map_counts``)."""
    out: list[KeyCounts] = []
    for gid, cp in sorted(loader.compiled.items()):
        c = counters.get(gid) if gid not in loader.removed else None
        if c is None:
            continue
        for spec in cp.counts:
            if spec["map"] is not None:
                read = map_counts.get((gid, spec["map"]))
                out.append(read if read is not None else KeyCounts(gid, tuple(spec["key"]), []))
                continue
            per_cpu = [h - f for h, f in zip(c.hits, c.filtered)]
            rows: list[tuple[tuple[Any, ...], int]]
            if spec["key"] == ("cpu",):
                rows = sorted((((cpu,), n) for cpu, n in enumerate(per_cpu) if n > 0), key=lambda r: -r[1])
            else:
                rows = [((), sum(per_cpu))]
            out.append(KeyCounts(gid, tuple(spec["key"]), rows))
    return out
