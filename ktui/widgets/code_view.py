"""A modal showing the generated BCC program, with per-probe compile notes and errors."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

from ktui.textsafe import term_safe


class CodeView(ModalScreen):
    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="code.close")]

    def __init__(self, c_text: str, notes: str = "") -> None:
        super().__init__()
        self.c_text = term_safe(c_text, multiline=True)
        self.notes = term_safe(notes, multiline=True)

    def compose(self):
        with Vertical(id="code-box"):
            yield Static("Generated BCC program (read-only; Escape closes)", id="code-title")
            if self.notes:
                yield Static(self.notes, id="code-notes", markup=False)
            yield TextArea(self.c_text, read_only=True, show_line_numbers=True, id="code-text")
