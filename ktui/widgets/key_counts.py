"""COUNT tables kept in the kernel, top-style: one table per COUNT action, its key columns, the
count, the rate per second and a bar. The order (count, rate or key; either way) is chosen with
`s` (next column) and `r` (reverse) and said in each table's header. Rates and the order are the
core's rules (ktui/rates.py); this widget only lays the rows out for the width it has: counts and
rates are never cut (they get their full width first), the bar shrinks or goes, and only a key
longer than what is left is cut."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from ktui.events import KeyCounts
from ktui.rates import KeyRates, RatedRow, next_sort_column, sort_caption, sort_rows
from ktui.textsafe import term_safe
from ktui.units import human_rate
from ktui.widgets.value_format import bar

MAX_ROWS = 50  # rows shown per table; the rest are summed into one line
BAR_W = 20  # the bar's width when there is room
KEY_W = 32  # a key column's widest, when the bar can give way
RATE_HEADER = "rate/s"


def key_text(value: Any) -> str:
    if isinstance(value, bytes):
        return term_safe(value.split(b"\0", 1)[0].decode(errors="replace"))
    return term_safe(value)


def rate_text(rate: float | None) -> str:
    return "-" if rate is None else human_rate(rate)


class KeyCountsView(Static):
    """Renders the KeyCounts it is given with their rates, in the chosen order."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.tables: list[KeyCounts] = []
        self.names: dict[int, str] = {}
        self.rates = KeyRates()
        self.sort_column = "count"
        self.sort_reverse = False
        self.display = False
        self.update(self._render_all())

    def set_counts(self, counts: list[KeyCounts], names: dict[int, str], now_s: float | None = None) -> None:
        """now_s: the source's clock for this snapshot (rates need it; None shows no rates)."""
        self.rates.observe(counts, now_s)
        if counts == self.tables and names == self.names and now_s is None:
            return
        self.tables = list(counts)
        self.names = dict(names)
        self.display = bool(self.tables)  # no keyed COUNT action: the CPU tables stand alone
        self.update(self._render_all())

    def reset(self) -> None:
        self.rates.reset()
        self.set_counts([], self.names)

    def cycle_sort(self) -> None:
        self.sort_column = next_sort_column(self.sort_column)
        self.update(self._render_all())

    def reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.update(self._render_all())

    def ordered_rows(self, kc: KeyCounts) -> list[RatedRow]:
        return sort_rows(self.rates.rows(kc), self.sort_column, self.sort_reverse)

    def on_resize(self) -> None:
        self.update(self._render_all())

    def _render_all(self) -> RenderableType:
        if not self.tables:
            return Text("")  # no COUNT action keyed by anything: nothing to show below the CPU tables
        width = self.size.width or 80
        return Group(*(self._table(kc, width) for kc in self.tables))

    def _table(self, kc: KeyCounts, width: int) -> Group:
        rows = self.ordered_rows(kc)
        total = sum(r.count for r in rows)
        name = term_safe(self.names.get(kc.probe_id, f"probe{kc.probe_id}"))
        title = Text(f"{name}  ", style="bold", no_wrap=True, overflow="ellipsis")
        title.append(f"count by {term_safe(', '.join(kc.key_names)) or 'nothing'}: {total:,} in {len(rows):,} keys, "
                     f"{sort_caption(self.sort_column, self.sort_reverse)}")
        shown = rows[:MAX_ROWS]
        keys = [[key_text(v) for v in r.key][:len(kc.key_names)] for r in shown]
        keys = [k + [""] * (len(kc.key_names) - len(k)) for k in keys]
        counts = [f"{r.count:,}" for r in shown]
        rates = [rate_text(r.rate) for r in shown]
        rest = sum(r.count for r in rows[MAX_ROWS:])
        count_w = max([len("count"), len(f"{rest:,}")] + [len(c) for c in counts])
        rate_w = max([len(RATE_HEADER)] + [len(r) for r in rates])
        key_ws = [max([len(k)] + [len(row[i]) for row in keys]) for i, k in enumerate(kc.key_names)]
        gaps = len(kc.key_names) + 2  # one space between columns
        # Counts and rates first, then keys (up to KEY_W each), then the bar with what is left.
        room = max(width - count_w - rate_w - gaps, len(kc.key_names) * 4)
        fair = max(room // max(len(key_ws), 1), 4)
        key_ws = [min(w, KEY_W, fair) if sum(key_ws) > room else min(w, KEY_W) for w in key_ws]
        bar_w = min(BAR_W, width - count_w - rate_w - gaps - sum(key_ws) - 1)
        table = Table(box=None, padding=(0, 1, 0, 0), show_edge=False, collapse_padding=True)
        for k, w in zip(kc.key_names, key_ws):
            table.add_column(term_safe(k), justify="left" if k == "comm" else "right", no_wrap=True,
                             max_width=w, overflow="ellipsis")
        table.add_column("count", justify="right", no_wrap=True, min_width=count_w)
        table.add_column(RATE_HEADER, justify="right", no_wrap=True, min_width=rate_w)
        if bar_w >= 4:
            table.add_column("share", no_wrap=True, width=bar_w)
        top = max((r.count for r in rows), default=0)
        for r, key, c, rt in zip(shown, keys, counts, rates):
            cells: list[RenderableType] = [*key, c, rt]
            if bar_w >= 4:
                cells.append(Text(bar(r.count / top if top else 0.0, bar_w), style="green"))
            table.add_row(*cells)
        if len(rows) > MAX_ROWS and kc.key_names:  # the tail, summed on one line
            tail: list[RenderableType] = [*([""] * (len(kc.key_names) - 1)),
                                          Text(f"{len(rows) - MAX_ROWS:,} more", style="dim"), f"{rest:,}", ""]
            if bar_w >= 4:
                tail.append("")
            table.add_row(*tail)
        return Group(title, table, Text(""))


class CountsScroll(VerticalScroll):
    """The CPUs tab's scroller: holds the per-CPU and the COUNT tables and takes their sort keys."""

    BINDINGS = [
        Binding("s", "sort_next", "Sort column", id="counts.sort"),
        Binding("r", "sort_reverse", "Reverse sort", id="counts.reverse"),
    ]

    def action_sort_next(self) -> None:
        for view in self.query(KeyCountsView):
            view.cycle_sort()

    def action_sort_reverse(self) -> None:
        for view in self.query(KeyCountsView):
            view.reverse_sort()
