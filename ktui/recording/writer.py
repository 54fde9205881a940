"""Writing a recording: the engine hands raw record arrays, we store compressed chunks.

Crash safety: the database runs in WAL mode with synchronous=NORMAL and every chunk
is its own transaction, so a SIGKILL of the recorder loses at most the events still
buffered here (less than one chunk, at most ``max_age_s`` old). ``close`` folds the
WAL back into the file and returns it to rollback-journal mode, so a finished
recording is one self-contained file that replay can open immutable.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import zstandard

from ktui import __version__
from ktui.errors import KtuiError
from ktui.events import Histogram, ProbeCounters, ProbeLayout, ProbeState, StackTrace
from ktui.kernel import KernelIdentity
from ktui.recording import schema

SIDE_FILES = ("-wal", "-shm", "-journal")


class RecordingWriter:
    """One recording being written. Not for several threads at once (a lock makes misuse safe)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, layouts: dict[int, ProbeLayout], *,
                 chunk_events: int, max_age_s: float, level: int):
        self.path = path
        self._conn = conn
        self._layouts = layouts
        self._chunk_events = chunk_events
        self._max_age_s = max_age_s
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._pending: dict[int, list[np.ndarray]] = {}
        self._pending_n: dict[int, int] = {}
        self._pending_since: dict[int, float] = {}
        self._lock = threading.RLock()
        self._closed = False
        self._first_ts: int | None = None
        self._last_ts: int | None = None
        self.events_written = 0
        self.bytes_written = 0

    # -- creation ---------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, identity: KernelIdentity, layouts: Sequence[ProbeLayout],
               probes: Sequence[dict] | Mapping[int, dict] = (), meta: Mapping | None = None, *,
               overwrite: bool = False, chunk_events: int = 65536, max_age_s: float = 0.5,
               level: int = 1) -> "RecordingWriter":
        """Create a new recording, readable by its owner only (0600 from the first byte).

        ``probes`` holds each probe's model (``Probe.to_dict()``), either in the order
        of ``layouts`` or keyed by probe id. ``meta`` adds free keys (command line,
        session name...). An existing file is refused unless ``overwrite``.
        """
        path = Path(path)
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

        by_id = _probes_by_id(layouts, probes)
        try:
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
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
        except sqlite3.Error as err:
            raise KtuiError(f"cannot write the recording: {err}", where=str(path)) from None
        except (TypeError, ValueError) as err:
            raise KtuiError(f"cannot store the recording's description: {err}", where=str(path)) from None
        return cls(path, conn, {l.probe_id: l for l in layouts}, chunk_events=chunk_events,
                   max_age_s=max_age_s, level=level)

    # -- probes -------------------------------------------------------------

    def add_probe(self, layout: ProbeLayout, probe: dict | None = None) -> None:
        """A probe added while recording (the user built one more)."""
        with self._lock:
            self._execute_tx([("INSERT OR REPLACE INTO probes VALUES (?, ?, ?)",
                               (layout.probe_id, json.dumps(probe or {}), json.dumps(layout.to_dict())))])
            self._layouts[layout.probe_id] = layout

    # -- events -------------------------------------------------------------

    def append(self, probe_id: int, records: np.ndarray) -> None:
        """Buffer records of one probe (its layout's dtype); a full or old buffer becomes a chunk."""
        layout = self._layouts.get(probe_id)
        if layout is None:
            raise KtuiError(f"probe {probe_id} is not part of this recording", where=str(self.path))
        if records.dtype.itemsize != layout.record_size:
            raise KtuiError(f"records of {records.dtype.itemsize} bytes do not match probe {probe_id}'s "
                            f"{layout.record_size}-byte layout", where=str(self.path))
        if len(records) == 0:
            self._flush_old()
            return
        with self._lock:
            self._check_open()
            # Copy: the engine's array may be a view over ring-buffer memory it reuses.
            self._pending.setdefault(probe_id, []).append(np.array(records, copy=True))
            self._pending_n[probe_id] = self._pending_n.get(probe_id, 0) + len(records)
            self._pending_since.setdefault(probe_id, time.monotonic())
            while self._pending_n.get(probe_id, 0) >= self._chunk_events:
                self._write_chunk(probe_id, self._chunk_events)
            self._flush_old()

    def _flush_old(self) -> None:
        now = time.monotonic()
        for probe_id, since in list(self._pending_since.items()):
            if now - since >= self._max_age_s:
                self._write_chunk(probe_id, None)

    def _take(self, probe_id: int, n: int | None) -> np.ndarray:
        parts = self._pending.pop(probe_id, [])
        data = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if n is not None and n < len(data):
            self._pending[probe_id] = [data[n:]]
            self._pending_n[probe_id] = len(data) - n
            data = data[:n]
        else:
            self._pending_n.pop(probe_id, None)
            self._pending_since.pop(probe_id, None)
        return data

    def _write_chunk(self, probe_id: int, n: int | None) -> None:
        records = self._take(probe_id, n)
        if len(records) == 0:
            return
        ts = records["ts"]
        if len(ts) > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
            # Ring buffers interleave CPUs: sort inside the chunk so readers can bisect.
            records = records[np.argsort(ts, kind="stable")]
            ts = records["ts"]
        first, last = int(ts[0]), int(ts[-1])
        blob = self._compressor.compress(records.tobytes())
        self._execute_tx([(
            "INSERT INTO chunks (probe_id, first_ts, last_ts, count, codec, data) VALUES (?, ?, ?, ?, ?, ?)",
            (probe_id, schema.to_sql_u64(first), schema.to_sql_u64(last), len(records), schema.CODEC_ZSTD, blob))])
        self._first_ts = first if self._first_ts is None else min(self._first_ts, first)
        self._last_ts = last if self._last_ts is None else max(self._last_ts, last)
        self.events_written += len(records)
        self.bytes_written += len(blob)

    # -- aggregates ---------------------------------------------------------

    def set_counters(self, counters: Mapping[int, ProbeCounters]) -> None:
        """Replace the loss counters (a full snapshot, as in Update.counters)."""
        rows = []
        for probe_id, c in counters.items():
            ncpu = max(len(c.hits), len(c.delivered), len(c.dropped), len(c.filtered), 1)
            for cpu in range(ncpu):
                rows.append((probe_id, cpu, _at(c.hits, cpu), _at(c.delivered, cpu), _at(c.dropped, cpu),
                             _at(c.filtered, cpu), c.missed if cpu == 0 else 0))
        self._execute_tx([("DELETE FROM counters", ())] +
                         [("INSERT INTO counters VALUES (?, ?, ?, ?, ?, ?, ?)", r) for r in rows])

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
    def _stack_rows(stacks: Iterable[StackTrace], replace: bool) -> list:
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
        rows = []
        for addr, name in (kernel or {}).items():
            rows.append(("INSERT OR REPLACE INTO symbols VALUES ('k', '', ?, ?)", (schema.to_sql_u64(addr), str(name))))
        for (scope, addr), name in (user or {}).items():
            rows.append(("INSERT OR REPLACE INTO symbols VALUES ('u', ?, ?, ?)",
                         (str(scope), schema.to_sql_u64(addr), str(name))))
        self._execute_tx(rows)

    def set_meta(self, **values) -> None:
        rows = [("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))
                for k, v in values.items() if k not in schema.RESERVED_META]
        self._execute_tx(rows)

    # -- end ----------------------------------------------------------------

    def flush(self) -> None:
        """Write every buffered event as chunks now (each committed)."""
        with self._lock:
            self._check_open()
            for probe_id in list(self._pending):
                while self._pending_n.get(probe_id, 0) > 0:
                    self._write_chunk(probe_id, self._chunk_events)

    def close(self, end_ns: int | None = None) -> None:
        """Flush, write the end time, and fold the WAL back into the one file."""
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
                self.set_meta(end_ns=end_ns if end_ns is not None else time.monotonic_ns(),
                              first_event_ns=self._first_ts, last_event_ns=self._last_ts)
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.Error as err:
                raise KtuiError(f"cannot finish the recording ({err}); the chunks written so far stay readable",
                                where=str(self.path)) from None
            finally:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise KtuiError("the recording is already closed", where=str(self.path))

    def _execute_tx(self, statements: list) -> None:
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


def _at(values: Sequence[int], i: int) -> int:
    return int(values[i]) if i < len(values) else 0


def _probes_by_id(layouts: Sequence[ProbeLayout], probes: Sequence[dict] | Mapping[int, dict]) -> dict[int, dict]:
    if isinstance(probes, Mapping):
        return {int(k): dict(v) for k, v in probes.items()}
    probes = list(probes)
    if probes and len(probes) != len(layouts):
        raise KtuiError(f"{len(probes)} probe models for {len(layouts)} layouts: give one per layout, in order")
    return {layout.probe_id: dict(p) for layout, p in zip(layouts, probes)}
