"""A yes/no question before anything that discards data (removing a probe clears the panes)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True on y or Enter, False on n or Escape. Nothing else answers it."""

    BINDINGS = [
        Binding("y,enter", "dismiss(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "dismiss(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, consequence: str = "") -> None:
        super().__init__()
        self.question = question
        self.consequence = consequence

    def compose(self):
        with Vertical(id="confirm-box"):
            yield Static(Text(self.question, style="bold"))
            if self.consequence:
                yield Static(Text(self.consequence, style="yellow"))
            yield Static(Text("y or Enter: yes    n or Escape: no", style="dim"))
