"""The probe editor's requests: a catalog entry to edit, the generated C to show."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Input, Static

from ktui.errors import KtuiError
from ktui.events import ProbeState
from ktui.probes.model import Probe
from ktui.widgets.code_view import CodeView
from ktui.widgets.focus import focus_now
from ktui.textsafe import term_safe
from ktui.widgets.probe_editor import ProbeEditor

if TYPE_CHECKING:
    from ktui.app import KtuiApp


class EditorController:
    def __init__(self, app: KtuiApp) -> None:
        self.app = app
        self._attach_error = ""  # the attach failure the editor shows, until it is no longer true

    def show_error(self, sentence: str) -> None:
        editor = self.app.main_query(ProbeEditor)
        if editor.is_mounted:
            editor.show_error("spec", sentence)

    def probe_states(self, states: list[ProbeState]) -> None:
        """The editor says what became of the newest probe: its attach failure, or, once that probe is
        removed or a later one attached, no longer an old probe's error."""
        newest = max(states, key=lambda s: s.probe_id) if states else None
        if newest is not None and newest.status == "failed":
            sentence = f"{newest.spec}: {newest.reason}"
            if sentence != self._attach_error:
                self._attach_error = sentence
                self.show_error(sentence)
            return
        if not self._attach_error:
            return
        editor = self.app.main_query(ProbeEditor)
        box = editor.query_one("#editor-spec-error", Static) if editor.is_mounted else None
        if box is not None and str(box.content) == term_safe(self._attach_error, multiline=True):
            box.update("")  # only our sentence: a newer note (a typing error, "added ...") stays
        self._attach_error = ""

    def entry_chosen(self, entry: object) -> None:
        if self.app.mode != "live":
            self.app.notify("Replay is read-only: probes cannot be added.", severity="warning")
            return
        self.app.main_query(ProbeEditor).load_entry(entry)
        self.app.action_show_tab("probes")
        focus_now(self.app.main_query("#editor-spec", Input))

    def show_c(self, probes: list[Probe]) -> None:
        from ktui.compiler import compile_session

        try:
            program = compile_session(probes)
        except KtuiError as err:
            self.show_error(str(err))
            return
        notes = []
        for cp in program.probes:
            if cp.error:
                notes.append(f"✗ {cp.error}")
            notes.extend(f"· {note}" for note in cp.notes)
        self.app.push_screen(CodeView(program.c_text, "\n".join(notes)))
