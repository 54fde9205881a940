"""The help screen: every key of the app and of each pane, from the bindings themselves."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.actions import parse
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ktui.textsafe import term_safe


def available(node, action: str) -> bool:
    """Whether ``action`` does anything in the current mode: the node's own check_action says so
    (a replay hides the keys that change probes; live hides the replay clock's keys)."""
    _, name, params = parse(action)
    try:
        return node.check_action(name, params) is True
    except Exception:  # a check that cannot answer here: list the key rather than hide it
        return True


def binding_rows(app) -> list[tuple[str, str, str, str]]:
    """(where, key, description, id) for every binding with a description that does something in
    the current mode, app first."""
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
        if cls in seen or not (node is app or cls.__module__.startswith("ktui.")):
            continue  # Textual's own widgets (text boxes, tabs) keep their usual keys: not listed
        if node is not app and _in_hidden_browser(app, node):
            continue  # a replay never shows the probe-point browser: its keys do nothing there
        seen.add(cls)
        for b in getattr(cls, "BINDINGS", []):
            if not isinstance(b, Binding) or not b.description or not b.id or not available(node, b.action):
                continue
            where = "everywhere" if node is app else cls.__name__
            rows.append((where, app.get_key_display(b), b.description, b.id or ""))
    return rows


def _in_hidden_browser(app, node) -> bool:
    """Whether ``node`` lives in the browser (#browser) and this mode cannot show it (b is hidden)."""
    if available(app, "toggle_browser"):
        return False
    return any(getattr(n, "id", None) == "browser" for n in node.ancestors_with_self)


class HelpScreen(ModalScreen):
    """The keys of this mode, in a box that scrolls from the keyboard (up/down, page up/down,
    home/end): at 80x24 the list is longer than the screen."""

    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close", id="help.close")]
    AUTO_FOCUS = "#help-box"

    def __init__(self, rows: list[tuple[str, str, str, str]], warnings: list[str] | None = None) -> None:
        super().__init__()
        self.rows = rows
        self.warnings = list(warnings or [])  # the status line shows their short form: here in full

    def compose(self):
        table = Table(title="ktui keys (↑↓ PgUp PgDn scroll, Escape closes; ctrl+p lists every action)",
                      expand=True, box=None)
        table.add_column("where", style="dim")
        table.add_column("key", style="bold cyan")
        table.add_column("does")
        wide = self.app.size.width >= 110  # at 80 columns the ids would squeeze what the keys do
        if wide:
            table.add_column("binding id (remap in the keymap)", style="dim")
        for row in self.rows:
            table.add_row(*(term_safe(cell) for cell in (row if wide else row[:3])))
        with VerticalScroll(id="help-box"):
            if self.warnings:
                yield Static(Text("\n".join(f"! {term_safe(w)}" for w in self.warnings), style="yellow"))
            yield Static(table)
