"""Nothing a user types or a file holds becomes C; no helper that changes the system is
ever generated; any probe compiles or fails with a KtuiError, never another exception."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler_cases import CASES, FACTS_HERE, compile_case
from ktui.compiler import compile_session
from ktui.errors import KtuiError
from ktui.probes.model import (Action, ActionKind, Arg, Builtin, BUILTINS, Deref, Fetch, Imm, Member, Probe,
                               ProbeKind, Reg, Retval, StackPtr, StackSlot, SymAddr, ValueType)

FORBIDDEN = ("bpf_probe_write_user", "bpf_override_return", "bpf_send_signal")
CANARY = "INJECTED()"  # a bare identifier may become a symbol or function name; this call never may


def _code_only(c_text: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", c_text, flags=re.S))


def test_no_generated_program_uses_a_helper_that_changes_the_system():
    for case in CASES:
        text = compile_case(case).c_text
        for helper in FORBIDDEN:
            assert helper not in text, (case, helper)


nasty = st.sampled_from(["*/ INJECTED(); /*", "a\nINJECTED();", '"); INJECTED(); ("', "INJECTED", "x;INJECTED()"])
names = st.one_of(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), nasty,
                  st.sampled_from(["flags", "pid", "comm", "hdr", "ret", "latency", "filename", "dfd", "count"]))
types = st.one_of(st.none(), st.sampled_from(["u8", "s16", "x32", "u64", "string", "ustring", "symbol", "b3@1/8"]).map(
    ValueType.parse))
leaf = st.one_of(
    st.builds(Reg, st.one_of(st.sampled_from(["di", "si", "sp", "ax", "r9", "ip"]), names)),
    st.builds(Arg, st.one_of(st.none(), st.integers(1, 10)), st.one_of(st.none(), names)),
    st.just(Retval()), st.builds(StackSlot, st.integers(0, 20)), st.just(StackPtr()),
    st.builds(Imm, st.integers(-(1 << 63), (1 << 64) - 1)),
    st.builds(SymAddr, st.one_of(st.just("schedule"), names), st.integers(-64, 64), st.none()),
    st.builds(Builtin, st.one_of(st.sampled_from(BUILTINS), names)),
)
exprs = st.recursive(leaf, lambda inner: st.one_of(
    st.builds(Deref, st.integers(-4096, 4096), inner, st.booleans()),
    st.builds(Member, inner, st.lists(names, min_size=0, max_size=3).map(tuple))), max_leaves=4)
fetches = st.lists(st.builds(Fetch, names, exprs, types), max_size=5)
filters = st.one_of(st.just(""), st.text(max_size=30), st.sampled_from([
    'comm == "INJECTED"', "comm =~ \"*/INJECTED*\"", "ret < 0 && pid != 1", "latency > 10", "arg1 == 3",
    'filename == "a\\"b"', "flags & 1", "dfd == -1 || !(count > 9)"]))
actions = st.lists(st.builds(Action, st.sampled_from(list(ActionKind)), st.lists(names, max_size=2).map(tuple),
                             st.one_of(st.none(), names), st.sampled_from(["log2", "linear"]),
                             st.integers(-10, 10), st.integers(-10, 100), st.integers(1, 7)), max_size=3)
targets = st.one_of(names, st.sampled_from([
    "syscalls:sys_enter_openat", "sched:sched_switch", "sys_enter", "do_sys_openat2", "vfs_read", "readline",
    "__x64_sys_getppid", "nope:nope", "a:b:c", ""]))


@st.composite
def probes(draw):
    kind = draw(st.sampled_from(list(ProbeKind)))
    return Probe(kind, draw(targets), binary=draw(st.sampled_from([None, "/bin/bash", "x*/INJECTED"])),
                 fetches=draw(fetches), filter=draw(filters), actions=draw(actions),
                 maxactive=draw(st.integers(0, 100)), latency=draw(st.booleans()),
                 frequency=draw(st.integers(0, 1000)), period_ns=draw(st.integers(0, 10**9)),
                 name=draw(st.one_of(st.just(""), names)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(probes(), min_size=1, max_size=3), st.booleans())
def test_any_probe_compiles_or_fails_with_a_sentence(probe_list, fallback):
    try:
        prog = compile_session(probe_list, facts=FACTS_HERE, fallback=fallback)
    except KtuiError as err:
        assert str(err)
        return
    code = _code_only(prog.c_text)
    assert CANARY not in code
    for helper in FORBIDDEN:
        assert helper not in prog.c_text
    for cp in prog.probes:
        if cp.attach.kind == "none":
            assert cp.error
        else:
            assert cp.layout.record_size % 8 == 0
            assert f"int {cp.fn_name}(" in prog.c_text


# Mostly-valid probes: these compile, so the properties below are about real programs.
ident = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: s not in ("ts", "probe", "cpu", "pid", "tid", "uid", "kstack", "ustack", "flags", "comm", "hdr"))
good_leaf = st.one_of(st.builds(Reg, st.sampled_from(["di", "si", "dx", "cx", "r8", "r9", "sp", "ax", "ip"])),
                      st.builds(Arg, st.integers(1, 4)), st.builds(StackSlot, st.integers(0, 8)),  # vfs_read takes 4
                      st.builds(Imm, st.integers(-1000, 1000)))
good_expr = st.recursive(good_leaf, lambda inner: st.builds(Deref, st.integers(-64, 64), inner), max_leaves=3)
good_filters = st.sampled_from(["", 'comm == "INJECTED*/"', 'comm =~ "ab*"', "pid != 1 && !(cpu > 64)",
                                "uid == 0 || tid > 3", 'comm != "x\\"y"'])


@st.composite
def good_probes(draw):
    kind = draw(st.sampled_from([ProbeKind.KPROBE, ProbeKind.KRETPROBE, ProbeKind.UPROBE, ProbeKind.URETPROBE]))
    fetch_list = draw(st.lists(st.builds(Fetch, ident, good_expr, types), max_size=4, unique_by=lambda f: f.name))
    if kind.is_return:
        fetch_list = [f for f in fetch_list if not isinstance(f.expr, Arg)]
    return Probe(kind, "vfs_read" if not kind.is_user else "readline", binary="/bin/bash" if kind.is_user else None,
                 fetches=fetch_list, filter=draw(good_filters),
                 actions=[draw(st.sampled_from([Action(), Action(ActionKind.COUNT, key=("cpu",)),
                                                Action(ActionKind.STACKS)]))])


@settings(max_examples=60, deadline=None)
@given(st.lists(good_probes(), min_size=1, max_size=3))
def test_valid_probes_compile_without_user_text_in_code(probe_list):
    prog = compile_session(probe_list, facts=FACTS_HERE, fallback=False)
    assert all(cp.attach.kind != "none" for cp in prog.probes), [cp.error for cp in prog.probes]
    assert CANARY not in _code_only(prog.c_text)
