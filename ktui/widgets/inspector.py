"""The inspector (Enter on a stream row): every field of one event in full, like k9s's describe.

It shows what the row cuts: the whole comm, the whole string values, numbers in decimal and
hex, errno names (``-2 ENOENT``); and offers one key each to filter the stream to this pid,
this comm or the highlighted field's value. Dismissed with the filter query chosen, or None.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


@dataclass(frozen=True)
class InspectedField:
    name: str
    shown: str  # as the person reads it (errno name, string, symbol)
    raw: str  # the number as stored, or the same text for strings
    filter: str  # the stream filter that keeps rows with this value ("" when the filter language has none)


class InspectorScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("escape,q", "dismiss(None)", "Close", id="inspector.close"),
        Binding("p", "filter('pid')", "Filter to this pid", id="inspector.pid"),
        Binding("c", "filter('comm')", "Filter to this comm", id="inspector.comm"),
        Binding("v", "filter('value')", "Filter to this value", id="inspector.value"),
    ]
    AUTO_FOCUS = "#inspector-fields"

    def __init__(self, title: str, fields: list[InspectedField], stack: list[str] | None = None, *,
                 filters: bool = True) -> None:
        """filters: whether p / c / v can filter the stream from here (not from a stack or a table row)."""
        super().__init__()
        self.title_text = title
        self.fields = fields
        self.stack = stack or []
        self.filters = filters

    def compose(self):
        with VerticalScroll(id="inspector-box"):
            yield Static(Text(self.title_text, style="bold"), id="inspector-title")
            hint = ("p: only this pid   c: only this comm   v: only the highlighted value   Escape closes"
                    if self.filters else "Escape closes")
            yield Static(Text(hint, style="dim"), id="inspector-keys")
            yield OptionList(*[Option(self._line(f), id=str(i)) for i, f in enumerate(self.fields)],
                             id="inspector-fields")
            if self.stack:
                table = Table(box=None, show_header=False, padding=(0, 1))
                table.add_column("frame")
                for frame in self.stack:
                    table.add_row(Text(frame))
                yield Static(Text("stack", style="bold"))
                yield Static(table, id="inspector-stack")

    @staticmethod
    def _line(f: InspectedField) -> Text:
        t = Text(no_wrap=False)
        t.append(f"{f.name:>12} ", style="bold")
        t.append(f.shown)
        if f.raw != f.shown:
            t.append(f"  ({f.raw})", style="dim")
        return t

    def _field(self, name: str) -> InspectedField | None:
        return next((f for f in self.fields if f.name == name), None)

    def action_filter(self, which: str) -> None:
        if not self.filters:
            self.notify("Filters are chosen from the stream's inspector (Enter on a stream row).", timeout=2)
            return
        if which == "value":
            highlighted = self.query_one(OptionList).highlighted
            field = self.fields[highlighted] if highlighted is not None else None
        else:
            field = self._field(which)
        if field is None or not field.filter:
            self.notify("The stream's filter cannot select this field's value.", severity="warning", timeout=2)
            return
        self.dismiss(field.filter)
