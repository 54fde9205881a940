"""The probe editor's requests: a catalog entry to edit, the generated C to show."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Input

from ktui.errors import KtuiError
from ktui.probes.model import Probe
from ktui.widgets.code_view import CodeView
from ktui.widgets.focus import focus_now
from ktui.widgets.probe_editor import ProbeEditor

if TYPE_CHECKING:
    from ktui.app import KtuiApp


class EditorController:
    def __init__(self, app: KtuiApp) -> None:
        self.app = app

    def show_error(self, sentence: str) -> None:
        editor = self.app.main_query(ProbeEditor)
        if editor.is_mounted:
            editor.show_error("spec", sentence)

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
