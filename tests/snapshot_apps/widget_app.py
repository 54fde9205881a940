"""One widget alone on a screen, in a given state: the snapshot tests' small apps.

``setup(app)`` puts the widget in its state after mount (data down, as the app would).
Pictures only: every behaviour shown here is also tested on a real kernel.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App
from textual.widget import Widget
from textual.widgets import Input

from ktui.app import KtuiApp


class WidgetApp(App):
    CSS_PATH = KtuiApp.CSS_PATH

    def __init__(self, make: Callable[[], Widget], setup: Callable[[App], None] | None = None) -> None:
        super().__init__()
        self.make = make
        self.setup = setup

    def compose(self):
        yield self.make()

    def on_mount(self) -> None:
        for box in self.query(Input):
            box.cursor_blink = False
        if self.setup is not None:
            self.setup(self)
