"""Property: for points of this machine's catalog (tracepoints and BTF functions), the editor's
default probe (picked, nothing changed, added) compiles and passes the kernel's verifier.
A spread sample here; bench/bench_default_probes.py runs the whole catalog."""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.live, pytest.mark.timeout(600),
              pytest.mark.skipif(os.geteuid() != 0, reason="the verifier needs root")]


def _spread(names: list[str], n: int) -> list[str]:
    step = max(1, len(names) // n)
    return names[::step][:n]


def test_default_probes_of_a_catalog_sample_compile_and_pass_the_verifier():
    from ktui.catalog import Catalog
    from ktui.compiler import compile_session
    from ktui.compiler.verify import check_program
    from ktui.probes.draft import ProbeDraft

    catalog = Catalog.load()
    tracepoints = [n for n in catalog.names if n.startswith("tracepoint:")]
    functions = []
    for n in catalog.names:
        if n.startswith("kprobe:"):
            i = catalog.index_of(n)
            if int(catalog.ref[i]) >= 0 and catalog.entry(i).traceability in ("traceable", "unknown"):
                functions.append(n)
    sample = _spread(tracepoints, 40) + _spread(functions, 25)
    assert len(sample) == 65
    probes = [p for name in sample for p in ProbeDraft(spec=name).build(catalog)]
    program = compile_session(probes, catalog)
    not_compiled = [cp.error for cp in program.probes if cp.attach.kind == "none"]
    assert not_compiled == []
    refused = [r.message for r in check_program(program) if not r.ok]
    assert refused == []
    # every default probe records something: its fields or arguments, by type
    with_args = [cp for cp in program.probes if cp.layout.fields]
    assert len(with_args) >= len(program.probes) * 3 // 4
