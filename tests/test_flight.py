"""The flight recorder (`ktui record --ring S --trigger FILTER [--after S] [--keep N]`): on the live
kernel, a child's calls before, at and after a failing call; the ring's rules on synthetic records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import build_c
from ktui.cli import main
from ktui.events import FieldLayout, ProbeLayout
from ktui.kernel import kernel_identity
from ktui.recording import RecordingWriter
from ktui.recording.flight import FlightRecorder
from ktui.recording.reader import RecordingReader

# 200 calls, a pause, then for each (M, K) pair: M calls, one failing close(-1), K calls, a pause;
# then 200 more. The pauses (argv[1] ms) are longer than the ring and the after-window, so the first
# and last 200 calls are outside every window.
FLIGHT_C = r"""
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
static void calls(long n) { for (long i = 0; i < n; i++) syscall(SYS_getppid); }
int main(int argc, char **argv) {
    long gap = atol(argv[1]) * 1000;
    calls(200);
    usleep(gap);
    for (int a = 2; a + 1 < argc; a += 2) {
        calls(atol(argv[a]));
        if (close(-1) == 0) return 1;
        calls(atol(argv[a + 1]));
        usleep(gap);
    }
    calls(200);
    usleep(300000);
    return 0;
}
"""

GETPPID = "tracepoint:syscalls:sys_enter_getppid"
CLOSE_EXIT = "tracepoint:syscalls:sys_exit_close"
EBADF = 9


def _record(tmp_path, *extra: str, pairs=((300, 400),), gap_ms: int = 1500):
    out = tmp_path / "flight.ktrec"
    binary = build_c("flight", FLIGHT_C)
    argv = ["record", GETPPID, CLOSE_EXIT, "-o", str(out), "-q", "--ring", "1", "--after", "0.5",
            "--trigger", "ret < 0", *extra, "--", str(binary), str(gap_ms)]
    for m, k in pairs:
        argv += [str(m), str(k)]
    assert main(argv) == 0
    return out


def _events(reader: RecordingReader) -> dict[str, np.ndarray]:
    names = {i: lay.spec for i, lay in reader.layouts.items()}
    out: dict[str, list[np.ndarray]] = {}
    for arr in reader.events():
        out.setdefault(names[int(arr["probe"][0])], []).append(arr)
    return {k: np.concatenate(v) for k, v in out.items()}


@pytest.mark.live
def test_the_window_around_one_failing_call_is_exactly_what_is_kept(tmp_path):
    with RecordingReader.open(_record(tmp_path)) as rec:
        events = _events(rec)
        marks = rec.marks()
        flight = rec.meta["flight"]
    (close,) = events[CLOSE_EXIT]  # only the failing call: the child's other closes were long before
    assert int(close["ret"]) == -EBADF
    assert len(events[GETPPID]) == 300 + 400  # the M before and K after; none of the 200 + 200 outside
    (mark,) = marks
    t = int(close["ts"])
    assert (mark.kind, mark.ts, mark.label) == ("trigger", t, "ret < 0")
    assert (mark.start_ns, mark.end_ns) == (t - 1_000_000_000, t + 500_000_000)
    ts = events[GETPPID]["ts"].astype(np.int64)
    assert int((ts < t).sum()) == 300 and int((ts > t).sum()) == 400
    assert ts.min() >= mark.start_ns and ts.max() <= mark.end_ns
    assert flight["triggers"] == 1 and flight["events_kept"] == 701 and flight["events_seen"] >= 701


@pytest.mark.live
def test_keep_rearms_and_marks_every_trigger(tmp_path, capsys):
    out = _record(tmp_path, "--keep", "2", pairs=((100, 150), (250, 50)))
    with RecordingReader.open(out) as rec:
        events = _events(rec)
        marks = rec.marks()
    closes = events[CLOSE_EXIT]
    assert [int(r) for r in closes["ret"]] == [-EBADF, -EBADF]
    assert [m.ts for m in marks] == sorted(int(t) for t in closes["ts"])
    ts = events[GETPPID]["ts"].astype(np.int64)
    first, second = marks
    assert first.end_ns < second.start_ns  # windows never overlap
    in_first = (ts >= first.start_ns) & (ts <= first.end_ns)
    in_second = (ts >= second.start_ns) & (ts <= second.end_ns)
    assert int(in_first.sum()) == 100 + 150 and int(in_second.sum()) == 250 + 50
    assert len(ts) == 550
    # the marks are in SQL too (the Parquet export's marks table), on the events' clock
    capsys.readouterr()
    sql = ("SELECT m.kind, m.label, m.ts, m.start_ns, m.end_ns, count(e.ts) AS kept FROM marks m "
           "JOIN events e ON e.ts BETWEEN m.start_ns AND m.end_ns AND e.probe = 'sys_enter_getppid' "
           "GROUP BY ALL ORDER BY m.ts")
    assert main(["query", str(out), sql, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["kind"], r["label"], r["ts"], r["start_ns"], r["end_ns"]) for r in rows] == \
        [("trigger", "ret < 0", m.ts, m.start_ns, m.end_ns) for m in marks]
    assert [r["kept"] for r in rows] == [100 + 150, 250 + 50]


@pytest.mark.live
def test_a_trigger_that_never_fires_leaves_a_complete_empty_recording(tmp_path, capsys):
    out = tmp_path / "quiet.ktrec"
    binary = build_c("flight", FLIGHT_C)
    assert main(["record", GETPPID, CLOSE_EXIT, "-o", str(out), "--ring", "1", "--trigger", "ret == -1234",
                 "--", str(binary), "10"]) == 0
    assert "the trigger never fired" in capsys.readouterr().err
    with RecordingReader.open(out) as rec:
        # 400 calls and the child's own closes at start-up (which succeed): seen, none kept
        assert rec.count() == 0 and rec.marks() == [] and rec.meta["flight"]["events_seen"] >= 400


@pytest.mark.parametrize("argv, words", [
    (["--trigger", "ret < 0"], "--trigger needs --ring SECONDS"),
    (["--ring", "5"], "--ring needs --trigger FILTER"),
    (["--after", "2"], "belong to the flight recorder"),
    (["--ring", "5", "--trigger", "ret <"], "--trigger, column 6: expected a value after '<'"),
    (["--ring", "5", "--trigger", "   "], "needs a condition"),
])
def test_flight_options_are_checked_in_one_sentence(tmp_path, capsys, argv, words):
    out = tmp_path / "x.ktrec"
    assert main(["record", GETPPID, "-o", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") <= 2 and "Traceback" not in err  # a filter error adds its caret line
    assert not out.exists()


@pytest.mark.live
def test_a_trigger_naming_what_no_probe_records_is_refused_before_recording(tmp_path, capsys):
    out = tmp_path / "x.ktrec"
    assert main(["record", GETPPID, "-o", str(out), "--ring", "5", "--trigger", "ret < 0", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert "fits no probe" in err and "unknown name 'ret'" in err and err.count("\n") == 1
    assert not out.exists()


# -- the ring's rules, on synthetic records through a real writer --------------------------------

LAYOUT = ProbeLayout(0, "sys_exit_close", CLOSE_EXIT, (FieldLayout("ret", "<i8", "s"),))
OTHER = ProbeLayout(1, "sys_enter_getppid", GETPPID)
S = 1_000_000_000


def _recs(layout: ProbeLayout, times, ret: int = 0) -> np.ndarray:
    a = np.zeros(len(times), dtype=layout.dtype)
    a["ts"] = times
    a["probe"] = layout.probe_id
    a["pid"] = 42
    a["comm"] = b"cat"
    if "ret" in (layout.dtype.names or ()):
        a["ret"] = ret
    return a


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def _flight(tmp_path, clock, **kw):
    writer = RecordingWriter.create(tmp_path / "f.ktrec", kernel_identity(), [LAYOUT, OTHER])
    return FlightRecorder(writer, [LAYOUT, OTHER], 'ret < 0 && comm == "cat"', clock=clock, **kw)


def test_only_the_window_is_written_and_the_pending_trigger_fires_after_it(tmp_path):
    clock = Clock()
    f = _flight(tmp_path, clock, ring_s=2, after_s=1, keep=2)
    assert f.watched == [0]  # the getppid probe records no ret: not watched
    f.append(1, _recs(OTHER, [s * S for s in range(10)]))  # 0..9 s
    clock.now = 10 * S
    f.append(0, _recs(LAYOUT, [10 * S], ret=-9))  # trigger 1 at 10 s: window [8 s, 11 s]
    f.append(1, _recs(OTHER, [int(10.5 * S), 11 * S, int(11.5 * S)]))
    f.append(0, _recs(LAYOUT, [int(11.2 * S)], ret=-2))  # during the window: kept as the next trigger
    clock.now = int(11.2 * S)
    f.poll()
    assert f.state == "after" and len(f.marks) == 1
    f.append(1, _recs(OTHER, [12 * S, 13 * S]))
    clock.now = 12 * S
    f.poll()  # window 1 over (11 s + grace): trigger 2 fires at 11.2 s: window (11 s, 12.2 s]
    assert [m[0] for m in f.marks] == [10 * S, int(11.2 * S)]
    clock.now = 14 * S
    f.poll()
    assert f.done.is_set()
    f.append(1, _recs(OTHER, [15 * S]))  # after the last window: not kept
    f.close()
    with RecordingReader.open(tmp_path / "f.ktrec") as rec:
        got = sorted(int(t) for arr in rec.events(probe_ids=[1]) for t in arr["ts"])
        marks = rec.marks()
        triggers = sorted(int(t) for arr in rec.events(probe_ids=[0]) for t in arr["ts"])
    assert got == [8 * S, 9 * S, int(10.5 * S), 11 * S, int(11.5 * S), 12 * S]
    assert triggers == [10 * S, int(11.2 * S)]
    assert [(m.ts, m.start_ns, m.end_ns) for m in marks] == [(10 * S, 8 * S, 11 * S),
                                                               (int(11.2 * S), 11 * S + 1, int(12.2 * S))]


def test_the_ring_is_bounded_in_time_and_in_bytes(tmp_path):
    clock = Clock()
    f = _flight(tmp_path, clock, ring_s=1, ring_bytes=64 * OTHER.record_size * 10)
    for batch in range(100):  # 100 batches of 64 events, 10 ms apart: 1 s of ring holds at most 10 batches + 1
        t0 = batch * 10_000_000
        f.append(1, _recs(OTHER, [t0 + i for i in range(64)]))
        assert f._bytes <= f.ring_bytes
    assert f.events_overflowed > 0 and f.events_kept == 0
    f.close()
    with RecordingReader.open(tmp_path / "f.ktrec") as rec:
        assert rec.count() == 0 and rec.marks() == []


@pytest.mark.parametrize("fields, said", [
    (("", "", "1", ""), "after and keep belong to the flight recorder"),
    (("", "5", "", ""), "a ring needs a trigger"),
    (("ret < 0", "", "", ""), "a trigger needs a ring"),
    (("ret < 0", "soon", "", ""), "the ring: 'soon' is not a number of seconds."),
    (("ret < 0", "0", "", ""), "the ring must be a positive number of seconds."),
    (("ret < 0", "nan", "", ""), "the ring must be a positive number of seconds."),
    (("ret < 0", "1", "-1", ""), "the time after a trigger must be zero or a positive number of seconds."),
    (("ret < 0", "1", "", "1.5"), "keep: '1.5' is not a whole number."),
    (("ret < 0", "1", "", "0"), "between 1 and 1000000"),
    (("ret <", "1", "", ""), "the trigger, column 6"),
])
def test_the_app_dialogs_flight_fields_are_refused_in_one_sentence(fields, said):
    """The recording dialog's fields, checked by the core (FlightSettings) as `ktui record` checks its options."""
    from ktui.errors import KtuiError
    from ktui.recording.flight import FlightSettings

    with pytest.raises(KtuiError) as err:
        FlightSettings.from_fields(*fields)
    assert said in str(err.value) and "\n" not in str(err.value)


def test_the_app_dialogs_flight_fields_make_the_settings_or_none():
    from ktui.recording.flight import FlightSettings

    assert FlightSettings.from_fields("", "", "", "") is None  # a plain recording
    assert FlightSettings.from_fields(" ret < 0 ", "2.5", "0.5", "3") == FlightSettings("ret < 0", 2.5, 0.5, 3)
    assert FlightSettings.from_fields("ret < 0", "1") == FlightSettings("ret < 0", 1.0, 0.0, 1)
