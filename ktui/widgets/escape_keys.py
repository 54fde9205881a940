"""Escape followed at once by a key is Escape, then that key.

A terminal sends Escape as the one byte ESC, and Alt+x (Option+x) as ESC x: when Escape and the next
key arrive together (typed fast, over SSH, or sent by tmux in one go) the parser cannot tell them
apart. Textual reads ESC 3 as macOS's Option+3 (a typed "£"), ESC f and ESC b as word moves, and any
other ESC x as alt+x: Escape was lost and the key typed into the box Escape should have left (over
SSH, "pid=1", Escape, 3 left "pid=1£" in the filter box). Escape then a control key (ctrl+n) then
Escape again came out as "^" and the control key. ktui binds no Alt key, so ESC and a character
that starts no escape sequence are read as the two keys they were typed as (Escape, Backspace is
no longer alt+backspace, Escape, Tab no longer shift+tab: only typed fast, and rarely meant).
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import events
from textual._xterm_parser import XTermParser
from textual.driver import Driver

ESC = "\x1b"
# The characters after ESC that begin a sequence from the terminal (CSI, SS3, OSC, DCS, APC, PM, ST):
# ESC then one of these is still read as the start of a sequence.
INTRODUCERS = frozenset("[O]P_^\\")


class EscapeThenKeyParser(XTermParser):
    def _sequence_to_key_events(self, sequence: str, alt: bool = False) -> Iterable[events.Key]:
        if len(sequence) == 2 and sequence[0] == ESC and sequence[1] not in INTRODUCERS and sequence[1] != ESC:
            yield events.Key("escape", ESC)
            yield from super()._sequence_to_key_events(sequence[1])
            return
        yield from super()._sequence_to_key_events(sequence, alt)


def use_escape_then_key(driver_class: type[Driver]) -> type[Driver]:
    """Make the Linux terminal driver read keys with EscapeThenKeyParser. The driver builds its parser
    from its module's name for the class, in its input thread; that name is the one thing replaced."""
    from textual.drivers import linux_driver

    if issubclass(driver_class, linux_driver.LinuxDriver):
        setattr(linux_driver, "XTermParser", EscapeThenKeyParser)  # noqa: B010 -- the name is not exported
    return driver_class
