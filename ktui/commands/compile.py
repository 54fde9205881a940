"""`ktui compile`: probe specs -> the one BCC program ktui would load (and, with
--check, proof that the kernel's verifier accepts every function of it)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from ktui.errors import KtuiError, UsageError
from ktui.privilege import require_bpf
from ktui.textsafe import term_safe

if TYPE_CHECKING:
    import argparse

    from ktui.catalog import Catalog
    from ktui.commands import Subparsers
    from ktui.compiler.program import CompiledProgram
    from ktui.probes.model import Probe


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "compile",
        help="print the BCC program for probe specs; --check loads it into the verifier",
        description="Compile probe specs (bpftrace names like kprobe:do_sys_openat2, kprobe_events lines "
                    "like 'p:myprobe do_sys_openat2 dfd=%di', SystemTap points like "
                    "'kernel.function(\"ip_rcv\")') into one BCC program and print it. Notes about "
                    "fallbacks and probes that cannot be placed go to stderr.",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", help="a probe spec (quote it for the shell)")
    p.add_argument("--emit", choices=("c", "json", "none"), default="c",
                   help="what to print: the C program (default), JSON layouts and attach plans, or nothing")
    p.add_argument("--check", action="store_true",
                   help="load every function into the kernel's verifier (root, BCC); nothing is attached")
    p.add_argument("--filter", metavar="EXPR", help="filter for every probe, e.g. 'retval < 0 && comm == \"bash\"'")
    p.add_argument("--ring-pages", type=int, default=None, metavar="N",
                   help="ring buffer pages per probe, a power of two (default 256 = 1 MiB)")
    p.add_argument("--pid", type=int, default=None, metavar="PID", help="trace only this process")
    p.add_argument("--no-fallback", action="store_true",
                   help="keep each probe's own mechanism even when this kernel lacks it")
    p.set_defaults(run=run)


def _load_catalog(specs: list[str]) -> Catalog | None:
    """The catalog resolves globs and arguments by name; without it those say what is missing."""
    try:
        from ktui.catalog.core import Catalog

        return Catalog.load()
    except (KtuiError, ImportError, OSError):
        return None


def _parse(specs: list[str], catalog: Catalog | None) -> list[Probe]:
    from ktui.probes.spec import parse_spec

    probes = []
    for text in specs:
        probes.extend(parse_spec(text, catalog))
    return probes


def _json(program: CompiledProgram) -> str:
    out = []
    for cp in program.probes:
        out.append({
            "probe_id": cp.probe_id, "spec": cp.probe.spec, "name": cp.probe.name,
            "layout": cp.layout.to_dict(), "record_size": cp.layout.record_size,
            "attach": [vars(plan) for plan in cp.attach_plans] if cp.attach.kind != "none" else [],
            "fetch_reads": cp.fetch_reads, "ring": cp.ring, "maps": cp.maps, "hist": cp.hist or None, "notes": cp.notes, "error": cp.error,
        })
    return json.dumps({"ring_pages": program.ring_pages, "probes": out}, indent=2)


def run(args: argparse.Namespace) -> int:
    from ktui.compiler import DEFAULT_RING_PAGES, compile_session

    if args.check:
        require_bpf("ktui compile --check", instead=", or leave out --check to print the program")
    catalog = _load_catalog(args.specs)
    probes = _parse(args.specs, catalog)
    if not probes:
        raise UsageError("the specs matched no probe points")
    if args.filter is not None:
        for probe in probes:
            probe.filter = args.filter
    program = compile_session(probes, catalog, args.pid, ring_pages=args.ring_pages or DEFAULT_RING_PAGES,
                              fallback=not args.no_fallback)
    if args.emit == "c":
        sys.stdout.write(term_safe(program.c_text, multiline=True))
    elif args.emit == "json":
        print(_json(program))
    sys.stdout.flush()
    status = 0
    for cp in program.probes:
        for note in cp.notes:
            print(f"ktui: note: {term_safe(note)}", file=sys.stderr)
        if cp.fetch_reads:
            # which read each fetch uses: user or kernel memory, or no memory read at all
            reads = ", ".join(f"{name} {read}" for name, read in cp.fetch_reads.items())
            print(f"ktui: reads: {cp.probe.name}: {term_safe(reads)}", file=sys.stderr)
        if cp.error:
            compiled = cp.attach.kind != "none"
            print(f"ktui: {'warning' if compiled else 'error'}: {term_safe(cp.error, multiline=True)}", file=sys.stderr)
            if not compiled:
                status = 1
    if args.check:
        from ktui.compiler.verify import check_program

        results = check_program(program)
        refused = [r for r in results if not r.ok]
        for r in refused:
            print(f"ktui: refused: {term_safe(r.message, multiline=True)}", file=sys.stderr)
        print(f"ktui: verifier: {len(results) - len(refused)} of {len(results)} functions accepted", file=sys.stderr)
        if refused:
            status = 1
    return status
