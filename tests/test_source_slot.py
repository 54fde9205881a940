"""SourceSlot: replacing the app's source from worker threads never leaves two sources running."""

from __future__ import annotations

import threading

from ktui.events import EventSource, Update
from ktui.sources.slot import SourceSlot


class Counted:
    """A source that records whether it runs (start without stop) and how many run at once."""

    live = True
    running: set[int] = set()
    most = 0
    lock = threading.Lock()

    def __init__(self, n: int) -> None:
        self.n = n
        self.layouts: dict = {}
        self.started = self.stopped = False

    def start(self, sink) -> None:
        with Counted.lock:
            assert not self.stopped, "a stopped source was started"
            self.started = True
            Counted.running.add(self.n)
            Counted.most = max(Counted.most, len(Counted.running))

    def stop(self) -> None:
        with Counted.lock:
            self.stopped = True
            Counted.running.discard(self.n)

    def symbolize(self, address: int, pid: int | None = None) -> str:
        return ""


def test_the_protocol_is_declared():
    assert isinstance(Counted(0), EventSource)


def test_an_older_replacement_never_starts_after_a_newer_one():
    slot = SourceSlot()
    older_built = threading.Event()
    newer_done = threading.Event()
    made: list[Counted] = []

    def slow_make() -> Counted:
        s = Counted(1)
        made.append(s)
        older_built.set()
        newer_done.wait(5)  # the newer replacement runs start to end meanwhile
        return s

    result: list = []
    older = threading.Thread(target=lambda: result.append(slot.replace(slow_make)))
    older.start()
    older_built.wait(5)
    got = slot.replace(lambda: Counted(2))
    assert got is not None
    newer, generation = got
    assert slot.start(newer, generation, lambda u, g: None)
    newer_done.set()
    older.join(5)
    assert result == [None]  # the older worker learns it is stale
    assert made[0].stopped and not made[0].started
    assert slot.source is newer and Counted.running == {2}


def test_a_start_that_lost_the_race_stops_its_source():
    slot = SourceSlot()
    got = slot.replace(lambda: Counted(3))
    assert got is not None
    source, generation = got
    slot.stop()  # quit (or a newer replacement) before the worker came to start it
    assert not slot.start(source, generation, lambda u, g: None)
    assert source.stopped and not source.started and slot.source is None


def test_many_quick_replacements_leave_one_source_running():
    Counted.running.clear()
    Counted.most = 0
    slot = SourceSlot()
    sources: list[Counted] = []

    def worker(n: int) -> None:
        got = slot.replace(lambda: sources.append(Counted(n)) or sources[-1])
        if got is not None:
            slot.start(got[0], got[1], lambda u, g: None)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(100, 140)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(Counted.running) == 1 and Counted.most == 1
    assert slot.source is not None and slot.source.n in Counted.running
    slot.stop()
    assert Counted.running == set()
    assert all(s.stopped for s in sources)


def test_updates_carry_their_generation():
    slot = SourceSlot()
    seen: list[int] = []

    class Pushing(Counted):
        def start(self, sink) -> None:
            super().start(sink)
            sink(Update())

    got = slot.replace(lambda: Pushing(7))
    assert got is not None
    slot.start(got[0], got[1], lambda u, g: seen.append(g))
    assert seen == [slot.generation]
    slot.stop()


def test_a_source_that_fails_to_start_leaves_the_slot_empty():
    """No probe could attach: the failed source is stopped and is not taken for the running one, so the
    next probe added builds a new source (it went to the failed one, pending forever, on the live app)."""
    import pytest

    class Refused(Counted):
        def start(self, sink) -> None:
            raise RuntimeError("no probe could attach")

    slot = SourceSlot()
    got = slot.replace(lambda: Refused(1))
    assert got is not None
    source, generation = got
    with pytest.raises(RuntimeError):
        slot.start(source, generation, lambda update, g: None)
    assert slot.source is None and source.stopped
    assert slot.generation > generation  # an update the failed source sent late is dropped
