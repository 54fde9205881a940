"""SystemTap points, handler values and small scripts -> exact Probes; what cannot be mapped is refused."""

from __future__ import annotations

import pytest
from fake_catalog import fake_kernel
from hypothesis import given, settings
from hypothesis import strategies as st

from ktui.errors import KtuiError, ParseError, UsageError
from ktui.probes.filter import check_filter, parse_filter
from ktui.probes.model import (
    STRING,
    Action,
    ActionKind,
    Arg,
    Builtin,
    Fetch,
    Member,
    Probe,
    ProbeKind,
    Retval,
    ValueType,
)
from ktui.probes.systemtap import parse_stap_values, parse_systemtap, parse_systemtap_script

K = ProbeKind


def P(kind, target="", source="", **kw) -> Probe:
    return Probe(kind, target, source=source, **kw)


@pytest.mark.parametrize("text, expected", [
    ('kernel.function("ip_rcv")', P(K.KPROBE, "ip_rcv")),
    ('kernel.function("sys_sync").call', P(K.KPROBE, "sys_sync")),
    ('kernel.function("sys_sync").return', P(K.KRETPROBE, "sys_sync")),
    ('kernel.function("do_sys_open").return.maxactive(1)', P(K.KRETPROBE, "do_sys_open", maxactive=1)),
    ('kernel.function("_do_fork@kernel/fork.c")', P(K.KPROBE, "_do_fork")),
    ('kernel.function("ip_rcv")?', P(K.KPROBE, "ip_rcv")),
    ('module("ext4").function("ext4_file_write_iter")', P(K.KPROBE, "ext4_file_write_iter", module="ext4")),
    ('module("ext3").function("ext3_file_write").return', P(K.KRETPROBE, "ext3_file_write", module="ext3")),
    ('process("/usr/bin/ls").function("main")', P(K.UPROBE, "main", binary="/usr/bin/ls")),
    ('process("/usr/bin/ls").function("main").return', P(K.URETPROBE, "main", binary="/usr/bin/ls")),
    ('kernel.trace("sched:sched_switch")', P(K.TRACEPOINT, "sched:sched_switch")),
    ("syscall.openat", P(K.TRACEPOINT, "syscalls:sys_enter_openat")),
    ("syscall.openat.return", P(K.TRACEPOINT, "syscalls:sys_exit_openat")),
    ("nd_syscall.read", P(K.TRACEPOINT, "syscalls:sys_enter_read")),
    ("timer.ms(200)", P(K.INTERVAL, period_ns=200_000_000)),
    ("timer.s(1)", P(K.INTERVAL, period_ns=1_000_000_000)),
    ("timer.sec(2)", P(K.INTERVAL, period_ns=2_000_000_000)),
    ("timer.us(500)", P(K.INTERVAL, period_ns=500_000)),
    ("timer.ns(100000)", P(K.INTERVAL, period_ns=100_000)),
    ("timer.hz(10)", P(K.INTERVAL, period_ns=100_000_000)),
    ("timer.profile", P(K.PROFILE, frequency=100)),
    ("timer.profile.tick", P(K.PROFILE, frequency=100)),
    ("perf.sw.cpu_clock", P(K.PROFILE, frequency=1000)),
    ("perf.sw.cpu_clock.sample(10000000)", P(K.PROFILE, frequency=100)),
])
def test_golden_points(text, expected):
    expected.source = text
    assert parse_systemtap(text) == [expected]


def test_point_list():
    probes = parse_systemtap('kernel.function("a"), kernel.function("b").return')
    assert [(p.kind, p.target) for p in probes] == [(K.KPROBE, "a"), (K.KRETPROBE, "b")]


@pytest.mark.parametrize("text, message", [
    ("begin", "'begin' is not a probe in ktui: it marks the start and end of a session itself"),
    ("end", "'end' is not a probe in ktui: it marks the start and end of a session itself"),
    ('kernel.function("*@kernel/fork.c:934")', "'kernel.function(\"*@kernel/fork.c:934\")': a line number "
     "(kernel/fork.c:934) makes it a statement probe, which needs DWARF line tables; ktui places function probes only"),
    ('kernel.statement("*@kernel/fork.c:934")', "'kernel.statement(\"*@kernel/fork.c:934\")': statement probes need "
     "DWARF line tables; ktui places function probes only"),
    ('kernel.function("x").inline', "'kernel.function(\"x\").inline': inlined instances need DWARF; ktui probes "
     "real function entries"),
    ('kernel.function("x").bogus', "'kernel.function(\"x\").bogus': unknown part '.bogus' (expected .call, .return "
     "or .return.maxactive(N))"),
    ('kernel.function("*fork*")', "'kernel.function(\"*fork*\")' is a glob; expanding globs needs the catalog of probe points"),
    ('kernel.trace("sched_switch")', "'kernel.trace(\"sched_switch\")': finding the category of tracepoint "
     "'sched_switch' needs the catalog (or write kernel.trace(\"CATEGORY:sched_switch\"))"),
    ("timer.jiffies(1000)", "'timer.jiffies(1000)': jiffies depend on the kernel's HZ; write timer.ms(N) instead"),
    ("timer.ms(200).randomize(50)", "'timer.ms(200).randomize(50)': randomized timers are not supported"),
    ("timer.ms(0)", "'timer.ms(0)': ms(...) takes a positive number"),
    ("perf.hw.cpu_cyclez", "'perf.hw.cpu_cyclez': 'cpu-cyclez' is not a hardware event (known: cpu-cycles, "
     "instructions, cache-references, cache-misses, branch-instructions, branch-misses, bus-cycles, "
     "frontend-stalls, backend-stalls, ref-cycles)"),
    ("perf.sw.page_faults.sample(0)", "'perf.sw.page_faults.sample(0)': sample(...) takes a positive number"),
    ('process("/bin/x").mark("a b")', "'process(\"/bin/x\").mark(\"a b\")': 'a b' is not a USDT provider or marker name"),
    ('process("/bin/x").provider("p").function("f")', "'process(\"/bin/x\").provider(\"p\").function(\"f\")': "
     "expected process(\"PATH\").mark(\"NAME\") (or process(\"PATH\").provider(\"P\").mark(\"NAME\"))"),
    ("vfs.read", "'vfs.read': the probe point 'vfs' is not one ktui can map (known: kernel.function, "
     "module().function, process().function, process().mark, kernel.trace, syscall.NAME, timer.*, perf.sw.*, perf.hw.*)"),
    ('process.function("main")', "'process.function(\"main\")': process.function needs a program path "
     "(process(\"/usr/bin/ls\")); ktui does not take a target process from -x/-c here"),
    ('module("ext4; x").function("f")', "'module(\"ext4; x\").function(\"f\")': 'ext4; x' is not a kernel module name"),
    ('process("/bin/x").statement("m")', "'process(\"/bin/x\").statement(\"m\")': process(...).statement is not "
     "supported (process(...).function(...) and process(...).mark(...) are)"),
    ('kernel.function("x").return.maxactive(5000)', "'kernel.function(\"x\").return.maxactive(5000)': maxactive 5000 "
     "is more than the kernel allows (4096)"),
])
def test_refused_points(text, message):
    with pytest.raises(UsageError) as info:
        parse_systemtap(text)
    assert str(info.value) == message


def test_glob_with_source_file_uses_catalog_source_locations():
    cat = fake_kernel()
    probes = parse_systemtap('kernel.function("*fork*@kernel/fork.c").return', cat)
    assert sorted(p.target for p in probes) == ["__do_sys_fork", "__x64_sys_vfork"]
    assert all(p.kind is K.KRETPROBE for p in probes)
    assert [p.target for p in parse_systemtap('kernel.function("*fork*")', cat)] == [
        "__do_sys_fork", "__x64_sys_vfork", "sched_fork", "anon_vma_fork"]


def test_glob_with_source_file_refused_without_source_locations():
    cat = fake_kernel()
    for e in cat.entries:
        e.source = None
    with pytest.raises(UsageError) as info:
        parse_systemtap('kernel.function("*fork*@kernel/fork.c").return', cat)
    assert str(info.value) == (
        "'kernel.function(\"*fork*@kernel/fork.c\").return' limits the match to the source file kernel/fork.c, and the "
        "catalog has no source locations (that needs the kernel's DWARF debuginfo); drop @kernel/fork.c to probe "
        "every match, or load debuginfo")


def test_real_catalog_without_dwarf_refuses_a_source_file_filter():
    """This kernel's catalog has BTF but no DWARF: a glob limited to a source file is refused, not widened."""
    catalog_mod = pytest.importorskip("ktui.catalog")
    try:
        cat = catalog_mod.Catalog.load()
    except (KtuiError, OSError) as err:
        pytest.skip(f"no kernel catalog here: {err}")
    if cat.lookup("kprobe:kernel_clone") is None or cat.lookup("kprobe:kernel_clone").source is not None:
        pytest.skip("this catalog has source locations")
    with pytest.raises(UsageError, match="the catalog has no source locations"):
        parse_systemtap('kernel.function("*fork*@kernel/fork.c").return', cat)
    probes = parse_systemtap('kernel.function("*fork*").return', cat)
    assert probes and all(p.kind is K.KRETPROBE and "fork" in p.target for p in probes)


def test_real_catalog_gives_parms_and_tracepoint_categories():
    """$$parms from this kernel's BTF; kernel.trace's category and syscall globs from its tracefs."""
    catalog_mod = pytest.importorskip("ktui.catalog")
    try:
        cat = catalog_mod.Catalog.load()
    except (KtuiError, OSError) as err:
        pytest.skip(f"no kernel catalog here: {err}")
    entry = cat.lookup("kprobe:kernel_clone")
    if entry is None or not entry.args:
        pytest.skip("this kernel's catalog has no BTF arguments for kernel_clone")
    (probe,) = parse_systemtap('probe kernel.function("kernel_clone") { printf("%s", $$parms) }', cat)
    assert probe.fetches == [Fetch(a.name, Arg(index=i + 1, name=a.name)) for i, a in enumerate(entry.args)]
    (tp,) = parse_systemtap('probe kernel.trace("sched_switch") { printf("%s", $$parms) }', cat)
    fields = cat.lookup("tracepoint:sched:sched_switch").args
    assert tp.target == "sched:sched_switch"
    assert [f.name for f in tp.fetches] == [a.name for a in fields]
    enters = parse_systemtap("syscall.getppid, syscall.open*", cat)
    assert enters[0].target == "syscalls:sys_enter_getppid"
    assert {p.target for p in enters[1:]} >= {"syscalls:sys_enter_openat"}


def test_trace_and_syscall_globs_through_catalog():
    cat = fake_kernel()
    assert [p.target for p in parse_systemtap('kernel.trace("sched_switch")', cat)] == ["sched:sched_switch"]
    assert [p.target for p in parse_systemtap('kernel.trace("sched:*")', cat)] == [
        "sched:sched_switch", "sched:sched_wakeup", "sched:sched_process_fork"]
    assert [p.target for p in parse_systemtap("syscall.open*", cat)] == [
        "syscalls:sys_enter_openat", "syscalls:sys_enter_open"]
    assert [(p.module, p.target) for p in parse_systemtap('module("ext*").function("*read*")', cat)] == [
        ("ext4", "ext4_file_read_iter")]


# ---------------------------------------------------------------------------
# Handler values

def test_values_map_to_fetches():
    fetches, actions = parse_stap_values(
        "execname(), pid(), tid(), uid(), gid(), cpu(), pp(), ppfunc(), $return, $skb->len, $file->f_path->dentry, "
        "kernel_string($name), user_string($buf)", is_return=True)
    assert fetches == [
        Fetch("comm", Builtin("comm")), Fetch("pid", Builtin("pid")), Fetch("tid", Builtin("tid")),
        Fetch("uid", Builtin("uid")), Fetch("gid", Builtin("gid")), Fetch("cpu", Builtin("cpu")),
        Fetch("probe_func", Builtin("probe_func")), Fetch("retval", Retval()),
        Fetch("skb_len", Member(Arg(name="skb"), ("len",))),
        Fetch("file_f_path_dentry", Member(Arg(name="file"), ("f_path", "dentry"))),
        Fetch("name", Arg(name="name"), STRING), Fetch("buf", Arg(name="buf"), ValueType("ustring", 0)),
    ]
    assert actions == []


def test_arguments_named_like_builtins_keep_their_own_name():
    fetches, _ = parse_stap_values("pid(), $pid, $pid, $comm->x, kernel_string($name), $name")
    assert fetches == [Fetch("pid", Builtin("pid")), Fetch("pid_arg", Arg(name="pid")),
                       Fetch("comm_x", Member(Arg(name="comm"), ("x",))), Fetch("name", Arg(name="name"), STRING),
                       Fetch("name_2", Arg(name="name"))]
    (p,) = parse_systemtap('probe kernel.function("f") { if ($pid == 1 && pid() != 2) log("x") }')
    assert p.filter == "pid_arg == 1 && pid != 2"
    assert p.fetches == [Fetch("pid_arg", Arg(name="pid"))]


def test_backtraces_become_stack_actions():
    assert parse_stap_values("print_backtrace()") == ([], [Action(ActionKind.STACKS)])
    assert parse_stap_values("print_backtrace(), print_ubacktrace()") == (
        [], [Action(ActionKind.STACKS, kernel_stack=True, user_stack=True)])
    assert parse_stap_values("print_ubacktrace()") == (
        [], [Action(ActionKind.STACKS, kernel_stack=False, user_stack=True)])


def test_parms_need_catalog_args():
    cat = fake_kernel()
    args = cat.lookup("kprobe:copy_process").args
    fetches, _ = parse_stap_values("$$parms", entry_args=args)
    assert fetches == [Fetch("pid", Arg(index=1, name="pid")), Fetch("trace", Arg(index=2, name="trace")),
                       Fetch("node", Arg(index=3, name="node")), Fetch("args", Arg(index=4, name="args"))]
    with pytest.raises(ParseError, match=r"\$\$parms needs the catalog to know the arguments of kprobe:x"):
        parse_stap_values("$$parms", target="kprobe:x")


@pytest.mark.parametrize("text, message", [
    ("$return", "column 1: $return is only for a .return probe"),
    ("gettimeofday_s()", "column 1: the tapset function gettimeofday_s() cannot be mapped to a ktui fetch"),
    ("set_kernel_int(1, 2)", "column 1: set_kernel_int() changes kernel memory and cannot be mapped"),
    ("$1", "column 1: $1 is a command-line argument of stap; ktui has none"),
    ("@count(x)", "column 1: @count (statistics and @-functions) cannot be mapped"),
    ("$$locals", "column 1: $$locals cannot be mapped (known: $$parms, $$return)"),
    ("$p[0]", "column 3: array indexing of target variables cannot be mapped"),
    ("pid() pid()", "column 7: expected ',' between values but found 'pid'"),
    ("execname(", "column 10: expected ')' after execname( but found end of input"),
])
def test_value_refusals(text, message):
    with pytest.raises(KtuiError) as info:
        parse_stap_values(text)
    assert str(info.value) == message


# ---------------------------------------------------------------------------
# Scripts, including the seed examples

def test_seed_ip_rcv_hit_it():
    """Seed 000: 'probe kernel.function("ip_rcv") { log("hit it") }' -> each call of ip_rcv, streamed."""
    script = 'probe kernel.function("ip_rcv")\n{\n\tlog("hit it")\n}\n'
    assert parse_systemtap(script) == [P(K.KPROBE, "ip_rcv", source='kernel.function("ip_rcv")')]


def test_seed_ip_rcv_backtrace():
    result = parse_systemtap_script('probe kernel.function("ip_rcv") { print_backtrace(); exit()}')
    assert result.probes == [P(K.KPROBE, "ip_rcv", source='kernel.function("ip_rcv")',
                               actions=[Action(ActionKind.STACKS)])]
    assert result.notes == ["exit() is ignored: stop ktui yourself"]


def test_seed_fork_path_execname_ppfunc():
    """Seed 003: the fork path with execname() and ppfunc()."""
    script = 'probe kernel.function("_do_fork@kernel/fork.c"){\n    printf("%s: %s\\n", execname(), ppfunc());\n}'
    assert parse_systemtap(script) == [P(K.KPROBE, "_do_fork", source='kernel.function("_do_fork@kernel/fork.c")',
                                         fetches=[Fetch("comm", Builtin("comm")),
                                                  Fetch("probe_func", Builtin("probe_func"))])]


def test_fork_path_all_arguments_from_catalog():
    cat = fake_kernel()
    (probe,) = parse_systemtap('probe kernel.function("kernel_clone") { printf("%s %s\\n", execname(), $$parms) }',
                               cat)
    assert probe.fetches == [Fetch("comm", Builtin("comm")), Fetch("args", Arg(index=1, name="args"))]


def test_tracepoint_parms_are_fields_by_name():
    (probe,) = parse_systemtap('probe kernel.trace("sched:sched_switch") { printf("%s %d", $$parms) }', fake_kernel())
    assert probe.fetches == [Fetch("prev_comm", Arg(name="prev_comm")), Fetch("prev_pid", Arg(name="prev_pid"))]


def test_seed_negative_returns_with_maxactive():
    """Seed 004: a return probe on open reporting only negative returns; maxactive 1 so misses show."""
    script = ('probe kernel.function("do_sys_openat2").return.maxactive(1) {\n'
              '  if ($return < 0) printf("open returns %d\\n", $return)\n}')
    (probe,) = parse_systemtap(script)
    assert probe == P(K.KRETPROBE, "do_sys_openat2", maxactive=1, filter="retval < 0",
                      fetches=[Fetch("retval", Retval())],
                      source='kernel.function("do_sys_openat2").return.maxactive(1)')
    check_filter(parse_filter(probe.filter), {"retval": "int"})


def test_seed_per_cpu_count_of_schedule():
    """Seed 004: count schedule() calls per CPU."""
    (probe,) = parse_systemtap('global n\nprobe kernel.function("schedule") { n[cpu()]++ }')
    assert probe == P(K.KPROBE, "schedule", source='kernel.function("schedule")',
                      fetches=[Fetch("cpu", Builtin("cpu"))], actions=[Action(ActionKind.COUNT, key=("cpu",))])


def test_script_with_begin_end_and_several_probes():
    script = '''
    # comment
    probe begin { printf("Tracing... Ctrl-C to end\\n") }
    probe kernel.function("a"), kernel.function("b").return {
        if (execname() == "bash" && pid() != 1) { printf("%d %s\\n", pid(), execname()) }
    }
    probe end { printf("bye") }
    '''
    result = parse_systemtap_script(script)
    assert [(p.kind, p.target) for p in result.probes] == [(K.KPROBE, "a"), (K.KRETPROBE, "b")]
    for p in result.probes:
        assert p.filter == 'comm == "bash" && pid != 1'
        assert [f.name for f in p.fetches] == ["pid", "comm"]
    assert result.notes == ["probe begin skipped: ktui marks the session's start and end itself",
                            "probe end skipped: ktui marks the session's start and end itself"]


def test_condition_on_argument_and_member():
    (p,) = parse_systemtap('probe kernel.function("f") { if ($flags > 0 && $skb->len >= 100) print_backtrace() }')
    assert p.filter == "flags > 0 && skb_len >= 100"
    assert p.fetches == [Fetch("skb_len", Member(Arg(name="skb"), ("len",)))]
    assert p.actions == [Action(ActionKind.STACKS)]


@pytest.mark.parametrize("script, message", [
    ('probe kernel.function("x") { %{ foo %} }', "guru-mode embedded C (%{ ... %}) cannot be mapped: ktui never puts "
     "user-written C into a kernel program"),
    ('%{ #include <linux/x.h> %}', "guru-mode embedded C (%{ ... %}) cannot be mapped: ktui never puts "
     "user-written C into a kernel program"),
    ('probe kernel.function("x") { set_kernel_int(1, 2) }', "column 30: set_kernel_int() changes kernel memory and "
     "cannot be mapped"),
    ('function f() { return 1 } probe kernel.function("x") {}', "column 1: 'function' definitions cannot be mapped: "
     "ktui runs no script code"),
    ('probe kernel.function("x") { foreach (k in a) print(k) }', "column 30: loops ('foreach') cannot be mapped"),
    ('probe kernel.function("x") { a = 1 }', "column 30: assignments to script variables ('a') cannot be mapped"),
    ('probe kernel.function("x") { $x = 1 }', "column 30: writing $x would change the kernel; ktui never does"),
    ('probe kernel.function("x") { if (pid() == 1) log("a") else log("b") }', "column 55: 'else' cannot be mapped: "
     "a ktui probe keeps or drops each event"),
    ('probe kernel.function("x") { if (pid() + 1 > 2) log("a") }', "column 40: '+' cannot be mapped into a ktui "
     "filter (comparisons, &&, ||, ! only)"),
    ('probe kernel.function("x") { if (gettimeofday_s() > 2) log("a") }', "column 34: the tapset function "
     "gettimeofday_s() cannot be mapped to a ktui fetch"),
    ('probe kernel.function("x") { log("a")', "column 38: expected '}' to close the probe's block but found end of input"),
    ('probe kernel.function("x") if (pid() == 1) { }', "column 28: probe-point conditions ('if' after the point) "
     "cannot be mapped; put the if inside the block"),
    ("probe begin { log(\"x\") }", "the SystemTap script has no probe ktui can place"),
    ('probe kernel.function("x") { printf("%s", foo()) }', "column 43: the tapset function foo() cannot be mapped to "
     "a ktui fetch"),
    ('probe kernel.function("x") { /* open', "column 30: comment '/*' is never closed"),
])
def test_script_refusals(script, message):
    with pytest.raises(KtuiError) as info:
        parse_systemtap(script)
    assert str(info.value) == message


# ---------------------------------------------------------------------------

STAP_ATOMS = st.sampled_from([
    "probe", " ", "kernel", ".", "function", "(", ")", '"ip_rcv"', '"*fork*@kernel/fork.c"', "return", "{", "}",
    "printf", '"%s"', ",", "execname()", "pid()", "$return", "$skb", "->", "len", "if", "<", "0", "-1", "&&",
    "timer", "ms", "200", "begin", "end", "module", '"ext4"', "process", '"/bin/ls"', "syscall", "openat", ";",
    "print_backtrace()", "$$parms", "[", "]", "++", "cpu()", "%{", "/*", "*/", "#", "\n", "global", "x", "=",
])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=120), st.lists(STAP_ATOMS, max_size=40).map("".join)))
def test_any_text_gives_probes_or_a_sentence(text):
    for catalog in (None, fake_kernel()):
        try:
            probes = parse_systemtap(text, catalog)
        except KtuiError:
            continue
        assert probes
        for p in probes:
            assert Probe.from_dict(p.to_dict()) == p
            if p.filter:
                parse_filter(p.filter)


@settings(max_examples=200, deadline=None)
@given(st.lists(STAP_ATOMS, max_size=30).map("".join))
def test_any_values_give_fetches_or_a_sentence(text):
    try:
        fetches, actions = parse_stap_values(text, is_return=True, entry_args=fake_kernel().lookup("kprobe:ip_rcv").args)
    except KtuiError:
        return
    assert len({f.name for f in fetches}) == len(fetches)


def test_systemtap_marks_and_perf_events():
    import os

    from ktui.probes.model import ProbeKind as PK

    if os.path.exists("/usr/bin/python3.11"):
        (p,) = parse_systemtap('process("/usr/bin/python3.11").mark("function__entry")')
        assert (p.kind, p.binary, p.target) == (PK.USDT, "/usr/bin/python3.11", "function__entry")
        (p,) = parse_systemtap('process("/usr/bin/python3.11").provider("python").mark("line")')
        assert (p.kind, p.target) == (PK.USDT, "python:line")
    (p,) = parse_systemtap("perf.sw.page_faults.sample(10)")
    assert (p.kind, p.target, p.period) == (PK.SOFTWARE, "page-faults", 10)
    (p,) = parse_systemtap("perf.hw.cache_misses")
    assert (p.kind, p.target, p.period) == (PK.HARDWARE, "cache-misses", 1_000_000)
    (p,) = parse_systemtap("perf.sw.cpu_clock")  # still sampled by time, as before
    assert p.kind is PK.PROFILE
