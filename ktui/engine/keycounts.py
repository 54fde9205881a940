"""COUNT tables: a COUNT action's per-CPU hash map (struct key of the key names in order) read as
rows, the largest first, at most ``COUNT_ROWS_MAX`` of them handed on."""

from __future__ import annotations

from typing import Any

import numpy as np

from ktui.events import KeyCounts

COUNT_ROWS_MAX = 500  # rows of a COUNT table handed on (the largest counts)


def read_key_counts(bpf: Any, map_name: str, probe_id: int, key_names: tuple[str, ...]) -> KeyCounts:
    """A COUNT map as rows, largest first, capped."""
    table = bpf.get_table(map_name.encode())
    rows: list[tuple[tuple[Any, ...], int]] = []
    for key, value in table.items():
        n = _total(value)
        fields = [name for name, *_ in getattr(key, "_fields_", ()) if not name.startswith("__pad")]
        values = tuple(_plain(getattr(key, f)) for f in fields) if fields else (_plain(key),)
        rows.append((values, n))
    rows.sort(key=lambda r: -r[1])
    return KeyCounts(probe_id, key_names, rows[:COUNT_ROWS_MAX])


def _plain(value: Any) -> Any:
    """A key member as a Python value: bytes (comm, strings) as text, numbers as int."""
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("utf-8", "replace")
    if hasattr(value, "value"):
        return _plain(value.value)
    return int(value) if not isinstance(value, (str, float)) else value


def _total(value: Any) -> int:
    """A per-CPU u64 value summed, however BCC hands it over (raw bytes, a list, a ctypes array)."""
    if isinstance(value, (bytes, bytearray)):
        return int(np.frombuffer(bytes(value[: len(value) // 8 * 8]), "<u8").sum())
    if hasattr(value, "value"):
        return int(value.value)
    try:
        return sum(int(getattr(v, "value", v)) for v in value)
    except TypeError:
        return int(value)
