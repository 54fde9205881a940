"""`ktui doctor`: what this kernel can trace, with the evidence.

Exit status 0 whatever the kernel can do (it is a report); non-zero only when
doctor itself cannot run.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ktui.doctor import diagnose, render_table, summary_warnings
from ktui.textsafe import term_safe

if TYPE_CHECKING:
    from ktui.commands import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="what this kernel can trace (kprobes, fentry, tracepoints, uprobes, sampling...), with evidence",
        description="Tries each tracing mechanism on this kernel (load, attach, detach a trivial program) "
        "and reports yes/no with the reason. Needs no root to run; without root it says what root would unlock.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable: {check: {ok, why, evidence, value}}")
    p.add_argument("-v", "--evidence", action="store_true", help="show the evidence under each line")
    p.add_argument("--no-compile", action="store_true", help="skip the BCC test compile (the only slow check)")
    p.add_argument("--refresh", action="store_true",
                   help="try every mechanism again instead of reusing this boot's answers")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = diagnose(compile_check=not args.no_compile, per_boot=True, refresh=args.refresh)
    if args.json:
        print(report.to_json())
        return 0
    print(term_safe(render_table(report, evidence=args.evidence), multiline=True))
    warnings = summary_warnings(report)
    if warnings:
        print()
        print(term_safe("In short: " + "; ".join(warnings) + "."))
    return 0
