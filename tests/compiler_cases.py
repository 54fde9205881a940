"""Probe sets the compiler tests share: one per kind (golden C, verifier), and the seeds.

Not a test module itself (no test_ prefix): test_compiler_golden.py and
test_compiler_verify.py import it.
"""

from __future__ import annotations

from ktui.compiler import KernelFacts
from ktui.probes.model import (Action, ActionKind, Arg, Builtin, Deref, Fetch, Imm, Member, Probe, ProbeKind, Reg,
                               Retval, StackPtr, StackSlot, SymAddr, ValueType)

T = ValueType.parse

# This machine: no kprobes, fentry refused. Fixed so generated code does not depend on detection.
FACTS_HERE = KernelFacts(kprobes=False, fentry=False, fentry_reason="EPERM: Operation not permitted, a kernel policy")
FACTS_KPROBES = KernelFacts(kprobes=True, fentry=False, fentry_reason="EPERM")

KPROBE_EVENTS_SEED = ("p:myprobe tcp_select_initial_window sk=+0(%di):x64 space=%si:s32 mss=%dx:u32 "
                      "rcv_wnd=+0(%cx):u32 window_clamp=+0(%r8):u32 wscale_ok=%r9:s32 "
                      "rsv_wscale=+0(+0(%sp)):u8 init_rcv_wnd=+4(%sp):u32")


def tracepoint_probes() -> list[Probe]:
    return [
        Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_openat", fetches=[
            Fetch("dfd", Arg(name="dfd"), T("s32")), Fetch("filename", Arg(name="filename"), T("ustring")),
            Fetch("flags", Arg(name="flags"))], filter='comm =~ "ba*" && flags != 0'),
        Probe(ProbeKind.TRACEPOINT, "sched:sched_process_exec", fetches=[
            Fetch("filename", Arg(name="filename")), Fetch("pid2", Arg(name="pid"))]),
        Probe(ProbeKind.TRACEPOINT, "sched:sched_switch", fetches=[
            Fetch("prev_comm", Arg(name="prev_comm")), Fetch("next_pid", Arg(name="next_pid"))],
            actions=[Action(ActionKind.COUNT, key=("next_pid",)), Action(ActionKind.STACKS)]),
    ]


def raw_tracepoint_probes() -> list[Probe]:
    return [Probe(ProbeKind.RAW_TRACEPOINT, "sys_enter", fetches=[Fetch("nr", Arg(index=2), T("s64"))],
                  filter="nr == 110"),
            Probe(ProbeKind.RAW_TRACEPOINT, "sched_switch", fetches=[Fetch("preempt", Arg(index=1)), Fetch("prev", Arg(index=2))])]


def kprobe_probes() -> list[Probe]:
    from ktui.probes.spec import parse_spec

    return [
        *parse_spec(KPROBE_EVENTS_SEED),
        Probe(ProbeKind.KPROBE, "kernel_clone", fetches=[
            Fetch("flags", Member(Arg(name="args"), ("flags",))),
            Fetch("exit_signal", Member(Arg(name="args"), ("exit_signal",))),
            Fetch("func", Builtin("probe_func")), Fetch("gid", Builtin("gid"))]),
        Probe(ProbeKind.KPROBE, "do_sys_openat2", fetches=[
            Fetch("dfd", Arg(index=1), T("s32")), Fetch("filename", Arg(name="filename"), T("ustring")),
            Fetch("slot1", StackSlot(1)), Fetch("sp", StackPtr()), Fetch("imm", Imm(-5), T("s64")),
            Fetch("code", SymAddr("schedule", 4)), Fetch("low", Reg("si"), T("b4@2/32"))]),
        Probe(ProbeKind.KPROBE, "ip_rcv", fetches=[
            Fetch("len", Member(Arg(name="skb"), ("len",))),
            Fetch("dev", Member(Arg(name="skb"), ("dev", "name"))),
            Fetch("ifindex", Member(Arg(name="dev"), ("ifindex",))),
            Fetch("pkt_type", Member(Arg(name="skb"), ("pkt_type",)))], filter='dev =~ "lo*"'),
        Probe(ProbeKind.KRETPROBE, "do_sys_openat2", maxactive=64, fetches=[
            Fetch("filename", Arg(name="filename"), T("ustring")), Fetch("ret", Retval())],
            filter="ret < 0"),
    ]


def fentry_probes() -> list[Probe]:
    return [Probe(ProbeKind.FENTRY, "do_sys_openat2", fetches=[Fetch("dfd", Arg(name="dfd"))]),
            Probe(ProbeKind.FEXIT, "do_sys_openat2", fetches=[Fetch("dfd", Arg(name="dfd")), Fetch("ret", Retval())]),
            Probe(ProbeKind.FEXIT, "vfs_read", latency=True)]


def uprobe_probes() -> list[Probe]:
    return [
        Probe(ProbeKind.UPROBE, "readline", binary="/bin/bash", fetches=[
            Fetch("prompt", Arg(index=1), T("ustring")), Fetch("arg7", Arg(index=7)),
            Fetch("first", Deref(0, Arg(index=1), user=True), T("u8"))]),
        Probe(ProbeKind.URETPROBE, "readline", binary="/bin/bash", fetches=[
            Fetch("line", Retval(), T("ustring"))], latency=True, filter="latency > 1000000"),
    ]


def perf_probes() -> list[Probe]:
    return [Probe(ProbeKind.PROFILE, "", frequency=99, fetches=[Fetch("ip", Reg("ip"), T("symbol")),
                                                                Fetch("at", Builtin("probe_func"))],
                  actions=[Action(), Action(ActionKind.STACKS, user_stack=True)]),
            Probe(ProbeKind.INTERVAL, "", period_ns=1_000_000_000, actions=[Action(ActionKind.COUNT)])]


def aggregation_probes() -> list[Probe]:
    return [
        Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_read", fetches=[Fetch("count", Arg(name="count"))],
              actions=[Action(ActionKind.HIST, value="count"),
                       Action(ActionKind.HIST, value="count", scale="linear", lo=0, hi=4096, step=512),
                       Action(ActionKind.COUNT, key=("comm", "cpu"))]),
        Probe(ProbeKind.KRETPROBE, "vfs_read", actions=[Action(ActionKind.HIST, value="latency")]),
    ]


def seed_probes() -> list[Probe]:
    """The examples the project started from (../shared/seeds/), as specs a user would type."""
    from ktui.catalog.core import Catalog
    from ktui.probes.spec import parse_spec

    catalog = Catalog.load()
    fork = next(n for n in ("kernel_clone", "_do_fork", "do_fork") if catalog.lookup(f"kprobe:{n}"))
    ip_rcv = parse_spec('kernel.function("ip_rcv")', catalog)
    clone = parse_spec(f"kprobe:{fork}", catalog)
    entry = catalog.lookup(f"kprobe:{fork}")
    clone[0].fetches = [Fetch(a.name, Arg(name=a.name)) for a in entry.args]
    if entry.args and "kernel_clone_args" in entry.args[0].ctype:
        clone[0].fetches += [Fetch("flags", Member(Arg(name="args"), ("flags",))),
                             Fetch("exit_signal", Member(Arg(name="args"), ("exit_signal",)))]
    openat = parse_spec("kretprobe:do_sys_openat2", catalog)
    openat[0].fetches = [Fetch("filename", Arg(name="filename"), T("ustring")), Fetch("ret", Retval())]
    openat[0].filter = "ret < 0"
    sched = parse_spec("kprobe:schedule", catalog)
    sched[0].actions = [Action(ActionKind.COUNT, key=("cpu",))]
    return [*ip_rcv, *clone, *openat, *sched, *parse_spec(KPROBE_EVENTS_SEED, catalog)]


CASES = {
    "tracepoint": (tracepoint_probes, FACTS_HERE, True),
    "raw_tracepoint": (raw_tracepoint_probes, FACTS_HERE, True),
    "kprobe": (kprobe_probes, FACTS_HERE, False),
    "kprobe_fallback": (kprobe_probes, FACTS_HERE, True),
    "fentry": (fentry_probes, KernelFacts(kprobes=False, fentry=True), True),
    "uprobe": (uprobe_probes, FACTS_HERE, True),
    "perf": (perf_probes, FACTS_HERE, True),
    "aggregation": (aggregation_probes, FACTS_KPROBES, True),
}


def compile_case(name: str):
    from ktui.compiler import compile_session

    make, facts, fallback = CASES[name]
    return compile_session(make(), facts=facts, fallback=fallback)
