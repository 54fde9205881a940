"""Reading recordings: time windows, seek, filters, read-only for real, and every kind of bad file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ktui.errors import FileFormatError, KtuiError
from ktui.events import ProbeCounters, StackTrace
from ktui.kernel import KernelIdentity
from ktui.recording import RecordingReader, RecordingWriter
from ktui.recording.synthetic import LAYOUTS, records

IDENT = KernelIdentity("6.1.0-test", "#1", "x86_64", "abc")


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    """20k events of probe 0 every 100 ns, 10k of probe 1 every 200 ns (offset 50), chunks of 1000."""
    path = tmp_path_factory.mktemp("rec") / "r.ktrec"
    w = RecordingWriter.create(path, IDENT, LAYOUTS, chunk_events=1000)
    w.append(0, records(LAYOUTS[0], 20000, t0=1_000_000, step=100, seed=1))
    w.append(1, records(LAYOUTS[1], 10000, t0=1_000_050, step=200, seed=2))
    w.close()
    return path


def _all(reader, **kw):
    parts = list(reader.events(**kw))
    return np.concatenate([p[list(("ts", "probe", "pid"))] for p in parts]) if parts else np.zeros(0)


def test_time_window_and_filters_are_exact(rec):
    r = RecordingReader.open(rec)
    assert r.count() == 30000
    # [1_100_000, 1_200_000): probe 0 at 100 ns steps -> 1000 events; probe 1 at 200 ns -> 500
    assert r.count(1_100_000, 1_200_000) == 1500
    assert r.count(1_100_000, 1_200_000, probe_ids=[1]) == 500
    window = _all(r, start_ns=1_100_000, end_ns=1_200_000)
    assert len(window) == 1500
    assert window["ts"].min() >= 1_100_000 and window["ts"].max() < 1_200_000
    pid_events = _all(r, pid=1007)
    every = _all(r)
    assert len(pid_events) == int(np.sum(every["pid"] == 1007)) > 0
    assert set(pid_events["pid"].tolist()) == {1007}


def test_seek_and_read_walk_every_event_once_in_time_order(rec):
    r = RecordingReader.open(rec)
    r.seek(0)
    seen = []
    while True:
        batch = r.read(max_events=777)
        if not batch:
            break
        merged = np.sort(np.concatenate([b["ts"] for b in batch.values()]))
        assert not seen or merged[0] > seen[-1][-1]  # strictly after everything before
        seen.append(merged)
    all_ts = np.concatenate(seen)
    assert len(all_ts) == 30000 and np.all(np.diff(all_ts) >= 0)


def test_read_until_is_half_open(rec):
    r = RecordingReader.open(rec)
    r.seek(1_500_000)
    first = r.read(until_ns=1_500_400)
    assert first[0]["ts"].tolist() == [1_500_000, 1_500_100, 1_500_200, 1_500_300]
    assert first[1]["ts"].tolist() == [1_500_050, 1_500_250]
    assert r.position == 1_500_400
    nxt = r.read(max_events=1)
    assert nxt[0]["ts"].tolist() == [1_500_400] and 1 not in nxt


def test_replay_operations_change_no_byte_and_create_no_file(rec):
    directory = rec.parent
    before = {n: hashlib.sha256((directory / n).read_bytes()).hexdigest() for n in os.listdir(directory)}
    r = RecordingReader.open(rec)
    r.count()
    list(r.events(pid=1001))
    r.seek(1_234_567)
    r.read(max_events=5000)
    r.counters(), r.stacks(), r.histograms(), r.probe_states(), r.symbolize(0xFFFF)
    r.close()
    after = {n: hashlib.sha256((directory / n).read_bytes()).hexdigest() for n in os.listdir(directory)}
    assert before == after


def test_readonly_file_in_readonly_directory_opens(rec, tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    shutil.copy(rec, d / "r.ktrec")
    os.chmod(d / "r.ktrec", 0o400)
    os.chmod(d, 0o500)
    try:
        assert RecordingReader.open(d / "r.ktrec").count() == 30000
    finally:
        os.chmod(d, 0o700)


def test_corrupted_chunk_is_skipped_and_named(rec, tmp_path):
    bad = tmp_path / "bad.ktrec"
    shutil.copy(rec, bad)
    conn = sqlite3.connect(bad)
    conn.execute("UPDATE chunks SET data = x'deadbeef' WHERE id = 3")
    conn.commit()
    conn.close()
    r = RecordingReader.open(bad)
    assert sum(len(a) for a in r.events()) == 29000
    assert len(r.problems) == 1
    assert "bad.ktrec" in r.problems[0] and "chunk 3" in r.problems[0] and "damaged" in r.problems[0]


def test_other_schema_version_names_both_versions(rec, tmp_path):
    other = tmp_path / "v9.ktrec"
    shutil.copy(rec, other)
    conn = sqlite3.connect(other)
    conn.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(FileFormatError) as err:
        RecordingReader.open(other)
    msg = str(err.value)
    assert "v9.ktrec" in msg and "version 9" in msg and "version 1" in msg


@pytest.mark.parametrize("content, problem", [
    (b"", "empty"),
    (b"# tracer: nop\n", "not a ktui recording"),
    (b"SQLite format 3\x00" + b"\x00" * 20, "truncated"),
])
def test_not_a_recording(tmp_path, content, problem):
    p = tmp_path / "x.ktrec"
    p.write_bytes(content)
    with pytest.raises(FileFormatError, match=problem) as err:
        RecordingReader.open(p)
    assert "x.ktrec" in str(err.value)


def test_another_sqlite_database_is_not_a_recording(tmp_path):
    p = tmp_path / "other.db"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(FileFormatError, match="not a ktui recording"):
        RecordingReader.open(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        RecordingReader.open(tmp_path / "nope.ktrec")
    with pytest.raises(FileFormatError, match="directory"):
        RecordingReader.open(tmp_path)


def test_truncated_recording_shows_what_survives(rec, tmp_path):
    size = os.path.getsize(rec)
    cut = tmp_path / "cut.ktrec"
    shutil.copy(rec, cut)
    os.truncate(cut, int(size * 0.8))
    r = RecordingReader.open(cut)
    n = sum(len(a) for a in r.events())
    assert 0 < n < 30000
    assert any("truncated" in p and "cut.ktrec" in p for p in r.problems)
    os.truncate(cut, 2000)
    with pytest.raises(FileFormatError, match="truncated"):
        RecordingReader.open(cut)


def test_damaged_layout_skips_that_probe_and_counts_its_events(rec, tmp_path):
    p = tmp_path / "lay.ktrec"
    shutil.copy(rec, p)
    conn = sqlite3.connect(p)
    conn.execute("UPDATE probes SET layout = ? WHERE probe_id = 1",
                 (json.dumps({"probe_id": 1, "name": "x", "spec": "y", "fields": [{"name": "a", "dtype": "zz"}]}),))
    conn.commit()
    conn.close()
    r = RecordingReader.open(p)
    assert set(r.layouts) == {0}
    assert r.count() == 20000  # probe 0 whole
    assert r.damage.probes == 1 and r.damage.chunks == 10 and r.damage.events == 10000
    summary = r.damage_summary()
    assert summary is not None and "10 chunks (10,000 events)" in summary and "probe 1" in summary


_SMALL: dict[str, bytes] = {}


def _small_rec_bytes(tmp_path) -> bytes:
    """A small recording's bytes, made once (kept out of hypothesis' reports, which print arguments)."""
    if "b" not in _SMALL:
        path = tmp_path / "s.ktrec"
        w = RecordingWriter.create(path, IDENT, LAYOUTS, chunk_events=200)
        w.append(0, records(LAYOUTS[0], 1000, seed=1))
        w.append(1, records(LAYOUTS[1], 500, seed=2))
        w.set_counters({0: ProbeCounters([1, 2], [1, 2], [0, 0], [0, 0])})
        w.add_stacks([StackTrace(0, ("a",), (), 3)])
        w.close()
        _SMALL["b"] = path.read_bytes()
        path.unlink()
    return _SMALL["b"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_bytes_give_events_or_a_ktui_error(tmp_path, data):
    """Any damage: a result (perhaps with problems) or a KtuiError, never another exception."""
    blob = bytearray(_small_rec_bytes(tmp_path))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    p = tmp_path / "fuzz.ktrec"
    p.write_bytes(bytes(blob))
    try:
        r = RecordingReader.open(p)
    except KtuiError:
        return
    try:
        total = sum(len(a) for a in r.events())
        assert 0 <= total
        r.seek(0)
        r.read(max_events=100)
        r.count(0, 10**7)
        r.counters(), r.stacks(), r.histograms(), r.probe_states()
    finally:
        r.close()


def test_a_seek_screen_decoded_part_way_equals_whole_chunks(tmp_path, monkeypatch):
    """A read bounded by a number of events decodes chunks only part way (a cursor move): at any
    position it returns exactly what reading whole chunks returns, also when many events share a
    time at the prefix's edge, and a later read of more events still gets every one."""
    import ktui.recording.reader as reader_mod

    path = tmp_path / "ties.ktrec"
    w = RecordingWriter.create(path, IDENT, LAYOUTS, chunk_events=50_000)
    a = records(LAYOUTS[0], 60_000, t0=1_000_000, step=100, seed=3)
    a["ts"] = 1_000_000 + (np.arange(60_000, dtype=np.uint64) // 7) * 100  # runs of 7 equal times
    w.append(0, a)
    w.append(1, records(LAYOUTS[1], 30_000, t0=1_000_050, step=230, seed=4))
    w.close()
    monkeypatch.setattr(reader_mod, "PREFIX_STEP", 4096)  # many prefix edges inside the chunks
    partial, whole = RecordingReader.open(path), RecordingReader.open(path)
    whole._chunk_prefix = lambda c, start, need: whole._chunk(c)  # type: ignore[method-assign]
    rng = np.random.default_rng(5)
    for t in [partial.first_ts, partial.last_ts, *rng.integers(partial.first_ts, partial.last_ts, 60).tolist()]:
        for n in (1, 200, 3000):
            got = []
            for r in (partial, whole):
                r.seek(int(t))
                got.append(r.read(max_events=n))
            assert got[0].keys() == got[1].keys()
            for p in got[0]:
                assert np.array_equal(got[0][p], got[1][p]), (t, n, p)
            assert partial.position == whole.position
    assert partial.problems == [] and partial._prefixes  # prefixes were used, nothing called damaged
    bad = tmp_path / "bad.ktrec"
    shutil.copy(path, bad)
    conn = sqlite3.connect(bad)
    blob = conn.execute("SELECT data FROM chunks WHERE id = 1").fetchone()[0]
    conn.execute("UPDATE chunks SET data = ? WHERE id = 1", (blob[:40] + bytes(len(blob) - 40),))
    conn.commit()
    conn.close()
    r = RecordingReader.open(bad)
    r.seek(r.first_ts)
    r.read(max_events=200)  # damage met part way: a sentence, not an exception
    assert len(r.problems) == 1 and "chunk 1" in r.problems[0] and "damaged" in r.problems[0]


def test_counters_over_time_give_a_window_its_losses_and_damage_is_one_sentence(tmp_path):
    """set_counters(at_ns=...) keeps the counters over time (only what changed); counters_across is their
    change from the last row at or before a window's start to the first at or after its end. A damaged
    row is one sentence and skipped; a file without the table has none (None)."""
    from ktui.events import ProbeCounters

    path = tmp_path / "history.ktrec"
    w = RecordingWriter.create(path, IDENT, LAYOUTS)
    w.append(0, records(LAYOUTS[0], 100, t0=1_000, step=100))

    def c(dropped: int, filtered: int) -> ProbeCounters:
        return ProbeCounters([dropped + filtered, 0], [0, 0], [dropped, 0], [filtered, 0])

    w.set_counters({0: c(0, 0), 1: c(0, 0)}, at_ns=1_000)
    w.set_counters({0: c(5, 1), 1: c(0, 0)}, at_ns=2_000)  # probe 1 unchanged: not written again
    w.set_counters({0: c(5, 1), 1: c(0, 7)}, at_ns=3_000)
    w.set_counters({0: c(9, 1), 1: c(0, 7)}, at_ns=4_000)
    w.close()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT ts, counters FROM counter_history ORDER BY ts").fetchall()
    conn.close()
    assert [sorted(json.loads(text)) for _, text in rows] == [["0", "1"], ["0"], ["1"], ["0"]]
    r = RecordingReader.open(path)

    def losses(lo: int, hi: int) -> dict[int, tuple[int, int]]:
        return {p: (sum(x.dropped), sum(x.filtered)) for p, x in (r.counters_across(lo, hi) or {}).items()}

    assert losses(1_000, 4_000) == {0: (9, 1), 1: (0, 7)}  # the whole: the final totals
    assert losses(1_500, 2_000) == {0: (5, 1), 1: (0, 0)}  # from the row at 1,000 to the one at 2,000
    assert losses(2_000, 3_000) == {0: (0, 0), 1: (0, 7)}
    assert losses(3_500, 3_600) == {0: (4, 0), 1: (0, 0)}  # bounds reach out to the rows at 3,000 and 4,000
    assert losses(5_000, 6_000) == {0: (0, 0), 1: (0, 0)}
    assert r.problems == []
    bad = tmp_path / "bad.ktrec"
    shutil.copy(path, bad)
    conn = sqlite3.connect(bad)
    conn.execute("UPDATE counter_history SET counters = '{\"0\": [1, 2]}' WHERE ts = 3000")
    conn.commit()
    conn.close()
    rb = RecordingReader.open(bad)  # the row at 3,000 (probe 1's 7 filtered) is skipped, the rest still counts
    assert {p: sum(x.filtered) for p, x in (rb.counters_across(1_000, 4_000) or {}).items()} == {0: 1, 1: 0}
    assert len(rb.problems) == 1 and "counters over time" in rb.problems[0] and "\n" not in rb.problems[0]
    conn = sqlite3.connect(bad)
    conn.execute("DROP TABLE counter_history")
    conn.commit()
    conn.close()
    assert RecordingReader.open(bad).counters_across(1_000, 4_000) is None  # an older file: no history


def test_count_of_cut_chunks_decodes_part_way_and_is_exact(tmp_path):
    """count() of bounds inside big chunks reads a prefix of each cut chunk (replay's rate at the cursor):
    still exact, both bounds in one chunk too, against the events counted by numpy."""
    path = tmp_path / "big.ktrec"
    w = RecordingWriter.create(path, IDENT, LAYOUTS, chunk_events=65536)
    w.append(0, records(LAYOUTS[0], 150_000, t0=1_000_000, step=100, seed=3))
    w.append(1, records(LAYOUTS[1], 70_000, t0=1_000_050, step=200, seed=4))
    w.close()
    with RecordingReader.open(path) as r:
        every = np.sort(np.concatenate([a["ts"] for a in r.events()]).astype(np.int64))
        rng = np.random.default_rng(5)
        bounds = [tuple(sorted(rng.integers(every[0], every[-1] + 2, 2))) for _ in range(20)]
        bounds += [(1_000_000 + 100, 1_000_000 + 900), (int(every[70_000]), int(every[70_001]) + 1)]
        for lo, hi in bounds:
            expected = int(np.count_nonzero((every >= lo) & (every < hi)))
            assert r.count(int(lo), int(hi)) == expected, (lo, hi)
        assert any(len(p) < 65536 for p in r._prefixes.values())  # a chunk was decoded only part way
