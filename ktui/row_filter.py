"""The stream's quick filter and search language, one rule for live and replay.

``pid=N``, ``tid=N``, ``cpu=N``, ``uid=N``, ``probe=NAME``, ``comm=NAME`` (exact), ``FIELD=VALUE`` for a
probe's own field (a number, decimal or 0x hex, or a string, exact); anything else is text found in the
comm, the probe name or any string value (a filename, a path), and a bare number also matches the pid
or the tid. A query becomes a ``RowMatch``: (probe id, that probe's records) -> a boolean mask, so
the live stream filters the rows it holds and a replay filters the recording's events in bulk.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ktui.events import HEADER_DTYPE, ProbeLayout

RowMatch = Callable[[int, np.ndarray], np.ndarray]

# What the stream's filter and search boxes offer as examples (their placeholders): each is accepted
# by text_filter as the FIELD=VALUE form it shows (tests/test_row_filter_spellings.py checks each).
FIELD_EXAMPLES = ("comm=cat", "pid=123", "filename=/etc/passwd")


def placeholder(verb: str) -> str:
    """A box's placeholder: what it does, then the FIELD=VALUE form with FIELD_EXAMPLES, then text."""
    return f"{verb} FIELD=VALUE ({'  '.join(FIELD_EXAMPLES)}) or text"

_HEADER_COLUMNS = frozenset(HEADER_DTYPE.names or ())  # every record's own columns; the probe's values follow


def text_filter(query: str, layouts: dict[int, ProbeLayout]) -> RowMatch | None:
    """The match for ``query`` (None for an empty one: every row)."""
    query = query.strip()
    if not query:
        return None
    key, sep, value = query.partition("=")
    # `comm == "cat"` (the kernel filter's spelling) means what `comm=cat` does: one =, no quotes
    key, value = key.strip(), value.strip().removeprefix("=").strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if sep and key in ("pid", "tid", "cpu", "uid") and value.isdigit():
        wanted_number = int(value)
        return lambda _p, recs: np.asarray(recs[key] == wanted_number)
    if sep and key == "probe":
        return lambda p, recs: np.full(len(recs), value in (layouts[p].name if p in layouts else ""), bool)
    if sep and key == "comm":
        wanted = value.encode(errors="replace")[:15]
        return lambda _p, recs: np.asarray(recs["comm"] == wanted)
    if sep and any(f.name == key for lay in layouts.values() for f in lay.fields):
        return _field_filter(key, value, layouts)
    needle = query.encode(errors="replace")
    number = int(query) if query.isdigit() else None

    def match(p: int, recs: np.ndarray) -> np.ndarray:
        name = layouts[p].name if p in layouts else ""
        if query in name:
            return np.ones(len(recs), bool)
        found = np.char.find(recs["comm"], needle) >= 0
        for column in recs.dtype.names or ():
            if column not in _HEADER_COLUMNS and recs.dtype[column].kind == "S":
                found |= np.char.find(recs[column], needle) >= 0
        if number is not None:
            found |= (recs["pid"] == number) | (recs["tid"] == number)
        return np.asarray(found)

    return match


def _field_filter(key: str, value: str, layouts: dict[int, ProbeLayout]) -> RowMatch:
    """``FIELD=VALUE`` on the probes that have that field (rows of other probes never match)."""
    try:
        number: int | None = int(value, 0)
    except ValueError:
        number = None
    text = value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value
    wanted = text.encode(errors="replace")

    def match(p: int, recs: np.ndarray) -> np.ndarray:
        lay = layouts.get(p)
        if lay is None or key not in (recs.dtype.names or ()):
            return np.zeros(len(recs), bool)
        col = recs[key]
        if col.dtype.kind == "S":
            return np.asarray(col == wanted)
        if number is None:
            return np.zeros(len(recs), bool)
        return np.asarray(col == number)

    return match


__all__ = ["FIELD_EXAMPLES", "RowMatch", "placeholder", "text_filter"]
