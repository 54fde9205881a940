"""Check boxes, radio buttons and a selection list whose state reads without colour.

Textual tells a ticked box from an unticked one by colour alone (`▐X▌` both ways). Under
NO_COLOR every colour becomes a grey and LegibleMonochrome lifts each text to full contrast,
so both look alike and a user cannot see which actions a probe will get. Here, under NO_COLOR,
an unticked box or radio shows an empty button (`▐ ▌`): the difference is a shape. With
colours nothing changes.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from rich.segment import Segment
from textual.app import App
from textual.strip import Strip
from textual.widgets import Checkbox, RadioButton, SelectionList
from textual.widgets._toggle_button import ToggleButton

from ktui.widgets.no_color import is_monochrome

EMPTY = " "
V = TypeVar("V")


def _shape(button: ToggleButton, app: App[object]) -> None:
    """The button's glyph for its state: its own when on (or in colour), empty when off under NO_COLOR.
    BUTTON_INNER is the class's glyph, read each time the button renders; an instance value shadows it."""
    inner = type(button).BUTTON_INNER
    button.BUTTON_INNER = inner if button.value or not is_monochrome(app) else EMPTY


class Tick(Checkbox):
    """A Checkbox whose unticked state is empty under NO_COLOR."""

    def on_mount(self) -> None:
        _shape(self, self.app)

    def watch_value(self) -> None:
        super().watch_value()
        _shape(self, self.app)


class Choice(RadioButton):
    """A RadioButton whose unselected state is empty under NO_COLOR."""

    def on_mount(self) -> None:
        _shape(self, self.app)

    def watch_value(self) -> None:
        super().watch_value()
        _shape(self, self.app)


class TickList(SelectionList[V], Generic[V]):
    """A SelectionList whose unselected rows show an empty button under NO_COLOR."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if not is_monochrome(self.app):
            return strip
        try:
            selection = self.get_option_at_index(self.scroll_offset.y + y)
        except Exception:  # OptionDoesNotExist: a line below the last option has no button
            return strip
        if selection.value in self._selected:
            return strip
        segments = list(strip)
        if len(segments) < 3 or segments[1].text != ToggleButton.BUTTON_INNER:
            return strip  # not the layout drawn above (a Textual change): leave it as it is
        segments[1] = Segment(EMPTY, segments[1].style, segments[1].control)
        return Strip(segments, strip.cell_length)
