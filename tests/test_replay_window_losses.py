"""A replay window's dropped and filtered counts are the counters' change across it (live kernel).

A C child makes 3000 getppid calls, sleeps 5 s, then makes 2000 more; the recorded getppid probe's
kernel filter turns every call away (comm never matches), so the recording holds no getppid event
but counts 5000 filtered hits. getpid calls mark where each burst begins and ends. A window over the
first burst shows exactly 3000 filtered, one over the second exactly 2000, the whole recording
5000: the totals of the file's counters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import build_c
from ktui.cli import main
from ktui.recording import RecordingReader
from ktui.recording.window import window_aggregates

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]

BURSTS_C = r"""
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    long first = atol(argv[1]), second = atol(argv[2]);
    syscall(SYS_getpid);
    for (long i = 0; i < first; i++) syscall(SYS_getppid);
    syscall(SYS_getpid);
    usleep(5000000); /* the recorder takes its counters (about every second) in the pause */
    syscall(SYS_getpid);
    for (long i = 0; i < second; i++) syscall(SYS_getppid);
    syscall(SYS_getpid);
    usleep(1200000);
    return 0;
}
"""
GETPPID, GETPID = 0, 1


def _record(tmp: Path) -> Path:
    from ktui.probes.model import Probe, ProbeKind
    from ktui.session import Session

    session = tmp / "losses.toml"
    Session(probes=[Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", filter='comm == "no-such-comm"'),
                    Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getpid")]).save(session)
    out = tmp / "losses.ktrec"
    assert main(["record", "--session", str(session), "-o", str(out), "-q", "--",
                 str(build_c("window-losses", BURSTS_C)), "3000", "2000"]) == 0
    return out


def test_window_filtered_counts_are_the_counters_change_across_the_window(tmp_path):
    path = _record(tmp_path)
    with RecordingReader.open(path) as r:
        totals = r.counters()[GETPPID].totals()
        assert (totals["hits"], totals["filtered"], totals["delivered"], totals["dropped"]) == (5000, 5000, 0, 0)
        assert r.count(probe_ids=[GETPPID]) == 0  # every call filtered out in the kernel
        marks = sorted(int(t) for a in r.events(probe_ids=[GETPID]) for t in a["ts"])
        assert len(marks) == 4, marks
        first_end, second_start = marks[1], marks[2]
        assert second_start - first_end > 4_000_000_000
        history = r.counter_history()
        assert any(first_end < ts < second_start for ts, _ in history)  # taken in the pause too

        def filtered(lo: int, hi: int) -> tuple[int, int, int]:
            c = window_aggregates(r, lo, hi).counters[GETPPID]
            return sum(c.filtered), sum(c.hits), sum(c.delivered)

        assert filtered(r.first_ts, first_end + 1) == (3000, 3000, 0)
        assert filtered(first_end + 3_000_000_000, r.last_ts + 1) == (2000, 2000, 0)
        assert filtered(r.first_ts, r.last_ts + 1) == (5000, 5000, 0) == (totals["filtered"], totals["hits"], 0)
        # the getpid probe: its window counts are its events, nothing lost or filtered
        c = window_aggregates(r, r.first_ts, first_end + 1).counters[GETPID]
        assert (sum(c.delivered), sum(c.hits), sum(c.dropped), sum(c.filtered)) == (2, 2, 0, 0)
    # The same through the replay source the app uses (the CPUs pane shows these counters).
    from ktui.sources.replay import ReplaySource

    src = ReplaySource([path])
    try:
        agg = src.window_aggregates(src.start_ns, first_end + 1 + src.tracks[0].shift_ns)
        assert sum(agg.counters[GETPPID].filtered) == 3000
    finally:
        src.stop()
