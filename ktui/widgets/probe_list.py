"""The session's probes with their state: enabled, attached, failed (and why)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from ktui.events import ProbeState
from ktui.widgets.messages import ProbeRemoved, ProbeToggled

STATUS_STYLE = {"attached": "green", "recorded": "green", "failed": "bold red", "disabled": "dim", "pending": "yellow"}


class ProbeList(DataTable):
    """A handful of rows (the session's probes), so a DataTable is the right tool here."""

    BINDINGS = [
        Binding("space", "toggle", "Enable/disable", id="probes.toggle"),
        Binding("delete", "remove", "Remove", id="probes.remove"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.read_only = False

    def on_mount(self) -> None:
        self.add_columns("on", "probe", "point", "status")

    def show(self, rows: list[tuple[bool, str, str]], states: dict[int, ProbeState]) -> None:
        """rows: (enabled, name, spec) per probe id; states: what the source said about each."""
        row = self.cursor_row
        self.clear()
        for i, (enabled, name, spec) in enumerate(rows):
            st = states.get(i)
            status = st.status if st else ("pending" if enabled else "disabled")
            label = Text(status, style=STATUS_STYLE.get(status, ""))
            if st and st.reason:
                label.append(f": {st.reason}", style="red")
            self.add_row("●" if enabled else "○", name, spec, label, key=str(i))
        if rows:
            self.move_cursor(row=min(max(row, 0), len(rows) - 1))

    def action_toggle(self) -> None:
        if self.row_count and not self.read_only:
            self.post_message(ProbeToggled(self.cursor_row))

    def action_remove(self) -> None:
        if self.row_count and not self.read_only:
            self.post_message(ProbeRemoved(self.cursor_row))
