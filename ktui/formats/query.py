"""SQL over a recording or a Parquet export, through DuckDB embedded in the process.

DuckDB reads Parquet natively, with no extension to download (its SQLite scanner is
an extension fetched over the network, and would see only compressed event chunks
anyway). So a recording is first exported (ktui.formats.parquet, streaming, bounded
memory) into a private temporary directory, removed when the session closes; an
export directory is read where it is. Neither is ever written: the recording is opened
read-only and immutable, and DuckDB runs with file access limited to the export's own
files (``allowed_paths``, external access off, configuration locked), so a query cannot
write a file (``COPY ... TO``), read others, attach databases or load extensions.
Only queries run (SELECT, EXPLAIN); other statements get one sentence.

Views every session has:
    events        every probe's events, the common columns (ts, time, probe_id, probe, cpu,
                  pid, tid, uid, comm, kstack, ustack, flags, faulted)
    probe_<id>    one probe's events with its own typed value columns
    probes, counters, stacks (aggregated stacks, symbolized frames), stack_frames (the
                  frames behind an event's kstack/ustack id), marks (flight recorder triggers), meta
"""

from __future__ import annotations

import datetime
import decimal
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ktui.errors import FileFormatError, KtuiError, UsageError
from ktui.formats.parquet import EXPORT_SUFFIX, HEADER_COLUMNS
from ktui.textsafe import term_safe

TABLES = ("probes", "counters", "stacks", "stack_frames", "meta")
OPTIONAL_TABLES = ("marks",)  # exports made before the table existed lack it: an empty view stands in
_PROBE_TABLE = re.compile(r"probe_[0-9]{1,9}")
ALLOWED_STATEMENTS = ("SELECT", "EXPLAIN")


class QueryError(UsageError):
    """SQL that DuckDB refused, or a statement that is not a query: one sentence."""


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise KtuiError("SQL queries need the duckdb package (pip install duckdb)") from None
    return duckdb


def _sql_text(value: str) -> str:
    """A string literal for DuckDB: quotes doubled (backslashes are not special there)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False  # more rows than asked for existed


def is_export_dir(path: str | os.PathLike[str]) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "probes" + EXPORT_SUFFIX))


class SqlSession:
    """DuckDB over one Parquet export directory, with ktui's views; ``open`` takes a recording too."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, where: str | None = None,
                 hosts: list[tuple[str, Path]] | None = None):
        """One export directory, or (``hosts``) several, one per host: then every view has a ``host``
        column first and is the union of the hosts' tables."""
        if hosts is None:
            if directory is None:
                raise ValueError("SqlSession needs a directory or hosts")
            hosts = [("", Path(directory))]
        self.where = where or str(directory if directory is not None else hosts[0][1])
        self._several = len(hosts) > 1
        self.skipped: list[str] = []  # probe views not made (hosts with different layouts under one id)
        duckdb = _duckdb()
        self._error = duckdb.Error
        self.con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                                      "autoload_known_extensions": False})
        try:
            self._hosts = [(host, self._check_files(d), d) for host, d in hosts]
            self._probes = [self._read_probes(files) for _, files, _ in self._hosts]
            self._create_views()
            # From here on DuckDB touches only these files, and no query can change that.
            allowed = [str(p) for _, files, _ in self._hosts for p in files.values()]
            self.con.execute("SET allowed_paths = ?", [allowed])
            self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, progress: Callable[[int], None] | None = None,
             warnings: list[str] | None = None) -> SqlSession:
        """An export directory as it is, or a recording (or ftrace text), or a directory of recordings (one per
        host, as `ktui record --host` makes), exported to a private temporary directory."""
        if os.path.isdir(path):
            if is_export_dir(path):
                return cls(path)
            recordings = sorted(Path(path) / n for n in os.listdir(path) if n.endswith(".ktrec"))
            if not recordings:
                raise FileFormatError("is a directory but neither a Parquet export of ktui (no probes.parquet) "
                                      "nor a directory of recordings (*.ktrec)", where=str(path))
        else:
            recordings = [Path(path)]
        return cls.open_recordings(recordings, where=str(path), progress=progress, warnings=warnings)

    @classmethod
    def open_recordings(cls, recordings: list[Path], *, where: str, progress: Callable[[int], None] | None = None,
                        warnings: list[str] | None = None) -> SqlSession:
        """Recordings exported to a private temporary directory (removed on close); several get a host column."""
        from ktui.formats.parquet import export_parquet
        from ktui.recording.tempdirs import private_tempdir
        from ktui.safe_output import DirectoryWriter
        from ktui.sources.replay import open_recording

        workdir = private_tempdir("export")
        try:
            hosts: list[tuple[str, Path]] = []
            for i, recording in enumerate(recordings):
                reader = open_recording(recording, workdir)
                try:
                    if warnings is not None:
                        warnings.extend(reader.warnings)
                    out = Path(workdir) / f"parquet-{i}"
                    os.mkdir(out, 0o700)
                    export_parquet(reader, DirectoryWriter(out).create, progress=progress)
                    damage = reader.damage_summary()
                    if damage is not None and warnings is not None:
                        warnings.append(f"{damage}; the query sees the rest")
                    host = reader.host
                finally:
                    reader.close()
                if host in (h for h, _ in hosts):
                    host = f"{host}:{recording.stem}"
                hosts.append((host, out))
            session = cls(hosts=hosts, where=where)
            session._workdir = workdir
            return session
        except BaseException:
            shutil.rmtree(workdir, True)
            raise

    _workdir: str | None = None

    # -- setting up ---------------------------------------------------------------

    def _check_files(self, directory: Path) -> dict[str, Path]:
        """The export's files by table name: regular files only (a link is refused, not followed)."""
        files: dict[str, Path] = {}
        try:
            names = os.listdir(directory)
        except OSError as err:
            raise FileFormatError(f"cannot read the directory: {err.strerror}", where=self.where) from None
        for name in names:
            if not name.endswith(EXPORT_SUFFIX):
                continue
            stem = name[: -len(EXPORT_SUFFIX)]
            if stem not in TABLES and stem not in OPTIONAL_TABLES and not _PROBE_TABLE.fullmatch(stem):
                continue
            path = directory.resolve() / name
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise FileFormatError(f"{name} is not a regular file (a link?); it is not read", where=self.where)
            files[stem] = path
        missing = [t for t in TABLES if t not in files]
        if missing:
            raise FileFormatError(f"is not a complete Parquet export of ktui: {', '.join(missing)} missing",
                                  where=self.where)
        return files

    def _read_probes(self, files: dict[str, Path]) -> list[tuple[int, str, str]]:
        try:
            rows = self.con.execute(f"SELECT probe_id, name, \"table\" FROM read_parquet({_sql_text(str(files['probes']))}) "
                                    "ORDER BY probe_id").fetchall()
        except self._error as err:
            raise FileFormatError(f"probes.parquet cannot be read ({_first_line(err)})", where=self.where) from None
        probes = []
        for probe_id, name, table in rows:
            if not isinstance(table, str) or not _PROBE_TABLE.fullmatch(table) or table not in files:
                raise FileFormatError(f"probes.parquet names a table {term_safe(table)!r} that is not in the export",
                                      where=self.where)
            probes.append((int(probe_id), str(name), table))
        return probes

    def _select(self, host: str, path: Path, columns: str = "*") -> str:
        """One host's file as a SELECT; with several hosts, their name comes first as ``host``."""
        prefix = f"{_sql_text(host)} AS host, " if self._several else ""
        return f"SELECT {prefix}{columns} FROM read_parquet({_sql_text(str(path))})"

    def _create_views(self) -> None:
        con = self.con
        tables = sorted({t for _, files, _ in self._hosts for t in files})
        for table in tables:
            parts = [self._select(host, files[table]) for host, files, _ in self._hosts if table in files]
            order = " ORDER BY count DESC" if table == "stacks" else ""
            try:
                con.execute(f"CREATE VIEW {table} AS " + " UNION ALL BY NAME ".join(parts) + order)
            except self._error as err:
                if not self._several or table in TABLES:
                    raise FileFormatError(f"{table}.parquet cannot be read ({_first_line(err)})",
                                          where=self.where) from None
                # hosts recorded different probes under one id: no joint view of it (events has them all)
                self.skipped.append(f"{table}: the hosts' tables differ ({_first_line(err)})")
        if "marks" not in tables:
            con.execute("CREATE VIEW marks AS SELECT " + ("NULL::VARCHAR AS host, " if self._several else "")
                        + "NULL::UBIGINT AS ts, NULL::TIMESTAMPTZ AS time, NULL::VARCHAR AS kind, NULL::UINTEGER AS probe_id, "
                        "NULL::VARCHAR AS label, NULL::UBIGINT AS start_ns, NULL::UBIGINT AS end_ns WHERE false")
        common = [c for c in HEADER_COLUMNS if c != "probe_id"]
        parts = []
        for (host, files, _), probes in zip(self._hosts, self._probes):
            for _probe_id, name, table in probes:
                cols = ", ".join(["ts", "time", "probe_id", f"{_sql_text(name)} AS probe", *common[2:]])
                parts.append(self._select(host, files[table], cols))
        if not parts:  # no probes: an empty view with the same columns
            parts.append(("SELECT NULL::VARCHAR AS host, " if self._several else "SELECT ")
                         + "NULL::UBIGINT AS ts, NULL::TIMESTAMPTZ AS time, NULL::UINTEGER AS probe_id, "
                         "NULL::VARCHAR AS probe, NULL::UINTEGER AS cpu, NULL::UINTEGER AS pid, NULL::UINTEGER AS tid, "
                         "NULL::UINTEGER AS uid, NULL::VARCHAR AS comm, NULL::INTEGER AS kstack, "
                         "NULL::INTEGER AS ustack, NULL::UINTEGER AS flags, NULL::BOOLEAN AS faulted WHERE false")
        con.execute("CREATE VIEW events AS " + " UNION ALL ".join(parts))

    @property
    def views(self) -> list[str]:
        return ["events", *TABLES, *OPTIONAL_TABLES, *sorted({t for probes in self._probes for _, _, t in probes})]

    # -- queries ----------------------------------------------------------------------

    def query(self, sql: str, *, max_rows: int | None = None) -> QueryResult:
        """Run one query; at most ``max_rows`` rows are fetched (``truncated`` says whether more existed)."""
        if not sql.strip():
            raise QueryError("the query is empty")
        try:
            statements = self.con.extract_statements(sql)
        except self._error as err:
            raise QueryError(f"the query is not valid SQL: {_first_line(err)}") from None
        if len(statements) != 1:
            raise QueryError(f"give one query at a time (this text holds {len(statements)} statements)")
        kind = getattr(statements[0].type, "name", str(statements[0].type))
        if kind not in ALLOWED_STATEMENTS:
            raise QueryError(f"only queries run here (SELECT, WITH ... SELECT, EXPLAIN), not {kind}: "
                             "a recording is never changed")
        try:
            cur = self.con.execute(sql)
            description = cur.description or []
            if max_rows is None:
                rows = cur.fetchall()
                truncated = False
            else:
                rows = cur.fetchmany(max_rows + 1)
                truncated = len(rows) > max_rows
                rows = rows[:max_rows]
        except self._error as err:
            raise QueryError(f"the query failed: {_first_line(err)}") from None
        return QueryResult([str(d[0]) for d in description], [str(d[1]) for d in description],
                           [tuple(r) for r in rows], truncated)

    def interrupt(self) -> None:
        """Stop a query running in another thread (it fails with an interruption)."""
        try:
            self.con.interrupt()
        except Exception:  # noqa: BLE001 -- nothing running, or already closed
            pass

    def close(self) -> None:
        try:
            self.con.close()
        except Exception:  # noqa: BLE001 -- closing twice, or after a failed start, is harmless
            pass
        if self._workdir is not None:
            shutil.rmtree(self._workdir, True)
            self._workdir = None

    def __enter__(self) -> SqlSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(err: BaseException) -> str:
    """DuckDB's message without its caret picture: the first line, as one sentence."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return term_safe(text.rstrip("."))


# -- showing values ----------------------------------------------------------------------

def cell(value: object) -> str:
    """A value as text for a table (NULL shown as such), terminal-safe."""
    return term_safe(_text(value))


def _text(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_text(k)}: {_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


def json_value(value: object) -> object:
    """A value as JSON can hold it: times as ISO text, big decimals as integers, lists as lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


NUMERIC_TYPES = re.compile(r"(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|FLOAT|DOUBLE|DECIMAL.*|REAL)$")


def aligned(result: QueryResult, *, max_width: int = 60) -> list[str]:
    """The result as an aligned text table (numbers right-aligned; cells cut at ``max_width`` with '…')."""
    cells = [[_cut(cell(v), max_width) for v in row] for row in result.rows]
    heads = [_cut(term_safe(c), max_width) for c in result.columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(heads)]
    right = [bool(NUMERIC_TYPES.match(t.upper())) for t in result.types]
    lines = ["  ".join(h.rjust(w) if r else h.ljust(w) for h, w, r in zip(heads, widths, right)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in cells:
        lines.append("  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)).rstrip())
    return lines


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
