"""`ktui diff A B [--json] [--all] [--stacks N]`: what changed from recording A to recording B.

Per probe (matched by spec and filter) the count and rate change, histograms side by
side with the shift of their median, and the stacks that grew, shrank, appeared or
went, largest change first. The comparison itself is ktui/diff (core); this prints it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from typing import TYPE_CHECKING

from ktui.recording.tempdirs import private_tempdir
from ktui.sources.replay import open_recording
from ktui.textsafe import term_safe

if TYPE_CHECKING:
    from ktui.commands import Subparsers


def _count_arg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= n <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text} is out of range (0..1000000)")
    return n


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "diff",
        help="compare two recordings: per-probe counts and rates, histograms, stacks that grew or shrank",
        description="Compares recording B with recording A (the baseline). Probes are matched by their spec "
        "and filter. A change is flagged (!) only when it stands out of run-to-run noise: "
        "|B-A| > max(3*sqrt(A+B), 2%% of the larger, 1). Needs no root and no BCC.",
    )
    p.add_argument("a", metavar="A", help="the baseline recording (or ftrace text)")
    p.add_argument("b", metavar="B", help="the recording to compare with it")
    p.add_argument("--json", action="store_true", help="the whole comparison as one JSON object, for scripts")
    p.add_argument("--view", action="store_true",
                   help="open it in a scrollable screen (a for every probe, q quits) instead of printing it")
    p.add_argument("--all", action="store_true", help="every probe and histogram, also those within noise")
    p.add_argument("--stacks", type=_count_arg, default=5, metavar="N", help="changed stacks shown (default 5)")
    p.add_argument("--width", type=_count_arg, metavar="COLS", help="columns of text (default: the terminal's, or 80)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ktui.diff import compare, to_json
    from ktui.diff.text import render

    workdir = private_tempdir("diff")
    readers = []
    try:
        for path in (args.a, args.b):
            readers.append(open_recording(path, workdir))
        for reader in readers:
            for warning in reader.warnings:
                print(f"ktui: {term_safe(warning)}", file=sys.stderr)
        result = compare(readers[0], readers[1])
        damage = [d for d in (r.damage_summary() for r in readers) if d is not None]
        if args.view and not args.json:
            for d in damage:
                print(f"ktui: {term_safe(d)}; compared without them.", file=sys.stderr)
            # The screen is Textual, which the core never imports: the entry point (ktui/cli.py) hands it in.
            args.show_view(result)
            return 4 if damage else 0
        if args.json:
            json.dump(to_json(result), sys.stdout, ensure_ascii=False, indent=1)
            sys.stdout.write("\n")
        else:
            # the terminal's width, or COLUMNS (honoured into a pipe or a file too), or 80
            width = args.width or shutil.get_terminal_size((80, 24)).columns
            for line in render(result, width, max_stacks=args.stacks, all_probes=args.all):
                print(line)
        for d in damage:
            print(f"ktui: {term_safe(d)}; compared without them.", file=sys.stderr)
        return 4 if damage else 0
    finally:
        for reader in readers:
            reader.close()
        shutil.rmtree(workdir, True)

