"""A host's clock offset from the local clock, estimated over the ssh channel (NTP-style).

Each probe: the local CLOCK_MONOTONIC when it was sent (t0) and when the answer came back
(t1), and the host's clock in the answer (r). The host read r somewhere between t0 and t1,
so ``offset = (t0 + t1) / 2 - r`` is wrong by at most half the round trip. Of the recent
samples (the last ``WINDOW``, about a minute at one probe every 2 s, so a clock drifting
against ours is followed), the one with the shortest round trip bounds the error best; its
half round trip is the uncertainty ktui states. ``local = host + offset``.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

WINDOW = 32


@dataclass(frozen=True)
class ClockSample:
    sent_ns: int  # local clock
    received_ns: int  # local clock
    remote_ns: int  # the host's clock

    @property
    def rtt_ns(self) -> int:
        return self.received_ns - self.sent_ns

    @property
    def offset_ns(self) -> int:
        return (self.sent_ns + self.received_ns) // 2 - self.remote_ns


class ClockEstimate:
    """The best (shortest round trip) of the last WINDOW samples; thread-safe."""

    def __init__(self, window: int = WINDOW) -> None:
        self._lock = threading.Lock()
        self._recent: deque[ClockSample] = deque(maxlen=window)
        self._best: ClockSample | None = None
        self.samples = 0

    def add(self, sample: ClockSample) -> None:
        if sample.rtt_ns < 0:
            return
        with self._lock:
            self.samples += 1
            self._recent.append(sample)
            self._best = min(self._recent, key=lambda s: s.rtt_ns)

    @property
    def known(self) -> bool:
        return self._best is not None

    @property
    def offset_ns(self) -> int:
        best = self._best
        return best.offset_ns if best is not None else 0

    @property
    def uncertainty_ns(self) -> int:
        best = self._best
        return (best.rtt_ns + 1) // 2 if best is not None else 0

    def describe(self) -> str:
        if self._best is None:
            return "clock offset not measured yet"
        return (f"clock offset {self.offset_ns / 1e9:+.6f} s ± {self.uncertainty_ns / 1e6:.3f} ms "
                f"({self.samples} round trips)")
