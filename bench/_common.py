"""What several benchmarks share: writing synthetic events through the real RecordingWriter.

Arrays of one probe each (records in the probe's real layout, sorted by time) are cut into the
batches the engine's drain loop hands the writer and appended in time order, as a live recording
receives them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ktui.events import ProbeLayout
from ktui.kernel import kernel_identity
from ktui.recording import RecordingWriter

BATCH = 16384  # records per append, as the engine drains its rings


def time_ordered_batches(arrays: Iterable[tuple[int, np.ndarray]], batch: int = BATCH) -> list[tuple[int, np.ndarray]]:
    """(probe id, part) of every array cut into batches, interleaved by each batch's first time."""
    parts = [(int(arr["ts"][start]), probe_id, arr[start:start + batch])
             for probe_id, arr in arrays for start in range(0, len(arr), batch)]
    parts.sort(key=lambda p: p[0])
    return [(probe_id, part) for _, probe_id, part in parts]


def write_recording(path: Path, layouts: Sequence[ProbeLayout], arrays: Iterable[tuple[int, np.ndarray]],
                    probes: Mapping[int, dict] | None = None,
                    before_close: Callable[[RecordingWriter], None] | None = None) -> float:
    """Write the arrays to a new recording at path; seconds from creating the writer to its close."""
    batches = time_ordered_batches(arrays)
    t = time.perf_counter()
    w = RecordingWriter.create(path, kernel_identity(), layouts, probes if probes is not None else (),
                               meta={"bench": True})
    for probe_id, part in batches:
        w.append(probe_id, part)
    if before_close is not None:
        before_close(w)
    w.close()
    return time.perf_counter() - t
