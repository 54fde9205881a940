"""parse_spec: the three ways people write probes, told apart, and the seed examples end to end."""

from __future__ import annotations

import re

import pytest
from fake_catalog import fake_kernel
from hypothesis import given, settings
from hypothesis import strategies as st

from ktui.errors import KtuiError, UsageError
from ktui.probes.filter import check_filter, parse_filter
from ktui.probes.kprobe_events import X86_64_REGISTERS
from ktui.probes.model import (
    BUILTINS,
    Action,
    ActionKind,
    Arg,
    Builtin,
    Deref,
    Fetch,
    Member,
    Probe,
    ProbeKind,
    Reg,
    Retval,
    SymAddr,
)
from ktui.probes.spec import MAX_SPEC, parse_spec, spec_form

K = ProbeKind

SEED_LINE = ("p:myprobe tcp_select_initial_window sk=+0(%di):x64 space=%si:s32 mss=%dx:u32 rcv_wnd=+0(%cx):u32 "
             "window_clamp=+0(%r8):u32 wscale_ok=%r9:s32 rsv_wscale=+0(+0(%sp)):u8 init_rcv_wnd=+4(%sp):u32")


@pytest.mark.parametrize("text, form", [
    ("kprobe:do_sys_openat2", "bpftrace"),
    ("p:hz:99", "bpftrace"),  # bpftrace's short profile name: no space, so not a kprobe_events line
    ("p:99", "bpftrace"),
    ("i:s:1", "bpftrace"),
    ("t:sched:sched_switch", "bpftrace"),
    ("kprobe:a,kprobe:b", "bpftrace"),
    ("p:hz:99, i:s:1", "bpftrace"),
    ('kprobe:a { printf("%d", pid); }', "bpftrace"),
    ('uprobe:/usr/lib/libc(1).so:malloc', "bpftrace"),
    ("p:1ev do_sys_open", "kprobe_events"),
    ("p:myprobe do_sys_open", "kprobe_events"),
    ("p do_sys_open", "kprobe_events"),
    ("  p:grp/ev do_sys_open %di", "kprobe_events"),
    ("r:myretprobe do_sys_open $retval", "kprobe_events"),
    ("r100 vfs_read", "kprobe_events"),
    ("-:myprobe", "kprobe_events"),
    (SEED_LINE, "kprobe_events"),
    ('kernel.function("ip_rcv")', "systemtap"),
    ("timer.ms(200)", "systemtap"),
    ("timer.profile", "systemtap"),
    ("syscall.openat", "systemtap"),
    ("begin", "systemtap"),
    ("end", "systemtap"),
    ('probe kernel.function("ip_rcv") { log("hit it") }', "systemtap"),
    ("# my script\nprobe begin { }", "systemtap"),
    ("global n\nprobe timer.s(1) { }", "systemtap"),
])
def test_forms_are_told_apart(text, form):
    assert spec_form(text) == form


def test_bpftrace_list_with_spaces():
    assert [(p.kind, p.frequency, p.period_ns) for p in parse_spec("p:hz:99, i:s:1")] == [
        (K.PROFILE, 99, 0), (K.INTERVAL, 0, 1_000_000_000)]


def test_each_form_dispatches():
    assert parse_spec("kprobe:ip_rcv") == [Probe(K.KPROBE, "ip_rcv", source="kprobe:ip_rcv")]
    assert parse_spec("p:hz:99") == [Probe(K.PROFILE, "", frequency=99, source="p:hz:99")]
    assert parse_spec("p ip_rcv") == [Probe(K.KPROBE, "ip_rcv", name="p_ip_rcv_0", source="p ip_rcv")]
    assert parse_spec('kernel.function("ip_rcv")') == [
        Probe(K.KPROBE, "ip_rcv", source='kernel.function("ip_rcv")')]


@pytest.mark.parametrize("text, message", [
    ("", "the probe spec is empty: write one like kprobe:do_sys_openat2"),
    ("   ", "the probe spec is empty: write one like kprobe:do_sys_openat2"),
    ("-:myprobe", "'-:myprobe' removes a kprobe event; that is not a probe, and ktui removes its own probes when it stops"),
    ("begin", "'begin' is not a probe in ktui: it marks the start and end of a session itself"),
])
def test_refusals(text, message):
    with pytest.raises(UsageError) as info:
        parse_spec(text)
    assert str(info.value) == message


def test_too_long():
    with pytest.raises(UsageError, match=f"longer than {MAX_SPEC}"):
        parse_spec("kprobe:" + "a" * MAX_SPEC)


# ---------------------------------------------------------------------------
# The seed examples (../shared/seeds/), each in the forms people wrote them

def test_seed_ip_rcv_each_call():
    """A probe that reports each call of ip_rcv: bpftrace, kprobe_events and SystemTap agree on the point."""
    for text in ("kprobe:ip_rcv", "p ip_rcv", 'kernel.function("ip_rcv")',
                 'probe kernel.function("ip_rcv") { log("hit it") }'):
        (probe,) = parse_spec(text)
        assert (probe.kind, probe.target, probe.actions) == (K.KPROBE, "ip_rcv", [Action(ActionKind.STREAM)])


def test_seed_fork_path_arguments_resolved_by_catalog():
    """The fork path's arguments: kernel_clone here, copy_process's four by name with $$parms."""
    cat = fake_kernel()
    (probe,) = parse_spec('probe kernel.function("copy_process") { printf("%s\\n", $$parms) }', cat)
    assert [f.name for f in probe.fetches] == ["pid", "trace", "node", "args"]
    assert probe.fetches[0] == Fetch("pid", Arg(index=1, name="pid"))
    (probe,) = parse_spec('probe kernel.function("kernel_clone") { printf("%s %d", execname(), $$parms) }', cat)
    assert probe.fetches == [Fetch("comm", Builtin("comm")), Fetch("args", Arg(index=1, name="args"))]
    # The glob people type for "the fork path", expanded by the catalog.
    names = [p.target for p in parse_spec("kprobe:*fork*", cat)]
    assert "__do_sys_fork" in names and "kernel_clone" not in names


def test_seed_negative_open_returns_and_missed_instances():
    """A return probe on the open path, only negative returns, with maxactive so missed instances are counted."""
    (stap,) = parse_spec('probe kernel.function("do_sys_openat2").return.maxactive(1) '
                         '{ if ($return < 0) printf("%d\\n", $return) }')
    (kpe,) = parse_spec("r1:open_ret do_sys_openat2 ret=$retval:s64")
    assert (stap.kind, stap.target, stap.maxactive, stap.filter) == (K.KRETPROBE, "do_sys_openat2", 1, "retval < 0")
    assert (kpe.kind, kpe.target, kpe.maxactive, kpe.fetches[0].expr) == (K.KRETPROBE, "do_sys_openat2", 1, Retval())
    check_filter(parse_filter("ret < 0"), {f.name: "int" for f in kpe.fetches})


def test_seed_per_cpu_schedule_count():
    (probe,) = parse_spec('global n probe kernel.function("schedule") { n[cpu()]++ }')
    assert (probe.kind, probe.target, probe.actions) == (K.KPROBE, "schedule", [Action(ActionKind.COUNT, key=("cpu",))])


@pytest.mark.parametrize("text", [
    'kernel.function("ip_rcv\\n")', 'kernel.function("ip_rcv;INJECTED()")', "kprobe:ab\u00e9",
    "kprobe:a\nINJECTED()", 'process("/bin/ls\\n").function("main")', "p f x=%di;INJECTED()",
    'probe kernel.function("f") { printf("%s", $a->b;c) }', "t:sched:sched_switch\nINJECTED()", "u:/bin/a\x01:main",
])
def test_hostile_text_never_reaches_the_model(text):
    with pytest.raises(KtuiError):
        parse_spec(text)


def test_seed_kprobe_events_line():
    (probe,) = parse_spec(SEED_LINE)
    assert probe.name == "myprobe" and len(probe.fetches) == 8
    assert [str(f.type) for f in probe.fetches] == ["x64", "s32", "u32", "u32", "u32", "s32", "u8", "u32"]


# ---------------------------------------------------------------------------

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]*\Z")


def _expr_is_clean(expr) -> bool:
    """Every string inside a fetch expression is a plain identifier or symbol: nothing else can reach C."""
    match expr:
        case Reg(name):
            return name in X86_64_REGISTERS
        case Arg(_, name):
            return name is None or bool(IDENT.match(name))
        case SymAddr(symbol, _, _):
            return symbol is None or bool(re.match(r"[A-Za-z_.$][A-Za-z0-9_.$]*\Z", symbol))
        case Deref(_, inner, _):
            return _expr_is_clean(inner)
        case Member(base, path):
            return _expr_is_clean(base) and all(IDENT.match(p) for p in path)
        case Builtin(name):
            return name in BUILTINS
    return True


def assert_clean(probe: Probe) -> None:
    assert PRINTABLE_ASCII.match(probe.target), probe.target
    assert IDENT.match(probe.name), probe.name
    assert probe.group == "" or IDENT.match(probe.group)
    assert probe.module is None or re.match(r"[A-Za-z_][A-Za-z0-9_-]*\Z", probe.module)
    assert probe.binary is None or not any(ord(c) < 32 or c == "\x7f" for c in probe.binary)
    for f in probe.fetches:
        assert IDENT.match(f.name) and _expr_is_clean(f.expr), f
    for a in probe.actions:
        assert all(IDENT.match(k) for k in a.key)
    if probe.filter:
        parse_filter(probe.filter)


ANY_ATOMS = st.sampled_from([
    "\n", "\u00e9", '\\n"', ";", "*/", "/*", "INJECTED()", "p", "r", "r2", ":", " ", "kprobe", "t", "hz", "99", "ev", "do_sys_open", "%di", "+0(", ")", "$retval", ":u32",
    "kernel", ".", "function", "(", '"ip_rcv"', "return", "timer", "ms", "200", "probe", "{", "}", "execname()",
    "begin", ",", "*", "-", "=", "$comm", "@", "\\", "\n",
])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=100), st.lists(ANY_ATOMS, max_size=25).map("".join)))
def test_any_text_gives_probes_or_a_sentence(text):
    for catalog in (None, fake_kernel()):
        try:
            probes = parse_spec(text, catalog)
        except KtuiError:
            continue
        assert isinstance(probes, list) and probes
        for p in probes:
            assert Probe.from_dict(p.to_dict()) == p
            assert_clean(p)
