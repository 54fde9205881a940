"""A corpus of damaged and hostile recordings, made here: each gives one sentence and a
non-zero exit from `ktui export`, in bounded time and memory, keeps every event it can,
and leaves the input unchanged; replay of each ends in a state that says what happened."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ktui.errors import KtuiError
from ktui.events import Histogram, ProbeCounters, StackTrace
from ktui.kernel import KernelIdentity
from ktui.recording import RecordingReader, RecordingWriter
from ktui.sources.replay import ReplaySource
from ktui.recording.synthetic import LAYOUTS, records

from helpers import run_measured

IDENT = KernelIdentity("6.1.0-test", "#1", "x86_64", "abc")
N0, N1, CHUNK = 4000, 2000, 500  # probe 0: 8 chunks, probe 1: 4 chunks
TOTAL = N0 + N1
MAX_RSS_KB = 400 * 1024  # a whole export of this file takes about 100 MB; a huge allocation would not fit
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("damage") / "base.ktrec"
    w = RecordingWriter.create(path, IDENT, LAYOUTS, chunk_events=CHUNK)
    w.append(0, records(LAYOUTS[0], N0, t0=1_000_000, step=100, seed=1))
    w.append(1, records(LAYOUTS[1], N1, t0=1_000_050, step=200, seed=2))
    w.set_counters({0: ProbeCounters([N0 // 2, N0 // 2], [N0 // 2, N0 // 2], [0, 0], [0, 0]),
                    1: ProbeCounters([N1], [N1], [0], [0])})
    w.set_stacks([StackTrace(0, ("vfs_read", "ksys_read"), ("main",), 7)])
    w.set_histograms([Histogram(1, "ret", "log2", [(0, 1, 5), (1, 2, 3)])])
    w.add_stack_ids({3: [0xffffffff81000010]})
    w.add_symbols({0xffffffff81000000: "vfs_read"})
    w.close()
    return path


def _copy(base: Path, tmp_path: Path, name: str = "bad.ktrec") -> Path:
    p = tmp_path / name
    shutil.copy(base, p)
    return p


def _sql(path: Path, *statements) -> None:
    conn = sqlite3.connect(path)
    for st_ in statements:
        if isinstance(st_, tuple):
            conn.execute(*st_)
        else:
            conn.execute(st_)
    conn.commit()
    conn.close()


def _chunk_ids(path: Path) -> list[tuple[int, int]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    rows = conn.execute("SELECT id, count FROM chunks ORDER BY id").fetchall()
    conn.close()
    return rows


def _flip_in_file(path: Path, chunk_id: int) -> None:
    """Flip one byte of a chunk's compressed data where it lies in the file (as a bad disk would)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    blob = conn.execute("SELECT data FROM chunks WHERE id=?", (chunk_id,)).fetchone()[0]
    conn.close()
    raw = bytearray(path.read_bytes())
    at = raw.find(blob[:64])
    assert at > 0 and raw.find(blob[:64], at + 1) < 0
    raw[at + 40] ^= 0x20  # inside the 64 bytes found: a long blob continues on overflow pages elsewhere
    path.write_bytes(bytes(raw))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _export_measured(path: Path, out: Path) -> tuple[int, str, str, int]:
    """As _export, with the child's own peak RSS in KiB (run_measured), killed after 60 s (-9)."""
    code, stdout, stderr, _, rss = run_measured([sys.executable, "-m", "ktui", "export", str(path), "-f", "jsonl",
                                                 "-o", str(out)], timeout=60)
    return code, stdout, stderr, rss


def _check_export(path: Path, tmp_path: Path, *, events: int | None, fatal: bool = False) -> str:
    """Export `path`: one sentence, non-zero exit, bounded, input unchanged; `events` kept (when not fatal)."""
    before = _sha(path)
    out = tmp_path / "out.jsonl"
    if out.exists():
        out.unlink()
    code, stdout, stderr, rss = _export_measured(path, out)
    assert code not in (0, -9), (code, stderr)  # -9: killed by the 60 s bound
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ktui: ") and "Traceback" not in stderr, stderr
    assert rss < MAX_RSS_KB, rss
    assert _sha(path) == before
    assert sorted(os.listdir(path.parent)) == sorted(p.name for p in path.parent.iterdir())
    assert not any(Path(f"{path}{s}").exists() for s in ("-wal", "-shm", "-journal"))
    if fatal:
        assert not out.exists() or out.read_text() == ""
    if events is not None:
        assert len(out.read_text().splitlines()) == events
        assert f"{events:,} event(s) exported to" in lines[0]
    return lines[0]


def _replay_to_end(path: Path) -> str:
    """Play the whole file at full speed; the message of the Update that says it finished (the app
    shows it; an update without a message after it - the replay clock's last tick, racing the stop -
    leaves the app's message as it is, so it is not the one to read)."""
    done = threading.Event()
    last: list = []

    def sink(update):
        if update.finished and not done.is_set():
            last.append(update)
            done.set()

    try:
        src = ReplaySource([path])
    except KtuiError as err:
        return f"refused: {err}"
    try:
        src.set_speed(None)
        src.start(sink)
        src.play()
        assert done.wait(60), "replay neither finished nor said why it stopped"
    finally:
        src.stop()
    return last[-1].message


# -- damaged chunks ---------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(12))
def test_a_flipped_byte_in_any_chunk_loses_that_chunk_only_and_says_so(base, tmp_path, index):
    p = _copy(base, tmp_path)
    cid, count = _chunk_ids(p)[index]
    _flip_in_file(p, cid)
    r = RecordingReader.open(p)
    assert sum(len(a) for a in r.events()) == TOTAL - count
    assert (r.damage.chunks, r.damage.events) == (1, count)
    r.close()
    if index in (1, 11):  # the real command on two of them (a child each costs a second)
        sentence = _check_export(p, tmp_path, events=TOTAL - count)
        assert f"1 chunk ({count:,} events) could not be read" in sentence and f"chunk {cid}" in sentence
    message = _replay_to_end(p)
    assert "replay finished" in message and f"1 chunk ({count:,} events) could not be read" in message


@pytest.mark.parametrize("fraction", [0.35, 0.6, 0.9])
def test_a_truncated_file_exports_what_survives_with_a_sentence(base, tmp_path, fraction):
    p = _copy(base, tmp_path)
    raw = p.read_bytes()
    p.write_bytes(raw[: int(len(raw) * fraction)])
    try:
        r = RecordingReader.open(p)
    except KtuiError:
        _check_export(p, tmp_path, events=None, fatal=True)
        return
    kept = sum(len(a) for a in r.events())
    r.close()
    assert kept < TOTAL
    sentence = _check_export(p, tmp_path, events=kept)
    assert "truncated" in sentence


# -- hostile values ------------------------------------------------------------------------


HOSTILE_CHUNK_INDEX = {
    "first_ts text": "UPDATE chunks SET first_ts = 'soon' WHERE id = 2",
    "first_ts NULL": "UPDATE chunks SET first_ts = NULL WHERE id = 2",  # after dropping NOT NULL, below
    "first_ts REAL": "UPDATE chunks SET first_ts = 1.5e300 WHERE id = 2",
    "count 2^31": "UPDATE chunks SET count = 2147483648 WHERE id = 2",
    "count 2^62": "UPDATE chunks SET count = 4611686018427387904 WHERE id = 2",
    "count text": "UPDATE chunks SET count = 'many' WHERE id = 2",
    "codec": "UPDATE chunks SET codec = 'lz4' WHERE id = 2",
    "data text": "UPDATE chunks SET data = 'nothing' WHERE id = 2",
    "frame claims 1 TB": None,  # made below
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CHUNK_INDEX))
def test_a_hostile_chunk_row_is_one_lost_chunk(base, tmp_path, case):
    p = _copy(base, tmp_path)
    if case == "frame claims 1 TB":
        import zstandard
        # A frame header (single segment, 8-byte content size) claiming 1 TB, then an empty raw block.
        fake = b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + (1 << 40).to_bytes(8, "little") + b"\x01\x00\x00"
        assert zstandard.frame_content_size(fake) == 1 << 40
        _sql(p, ("UPDATE chunks SET data = ? WHERE id = 2", (fake,)))
    else:
        if "NULL" in case:  # the file's own schema is the writer's choice: one without NOT NULL
            _sql(p, "CREATE TABLE c2 AS SELECT * FROM chunks", "DROP TABLE chunks", "ALTER TABLE c2 RENAME TO chunks",
                 "CREATE INDEX chunks_by_time ON chunks (first_ts)")
        _sql(p, HOSTILE_CHUNK_INDEX[case])
    count = dict(_chunk_ids(base))[2]
    sentence = _check_export(p, tmp_path, events=TOTAL - count)
    assert "1 chunk" in sentence and "chunk 2" in sentence
    assert "could not be read" in _replay_to_end(p)


def _set_meta(key, text):
    return ("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, text))


HOSTILE_META = {
    "start_ns NaN": _set_meta("start_ns", "NaN"),
    "end_ns Infinity": _set_meta("end_ns", "Infinity"),
    "clock offset -Infinity": _set_meta("clock_offset_ns", "-Infinity"),
    "start_ns 2^70": _set_meta("start_ns", str(1 << 70)),
    "start_ns text": _set_meta("start_ns", '"yesterday"'),
    "host 100,000 deep": _set_meta("host", DEEP),
    "kernel 100,000 deep": _set_meta("kernel", "{\"release\": " + DEEP + "}"),
    "a free key 100,000 deep": _set_meta("notes", DEEP),
    "host not JSON": _set_meta("host", "{"),
    "host a number": _set_meta("host", "12"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_META))
def test_hostile_metadata_is_named_and_the_events_are_kept(base, tmp_path, case):
    p = _copy(base, tmp_path)
    _sql(p, HOSTILE_META[case])
    sentence = _check_export(p, tmp_path, events=TOTAL)
    assert "1 other row could not be read" in sentence and "meta" in sentence
    assert "could not be read" in _replay_to_end(p)


FATAL_META = {
    "schema_version NaN": (_set_meta("schema_version", "NaN"), "format version"),
    "schema_version 2^62": (_set_meta("schema_version", str(1 << 62)), "format version 4611686018427387904"),
    "schema_version 10^5000": (_set_meta("schema_version", "9" * 5000), "format version"),
    "format deep": (_set_meta("format", DEEP), "no format mark"),
}


@pytest.mark.parametrize("case", sorted(FATAL_META))
def test_metadata_that_makes_it_no_recording_is_one_sentence(base, tmp_path, case):
    p = _copy(base, tmp_path)
    statement, words = FATAL_META[case]
    _sql(p, statement)
    assert words in _check_export(p, tmp_path, events=None, fatal=True)
    assert _replay_to_end(p).startswith("refused: ")


def _layout(**change):
    d = LAYOUTS[1].to_dict()
    d.update(change)
    return json.dumps(d)


HOSTILE_LAYOUT = {
    "probe_id Infinity": '{"probe_id": Infinity, "name": "x", "spec": "y", "fields": []}',
    "probe_id 2^62": _layout(probe_id=1 << 62),
    "100,000 deep": DEEP,
    "field type huge": _layout(fields=[{"name": "a", "dtype": "V99999999999"}]),
    "field string huge": _layout(fields=[{"name": "a", "dtype": "S99999"}]),
    "fields twice": _layout(fields=[{"name": "a", "dtype": "<u8"}, {"name": "a", "dtype": "<u8"}]),
    "name a number": _layout(name=12),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LAYOUT))
def test_a_hostile_layout_loses_that_probe_only(base, tmp_path, case):
    p = _copy(base, tmp_path)
    _sql(p, ("UPDATE probes SET layout = ? WHERE probe_id = 1", (HOSTILE_LAYOUT[case],)))
    sentence = _check_export(p, tmp_path, events=N0)
    assert "1 probe layout" in sentence and f"4 chunks ({N1:,} events)" in sentence
    assert "could not be read" in _replay_to_end(p)


HOSTILE_AGGREGATES = {
    "counter text": "UPDATE counters SET hits = 'lots' WHERE probe_id = 0 AND cpu = 1",
    "counter infinite": "UPDATE counters SET delivered = 1e999 WHERE probe_id = 1",
    "counter negative": "UPDATE counters SET dropped = -5 WHERE probe_id = 1",
    "counter cpu 2^62": "UPDATE counters SET cpu = 4611686018427387904 WHERE probe_id = 1",
    "stack 100,000 deep": ("UPDATE stacks SET kernel = ?", (DEEP,)),
    "stack frames not text": ("UPDATE stacks SET user = ?", ("[1, 2]",)),
    "stack count NaN": "UPDATE stacks SET count = 'NaN'",
    "histogram 100,000 deep": ("UPDATE histograms SET buckets = ?", (DEEP,)),
    "histogram Infinity": ("UPDATE histograms SET buckets = ?", ("[[0, Infinity, 1]]",)),
    "histogram real count": ("UPDATE histograms SET buckets = ?", ("[[0, 1, 1.5]]",)),
    "symbol address text": "UPDATE symbols SET addr = 'here'",
    "probe state a blob": "INSERT INTO probe_states VALUES (0, x'00ff', 'r')",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_AGGREGATES))
def test_hostile_aggregates_are_counted_and_replay_finishes(base, tmp_path, case):
    p = _copy(base, tmp_path)
    _sql(p, HOSTILE_AGGREGATES[case])
    src = ReplaySource([p])
    try:
        counters, states, stacks, hists = src.counters(), src.probe_states(), src.stacks(), src.histograms()
        src.stack_frames(0, 3)
        src.symbolize(0xffffffff81000010)
    finally:
        src.stop()
    assert src.damage_summary() is not None and "1 other row could not be read" in src.damage_summary()
    assert len(states) == 2
    # The file holds 3 counter rows, 1 stack and 1 histogram: exactly the damaged one is missing.
    read = sum(len(c.hits) for c in counters.values()) + len(stacks) + len(hists)
    assert read == (5 if case.startswith(("symbol", "probe state")) else 4)
    message = _replay_to_end(p)
    assert "replay finished" in message
    if "symbol" not in case:  # symbols are read when a stack is shown, not by playing
        assert "could not be read" in message


def test_an_infinite_counter_is_one_damaged_row(base, tmp_path):
    p = _copy(base, tmp_path)
    _sql(p, "UPDATE counters SET delivered = 1e999 WHERE probe_id = 1")
    r = RecordingReader.open(p)
    r.counters()
    assert r.damage.rows == 1
    r.close()


def test_count_tables_come_back_from_the_file_and_hostile_ones_are_counted(base, tmp_path):
    from ktui.events import KeyCounts

    p = _copy(base, tmp_path)
    tables = [{"probe_id": 1, "key_names": ["pid", "comm"], "rows": [[[42, "sh"], 9], [[7, "x"], 2]]}]
    _sql(p, _set_meta("key_counts", json.dumps(tables)))
    got: list = []
    src = ReplaySource([p])
    try:
        src.start(got.append)
        assert _wait(lambda: got)
    finally:
        src.stop()
    assert got[0].counts == [KeyCounts(1, ("pid", "comm"), [((42, "sh"), 9), ((7, "x"), 2)])]
    for hostile in ('[{"probe_id": 1, "key_names": ["pid"], "rows": [[[1], Infinity]]}]',
                    '[{"probe_id": 1, "key_names": ["pid"], "rows": [[[1, 2], 3]]}]',
                    '[{"probe_id": 1, "key_names": ["pid"], "rows": [[[1.5], 3]]}]', DEEP):
        _sql(p, _set_meta("key_counts", hostile))
        with RecordingReader.open(p) as r:
            assert r.key_counts() == [] and r.key_counts() == []
            assert r.damage.rows == 1 and r.damage_summary() is not None


def _wait(predicate, timeout: float = 10.0) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_a_clean_file_exports_with_exit_0_and_nothing_on_stderr(base, tmp_path):
    out = tmp_path / "out.jsonl"
    code, stdout, stderr, rss = _export_measured(base, out)
    assert (code, stderr) == (0, "")
    assert len(out.read_text().splitlines()) == TOTAL
    assert "replay finished" == _replay_to_end(base)


# -- replay never dies silently --------------------------------------------------------------


def test_an_unexpected_error_in_the_replay_thread_ends_in_replay_stopped(base, monkeypatch):
    src = ReplaySource([base])
    reader = src.tracks[0].reader

    def broken(*a, **k):
        raise RuntimeError("disk vanished")

    monkeypatch.setattr(reader, "read", broken)
    got: list = []
    done = threading.Event()

    def sink(update):
        got.append(update)
        if update.finished:
            done.set()

    try:
        src.start(sink)
        src.set_speed(None)
        src.play()
        assert done.wait(10)
    finally:
        src.stop()
    assert got[-1].message == "replay stopped: RuntimeError: disk vanished"
    assert src.stopped_reason == got[-1].message


# -- property: the reader on arbitrary damage ----------------------------------------------


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damage_is_counted_or_refused_and_the_rest_kept(base, tmp_path, data):
    """Random byte damage inside chunk data: never an exception; events read + events counted lost
    == the file's total, unless the damage also hit the chunk index (then a problem says so)."""
    p = tmp_path / "prop.ktrec"
    shutil.copy(base, p)
    raw = bytearray(p.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= data.draw(st.integers(1, 255))
    p.write_bytes(bytes(raw))
    try:
        r = RecordingReader.open(p)
    except KtuiError:
        return
    try:
        kept = sum(len(a) for a in r.events())
        r.counters(), r.stacks(), r.histograms(), r.probe_states(), r.stack_frames(3)
        if r.problems:
            assert r.damage_summary() is not None
        elif len(r.layouts) == 2 and len(r.chunks) == 12:
            assert kept == TOTAL
        if len(r.layouts) == 2 and not r.damage.unknown_chunks and len(r.chunks) + r.damage.chunks == 12:
            assert kept + r.damage.events == TOTAL
    finally:
        r.close()
