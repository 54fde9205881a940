"""Writing a recording: the engine hands raw record arrays, we store compressed chunks.

Crash safety: the database runs in WAL mode with synchronous=NORMAL (with an
exclusive lock on filesystems that cannot share WAL's index, ktui.recording.filesystems) and every chunk
is its own transaction, so a SIGKILL of the recorder loses at most the events still
buffered here (less than one chunk, at most ``max_age_s`` old). ``close`` folds the
WAL back into the file and returns it to rollback-journal mode, so a finished
recording is one self-contained file that replay can open immutable.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import sqlite3
import threading
import time
from pathlib import Path
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import zstandard

from ktui import __version__
from ktui.errors import FileFormatError, KtuiError
from ktui.events import Histogram, ProbeCounters, ProbeLayout, ProbeState, StackTrace
from ktui.kernel import KernelIdentity
from ktui.probes.model import Action
from ktui.recording import schema, summary
from ktui.recording.filesystems import wal_can_share_memory

SIDE_FILES = ("-wal", "-shm", "-journal")
# One SQL statement of a transaction and its parameters.
Statement = tuple[str, tuple[object, ...]]


class RecordingWriter:
    """One recording being written. Not for several threads at once (a lock makes misuse safe)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, layouts: dict[int, ProbeLayout], *,
                 chunk_events: int, max_age_s: float, level: int, probes: Mapping[int, dict[str, Any]] | None = None):
        self.path = path
        self._conn = conn
        self._layouts = layouts
        # Per probe: the actions each chunk's summary is reduced for, and their key (summary.actions_key).
        self._reduce_for = {pid: _reduction(lay, (probes or {}).get(pid, {})) for pid, lay in layouts.items()}
        self._chunk_events = chunk_events
        self._history_last: dict[int, list[list[int] | int]] = {}  # counters last kept in counter_history, per probe
        self._max_age_s = max_age_s
        # zstd's own worker threads: at the engine's full rate one core cannot keep up
        # with level 1, two can (bench/bench_recording.py).
        # The checksum lets the reader tell a damaged chunk from one that decodes to wrong records.
        self._compressor = zstandard.ZstdCompressor(level=level, threads=min(2, os.cpu_count() or 1),
                                                    write_checksum=True)
        self._buffers: dict[int, _Buffer] = {}
        self._buf_lock = threading.Lock()  # the buffers (caller's thread and the worker's timer)
        self._lock = threading.RLock()  # the database connection
        # (probe id, records) to store; (None, None) asks for a flush, None for the worker to end
        self._queue: queue.Queue[tuple[int, np.ndarray] | tuple[None, None] | None] = queue.Queue(maxsize=4)
        self._failure: KtuiError | None = None
        self._closed = False
        self._first_ts: int | None = None
        self._last_ts: int | None = None
        self.events_written = 0
        self.bytes_written = 0
        self._thread = threading.Thread(target=self._worker, name="ktui-recording-writer", daemon=True)
        self._thread.start()

    # -- creation ---------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], identity: KernelIdentity, layouts: Sequence[ProbeLayout],
               probes: Sequence[dict[str, Any]] | Mapping[int, dict[str, Any]] = (), meta: Mapping[str, Any] | None = None, *,
               overwrite: bool = False, chunk_events: int = 65536, max_age_s: float = 0.5,
               level: int = 1) -> RecordingWriter:
        """Create a new recording, readable by its owner only (0600 from the first byte).

        ``probes`` holds each probe's model (``Probe.to_dict()``), either in the order
        of ``layouts`` or keyed by probe id. ``meta`` adds free keys (command line,
        session name...). An existing file is refused unless ``overwrite``.
        """
        path = Path(path)
        by_id = _probes_by_id(layouts, probes)
        ids = [layout.probe_id for layout in layouts]
        if len(set(ids)) != len(ids):
            raise KtuiError("two layouts share a probe id", where=str(path))
        for layout in layouts:
            try:
                layout.dtype  # noqa: B018 -- a bad field type is refused before any file exists
            except (TypeError, ValueError) as err:
                raise KtuiError(f"probe {layout.probe_id} ({layout.name}) has an unusable layout: {err}",
                                where=str(path)) from None
        if overwrite:
            for suffix in ("", *SIDE_FILES):
                try:
                    os.unlink(f"{path}{suffix}")
                except FileNotFoundError:
                    pass
                except OSError as err:
                    raise KtuiError(f"cannot replace the existing recording: {err.strerror}", where=str(path)) from None
        try:
            # O_EXCL: never write into a file someone else made; 0600 from creation,
            # the umask can only narrow it and fchmod pins it exactly.
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise KtuiError("a file of that name exists; choose another name or allow overwriting", where=str(path)) from None
        except OSError as err:
            raise KtuiError(f"cannot create the recording: {err.strerror}", where=str(path)) from None
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)

        conn = None
        try:
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            if not wal_can_share_memory(path):
                # NFS, 9p...: no shared -shm mapping; an exclusive lock taken before WAL mode
                # keeps the WAL index in this process (see ktui.recording.filesystems).
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA application_id={schema.APPLICATION_ID}")
            conn.execute("BEGIN")
            for stmt in schema.DDL.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            now_mono, now_real = time.monotonic_ns(), time.time_ns()
            values = {
                "host": socket.gethostname(),
                "ktui_version": __version__,
                "kernel": identity.to_dict(),
                "start_ns": now_mono,
                "end_ns": None,
                # bpf_ktime_get_ns() and time.monotonic_ns() share CLOCK_MONOTONIC; the
                # offset to wall time lets replay merge recordings of several hosts.
                "clock_offset_ns": now_real - now_mono,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_real / 1e9)),
            }
            values.update(dict(meta or {}))
            values["format"] = schema.FORMAT_NAME
            values["schema_version"] = schema.SCHEMA_VERSION
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])
            for layout in layouts:
                conn.execute("INSERT INTO probes VALUES (?, ?, ?)",
                             (layout.probe_id, json.dumps(by_id.get(layout.probe_id, {})), json.dumps(layout.to_dict())))
            conn.execute("COMMIT")
        except (sqlite3.Error, TypeError, ValueError) as err:
            # Nothing half-made stays behind: the file is ours, created a moment ago.
            if conn is not None:
                conn.close()
            for suffix in ("", *SIDE_FILES):
                try:
                    os.unlink(f"{path}{suffix}")
                except OSError:
                    pass
            what = "write the recording" if isinstance(err, sqlite3.Error) else "store the recording's description"
            raise KtuiError(f"cannot {what}: {err}", where=str(path)) from None
        return cls(path, conn, {lay.probe_id: lay for lay in layouts}, chunk_events=chunk_events,
                   max_age_s=max_age_s, level=level, probes=by_id)

    # -- probes -------------------------------------------------------------

    def add_probe(self, layout: ProbeLayout, probe: dict[str, Any] | None = None) -> None:
        """A probe added while recording (the user built one more)."""
        with self._lock:
            self._execute_tx([("INSERT OR REPLACE INTO probes VALUES (?, ?, ?)",
                               (layout.probe_id, json.dumps(probe or {}), json.dumps(layout.to_dict())))])
            self._layouts[layout.probe_id] = layout
            self._reduce_for[layout.probe_id] = _reduction(layout, probe or {})

    # -- events -------------------------------------------------------------

    def append(self, probe_id: int, records: np.ndarray) -> None:
        """Buffer records of one probe (its layout's dtype); a full or old buffer becomes a chunk.

        Returns after copying: compression and the database write happen on the
        writer's own thread, so the engine's drain loop never waits on the disk
        (unless a few chunks are already queued: then it waits, rather than grow memory).
        A write failure is raised by the next call (append, flush or close).
        """
        layout = self._layouts.get(probe_id)
        if layout is None:
            raise KtuiError(f"probe {probe_id} is not part of this recording", where=str(self.path))
        if records.dtype.itemsize != layout.record_size:
            raise KtuiError(f"records of {records.dtype.itemsize} bytes do not match probe {probe_id}'s "
                            f"{layout.record_size}-byte layout", where=str(self.path))
        self._check_open()
        self._raise_failure()
        if records.dtype != layout.dtype:
            try:
                records = records.view(layout.dtype)
            except (ValueError, TypeError) as err:
                raise KtuiError(f"records of probe {probe_id} cannot be read with its layout ({err})",
                                where=str(self.path)) from None
        full = []
        with self._buf_lock:
            buf = self._buffers.get(probe_id)
            pos = 0
            while pos < len(records):
                if buf is None:
                    # About 4 MiB of raw records a chunk: big enough to compress well, small
                    # enough that seeking decodes little, whatever the record size.
                    n = max(256, min(self._chunk_events, (4 << 20) // layout.record_size))
                    buf = self._buffers[probe_id] = _Buffer(np.empty(n, dtype=layout.dtype))
                # Copy: the engine's array may be a view over ring-buffer memory it reuses.
                take = min(len(records) - pos, len(buf.data) - buf.n)
                buf.data[buf.n:buf.n + take] = records[pos:pos + take]
                buf.n += take
                pos += take
                if buf.n == len(buf.data):
                    full.append((probe_id, buf.data))
                    buf = None
                    del self._buffers[probe_id]
            full += self._take_old(time.monotonic())
        for item in full:
            self._submit(*item)

    def _take_old(self, now: float) -> list[tuple[int, np.ndarray]]:
        old = [(pid, b.data[:b.n]) for pid, b in self._buffers.items() if now - b.since >= self._max_age_s]
        for pid, _ in old:
            del self._buffers[pid]
        return old

    def _submit(self, probe_id: int, records: np.ndarray) -> None:
        self._raise_failure()
        self._queue.put((probe_id, records))

    def _worker(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._max_age_s / 2 or 0.05)
            except queue.Empty:
                # Nobody appended for a while: commit what waits, so a kill loses little.
                with self._buf_lock:
                    items = self._take_old(time.monotonic())
                for it in items:
                    self._store_safely(*it)
                continue
            try:
                if item is None:
                    return
                self._store_safely(*item)
            finally:
                self._queue.task_done()

    def _store_safely(self, probe_id: int | None, records: np.ndarray | None) -> None:
        if self._failure is not None or records is None or probe_id is None:
            return  # after a failure nothing more is written; what was committed stays readable
        try:
            self._store(probe_id, records)
        except KtuiError as err:
            self._failure = err
        except Exception as err:  # noqa: BLE001 -- a dead writer thread would hang flush(); say it instead
            self._failure = KtuiError(f"cannot write the recording ({type(err).__name__}: {err}); "
                                      "what was written before stays readable", where=str(self.path))

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _store(self, probe_id: int, records: np.ndarray) -> None:
        if len(records) == 0:
            return
        ts = records["ts"]
        if len(ts) > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
            # Ring buffers interleave CPUs: sort inside the chunk so readers can bisect.
            records = records[np.argsort(ts, kind="stable")]
            ts = records["ts"]
        first, last = int(ts[0]), int(ts[-1])
        blob = self._compressor.compress(np.ascontiguousarray(records).view(np.uint8).data)
        statements: list[Statement] = [(
            "INSERT INTO chunks (probe_id, first_ts, last_ts, count, codec, data) VALUES (?, ?, ?, ?, ?, ?)",
            (probe_id, schema.to_sql_u64(first), schema.to_sql_u64(last), len(records), schema.CODEC_ZSTD, blob))]
        reduced = self._summary_text(probe_id, records)
        if reduced is not None:  # same transaction: a chunk and its summary are committed together
            statements.append(("INSERT INTO chunk_summaries (chunk_id, summary) VALUES (last_insert_rowid(), ?)",
                               (reduced,)))
        self._execute_tx(statements)
        self._first_ts = first if self._first_ts is None else min(self._first_ts, first)
        self._last_ts = last if self._last_ts is None else max(self._last_ts, last)
        self.events_written += len(records)
        self.bytes_written += len(blob)

    def _summary_text(self, probe_id: int, records: np.ndarray) -> str | None:
        """The chunk reduced for replay's window aggregates (ktui.recording.summary), while its array is
        at hand; None when not worth storing. Optional: a window decodes a chunk without one."""
        actions, key = self._reduce_for.get(probe_id, ([], "[]"))
        if int(records["cpu"].max()) >= schema.MAX_CPUS:
            return None  # not a CPU number (records of a test's noise): per-CPU counts would be huge
        try:
            return summary.encode(summary.summarize(records, actions), key)
        except (ValueError, TypeError, OverflowError, MemoryError):
            return None  # values summarize cannot reduce (odd field types): replay decodes this chunk

    # -- aggregates ---------------------------------------------------------

    def set_counters(self, counters: Mapping[int, ProbeCounters], at_ns: int | None = None) -> None:
        """Replace the loss counters (a full snapshot, as in Update.counters). With ``at_ns`` (when they
        were taken, on the events' clock) they are also kept in the counters over time, so a window of
        the replay has its own dropped and filtered counts (only probes whose counters changed)."""
        history: list[Statement] = []
        if at_ns is not None:
            changed: dict[str, list[list[int] | int]] = {}
            for probe_id, c in counters.items():
                entry: list[list[int] | int] = [list(c.hits), list(c.delivered), list(c.dropped), list(c.filtered), c.missed]
                if self._history_last.get(probe_id) != entry:
                    self._history_last[probe_id] = entry
                    changed[str(probe_id)] = entry
            history = [("INSERT OR REPLACE INTO counter_history VALUES (?, ?)",
                        (schema.to_sql_u64(at_ns), json.dumps(changed, separators=(",", ":"))))]
        rows = []
        for probe_id, c in counters.items():
            ncpu = max(len(c.hits), len(c.delivered), len(c.dropped), len(c.filtered), 1)
            for cpu in range(ncpu):
                rows.append((probe_id, cpu, _at(c.hits, cpu), _at(c.delivered, cpu), _at(c.dropped, cpu),
                             _at(c.filtered, cpu), c.missed if cpu == 0 else 0))
        statements: list[Statement] = [("DELETE FROM counters", ())]
        statements += [("INSERT INTO counters VALUES (?, ?, ?, ?, ?, ?, ?)", r) for r in rows]
        self._execute_tx(statements + history)

    def set_probe_states(self, states: Iterable[ProbeState]) -> None:
        self._execute_tx([("DELETE FROM probe_states", ())] +
                         [("INSERT OR REPLACE INTO probe_states VALUES (?, ?, ?)", (s.probe_id, s.status, s.reason))
                          for s in states])

    def set_stacks(self, stacks: Iterable[StackTrace]) -> None:
        """Replace the aggregated stacks (a full snapshot, as in Update.stacks)."""
        self._execute_tx([("DELETE FROM stacks", ())] + self._stack_rows(stacks, replace=True))

    def add_stacks(self, stacks: Iterable[StackTrace]) -> None:
        """Add counts to the aggregated stacks (for stacks drained from the kernel and cleared there)."""
        self._execute_tx(self._stack_rows(stacks, replace=False))

    @staticmethod
    def _stack_rows(stacks: Iterable[StackTrace], replace: bool) -> list[Statement]:
        sql = ("INSERT INTO stacks VALUES (?, ?, ?, ?) ON CONFLICT (probe_id, kernel, user) DO UPDATE SET "
               + ("count = excluded.count" if replace else "count = count + excluded.count"))
        return [(sql, (s.probe_id, json.dumps(list(s.kernel)), json.dumps(list(s.user)), int(s.count)))
                for s in stacks]

    def add_stack_ids(self, kernel: Mapping[int, Sequence[int]] | None = None,
                      user: Mapping[int, Sequence[int]] | None = None) -> None:
        """The raw addresses behind the kstack/ustack ids that events carry (innermost first)."""
        rows = []
        for space, table in (("k", kernel or {}), ("u", user or {})):
            for stack_id, addrs in table.items():
                rows.append(("INSERT OR REPLACE INTO stack_ids VALUES (?, ?, ?)",
                             (space, int(stack_id), json.dumps([int(a) for a in addrs]))))
        self._execute_tx(rows)

    def set_histograms(self, histograms: Iterable[Histogram]) -> None:
        self._execute_tx([("DELETE FROM histograms", ())] +
                         [("INSERT OR REPLACE INTO histograms VALUES (?, ?, ?, ?)",
                           (h.probe_id, h.value, h.scale, json.dumps([list(map(int, b)) for b in h.buckets])))
                          for h in histograms])

    def add_symbols(self, kernel: Mapping[int, str] | None = None,
                    user: Mapping[tuple[str | int, int], str] | None = None) -> None:
        """Symbols for offline symbolization: kernel address -> name, and (binary path or pid, address) -> name.

        Give either the names of the addresses the recording references, or whole
        symbol tables (start addresses): replay resolves an address to the nearest
        symbol at or below it.
        """
        rows: list[Statement] = []
        for addr, name in (kernel or {}).items():
            rows.append(("INSERT OR REPLACE INTO symbols VALUES ('k', '', ?, ?)", (schema.to_sql_u64(addr), str(name))))
        for (scope, addr), name in (user or {}).items():
            rows.append(("INSERT OR REPLACE INTO symbols VALUES ('u', ?, ?, ?)",
                         (str(scope), schema.to_sql_u64(addr), str(name))))
        self._execute_tx(rows)

    def add_mark(self, ts: int, kind: str, label: str, *, probe_id: int | None = None,
                 start_ns: int | None = None, end_ns: int | None = None) -> None:
        """A moment for the timeline (schema: marks), e.g. the event that fired a flight recorder's trigger."""
        self._execute_tx([("INSERT INTO marks (ts, kind, probe_id, label, start_ns, end_ns) VALUES (?, ?, ?, ?, ?, ?)",
                           (schema.to_sql_u64(ts), kind, probe_id, label,
                            schema.to_sql_u64(ts if start_ns is None else start_ns),
                            schema.to_sql_u64(ts if end_ns is None else end_ns)))])

    def set_meta(self, **values: Any) -> None:  # each value as JSON
        rows = [("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))
                for k, v in values.items() if k not in schema.RESERVED_META]
        self._execute_tx(rows)

    # -- end ----------------------------------------------------------------

    def flush(self) -> None:
        """Write every buffered event as chunks now (each committed); raises an earlier write failure."""
        self._check_open()
        with self._buf_lock:
            items = [(pid, b.data[:b.n]) for pid, b in self._buffers.items()]
            self._buffers.clear()
        for item in items:
            self._submit(*item)
        # A barrier: the worker may be storing an old buffer its timer took; it reaches
        # this only after that, so join() returns when everything taken is committed.
        self._queue.put((None, None))
        self._queue.join()
        self._raise_failure()

    def close(self, end_ns: int | None = None) -> None:
        """Flush, write the end time, and fold the WAL back into the one file."""
        if self._closed:
            return
        try:
            try:
                self.flush()
            finally:
                self._queue.put(None)
                self._thread.join()
            self.set_meta(end_ns=end_ns if end_ns is not None else time.monotonic_ns(),
                          first_event_ns=self._first_ts, last_event_ns=self._last_ts)
            with self._lock:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as err:
            raise KtuiError(f"cannot finish the recording ({err}); the chunks written so far stay readable",
                            where=str(self.path)) from None
        finally:
            self._closed = True
            with self._lock:
                self._conn.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise KtuiError("the recording is already closed", where=str(self.path))

    def _execute_tx(self, statements: Sequence[Statement]) -> None:
        with self._lock:
            self._check_open()
            try:
                self._conn.execute("BEGIN")
                for sql, params in statements:
                    self._conn.execute(sql, params)
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise KtuiError(f"cannot write the recording ({err}); what was written before stays readable",
                                where=str(self.path)) from None


class _Buffer:
    """One probe's chunk being filled."""

    __slots__ = ("data", "n", "since")

    def __init__(self, data: np.ndarray):
        self.data = data
        self.n = 0
        self.since = time.monotonic()


def _at(values: Sequence[int], i: int) -> int:
    return int(values[i]) if i < len(values) else 0


def _reduction(layout: ProbeLayout, probe: dict[str, Any]) -> tuple[list[Action], str]:
    actions = []
    for a in probe.get("actions") or [] if isinstance(probe, dict) else []:
        try:
            actions.append(Action.from_dict(a))
        except FileFormatError:
            continue  # the reader skips a damaged action the same way (window._actions)
    return actions, summary.actions_key(actions, layout.dtype.names or ())


def _probes_by_id(layouts: Sequence[ProbeLayout], probes: Sequence[dict[str, Any]] | Mapping[int, dict[str, Any]]
                  ) -> dict[int, dict[str, Any]]:
    if isinstance(probes, Mapping):
        return {int(k): dict(v) for k, v in probes.items()}
    probes = list(probes)
    if probes and len(probes) != len(layouts):
        raise KtuiError(f"{len(probes)} probe models for {len(layouts)} layouts: give one per layout, in order")
    return {layout.probe_id: dict(p) for layout, p in zip(layouts, probes)}
