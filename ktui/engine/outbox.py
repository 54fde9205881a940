"""The handoff from the drain to the panes: updates wait here for a slow consumer, merged
(``Update.merge``: events appended and trimmed to the newest ``window`` per probe, snapshots
replaced) so that what waits never grows without bound, and the merging is done by the post
thread, never the drain.

Lock discipline: one condition variable guards the waiting list; the consumer is called outside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from ktui.events import Update

OUTBOX_MAX = 4  # updates waiting for a slow sink before they are merged (and trimmed to the window)

Fresh = dict[int, list[np.ndarray]]  # probe id -> the event arrays read since the last update


class Outbox:
    def __init__(self, window: int):
        self.window = window
        self._pending: list[tuple[Update, Fresh]] = []  # not yet handed over, oldest first
        self._cv = threading.Condition()
        self._closed = False

    def post(self, update: Update, fresh: Fresh) -> None:
        """Leave an update, with the event arrays read since the last one, for the post thread."""
        with self._cv:
            self._pending.append((update, fresh))
            if len(self._pending) > OUTBOX_MAX:
                self._pending = [(Update.merge(_as_updates(self._pending), window=self.window), {})]
            self._cv.notify()

    def close(self) -> None:
        """No more updates will come: the post loop returns once what waits is handed over."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def run(self, sink: Callable[[Update], None] | None) -> None:
        """The post thread: hand everything to ``sink`` until the finished update (or close)."""
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait(0.1)
                pending, self._pending = self._pending, []
            if not pending:
                return
            update = Update.merge(_as_updates(pending), window=self.window)
            if sink is not None:
                try:
                    sink(update)
                except Exception:  # a failing sink must not stop tracing; the app reports its own errors
                    pass
            if update.finished:
                return


def _as_updates(pending: list[tuple[Update, Fresh]]) -> list[Update]:
    """Each read's events as an update of its own, then the snapshot they came with, in order."""
    out: list[Update] = []
    for update, fresh in pending:
        out.extend(Update(events={gid: arr}) for gid, parts in fresh.items() for arr in parts)
        out.append(update)
    return out


class Mailbox:
    """Updates handed from a source's thread to a consumer on another one (the app's UI thread),
    bounded: when more than ``most`` wait, the producer merges them (``Update.merge`` with
    ``window``: the newest ``window`` events per probe) outside the lock, so neither a slow
    consumer nor a long stall lets what waits grow without bound, and the consumer never waits
    on a merge. One producer thread puts at a time; any thread takes.

    Each update is put with a tag (the app's source generation): updates of different tags are
    never merged; a new tag drops what waits with an older one, and ``take`` says the tag."""

    def __init__(self, window: int, most: int = OUTBOX_MAX):
        self.window = window
        self.most = most
        self._items: list[Update] = []
        self._tag = 0
        self._told = False  # the consumer has been told and has not taken since
        self._lock = threading.Lock()

    def put(self, update: Update, tag: int = 0) -> bool:
        """Leave an update; True when the consumer must be told (once until it next takes)."""
        with self._lock:
            if tag != self._tag:
                self._items, self._tag = [], tag  # what waits came from a source replaced since
            self._items.append(update)
            if len(self._items) <= self.most:
                return self._tell()
            waiting, self._items = self._items, []
        merged = Update.merge(waiting, window=self.window)
        with self._lock:
            if tag == self._tag:
                # Only this thread puts, so nothing newer came meanwhile: the merged update goes first.
                self._items[:0] = [merged]
            return self._tell()

    def _tell(self) -> bool:
        told, self._told = self._told, True
        return not told

    def take(self) -> tuple[Update, int] | None:
        """Everything waiting, merged (within ``window``), with its tag; or None."""
        with self._lock:
            waiting, self._items = self._items, []
            self._told = False
            tag = self._tag
        return (Update.merge(waiting, window=self.window), tag) if waiting else None

    def clear(self) -> None:
        with self._lock:
            self._items = []
            self._told = False
