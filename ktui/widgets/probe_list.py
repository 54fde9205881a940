"""The session's probes with their state: enabled, attached, failed (and why)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from ktui.events import ProbeState
from ktui.textsafe import term_safe
from ktui.widgets.messages import ProbeRemoved, ProbeToggled

STATUS_STYLE = {"attached": "green", "recorded": "green", "failed": "bold red", "disabled": "dim", "pending": "yellow"}


class ProbeList(DataTable):
    """A handful of rows (the session's probes), so a DataTable is the right tool here."""

    BINDINGS = [
        Binding("space", "toggle_probe", "Enable/disable", id="probes.toggle"),
        Binding("delete", "remove", "Remove", id="probes.remove"),
        # DataTable's home/end scroll without moving the cursor: space would then toggle a row off screen.
        Binding("home", "first_row", "First probe", show=False, id="probes.first"),
        Binding("end", "last_row", "Last probe", show=False, id="probes.last"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.read_only = False
        # The source removes a probe in place (ProbeControl: the others keep running); False: removing
        # one restarts the others from a new source (the panes start again from zero). Set by the app.
        self.removes_in_place = True
        self._states: dict[int, ProbeState] = {}

    def on_mount(self) -> None:
        self.add_columns("on", "probe", "point", "status")

    def show(self, rows: list[tuple[int | None, bool, str, str]], states: dict[int, ProbeState]) -> None:
        """rows: (probe id, enabled, name, spec), the id None while the source has not handed one
        out yet (a probe being added); states: what the source said about each id."""
        row = self.cursor_row
        self._states = dict(states)
        self.clear()
        for i, (probe_id, enabled, name, spec) in enumerate(rows):
            st = states.get(probe_id) if probe_id is not None else None
            status = st.status if st else ("pending" if enabled else "disabled")
            label = Text(term_safe(status), style=STATUS_STYLE.get(status, ""))
            if st and st.reason:
                label.append(f": {term_safe(st.reason)}", style="red")
            key = str(probe_id) if probe_id is not None else f"pending-{i}"
            self.add_row("●" if enabled else "○", Text(term_safe(name)), Text(term_safe(spec)), label, key=key)
        if rows:
            self.move_cursor(row=min(max(row, 0), len(rows) - 1))

    def _cursor_probe_id(self) -> int | None:
        """The id of the probe under the cursor; None for a probe still being added."""
        if not self.row_count or self.read_only:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value or ""
        return int(key) if key.isdigit() else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("toggle_probe", "remove"):
            return not self.read_only  # a replay's probes are what was recorded: nothing to change
        return True

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)

    def action_toggle_probe(self) -> None:
        probe_id = self._cursor_probe_id()
        if probe_id is not None:
            self.post_message(ProbeToggled(probe_id))

    def action_remove(self) -> None:
        """Removing a probe cannot be undone: ask first, saying what else it changes."""
        probe_id = self._cursor_probe_id()
        if probe_id is None:
            return
        from ktui.widgets.confirm import ConfirmScreen

        name = str(self.get_row_at(self.cursor_row)[1])

        def answered(yes: bool | None) -> None:
            if yes:
                self.post_message(ProbeRemoved(probe_id))
        self.app.push_screen(ConfirmScreen(f"Remove the probe {name}?", self.removal_consequence(probe_id)),
                             answered)

    def removal_consequence(self, probe_id: int) -> str:
        """What removing this probe does, exactly (the dialog's second sentence)."""
        if not self.removes_in_place:
            return "The other probes restart: the stream is emptied and every counter starts again from zero."
        state = self._states.get(probe_id)
        if state is not None and state.status == "failed":
            return "It never attached, so nothing else changes."
        return ("It is detached at once; the other probes keep running and nothing is cleared: "
                    "its rows stay in the stream and no counter is reset.")

