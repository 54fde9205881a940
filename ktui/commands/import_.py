"""`ktui import FILE -o RECORDING`: ftrace text (trace, trace_pipe) into a recording."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import TYPE_CHECKING

from ktui.errors import FileFormatError
from ktui.formats.ftrace import import_ftrace
from ktui.recording.tempdirs import private_tempdir
from ktui.safe_output import check_destination
from ktui.textsafe import term_safe

if TYPE_CHECKING:
    from ktui.commands import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "import",
        help="import ftrace text (/sys/kernel/tracing/trace or trace_pipe output) into a recording",
        description="Reads ftrace text: tracepoints, kprobe and return-probe events, syscall events and the "
        "function tracer. Each distinct event becomes a probe with fields inferred from its values. Lines "
        "that cannot be read are listed with their line numbers; the rest is imported.",
    )
    p.add_argument("file", metavar="FILE", help="ftrace text ('-' reads standard input, e.g. from trace_pipe)")
    p.add_argument("-o", "--output", required=True, metavar="RECORDING", help="the recording to create")
    p.add_argument("--force", action="store_true", help="replace RECORDING if it exists")
    p.add_argument("--host", help="host name to show for this trace (default: the file name)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # The recording is created O_EXCL (a link of that name is removed with --force, never followed).
    check_destination(args.output, replace=args.force)
    if args.file != "-":
        report = import_ftrace(args.file, args.output, overwrite=args.force, host=args.host)
    else:
        # The importer reads twice (types first, then records): spool the stream privately.
        workdir = private_tempdir("import")
        try:
            spool = os.path.join(workdir, "stdin.txt")
            with open(spool, "wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f)
            try:
                report = import_ftrace(spool, args.output, overwrite=args.force, host=args.host or "stdin")
            except FileFormatError as err:
                raise FileFormatError(err.message, where="<stdin>") from None
            report.path = "<stdin>"
        finally:
            shutil.rmtree(workdir, True)
    for line in report.problem_lines():
        print(f"ktui: {term_safe(line)}", file=sys.stderr)
    print(f"{term_safe(args.output)}: {term_safe(report.summary())}")
    # Lines that could not be read are damage: said above, and the exit status says it too
    # (the rest is imported and kept).
    return FileFormatError.exit_code if report.problem_count else 0
