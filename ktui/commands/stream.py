"""`ktui stream SPEC...`: the live engine, headless, writing binary frames to stdout.

Internal: the local ktui starts it on each host given with ``--host`` (through ssh) and reads
its frames (ktui/remote/protocol.py). It refuses a terminal on stdout, where frames would be
binary noise.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from ktui.errors import UsageError
from ktui.numbers import pid_arg

if TYPE_CHECKING:
    from ktui.commands import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "stream", help="internal: the engine `ktui --host` starts on each host (binary frames on stdout)",
        description="Internal: run the live engine and write its records as binary frames to stdout "
        "(what `ktui --host` starts on each host through ssh). Stops when stdin ends.")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.add_argument("--filter", metavar="EXPR", help="keep only events for which EXPR holds, on every probe")
    p.add_argument("-p", "--pid", type=pid_arg, help="trace only this process")
    p.add_argument("--ring-pages", type=int, metavar="N", help="pages per ring buffer (a power of two)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if os.isatty(1):
        raise UsageError("ktui stream writes binary frames for `ktui --host`; it does not write to a terminal.")
    from ktui.remote.stream import run_stream

    return run_stream(list(args.specs), filter_text=args.filter, pid=args.pid, ring_pages=args.ring_pages)
