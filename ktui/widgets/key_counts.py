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
from textual.geometry import Region
from textual.widgets import Static

from ktui.events import KeyCounts
from ktui.rates import KeyRates, RatedRow, next_sort_column, sort_caption, sort_rows
from ktui.textsafe import term_safe
from ktui.units import human_rate
from ktui.widgets.value_format import AtWidth, bar

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
        self.cursor = 0  # the highlighted row, counted over the rows shown in every table (Enter inspects it)
        self.display = False
        self.update(self._render_all())

    def set_counts(self, counts: list[KeyCounts], names: dict[int, str], now_s: float | None = None, *,
                   span_s: float | None = None) -> None:
        """now_s: the source's clock for this snapshot (rates need it; None shows no rates). span_s: the
        counts are totals over this many seconds (a replay's recording or window; ktui/rates.py)."""
        if span_s is not None:
            self.rates.over_span(counts, span_s)
        else:
            self.rates.observe(counts, now_s)
        if counts == self.tables and names == self.names and now_s is None and span_s is None:
            return
        held = self.cursor_key()
        self.tables = list(counts)
        self.names = dict(names)
        self._cursor_to(held)  # new counts reorder the rows: the highlight stays on its key
        if self.display != bool(self.tables) and self.is_mounted:
            self.refresh_bindings()  # s / r / Enter act on COUNT tables only: the footer offers them with one
        self.display = bool(self.tables)  # no keyed COUNT action: the CPU tables stand alone
        self.update(self._render_all())

    def reset(self) -> None:
        self.rates.reset()
        self.set_counts([], self.names)

    def cycle_sort(self) -> None:
        held = self.cursor_key()
        self.sort_column = next_sort_column(self.sort_column)
        self._cursor_to(held)
        self.update(self._render_all())

    def reverse_sort(self) -> None:
        held = self.cursor_key()
        self.sort_reverse = not self.sort_reverse
        self._cursor_to(held)
        self.update(self._render_all())

    def cursor_key(self) -> tuple[int, tuple[str, ...], tuple[Any, ...]] | None:
        """The highlighted row as (probe id, key names, key): what it is, not where it is."""
        rows = self.shown_rows()
        if not rows:
            return None
        kc, row = rows[min(self.cursor, len(rows) - 1)]
        return kc.probe_id, tuple(kc.key_names), row.key

    def _cursor_to(self, held: tuple[int, tuple[str, ...], tuple[Any, ...]] | None) -> None:
        """After a re-sort or new counts, the highlight goes where its key now is (as in htop); a key
        no longer shown leaves it at the same place, within the rows."""
        rows = self.shown_rows()
        if held is not None:
            for i, (kc, row) in enumerate(rows):
                if (kc.probe_id, tuple(kc.key_names), row.key) == held:
                    self.cursor = i
                    return
        self.cursor = max(0, min(self.cursor, len(rows) - 1))

    def ordered_rows(self, kc: KeyCounts) -> list[RatedRow]:
        return sort_rows(self.rates.rows(kc), self.sort_column, self.sort_reverse)

    def shown_rows(self) -> list[tuple[KeyCounts, RatedRow]]:
        """Every row on screen, table after table, in the order shown (what the cursor walks)."""
        return [(kc, r) for kc in self.tables for r in self.ordered_rows(kc)[:MAX_ROWS]]

    def move_cursor(self, delta: int) -> int:
        """Moves the highlight; returns the line of the highlighted row within this widget."""
        n = len(self.shown_rows())
        self.cursor = max(0, min(n - 1, self.cursor + delta)) if n else 0
        self.update(self._render_all())
        return self.cursor_line()

    def cursor_line(self) -> int:
        line, left = 0, self.cursor
        for kc in self.tables:
            rows = len(kc.rows)
            shown = min(rows, MAX_ROWS)
            if left < shown:
                return line + 2 + left  # the title and the column headers come first
            left -= shown
            line += 2 + shown + (1 if rows > MAX_ROWS and kc.key_names else 0) + 1
        return line

    def inspect_fields(self) -> tuple[str, list, list[str]] | None:
        """What the inspector shows for the highlighted row: the probe, each key whole, count, rate, share."""
        from ktui.widgets.inspector import InspectedField

        rows = self.shown_rows()
        if not rows:
            return None
        kc, row = rows[min(self.cursor, len(rows) - 1)]
        name = term_safe(self.names.get(kc.probe_id, f"probe{kc.probe_id}"))
        total = sum(n for _, n in kc.rows) or 1
        fields = [InspectedField("probe", name, name, "")]
        for k, v in zip(kc.key_names, row.key):
            fields.append(InspectedField(term_safe(k), key_text(v), repr(v) if isinstance(v, bytes) else str(v), ""))
        fields += [InspectedField("count", f"{row.count:,}", str(row.count), ""),
                   InspectedField("rate", f"{rate_text(row.rate)}/s" if row.rate is not None else
                                  "- (not measured yet)", "" if row.rate is None else f"{row.rate:.3f}", ""),
                   InspectedField("share", f"{100 * row.count / total:.1f}% of this table", f"{row.count}/{total}", "")]
        return f"{name}: count by {', '.join(kc.key_names)}", fields, []

    def on_resize(self) -> None:
        self.update(self._render_all())

    def _render_all(self) -> RenderableType:
        if not self.tables:
            return Text("")  # no COUNT action keyed by anything: nothing to show below the CPU tables
        return AtWidth(self._tables)  # laid out for the width it is drawn at (a hidden tab has none)

    def _tables(self, width: int) -> Group:
        groups, first = [], 0
        for kc in self.tables:
            groups.append(self._table(kc, width, self.cursor - first))
            first += min(len(kc.rows), MAX_ROWS)
        return Group(*groups)

    def _table(self, kc: KeyCounts, width: int, highlight: int = -1) -> Group:
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
        for i, (r, key, c, rt) in enumerate(zip(shown, keys, counts, rates)):
            cells: list[RenderableType] = [*key, c, rt]
            if bar_w >= 4:
                cells.append(Text(bar(r.count / top if top else 0.0, bar_w), style="green"))
            table.add_row(*cells, style="reverse" if i == highlight else None)
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
        Binding("down", "row(1)", "Next row", show=False, id="counts.down"),
        Binding("up", "row(-1)", "Previous row", show=False, id="counts.up"),
        Binding("enter", "inspect", "Inspect", show=False, id="counts.inspect"),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Sorting and inspecting act on COUNT tables; the per-CPU tables have a fixed CPU order and no
        rows to inspect, so with no COUNT table the keys are not offered (NEWCOMER F24)."""
        if action in ("sort_next", "sort_reverse", "inspect"):
            views = self.query(KeyCountsView)
            return bool(views) and bool(views.first().display and views.first().tables)
        return True

    def action_row(self, delta: int) -> None:
        """Up / Down move the COUNT rows' highlight (and keep it on screen); with no table they scroll."""
        view = self.query_one(KeyCountsView)
        if not view.display or not view.tables:
            self.scroll_relative(y=delta, animate=False)
            return
        line = view.move_cursor(delta)
        top = view.virtual_region.y + line
        self.scroll_to_region(Region(0, top, 1, 1), animate=False, immediate=True)

    def action_inspect(self) -> None:
        view = self.query_one(KeyCountsView)
        shown = view.inspect_fields() if view.display else None
        if shown is None:
            return
        from ktui.widgets.inspector import InspectorScreen

        title, fields, _ = shown
        self.app.push_screen(InspectorScreen(title, fields, filters=False))

    def action_sort_next(self) -> None:
        for view in self.query(KeyCountsView):
            view.cycle_sort()

    def action_sort_reverse(self) -> None:
        for view in self.query(KeyCountsView):
            view.reverse_sort()
