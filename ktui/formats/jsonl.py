"""JSON Lines export: one event per line and nothing else, in time order, for scripts (jq, pandas)."""

from __future__ import annotations

import json
from typing import IO

from ktui.formats.rows import ordered_rows
from ktui.recording.reader import RecordingReader


def export_jsonl(reader: RecordingReader, out: IO[str], *, pid: int | None = None, probe_ids=None) -> int:
    """Write every event as one JSON object a line: ts, cpu, pid, tid, comm, probe, fetched values."""
    n = 0
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for row in ordered_rows(reader, pid=pid, probe_ids=probe_ids):
        out.write(dumps(row))
        out.write("\n")
        n += 1
    return n
