"""`ktui export FILE --format perfetto|jsonl|parquet -o OUT`: a recording (or ftrace text) into what others open."""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import IO, TYPE_CHECKING, Any

from ktui.errors import FileFormatError, UsageError
from ktui.numbers import event_pid_arg
from ktui.sources.replay import open_recording
from ktui.recording.tempdirs import private_tempdir
from ktui.safe_output import check_destination, output_file
from ktui.textsafe import term_safe

if TYPE_CHECKING:
    from ktui.commands import Subparsers
    from ktui.recording.reader import RecordingReader

FORMATS = ("perfetto", "perfetto-proto", "jsonl", "parquet")


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a recording to Perfetto (Chrome JSON trace), JSON Lines or Parquet",
        description="perfetto: a trace ui.perfetto.dev opens, with per-CPU tracks, entry/return pairs as "
        "slices and per-CPU event counters. perfetto-proto: the stack samples (every event with a kernel or user "
        "stack) as Perfetto's own protobuf trace, for its per-thread samples and flame graphs. jsonl: one event per line (ts, cpu, pid, tid, comm, probe, "
        "fetched values) in time order. The file is created readable by its owner only, under a temporary name "
        "renamed to OUT when complete (an existing OUT, or a link of that name, is replaced, never written through). "
        "parquet: OUT is a directory of Parquet tables (one per probe, typed columns, zstd; plus probes, counters, "
        "stacks, stack_frames, meta; schema in docs/PARQUET.md) for DuckDB, ClickHouse, Spark and `ktui query`; "
        "created 0700 with 0600 files, under a temporary name renamed to OUT when complete.",
    )
    p.add_argument("file", metavar="FILE", help="a recording, or ftrace text")
    p.add_argument("--format", "-f", choices=FORMATS, required=True)
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the file to write ('-' for stdout); for parquet, the directory to create")
    p.add_argument("--pid", type=event_pid_arg, help="only events of this process")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=run)


def _export(args: argparse.Namespace, reader: RecordingReader, out: IO[Any]) -> tuple[str, str]:
    # out: text for JSON, bytes for perfetto-proto (args.format decides, as for output_file)
    if args.format == "jsonl":
        from ktui.formats.jsonl import export_jsonl

        n = export_jsonl(reader, out, pid=args.pid)
        return f"{n} event(s)", f"{n:,} event(s)"
    if args.format == "perfetto-proto":
        from ktui.formats.perfetto_proto import export_perfetto_proto

        st = export_perfetto_proto(reader, out, pid=args.pid)
        return (f"{st['samples']} stack sample(s), {st['callstacks']} distinct stack(s), {st['frames']} frame(s)",
                f"{st['samples']:,} stack sample(s)")
    from ktui.formats.perfetto import export_perfetto

    stats = export_perfetto(reader, out, pid=args.pid)
    return (f"{stats['instants']} event(s) on per-CPU tracks, {stats['slices']} slice(s), "
            f"{stats['counters']} counter sample(s)"), f"{stats['instants']:,} event(s)"


def run(args: argparse.Namespace) -> int:
    if args.format == "parquet":
        return _run_parquet(args)
    if args.output != "-":
        check_destination(args.output, replace=args.force)  # before reading anything
    workdir = private_tempdir("export")
    try:
        reader = open_recording(args.file, workdir)
        for warning in reader.warnings:  # an unfinished recording: said, not an error
            print(f"ktui: {term_safe(warning)}", file=sys.stderr)
        try:
            binary = args.format == "perfetto-proto"
            if args.output == "-":
                summary, exported = _export(args, reader, sys.stdout.buffer if binary else sys.stdout)
            else:  # a new file under a temporary name, renamed over OUT when complete: never through a link
                with output_file(args.output, replace=args.force, binary=binary) as out:
                    summary, exported = _export(args, reader, out)
            # Damage is found while reading (a chunk decodes or it does not): said once, at the end,
            # with what was still exported, and the exit status says the export is incomplete.
            damage = reader.damage_summary()
        finally:
            reader.close()
        if args.output != "-":
            print(f"{term_safe(args.output)}: {summary}")
        if damage is not None:
            where = "standard output" if args.output == "-" else term_safe(args.output)
            print(f"ktui: {term_safe(damage)}; {exported} exported to {where} without them.", file=sys.stderr)
            return FileFormatError.exit_code
        return 0
    finally:
        shutil.rmtree(workdir, True)


def _run_parquet(args: argparse.Namespace) -> int:
    from ktui.formats.parquet import EXPORT_SUFFIX, export_parquet
    from ktui.safe_output import check_directory_destination, output_directory

    if args.output == "-":
        raise UsageError("Parquet is a directory of tables; give one with -o DIR, not '-'")
    if args.pid is not None:
        raise UsageError("--pid is not offered for Parquet: export everything, then filter with `ktui query` (WHERE pid = ...)")
    check_directory_destination(args.output, replace=args.force, owned=EXPORT_SUFFIX)  # before reading anything
    workdir = private_tempdir("export")
    try:
        reader = open_recording(args.file, workdir)
        for warning in reader.warnings:
            print(f"ktui: {term_safe(warning)}", file=sys.stderr)
        try:
            with output_directory(args.output, replace=args.force, owned=EXPORT_SUFFIX) as directory:
                stats = export_parquet(reader, directory.create)
            damage = reader.damage_summary()
        finally:
            reader.close()
        print(f"{term_safe(args.output)}: {stats.total:,} event(s) in {len(stats.events)} probe table(s), "
              f"{len(stats.files)} file(s)")
        if damage is not None:
            print(f"ktui: {term_safe(damage)}; {stats.total:,} event(s) exported to {term_safe(args.output)} "
                  "without them.", file=sys.stderr)
            return FileFormatError.exit_code
        return 0
    finally:
        shutil.rmtree(workdir, True)
