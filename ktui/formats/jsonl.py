"""JSON Lines export: one event per line and nothing else, in time order, for scripts (jq, pandas)."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import IO

from ktui.formats.rows import ordered_rows
from ktui.recording.reader import RecordingReader


def export_jsonl(reader: RecordingReader, out: IO[str], *, pid: int | None = None, probe_ids: Collection[int] | None = None) -> int:
    """Write every event as one JSON object a line: ts, cpu, pid, tid, comm, probe, fetched values."""
    n = 0
    # To a terminal, every non-ASCII character as \\uXXXX: JSON escapes only C0 controls, and a C1 CSI or a
    # bidi override inside a string would reach the terminal raw.
    dumps = json.JSONEncoder(ensure_ascii=_isatty(out), separators=(",", ":")).encode
    for row in ordered_rows(reader, pid=pid, probe_ids=probe_ids):
        out.write(dumps(row))
        out.write("\n")
        n += 1
    return n


def _isatty(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False
