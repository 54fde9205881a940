"""The noise rule of `ktui diff`, one definition for probes, histogram buckets, stacks and frames.

A change from count a to count b counts ("flagged") when

    |b - a| > max(NOISE_SIGMAS * sqrt(a + b), NOISE_FRACTION * max(a, b), NOISE_MIN)

that is, more than three standard deviations of the difference of two Poisson counts,
more than 2 % of the larger count, and more than one event. Two runs of the same
deterministic workload give the same counts and nothing is flagged; run-to-run jitter
of a busy system probe stays under 3 sigma almost always.
"""

from __future__ import annotations

import math

NOISE_SIGMAS = 3.0
NOISE_FRACTION = 0.02
NOISE_MIN = 1
DURATION_NOTE_FRACTION = 0.10
NOISE_RULE = f"|B-A| > max({NOISE_SIGMAS:g}*sqrt(A+B), {NOISE_FRACTION:.0%} of the larger, {NOISE_MIN})"


def significant(a: int, b: int) -> bool:
    """The noise rule: does a change from count a to count b stand out of run-to-run noise?"""
    return abs(b - a) > max(NOISE_SIGMAS * math.sqrt(a + b), NOISE_FRACTION * max(a, b), NOISE_MIN)


def score(a: int, b: int) -> float:
    """How far out of noise a change is (its z-score), for ranking."""
    return abs(b - a) / math.sqrt(a + b + 1)


