"""Where each probe can run on this kernel: its own mechanism, or a fallback with a
note saying so (kprobe -> fentry when fentry loads -> the system call's tracepoint),
or, when nothing fits, an error saying why. The kernel facts are detected once."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ktui.errors import KtuiError
from ktui.kernel import tracefs_path
from ktui.probes.model import Builtin, Probe, ProbeKind
from ktui.probes.resolve import syscall_name

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


def _reads_registers(expr) -> bool:
    from ktui.probes.model import Reg, StackPtr, StackSlot

    if isinstance(expr, (Reg, StackPtr, StackSlot)):
        return True
    inner = getattr(expr, "inner", None) or getattr(expr, "base", None)
    return inner is not None and _reads_registers(inner)


def wants_latency(probe: Probe) -> bool:
    return probe.latency or any(isinstance(f.expr, Builtin) and f.expr.name == "latency" for f in probe.fetches) or any(
        a.value == "latency" for a in probe.actions)


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
        if kind is ProbeKind.UPROBE and not latency:
            return Placement(Site("uprobe", probe.target))
        entry = Site("uprobe", probe.target) if (latency or args_at_return) else None
        return Placement(Site("uretprobe", probe.target), entry)
    return _place_function(probe, facts, types, fallback, latency, args_at_return, tag)


def _place_function(probe, facts, types, fallback, latency, args_at_return, tag) -> Placement:
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
        if ret:
            main = _tp_site(f"syscalls:sys_exit_{name}", tag)
            entry = Site(enter.kind, enter.event, tp_struct=f"{tag}_enter", tp_fields=enter.tp_fields)
            note = (f"{probe.spec}: {because}; using the system call's tracepoints "
                    f"syscalls:sys_enter_{name} / sys_exit_{name} instead (every {name} call, "
                    f"arguments as the system call received them)")
            return Placement(main, entry if (latency or args_at_return) else None, [note])
        note = (f"{probe.spec}: {because}; using tracepoint syscalls:sys_enter_{name} instead "
                f"(every {name} call, arguments as the system call received them)")
        return Placement(enter, None, [note])
    if wants_fentry:
        # No code at all: BCC would try to attach a kfunc__ program by itself when an
        # engine builds the program with the plain BPF class, taking every probe down.
        raise KtuiError(f"{probe.spec} cannot be placed here: " + "; ".join(missing)
                        + ". Use kprobe:" + symbol + " where kprobes exist, or compile with --no-fallback "
                        "to see (and --check) the fentry program anyway")
    placement = native()
    placement.error = (f"{probe.spec} cannot be placed here: " + "; ".join(missing)
                       + ("" if _syscall_tracepoint(symbol) else f"; and {symbol} is not a system call entry with a tracepoint")
                       + ". "
                       "Its program still compiles and passes the verifier, but it cannot be attached on this kernel.")
    return placement
