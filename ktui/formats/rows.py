"""Events of a recording as plain rows in time order: what the exporters write.

A row is a dict: ts (ns), cpu, pid, tid, comm, probe (name), then the probe's
fetched values; a value whose read faulted is None, and ``faulted`` lists those names. Integers stay integers; values shown in hex become "0x..." text
(64-bit pointers do not survive JSON readers that use doubles); strings are
decoded as UTF-8 with replacement; stack ids become symbolized frames.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

import numpy as np

from ktui.events import HEADER_FIELDS, ProbeLayout
from ktui.recording.reader import RecordingReader

HEADER_COUNT = len(HEADER_FIELDS)
FAULT_TEXT = "(fault)"  # what the kernel's own tracer prints for a read that faulted
FAULT_BITS = 31  # header flags bit i < 31: fetch i's memory read faulted (bit 31: return without entry)
UNKNOWN = "[unknown]"


def _is_unknown(frame: str) -> bool:
    return frame == UNKNOWN or (frame.startswith("0x") and all(c in "0123456789abcdef" for c in frame[2:]))


def trim_frames(frames: Sequence[str]) -> list[str]:
    """A stack as exports show it, without padding: a run of frames nothing could symbolize becomes
    one "[unknown]", and such a run at the outer end (where a user stack walked without frame
    pointers wanders into junk, up to 127 deep) goes when anything before it is known.
    Innermost first, as recordings hold them."""
    out: list[str] = []
    for f in frames:
        if _is_unknown(f):
            if out and out[-1] == UNKNOWN:
                continue
            out.append(UNKNOWN)
        else:
            out.append(f)
    if len(out) > 1 and out[-1] == UNKNOWN:
        out.pop()
    return out


def faulted_fields(layout: ProbeLayout, flags: int) -> list[str]:
    """Names of the fetches whose read faulted in a record with these header flags. Their stored
    value is 0 or an empty string, which is no value at all: every view shows them as faults."""
    if not flags & ((1 << FAULT_BITS) - 1):
        return []
    return [f.name for i, f in enumerate(layout.fields[:FAULT_BITS]) if flags >> i & 1]


def flag_words(layout: ProbeLayout, flags: int) -> list[str]:
    """The header flags of one record in words (the inspector's "flags" line): each faulted fetch,
    and a return seen without its entry. Empty when no flag is set."""
    words = [f"{name}: read faulted (no value)" for name in faulted_fields(layout, flags)]
    if flags >> FAULT_BITS & 1:
        words.append("return seen without its entry (entry values are 0)")
    return words


def ordered_rows(reader: RecordingReader, *, pid: int | None = None, probe_ids: Collection[int] | None = None,
                 batch: int = 65536) -> Iterator[dict[str, Any]]:
    """Every event (optionally of one pid / some probes) as a row, in time order."""
    reader.seek(0)
    while True:
        window = reader.read(max_events=batch, probe_ids=probe_ids)
        if not window:
            return
        parts = []
        for probe_id, arr in window.items():
            if pid is not None:
                arr = arr[arr["pid"] == pid]
            if len(arr):
                parts.append((reader.layouts[probe_id], arr))
        if not parts:
            continue
        converted = [list(_rows(reader, layout, arr)) for layout, arr in parts]
        ts = np.concatenate([arr["ts"] for _, arr in parts])
        which = np.concatenate([np.full(len(arr), i) for i, (_, arr) in enumerate(parts)])
        index = np.concatenate([np.arange(len(arr)) for _, arr in parts])
        for k in np.lexsort((which, ts)):
            yield converted[which[k]][index[k]]


def _rows(reader: RecordingReader, layout: ProbeLayout, arr: np.ndarray) -> Iterator[dict[str, Any]]:
    cols = {name: arr[name].tolist() for name in ("ts", "cpu", "pid", "tid", "kstack", "ustack", "flags")}
    comm = [c.decode("utf-8", "replace") for c in arr["comm"].tolist()]
    fields = []
    for f in layout.fields:
        values = arr[f.name].tolist()
        if f.display == "string" or arr.dtype[f.name].kind == "S":
            values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
        elif f.display == "x":
            values = [f"0x{v & 0xFFFFFFFFFFFFFFFF:x}" for v in values]
        elif f.display == "symbol":
            values = [reader.symbolize(v) for v in values]
        fields.append((f.name, values))
    for i in range(len(arr)):
        row = {"ts": cols["ts"][i], "cpu": cols["cpu"][i], "pid": cols["pid"][i], "tid": cols["tid"][i],
               "comm": comm[i], "probe": layout.name}
        for name, values in fields:
            row[name] = values[i]
        faults = faulted_fields(layout, cols["flags"][i])
        if faults:
            for name in faults:
                row[name] = None
            row["faulted"] = faults
        if cols["kstack"][i] >= 0:
            row["kstack"] = reader.stack_frames(cols["kstack"][i])
        if cols["ustack"][i] >= 0:
            row["ustack"] = trim_frames(reader.stack_frames(cols["ustack"][i], user=True, pid=cols["pid"][i]))
        yield row
