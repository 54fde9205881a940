"""Moving the keyboard at once, before the next key is handled."""

from __future__ import annotations

from textual.widget import Widget


def focus_now(widget: Widget) -> None:
    """Give the keyboard to ``widget`` before the next key is handled. Widget.focus() defers the change
    to a callback queued behind the keys already waiting (typed while the UI thread was busy, as during
    the first compile, or pasted): those keys went to the old widget, so "/" then a name typed at once
    opened the stream's search with the name's first letter, and Escape then a key typed the key into
    the box just left."""
    if widget.is_attached:
        widget.screen.set_focus(widget)
