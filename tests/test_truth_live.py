"""Wrong results a newcomer found (NEWCOMER.md), each checked on this machine's real kernel:
signed histograms keep their negative values apart (F9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import read_dir_binary
from ktui.probes.model import Action, ActionKind, Arg, Fetch
from ktui.probes.spec import parse_spec
from ktui.recording import RecordingReader
from ktui.recording.window import window_aggregates
from ktui.session import Session

pytestmark = pytest.mark.live

EISDIR_READS = 2_000


def _record(tmp_path: Path, probes, command: list[str], name: str = "rec.ktrec") -> Path:
    session, out = tmp_path / f"{name}.toml", tmp_path / name
    Session(probes=probes).save(session)
    proc = subprocess.run([sys.executable, "-m", "ktui", "record", "-q", "--session", str(session), "-o", str(out),
                           "--", *command], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_signed_histogram_counts_error_returns_apart_from_small_reads(tmp_path):
    """F9: N read()s of a directory return -EISDIR (-21): exactly N in [-32, -16), none in [0, 2)
    from them, in the live histogram (as recorded) and in replay's recomputed window alike."""
    probe = parse_spec("tracepoint:syscalls:sys_exit_read")[0]
    probe.fetches = [Fetch("ret", Arg(name="ret"))]
    probe.actions = [Action(), Action(ActionKind.HIST, value="ret")]
    out = _record(tmp_path, [probe], [str(read_dir_binary()), str(EISDIR_READS)])
    with RecordingReader.open(out) as r:
        rets = [int(v) for a in r.events(probe_ids=[0]) for v in a["ret"]]
        assert rets.count(-21) == EISDIR_READS and min(rets) == -21  # the child's own reads, as streamed
        small = sum(1 for v in rets if 0 <= v < 2)
        [live] = r.histograms()
        replayed = window_aggregates(r, r.first_ts, r.last_ts + 1).histograms
    negative = [(lo, hi, n) for lo, hi, n in live.buckets if lo < 0]
    assert negative == [(-32, -16, EISDIR_READS)]
    assert sum(n for lo, hi, n in live.buckets if (lo, hi) == (0, 2)) == small
    assert sum(n for _, _, n in live.buckets) == len(rets)
    assert [h.buckets for h in replayed] == [live.buckets]
