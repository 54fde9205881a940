"""The help screen: every key of the app and of each pane, from the bindings themselves."""

from __future__ import annotations

from rich.table import Table
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ktui.textsafe import term_safe


def binding_rows(app) -> list[tuple[str, str, str, str]]:
    """(where, key, description, id) for every binding with a description, app first."""
    from textual.dom import DOMNode

    rows = []
    seen = set()
    nodes: list[DOMNode] = [app]
    try:
        nodes += list(app.screen_stack[0].walk_children())
    except Exception:
        pass
    for node in nodes:
        cls = type(node)
        if cls in seen:
            continue
        seen.add(cls)
        for b in getattr(cls, "BINDINGS", []):
            if not isinstance(b, Binding) or not b.description:
                continue
            where = "everywhere" if node is app else cls.__name__
            rows.append((where, app.get_key_display(b), b.description, b.id or ""))
    return rows


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close", id="help.close")]

    def __init__(self, rows: list[tuple[str, str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self):
        table = Table(title="ktui keys (Escape closes; ctrl+p lists every action)", expand=True, box=None)
        table.add_column("where", style="dim")
        table.add_column("key", style="bold cyan")
        table.add_column("does")
        table.add_column("binding id (remap in the keymap)", style="dim")
        for row in self.rows:
            table.add_row(*(term_safe(cell) for cell in row))
        with VerticalScroll(id="help-box"):
            yield Static(table)
