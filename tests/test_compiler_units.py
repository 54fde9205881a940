"""Compiler decisions without loading anything: fallbacks, attach plans, filters to C."""

from __future__ import annotations

import os

import pytest

from ktui.compiler import KernelFacts, compile_session
from ktui.compiler.fallback import syscall_name
from ktui.compiler.filter_codegen import Operand, filter_condition
from ktui.errors import KtuiError
from ktui.probes.filter import parse_filter
from ktui.probes.model import Action, ActionKind, Arg, Fetch, Probe, ProbeKind, Retval, ValueType

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="tracefs and BTF details need root")
NOTHING = KernelFacts(kprobes=False, fentry=False, fentry_reason="EPERM")
KPROBES = KernelFacts(kprobes=True, fentry=False, fentry_reason="EPERM")
FENTRY = KernelFacts(kprobes=False, fentry=True)


def _c(text: str, names=None) -> str:
    names = names or {"comm": Operand("v->hdr.comm", "string", size=16), "pid": Operand("v->hdr.pid", "int"),
                      "ret": Operand("v->f_ret", "int", signed=True), "s": Operand("v->f_s", "string", size=64)}
    return filter_condition(parse_filter(text), lambda n: names[n])


def test_filters_become_plain_comparisons():
    assert _c("pid == 42") == "((u64)v->hdr.pid == (u64)42)"
    assert _c("ret < -2") == "((s64)v->f_ret < (s64)(-2LL))"
    assert _c("pid > 18446744073709551615") == "((u64)v->hdr.pid > (u64)18446744073709551615ULL)"
    assert _c("!(pid != 1) || ret >= 0 and pid <= 9") == (
        "(!((u64)v->hdr.pid != (u64)1) || (((s64)v->f_ret >= (s64)0) && ((u64)v->hdr.pid <= (u64)9)))")
    assert _c('comm == "sh"') == (
        "(((KTUI_BYTE(v->hdr.comm, 0) ^ 's') | (KTUI_BYTE(v->hdr.comm, 1) ^ 'h') | KTUI_BYTE(v->hdr.comm, 2)) == 0)")
    assert _c('comm =~ "a*"') == "(((KTUI_BYTE(v->hdr.comm, 0) ^ 'a')) == 0)"
    assert _c('comm != "*/"') == (
        "!(((KTUI_BYTE(v->hdr.comm, 0) ^ 42) | (KTUI_BYTE(v->hdr.comm, 1) ^ 47) | KTUI_BYTE(v->hdr.comm, 2)) == 0)")
    assert _c('s == comm') == "ktui_str_eq(v->f_s, v->hdr.comm, 16)"


def test_strings_longer_than_the_stored_field_are_refused_in_one_sentence():
    # 16 characters do not fit comm[16] with its NUL: such a filter could never match, and says so
    for flt in ('comm == "0123456789abcdef"', 'comm =~ "0123456789abcdef*"'):
        with pytest.raises(KtuiError, match="comm holds at most 15 bytes and the literal has 16, so it can never match"):
            _c(flt)
    assert _c('comm == "0123456789abcde"') != "0"
    assert _c('comm =~ "*"') == "1"


def test_syscall_names():
    assert syscall_name("__x64_sys_getppid") == "getppid"
    assert syscall_name("do_sys_openat2") == "openat2"
    assert syscall_name("ksys_read") == "read"
    assert syscall_name("vfs_read") is None


@needs_root
def test_placement_follows_what_the_kernel_has():
    spec = [Probe(ProbeKind.KPROBE, "do_sys_openat2", fetches=[Fetch("dfd", Arg(name="dfd"))]),
            Probe(ProbeKind.KRETPROBE, "vfs_read", maxactive=20)]
    with_kprobes = compile_session(spec, facts=KPROBES)
    assert [cp.attach.kind for cp in with_kprobes.probes] == ["kprobe", "kretprobe"]
    assert with_kprobes.probes[1].attach.maxactive == 20 and not any(cp.notes or cp.error for cp in with_kprobes.probes)
    with_fentry = compile_session(spec, facts=FENTRY)
    assert [cp.attach.kind for cp in with_fentry.probes] == ["kfunc", "kretfunc"]
    assert [cp.fn_name for cp in with_fentry.probes] == ["kfunc__do_sys_openat2", "kretfunc__vfs_read"]
    assert "using fentry/fexit instead" in with_fentry.probes[0].notes[0]
    neither = compile_session(spec, facts=NOTHING)
    assert neither.probes[0].attach.event == "syscalls:sys_enter_openat2" and neither.probes[0].error is None
    assert neither.probes[1].attach.kind == "kretprobe" and "cannot be placed here" in neither.probes[1].error
    native = compile_session(spec, facts=NOTHING, fallback=False)
    assert [cp.attach.kind for cp in native.probes] == ["kprobe", "kretprobe"]


@needs_root
def test_uprobe_plans_carry_the_target_process_and_entry_helpers():
    probes = [Probe(ProbeKind.URETPROBE, "readline", binary="/bin/bash",
                    fetches=[Fetch("p", Arg(index=1)), Fetch("line", Retval(), ValueType.parse("ustring"))])]
    prog = compile_session(probes, target_pid=1234, facts=NOTHING)
    cp = prog.probes[0]
    assert prog.target_pid == 1234
    assert [(p.kind, p.fn_name, p.pid, p.binary, p.sym) for p in cp.attach_plans] == [
        ("uprobe", "ktui_fn_0_entry", 1234, "/bin/bash", "readline"),
        ("uretprobe", "ktui_fn_0", 1234, "/bin/bash", "readline")]
    assert cp.maps == {"ring": "ktui_ring_0", "start": "ktui_start_0", "entries": "ktui_entries"}


@needs_root
def test_perf_plans_and_aggregation_maps():
    probes = [Probe(ProbeKind.PROFILE, "", frequency=99, actions=[Action(ActionKind.STACKS, user_stack=True)]),
              Probe(ProbeKind.INTERVAL, "", period_ns=250_000_000, actions=[Action(ActionKind.COUNT)]),
              Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_read", fetches=[Fetch("count", Arg(name="count"))],
                    actions=[Action(ActionKind.HIST, value="count", scale="linear", lo=0, hi=100, step=10)])]
    prog = compile_session(probes, facts=NOTHING)
    prof, tick, hist = prog.probes
    assert (prof.attach.kind, prof.attach.ev_type, prof.attach.ev_config, prof.attach.sample_freq) == ("perf_event", 1, 0, 99)
    assert (tick.attach.sample_period, tick.attach.cpu) == (250_000_000, 0)
    assert prof.maps == {"stacks": "ktui_stackcount_0"} and prof.ring is None and prog.uses_stacks
    # a count by nothing is the probe's hits (less filtered) in ktui_counters: no map, no code
    assert tick.maps == {} and tick.counts == [{"map": None, "key": ()}]
    assert "ktui_count_1" not in prog.c_text
    assert hist.hist == {"map": "ktui_hist_2", "value": "count", "scale": "linear", "lo": 0, "hi": 100, "step": 10,
                         "buckets": 12}


def test_bad_input_is_a_sentence():
    with pytest.raises(KtuiError, match="power of two"):
        compile_session([Probe(ProbeKind.PROFILE, "", frequency=99)], ring_pages=100, facts=NOTHING)
    with pytest.raises(KtuiError, match="no probes"):
        compile_session([], facts=NOTHING)
    prog = compile_session([Probe(ProbeKind.PROFILE, "", frequency=0)], facts=NOTHING)
    assert prog.probes[0].attach.kind == "none" and "frequency" in prog.probes[0].error


def test_header_values_under_another_name_get_their_own_column():
    from ktui.probes.model import Builtin

    probes = [Probe(ProbeKind.PROFILE, "", frequency=9, fetches=[
        Fetch("who", Builtin("comm"), ValueType.parse("string")), Fetch("comm", Builtin("comm")),
        Fetch("stack", Builtin("kstack")), Fetch("thread", Builtin("tid"))])]
    cp = compile_session(probes, facts=NOTHING).probes[0]
    assert [(f.name, f.dtype) for f in cp.layout.fields] == [("who", "S64"), ("stack", "<i4"), ("thread", "<u4")]


@needs_root
def test_maxactive_adds_the_entry_helper_that_makes_missed_returns_countable():
    plain, counted = compile_session([Probe(ProbeKind.KRETPROBE, "vfs_read"),
                                      Probe(ProbeKind.KRETPROBE, "vfs_read", maxactive=50)], facts=KPROBES).probes
    assert plain.helpers == [] and "entries" not in plain.maps
    assert [h.kind for h in counted.helpers] == ["kprobe"] and counted.maps["entries"] == "ktui_entries"
    assert counted.attach.maxactive == 50


def test_catalog_verdicts_explain_functions_that_cannot_be_probed():
    class Entry:
        def __init__(self, verdict, reason):
            self.traceability, self.traceability_reason, self.args, self.return_type = verdict, reason, [], "int"

    class Catalog:
        def lookup(self, name):
            return {"kprobe:hidden_fn": Entry("notrace", "absent from available_filter_functions"),
                    "kprobe:fine_fn": Entry("traceable", "")}.get(name)

    probes = [Probe(ProbeKind.KPROBE, "hidden_fn"), Probe(ProbeKind.KPROBE, "fine_fn"), Probe(ProbeKind.KPROBE, "nope_fn")]
    hidden, fine, nope = compile_session(probes, Catalog(), facts=KPROBES).probes
    assert hidden.error == ("kprobe:hidden_fn cannot be attached: the catalog says hidden_fn is notrace "
                            "(absent from available_filter_functions)")
    assert hidden.attach.kind == "kprobe" and fine.error is None
    # a name the kernel lacks is refused before anything compiles: no code at all
    assert nope.error == "probe 2 (kprobe:nope_fn): there is no kernel function nope_fn in this kernel."
    assert nope.attach.kind == "none"
