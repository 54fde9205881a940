"""Comparing two recordings: what changed between a baseline (A) and a new run (B).

The comparison (``compare``) is core logic with no presentation; ``ktui/diff/text.py``
renders it for a terminal and ``to_json`` for scripts.
"""

from ktui.diff.compare import (
    HistogramDiff,
    ProbeDiff,
    RecordingDiff,
    StackDiff,
    compare,
    to_json,
)
from ktui.diff.flame import DiffFrame, as_flame_tree, changed_paths
from ktui.diff.noise import NOISE_RULE, significant

__all__ = ["DiffFrame", "as_flame_tree", "NOISE_RULE", "changed_paths", "HistogramDiff", "ProbeDiff", "RecordingDiff", "StackDiff", "compare", "significant", "to_json"]
