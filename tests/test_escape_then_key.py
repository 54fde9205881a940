"""Escape followed at once by a key (one burst from the terminal: fast typing, a paste, SSH, tmux) is
read as Escape and then that key, never as an Alt chord, a macOS Option character or a "^"."""

from __future__ import annotations

from textual import events

from ktui.widgets.escape_keys import EscapeThenKeyParser
from ktui.widgets.key_queue import escape_then_key


def keys_of(data: str) -> list[tuple[str, str | None]]:
    parser = EscapeThenKeyParser()
    return [(e.key, e.character) for e in parser.feed(data) if isinstance(e, events.Key)]


def test_escape_then_a_digit_is_two_keys_not_a_pound_sign():
    assert keys_of("pid=1\x1b3") == [("p", "p"), ("i", "i"), ("d", "d"), ("equals_sign", "="), ("1", "1"),
                                     ("escape", "\x1b"), ("3", "3")]


def test_escape_then_letters_and_control_keys():
    assert keys_of("\x1bf") == [("escape", "\x1b"), ("f", "f")]  # not a word move (ctrl+right)
    assert keys_of("\x1bqx") == [("escape", "\x1b"), ("q", "q"), ("x", "x")]
    assert keys_of("\x1b\x0e\x1bb") == [("escape", "\x1b"), ("ctrl+n", "\x0e"), ("escape", "\x1b"), ("b", "b")]


def test_sequences_from_the_terminal_still_parse():
    assert keys_of("\x1b[A") == [("up", None)]
    assert keys_of("\x1bOB") == [("down", None)]
    assert keys_of("\x1b[1;5C") == [("ctrl+right", None)]
    assert keys_of("\x1b[Z") == [("shift+tab", None)]
    assert keys_of("\x1b[3~") == [("delete", None)]


def test_an_alt_key_left_by_the_parser_is_split_in_the_key_queue():
    plain = escape_then_key(events.Key("alt+left_square_bracket", "["))
    assert plain is not None and (plain.key, plain.character) == ("left_square_bracket", "[")
    upper = escape_then_key(events.Key("alt+shift+h", "H"))
    assert upper is not None and (upper.key, upper.character) == ("H", "H")
    assert escape_then_key(events.Key("alt+up", None)) is None
    assert escape_then_key(events.Key("x", "x")) is None
