"""COUNT tables kept in the kernel: one table per COUNT action, its key columns, the count and a bar,
largest count first (the engine hands them over sorted; they are sorted here again to be sure)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ktui.events import KeyCounts
from ktui.textsafe import term_safe
from ktui.widgets.value_format import bar

MAX_ROWS = 50  # rows shown per table; the rest are summed into one line
BAR_W = 20


def key_text(value) -> str:
    if isinstance(value, bytes):
        return term_safe(value.split(b"\0", 1)[0].decode(errors="replace"))
    return term_safe(value)


class KeyCountsView(Static):
    """Renders the KeyCounts it is given; does nothing when they did not change."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.tables: list[KeyCounts] = []
        self.names: dict[int, str] = {}
        self.display = False
        self.update(self._render_all())

    def set_counts(self, counts: list[KeyCounts], names: dict[int, str]) -> None:
        if counts == self.tables and names == self.names:
            return
        self.tables = list(counts)
        self.names = dict(names)
        self.display = bool(self.tables)  # no keyed COUNT action: the CPU tables stand alone
        self.update(self._render_all())

    def reset(self) -> None:
        self.set_counts([], self.names)

    def _render_all(self):
        if not self.tables:
            return Text("")  # no COUNT action keyed by anything: nothing to show below the CPU tables
        return Group(*(self._table(kc) for kc in self.tables))

    def _table(self, kc: KeyCounts) -> Group:
        rows = sorted(kc.rows, key=lambda r: -r[1])
        total = sum(n for _, n in rows)
        name = term_safe(self.names.get(kc.probe_id, f"probe{kc.probe_id}"))
        title = Text(f"{name}  ", style="bold", no_wrap=True, overflow="ellipsis")
        title.append(f"count by {term_safe(', '.join(kc.key_names)) or 'nothing'}: {total:,} in {len(rows):,} keys")
        table = Table(box=None, padding=(0, 1), show_edge=False)  # the title above: a narrow table must not wrap it
        for k in kc.key_names:
            table.add_column(term_safe(k), justify="left" if k == "comm" else "right", no_wrap=True, max_width=32)
        table.add_column("count", justify="right", no_wrap=True)
        table.add_column("share", no_wrap=True)
        top = rows[0][1] if rows else 0
        for values, n in rows[:MAX_ROWS]:
            cells = [key_text(v) for v in values][:len(kc.key_names)]
            cells += [""] * (len(kc.key_names) - len(cells))
            table.add_row(*cells, f"{n:,}", Text(bar(n / top if top else 0.0, BAR_W), style="green"))
        if len(rows) > MAX_ROWS and kc.key_names:  # the tail, summed on one line
            rest = sum(n for _, n in rows[MAX_ROWS:])
            table.add_row(*([""] * (len(kc.key_names) - 1)), Text(f"{len(rows) - MAX_ROWS:,} more", style="dim"),
                          f"{rest:,}", "")
        return Group(title, table, Text(""))
