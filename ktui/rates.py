"""Rates and order of keyed COUNT tables (the top-style table): one rule for every place that shows them.

A COUNT table arrives as a full snapshot (key -> count so far) a few times a second. The rate of
a key is its count's growth over a time base of at least RATE_BASE_S seconds of the source's own
clock, measured against the baseline snapshot taken when the previous rate was fixed; between two
fixes the last rates stand, so the figures do not jitter with every redraw. Without a baseline
(the first snapshot, a clock that went backwards, a count that shrank because a new source started
from zero) the rate is unknown (None) rather than a guess. A key absent from the baseline counts
from zero: it appeared within the time base.

A replay's COUNT table is not a running snapshot but the total over a known span of the recording
(the whole recording, or the window selected on its timeline): its rate is that total over the
span's length, the average rate across it (``KeyRates.over_span``). Successive frames of a replay
repeat the same totals, which the live rule would read as no growth: rate 0.

The order: by count (default), by rate, or by the key itself; each either way. Rows with an
unknown rate sort as if their rate were 0. Ties keep the larger count first, then the key, so
the order is stable from one redraw to the next.

No Textual here: the widget renders what this module decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ktui.events import KeyCounts

RATE_BASE_S = 1.0  # shortest time base for a rate: shorter ones jitter with every redraw
SORT_COLUMNS = ("count", "rate", "key")


@dataclass(frozen=True)
class RatedRow:
    key: tuple[Any, ...]
    count: int
    rate: float | None  # per second of the source's clock; None until two snapshots are far enough apart


@dataclass
class _TableRates:
    base_s: float  # the baseline's time
    base: dict[tuple[Any, ...], int]  # the baseline's counts
    rates: dict[tuple[Any, ...], float] = field(default_factory=dict)  # fixed at the last time base
    has_rates: bool = False


class KeyRates:
    """Successive snapshots of COUNT tables in, rates per key out (see the module rule)."""

    def __init__(self, base_s: float = RATE_BASE_S) -> None:
        self.base_s = base_s
        self._tables: dict[tuple[int, tuple[str, ...]], _TableRates] = {}

    def reset(self) -> None:
        self._tables.clear()

    def observe(self, tables: Sequence[KeyCounts], now_s: float | None) -> None:
        """Takes one snapshot of every table at the source's time now_s (None: no clock, no rates)."""
        if now_s is None:
            self._tables.clear()
            return
        seen = set()
        for kc in tables:
            ident = (kc.probe_id, tuple(kc.key_names))
            seen.add(ident)
            counts = {tuple(values): n for values, n in kc.rows}
            state = self._tables.get(ident)
            shrank = state is not None and any(n < state.base.get(k, 0) for k, n in counts.items())
            if state is None or now_s < state.base_s or shrank:
                self._tables[ident] = _TableRates(now_s, counts)  # a fresh baseline: rates unknown
                continue
            span = now_s - state.base_s
            if span >= self.base_s:
                state.rates = {k: (n - state.base.get(k, 0)) / span for k, n in counts.items()}
                state.has_rates = True
                state.base_s, state.base = now_s, counts
        for gone in set(self._tables) - seen:
            del self._tables[gone]

    def over_span(self, tables: Sequence[KeyCounts], span_s: float | None) -> None:
        """Takes totals counted over span_s seconds (a replay's recording or window): each key's rate
        is its count over the span. No span, or an empty one, gives no rates."""
        self._tables.clear()
        if span_s is None or span_s <= 0:
            return
        for kc in tables:
            counts = {tuple(values): n for values, n in kc.rows}
            self._tables[(kc.probe_id, tuple(kc.key_names))] = _TableRates(
                0.0, counts, {k: n / span_s for k, n in counts.items()}, True)

    def rows(self, kc: KeyCounts) -> list[RatedRow]:
        """The table's rows with their rates, in the order they arrived."""
        state = self._tables.get((kc.probe_id, tuple(kc.key_names)))
        out = []
        for values, n in kc.rows:
            key = tuple(values)
            rate = None
            if state is not None and state.has_rates:
                rate = state.rates.get(key, 0.0)  # a key new since the last fix: no growth measured yet
            out.append(RatedRow(key, n, rate))
        return out


def _key_order(key: tuple[Any, ...]) -> tuple[tuple[int, Any], ...]:
    """Numbers before text, each in its natural order (bytes keys such as comm compare as text)."""
    out: list[tuple[int, Any]] = []
    for v in key:
        if isinstance(v, bytes):
            v = v.split(b"\0", 1)[0].decode(errors="replace")
        out.append((0, v) if isinstance(v, (int, float)) else (1, str(v)))
    return tuple(out)


def sort_rows(rows: Sequence[RatedRow], column: str = "count", reverse: bool = False) -> list[RatedRow]:
    """Rows in the table's order: by count or rate largest first, by key smallest first; reverse flips it."""
    if column not in SORT_COLUMNS:
        raise ValueError(f"cannot sort by {column!r}: one of {', '.join(SORT_COLUMNS)}")
    if column == "count":
        ordered = sorted(rows, key=lambda r: (-r.count, _key_order(r.key)))
    elif column == "rate":
        ordered = sorted(rows, key=lambda r: (-(r.rate or 0.0), -r.count, _key_order(r.key)))
    else:
        ordered = sorted(rows, key=lambda r: (_key_order(r.key), -r.count))
    return ordered[::-1] if reverse else ordered


def next_sort_column(column: str) -> str:
    """The column `s` moves the sort to: count -> rate -> key -> count."""
    i = SORT_COLUMNS.index(column) if column in SORT_COLUMNS else -1
    return SORT_COLUMNS[(i + 1) % len(SORT_COLUMNS)]


def sort_caption(column: str, reverse: bool) -> str:
    """What the header says about the order: ``sorted by count ↓`` (↓ largest first, ↑ smallest first)."""
    largest_first = (column != "key") != reverse
    return f"sorted by {column} {'↓' if largest_first else '↑'}"
