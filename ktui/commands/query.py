"""`ktui query REC|DIR 'SQL' [--json|--csv]`: SQL (DuckDB, embedded) over a recording or a Parquet export."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import TYPE_CHECKING, TextIO

from ktui.textsafe import term_safe

if TYPE_CHECKING:
    from ktui.commands import Subparsers
    from ktui.formats.query import QueryResult

VIEWS_HELP = ("views: events (every probe: ts, time, probe_id, probe, cpu, pid, tid, uid, comm, kstack, ustack, "
              "flags, faulted), probe_<id> (one probe with its typed values), probes, counters, stacks (symbolized "
              "frames, by count), stack_frames (frames of an event's kstack/ustack id), marks (flight recorder "
              "triggers), meta. ts is CLOCK_MONOTONIC ns of the recording host, time its wall clock (UTC). Schema: docs/PARQUET.md.")


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "query",
        help="SQL over a recording or a Parquet export (DuckDB, embedded)",
        description="Runs one SQL query (SELECT, WITH, EXPLAIN) through DuckDB in this process. A recording is "
        "exported to Parquet in a private temporary directory first and is never changed; an export directory "
        "(`ktui export --format parquet`) is read where it is. " + VIEWS_HELP,
    )
    p.add_argument("source", metavar="REC|DIR", help="a recording (or ftrace text), a Parquet export directory, or a "
                   "directory of recordings (one per host: every view gets a host column)")
    p.add_argument("sql", metavar="SQL", help="one query, e.g. \"SELECT comm, count(*) FROM events GROUP BY 1\"")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON Lines: one object a row")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ktui.formats.query import SqlSession

    warnings: list[str] = []
    with SqlSession.open(args.source, warnings=warnings) as session:
        for w in warnings:
            print(f"ktui: {term_safe(w)}", file=sys.stderr)
        result = session.query(args.sql)
    out = sys.stdout
    if args.json:
        _print_json(result, out)
    elif args.csv:
        _print_csv(result, out)
    else:
        from ktui.formats.query import aligned

        for line in aligned(result):
            out.write(line + "\n")
        out.write(f"({len(result.rows):,} row{'s' if len(result.rows) != 1 else ''})\n")
    return 0


def _isatty(out: TextIO) -> bool:
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False


def _print_json(result: QueryResult, out: TextIO) -> None:
    from ktui.formats.query import json_value

    # To a terminal, non-ASCII as \\uXXXX: JSON escapes C0 only, and a C1 or bidi character would reach it raw.
    encode = json.JSONEncoder(ensure_ascii=_isatty(out), separators=(",", ":")).encode
    for row in result.rows:
        out.write(encode({c: json_value(v) for c, v in zip(result.columns, row)}) + "\n")


def _print_csv(result: QueryResult, out: TextIO) -> None:
    from ktui.formats.query import _text

    safe = term_safe if _isatty(out) else str
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe(c) for c in result.columns])
    for row in result.rows:
        writer.writerow(["" if v is None else safe(_text(v)) for v in row])
