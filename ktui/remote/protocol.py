"""The stream between a remote `ktui stream` and the local ktui: compact binary frames.

The remote side writes to its stdout (carried by ssh) and reads clock probes from its stdin:

    stream  := MAGIC frame*
    frame   := kind:u8 length:u32le payload[length]

Frames the remote writes:

- ``HELLO``: the host's identity and the probes' record layouts (JSON text inside the frame:
  metadata only, parsed by ``json`` and checked field by field, never code).
- ``EVENTS``: ``probe:u32 count:u32`` then ``count`` records in ktui's record layout (the
  56-byte header and the probe's values, ``ProbeLayout.dtype``), exactly as the rings hold
  them, with timestamps already on the host's own CLOCK_MONOTONIC (see ``stream.py``).
- ``COUNTERS``: per probe ``probe:u32 ncpu:u32 missed:u64`` then hits, delivered, dropped and
  filtered, ``ncpu`` u64 each.
- ``STATES``: the probes' states (JSON), sent when they change.
- ``CLOCK``: ``seq:u64 t:u64``, the host's CLOCK_MONOTONIC when it answered probe ``seq``.
- ``AGGREGATES``: the in-kernel aggregates as last read (JSON): stacks (symbolized on the host,
  the largest ``AGG_STACKS_MAX``), histograms and COUNT tables; sent when they change.
- ``END``: the engine stopped (JSON: the reason); ``ERROR``: it could not start (JSON: one sentence).

The local side writes ``CLOCK_PROBE`` frames (``seq:u64``) and ``TOGGLE`` frames
(``probe:u32 enabled:u8``: switch one probe, by the id the host's engine gave it in HELLO, on or
off) to the remote's stdin, which decodes them as untrusted too (at most ``MAX_CONTROL`` bytes a
frame, exact sizes, known ids only); closing that stdin (ssh does, when the local ktui ends for any reason, SIGKILL included) stops the
remote engine.

The local decoder treats the stream as untrusted: every length is bounded before anything
is read, every count is checked against the payload's size, every JSON value against the
type it must have; anything else is one ``StreamError`` sentence.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from ktui.errors import KtuiError
from ktui.events import FieldLayout, Histogram, KeyCounts, ProbeCounters, ProbeLayout, ProbeState, StackTrace

MAGIC = b"KTUISTR1"
HELLO, EVENTS, COUNTERS, STATES, CLOCK, END, ERROR, AGGREGATES = 1, 2, 3, 4, 5, 6, 7, 8
CLOCK_PROBE, TOGGLE = 16, 17  # local -> remote

FRAME_HEAD = struct.Struct("<BI")
EVENTS_HEAD = struct.Struct("<II")
COUNTERS_HEAD = struct.Struct("<IIQ")
CLOCK_BODY = struct.Struct("<QQ")
PROBE_BODY = struct.Struct("<Q")
TOGGLE_BODY = struct.Struct("<IB")
MAX_CONTROL = 64  # a frame local -> remote (clock probe, toggle) is never larger

MAX_FRAME = 16 << 20  # no frame may make the reader allocate more than this
MAX_JSON = 1 << 20  # metadata frames (HELLO, STATES, END, ERROR)
MAX_AGG_JSON = 8 << 20  # AGGREGATES
AGG_STACKS_MAX, AGG_FRAMES_MAX, AGG_ROWS_MAX, AGG_BUCKETS_MAX = 500, 128, 500, 4096
MAX_EVENTS_BYTES = 4 << 20  # the writer splits event arrays into frames of at most this
MAX_PROBES = 4096
MAX_CPUS = 8192
MAX_FIELDS = 256
MAX_TEXT = 4096  # a name, spec, reason or sentence
STATE_NAMES = ("attached", "disabled", "failed", "pending", "recorded")
_KINDS = {HELLO: "hello", EVENTS: "events", COUNTERS: "counters", STATES: "states", CLOCK: "clock",
          END: "end", ERROR: "error", AGGREGATES: "aggregates", CLOCK_PROBE: "clock probe", TOGGLE: "toggle"}


class StreamError(KtuiError):
    """A remote stream that is not what ktui's stream command writes (damaged, truncated, or not ktui)."""


# ------------------------------------------------------------------ encoding (both sides)

def frame(kind: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME:
        raise ValueError(f"a {_KINDS.get(kind, kind)} frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return FRAME_HEAD.pack(kind, len(payload)) + payload


def json_frame(kind: int, value: Any) -> bytes:
    return frame(kind, json.dumps(value, separators=(",", ":")).encode())


def hello_frame(host: str, kernel: dict[str, str], layouts: list[ProbeLayout], probes: dict[int, dict[str, Any]],
                states: list[ProbeState], notes: list[str], timens_offset_ns: int) -> bytes:
    return json_frame(HELLO, {
        "version": 1, "host": host, "kernel": kernel, "timens_offset_ns": timens_offset_ns,
        "layouts": [lay.to_dict() for lay in layouts],
        "probes": {str(k): v for k, v in probes.items()},
        "states": [_state_dict(s) for s in states], "notes": list(notes),
    })


def events_frames(probe_id: int, records: np.ndarray) -> list[bytes]:
    """A probe's records, split so no frame exceeds MAX_EVENTS_BYTES."""
    size = records.dtype.itemsize
    per = max(1, MAX_EVENTS_BYTES // max(size, 1))
    out = []
    for i in range(0, len(records), per):
        part = np.ascontiguousarray(records[i:i + per])
        out.append(frame(EVENTS, EVENTS_HEAD.pack(probe_id, len(part)) + part.tobytes()))
    return out


def counters_frame(counters: dict[int, ProbeCounters]) -> bytes:
    parts = []
    for probe_id, c in sorted(counters.items()):
        n = len(c.hits)
        parts.append(COUNTERS_HEAD.pack(probe_id, n, c.missed))
        parts.append(np.asarray([c.hits, c.delivered, c.dropped, c.filtered], dtype="<u8").tobytes())
    return frame(COUNTERS, b"".join(parts))


def states_frame(states: list[ProbeState]) -> bytes:
    return json_frame(STATES, [_state_dict(s) for s in states])


def clock_frame(seq: int, t_ns: int) -> bytes:
    return frame(CLOCK, CLOCK_BODY.pack(seq, t_ns))


def clock_probe_frame(seq: int) -> bytes:
    return frame(CLOCK_PROBE, PROBE_BODY.pack(seq))


def toggle_frame(probe_id: int, enabled: bool) -> bytes:
    return frame(TOGGLE, TOGGLE_BODY.pack(probe_id, 1 if enabled else 0))


def aggregates_frame(stacks: list[StackTrace], histograms: list[Histogram], counts: list[KeyCounts]) -> bytes:
    top = sorted(stacks, key=lambda st: -st.count)[:AGG_STACKS_MAX]
    return json_frame(AGGREGATES, {
        "stacks": [[st.probe_id, list(st.kernel[:AGG_FRAMES_MAX]), list(st.user[:AGG_FRAMES_MAX]), st.count]
                   for st in top],
        "histograms": [[h.probe_id, h.value, h.scale, [list(b) for b in h.buckets[:AGG_BUCKETS_MAX]]]
                       for h in histograms],
        "counts": [[k.probe_id, list(k.key_names), [[list(key), n] for key, n in k.rows[:AGG_ROWS_MAX]]]
                   for k in counts],
    })


def _state_dict(s: ProbeState) -> dict[str, Any]:
    return {"probe_id": s.probe_id, "name": s.name, "spec": s.spec, "status": s.status, "reason": s.reason}


# ------------------------------------------------------------------ decoding (untrusted input)

@dataclass
class Hello:
    host: str
    kernel: dict[str, str]
    layouts: dict[int, ProbeLayout]
    probes: dict[int, dict[str, Any]]
    states: list[ProbeState]
    notes: list[str]
    timens_offset_ns: int


@dataclass
class Frame:
    kind: int
    payload: bytes


def read_exact(f: IO[bytes], n: int) -> bytes | None:
    """n bytes, or None at a clean end before the first byte; StreamError when cut short."""
    chunks, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            if got == 0:
                return None
            raise StreamError(f"the stream ended in the middle of a frame ({got} of {n} bytes).")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def read_magic(f: IO[bytes]) -> None:
    head = read_exact(f, len(MAGIC))
    if head is None:
        raise StreamError("the remote side wrote nothing (ktui stream did not start).")
    if head != MAGIC:
        raise StreamError("the remote side did not answer with ktui's stream (is `ktui` on its PATH the same "
                          "version? a login script printing text breaks the stream too).")


def read_frame(f: IO[bytes], allowed: tuple[int, ...] | None = None) -> Frame | None:
    """The next frame, or None at the stream's clean end."""
    head = read_exact(f, FRAME_HEAD.size)
    if head is None:
        return None
    kind, length = FRAME_HEAD.unpack(head)
    if kind not in _KINDS or (allowed is not None and kind not in allowed):
        raise StreamError(f"the stream holds a frame of unknown kind {kind}.")
    limit = (MAX_JSON if kind in (HELLO, STATES, END, ERROR) else MAX_AGG_JSON if kind == AGGREGATES
             else MAX_CONTROL if kind in (CLOCK_PROBE, TOGGLE) else MAX_FRAME)
    if length > limit:
        raise StreamError(f"the stream announces a {_KINDS[kind]} frame of {length} bytes, more than the "
                          f"{limit} allowed.")
    payload = read_exact(f, length) if length else b""
    if payload is None:
        raise StreamError("the stream ended in the middle of a frame.")
    return Frame(kind, payload)


def _json(payload: bytes, what: str) -> Any:
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise StreamError(f"the {what} frame is not valid JSON text.") from None


def _text(v: object, what: str) -> str:
    if not isinstance(v, str) or len(v) > MAX_TEXT:
        raise StreamError(f"the stream's {what} is not a text of at most {MAX_TEXT} characters.")
    return v


def _int(v: object, what: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise StreamError(f"the stream's {what} is not a whole number in {lo}..{hi}.")
    return v


def _states(v: object) -> list[ProbeState]:
    if not isinstance(v, list) or len(v) > MAX_PROBES:
        raise StreamError("the stream's probe states are not a list.")
    out = []
    for item in v:
        if not isinstance(item, dict):
            raise StreamError("a probe state in the stream is not a table.")
        status = _text(item.get("status"), "probe status")
        if status not in STATE_NAMES:
            raise StreamError(f"the stream names an unknown probe status {status!r}.")
        out.append(ProbeState(_int(item.get("probe_id"), "probe id", 0, MAX_PROBES - 1),
                              _text(item.get("name"), "probe name"), _text(item.get("spec"), "probe spec"),
                              status, _text(item.get("reason", ""), "reason")))
    return out


def _layout(v: object) -> ProbeLayout:
    if not isinstance(v, dict):
        raise StreamError("a probe layout in the stream is not a table.")
    fields = v.get("fields", [])
    if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
        raise StreamError("a probe layout's fields in the stream are not a list.")
    out = []
    for f in fields:
        if not isinstance(f, dict):
            raise StreamError("a field of a probe layout in the stream is not a table.")
        out.append(FieldLayout(_text(f.get("name"), "field name"), _text(f.get("dtype"), "field type"),
                               _text(f.get("display", "u"), "field display")))
    layout = ProbeLayout(_int(v.get("probe_id"), "probe id", 0, MAX_PROBES - 1), _text(v.get("name"), "probe name"),
                         _text(v.get("spec"), "probe spec"), tuple(out))
    try:
        dtype = layout.dtype
    except (TypeError, ValueError):
        raise StreamError(f"probe {layout.probe_id}'s layout in the stream has an unusable field type.") from None
    if dtype.hasobject or dtype.itemsize > 1 << 16:
        raise StreamError(f"probe {layout.probe_id}'s layout in the stream is not a plain record of at most 64 KiB.")
    for name in dtype.names or ():
        ftype = dtype[name]
        if ftype.kind not in "uiSbf" or ftype.subdtype is not None:
            raise StreamError(f"probe {layout.probe_id}'s field {name!r} in the stream has an unusable type.")
    return layout


def decode_hello(payload: bytes) -> Hello:
    v = _json(payload, "hello")
    if not isinstance(v, dict) or v.get("version") != 1:
        raise StreamError("the remote ktui speaks another stream version; run the same ktui on both sides.")
    kernel = v.get("kernel", {})
    if not isinstance(kernel, dict):
        raise StreamError("the stream's kernel identity is not a table.")
    layouts_v = v.get("layouts")
    if not isinstance(layouts_v, list) or len(layouts_v) > MAX_PROBES:
        raise StreamError("the stream's probe layouts are not a list.")
    layouts = {}
    for item in layouts_v:
        lay = _layout(item)
        if lay.probe_id in layouts:
            raise StreamError(f"the stream describes probe {lay.probe_id} twice.")
        layouts[lay.probe_id] = lay
    probes_v = v.get("probes", {})
    if not isinstance(probes_v, dict):
        raise StreamError("the stream's probe models are not a table.")
    probes = {}
    for k, model in probes_v.items():
        if not k.isdigit() or int(k) not in layouts or not isinstance(model, dict):
            raise StreamError("the stream's probe models do not match its layouts.")
        probes[int(k)] = model
    notes = v.get("notes", [])
    if not isinstance(notes, list) or len(notes) > MAX_PROBES:
        raise StreamError("the stream's notes are not a list.")
    return Hello(_text(v.get("host"), "host name"),
                 {_text(k, "kernel field"): _text(x, "kernel field") for k, x in kernel.items()},
                 layouts, probes, _states(v.get("states", [])), [_text(n, "note") for n in notes],
                 _int(v.get("timens_offset_ns", 0), "time namespace offset", -(1 << 62), 1 << 62))


def decode_events(payload: bytes, layouts: dict[int, ProbeLayout]) -> tuple[int, np.ndarray]:
    if len(payload) < EVENTS_HEAD.size:
        raise StreamError("an events frame is shorter than its header.")
    probe_id, count = EVENTS_HEAD.unpack_from(payload)
    layout = layouts.get(probe_id)
    if layout is None:
        raise StreamError(f"an events frame names probe {probe_id}, which the stream never described.")
    dtype = layout.dtype
    if count * dtype.itemsize != len(payload) - EVENTS_HEAD.size:
        raise StreamError(f"an events frame of probe {probe_id} holds {len(payload) - EVENTS_HEAD.size} bytes, "
                          f"not {count} records of {dtype.itemsize}.")
    return probe_id, np.frombuffer(payload, dtype=dtype, count=count, offset=EVENTS_HEAD.size)


def decode_counters(payload: bytes, layouts: dict[int, ProbeLayout]) -> dict[int, ProbeCounters]:
    out: dict[int, ProbeCounters] = {}
    pos = 0
    while pos < len(payload):
        if len(payload) - pos < COUNTERS_HEAD.size:
            raise StreamError("a counters frame is cut short.")
        probe_id, ncpu, missed = COUNTERS_HEAD.unpack_from(payload, pos)
        pos += COUNTERS_HEAD.size
        if probe_id not in layouts or ncpu > MAX_CPUS:
            raise StreamError(f"a counters frame names probe {probe_id} with {ncpu} CPUs, which does not fit the stream.")
        size = 4 * 8 * ncpu
        if len(payload) - pos < size:
            raise StreamError("a counters frame is cut short.")
        rows = np.frombuffer(payload, dtype="<u8", count=4 * ncpu, offset=pos).reshape(4, ncpu)
        pos += size
        hits, delivered, dropped, filtered = (r.tolist() for r in rows)
        out[probe_id] = ProbeCounters(hits, delivered, dropped, filtered, missed=int(missed))
    return out


def decode_states(payload: bytes) -> list[ProbeState]:
    return _states(_json(payload, "states"))


def decode_clock(payload: bytes) -> tuple[int, int]:
    if len(payload) != CLOCK_BODY.size:
        raise StreamError("a clock frame has the wrong size.")
    seq, t = CLOCK_BODY.unpack(payload)
    return int(seq), int(t)


def decode_probe(payload: bytes) -> int:
    if len(payload) != PROBE_BODY.size:
        raise StreamError("a clock probe has the wrong size.")
    return int(PROBE_BODY.unpack(payload)[0])


def decode_toggle(payload: bytes) -> tuple[int, bool]:
    """A TOGGLE frame's (probe id, enabled); anything but the exact layout is one sentence."""
    if len(payload) != TOGGLE_BODY.size:
        raise StreamError(f"a probe toggle has {len(payload)} bytes, not {TOGGLE_BODY.size}.")
    probe_id, enabled = TOGGLE_BODY.unpack(payload)
    if enabled not in (0, 1) or probe_id >= MAX_PROBES:
        raise StreamError("a probe toggle names no probe or no state (enabled must be 0 or 1).")
    return int(probe_id), bool(enabled)


def decode_sentence(payload: bytes, what: str) -> str:
    v = _json(payload, what)
    if not isinstance(v, dict):
        raise StreamError(f"the {what} frame is not a table.")
    return _text(v.get("message", ""), f"{what} message")


def _list(v: object, what: str, limit: int) -> list[Any]:
    if not isinstance(v, list) or len(v) > limit:
        raise StreamError(f"the stream's {what} is not a list of at most {limit} items.")
    return v


def _frames(v: object) -> tuple[str, ...]:
    return tuple(_text(f, "stack frame") for f in _list(v, "stack", AGG_FRAMES_MAX))


def _key_value(v: object) -> int | str:
    if isinstance(v, str):
        return _text(v, "COUNT key")
    return _int(v, "COUNT key", -(1 << 63), (1 << 64) - 1)


def decode_aggregates(payload: bytes, layouts: dict[int, ProbeLayout]
                      ) -> tuple[list[StackTrace], list[Histogram], list[KeyCounts]]:
    v = _json(payload, "aggregates")
    if not isinstance(v, dict):
        raise StreamError("the aggregates frame is not a table.")
    big = (1 << 64) - 1

    def probe(x: object) -> int:
        pid = _int(x, "probe id", 0, MAX_PROBES - 1)
        if pid not in layouts:
            raise StreamError(f"the stream's aggregates name probe {pid}, which it never described.")
        return pid

    stacks = []
    for item in _list(v.get("stacks", []), "stacks", AGG_STACKS_MAX):
        pid, kernel, user, count = _list(item, "stack entry", 4) + [None] * (4 - len(item))
        stacks.append(StackTrace(probe(pid), _frames(kernel), _frames(user), _int(count, "stack count", 0, big)))
    hists = []
    for item in _list(v.get("histograms", []), "histograms", MAX_PROBES):
        pid, value, scale, buckets = _list(item, "histogram", 4) + [None] * (4 - len(item))
        if scale not in ("log2", "linear"):
            raise StreamError("a histogram in the stream has an unknown scale.")
        rows = []
        for b in _list(buckets, "histogram buckets", AGG_BUCKETS_MAX):
            lo, hi, n = _list(b, "bucket", 3) + [None] * (3 - len(b))
            rows.append((_int(lo, "bucket bound", -big, big), _int(hi, "bucket bound", -big, big),
                         _int(n, "bucket count", 0, big)))
        hists.append(Histogram(probe(pid), _text(value, "histogram value"), scale, rows))
    counts = []
    for item in _list(v.get("counts", []), "COUNT tables", MAX_PROBES):
        pid, names, rows_v = _list(item, "COUNT table", 3) + [None] * (3 - len(item))
        key_names = tuple(_text(n, "COUNT key name") for n in _list(names, "COUNT key names", 16))
        table: list[tuple[tuple[Any, ...], int]] = []
        for row in _list(rows_v, "COUNT rows", AGG_ROWS_MAX):
            key, n = _list(row, "COUNT row", 2) + [None] * (2 - len(row))
            table.append((tuple(_key_value(k) for k in _list(key, "COUNT key", 16)), _int(n, "count", 0, big)))
        counts.append(KeyCounts(probe(pid), key_names, table))
    return stacks, hists, counts
