"""Requests from the local side to a remote `ktui stream` (its stdin): probe toggles reach the engine
under the engine's own ids; a toggle for a probe the engine lacks is one sentence on stderr and the
engine goes on; damaged requests end it with one sentence, never a traceback, with bounded reads.
(The toggles against real hosts, over ssh: tests/test_remote_hosts.py.)"""

from __future__ import annotations

import os
import struct
import threading

import pytest

from ktui.remote import protocol as P
from ktui.remote.stream import Control, FrameWriter, _read_probes


class Engine:
    """What the remote's Control drives: the engine's probe ids and the switches asked of it."""

    def __init__(self, ids: list[int]) -> None:
        self.probe_ids = ids
        self.calls: list[tuple[int, bool]] = []

    def add_probe(self, probe) -> int:
        raise AssertionError("never called")

    def remove_probe(self, probe_id: int) -> None:
        raise AssertionError("never called")

    def enable_probe(self, probe_id: int, enabled: bool) -> None:
        self.calls.append((probe_id, enabled))


def _serve(requests: bytes, engine: Engine | None) -> tuple[Control, bytes, threading.Event]:
    """Feed ``requests`` to the remote's request reader; returns its Control, what it wrote, and stop."""
    rfd, wfd = os.pipe()
    out_r, out_w = os.pipe()
    control = Control()
    control.source = engine  # type: ignore[assignment]
    stop = threading.Event()
    os.write(wfd, requests)
    os.close(wfd)
    writer = FrameWriter(out_w, stop.set)
    _read_probes(rfd, writer, stop, control)
    os.close(rfd)
    os.close(out_w)
    with os.fdopen(out_r, "rb") as f:
        return control, f.read(), stop


def test_toggles_reach_the_engine_in_order_and_clock_probes_are_still_answered():
    engine = Engine([0, 1])
    control, out, stop = _serve(P.toggle_frame(1, False) + P.clock_probe_frame(7) + P.toggle_frame(1, True)
                                + P.toggle_frame(0, False), engine)
    assert engine.calls == [(1, False), (1, True), (0, False)]
    assert out[:P.FRAME_HEAD.size] == P.FRAME_HEAD.pack(P.CLOCK, P.CLOCK_BODY.size)
    assert P.decode_clock(out[P.FRAME_HEAD.size:])[0] == 7
    assert stop.is_set() and control.problem == ""  # the end of stdin stops the engine, cleanly


def test_a_toggle_for_a_probe_the_engine_lacks_is_one_sentence_and_the_rest_goes_on(capfd):
    engine = Engine([0])
    control, _, _ = _serve(P.toggle_frame(5, False) + P.toggle_frame(0, False), engine)
    assert engine.calls == [(0, False)] and control.problem == ""
    err = capfd.readouterr().err
    assert err.strip() == "ktui stream: a toggle names probe 5, which this engine does not have."


@pytest.mark.parametrize("requests, sentence", [
    (struct.pack("<BI", P.TOGGLE, 4) + b"\0" * 4, "a probe toggle has 4 bytes, not 5."),
    (struct.pack("<BI", P.TOGGLE, 5) + struct.pack("<IB", 0, 2), "enabled must be 0 or 1"),
    (struct.pack("<BI", P.TOGGLE, 5) + struct.pack("<IB", 2**32 - 1, 1), "names no probe"),
    (struct.pack("<BI", P.TOGGLE, 2**32 - 1), "more than the 64 allowed"),  # bounded before any read
    (struct.pack("<BI", P.EVENTS, 0), "unknown kind 2"),  # frames the remote writes are not requests
    (struct.pack("<BI", P.TOGGLE, 5) + b"\0", "ended in the middle"),
])
def test_damaged_requests_end_the_engine_with_one_sentence(requests, sentence):
    engine = Engine([0])
    after = b"" if "ended in the middle" in sentence else P.toggle_frame(0, False)  # else it completes the frame
    control, _, stop = _serve(requests + after, engine)
    assert stop.is_set() and engine.calls == []  # nothing after the damage is acted on
    assert control.problem.startswith("the local side's requests are damaged: ") and sentence in control.problem
    assert "\n" not in control.problem and "Traceback" not in control.problem


def test_toggle_frames_round_trip():
    for probe_id, enabled in ((0, True), (4095, False)):
        fr = P.toggle_frame(probe_id, enabled)
        kind, length = P.FRAME_HEAD.unpack(fr[:P.FRAME_HEAD.size])
        assert (kind, length) == (P.TOGGLE, 5)
        assert P.decode_toggle(fr[P.FRAME_HEAD.size:]) == (probe_id, enabled)
