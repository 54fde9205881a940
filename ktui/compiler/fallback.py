"""Where each probe can run on this kernel: its own mechanism, or a fallback with a
note saying so (kprobe -> fentry when fentry loads -> the system call's tracepoint),
or, when nothing fits, an error saying why. The kernel facts are detected once."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ktui.errors import KtuiError
from ktui.kernel import tracefs_path
from ktui.probes.model import Builtin, FetchExpr, Probe, ProbeKind
from ktui.probes.resolve import syscall_name, user_prototype

from ktui.compiler.btf_types import TypeSource
from ktui.compiler.fetch_codegen import contains_arg
from ktui.compiler.sites import Site
from ktui.compiler.tracepoint_struct import read_fields

UNTRACEABLE = ("blacklisted", "notrace", "inlined", "duplicate", "init", "missing")


@dataclass(frozen=True)
class KernelFacts:
    """What this kernel lets probes use; detected, or given (tests, other machines)."""
    kprobes: bool
    fentry: bool
    fentry_reason: str = ""  # why fentry is unavailable, in words

    @classmethod
    def detect(cls, need_fentry: bool = True) -> KernelFacts:
        tracefs = tracefs_path()
        kprobes = bool(tracefs and os.path.exists(os.path.join(tracefs, "kprobe_events"))) or os.path.exists(
            "/sys/bus/event_source/devices/kprobe")
        fentry, reason = (False, "not checked")
        if need_fentry and not kprobes:
            from ktui.compiler.verify import fentry_loads

            fentry, reason = fentry_loads()
        return cls(kprobes, fentry, reason)


@dataclass
class Placement:
    main: Site
    entry: Site | None = None  # entry-side helper (arguments or start time stashed by thread)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    also: list[Site] = field(default_factory=list)  # more sites running the main function (same record shape)


def _reads_registers(expr: FetchExpr) -> bool:
    from ktui.probes.model import Reg, StackPtr, StackSlot

    if isinstance(expr, (Reg, StackPtr, StackSlot)):
        return True
    inner = getattr(expr, "inner", None) or getattr(expr, "base", None)
    return inner is not None and _reads_registers(inner)


def wants_latency(probe: Probe) -> bool:
    return probe.latency or any(isinstance(f.expr, Builtin) and f.expr.name == "latency" for f in probe.fetches) or any(
        a.value == "latency" for a in probe.actions)


# System calls whose implementation runs through a kernel function (x86_64 names): a
# fallback to tracepoints covers all of them, or its note names those it cannot.
SYSCALLS_REACHING: dict[str, tuple[str, ...]] = {
    "do_sys_openat2": ("openat2", "openat", "open", "creat"),
    "do_sys_open": ("openat", "open", "creat"),
    "ksys_read": ("read",),
    "ksys_write": ("write",),
    "__sys_connect": ("connect",),
    "__sys_accept4": ("accept4", "accept"),
    "__sys_sendto": ("sendto", "send"),
    "__sys_recvfrom": ("recvfrom", "recv"),
    "do_unlinkat": ("unlinkat", "unlink"),
    "do_mkdirat": ("mkdirat", "mkdir"),
    "do_renameat2": ("renameat2", "renameat", "rename"),
    "__do_sys_clone": ("clone",),
    "do_execveat_common": ("execve", "execveat"),
}

# Where no fallback exists: the tracepoint that sees the same thing (the kernel's own
# stable name for it). Other functions get a tracepoint named like them, if there is one.
NEAREST_TRACEPOINT: dict[str, str] = {
    "schedule": "sched:sched_switch", "__schedule": "sched:sched_switch",
    "finish_task_switch": "sched:sched_switch", "try_to_wake_up": "sched:sched_waking",
    "wake_up_new_task": "sched:sched_wakeup_new", "do_exit": "sched:sched_process_exit",
    "kernel_clone": "sched:sched_process_fork", "copy_process": "sched:sched_process_fork",
    "bprm_execve": "sched:sched_process_exec", "exec_binprm": "sched:sched_process_exec",
    "vfs_read": "syscalls:sys_enter_read", "vfs_write": "syscalls:sys_enter_write",
    "vfs_open": "syscalls:sys_enter_openat", "do_filp_open": "syscalls:sys_enter_openat",
    "tcp_v4_connect": "sock:inet_sock_set_state", "tcp_v6_connect": "sock:inet_sock_set_state",
    "tcp_set_state": "sock:inet_sock_set_state", "tcp_retransmit_skb": "tcp:tcp_retransmit_skb",
    "ip_rcv": "net:netif_receive_skb", "__netif_receive_skb": "net:netif_receive_skb",
    "dev_queue_xmit": "net:net_dev_queue", "kfree_skb": "skb:kfree_skb",
    "handle_mm_fault": "exceptions:page_fault_user", "submit_bio": "block:block_bio_queue",
    "blk_mq_start_request": "block:block_rq_issue", "blk_mq_end_request": "block:block_rq_complete",
    "kmem_cache_alloc": "kmem:kmem_cache_alloc", "kmalloc": "kmem:kmalloc", "kfree": "kmem:kfree",
    "do_sys_poll": "syscalls:sys_enter_poll", "futex_wait": "syscalls:sys_enter_futex",
}


def _tracepoint_named(symbol: str) -> str | None:
    """A tracepoint whose event is named exactly like the function (kmem:mm_page_alloc...)."""
    tracefs = tracefs_path()
    if tracefs is None or not re.fullmatch(r"\w+", symbol):
        return None
    events = os.path.join(tracefs, "events")
    try:
        groups = sorted(os.listdir(events))
    except OSError:
        return None
    for group in groups:
        if os.path.isdir(os.path.join(events, group, symbol)):
            return f"{group}:{symbol}"
    return None


def _calls(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _tp_site(event: str, tag: str) -> Site:
    return Site("tracepoint", event, tp_struct=tag, tp_fields=read_fields(event))


def _syscall_tracepoint(symbol: str) -> str | None:
    name = syscall_name(symbol)
    tracefs = tracefs_path()
    if name is None or tracefs is None:
        return None
    if os.path.isdir(os.path.join(tracefs, "events", "syscalls", f"sys_enter_{name}")):
        return name
    return None


def place(probe: Probe, probe_id: int, facts: KernelFacts, types: TypeSource, fallback: bool = True) -> Placement:
    """Choose the sites of one probe. Raises KtuiError only for a probe that is malformed."""
    kind = probe.kind
    latency = wants_latency(probe)
    args_at_return = any(contains_arg(f.expr) for f in probe.fetches)
    tag = f"ktui_tp_{probe_id}"
    if kind is ProbeKind.TRACEPOINT:
        if not re.fullmatch(r"[\w]+:[\w]+", probe.target):
            raise KtuiError(f"a tracepoint is named category:event, not {probe.target!r}")
        if latency:
            raise KtuiError("a tracepoint has no return to measure latency against")
        return Placement(_tp_site(probe.target, tag))
    if kind is ProbeKind.RAW_TRACEPOINT:
        if latency:
            raise KtuiError("a raw tracepoint has no return to measure latency against")
        return Placement(Site("raw_tracepoint", probe.target, func_args=types.raw_tracepoint_args(probe.target)))
    if kind is ProbeKind.USDT:
        from ktui.compiler.usdt_plan import place_usdt

        site, notes, error = place_usdt(probe, latency)
        return Placement(site, None, notes, error)
    if kind.is_perf_event:
        from ktui.compiler.usdt_plan import place_perf_event

        site, error = place_perf_event(probe, latency)
        return Placement(site, None, [], error)
    if kind in (ProbeKind.PROFILE, ProbeKind.INTERVAL):
        if latency:
            raise KtuiError(f"{kind} probes have no return to measure latency against")
        return Placement(Site("perf_event", probe.spec))
    if kind.is_user:
        if not probe.binary:
            raise KtuiError("a uprobe needs the program or library it probes")
        proto = user_prototype(probe)  # parameters by name from the program's DWARF
        ret_ctype, args = (proto[0], proto[1]) if proto else (None, None)
        binary = probe.binary if probe.target else None  # an offset has no function to find types by
        if kind is ProbeKind.UPROBE and not latency:
            return Placement(Site("uprobe", probe.target, func_args=args, ret_ctype=ret_ctype, binary=binary))
        entry = Site("uprobe", probe.target, func_args=args, binary=binary) if (latency or args_at_return) else None
        return Placement(Site("uretprobe", probe.target, func_args=args, ret_ctype=ret_ctype, binary=binary), entry)
    return _place_function(probe, facts, types, fallback, latency, args_at_return, tag)


def _place_function(probe: Probe, facts: KernelFacts, types: TypeSource, fallback: bool, latency: bool,
                    args_at_return: bool, tag: str) -> Placement:
    symbol = probe.target
    if not re.fullmatch(r"[A-Za-z_][\w.]*", symbol or ""):
        raise KtuiError(f"{symbol!r} is not a kernel function name")
    ret = probe.kind.is_return or latency
    proto = types.func_proto(symbol)
    args, ret_ctype = (proto[1], proto[0]) if proto else (None, None)
    wants_fentry = probe.kind in (ProbeKind.FENTRY, ProbeKind.FEXIT)

    def kprobe_sites() -> Placement:
        main = Site("kretprobe" if ret else "kprobe", symbol, func_args=args, ret_ctype=ret_ctype)
        # maxactive set: the user cares about missed returns, which the entry helper makes countable
        wants_entry = latency or args_at_return or probe.maxactive > 0
        entry = Site("kprobe", symbol, func_args=args) if ret and wants_entry else None
        return Placement(main, entry)

    def fentry_sites() -> Placement:
        main = Site("kretfunc" if ret else "kfunc", symbol, func_args=args, ret_ctype=ret_ctype)
        entry = Site("kfunc", symbol, func_args=args) if ret and latency else None
        return Placement(main, entry)

    native = fentry_sites if wants_fentry else kprobe_sites
    if not fallback:
        return native()
    verdict, why = types.traceability(symbol)
    if verdict in UNTRACEABLE and (facts.kprobes or wants_fentry):
        # The catalog knows the function cannot be probed by name: say so before the kernel does.
        placement = native()
        if verdict == "missing":
            placement.error = f"{probe.spec} cannot be attached: this kernel has no function {symbol}"
        else:
            placement.error = f"{probe.spec} cannot be attached: the catalog says {symbol} is {verdict}" + (
                f" ({why})" if why else "")
        return placement
    if wants_fentry and facts.fentry and proto is not None:
        return fentry_sites()
    if not wants_fentry and facts.kprobes:
        return kprobe_sites()
    missing = []
    if not facts.kprobes:
        missing.append("kprobes are not available in this kernel (no kprobe_events: CONFIG_KPROBES is not set)")
    if not facts.fentry:
        missing.append(f"fentry programs are refused ({facts.fentry_reason or 'not supported'})")
    elif proto is None:
        missing.append(f"fentry needs {symbol} in the kernel's BTF, and it is not there")
    if wants_fentry and facts.kprobes:
        placement = kprobe_sites()
        placement.notes.append(f"{probe.spec}: {missing[-1]}; using a {'kretprobe' if ret else 'kprobe'} instead")
        return placement
    if not wants_fentry and facts.fentry and proto is not None:
        placement = fentry_sites()
        placement.notes.append(f"{probe.spec}: {missing[0]}; using fentry/fexit instead")
        return placement
    name = _syscall_tracepoint(symbol)
    if name is not None and any(_reads_registers(f.expr) for f in probe.fetches):
        missing.append(f"the tracepoint of system call {name} cannot stand in: these fetches read registers or the stack")
        name = None
    if name is not None:
        enter = _tp_site(f"syscalls:sys_enter_{name}", tag)
        because = "; ".join(missing)
        others = [s for s in SYSCALLS_REACHING.get(symbol, ()) if s != name and _syscall_tracepoint(f"sys_{s}")]
        if ret:
            main = _tp_site(f"syscalls:sys_exit_{name}", tag)
            entry = Site(enter.kind, enter.event, tp_struct=f"{tag}_enter", tp_fields=enter.tp_fields)
            with_entry = latency or args_at_return
            also: list[Site] = []
            if not with_entry:
                # every sys_exit_* record has the same fields (the call number and ret): one
                # function serves them all, so the probe covers each call that reaches the function
                shape = [(f.name, f.offset, f.size) for f in main.tp_fields]
                for other in others:
                    site = _tp_site(f"syscalls:sys_exit_{other}", tag)
                    if [(f.name, f.offset, f.size) for f in site.tp_fields] == shape:
                        also.append(site)
            covered = [name] + [site.event.split(":sys_exit_", 1)[1] for site in also]
            exits = ", ".join(f"sys_exit_{c}" for c in covered)
            if with_entry:
                what = f"syscalls:sys_enter_{name} / sys_exit_{name}"
            else:
                what = f"syscalls:{exits}" if len(covered) > 1 else f"syscalls:sys_exit_{name}"
            note = (f"{probe.spec}: {because}; using the system call's tracepoints {what} instead "
                    f"(every {_calls(covered)} call, arguments as the system call received them)")
            left = [o for o in others if o not in covered]
            if left:
                note += (f"; {_calls(left)} calls also reach {symbol} and are not covered"
                         + (" (their entry tracepoints record other fields)" if with_entry else ""))
            return Placement(main, entry if with_entry else None, [note], also=also)
        note = (f"{probe.spec}: {because}; using tracepoint syscalls:sys_enter_{name} instead "
                f"(every {name} call, arguments as the system call received them)")
        if others:
            note += (f"; {_calls(others)} calls also reach {symbol} and are not covered (their tracepoints "
                     f"record other fields: add " + ", ".join(f"tracepoint:syscalls:sys_enter_{o}" for o in others)
                     + ")")
        return Placement(enter, None, [note])
    if wants_fentry:
        # No code at all: BCC would try to attach a kfunc__ program by itself when an
        # engine builds the program with the plain BPF class, taking every probe down.
        raise KtuiError(f"{probe.spec} cannot be placed here: " + "; ".join(missing)
                        + ". Use kprobe:" + symbol + " where kprobes exist, or compile with --no-fallback "
                        "to see (and --check) the fentry program anyway")
    placement = native()
    nearest = NEAREST_TRACEPOINT.get(symbol) or _tracepoint_named(symbol)
    why = "; ".join(missing) + ("" if _syscall_tracepoint(symbol)
                                else f"; and {symbol} is not a system call entry with a tracepoint")
    # The way forward first: a short screen (the app's banner at 80x24) keeps a sentence's start.
    placement.error = ((f"{probe.spec} cannot be placed here; the nearest probe that works here is "
                        f"tracepoint:{nearest} ({why}). " if nearest else f"{probe.spec} cannot be placed here: {why}. ")
                       + "Its program still compiles and passes the verifier, but it cannot be attached on this kernel.")
    return placement
