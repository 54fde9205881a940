"""Reading a recording without ever writing to it.

A finished recording is opened ``mode=ro&immutable=1``: SQLite then takes no locks
and creates no -wal/-shm files, so the file and its directory stay byte-for-byte
as they were. A recording whose recorder was killed still has its write-ahead log
beside it; SQLite would have to write to fold it in, so we copy the file and its
log into a private temporary directory and read the copy instead.

Damage is contained per chunk and per row: a chunk that does not decompress or
decode, or an aggregate row whose values are not what the format says, is skipped,
named in ``problems`` and counted in ``damage``; everything else stays readable.
Every value is checked by ktui.recording.schema before it is used, so a hostile
file costs bounded time and memory and gives sentences, never a traceback.
A recording whose recorder never closed it (killed) is ``unfinished``: its events
up to the last commit and its counters as last written are there, and ``warnings``
says so.
"""

from __future__ import annotations

import bisect
import itertools
import os
import shutil
import sqlite3
import threading
import urllib.parse
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import zstandard

from ktui.errors import FileFormatError
from ktui.events import Histogram, KeyCounts, ProbeCounters, ProbeLayout, ProbeState, StackTrace
from ktui.kernel import KernelIdentity
from ktui.recording import schema, summary
from ktui.recording.tempdirs import private_tempdir

SQLITE_MAGIC = b"SQLite format 3\x00"
# sqlite3 decodes SQLite's error messages as UTF-8; a damaged schema can put raw bytes in them.
DB_ERRORS = (sqlite3.Error, UnicodeDecodeError)


@dataclass
class Damage:
    """What a reader could not read so far (it grows as damaged chunks are met)."""
    chunks: int = 0  # chunks skipped
    events: int = 0  # events in them, as the chunk index counts them
    unknown_chunks: int = 0  # of those, chunks whose own event count is unreadable
    rows: int = 0  # aggregate and meta rows skipped (counters, stacks, histograms, symbols, meta values)
    probes: int = 0  # probes whose layout is unreadable (their chunks are counted above)

    def parts(self) -> list[str]:
        out = []
        if self.chunks:
            n = f"{self.events:,} event{'s' if self.events != 1 else ''}"
            if self.unknown_chunks:
                n += " and more" if self.events else "of unknown number"
            out.append(f"{self.chunks:,} chunk{'s' if self.chunks != 1 else ''} ({n})")
        if self.probes:
            out.append(f"{self.probes:,} probe layout{'s' if self.probes != 1 else ''}")
        if self.rows:
            out.append(f"{self.rows:,} other row{'s' if self.rows != 1 else ''}")
        return out


@dataclass(frozen=True)
class Mark:
    """A moment on the timeline (schema: marks): kind "trigger" is the event that fired a flight
    recorder's trigger; [start_ns, end_ns] is the window of events kept around it."""
    ts: int
    kind: str
    probe_id: int | None
    label: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class ChunkInfo:
    id: int
    probe_id: int
    first_ts: int
    last_ts: int
    count: int
    codec: str


PREFIX_STEP = 256 << 10  # bytes decoded before a partly decoded chunk is first checked


class RecordingReader:
    """A recording opened read-only: its description, aggregates and events by time."""

    def __init__(self, path: Path, conn: sqlite3.Connection, private_dir: str | None, recovered: bool,
                 truncated: str | None = None):
        self.path = path
        self._conn = conn
        # Damaged text must become a message, not a UnicodeDecodeError.
        conn.text_factory = lambda b: b.decode("utf-8", "replace")
        self._private_dir = private_dir
        if private_dir:
            self._finalizer = weakref.finalize(self, shutil.rmtree, private_dir, True)
        self.recovered = recovered  # the recorder did not close it: read through its write-ahead log
        self.problems: list[str] = []  # damage found so far, one sentence each, naming file and place
        self.damage = Damage()
        self.warnings: list[str] = []  # not damage, but worth saying (an unfinished recording)
        self.unfinished = False
        self._key_counts_damaged = False
        self._has_summaries: bool | None = None  # the chunk_summaries table exists and reads
        self._bad_summaries: set[int] = set()  # chunks whose stored summary was damaged (said once)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = 16
        self._history: list[tuple[int, dict[int, ProbeCounters]]] | None = None  # counter_history, once read
        self._prefixes: OrderedDict[int, np.ndarray] = OrderedDict()  # chunks decoded part way (cursor moves)
        self._io_lock = threading.RLock()
        self._bad_chunks: set[int] = set()
        self._truncated = truncated
        if truncated:
            self.problems.append(f"{path}: {truncated}; showing what can still be read")
        self._load_description()
        self._load_chunk_index()
        self._symbols: dict[tuple[str, str], tuple[list[int], list[str]]] | None = None
        self.position = self.first_ts

    # -- opening --------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RecordingReader:
        path = Path(path)
        where = str(path)
        try:
            with open(path, "rb") as f:
                head = f.read(100)
        except FileNotFoundError:
            raise FileFormatError("no such file", where=where) from None
        except IsADirectoryError:
            raise FileFormatError("is a directory, not a recording", where=where) from None
        except OSError as err:
            raise FileFormatError(f"cannot read: {err.strerror}", where=where) from None
        if not head.startswith(SQLITE_MAGIC[: len(head)]) or len(head) < len(SQLITE_MAGIC):
            if len(head) == 0:
                raise FileFormatError("is empty, not a recording", where=where)
            raise FileFormatError("is not a ktui recording (not an SQLite database)", where=where)
        if len(head) < 100:
            raise FileFormatError("is truncated: shorter than an SQLite header", where=where)

        size = path.stat().st_size
        page_size = int.from_bytes(head[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        expected = page_size * int.from_bytes(head[28:32], "big")
        truncated = f"is truncated: it holds {size} of its {expected} bytes" if size < expected else None

        side = [s for s in ("-wal", "-journal") if _nonempty(f"{path}{s}")]
        private_dir = None
        try:
            if side:
                private_dir = private_tempdir("replay")
                copy = Path(private_dir) / "recording.ktrec"
                shutil.copyfile(path, copy)
                for s in side:
                    shutil.copyfile(f"{path}{s}", f"{copy}{s}")
                conn = sqlite3.connect(str(copy), check_same_thread=False)
            else:
                uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro&immutable=1"
                conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            return cls(path, conn, private_dir, recovered=bool(side), truncated=truncated)
        except DB_ERRORS as err:
            if private_dir:
                shutil.rmtree(private_dir, True)
            raise FileFormatError(f"cannot be read as a recording: {err}", where=where) from None
        except OSError as err:
            if private_dir:
                shutil.rmtree(private_dir, True)
            raise FileFormatError(f"cannot copy the unfinished recording to read it: {err.strerror}", where=where) from None
        except FileFormatError:
            if private_dir:
                shutil.rmtree(private_dir, True)
            raise

    def _fail(self, place: str, problem: str) -> FileFormatError:
        self.close()
        if self._truncated:
            return FileFormatError(f"{self._truncated}, and its {place} is in the missing part: nothing can be read",
                                   where=str(self.path))
        return FileFormatError(f"{place}: {problem}", where=str(self.path))

    def _salvage_mode(self) -> None:
        """A truncated file fails SQLite's page-count check; with writable_schema (a flag of
        this connection only, the file is opened read-only) the surviving pages still read."""
        try:
            self._conn.execute("PRAGMA application_id").fetchone()
            return
        except DB_ERRORS as err:
            first_error = err
        try:
            self._conn.execute("PRAGMA writable_schema=ON")
            self._conn.execute("PRAGMA application_id").fetchone()
        except DB_ERRORS:
            return  # _load_description says what is wrong
        if not self._truncated:
            self.problems.append(f"{self.path}: the file is damaged ({first_error}); showing what can still be read")

    def _load_description(self) -> None:
        self._salvage_mode()
        try:
            app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except DB_ERRORS as err:
            raise self._fail("header", f"not a readable SQLite database ({err})") from None
        if "meta" not in tables or app_id not in (0, schema.APPLICATION_ID):
            raise self._fail("header", "not a ktui recording (an SQLite database of something else)")
        try:
            rows = self._conn.execute("SELECT key, value FROM meta").fetchall()
        except DB_ERRORS as err:
            raise self._fail("meta table", f"unreadable ({err})") from None
        self.meta, bad = schema.check_meta(rows)
        if self.meta.get("format") != schema.FORMAT_NAME:
            raise self._fail("meta table", "not a ktui recording (no format mark)")
        version = self.meta.get("schema_version")
        if version != schema.SCHEMA_VERSION:
            shown = version if isinstance(version, int) and abs(version) < 1 << 64 else "(not a number)"
            raise self._fail("meta table", f"recording format version {shown!r}; this ktui reads version "
                             f"{schema.SCHEMA_VERSION}")
        for problem in bad:
            self._row_damage(f"{problem}; ignored")
        missing = {"probes", "chunks", "counters", "stacks", "histograms", "symbols", "probe_states",
                   "stack_ids"} - tables
        if missing:
            raise self._fail("schema", f"missing table(s) {', '.join(sorted(missing))}")
        self.identity = KernelIdentity.from_dict(self.meta.get("kernel") or {})
        self.host = str(self.meta.get("host") or self.path.stem)
        self.start_ns = self.meta.get("start_ns")
        self.end_ns = self.meta.get("end_ns")
        self.clock_offset_ns = self.meta.get("clock_offset_ns") or 0
        if self.end_ns is None and "end_ns" in self.meta:
            # The writer stores end_ns only when it closes the file: this one was never closed.
            self.unfinished = True
            self.warnings.append(f"{self.path}: the recording is unfinished (its recorder was killed or crashed): "
                                 "it holds the events and counters written until then")
        self.layouts: dict[int, ProbeLayout] = {}
        self.probes: dict[int, dict[str, Any]] = {}  # probe id -> its model (Probe.to_dict)
        try:
            rows = self._conn.execute("SELECT probe_id, spec, layout FROM probes ORDER BY probe_id").fetchall()
        except DB_ERRORS as err:
            raise self._fail("probes table", f"unreadable ({err})") from None
        for probe_id, spec, layout in rows:
            try:
                schema.integer(probe_id, "the probe id")
                lay = ProbeLayout.from_dict(schema.check_layout(schema.loads(layout, "its layout"), probe_id))
                if lay.dtype.itemsize > schema.MAX_RECORD_BYTES:
                    raise schema.SchemaError(f"its records are {lay.dtype.itemsize:,} bytes long")
                model = schema.loads(spec, "its model")
                self.layouts[probe_id] = lay
                self.probes[probe_id] = model if isinstance(model, dict) else {}
            except (ValueError, TypeError, KeyError, AttributeError) as err:
                self.damage.probes += 1
                self.problems.append(f"{self.path}: probe {_shown(probe_id)}: layout unreadable ({err}); "
                                     "its events are skipped")

    def _row_damage(self, sentence: str) -> None:
        self.damage.rows += 1
        if self.damage.rows <= 20:  # the count says how many; a few sentences say what
            self.problems.append(f"{self.path}: {sentence}")

    def damage_summary(self) -> str | None:
        """One sentence for everything this reader could not read so far, or None when it read everything."""
        if not self.problems:
            return None
        parts = self.damage.parts()
        what = " and ".join(parts) if parts else "part of the file"
        first = self.problems[0].removeprefix(f"{self.path}: ")
        return f"{self.path}: {what} could not be read (first: {first})"

    def _load_chunk_index(self) -> None:
        cols = "id, probe_id, first_ts, last_ts, count, codec"
        try:
            rows = self._conn.execute(f"SELECT {cols} FROM chunks ORDER BY first_ts, id").fetchall()
        except DB_ERRORS as err:
            rows = self._salvage_chunk_index(cols, err)
        chunks = []
        for row in rows:
            try:
                chunks.append(self._check_chunk_row(row))
            except schema.SchemaError as err:
                self._chunk_damage(row[0], row[4], f"chunk {_shown(row[0])}: {err}; skipped")
        self.chunks = chunks
        # The latest time of any chunk so far, in index order: non-decreasing, so a bisection finds
        # the first chunk that can hold an event at or after a time (a cursor move skips the walk).
        self._reach = list(itertools.accumulate((c.last_ts for c in chunks), max))
        self.first_ts = min((c.first_ts for c in chunks), default=self.start_ns or 0)
        self.last_ts = max((c.last_ts for c in chunks), default=self.first_ts)

    def _check_chunk_row(self, row: tuple[object, ...]) -> ChunkInfo:
        cid, probe_id, first, last, count, codec = row
        cid = schema.integer(cid, "its id")
        layout = self.layouts.get(probe_id) if isinstance(probe_id, int) else None
        if layout is None or not isinstance(probe_id, int):
            raise schema.SchemaError(f"it belongs to no readable probe ({_shown(probe_id)})")
        first = schema.from_sql_u64(schema.integer(first, "its first time"))
        last = schema.from_sql_u64(schema.integer(last, "its last time"))
        if last < first:
            raise schema.SchemaError("its last time is before its first")
        most = schema.MAX_CHUNK_BYTES // layout.record_size
        count = schema.integer(count, "its event count", 1, most)
        if codec != schema.CODEC_ZSTD:
            raise schema.SchemaError(f"its codec {_shown(codec)} is not one this ktui reads")
        return ChunkInfo(cid, probe_id, first, last, count, schema.CODEC_ZSTD)  # the one codec it can be

    def _chunk_damage(self, cid: object, count: object, sentence: str) -> None:
        self.damage.chunks += 1
        if isinstance(count, int) and 0 <= count <= schema.MAX_CHUNK_BYTES:
            self.damage.events += count
        else:
            self.damage.unknown_chunks += 1
        if self.damage.chunks <= 20:
            self.problems.append(f"{self.path}: {sentence}")

    def _salvage_chunk_index(self, cols: str, err: Exception) -> list[tuple[object, ...]]:
        """Damaged table: find chunk ids through whichever index still reads, then fetch each row alone."""
        ids: list[int] = []
        for sql in ("SELECT id FROM chunks INDEXED BY chunks_by_time", "SELECT id FROM chunks INDEXED BY chunks_by_probe",
                    "SELECT id FROM chunks NOT INDEXED"):
            found: list[int] = []
            try:
                for (cid,) in self._conn.execute(sql):
                    found.append(cid)
            except DB_ERRORS:
                pass
            if len(found) > len(ids):
                ids = found
        rows, lost = [], 0
        for cid in sorted(set(ids)):
            try:
                row = self._conn.execute(f"SELECT {cols} FROM chunks WHERE id=?", (cid,)).fetchone()
            except DB_ERRORS:
                row = None
            if row is None:
                lost += 1
            else:
                rows.append(row)
        self.damage.chunks += lost
        self.damage.unknown_chunks += lost
        self.problems.append(f"{self.path}: chunk table damaged ({err}); {len(rows)} chunk(s) readable"
                             + (f", {lost} lost" if lost else "") + ", later ones may be missing")
        rows.sort(key=lambda r: (r[2], r[0]))
        return rows

    # -- description ------------------------------------------------------------

    def time_range(self) -> tuple[int, int]:
        """First and last event time (CLOCK_MONOTONIC ns of the recording host)."""
        return self.first_ts, self.last_ts

    def counters(self) -> dict[int, ProbeCounters]:
        out: dict[int, ProbeCounters] = {}
        for row in self._query("counters", "SELECT probe_id, cpu, hits, delivered, dropped, filtered, missed "
                                           "FROM counters ORDER BY probe_id, cpu"):
            try:
                probe_id, cpu, hits, delivered, dropped, filtered, missed = schema.check_counter_row(row)
            except schema.SchemaError as err:
                self._row_damage(f"a counter row of probe {_shown(row[0])}: {err}; skipped")
                continue
            c = out.setdefault(probe_id, ProbeCounters([], [], [], []))
            for values, v in ((c.hits, hits), (c.delivered, delivered), (c.dropped, dropped), (c.filtered, filtered)):
                values.extend([0] * (cpu + 1 - len(values)))
                values[cpu] = v
            c.missed += missed
        return out

    def counter_history(self) -> list[tuple[int, dict[int, ProbeCounters]]]:
        """The counters over time: (when taken, the probes whose counters changed then, with their totals
        since the recording began), in time order. Empty for files older than the table."""
        if self._history is not None:
            return self._history
        self._history = []
        try:
            with self._io_lock:
                if not self._conn.execute(
                        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='counter_history'").fetchone():
                    return self._history
        except DB_ERRORS:
            return self._history
        for ts, text in self._query("counters over time", "SELECT ts, counters FROM counter_history ORDER BY ts"):
            try:
                when = schema.from_sql_u64(schema.integer(ts, "its time"))
                changed = schema.check_counter_history(text)
            except (schema.SchemaError, ValueError) as err:
                self._row_damage(f"a row of the counters over time: {err}; skipped")
                continue
            self._history.append((when, {p: ProbeCounters(h, d, dr, f, m) for p, (h, d, dr, f, m) in changed.items()
                                         if p in self.layouts}))
        self._history.sort(key=lambda row: row[0])
        return self._history

    def counters_span(self, start_ns: int, end_ns: int) -> tuple[int, int] | None:
        """The times counters_across(start_ns, end_ns) really counts between: the last time the counters
        were taken at or before start_ns (none: the recording's start, when they were zero) and the first
        at or after end_ns (none: the last). None for files without counters over time."""
        history = self.counter_history()
        if not history:
            return None
        times = [ts for ts, _ in history]
        before = bisect.bisect_right(times, start_ns)
        after = min(bisect.bisect_left(times, end_ns) + 1, len(history))
        lo = times[before - 1] if before else min(self.first_ts, times[0])
        return lo, max(times[after - 1], lo)

    def counters_across(self, start_ns: int, end_ns: int) -> dict[int, ProbeCounters] | None:
        """How much each probe's counters grew across [start_ns, end_ns): from the last time they were taken
        at or before start_ns (nothing yet: zero) to the first time at or after end_ns (none: the last).
        The counters are taken about every second, so a window's bounds reach out to those times. None
        when the file keeps no counters over time (older files)."""
        history = self.counter_history()
        if not history:
            return None
        times = [ts for ts, _ in history]
        before = bisect.bisect_right(times, start_ns)  # rows at or before start_ns
        after = min(bisect.bisect_left(times, end_ns) + 1, len(history))  # up to the first row at or after end_ns
        start: dict[int, ProbeCounters] = {}
        end: dict[int, ProbeCounters] = {}
        for i, (_, changed) in enumerate(history[:after]):
            if i < before:
                start.update(changed)
            end.update(changed)
        out = {}
        zero = ProbeCounters([], [], [], [])
        for probe_id, c in end.items():
            b = start.get(probe_id, zero)
            out[probe_id] = ProbeCounters(_grown(c.hits, b.hits), _grown(c.delivered, b.delivered),
                                          _grown(c.dropped, b.dropped), _grown(c.filtered, b.filtered),
                                          max(0, c.missed - b.missed))
        return out

    def probe_states(self) -> list[ProbeState]:
        states = {}
        for probe_id, status, reason in self._query("probe states", "SELECT probe_id, status, reason FROM probe_states"):
            try:
                states[probe_id] = (schema.text(status, "its status", 64), schema.text(reason, "its reason"))
            except schema.SchemaError as err:
                self._row_damage(f"the state of probe {_shown(probe_id)}: {err}; skipped")
        out = []
        for probe_id, layout in self.layouts.items():
            status, reason = states.get(probe_id, ("recorded", ""))
            out.append(ProbeState(probe_id, layout.name, layout.spec, status, reason))
        return out

    def stacks(self) -> list[StackTrace]:
        out = []
        for probe_id, kernel, user, count in self._query(
                "stacks", "SELECT probe_id, kernel, user, count FROM stacks ORDER BY count DESC"):
            try:
                out.append(StackTrace(schema.integer(probe_id, "its probe id"),
                                      schema.check_frames(kernel, "its kernel frames"),
                                      schema.check_frames(user, "its user frames"),
                                      schema.integer(count, "its count", 0, schema.U64_MAX)))
            except schema.SchemaError as err:
                self._row_damage(f"a stack of probe {_shown(probe_id)}: {err}; skipped")
        return out

    def histograms(self) -> list[Histogram]:
        out = []
        for probe_id, value, scale, buckets in self._query(
                "histograms", "SELECT probe_id, value, scale, buckets FROM histograms ORDER BY probe_id, value"):
            try:
                out.append(Histogram(schema.integer(probe_id, "its probe id"), schema.text(value, "its value"),
                                     schema.text(scale, "its scale", 64), schema.check_buckets(buckets)))
            except schema.SchemaError as err:
                self._row_damage(f"a histogram of probe {_shown(probe_id)}: {err}; skipped")
        return out

    def key_counts(self) -> list[KeyCounts]:
        """The COUNT tables as the recorder last saw them (kept in meta 'key_counts')."""
        value = self.meta.get("key_counts")
        if value is None:
            return []
        try:
            tables = schema.check_key_counts(value)
        except schema.SchemaError as err:
            if not self._key_counts_damaged:  # said once, however often the panes ask
                self._key_counts_damaged = True
                self._row_damage(f"{err}; COUNT tables skipped")
            return []
        return [KeyCounts(pid, names, rows) for pid, names, rows in tables if pid in self.layouts]

    def marks(self) -> list[Mark]:
        """The timeline's marks (flight recorder triggers...), in time order; none in files older than the table."""
        try:
            with self._io_lock:
                if not self._conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='marks'").fetchone():
                    return []
        except DB_ERRORS:
            return []
        out = []
        for row in self._query("marks", "SELECT ts, kind, probe_id, label, start_ns, end_ns FROM marks ORDER BY id"):
            try:
                ts, kind, probe_id, label, start, end = row
                out.append(Mark(schema.from_sql_u64(schema.integer(ts, "its time")), schema.text(kind, "its kind", 64),
                                None if probe_id is None else schema.integer(probe_id, "its probe id"),
                                schema.text(label, "its label"),
                                schema.from_sql_u64(schema.integer(start, "its window start")),
                                schema.from_sql_u64(schema.integer(end, "its window end"))))
            except (schema.SchemaError, ValueError) as err:
                self._row_damage(f"a mark: {err}; skipped")
        out.sort(key=lambda m: m.ts)
        return out

    def _query(self, what: str, sql: str, params: tuple[object, ...] = ()) -> list[Any]:  # rows as SQLite gives them
        try:
            with self._io_lock:
                return self._conn.execute(sql, params).fetchall()
        except DB_ERRORS as err:
            self._row_damage(f"{what} unreadable ({err}); shown without them")
            return []

    # -- symbols ------------------------------------------------------------------

    def _load_symbols(self) -> dict[tuple[str, str], tuple[list[int], list[str]]]:
        if self._symbols is None:
            table: dict[tuple[str, str], tuple[list[int], list[str]]] = {}
            for space, scope, addr, name in self._query(
                    "symbols", "SELECT space, scope, addr, name FROM symbols ORDER BY space, scope, addr"):
                if not (isinstance(space, str) and isinstance(scope, str) and isinstance(addr, int)
                        and isinstance(name, str) and len(name) <= schema.MAX_TEXT):
                    self._row_damage(f"a symbol ({_shown(name)}) is not (space, scope, address, name); skipped")
                    continue
                addrs, names = table.setdefault((space, scope), ([], []))
                addrs.append(schema.from_sql_u64(addr))
                names.append(name)
            for addrs, names in table.values():  # unsigned order differs from SQLite's signed order
                order = sorted(range(len(addrs)), key=addrs.__getitem__)
                addrs[:] = [addrs[i] for i in order]
                names[:] = [names[i] for i in order]
            self._symbols = table
        return self._symbols

    def symbolize(self, address: int, pid: int | None = None, binary: str | None = None) -> str:
        """The recorded name of an address: kernel when pid and binary are None, else user space."""
        table = self._load_symbols()
        key = ("k", "") if pid is None and binary is None else ("u", str(binary if binary is not None else pid))
        addrs, names = table.get(key, ([], []))
        i = bisect.bisect_right(addrs, address) - 1
        if i < 0:
            return f"0x{address:x}"
        off = address - addrs[i]
        return names[i] if off == 0 else f"{names[i]}+0x{off:x}"

    def stack_frames(self, stack_id: int, user: bool = False, pid: int | None = None) -> list[str]:
        """The symbolized frames of an event's kstack (or ustack, with the event's pid) id."""
        if stack_id < 0:
            return []
        rows = self._query("stack ids", "SELECT addrs FROM stack_ids WHERE space=? AND stack_id=?",
                           ("u" if user else "k", int(stack_id)))
        if not rows:
            return []
        try:
            addrs = schema.check_addresses(rows[0][0])
        except schema.SchemaError as err:
            self._row_damage(f"stack {stack_id}: {err}; shown without frames")
            return []
        return [self.symbolize(a, pid if user else None) if not user or pid is not None else f"0x{a:x}"
                for a in addrs]

    # -- events -------------------------------------------------------------------

    def count(self, start_ns: int | None = None, end_ns: int | None = None,
              probe_ids: Iterable[int] | None = None) -> int:
        """Events in [start_ns, end_ns) (exact; decodes only the chunks cut by the bounds)."""
        wanted = None if probe_ids is None else set(probe_ids)
        total = 0
        for c in self._chunks_in(start_ns, end_ns, wanted):
            if (start_ns is None or c.first_ts >= start_ns) and (end_ns is None or c.last_ts < end_ns):
                total += c.count
                continue
            # A cut chunk: its events before each bound are in a prefix decoded just past that bound
            # (about half a chunk on average, not all of it).
            below_end = c.count if end_ns is None or c.last_ts < end_ns else self._count_before(c, end_ns)
            below_start = 0 if start_ns is None or c.first_ts >= start_ns else self._count_before(c, start_ns)
            if below_end is not None and below_start is not None:
                total += max(0, below_end - below_start)
        return total

    def _count_before(self, c: ChunkInfo, t_ns: int) -> int | None:
        """How many of a chunk's events are before t_ns, decoding it only as far as t_ns; None when damaged."""
        data = self._chunk_prefix(c, t_ns, 1)
        return None if data is None else _first_at_or_after(data["ts"], t_ns)

    def events(self, start_ns: int | None = None, end_ns: int | None = None,
               probe_ids: Iterable[int] | None = None, pid: int | None = None) -> Iterator[np.ndarray]:
        """Events in [start_ns, end_ns), chunk by chunk in order of their first event.

        Each array holds one probe's records (``arr["probe"]``), sorted by time;
        arrays of different probes overlap in time. Damaged chunks are skipped and
        named in ``problems``.
        """
        wanted = None if probe_ids is None else set(probe_ids)
        for c in self._chunks_in(start_ns, end_ns, wanted):
            data = self._chunk(c, cache=False)
            if data is None:
                continue
            data = _slice(data, start_ns, end_ns)
            if pid is not None:
                data = data[data["pid"] == pid]
            if len(data):
                yield data

    def chunks_between(self, start_ns: int | None, end_ns: int | None) -> list[ChunkInfo]:
        """The readable chunks holding events in [start_ns, end_ns), in order of their first event."""
        return list(self._chunks_in(start_ns, end_ns, None))

    def chunk_events(self, chunk: ChunkInfo) -> np.ndarray | None:
        """One chunk's records, decoded and checked (not kept in the cache); None when it is damaged
        (named in ``problems``)."""
        return self._chunk(chunk, cache=False)

    def stored_summary(self, chunk: ChunkInfo, reduced_for: str) -> summary.ChunkSummary | None:
        """The summary the writer stored for a chunk (ktui.recording.summary), checked against the chunk
        index. None when the file has none for it (older files, a chunk with too many keys), when it was
        reduced for other actions than ``reduced_for`` (summary.actions_key), or when it is damaged:
        that is named in ``problems`` once, and the caller decodes the chunk instead."""
        if self._has_summaries is None:
            try:
                with self._io_lock:
                    self._has_summaries = self._conn.execute(
                        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='chunk_summaries'").fetchone() is not None
            except DB_ERRORS:
                self._has_summaries = False
        if not self._has_summaries or chunk.id in self._bad_summaries:
            return None
        try:
            with self._io_lock:
                row = self._conn.execute("SELECT summary FROM chunk_summaries WHERE chunk_id = ?", (chunk.id,)).fetchone()
        except DB_ERRORS as err:
            self._has_summaries = False
            self._row_damage(f"the chunk summaries are unreadable ({err}); their chunks are decoded instead")
            return None
        if row is None:
            return None
        try:
            return summary.decode(row[0], chunk.probe_id, chunk.first_ts, chunk.last_ts, chunk.count, reduced_for)
        except schema.SchemaError as err:
            self._bad_summaries.add(chunk.id)
            self._row_damage(f"the summary of chunk {chunk.id}: {err}; that chunk is decoded instead")
            return None

    def seek(self, t_ns: int) -> None:
        """Move the read cursor: the next ``read`` starts with the first event at or after t_ns."""
        self.position = int(t_ns)

    def read(self, until_ns: int | None = None, max_events: int | None = None,
             probe_ids: Iterable[int] | None = None) -> dict[int, np.ndarray]:
        """Events from the cursor up to until_ns (exclusive) and/or the first max_events in time; advances the cursor.

        With max_events, all events sharing the last included timestamp are included.
        """
        if until_ns is None and max_events is None:
            raise ValueError("read needs until_ns or max_events")
        wanted = None if probe_ids is None else set(probe_ids)
        start = self.position
        parts: list[np.ndarray] = []
        horizon = until_ns  # exclusive bound
        n = 0
        # Lazily, chunk by chunk: a read of a screen from the cursor stops at its horizon, without
        # listing every chunk to the end of the recording.
        for c in self._chunks_in(start, until_ns, wanted):
            if horizon is not None and c.first_ts >= horizon:
                break
            # Bounded by a number of events only (a seek's first screen): decode the chunk only as
            # far as that many events after the cursor, not the whole chunk.
            data = self._chunk(c) if until_ns is not None else self._chunk_prefix(c, start, max_events or 1)
            if data is None:
                continue
            data = _slice(data, start, until_ns)
            if not len(data):
                continue
            parts.append(data)
            n += len(data)
            if max_events is not None and n >= max_events:
                # The max_events-th smallest time among what we hold bounds the window;
                # later chunks start at or after their first_ts, so only those before it matter.
                all_ts = np.concatenate([p["ts"] for p in parts])
                kth = int(np.partition(all_ts, max_events - 1)[max_events - 1])
                horizon = kth + 1 if horizon is None else min(horizon, kth + 1)
        out: dict[int, list[np.ndarray]] = {}
        for p in parts:
            if horizon is not None:
                p = p[: _first_at_or_after(p["ts"], horizon)]
            if len(p):
                out.setdefault(int(p["probe"][0]) if "probe" in (p.dtype.names or ()) else -1, []).append(p)
        result = {}
        for probe_id, ps in out.items():
            arr = ps[0] if len(ps) == 1 else np.concatenate(ps)
            if len(ps) > 1:
                arr = arr[np.argsort(arr["ts"], kind="stable")]
            result[probe_id] = arr
        if horizon is not None:
            self.position = max(self.position, horizon)
        else:  # ran out of events
            self.position = self.last_ts + 1
        return result

    def _chunks_in(self, start_ns: int | None, end_ns: int | None, wanted: set[int] | None) -> Iterator[ChunkInfo]:
        first = 0 if start_ns is None else bisect.bisect_left(self._reach, start_ns)
        for c in itertools.islice(self.chunks, first, None):
            if end_ns is not None and c.first_ts >= end_ns:
                break  # sorted by first_ts
            if start_ns is not None and c.last_ts < start_ns:
                continue
            if wanted is not None and c.probe_id not in wanted:
                continue
            if c.id in self._bad_chunks:
                continue
            yield c

    def _chunk_blob(self, c: ChunkInfo, place: str) -> tuple[np.ndarray | None, bytes | None]:
        """(the decoded chunk from the cache, None) or (None, its compressed bytes); (None, None) when unreadable."""
        with self._io_lock:
            hit = self._cache.get(c.id)
            if hit is not None:
                self._cache.move_to_end(c.id)
                return hit, None
            try:
                row = self._conn.execute("SELECT data FROM chunks WHERE id=?", (c.id,)).fetchone()
            except DB_ERRORS as err:
                self._bad_chunk(c, place, err)
                return None, None
        if row is None or not isinstance(row[0], bytes):
            with self._io_lock:
                self._bad_chunk(c, place, ValueError("missing" if row is None else
                                                     f"its data is {type(row[0]).__name__}, not compressed bytes"))
            return None, None
        return None, row[0]

    def _chunk(self, c: ChunkInfo, cache: bool = True) -> np.ndarray | None:
        # Replay's worker reads while the UI thread searches and a window is aggregated: the
        # connection, the cache and the damage lists are used one thread at a time; the
        # decompression and checks run outside the lock, so a long window pass does not hold
        # up the chunk a cursor move needs.
        layout = self.layouts[c.probe_id]
        place = f"chunk {c.id} (probe {c.probe_id} {layout.name}, {c.count} events)"
        hit, blob = self._chunk_blob(c, place)
        if blob is None:
            return hit
        try:
            expected = c.count * layout.record_size
            # The frame header states the decoded size and zstandard allocates that much:
            # a damaged or hostile header must not choose our memory use.
            size = zstandard.frame_content_size(blob)
            if size not in (expected, -1):
                raise ValueError(f"its frame says {size} bytes, expected {expected}")
            # A decompressor per call: one object must not be used by two threads at once.
            raw = zstandard.ZstdDecompressor().decompress(blob, max_output_size=expected)
            if len(raw) != expected:
                raise ValueError(f"holds {len(raw)} bytes, expected {expected}")
            data = self._checked(c, np.frombuffer(raw, dtype=layout.dtype), whole=True)
        except (zstandard.ZstdError, ValueError, TypeError, MemoryError) as err:
            with self._io_lock:
                self._bad_chunk(c, place, err)
            return None
        if cache:
            self._keep(c, data)
        return data

    def _checked(self, c: ChunkInfo, data: np.ndarray, whole: bool) -> np.ndarray:
        # Frames without a checksum (older files) can decode damaged bytes into plausible
        # records: the times must still match the index and be sorted.
        ts = data["ts"]
        if not len(ts) or int(ts[0]) != c.first_ts or (whole and int(ts[-1]) != c.last_ts) \
                or bool(np.any(ts[1:] < ts[:-1])) or int(ts[-1]) > c.last_ts:
            raise ValueError("its event times do not match its index")
        return data

    def _keep(self, c: ChunkInfo, data: np.ndarray) -> None:
        with self._io_lock:
            self._cache[c.id] = data
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _chunk_prefix(self, c: ChunkInfo, start_ns: int, need: int) -> np.ndarray | None:
        """The chunk's first records, decoded only as far as ``need`` events at or after start_ns and
        one later time (so every event before the prefix's last time is in it); the whole chunk (cached)
        when the prefix reaches its end. A cursor moved to a random time decodes about half a chunk, not
        all of it (bench/bench_replay_window.py)."""
        layout = self.layouts[c.probe_id]
        place = f"chunk {c.id} (probe {c.probe_id} {layout.name}, {c.count} events)"
        with self._io_lock:
            for cached in (self._cache.get(c.id), self._prefixes.get(c.id)):
                if cached is not None and _prefix_holds(cached, c, start_ns, need):
                    return cached
        hit, blob = self._chunk_blob(c, place)
        if blob is None:
            return hit
        size = layout.record_size
        expected = c.count * size
        raw = bytearray(expected)  # decoded into in place, and the records are a view of it: no copies
        view = memoryview(raw)
        buf = np.frombuffer(raw, dtype=layout.dtype)
        done = 0
        try:
            size_said = zstandard.frame_content_size(blob)
            if size_said not in (expected, -1):
                raise ValueError(f"its frame says {size_said} bytes, expected {expected}")
            step = max(size, (PREFIX_STEP // size) * size)
            with zstandard.ZstdDecompressor().stream_reader(blob) as stream:
                while done < expected:
                    got = stream.readinto(view[done: min(done + step, expected)])
                    if not got:
                        break
                    done += got
                    if done < expected and done % size == 0 and _prefix_holds(buf[: done // size], c, start_ns, need):
                        break
                whole = done >= expected
                if whole and stream.read(1):
                    raise ValueError(f"holds more than {expected} bytes")
            if done % size or (not whole and not _prefix_holds(buf[: done // size], c, start_ns, need)):
                raise ValueError(f"holds {done} bytes, expected {expected}")
            data = self._checked(c, buf[: done // size], whole=whole)
            data.flags.writeable = False  # like the cached chunks: callers copy before changing
        except (zstandard.ZstdError, ValueError, TypeError, MemoryError) as err:
            with self._io_lock:
                self._bad_chunk(c, place, err)
            return None
        if whole:
            self._keep(c, data)
        else:
            with self._io_lock:
                self._prefixes[c.id] = data
                self._prefixes.move_to_end(c.id)
                if len(self._prefixes) > 4:
                    self._prefixes.popitem(last=False)
        return data

    def _bad_chunk(self, c: ChunkInfo, place: str, err: BaseException) -> None:
        if c.id not in self._bad_chunks:  # two threads may meet the same damage: said once
            self._bad_chunks.add(c.id)
            self._chunk_damage(c.id, c.count, f"{place} is damaged ({err}); skipped, the rest is readable")

    # -- end ------------------------------------------------------------------------

    def close(self) -> None:
        # Under the I/O lock: another thread (a window being aggregated) may be inside a query,
        # and closing a connection under a running statement is undefined behaviour in SQLite.
        with self._io_lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        if self._private_dir:
            self._finalizer()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _slice(data: np.ndarray, start_ns: int | None, end_ns: int | None) -> np.ndarray:
    ts = data["ts"]
    lo = 0 if start_ns is None else _first_at_or_after(ts, max(start_ns, 0))
    hi = len(data) if end_ns is None else _first_at_or_after(ts, max(end_ns, 0))
    return data[lo:hi]


def _grown(now: list[int], then: list[int]) -> list[int]:
    """Per-CPU growth of a counter (never negative: a damaged row cannot make a count go below zero)."""
    return [max(0, v - (then[i] if i < len(then) else 0)) for i, v in enumerate(now)]


def _first_at_or_after(ts: np.ndarray, t: int) -> int:
    """Index of the first time >= t in sorted times (np.searchsorted's left side). A bisection in
    Python: ``ts`` is a record array's column, which np.searchsorted would first copy whole (half a
    millisecond for a 64 Ki-event chunk, several times per cursor move); this reads ~17 values."""
    lo, hi = 0, len(ts)
    if hi == 0 or int(ts[0]) >= t:
        return 0
    if int(ts[-1]) < t:
        return hi
    while lo < hi:
        mid = (lo + hi) // 2
        if int(ts[mid]) < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _prefix_holds(data: np.ndarray, c: ChunkInfo, start_ns: int, need: int) -> bool:
    """A chunk's decoded prefix serves a read of ``need`` events from start_ns: it is the whole chunk,
    or it holds that many events at or after start_ns before its last time (the undecoded rest is at
    or after that time, so no event the read needs is missing)."""
    if len(data) >= c.count:
        return True
    if not len(data):
        return False
    last = int(data["ts"][-1])
    return _first_at_or_after(data["ts"], last) - _first_at_or_after(data["ts"], start_ns) >= need


def _nonempty(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def _shown(value: object) -> str:
    """A value from the file, short enough for a sentence."""
    s = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else "a huge number"
    return s if len(s) <= 40 else s[:37] + "..."
