"""One chunk's events reduced to what the replay panes aggregate (per-CPU counts and sub-bins,
stack ids, histogram slots, COUNT keys), and that reduction as a row of the recording.

The writer reduces each chunk as it stores it (the numpy array is at hand, so this costs a
few bincounts) and keeps the result in the ``chunk_summaries`` table (schema.py); a window over
whole chunks then adds summaries instead of decoding. A summary read back is untrusted input:
``decode`` checks every value and its agreement with the chunk index (time span, event count),
and a summary that fails is decoded from the chunk instead.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from ktui.engine.histograms import log2_slots
from ktui.probes.model import Action, ActionKind
from ktui.recording import schema
from ktui.recording.schema import KeyValues


SUB_BINS = 16  # per-CPU counts kept per chunk summary, evenly over its time span (for rate histories)


@dataclass
class ChunkSummary:
    """One chunk's events (or the part of one inside a window) reduced to what the panes aggregate.

    Summaries of whole chunks are kept by the caller (``cache``), so a later window over them adds
    up summaries instead of decoding again; the file is never written.
    """

    probe_id: int
    t0: int  # first and last event time summarized
    t1: int
    cpu_hits: np.ndarray  # events per CPU
    cpu_sub: np.ndarray  # [cpu, SUB_BINS] events, bins evenly over [t0, t1]
    stacks: dict[tuple[int, int, int], int] = field(default_factory=dict)  # (kstack, ustack, pid or -1) -> n
    slots: dict[str, dict[int, int]] = field(default_factory=dict)  # histogram value -> slot -> n
    keys: dict[tuple[str, ...], dict[KeyValues, int]] = field(default_factory=dict)  # COUNT key names -> key -> n

    @property
    def events(self) -> int:
        return int(self.cpu_hits.sum())


def _count_rows(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of equal-length columns: (index of one row of each, how many), in bulk.

    Rows are hashed to one u64 and the hashes counted (a sort of integers, not of rows); every
    row is then compared with its group's representative, and only when two different rows
    share a hash are the rows counted exactly.
    """
    n = len(columns[0])
    if len(columns) == 1 and columns[0].dtype.itemsize % 8 == 0:  # one column of whole words (comm: S16)
        packed = np.ascontiguousarray(columns[0])
        raw = packed.view(np.uint8).reshape(n, -1)
    else:
        packed = np.zeros(n, dtype=[(f"c{i}", c.dtype) for i, c in enumerate(columns)])
        for i, c in enumerate(columns):
            packed[f"c{i}"] = c
        raw = packed.view(np.uint8).reshape(n, -1)
        pad = (-raw.shape[1]) % 8
        if pad:
            raw = np.ascontiguousarray(np.hstack([raw, np.zeros((n, pad), np.uint8)]))
    words = raw.view(np.uint64)
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            h ^= words[:, j]
            h *= np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(29)
    first, counts, owner = _group_hashes(h)
    if bool(np.all(words == words[owner])):  # compared word by word: the same bytes, fewer operations
        return first, counts
    _, first, counts = np.unique(packed, return_index=True, return_counts=True)  # a collision: exact
    return first, counts


_BUCKETS = 1 << 16


def _group_hashes(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by equal hash: (first row of each group, its size, each row's group's first row).

    Without a sort (the writer does this for every chunk it stores): each row goes to a bucket by
    its hash's top bits and the bucket's first row owns it when their hashes agree; the few rows
    whose bucket another hash owns are grouped by np.unique."""
    n = len(h)
    bucket = (h >> np.uint64(64 - 16)).astype(np.intp)
    rep = np.empty(_BUCKETS, np.intp)
    rep[bucket[::-1]] = np.arange(n - 1, -1, -1)  # the last assignment wins: each bucket's first row
    owner = rep[bucket]
    mine = h == h[owner]
    sizes = np.bincount(bucket[mine], minlength=_BUCKETS)
    owned = np.flatnonzero(sizes)
    first, counts = rep[owned], sizes[owned]
    rest = np.flatnonzero(~mine)
    if len(rest):
        _, fi, inv, ci = np.unique(h[rest], return_index=True, return_inverse=True, return_counts=True)
        owner = owner.copy()
        owner[rest] = rest[fi][inv.reshape(-1)]
        first, counts = np.concatenate([first, rest[fi]]), np.concatenate([counts, ci])
    return first, counts, owner


def summarize(arr: np.ndarray, actions: Iterable[Action]) -> ChunkSummary:
    """One probe's records (sorted by time, non-empty) reduced: per-CPU counts and sub-bins, stacks,
    histogram slots and COUNT keys (for the probe's hist and count actions whose values it records)."""
    # The writer runs this on every chunk it stores (bench/bench_replay_window.py --write-cost): each
    # column is gathered once, and what can be found by bisection (sub-bin edges) is not computed per event.
    probe_id = int(arr["probe"][0])
    ts = arr["ts"]
    t0, t1 = int(ts[0]), int(ts[-1])
    cpu = arr["cpu"]
    ncpu = int(cpu.max()) + 1
    # Events are sorted by time: sub-bin j holds the events with (ts - t0) * SUB_BINS // span == j, that
    # is ts >= t0 + ceil(j * span / SUB_BINS). Its bounds are found by bisection (a few reads of the
    # column, no copy of it) and its per-CPU counts are one bincount of its slice of the CPU column.
    span = max(t1 - t0 + 1, 1)
    edges = [bisect.bisect_left(ts, t0 + -(-j * span // SUB_BINS)) for j in range(SUB_BINS)] + [len(ts)]
    cpu_sub = np.zeros((ncpu, SUB_BINS), np.int64)
    for j in range(SUB_BINS):
        if edges[j + 1] > edges[j]:
            cpu_sub[:, j] = np.bincount(cpu[edges[j]:edges[j + 1]], minlength=ncpu)
    out = ChunkSummary(probe_id, t0, t1, cpu_sub.sum(axis=1), cpu_sub)
    kcol, ucol = arr["kstack"], arr["ustack"]
    if int(ucol.max()) < 0 and int(kcol.min()) >= 0 and int(kcol.max()) < 1 << 20:
        counts = np.bincount(kcol)  # every event has a kernel stack and none a user one: count ids directly
        out.stacks = {(int(i), -1, -1): int(counts[i]) for i in np.flatnonzero(counts)}
    elif int(kcol.max()) >= 0 or int(ucol.max()) >= 0:  # any stack at all (most probes take none)
        k, u = kcol.astype(np.int64), ucol.astype(np.int64)
        has = (k >= 0) | (u >= 0)
        k, u = k[has], u[has]
        if bool((u < 0).all()) and int(k.max()) < 1 << 20:  # kernel stacks only: count ids directly
            counts = np.bincount(k)
            out.stacks = {(int(i), -1, -1): int(counts[i]) for i in np.flatnonzero(counts)}
        else:  # pid matters only for user frames (their symbols are per process)
            pid = np.where(u >= 0, arr["pid"][has].astype(np.int64), -1)
            first, counts = _count_rows([k, u, pid])
            out.stacks = {(int(k[i]), int(u[i]), int(pid[i])): int(n) for i, n in zip(first, counts)}
    names = arr.dtype.names or ()
    for action in actions:
        if action.kind == ActionKind.HIST and action.value and action.value in names:
            counts = np.bincount(_slots(arr[action.value], action))
            out.slots[action.value] = {int(i): int(counts[i]) for i in np.flatnonzero(counts)}
        elif action.kind == ActionKind.COUNT and action.key and all(k_ in names for k_ in action.key):
            first, counts = _count_rows([arr[name] for name in action.key])
            columns = [[_plain(v) for v in arr[name][first].tolist()] for name in action.key]  # each key's values
            out.keys[action.key] = {key: int(n) for key, n in zip(zip(*columns), counts.tolist())}
    return out



def _slots(values: np.ndarray, action: Action) -> np.ndarray:
    """Histogram slots by the compiler's conventions (ktui/engine/histograms.py)."""
    if action.scale == "linear":
        v = values.astype(np.int64) if values.dtype.kind in "iu" else values.astype(np.float64)
        n = -(-(action.hi - action.lo) // max(action.step, 1))
        inner = (v - action.lo) // max(action.step, 1) + 1
        return np.where(v < action.lo, 0, np.where(v >= action.hi, n + 1, inner)).astype(np.int64)
    return log2_slots(values)


def _plain(value: object) -> int | str:
    """A COUNT key value of a record as JSON keeps it: text up to its NUL, or a number."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).split(b"\0", 1)[0].decode("utf-8", "replace")
    if isinstance(value, np.generic):
        item: int | str = value.item()  # key fetches are integers or strings
        return item
    return value if isinstance(value, (int, str)) else str(value)



def applicable(actions: Iterable[Action], names: Sequence[str]) -> list[Action]:
    """The hist and count actions a summary of records with these fields reduces (as ``summarize`` does)."""
    return [a for a in actions
            if (a.kind == ActionKind.HIST and a.value and a.value in names)
            or (a.kind == ActionKind.COUNT and a.key and all(k in names for k in a.key))]


def actions_key(actions: Iterable[Action], names: Sequence[str]) -> str:
    """What a stored summary was reduced for: a summary is used only when the reader's probe has
    the same applicable actions (a probe replaced mid-recording, or another slot rule, is decoded)."""
    return json.dumps([a.to_dict() for a in applicable(actions, names)], sort_keys=True)


def encode(s: ChunkSummary, key: str) -> str | None:
    """The row text of a summary; None when it is too big to be worth storing (many distinct
    stacks or COUNT keys in one chunk: a window decodes that chunk instead)."""
    entries = len(s.stacks) + sum(len(v) for v in s.slots.values()) + sum(len(v) for v in s.keys.values())
    if entries > schema.MAX_SUMMARY_ENTRIES or len(s.cpu_hits) > schema.MAX_CPUS:
        return None
    for table in s.keys.values():
        for k in table:
            if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in k):
                return None  # float keys: not stored (JSON would not give them back exactly)
    text = json.dumps({
        "v": schema.SUMMARY_VERSION, "a": key, "t0": s.t0, "t1": s.t1,
        "cpu": s.cpu_hits.tolist(), "sub": s.cpu_sub.tolist(),
        "stacks": [[k, u, p, n] for (k, u, p), n in s.stacks.items()],
        "slots": {v: [[i, n] for i, n in t.items()] for v, t in s.slots.items()},
        "keys": [[list(names), [[list(k), n] for k, n in t.items()]] for names, t in s.keys.items()],
    }, separators=(",", ":"))
    return text if len(text) <= schema.MAX_SUMMARY_CHARS else None


def decode(text: object, probe_id: int, first_ts: int, last_ts: int, count: int,
           reduced_for: str) -> ChunkSummary | None:
    """A stored summary checked against its chunk's index row; None for a summary of another format
    version or reduced for other actions than ``reduced_for`` (not damage: the chunk is decoded
    instead). Raises SchemaError, one sentence, when damaged."""
    if isinstance(text, str) and len(text) > schema.MAX_SUMMARY_CHARS:
        raise schema.SchemaError(f"it is {len(text):,} characters long (at most {schema.MAX_SUMMARY_CHARS:,})")
    d = schema.loads(text, "it")
    if not isinstance(d, dict):
        raise schema.SchemaError("it is not a table")
    if d.get("v") != schema.SUMMARY_VERSION or d.get("a") != reduced_for:
        return None
    t0 = schema.integer(d.get("t0"), "its first time", 0, schema.U64_MAX)
    t1 = schema.integer(d.get("t1"), "its last time", 0, schema.U64_MAX)
    if (t0, t1) != (first_ts, last_ts):
        raise schema.SchemaError("its time span is not its chunk's")
    cpu = _ints(d.get("cpu"), "its per-CPU counts", schema.MAX_CPUS)
    sub = d.get("sub")
    if not cpu or not isinstance(sub, list) or len(sub) != len(cpu):
        raise schema.SchemaError("its per-CPU sub-bins do not match its per-CPU counts")
    rows = [_ints(r, "a CPU's sub-bins", SUB_BINS) for r in sub]
    if any(len(r) != SUB_BINS or sum(r) != n for r, n in zip(rows, cpu)):
        raise schema.SchemaError(f"its per-CPU sub-bins are not {SUB_BINS} counts adding up to the CPU's")
    if sum(cpu) != count:
        raise schema.SchemaError(f"it counts {sum(cpu):,} events where its chunk has {count:,}")
    out = ChunkSummary(probe_id, t0, t1, np.array(cpu, np.int64), np.array(rows, np.int64).reshape(len(cpu), SUB_BINS))
    entries = 0
    stacks = d.get("stacks")
    if not isinstance(stacks, list) or len(stacks) > schema.MAX_SUMMARY_ENTRIES:
        raise schema.SchemaError("its stacks are not a short list")
    for row in stacks:
        if not (isinstance(row, list) and len(row) == 4):
            raise schema.SchemaError("a stack is not [kstack, ustack, pid, count]")
        k, u, p, n = _ints(row, "a stack", 4, lo=-(1 << 31))  # stack ids are s32: negative is an error code
        out.stacks[(k, u, p)] = out.stacks.get((k, u, p), 0) + n
    if sum(out.stacks.values()) > count:
        raise schema.SchemaError("its stacks count more events than its chunk has")
    entries += len(out.stacks)
    slots = d.get("slots")
    if not isinstance(slots, dict):
        raise schema.SchemaError("its histogram slots are not a table")
    for value, pairs in slots.items():
        table = _pairs(pairs, "a histogram slot")
        if not all(isinstance(i, int) and 0 <= i <= 1 << 32 for i in table) or sum(table.values()) != count:
            raise schema.SchemaError(f"its histogram of {schema.text(value, 'a value name', 256)!r} does not "
                                     "count each event once")
        out.slots[value] = table
        entries += len(table)
    keys = d.get("keys")
    if not isinstance(keys, list):
        raise schema.SchemaError("its COUNT keys are not a list")
    for item in keys:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], list)
                and 0 < len(item[0]) <= schema.MAX_KEY_FIELDS):
            raise schema.SchemaError("a COUNT table is not [[key names], rows]")
        names = tuple(schema.text(n, "a key name", 256) for n in item[0])
        key_table = _pairs(item[1], "a COUNT row", width=len(names))
        if sum(key_table.values()) != count:
            raise schema.SchemaError("a COUNT table does not count each event once")
        out.keys[names] = key_table
        entries += len(key_table)
    if entries > schema.MAX_SUMMARY_ENTRIES:
        raise schema.SchemaError(f"it has {entries:,} entries (at most {schema.MAX_SUMMARY_ENTRIES:,})")
    return out


def _ints(value: object, what: str, limit: int, lo: int = 0) -> list[int]:
    if not isinstance(value, list) or len(value) > limit:
        raise schema.SchemaError(f"{what} are not a list of at most {limit:,} integers")
    return [schema.integer(v, what, lo, schema.U64_MAX) for v in value]


@overload
def _pairs(value: object, what: str, width: None = None) -> dict[int, int]: ...


@overload
def _pairs(value: object, what: str, width: int) -> dict[KeyValues, int]: ...


def _pairs(value: object, what: str, width: int | None = None) -> dict[int, int] | dict[KeyValues, int]:
    """[[slot, n], ...] (width None) or [[[key values], n], ...] -> {slot or key tuple: n}."""
    if not isinstance(value, list) or len(value) > schema.MAX_SUMMARY_ENTRIES:
        raise schema.SchemaError(f"{what}s are not a short list")
    out: dict[Any, int] = {}  # slot or key tuple (the overloads say which) -> n
    for row in value:
        if not (isinstance(row, list) and len(row) == 2):
            raise schema.SchemaError(f"{what} is not [value, count]")
        n = schema.integer(row[1], f"{what}'s count", 1, schema.U64_MAX)
        if width is None:
            k: object = schema.integer(row[0], what, 0, schema.U64_MAX)
        else:
            if not (isinstance(row[0], list) and len(row[0]) == width):
                raise schema.SchemaError(f"{what} has not {width} key value(s)")
            k = tuple(v if isinstance(v, str) and len(v) <= schema.MAX_TEXT
                      else schema.integer(v, f"a key value of {what}", schema.I64_MIN, schema.U64_MAX) for v in row[0])
        if k in out:
            raise schema.SchemaError(f"{what} appears twice")
        out[k] = n
    return out


__all__ = ["ChunkSummary", "SUB_BINS", "actions_key", "applicable", "decode", "encode", "summarize"]
