"""Terminal-safe text: the one function every piece of data goes through before it reaches a terminal.

ktui runs as root and shows text that other users control (a process names itself, a file
holds a line, a recording holds a probe name). A terminal obeys control characters it is
sent: ``ESC ] 52 ; c ; ... BEL`` sets the clipboard, other sequences move the cursor, rewrite
the screen or the window title. Rich strips only BEL, BS, VT, FF and CR, and segments built
directly (the event stream's fast path) are not touched at all, so ktui does not rely on it.

What is shown visibly instead of being sent:
- C0 controls U+0000-U+001F (ESC becomes ``\\x1b``; newline and tab too, unless the caller
  keeps them for multi-line text), DEL U+007F, and C1 controls U+0080-U+009F (a terminal
  may take U+009B as CSI);
- format characters (Unicode category Cf: the bidirectional overrides and isolates
  U+202A-U+202E, U+2066-U+2069, the marks U+200E/U+200F/U+061C, zero-width characters),
  which reorder or hide what is on screen, and the line/paragraph separators U+2028/U+2029;
- lone surrogates (from undecodable bytes), which no terminal encoding can carry.
Each becomes its Python escape (``\\x1b``, ``\\u202e``, ``\\U000e0001``). Printable text,
including non-ASCII letters, CJK, emoji and backslashes, is returned unchanged (a literal
backslash is not doubled: the screen is for reading, not for parsing back).
"""

from __future__ import annotations

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def term_safe(text: object, *, multiline: bool = False) -> str:
    """``text`` (str, bytes or anything else, via ``str``) with every control or format character shown
    as its escape, so writing the result to a terminal can only put visible characters on the screen.
    ``multiline=True`` keeps newline and tab for text laid out on several lines (errors with a caret
    line, generated C, reports); they move the cursor forward only, and nothing else is kept."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", errors="backslashreplace")
    elif not isinstance(text, str):
        text = str(text)
    if text.isprintable():  # the common case, at C speed: nothing to do
        return text
    import unicodedata  # here, not at the top: `ktui list` prints only printable names and its start-up counts

    out = []
    for ch in text:
        if ch.isprintable() or (multiline and ch in "\n\t") or unicodedata.category(ch) not in _UNSAFE_CATEGORIES:
            out.append(ch)
        else:
            out.append(_escape(ch))
    return "".join(out)
