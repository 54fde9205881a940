"""USDT and perf-event probes through the compiler: plans, fetches lowered from the
marker's decoded arguments (never text from the note), and refusals in one sentence."""

from __future__ import annotations

import os
import re

import pytest

from ktui.compiler import compile_session
from ktui.probes.model import Arg, Fetch, Imm
from ktui.probes.spec import parse_spec

PYTHON = "/usr/bin/python3.11"
needs_python = pytest.mark.skipif(not os.path.exists(PYTHON), reason="needs Debian's python3.11 with SDT markers")


def _compile(spec: str, filter: str = "", fetches=None):
    probes = parse_spec(spec)
    for p in probes:
        p.filter = filter
        if fetches is not None:
            p.fetches = fetches
    return compile_session(probes)


@needs_python
def test_a_marker_compiles_to_a_uprobe_with_its_semaphore_and_typed_fetches():
    from ktui.catalog.usdt import find_marker

    m = find_marker(PYTHON, "python", "function__entry")
    prog = _compile(f"usdt:{PYTHON}:python:function__entry", 'funcname == "f"')
    cp = prog.probes[0]
    assert cp.error is None
    assert cp.attach.kind == "usdt" and cp.attach.prog_type == "KPROBE"
    assert cp.attach.binary == PYTHON and cp.attach.locations == ((m.offset, m.semaphore_offset),)
    assert [(f.name, f.display) for f in cp.layout.fields] == [("filename", "string"), ("funcname", "string"),
                                                               ("lineno", "s")]
    text = prog.c_text
    assert "bpf_probe_read_user_str(v->f_filename, sizeof(v->f_filename), (void *)(ctx->bp))" in text
    assert "bpf_probe_read_user_str(v->f_funcname, sizeof(v->f_funcname), (void *)(ctx->r12))" in text
    assert "v->f_lineno = (s32)ctx->ax;" in text
    assert any("ref_ctr_offset" in n and f"0x{m.semaphore_offset:x}" in n for n in cp.notes)


@needs_python
def test_bpftrace_argument_numbers_and_memory_operands():
    # gc__start's only argument is -4@112(%rsp): a 4-byte signed read of user memory at sp+112.
    prog = _compile(f"usdt:{PYTHON}:python:gc__start", "arg0 >= 0")
    cp = prog.probes[0]
    assert cp.error is None, cp.error
    assert [f.name for f in cp.layout.fields] == ["generation", "arg0"]
    assert re.search(r"v->f_arg0 = \(s32\)ktui_read_u32\(ctx->sp \+ 112, &flt\);", prog.c_text), prog.c_text
    # An Arg by 1-based index ($arg2, kprobe_events style) is the marker's second argument.
    prog = _compile(f"usdt:{PYTHON}:python:function__entry", fetches=[Fetch("fn", Arg(index=2)), Fetch("k", Imm(7))])
    assert "(void *)(ctx->r12)" in prog.c_text and prog.probes[0].error is None


@needs_python
def test_marker_refusals_are_sentences():
    prog = _compile(f"usdt:{PYTHON}:python:function__entry", fetches=[Fetch("x", Arg(name="nosuch"))])
    assert "USDT marker python:function__entry has no argument nosuch (its arguments: filename, funcname, lineno)" \
        in prog.probes[0].error
    prog = _compile(f"usdt:{PYTHON}:python:function__entry", "arg7 == 1")
    assert "unknown name 'arg7'" in prog.probes[0].error
    prog = _compile(f"usdt:{PYTHON}:python:nosuch")
    assert "has no USDT marker python:nosuch" in prog.probes[0].error
    prog = _compile("usdt:/bin/true:x")
    assert "has no USDT markers" in prog.probes[0].error


def test_perf_events_compile_to_sampling_plans():
    prog = _compile("software:page-faults:1")
    cp = prog.probes[0]
    assert cp.error is None
    a = cp.attach
    assert (a.kind, a.ev_type, a.ev_config, a.sample_period, a.sample_freq, a.cpu) == ("perf_event", 1, 2, 1, 0, -1)
    assert "ktui_stacks.get_stackid(ctx, 0)" in prog.c_text  # sampled with kernel stacks
    a = _compile("h:cycles:5000").probes[0].attach
    assert (a.ev_type, a.ev_config, a.sample_period) == (0, 0, 5000)


def test_a_hardware_event_this_machine_cannot_sample_says_why():
    from ktui.perfopen import hardware_event_status

    ok, why = hardware_event_status(3)
    cp = _compile("hardware:cache-misses").probes[0]
    if ok:
        assert cp.error is None
    else:
        assert cp.error.endswith(f"hardware:cache-misses:1000000 cannot be sampled on this machine: {why}; "
                                 "`ktui doctor` lists the hardware events this machine offers")
