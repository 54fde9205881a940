"""Chunk summaries stored by the writer (schema: chunk_summaries): window aggregates from them equal
those from decoding every chunk; a file without the table (older format) gives the same answers;
a damaged summary is one sentence and that chunk is decoded instead."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ktui.events import FieldLayout, ProbeLayout
from ktui.kernel import kernel_identity
from ktui.recording import RecordingReader, RecordingWriter, schema
from ktui.recording.window import WindowAggregates, window_aggregates

LAYOUTS = [
    ProbeLayout(0, "profile", "profile:hz:999"),
    ProbeLayout(1, "sys_exit_openat", "tracepoint:syscalls:sys_exit_openat",
                (FieldLayout("ret", "<i8", "s"), FieldLayout("mode", "<u4", "u"))),
]
PROBES = {
    0: {"spec": "profile:hz:999", "actions": [{"kind": "stream"}, {"kind": "stacks"}]},
    1: {"spec": "tracepoint:syscalls:sys_exit_openat",
        "actions": [{"kind": "stream"}, {"kind": "hist", "value": "ret", "scale": "log2"},
                    {"kind": "hist", "value": "ret", "scale": "linear", "lo": 0, "hi": 100, "step": 10},
                    {"kind": "count", "key": ["comm"]}, {"kind": "count", "key": ["pid", "mode"]}]},
}
N = 60_000


def write(path: Path, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    ts = 10**12 + np.cumsum(rng.integers(100, 5000, N, dtype=np.uint64))
    probe = (rng.random(N) < 0.4).astype(np.uint32)
    with RecordingWriter.create(path, kernel_identity(), LAYOUTS, PROBES, chunk_events=1000) as w:
        for layout in LAYOUTS:
            idx = np.flatnonzero(probe == layout.probe_id)
            a = np.zeros(len(idx), dtype=layout.dtype)
            a["ts"], a["probe"], a["cpu"] = ts[idx], layout.probe_id, rng.integers(0, 3, len(idx))
            a["pid"] = a["tid"] = 1000 + rng.integers(0, 30, len(idx))
            a["comm"] = np.array([b"proc-%d" % i for i in range(30)])[a["pid"] - 1000]
            a["ustack"] = np.where(rng.random(len(idx)) < 0.2, rng.integers(0, 5, len(idx)), -1)
            if layout.probe_id == 0:
                a["kstack"] = np.where(rng.random(len(idx)) < 0.9, rng.zipf(1.5, len(idx)) % 50, -1)
            else:
                a["kstack"] = -1
                a["ret"] = rng.integers(-3, 300, len(idx))
                a["mode"] = rng.integers(0, 4, len(idx))
            for start in range(0, len(a), 700):
                w.append(layout.probe_id, a[start:start + 700])


def without_table(src: Path, dst: Path) -> Path:
    """The same recording as a file written before chunk_summaries existed."""
    shutil.copy(src, dst)
    with sqlite3.connect(dst) as conn:
        conn.execute("DROP TABLE chunk_summaries")
    return dst


def same(a: WindowAggregates, b: WindowAggregates) -> None:
    assert a.events == b.events
    assert {p: c.hits for p, c in a.counters.items()} == {p: c.hits for p, c in b.counters.items()}
    assert a.cpu_history == b.cpu_history
    assert sorted((s.probe_id, s.kernel, s.user, s.count) for s in a.stacks) == \
        sorted((s.probe_id, s.kernel, s.user, s.count) for s in b.stacks)
    assert a.histograms == b.histograms and a.counts == b.counts


def windows(r: RecordingReader) -> list[tuple[int, int]]:
    span = r.last_ts + 1 - r.first_ts
    return [(r.first_ts, r.last_ts + 1), (r.first_ts + span // 3, r.first_ts + 2 * span // 3),
            (r.first_ts + span // 100, r.first_ts + span // 100 + span // 50)]


def decoding_counted(r: RecordingReader) -> list[int]:
    calls: list[int] = []
    decode = r.chunk_events

    def counted(chunk):
        calls.append(chunk.id)
        return decode(chunk)

    r.chunk_events = counted  # type: ignore[method-assign]
    return calls


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("summaries") / "r.ktrec"
    write(path)
    return path


def test_every_chunk_has_a_summary_and_windows_equal_decoding(rec, tmp_path):
    old = without_table(rec, tmp_path / "old.ktrec")
    with RecordingReader.open(rec) as r, RecordingReader.open(old) as o:
        assert len(r.chunks) > 50
        with sqlite3.connect(rec) as conn:
            assert conn.execute("SELECT count(*) FROM chunk_summaries").fetchone()[0] == len(r.chunks)
        decoded = decoding_counted(r)
        for lo, hi in windows(r):
            decoded.clear()
            stored, reference = window_aggregates(r, lo, hi), window_aggregates(o, lo, hi)
            same(stored, reference)
            # only the (at most two per probe) chunks the window's bounds cut were decoded
            cut = [c.id for c in r.chunks_between(lo, hi) if not (c.first_ts >= lo and c.last_ts < hi)]
            assert sorted(decoded) == sorted(cut) and len(cut) <= 4
        assert r.problems == [] and o.problems == []
        # the independent truth for the whole recording: the events themselves
        lo, hi = windows(r)[0]
        agg = window_aggregates(r, lo, hi)
        events = {p: np.concatenate(list(r.events(probe_ids=[p]))) for p in r.layouts}
        assert agg.events == N
        for p, a in events.items():
            assert agg.counters[p].hits == np.bincount(a["cpu"], minlength=3).tolist()
        (by_comm,) = [k for k in agg.counts if k.key_names == ("comm",)]
        names, n = np.unique(events[1]["comm"], return_counts=True)
        assert dict(by_comm.rows) == {(c.decode(),): int(k) for c, k in zip(names, n)}


def test_a_file_without_summaries_opens_and_gives_the_same_answers(rec, tmp_path):
    old = without_table(rec, tmp_path / "old.ktrec")
    with RecordingReader.open(old) as o:
        decoded = decoding_counted(o)
        lo, hi = windows(o)[0]
        agg = window_aggregates(o, lo, hi)
        assert sorted(decoded) == sorted(c.id for c in o.chunks)  # every chunk decoded, as before
        assert agg.events == N and o.problems == []


def test_summaries_of_another_version_or_other_actions_are_not_used(rec, tmp_path):
    path = tmp_path / "v.ktrec"
    shutil.copy(rec, path)
    with sqlite3.connect(path) as conn:
        (cid, text), (cid2, text2) = conn.execute("SELECT chunk_id, summary FROM chunk_summaries LIMIT 2").fetchall()
        d, d2 = json.loads(text), json.loads(text2)
        d["v"], d2["a"] = schema.SUMMARY_VERSION + 1, "[{\"kind\": \"count\"}]"
        conn.execute("UPDATE chunk_summaries SET summary = ? WHERE chunk_id = ?", (json.dumps(d), cid))
        conn.execute("UPDATE chunk_summaries SET summary = ? WHERE chunk_id = ?", (json.dumps(d2), cid2))
    with RecordingReader.open(path) as r, RecordingReader.open(rec) as ref:
        decoded = decoding_counted(r)
        lo, hi = windows(r)[0]
        same(window_aggregates(r, lo, hi), window_aggregates(ref, lo, hi))
        assert sorted(decoded) == sorted([cid, cid2]) and r.problems == []  # not damage


@pytest.mark.parametrize("damage", [
    "not json",
    "count+1",  # per-CPU counts that do not add up to the chunk's events
    "huge",
    "slots",  # a histogram that does not count each event once
])
def test_a_damaged_summary_is_one_sentence_and_the_answer_is_still_right(rec, tmp_path, damage):
    path = tmp_path / "d.ktrec"
    shutil.copy(rec, path)
    with sqlite3.connect(path) as conn:
        cid, text = conn.execute(
            "SELECT s.chunk_id, s.summary FROM chunk_summaries s JOIN chunks c ON c.id = s.chunk_id "
            "WHERE c.probe_id = 1 LIMIT 1 OFFSET 3").fetchone()
        d = json.loads(text)
        if damage == "count+1":
            d["cpu"][0] += 1
            d["sub"][0][0] += 1
        elif damage == "slots":
            d["slots"]["ret"][0][1] += 5
        new = {"not json": "{cpu: [1,", "huge": "[" * (schema.MAX_SUMMARY_CHARS + 1)}.get(damage, json.dumps(d))
        conn.execute("UPDATE chunk_summaries SET summary = ? WHERE chunk_id = ?", (new, cid))
    with RecordingReader.open(path) as r, RecordingReader.open(rec) as ref:
        decoded = decoding_counted(r)
        lo, hi = windows(r)[0]
        same(window_aggregates(r, lo, hi), window_aggregates(ref, lo, hi))
        same(window_aggregates(r, lo, hi), window_aggregates(ref, lo, hi))  # said once, decoded each time
        assert decoded == [cid, cid]
        assert len(r.problems) == 1 and f"chunk {cid}" in r.problems[0] and "\n" not in r.problems[0]
        assert r.problems[0].endswith("that chunk is decoded instead")


def test_rows_are_grouped_by_hash_exactly_with_bucket_collisions():
    from ktui.recording.summary import _group_hashes

    rng = np.random.default_rng(5)
    for k, n in ((1, 10), (200, 65536), (5000, 65536), (60000, 65536)):
        h = rng.integers(0, k, n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        if k == 5000:  # many different hashes sharing one bucket (the top 16 bits)
            h[::7] = (h[::7] & np.uint64(0xFFFF000000000000)) | np.uint64(3)
        first, counts, owner = _group_hashes(h)
        u, c = np.unique(h, return_counts=True)
        assert sorted(zip(h[first].tolist(), counts.tolist())) == sorted(zip(u.tolist(), c.tolist()))
        assert (h[owner] == h).all() and all(owner[f] == f for f in first)


def test_sub_bins_and_log2_slots_follow_their_per_event_rules():
    """summarize finds sub-bin edges by bisection (cheaper for the writer): equal to the rule stated per
    event, sub-bin (ts - t0) * 16 // (t1 - t0 + 1); log2 slots are the compiler's (log2_slot), also at
    powers of two, past 2^53 and for negatives."""
    from ktui.probes.model import Action, ActionKind
    from ktui.recording.summary import SUB_BINS, _slots, summarize

    rng = np.random.default_rng(9)
    for n, spread in ((1, 1), (17, 3), (5000, 10**6), (65536, 400)):
        a = np.zeros(n, dtype=LAYOUTS[0].dtype)
        a["ts"] = np.sort(10**12 + rng.integers(0, spread * n, n)).astype(np.uint64)
        a["cpu"] = rng.integers(0, 3, n)
        a["kstack"] = a["ustack"] = -1
        s = summarize(a, [])
        ts = a["ts"].astype(np.int64)
        sub = (ts - ts[0]) * SUB_BINS // (ts[-1] - ts[0] + 1)
        want = np.zeros((int(a["cpu"].max()) + 1, SUB_BINS), np.int64)
        np.add.at(want, (a["cpu"].astype(np.int64), sub), 1)
        assert np.array_equal(s.cpu_sub, want) and s.stacks == {}
    from ktui.engine.histograms import log2_slot

    action = Action(ActionKind.HIST, value="v", scale="log2")
    edges = [0, 1, 2, 3, 4, 7, 8, 2**52 - 1, 2**52, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1]
    values = np.array(edges + rng.integers(0, 2**63, 1000, dtype=np.uint64).tolist(), dtype=np.uint64)
    assert _slots(values, action).tolist() == [log2_slot(int(v), False) for v in values.tolist()]
    signed = np.array([-(2**63), -5, -1, 0, 1, 5, 2**62], dtype=np.int64)
    assert _slots(signed, action).tolist() == [log2_slot(int(v), True) for v in signed.tolist()]
