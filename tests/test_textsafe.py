"""term_safe: no control or format character survives; printable text is returned unchanged."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from ktui.textsafe import term_safe

UNSAFE = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def unsafe_chars(text: str, *, multiline: bool = False) -> list[str]:
    return [c for c in text if unicodedata.category(c) in UNSAFE and not (multiline and c in "\n\t")]


def test_the_hostile_comm_becomes_visible_text():
    assert term_safe("\x1b]52;c;aGk=\x07") == "\\x1b]52;c;aGk=\\x07"
    assert term_safe("\x9b2J") == "\\x9b2J"  # C1 CSI
    assert term_safe("a\x7fb") == "a\\x7fb"  # DEL
    assert term_safe("evil\u202eexe.txt") == "evil\\u202eexe.txt"  # bidi override
    assert term_safe("x\u2066y\u2069") == "x\\u2066y\\u2069"
    assert term_safe("tag\U000e0041") == "tag\\U000e0041"  # a format character beyond the BMP
    assert term_safe("a\nb\tc\rd") == "a\\x0ab\\x09c\\x0dd"


def test_multiline_keeps_newline_and_tab_only():
    assert term_safe("line 1\n\tline 2\r\x1b[2J", multiline=True) == "line 1\n\tline 2\\x0d\\x1b[2J"


def test_bytes_and_other_objects():
    assert term_safe(b"\x1b]0;title\x07") == "\\x1b]0;title\\x07"
    assert term_safe(b"caf\xc3\xa9 \xff") == "café \\xff"  # undecodable bytes shown, never sent
    assert term_safe(ValueError("bad \x1b[31m")) == "bad \\x1b[31m"
    assert term_safe(42) == "42"


def test_printable_text_is_unchanged():
    for text in ("", "bash", "kworker/0:1H", "naïve café", "日本語", "emoji 🙂", "a\\x1b literal", "[bold]x[/]",
                 "no\u00a0break"):
        assert term_safe(text) == text


@settings(max_examples=3000)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=60))
def test_no_control_character_survives(text):
    for multiline in (False, True):
        out = term_safe(text, multiline=multiline)
        assert unsafe_chars(out, multiline=multiline) == []
        out.encode("utf-8")  # never a lone surrogate: a terminal encoding carries all of it


@settings(max_examples=2000)
@given(st.text(alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp")), max_size=60))
def test_safe_text_is_unchanged(text):
    assert term_safe(text) == text
    assert term_safe(text, multiline=True) == text


@settings(max_examples=2000)
@given(st.lists(st.one_of(st.text(alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))),
                          st.sampled_from(["\x1b", "\x07", "\x9b", "\x00", "\u202e", "\u2028", "\ud800"])),
                max_size=12))
def test_each_unsafe_character_becomes_its_escape(parts):
    text = "".join(parts)
    expected = "".join(p if len(p) != 1 or unicodedata.category(p) not in UNSAFE
                       else (f"\\x{ord(p):02x}" if ord(p) <= 0xFF else f"\\u{ord(p):04x}") for p in parts)
    assert term_safe(text) == expected
