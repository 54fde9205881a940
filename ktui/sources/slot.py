"""The one running source of the app, replaced safely from worker threads.

Each replacement gets a generation number under one lock. A source may start only while
its generation is the newest, and it starts under the lock, so a stop (or a newer
replacement) waits for a start in progress and then stops that source: an older worker
can never start its source after a newer one stopped the old one, so two sources never
run and no orphan keeps probes attached. Updates are tagged with their generation, and
the app drops those of an older one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ktui.events import EventSource, Update


class SourceSlot:
    def __init__(self, source: EventSource | None = None) -> None:
        self._lock = threading.Lock()
        self.source = source
        self.generation = 0

    def stop(self) -> None:
        """Stop the source (a live one detaches every probe). Idempotent, from any thread."""
        with self._lock:
            self.generation += 1
            source, self.source = self.source, None
            if source is not None:
                source.stop()

    def replace(self, make: Callable[[], EventSource | None]) -> tuple[EventSource, int] | None:
        """Stop the current source, then build the next one with ``make`` (outside the lock: it may
        take a while); None when ``make`` gives none or a newer replacement came meanwhile."""
        self.stop()
        with self._lock:
            generation = self.generation
        source = make()
        if source is None:
            return None
        with self._lock:
            if generation != self.generation or self.source is not None:
                stale = True
            else:
                self.source, stale = source, False
        if stale:
            source.stop()
            return None
        return source, generation

    def adopt(self, source: EventSource) -> int:
        """Take a source built elsewhere (the one given at start-up); returns its generation."""
        with self._lock:
            self.generation += 1
            self.source = source
            return self.generation

    def start(self, source: EventSource, generation: int, sink: Callable[[Update, int], None]) -> bool:
        """Start ``source`` if it is still the newest; False (and it is stopped) when it is not. A
        source whose start fails (no probe could attach) leaves the slot empty: kept there, it was taken
        for the running source, and a probe added next went to it, never started, pending forever."""
        with self._lock:
            if generation == self.generation and self.source is source:
                try:
                    source.start(lambda update: sink(update, generation))
                except BaseException:
                    self.generation += 1
                    self.source = None
                    source.stop()  # whatever it attached before it failed
                    raise
                return True
        source.stop()
        return False
