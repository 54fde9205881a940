"""The comparison of two recordings, A (the baseline) and B: per probe, histogram and stack.

Probes are matched by what they are, not by their ids: the probe's spec plus its
filter (two probes with the same spec and filter are matched in order). A probe only
one side has is "new" (only B) or "gone" (only A).

A change counts ("flagged") by the one noise rule of ktui/diff/noise.py. Counts, not rates, are
compared: recordings of a command cover the whole command whatever it took; when the
two durations differ by more than DURATION_NOTE_FRACTION the result says so (compare
the rates then).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ktui.diff.flame import DiffFrame, diff_flame
from ktui.diff.noise import DURATION_NOTE_FRACTION, NOISE_RULE, score, significant
from ktui.events import Histogram, StackTrace
from ktui.recording.reader import RecordingReader


@dataclass
class Side:
    """What one recording is, as the diff names it."""
    path: str
    host: str
    duration_ns: int
    probes: int
    events: int


@dataclass
class ProbeDiff:
    key: str  # spec, plus " if FILTER" when filtered: what matches probes across recordings
    name: str
    presence: str  # "both", "new" (only B), "gone" (only A)
    count_a: int  # hits that passed the probe's filter (delivered + dropped by a full ring)
    count_b: int
    rate_a: float  # per second of the recording
    rate_b: float
    dropped_a: int = 0
    dropped_b: int = 0
    flagged: bool = False

    @property
    def delta(self) -> int:
        return self.count_b - self.count_a


@dataclass
class HistogramDiff:
    key: str  # the probe's key
    value: str  # what is counted: a fetch name or "latency"
    scale: str
    buckets: list[tuple[int, int, int, int]]  # (low, high, count A, count B), every bucket either side has
    total_a: int
    total_b: int
    median_a: tuple[int, int] | None  # the bucket holding the median, or None when empty
    median_b: tuple[int, int] | None
    shift: int  # buckets the median moved (B minus A); 0 when either side is empty
    flagged: bool = False


@dataclass
class StackDiff:
    key: str  # the probe's key
    kernel: tuple[str, ...]  # innermost first, as recordings store them
    user: tuple[str, ...]
    count_a: int
    count_b: int
    flagged: bool = False

    @property
    def delta(self) -> int:
        return self.count_b - self.count_a

    @property
    def status(self) -> str:
        if self.count_a == 0:
            return "new"
        if self.count_b == 0:
            return "gone"
        return "grew" if self.delta > 0 else "shrank" if self.delta < 0 else "same"


@dataclass
class RecordingDiff:
    a: Side
    b: Side
    probes: list[ProbeDiff]  # flagged first, then by how far out of noise
    histograms: list[HistogramDiff]
    stacks: list[StackDiff]  # largest change first
    notes: list[str] = field(default_factory=list)
    noise_rule: str = NOISE_RULE
    flame: DiffFrame = field(default_factory=lambda: DiffFrame("all"))  # the differential flame graph

    @property
    def flagged(self) -> list[ProbeDiff]:
        return [p for p in self.probes if p.flagged]


def probe_keys(reader: RecordingReader) -> dict[int, str]:
    """probe id -> the key that matches it across recordings (spec and filter; repeats numbered)."""
    keys: dict[int, str] = {}
    seen: dict[str, int] = {}
    for probe_id, layout in sorted(reader.layouts.items()):
        model = reader.probes.get(probe_id) or {}
        filt = model.get("filter")
        key = layout.spec + (f" if {filt}" if isinstance(filt, str) and filt.strip() else "")
        seen[key] = seen.get(key, 0) + 1
        keys[probe_id] = key if seen[key] == 1 else f"{key} #{seen[key]}"
    return keys


def _duration(reader: RecordingReader) -> int:
    start, end = reader.start_ns, reader.end_ns
    if isinstance(start, int) and isinstance(end, int) and end > start:
        return end - start
    lo, hi = reader.time_range()
    return max(0, hi - lo)


def _counts(reader: RecordingReader) -> dict[int, tuple[int, int]]:
    """probe id -> (events that passed the filter, of them dropped by a full ring)."""
    counters = reader.counters()
    out = {}
    for probe_id in reader.layouts:
        c = counters.get(probe_id)
        if c is None:  # no counters written (an unfinished recording): the events it holds
            out[probe_id] = (reader.count(probe_ids=[probe_id]), 0)
            continue
        t = c.totals()
        out[probe_id] = (max(0, t["hits"] - t["filtered"]), t["dropped"])
    return out


def _side(reader: RecordingReader, counts: dict[int, tuple[int, int]]) -> Side:
    return Side(str(reader.path), reader.host, _duration(reader), len(reader.layouts),
                sum(c for c, _ in counts.values()))


def _rate(count: int, duration_ns: int) -> float:
    return count / (duration_ns / 1e9) if duration_ns > 0 else 0.0


def compare(a: RecordingReader, b: RecordingReader) -> RecordingDiff:
    """What changed from recording A to recording B."""
    keys_a, keys_b = probe_keys(a), probe_keys(b)
    counts_a, counts_b = _counts(a), _counts(b)
    side_a, side_b = _side(a, counts_a), _side(b, counts_b)
    by_key_a = {k: pid for pid, k in keys_a.items()}
    by_key_b = {k: pid for pid, k in keys_b.items()}
    probes = []
    for key in list(by_key_a) + [k for k in by_key_b if k not in by_key_a]:
        pa, pb = by_key_a.get(key), by_key_b.get(key)
        ca, da = counts_a[pa] if pa is not None else (0, 0)
        cb, db = counts_b[pb] if pb is not None else (0, 0)
        name = (a.layouts[pa] if pa is not None else b.layouts[pb]).name  # type: ignore[index]  # a key is on one side at least: pb is set when pa is not
        presence = "both" if pa is not None and pb is not None else "gone" if pb is None else "new"
        probes.append(ProbeDiff(key, name, presence, ca, cb, _rate(ca, side_a.duration_ns),
                                _rate(cb, side_b.duration_ns), da, db,
                                flagged=presence != "both" or significant(ca, cb)))
    probes.sort(key=lambda p: (not p.flagged, -score(p.count_a, p.count_b), -abs(p.delta), -p.count_b, p.key))
    notes = []
    longer = max(side_a.duration_ns, side_b.duration_ns)
    if longer and abs(side_a.duration_ns - side_b.duration_ns) > DURATION_NOTE_FRACTION * longer:
        notes.append(f"the recordings last {side_a.duration_ns / 1e9:.3g} s and {side_b.duration_ns / 1e9:.3g} s: "
                     "counts compare whole recordings; compare the rates for a steady load")
    for side, reader in (("A", a), ("B", b)):
        dropped = sum(d for _, d in (counts_a if side == "A" else counts_b).values())
        if dropped:
            notes.append(f"{side} lost {dropped:,} event(s) to full ring buffers: its counts include them, "
                         "its events and histograms do not")
        if reader.unfinished:
            notes.append(f"{side} is unfinished (its recorder was killed): it is compared as far as it goes")
    stacks_a, stacks_b = a.stacks(), b.stacks()
    return RecordingDiff(side_a, side_b, probes,
                         diff_histograms(a.histograms(), keys_a, b.histograms(), keys_b),
                         diff_stacks(stacks_a, keys_a, stacks_b, keys_b), notes,
                         flame=diff_flame(stacks_a, keys_a, stacks_b, keys_b))


def _median_bucket(buckets: list[tuple[int, int, int]]) -> int | None:
    total = sum(c for _, _, c in buckets)
    if total == 0:
        return None
    half, run = (total + 1) // 2, 0
    for i, (_, _, c) in enumerate(buckets):
        run += c
        if run >= half:
            return i
    return len(buckets) - 1


def _position(low: int, high: int, scale: str) -> int:
    """A bucket's place on its scale, so that a shift counts buckets, also the empty ones between."""
    if scale == "log2":
        return low.bit_length() if low >= 0 else -(-low).bit_length()
    return low // max(1, high - low)


def diff_histograms(hists_a: Iterable[Histogram], keys_a: dict[int, str],
                    hists_b: Iterable[Histogram], keys_b: dict[int, str]) -> list[HistogramDiff]:
    """Histograms of the same probe and value side by side on the union of their buckets."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for side, hists, keys in (("a", hists_a, keys_a), ("b", hists_b, keys_b)):
        for h in hists:
            key = keys.get(h.probe_id)
            if key is None:
                continue
            entry = table.setdefault((key, h.value), {"scale": h.scale, "a": {}, "b": {}})
            for lo, hi, n in h.buckets:
                entry[side][(lo, hi)] = entry[side].get((lo, hi), 0) + n
    out = []
    for (key, value), entry in table.items():
        bounds = sorted(set(entry["a"]) | set(entry["b"]))
        buckets = [(lo, hi, entry["a"].get((lo, hi), 0), entry["b"].get((lo, hi), 0)) for lo, hi in bounds]
        # Empty buckets at either end carry nothing; inner ones keep the shape.
        while buckets and buckets[0][2] == buckets[0][3] == 0:
            buckets.pop(0)
        while buckets and buckets[-1][2] == buckets[-1][3] == 0:
            buckets.pop()
        ma = _median_bucket([(lo, hi, na) for lo, hi, na, _ in buckets])
        mb = _median_bucket([(lo, hi, nb) for lo, hi, _, nb in buckets])
        total_a = sum(x[2] for x in buckets)
        total_b = sum(x[3] for x in buckets)
        shift = (_position(buckets[mb][0], buckets[mb][1], entry["scale"])
                 - _position(buckets[ma][0], buckets[ma][1], entry["scale"])) if ma is not None and mb is not None else 0
        out.append(HistogramDiff(key, value, entry["scale"], buckets, total_a, total_b,
                                 buckets[ma][:2] if ma is not None else None,
                                 buckets[mb][:2] if mb is not None else None, shift,
                                 flagged=shift != 0 or any(significant(x[2], x[3]) for x in buckets)))
    out.sort(key=lambda h: (not h.flagged, -abs(h.shift), -abs(h.total_b - h.total_a), h.key, h.value))
    return out


def diff_stacks(stacks_a: Iterable[StackTrace], keys_a: dict[int, str],
                stacks_b: Iterable[StackTrace], keys_b: dict[int, str]) -> list[StackDiff]:
    """Every stack either side has, with both counts; the largest change first."""
    table: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[int]] = {}
    for i, stacks, keys in ((0, stacks_a, keys_a), (1, stacks_b, keys_b)):
        for s in stacks:
            key = keys.get(s.probe_id)
            if key is None:
                continue
            table.setdefault((key, tuple(s.kernel), tuple(s.user)), [0, 0])[i] += s.count
    out = [StackDiff(key, k, u, ca, cb, flagged=significant(ca, cb)) for (key, k, u), (ca, cb) in table.items()]
    out.sort(key=lambda s: (-abs(s.delta), not s.flagged, -s.count_b, s.key, s.user, s.kernel))
    return out


def to_json(diff: RecordingDiff) -> dict[str, Any]:
    """The diff as plain JSON values (``ktui diff --json``)."""
    def probe(p: ProbeDiff) -> dict[str, Any]:
        d = asdict(p)
        d["delta"] = p.delta
        return d

    def stack(s: StackDiff) -> dict[str, Any]:
        d = asdict(s)
        d["kernel"], d["user"] = list(s.kernel), list(s.user)
        d["delta"], d["status"] = s.delta, s.status
        return d

    def hist(h: HistogramDiff) -> dict[str, Any]:
        d = asdict(h)
        d["buckets"] = [list(b) for b in h.buckets]
        d["median_a"] = list(h.median_a) if h.median_a else None
        d["median_b"] = list(h.median_b) if h.median_b else None
        return d

    return {"a": asdict(diff.a), "b": asdict(diff.b), "noise_rule": diff.noise_rule, "notes": diff.notes,
            "probes": [probe(p) for p in diff.probes], "histograms": [hist(h) for h in diff.histograms],
            "stacks": [stack(s) for s in diff.stacks], "flame": diff.flame.to_json()}
