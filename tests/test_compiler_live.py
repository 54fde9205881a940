"""The compiler's programs on the real kernel: loaded with BCC, attached, exact counts,
and records that decode with the layout's numpy dtype."""

from __future__ import annotations

import ctypes as ct

import subprocess

import numpy as np
import pytest

from helpers import UPROBE_SYMBOL, UPROBE_TARGET_C, build_c, getppid_binary, getppid_child
from ktui.compiler import KernelFacts, compile_session
from ktui.compiler.control import set_enabled, set_target
from ktui.compiler.verify import bpf_class
from ktui.events import HITS, N_COUNTERS
from ktui.probes.model import Action, ActionKind, Arg, Builtin, Fetch, Probe, ProbeKind, Retval, ValueType

pytestmark = pytest.mark.live

NO_KPROBES = KernelFacts(kprobes=False, fentry=False, fentry_reason="EPERM")


def _load(prog):
    from ktui.headers import ensure_headers

    ensure_headers()
    b = bpf_class()(text=prog.c_text.encode())
    for cp in prog.probes:
        set_enabled(b, cp.probe_id, True)
    return b


# Attached through the engine's attach_plan, which keeps every fd: BCC's own records keep
# one per tracepoint or uprobe, so its cleanup would leave a second program on the same
# point attached (and the engine's no-leftovers tests in this process would see it).
_ATTACHED: dict[int, list] = {}


def _attach(b, plan):
    from ktui.engine.attach import attach_plan

    _ATTACHED.setdefault(id(b), []).extend(attach_plan(b, plan))


def _detach_all(b, prog=None):
    """Counters are read after detaching: other processes on the machine may hit the same events."""
    from ktui.engine.attach import detach

    detach(_ATTACHED.pop(id(b), []))


def _close(b):
    _detach_all(b)
    b.cleanup()


def _counters(b, probe_id):
    table = b[b"ktui_counters"]
    return [sum(table[ct.c_int(probe_id * N_COUNTERS + slot)]) for slot in range(N_COUNTERS)]


def _drain(b, ring, layout):
    got = []

    def callback(_ctx, data, size):
        assert size == layout.record_size
        got.append(ct.string_at(data, size))

    b[ring.encode()].open_ring_buffer(callback)
    b.ring_buffer_consume()
    return np.frombuffer(b"".join(got), dtype=layout.dtype)


def test_tracepoint_counts_exactly_and_records_decode():
    n = 5000
    comm = getppid_binary().name[:15]
    probes = [
        Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", name="getppid",
              fetches=[Fetch("nr", Arg(name="__syscall_nr"), ValueType.parse("s32"))],
              filter=f'comm == "{comm}"'),
        Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", name="getppid_cpu",
              actions=[Action(ActionKind.COUNT, key=("cpu",))]),
        Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", name="getppid_pid",
              actions=[Action(ActionKind.COUNT, key=("pid",))]),
    ]
    prog = compile_session(probes, facts=NO_KPROBES)
    assert all(cp.error is None for cp in prog.probes), [cp.error for cp in prog.probes]
    b = _load(prog)
    try:
        for cp in prog.probes:
            _attach(b, cp.attach)
        child = getppid_child(n)
        _detach_all(b, prog)
        stream, count, by_pid = prog.probes
        events = _drain(b, stream.ring, stream.layout)
        hits, submitted, dropped, filtered = _counters(b, 0)
        mine = events[events["pid"] == child]
        assert len(mine) == n
        assert submitted == len(events)  # every submitted record was delivered (ring not full)
        assert hits == submitted + dropped + filtered
        assert dropped == 0
        assert (mine["nr"] == 110).all()  # __NR_getppid on x86_64
        assert (mine["probe"] == 0).all() and (mine["tid"] == child).all()
        assert set(mine["comm"]) == {comm.encode()}
        assert (mine["kstack"] == -1).all() and (mine["flags"] == 0).all()
        assert np.all(np.diff(mine["ts"].astype(np.int64)) >= 0)
        # the COUNT by cpu: no code of its own, it is the per-CPU HITS (a probe without a ring
        # does not count SUBMITTED: user space derives it as hits - dropped - filtered)
        assert count.counts == [{"map": None, "key": ("cpu",)}] and "count" not in count.maps
        assert count.ring is None
        c_hits, c_sub, c_drop, c_filt = _counters(b, 1)
        assert c_sub == 0 and c_drop == 0 and c_filt == 0 and c_hits >= n
        # the COUNT by pid: a per-CPU hash, exactly n for the child
        [spec] = by_pid.counts
        assert spec == {"map": "ktui_count_2", "key": ("pid",)}
        table = {k.pid: sum(v) for k, v in b[spec["map"].encode()].items()}
        assert table[child] == n
        p_hits, p_sub, p_drop, p_filt = _counters(b, 2)
        assert p_sub == 0 and p_drop == 0 and p_filt == 0 and p_hits == sum(table.values())
    finally:
        _close(b)


def test_target_process_and_disable():
    probes = [Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", name="a"),
              Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", name="b")]
    prog = compile_session(probes, facts=NO_KPROBES)
    b = _load(prog)
    try:
        set_enabled(b, 1, False)  # probe b disabled: not even a hit
        set_target(b, 1)  # only init (pid 1) would count
        for cp in prog.probes:
            _attach(b, cp.attach)
        getppid_child(1000)
        _detach_all(b, prog)
        assert _counters(b, 1) == [0, 0, 0, 0]
        assert _counters(b, 0)[HITS] < 1000
    finally:
        _close(b)


def test_uprobe_and_uretprobe_with_entry_argument():
    n = 300
    # our own copy of the target: uprobes on a file fire for every process running it
    binary = str(build_c("compiler-uprobe-target", UPROBE_TARGET_C))
    probes = [
        Probe(ProbeKind.UPROBE, UPROBE_SYMBOL, binary=binary, fetches=[Fetch("i", Arg(index=1), ValueType.parse("s64"))]),
        Probe(ProbeKind.URETPROBE, UPROBE_SYMBOL, binary=binary,
              fetches=[Fetch("i", Arg(index=1), ValueType.parse("s64")), Fetch("ret", Retval(), ValueType.parse("s64")),
                       Fetch("latency", Builtin("latency"))], filter="ret >= 100"),
    ]
    prog = compile_session(probes, facts=NO_KPROBES)
    assert [cp.error for cp in prog.probes] == [None, None]
    b = _load(prog)
    try:
        for cp in prog.probes:
            for plan in cp.attach_plans:
                _attach(b, plan)
        proc = subprocess.Popen([binary, str(n)])
        proc.wait()
        child = proc.pid
        _detach_all(b, prog)
        entry = _drain(b, prog.probes[0].ring, prog.probes[0].layout)
        ret = _drain(b, prog.probes[1].ring, prog.probes[1].layout)
        entry, ret = entry[entry["pid"] == child], ret[ret["pid"] == child]
        assert sorted(entry["i"]) == list(range(n))
        assert sorted(ret["i"]) == list(range(50, n))  # ret = 2 i >= 100
        assert (ret["ret"] == 2 * ret["i"]).all()
        assert (ret["latency"] > 0).all() and (ret["flags"] == 0).all()
        hits, sub, drop, filt = _counters(b, 1)
        assert (hits, sub, drop, filt) == (n, n - 50, 0, 50)
        entries = b[b"ktui_entries"]
        assert prog.probes[1].maps["entries"] == "ktui_entries"
        assert [sum(entries[ct.c_int(2 + slot)]) for slot in (0, 1)] == [n, n]  # every return found its entry
    finally:
        _close(b)


def test_struct_members_by_name_read_the_right_kernel_memory():
    """task_struct members through BTF offsets (and a pointer chain) equal what the kernel says."""
    import os

    from ktui.probes.model import Member

    probes = [Probe(ProbeKind.RAW_TRACEPOINT, "sched_process_exec", fetches=[
        Fetch("tgid", Member(Arg(index=1), ("tgid",))), Fetch("task_pid", Member(Arg(index=1), ("pid",))),
        Fetch("task_comm", Member(Arg(index=1), ("comm",))),
        Fetch("ppid", Member(Arg(index=1), ("real_parent", "tgid"))),
        Fetch("old_pid", Arg(index=2), ValueType.parse("s32"))])]
    prog = compile_session(probes, facts=NO_KPROBES)
    assert prog.probes[0].error is None, prog.probes[0].error
    b = _load(prog)
    try:
        _attach(b, prog.probes[0].attach)
        child = subprocess.Popen(["/bin/true"])
        child.wait()
        _detach_all(b)
        events = _drain(b, prog.probes[0].ring, prog.probes[0].layout)
    finally:
        _close(b)
    mine = events[events["pid"] == child.pid]
    assert len(mine) == 1
    e = mine[0]
    assert e["tgid"] == e["task_pid"] == e["old_pid"] == child.pid == e["tid"]
    assert e["ppid"] == os.getpid()
    assert e["task_comm"] == e["comm"] == b"true"
    assert e["flags"] == 0


def test_syscall_function_falls_back_to_its_tracepoint_with_exact_counts():
    n = 3000
    ours = f'comm == "{getppid_binary().name[:15]}"'  # only our child's events reach the rings
    probes = [Probe(ProbeKind.KPROBE, "__x64_sys_getppid", filter=ours),
              Probe(ProbeKind.RAW_TRACEPOINT, "sys_enter", fetches=[Fetch("nr", Arg(index=2), ValueType.parse("s64"))],
                    filter=f"nr == 110 && {ours}")]
    prog = compile_session(probes, facts=NO_KPROBES)
    fallback, raw = prog.probes
    assert fallback.error is None and fallback.attach.kind == "tracepoint"
    assert fallback.attach.event == "syscalls:sys_enter_getppid" and "instead" in fallback.notes[0]
    b = _load(prog)
    try:
        for cp in prog.probes:
            _attach(b, cp.attach)
        child = getppid_child(n)
        _detach_all(b)
        tp_events = _drain(b, fallback.ring, fallback.layout)
        raw_events = _drain(b, raw.ring, raw.layout)
        for pid in (0, 1):
            hits, sub, drop, filt = _counters(b, pid)
            assert hits == sub + drop + filt and drop == 0
    finally:
        _close(b)
    assert (tp_events["pid"] == child).sum() == n
    assert (raw_events["pid"] == child).sum() == n and (raw_events["nr"] == 110).all()
