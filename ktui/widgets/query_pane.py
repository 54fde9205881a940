"""The SQL pane of a replay: one query box over the open recording, the answer as a table.

It renders and forwards: the query text goes to ``run`` (the controller, ktui/screens/query.py,
which owns the DuckDB session); the controller calls back ``show_busy``/``show_result``/
``show_error``. Every cell is terminal-safe text (``ktui.formats.query.cell``), never markup.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from ktui.formats.query import NUMERIC_TYPES, QueryResult, cell
from ktui.textsafe import term_safe

EXAMPLE = "SELECT probe, comm, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 20"
VIEWS = "views: events, probe_<id>, counters, stacks, stack_frames, probes, meta"


class QueryPane(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close", id="query.close")]
    AUTO_FOCUS = "#query-sql"
    DEFAULT_CSS = """
    QueryPane { align: center middle; }
    #query-box { width: 100%; height: 100%; border: thick $primary; background: $surface; padding: 0 1; }
    #query-result { height: 1fr; }
    """

    def __init__(self, title: str, run: Callable[[str], None], sql: str = EXAMPLE) -> None:
        super().__init__()
        self.title_text = title
        self.submit_query = run
        self.sql = sql

    def compose(self) -> ComposeResult:
        with Vertical(id="query-box"):
            yield Static(Text(term_safe(self.title_text), style="bold"), id="query-title")
            yield Input(value=self.sql, placeholder=EXAMPLE, id="query-sql")
            yield Static(Text(f"Enter runs the query (read-only); Escape closes. {VIEWS}", style="dim"),
                         id="query-status")
            yield DataTable(id="query-result", zebra_stripes=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.sql = event.value
        self.submit_query(event.value)

    def action_close(self) -> None:
        self.dismiss(None)

    # -- called by the controller -----------------------------------------------------

    def _status(self, text: str, style: str = "") -> None:
        self.query_one("#query-status", Static).update(Text(term_safe(text), style=style))

    def show_busy(self, text: str) -> None:
        self._status(text, "italic")

    def show_error(self, sentence: str) -> None:
        self._status(sentence, "bold red")

    def show_result(self, result: QueryResult, seconds: float, note: str = "") -> None:
        table = self.query_one("#query-result", DataTable)
        table.clear(columns=True)
        right = [bool(NUMERIC_TYPES.match(t.upper())) for t in result.types]
        for name, r in zip(result.columns, right):
            table.add_column(Text(term_safe(name), justify="right" if r else "left"))
        for row in result.rows:
            table.add_row(*(Text(cell(v)[:200], justify="right" if r else "left") for v, r in zip(row, right)))
        n = len(result.rows)
        more = f" (the first {n:,}; add LIMIT or narrow the query)" if result.truncated else ""
        self._status(f"{n:,} row{'s' if n != 1 else ''}{more} in {seconds:.2f} s" + (f"; {note}" if note else ""),
                     "yellow" if note else "")
