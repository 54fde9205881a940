"""Parquet export: a recording as typed columnar tables that DuckDB, ClickHouse and Spark read unchanged.

One file per probe (``probe_<id>.parquet``: the common header columns, then the probe's
fetched values with their own widths), and ``probes``, ``counters``, ``stacks``,
``stack_frames`` and ``meta`` tables; the schema is documented in docs/PARQUET.md and is
built here once (``event_schema``), so the export and its readers agree by construction.

Streaming: a probe's events are read chunk by chunk from the recording and written a
row group at a time (at most ROW_GROUP_ROWS events, or ROW_GROUP_BYTES of records), so
memory is bounded by one row group whatever the recording's size. Conversion is columnar
(numpy into Arrow buffers, no Python object per event): strings are cut at their first NUL
with numpy and validated as UTF-8 by Arrow, falling back to replacement characters only
for a column that holds invalid bytes.

pyarrow is imported by the functions that need it, never at module import, so commands
that do not export do not pay its start-up cost.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from ktui.errors import KtuiError
from ktui.events import ProbeLayout
from ktui.formats.rows import FAULT_BITS
from ktui.recording.reader import RecordingReader

FORMAT_VERSION = 1  # of the exported schema (docs/PARQUET.md); bumped when a column changes meaning
ROW_GROUP_ROWS = 1 << 20  # scans skip row groups by their min/max statistics; ~1 M rows each
ROW_GROUP_BYTES = 64 << 20  # ...or fewer, for wide records: bounds the memory of one row group
EXPORT_SUFFIX = ".parquet"
COMPRESSION = "zstd"

# The header columns every probe table starts with, in this order (``events`` in `ktui query`
# is their union over probes). kstack/ustack are null when no stack was taken.
HEADER_COLUMNS = ("ts", "time", "probe_id", "cpu", "pid", "tid", "uid", "comm", "kstack", "ustack", "flags",
                  "faulted")
# Encodings (not types: a reader sees the same columns either way). Times grow slowly from row to
# row, so delta encoding leaves zstd a fraction of the bytes (cheaper to write, smaller files); the
# header columns with few distinct values are dictionary-encoded (Parquet falls back to plain
# encoding by itself when a row group holds too many distinct values).
DELTA_HEADER = ("ts", "time")
DICTIONARY_HEADER = ("comm", "probe_id", "cpu", "pid", "tid", "uid", "flags")


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise KtuiError("Parquet needs the pyarrow package (pip install pyarrow)") from None
    return pyarrow, pyarrow.parquet


def table_name(layout: ProbeLayout) -> str:
    """The file stem (and `ktui query` view) of a probe's table: by id, since names repeat across probes."""
    return f"probe_{layout.probe_id}"


def _field_type(pa: Any, dtype: np.dtype) -> Any:
    if dtype.kind == "S":
        return pa.string()
    return pa.from_numpy_dtype(dtype.newbyteorder("="))


def event_schema(layout: ProbeLayout) -> Any:
    """The Arrow schema of one probe's table (header columns, then one column per fetched value)."""
    pa, _ = _pyarrow()
    fields = [
        pa.field("ts", pa.uint64(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("probe_id", pa.uint32(), nullable=False),
        pa.field("cpu", pa.uint32(), nullable=False),
        pa.field("pid", pa.uint32(), nullable=False),
        pa.field("tid", pa.uint32(), nullable=False),
        pa.field("uid", pa.uint32(), nullable=False),
        pa.field("comm", pa.string(), nullable=False),
        pa.field("kstack", pa.int32()),
        pa.field("ustack", pa.int32()),
        pa.field("flags", pa.uint32(), nullable=False),
        pa.field("faulted", pa.bool_(), nullable=False),
    ]
    dtype = layout.dtype
    taken = set(HEADER_COLUMNS)
    for f in layout.fields:
        if f.name in taken:  # the compiler never names a fetch like a header column; a file might
            raise KtuiError(f"probe {layout.probe_id} ({layout.name}) has a value named {f.name!r}, "
                            "like a header column; it cannot be exported")
        taken.add(f.name)
        fields.append(pa.field(f.name, _field_type(pa, dtype[f.name]), metadata={"display": f.display}))
    meta = {"ktui.format_version": str(FORMAT_VERSION), "ktui.probe_id": str(layout.probe_id),
            "ktui.probe": layout.name, "ktui.spec": layout.spec}
    return pa.schema(fields, metadata=meta)


def c_strings(pa: Any, col: np.ndarray, valid: np.ndarray | None = None) -> Any:
    """Fixed-width C char arrays -> an Arrow string array: each value cut at its first NUL, null where
    ``valid`` is False, UTF-8 checked (a value with invalid bytes is decoded with U+FFFD).

    Values repeat (task names, paths): Arrow hashes the fixed-width values into a dictionary in C++,
    only the distinct values are cut and decoded here, and a take builds the column. A column of
    mostly distinct values is cut with numpy instead (a Python step per value would cost too much)."""
    import pyarrow.compute as pc

    n = len(col)
    width = col.dtype.itemsize
    raw = np.ascontiguousarray(col)
    fixed = pa.Array.from_buffers(pa.binary(width), n, [None, pa.py_buffer(raw)])
    encoded = pc.dictionary_encode(fixed)
    distinct = encoded.dictionary
    if len(distinct) <= 4096 or len(distinct) * 4 <= n:
        words = pa.array([v.split(b"\0", 1)[0].decode("utf-8", "replace") for v in distinct.to_pylist()], pa.string())
        indices = encoded.indices
        if valid is not None:
            indices = pc.if_else(pa.array(valid), indices, pa.scalar(None, indices.type))
        return words.take(indices)
    return _c_strings_numpy(pa, raw, valid)


def _c_strings_numpy(pa: Any, raw: np.ndarray, valid: np.ndarray | None) -> Any:
    n = len(raw)
    width = raw.dtype.itemsize
    u8 = raw.view(np.uint8).reshape(n, width)
    zero = u8 == 0
    lengths = np.where(zero.any(axis=1), zero.argmax(axis=1), width).astype(np.int64)
    if valid is not None:
        lengths[~valid] = 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = u8[np.arange(width) < lengths[:, None]]  # row-major: each value's bytes in order
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    nulls = 0 if valid is None else int(n - np.count_nonzero(valid))
    binary = pa.Array.from_buffers(pa.large_binary(), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)],
                                   null_count=nulls)
    try:
        return binary.cast(pa.large_string()).cast(pa.string())
    except pa.ArrowInvalid:  # not UTF-8 somewhere: this column, decoded value by value
        values = binary.to_pylist()
        return pa.array([None if v is None else v.decode("utf-8", "replace") for v in values], pa.string())


@dataclass
class ExportStats:
    events: dict[int, int] = field(default_factory=dict)  # probe id -> rows written
    files: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.events.values())


class _StackIds:
    """The stack ids events refer to, gathered while converting, symbolized once at the end."""

    def __init__(self) -> None:
        self.kernel: set[int] = set()
        self.user: set[tuple[int, int]] = set()  # (stack id, pid): user symbols are per process

    def add(self, arr: np.ndarray) -> None:
        k = arr["kstack"]
        self.kernel.update(np.unique(k[k >= 0]).tolist())
        u = arr["ustack"] >= 0
        if u.any():
            pairs = np.unique(np.stack([arr["ustack"][u].astype(np.int64), arr["pid"][u].astype(np.int64)]), axis=1)
            self.user.update(zip(pairs[0].tolist(), pairs[1].tolist()))


class EventConverter:
    """Record arrays of one probe -> Arrow record batches of its table."""

    def __init__(self, reader: RecordingReader, layout: ProbeLayout):
        self.pa, _ = _pyarrow()
        self.reader = reader
        self.layout = layout
        self.schema = event_schema(layout)
        self.offset_ns = int(reader.clock_offset_ns or 0)
        self._symbolic = [f.name for f in layout.fields if f.display == "symbol"]

    def batch(self, arr: np.ndarray) -> Any:
        pa = self.pa
        ts = np.ascontiguousarray(arr["ts"])
        flags = np.ascontiguousarray(arr["flags"])
        fault_mask = flags & np.uint32((1 << FAULT_BITS) - 1)
        # The wall clock: the host's monotonic time plus its offset at the start, in microseconds
        # (Spark reads TIMESTAMP_MICROS; ts keeps the exact nanoseconds).
        time_us = (ts.astype(np.int64) + self.offset_ns) // 1000
        columns = [
            _numbers(pa, ts, pa.uint64()),
            _numbers(pa, time_us, pa.timestamp("us", tz="UTC")),
            _numbers(pa, arr["probe"], pa.uint32()),
            _numbers(pa, arr["cpu"], pa.uint32()),
            _numbers(pa, arr["pid"], pa.uint32()),
            _numbers(pa, arr["tid"], pa.uint32()),
            _numbers(pa, arr["uid"], pa.uint32()),
            c_strings(pa, arr["comm"]),
            _stack_column(pa, arr["kstack"]),
            _stack_column(pa, arr["ustack"]),
            _numbers(pa, flags, pa.uint32()),
            pa.array(fault_mask != 0, pa.bool_()),
        ]
        any_fault = bool(fault_mask.any())
        for i, f in enumerate(self.layout.fields):
            col = arr[f.name]
            valid = None
            if any_fault and i < FAULT_BITS:
                bad = (flags >> np.uint32(i)) & np.uint32(1)
                if bad.any():
                    valid = bad == 0
            if col.dtype.kind == "S":
                columns.append(c_strings(pa, col, valid))
            else:
                columns.append(_numbers(pa, col, _field_type(pa, col.dtype), valid))
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)


def _numbers(pa: Any, values: np.ndarray, type_: Any, valid: np.ndarray | None = None) -> Any:
    """A numpy column as an Arrow array of ``type_`` over the same bytes (pa.array with a type
    converts uint64 value by value); null where ``valid`` is False."""
    values = np.ascontiguousarray(values)
    if values.dtype.byteorder == ">":
        values = values.astype(values.dtype.newbyteorder("="))
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    nulls = 0 if valid is None else int(len(values) - np.count_nonzero(valid))
    return pa.Array.from_buffers(type_, len(values), [bitmap, pa.py_buffer(values)], null_count=nulls)


def _stack_column(pa: Any, ids: np.ndarray) -> Any:
    taken = ids >= 0
    return _numbers(pa, ids, pa.int32(), None if taken.all() else taken)


def write_probe(reader: RecordingReader, layout: ProbeLayout, out: IO[bytes], *, stacks: _StackIds | None = None,
                compression: str = COMPRESSION, row_group_rows: int = ROW_GROUP_ROWS,
                progress: Callable[[int], None] | None = None) -> int:
    """One probe's events into one Parquet file, a row group at a time; returns the rows written.

    Each chunk of the recording becomes a record batch as it is read; batches are held only until
    they make a row group (Arrow writes across them without concatenating)."""
    pa, pq = _pyarrow()
    conv = EventConverter(reader, layout)
    rows = max(1, min(row_group_rows, ROW_GROUP_BYTES // max(layout.record_size, 1)))
    dictionary = list(DICTIONARY_HEADER) + [f.name for f in layout.fields if layout.dtype[f.name].kind == "S"]
    written = 0
    held: list[Any] = []
    size = 0
    with pq.ParquetWriter(out, conv.schema, compression=compression, use_dictionary=dictionary,
                          column_encoding=dict.fromkeys(DELTA_HEADER, "DELTA_BINARY_PACKED"),
                          write_statistics=True) as writer:
        def flush(count: int) -> None:
            nonlocal held, size, written
            table = pa.Table.from_batches(held, schema=conv.schema)
            writer.write_table(table.slice(0, count), row_group_size=count)
            rest = table.slice(count)
            held, size = rest.to_batches(), rest.num_rows
            written += count
            if progress is not None:
                progress(count)

        for batch in _converted(reader, layout, conv, stacks):
            held.append(batch)
            size += batch.num_rows
            while size >= rows:
                flush(rows)
        if size:
            flush(size)
    return written


_QUEUED_BATCHES = 4  # converted chunks waiting for the writer (a chunk is about 4 MiB of records)


def _converted(reader: RecordingReader, layout: ProbeLayout, conv: EventConverter,
               stacks: _StackIds | None) -> Iterator[Any]:
    """The probe's chunks as record batches, decoded and converted in a thread of their own while the
    caller encodes and compresses (pyarrow and zstandard release the GIL: two cores are used)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=_QUEUED_BATCHES)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for arr in reader.events(probe_ids=[layout.probe_id]):
                if stacks is not None:
                    stacks.add(arr)
                if not put(conv.batch(arr)):
                    return
            put(done)
        except BaseException as err:  # noqa: BLE001 -- handed to the consumer, raised there
            put(_Failure(err))

    worker = threading.Thread(target=produce, name="ktui-parquet-convert", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


@dataclass
class _Failure:
    error: BaseException


def _write_table(pq: Any, table: Any, out: IO[bytes], compression: str) -> None:
    pq.write_table(table, out, compression=compression)


def _probes_table(pa: Any, reader: RecordingReader, stats: ExportStats) -> Any:
    states = {s.probe_id: s for s in reader.probe_states()}
    counters = reader.counters()
    ids = sorted(reader.layouts)
    lay = reader.layouts
    return pa.table({
        "probe_id": pa.array(ids, pa.uint32()),
        "name": pa.array([lay[i].name for i in ids], pa.string()),
        "spec": pa.array([lay[i].spec for i in ids], pa.string()),
        "table": pa.array([table_name(lay[i]) for i in ids], pa.string()),
        "status": pa.array([states[i].status if i in states else "recorded" for i in ids], pa.string()),
        "reason": pa.array([states[i].reason if i in states else "" for i in ids], pa.string()),
        "fields": pa.array([json.dumps([f.to_dict() for f in lay[i].fields]) for i in ids], pa.string()),
        "events": pa.array([stats.events.get(i, 0) for i in ids], pa.uint64()),
        "missed": pa.array([counters[i].missed if i in counters else 0 for i in ids], pa.uint64()),
    }, schema=probes_schema(pa))


def probes_schema(pa: Any) -> Any:
    return pa.schema([
        pa.field("probe_id", pa.uint32(), nullable=False), pa.field("name", pa.string(), nullable=False),
        pa.field("spec", pa.string(), nullable=False), pa.field("table", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False), pa.field("reason", pa.string(), nullable=False),
        pa.field("fields", pa.string(), nullable=False), pa.field("events", pa.uint64(), nullable=False),
        pa.field("missed", pa.uint64(), nullable=False),
    ])


def _counters_table(pa: Any, reader: RecordingReader) -> Any:
    cols: dict[str, list[Any]] = {k: [] for k in ("probe_id", "probe", "cpu", "hits", "delivered", "dropped", "filtered")}
    for probe_id, c in sorted(reader.counters().items()):
        name = reader.layouts[probe_id].name if probe_id in reader.layouts else ""
        for cpu in range(max(len(c.hits), len(c.delivered), len(c.dropped), len(c.filtered))):
            cols["probe_id"].append(probe_id)
            cols["probe"].append(name)
            cols["cpu"].append(cpu)
            for key in ("hits", "delivered", "dropped", "filtered"):
                values = getattr(c, key)
                cols[key].append(values[cpu] if cpu < len(values) else 0)
    u64 = pa.uint64()
    schema = pa.schema([pa.field("probe_id", pa.uint32(), nullable=False), pa.field("probe", pa.string(), nullable=False),
                        pa.field("cpu", pa.uint32(), nullable=False)]
                       + [pa.field(k, u64, nullable=False) for k in ("hits", "delivered", "dropped", "filtered")])
    return pa.table(cols, schema=schema)


def _frames_type(pa: Any) -> Any:
    return pa.list_(pa.field("frame", pa.string(), nullable=False))


def _stacks_table(pa: Any, reader: RecordingReader) -> Any:
    rows = reader.stacks()
    schema = pa.schema([pa.field("probe_id", pa.uint32(), nullable=False), pa.field("probe", pa.string(), nullable=False),
                        pa.field("kernel", _frames_type(pa), nullable=False),
                        pa.field("user", _frames_type(pa), nullable=False),
                        pa.field("count", pa.uint64(), nullable=False)])
    return pa.table({
        "probe_id": [s.probe_id for s in rows],
        "probe": [reader.layouts[s.probe_id].name if s.probe_id in reader.layouts else "" for s in rows],
        "kernel": [list(s.kernel) for s in rows],
        "user": [list(s.user) for s in rows],
        "count": [s.count for s in rows],
    }, schema=schema)


def _stack_frames_table(pa: Any, reader: RecordingReader, ids: _StackIds) -> Any:
    space: list[str] = []
    stack_id: list[int] = []
    pid: list[int | None] = []
    frames: list[list[str]] = []
    for k in sorted(ids.kernel):
        space.append("k")
        stack_id.append(k)
        pid.append(None)
        frames.append(reader.stack_frames(k))
    for u, p in sorted(ids.user):
        space.append("u")
        stack_id.append(u)
        pid.append(p)
        frames.append(reader.stack_frames(u, user=True, pid=p))
    schema = pa.schema([pa.field("space", pa.string(), nullable=False), pa.field("stack_id", pa.int32(), nullable=False),
                        pa.field("pid", pa.uint32()), pa.field("frames", _frames_type(pa), nullable=False)])
    return pa.table({"space": space, "stack_id": stack_id, "pid": pid, "frames": frames}, schema=schema)


def marks_schema(pa: Any) -> Any:
    return pa.schema([pa.field("ts", pa.uint64(), nullable=False), pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
                      pa.field("kind", pa.string(), nullable=False), pa.field("probe_id", pa.uint32()),
                      pa.field("label", pa.string(), nullable=False), pa.field("start_ns", pa.uint64(), nullable=False),
                      pa.field("end_ns", pa.uint64(), nullable=False)])


def _marks_table(pa: Any, reader: RecordingReader) -> Any:
    """The timeline's marks (a flight recorder's triggers): ``ts`` and the kept window in the
    recording's clock, ``time`` the wall clock as the events' own ``time`` column has it."""
    marks = reader.marks()
    offset = int(reader.clock_offset_ns or 0)  # as _EventBatches: the host's monotonic time plus its offset
    return pa.table({"ts": [m.ts for m in marks], "time": [(m.ts + offset) // 1000 for m in marks],
                     "kind": [m.kind for m in marks], "probe_id": [m.probe_id for m in marks],
                     "label": [m.label for m in marks], "start_ns": [m.start_ns for m in marks],
                     "end_ns": [m.end_ns for m in marks]}, schema=marks_schema(pa))


def _meta_table(pa: Any, reader: RecordingReader) -> Any:
    meta = dict(reader.meta)
    meta["parquet_format_version"] = FORMAT_VERSION
    keys = sorted(meta)
    schema = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.string(), nullable=False)])
    return pa.table({"key": keys, "value": [json.dumps(meta[k], sort_keys=True) for k in keys]}, schema=schema)


_SAFE_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def export_parquet(reader: RecordingReader, create: Callable[[str], IO[bytes]], *, compression: str = COMPRESSION,
                   row_group_rows: int = ROW_GROUP_ROWS, progress: Callable[[int], None] | None = None) -> ExportStats:
    """Every table of the recording, each through ``create(file name)`` (a new binary file the caller
    owns: ``DirectoryWriter.create``); returns the rows written per probe."""
    pa, pq = _pyarrow()
    stats = ExportStats()
    stacks = _StackIds()
    for probe_id, layout in sorted(reader.layouts.items()):
        name = table_name(layout) + EXPORT_SUFFIX
        with create(name) as out:
            stats.events[probe_id] = write_probe(reader, layout, out, stacks=stacks, compression=compression,
                                                 row_group_rows=row_group_rows, progress=progress)
        stats.files.append(name)
    for name, table in (("probes", _probes_table(pa, reader, stats)), ("counters", _counters_table(pa, reader)),
                        ("stacks", _stacks_table(pa, reader)), ("stack_frames", _stack_frames_table(pa, reader, stacks)),
                        ("marks", _marks_table(pa, reader)), ("meta", _meta_table(pa, reader))):
        assert _SAFE_NAME.fullmatch(name)
        with create(name + EXPORT_SUFFIX) as out:
            _write_table(pq, table, out, compression)
        stats.files.append(name + EXPORT_SUFFIX)
    return stats
