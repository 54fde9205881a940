"""The recording file: one SQLite database, described here once.

Events are stored as the engine's raw record bytes (one probe per chunk, header +
fetched values, see ktui.events), sorted by time inside the chunk and compressed
with zstandard. Everything else (probes, counters, stacks, symbols) is small and
lives in plain tables, JSON where the value is a structure.

Reading one without ktui (Python, sqlite3, numpy, zstandard):

    meta(key, value)          JSON values: format = "ktui-recording", schema_version,
                              kernel {release, version, machine, build_id}, host,
                              start_ns/end_ns (CLOCK_MONOTONIC of the host),
                              clock_offset_ns (realtime - monotonic at start), ...
    probes(probe_id, spec, layout)
                              spec: the probe model (Probe.to_dict()), JSON;
                              layout: {probe_id, name, spec, fields: [{name, dtype, display}]}.
                              A record is the 56-byte header (ts u64, probe, cpu, pid, tid,
                              uid u32, kstack, ustack s32, flags u32, comm[16]) then the
                              fields at C alignment, the whole padded to 8 bytes.
    chunks(id, probe_id, first_ts, last_ts, count, codec, data)
                              codec "zstd": data decompresses to count records of that
                              probe's layout, sorted by ts. Times are stored as signed
                              64-bit integers (SQLite's only kind): add 2**64 if negative.
    counters(probe_id, cpu, hits, delivered, dropped, filtered, missed)
                              the final counters (per CPU), as the engine counted them
    counter_history(ts, counters)
                              the counters over time: a row each time the recorder took them
                              (about every second, and at the end), ts on the events' clock;
                              counters: JSON {probe_id: [hits, delivered, dropped, filtered, missed]}
                              (per-CPU lists, the totals since the recording began), only the
                              probes whose counters changed since the row before. A window's
                              dropped and filtered counts are their change across it. Files written
                              before this table existed have none.
    probe_states(probe_id, status, reason)
    stacks(probe_id, kernel, user, count)      frames as JSON lists, innermost first
    stack_ids(space, stack_id, addrs)          "k"/"u": the addresses behind an event's
                                               kstack/ustack id, JSON
    histograms(probe_id, value, scale, buckets)  buckets: JSON [[low, high, count], ...]
    symbols(space, scope, addr, name)          "k" with scope "", or "u" with the pid or
                                               binary path; nearest symbol at or below
    marks(id, ts, kind, probe_id, label, start_ns, end_ns)
                              moments worth a mark on the timeline: kind "trigger" is the event that
                              fired a flight recorder's trigger (at ts, of probe_id; label: the trigger
                              text), [start_ns, end_ns] the window of events kept around it. Files
                              written before this table existed have none (read as no marks).
    chunk_summaries(chunk_id, summary)
                              each chunk's events reduced as the writer stored them (JSON, see
                              ktui.recording.summary): {v: SUMMARY_VERSION, a: the probe's hist/count
                              actions it was reduced for, t0, t1, cpu: events per CPU, sub: per CPU
                              16 counts evenly over [t0, t1], stacks: [[kstack, ustack, pid or -1, n]],
                              slots: {value: [[slot, n]]}, keys: [[[key names], [[[values], n]]]]}.
                              Optional per chunk (a chunk with too many distinct keys has none);
                              files written before this table existed have none, and a summary of
                              another version "v" is not used: replay then decodes those chunks.
"""

from __future__ import annotations

import json
import re
from typing import Any

SCHEMA_VERSION = 1
FORMAT_NAME = "ktui-recording"
# SQLite's application_id header field: "ktui", so `file` and we can tell our files apart.
APPLICATION_ID = 0x6B747569

CODEC_ZSTD = "zstd"  # raw record bytes, zstandard-compressed
# The format of a chunk_summaries row. The table is optional (older files lack it, and the
# reader decodes their chunks), so it evolves by this number, not by SCHEMA_VERSION: a row of
# another version is ignored, never misread.
SUMMARY_VERSION = 2  # 2: log2 slots of negative values apart (ktui/engine/histograms.py); 1 folded them into [0, 2)
MAX_SUMMARY_ENTRIES = 4096  # stacks + histogram slots + COUNT keys of one chunk's summary
MAX_SUMMARY_CHARS = 1 << 20

DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE probes (probe_id INTEGER PRIMARY KEY, spec TEXT NOT NULL, layout TEXT NOT NULL);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    probe_id INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    count INTEGER NOT NULL,
    codec TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX chunks_by_time ON chunks (first_ts);
CREATE INDEX chunks_by_probe ON chunks (probe_id, first_ts);
CREATE TABLE counters (
    probe_id INTEGER NOT NULL, cpu INTEGER NOT NULL,
    hits INTEGER NOT NULL, delivered INTEGER NOT NULL, dropped INTEGER NOT NULL,
    filtered INTEGER NOT NULL, missed INTEGER NOT NULL,
    PRIMARY KEY (probe_id, cpu)
);
CREATE TABLE counter_history (ts INTEGER PRIMARY KEY, counters TEXT NOT NULL);
CREATE TABLE probe_states (probe_id INTEGER PRIMARY KEY, status TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE stacks (probe_id INTEGER NOT NULL, kernel TEXT NOT NULL, user TEXT NOT NULL, count INTEGER NOT NULL,
                     PRIMARY KEY (probe_id, kernel, user));
CREATE TABLE stack_ids (space TEXT NOT NULL, stack_id INTEGER NOT NULL, addrs TEXT NOT NULL,
                        PRIMARY KEY (space, stack_id));
CREATE TABLE histograms (probe_id INTEGER NOT NULL, value TEXT NOT NULL, scale TEXT NOT NULL, buckets TEXT NOT NULL,
                         PRIMARY KEY (probe_id, value));
CREATE TABLE symbols (space TEXT NOT NULL, scope TEXT NOT NULL, addr INTEGER NOT NULL, name TEXT NOT NULL,
                      PRIMARY KEY (space, scope, addr));
CREATE TABLE chunk_summaries (chunk_id INTEGER PRIMARY KEY, summary TEXT NOT NULL);
CREATE TABLE marks (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL, probe_id INTEGER,
                    label TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL);
"""

# Meta keys the writer owns; a caller's meta cannot replace them.
RESERVED_META = ("format", "schema_version")


def to_sql_u64(value: int) -> int:
    """SQLite integers are signed 64-bit; kernel addresses are not."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def from_sql_u64(value: int) -> int:
    return value & ((1 << 64) - 1)


# -- validation of what a file holds ------------------------------------------------
#
# A recording is input like any other: whoever wrote it chose every value. Each value
# the reader uses passes one of these checks first, so a hostile or damaged file gives
# a sentence (and is counted as damage), never a traceback, a hang or a huge allocation.

U64_MAX = (1 << 64) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
MAX_JSON_CHARS = 16 << 20  # one JSON value (a layout, a stack, a meta value)
MAX_CHUNK_BYTES = 64 << 20  # decoded size of one chunk (the writer makes about 4 MiB)
MAX_RECORD_BYTES = 1 << 16  # one event's record
MAX_FIELDS = 256  # fetched values per probe
MAX_CPUS = 8192  # counter rows per probe
MAX_TEXT = 4096  # a name, spec, reason, frame
MAX_STACK_FRAMES = 1024
MAX_BUCKETS = 4096
_DTYPE = re.compile(r"[<>|=]?(?:[iu][1248]|f[48]|S[1-9][0-9]{0,4})")


class SchemaError(ValueError):
    """A value of a recording that is not what the format says; str() is the problem."""


def loads(text: object, what: str) -> object:
    """JSON text of a recording: plain JSON only (no NaN/Infinity), bounded length and depth."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        raise SchemaError(f"{what} is not JSON text")
    if len(text) > MAX_JSON_CHARS:
        raise SchemaError(f"{what} is {len(text):,} characters long (at most {MAX_JSON_CHARS:,} are read)")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise SchemaError(f"{what} is nested too deeply") from None
    except ValueError as err:
        raise SchemaError(f"{what} is not valid JSON ({err})") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number JSON allows")


def integer(value: object, what: str, lo: int = I64_MIN, hi: int = I64_MAX) -> int:
    """An integer (not a float, text, bool or NULL) within [lo, hi]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise SchemaError(f"{what} is {_kind(value)}, not an integer")
    if not lo <= value <= hi:
        raise SchemaError(f"{what} {_short(value)} is out of range ({lo}..{hi})")
    return value


def text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"{what} is {_kind(value)}, not text")
    if len(value) > limit:
        raise SchemaError(f"{what} is {len(value):,} characters long (at most {limit:,})")
    return value


def _kind(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"a real number ({value!r})"
    if isinstance(value, (bytes, bytearray)):
        return "a blob"
    if isinstance(value, str):
        return f"text ({_short(value)})"
    return f"a {type(value).__name__}"


def _short(value: object) -> str:
    s = repr(value) if not isinstance(value, int) else (str(value) if value.bit_length() < 200 else "a huge number")
    return s if len(s) <= 40 else s[:37] + "..."


# Meta keys with a meaning to the reader, and their check. Other keys are free (the
# command line, notes...) and are only held to plain, bounded JSON.
def _opt_u64(v: object, what: str) -> int | None:
    return None if v is None else integer(v, what, 0, U64_MAX)


def _opt_i64(v: object, what: str) -> int | None:
    return None if v is None else integer(v, what)


def _opt_text(v: object, what: str) -> str | None:
    return None if v is None else text(v, what)


def _kernel(v: object, what: str) -> dict[str, str]:
    if not isinstance(v, dict):
        raise SchemaError(f"{what} is not a table")
    return {k: text(v.get(k, ""), f"{what}.{k}") for k in ("release", "version", "machine", "build_id")
            if v.get(k) is not None}


META_CHECKS = {
    "start_ns": _opt_u64, "end_ns": _opt_u64, "first_event_ns": _opt_u64, "last_event_ns": _opt_u64,
    "clock_offset_ns": _opt_i64, "host": _opt_text, "kernel": _kernel, "created": _opt_text,
    "ktui_version": _opt_text,
}


def check_meta(rows: list[tuple[object, object]]) -> tuple[dict[str, Any], list[str]]:
    """The meta table's rows -> (values that passed, one problem per value that did not).

    format and schema_version are checked by the caller (a file without them is not
    a recording at all); every other bad value is dropped and named.
    """
    meta: dict[str, Any] = {}  # JSON values, checked where META_CHECKS names the key
    problems: list[str] = []
    for key, value in rows:
        if not isinstance(key, str) or len(key) > MAX_TEXT:
            problems.append("a meta key is not text")
            continue
        try:
            v = loads(value, f"meta {key!r}")
            check = META_CHECKS.get(key)
            meta[key] = check(v, f"meta {key!r}") if check is not None else v
        except SchemaError as err:
            problems.append(str(err))
    return meta, problems


def check_layout(data: object, probe_id: int) -> dict[str, Any]:
    """A probe's layout JSON (already loaded) checked before ProbeLayout is built from it."""
    if not isinstance(data, dict):
        raise SchemaError("its layout is not a table")
    if integer(data.get("probe_id"), "its layout's probe_id") != probe_id:
        raise SchemaError(f"its layout says probe {data.get('probe_id')}")
    text(data.get("name"), "its name")
    text(data.get("spec"), "its spec")
    fields = data.get("fields", [])
    if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
        raise SchemaError(f"its fields are not a list of at most {MAX_FIELDS}")
    names = set()
    for f in fields:
        if not isinstance(f, dict):
            raise SchemaError("a field is not a table")
        name = text(f.get("name"), "a field name", 256)
        dtype = text(f.get("dtype"), f"field {name!r}'s type", 16)
        if not _DTYPE.fullmatch(dtype):
            raise SchemaError(f"field {name!r} has type {dtype!r}, not one a recording uses")
        text(f.get("display", "u"), f"field {name!r}'s display", 32)
        if name in names:
            raise SchemaError(f"two fields are named {name!r}")
        names.add(name)
    return data


def check_counter_row(row: tuple[object, ...]) -> tuple[int, int, int, int, int, int, int]:
    probe_id, cpu, *values = row
    out = (integer(probe_id, "probe id"), integer(cpu, "cpu", 0, MAX_CPUS - 1),
           *(integer(v, "a counter", 0, U64_MAX) for v in values))
    return out  # type: ignore[return-value]  # seven values: the counters table has seven columns


def check_counter_history(value: object) -> dict[int, tuple[list[int], list[int], list[int], list[int], int]]:
    """One counter_history row's JSON: probe id -> (hits, delivered, dropped, filtered per CPU, missed)."""
    data = loads(value, "counters over time")
    if not isinstance(data, dict):
        raise SchemaError(f"counters over time are {_kind(data)}, not an object")
    out = {}
    for key, entry in data.items():
        probe_id = integer(int(key) if isinstance(key, str) and key.lstrip("-").isdigit() else key, "probe id")
        if not isinstance(entry, list) or len(entry) != 5:
            raise SchemaError(f"the counters of probe {probe_id} are not [hits, delivered, dropped, filtered, missed]")
        lists = []
        for per_cpu in entry[:4]:
            if not isinstance(per_cpu, list) or len(per_cpu) > MAX_CPUS:
                raise SchemaError(f"a counter of probe {probe_id} is not a list of at most {MAX_CPUS} CPUs")
            lists.append([integer(v, "a counter", 0, U64_MAX) for v in per_cpu])
        out[probe_id] = (lists[0], lists[1], lists[2], lists[3], integer(entry[4], "missed", 0, U64_MAX))
    return out


def check_frames(value: object, what: str) -> tuple[str, ...]:
    frames = loads(value, what)
    if not isinstance(frames, list) or len(frames) > MAX_STACK_FRAMES:
        raise SchemaError(f"{what} is not a list of at most {MAX_STACK_FRAMES} frames")
    return tuple(text(f, f"a frame of {what}") for f in frames)


def check_buckets(value: object) -> list[tuple[int, int, int]]:
    buckets = loads(value, "buckets")
    if not isinstance(buckets, list) or len(buckets) > MAX_BUCKETS:
        raise SchemaError(f"buckets are not a list of at most {MAX_BUCKETS}")
    out = []
    for b in buckets:
        if not isinstance(b, list) or len(b) != 3:
            raise SchemaError("a bucket is not [low, high, count]")
        out.append((integer(b[0], "a bucket bound", I64_MIN, U64_MAX), integer(b[1], "a bucket bound", I64_MIN, U64_MAX),
                    integer(b[2], "a bucket count", 0, U64_MAX)))
    return out


def check_addresses(value: object) -> list[int]:
    addrs = loads(value, "stack addresses")
    if not isinstance(addrs, list) or len(addrs) > MAX_STACK_FRAMES:
        raise SchemaError(f"stack addresses are not a list of at most {MAX_STACK_FRAMES}")
    return [integer(a, "an address", 0, U64_MAX) for a in addrs]


# One COUNT key: the values of its key fetches, numbers or text.
KeyValues = tuple[int | str, ...]

MAX_KEY_ROWS = 1 << 20  # rows of one COUNT table
MAX_KEY_FIELDS = 16


def check_key_counts(value: object) -> list[tuple[int, tuple[str, ...], list[tuple[KeyValues, int]]]]:
    """The COUNT tables kept in meta 'key_counts': [{probe_id, key_names, rows: [[key values], n]}]."""
    if not isinstance(value, list):
        raise SchemaError("meta 'key_counts' is not a list")
    out = []
    for table in value:
        if not isinstance(table, dict):
            raise SchemaError("a COUNT table is not a table")
        probe_id = integer(table.get("probe_id"), "a COUNT table's probe id")
        names = table.get("key_names")
        rows = table.get("rows")
        if not isinstance(names, list) or len(names) > MAX_KEY_FIELDS:
            raise SchemaError(f"COUNT table of probe {probe_id}: key names are not a list of at most {MAX_KEY_FIELDS}")
        if not isinstance(rows, list) or len(rows) > MAX_KEY_ROWS:
            raise SchemaError(f"COUNT table of probe {probe_id}: rows are not a list of at most {MAX_KEY_ROWS:,}")
        key_names = tuple(text(n, "a key name", 256) for n in names)
        checked = []
        for row in rows:
            if not (isinstance(row, list) and len(row) == 2 and isinstance(row[0], list)
                    and len(row[0]) == len(key_names)):
                raise SchemaError(f"COUNT table of probe {probe_id}: a row is not [[key values], count]")
            key = tuple(k if isinstance(k, str) and len(k) <= MAX_TEXT else integer(k, "a key value", I64_MIN, U64_MAX)
                        for k in row[0])
            checked.append((key, integer(row[1], "a count", 0, U64_MAX)))
        out.append((probe_id, key_names, checked))
    return out
