#!/usr/bin/env python3
"""The editor's default probe for every point of this machine's catalog: does it compile,
and does the kernel's verifier accept it (`ktui compile --check`)?

    .venv/bin/python bench/bench_default_probes.py [--kinds tracepoint,kprobe] [--limit N] [--batch 150]

The default probe is what the editor builds when a person picks the point and presses add
with nothing changed (ktui.probes.draft.ProbeDraft: stream every event, count by cpu,
nothing ticked, so every field or argument is recorded). Points are compiled in batches,
one BCC program per batch; prints how many pass and groups the rest by reason. Needs root
and BCC. Asserts nothing (tests/test_default_probes.py checks a sample).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def reason_of(message: str) -> str:
    """A failure's reason without the names in it, so like failures group together."""
    text = re.sub(r"^probe \d+ \([^)]*\):\s*", "", message)
    text = re.sub(r"\b(fetch|argument|field|function|tracepoint) \w+", r"\1 X", text)
    return text[:140]


def check_points(names: list[str], catalog, batch: int) -> tuple[int, collections.Counter, list[str]]:
    from ktui.compiler import compile_session
    from ktui.compiler.verify import check_program
    from ktui.errors import KtuiError
    from ktui.probes.draft import ProbeDraft

    passed = 0
    reasons: collections.Counter = collections.Counter()
    examples: list[str] = []

    def fail(name: str, why: str) -> None:
        reasons[reason_of(why)] += 1
        if len(examples) < 15:
            examples.append(f"{name}: {why}")

    for start in range(0, len(names), batch):
        chunk = names[start:start + batch]
        probes, owners = [], []
        for name in chunk:
            try:
                built = ProbeDraft(spec=name).build(catalog)
            except KtuiError as err:
                fail(name, str(err))
                continue
            probes.extend(built)
            owners.extend([name] * len(built))
        if not probes:
            continue
        program = compile_session(probes, catalog)
        bad: dict[int, str] = {}
        for cp in program.probes:
            if cp.attach.kind == "none":
                bad[cp.probe_id] = cp.error or "not compiled"
        try:
            for r in check_program(program):
                if not r.ok:
                    bad.setdefault(r.probe_id, r.message)
        except KtuiError as err:  # the batch's C did not compile at all: check one by one
            for i, probe in enumerate(probes):
                try:
                    one = compile_session([probe], catalog)
                    if one.probes[0].attach.kind != "none":
                        refused = [r for r in check_program(one) if not r.ok]
                        if refused:
                            bad.setdefault(i, refused[0].message)
                except KtuiError as e:
                    bad.setdefault(i, f"{e} (batch: {err})")
        for i, name in enumerate(owners):
            if i in bad:
                fail(name, bad[i])
            else:
                passed += 1
    return passed, reasons, examples


def is_btf_function(catalog, name: str) -> bool:
    i = catalog.index_of(name)
    return i is not None and int(catalog.ref[i]) >= 0 and catalog.entry(i).traceability in ("traceable", "unknown")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default="tracepoint,kprobe", help="catalog kinds to check (tracepoint, kprobe)")
    ap.add_argument("--limit", type=int, default=0, help="check every Nth point so that about N are checked")
    ap.add_argument("--batch", type=int, default=150, help="points per BCC program")
    args = ap.parse_args()
    from ktui.catalog import Catalog

    catalog = Catalog.load()
    kinds = tuple(f"{k}:" for k in args.kinds.split(","))
    names = [n for n in catalog.names if n.startswith(kinds)]
    if "kprobe:" in kinds:  # functions BTF describes, that the catalog does not know to be untraceable
        names = [n for n in names if not n.startswith("kprobe:") or is_btf_function(catalog, n)]
    if args.limit and len(names) > args.limit:
        step = len(names) / args.limit
        names = [names[int(i * step)] for i in range(args.limit)]
    t0 = time.monotonic()
    passed, reasons, examples = check_points(names, catalog, args.batch)
    took = time.monotonic() - t0
    print(f"{passed} of {len(names)} default probes compile and pass the verifier ({took:.0f} s)")
    for why, n in reasons.most_common(20):
        print(f"  {n:6d}  {why}")
    if examples:
        print("examples:")
        for e in examples:
            print(f"  {e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
