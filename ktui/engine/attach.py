"""Attaching one compiled probe's programs, each failure isolated and told in one sentence.

BCC reports every attach failure as a bare ``Exception`` with a message that can
mislead (on a kernel without kprobes it says the function is "not traceable"), so
the reason is worked out here from what the kernel actually offers.

BCC also keys its own records of attachments by event name (a tracepoint, a uprobe
address, a perf event type): two probes on the same tracepoint overwrite each
other's entry, and BCC's cleanup then leaves the first one attached. So every fd
an attach creates is taken out of BCC's records at once and kept here, one
Attachment each, and ``detach`` closes them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ktui.compiler.program import AttachPlan
from ktui.kernel import tracefs_path

from ktui.sysfacts import KPROBE_PMU, kprobes_available  # noqa: F401 - one definition, used here and by ktui list
UPROBE_PMU = "/sys/bus/event_source/devices/uprobe"


class AttachError(Exception):
    """Why one probe could not attach (the message is the sentence shown)."""


@dataclass
class Attachment:
    fd: int
    perf: bool  # a perf event fd (tracepoint, kprobe, uprobe, sampling), else a link/raw fd
    kprobe_event: bytes | None = None  # legacy kprobe_events name to remove after closing, if any
    uprobe_event: bytes | None = None


def _take_fds(bpf: Any) -> list[Attachment]:
    """Move the fds BCC just recorded into Attachments (see the module's docstring)."""
    out = []
    for tp in list(bpf.tracepoint_fds):
        out.append(Attachment(bpf.tracepoint_fds.pop(tp), True))
    for tp in list(bpf.raw_tracepoint_fds):
        out.append(Attachment(bpf.raw_tracepoint_fds.pop(tp), False))
    for ev in list(bpf.uprobe_fds):
        out.append(Attachment(bpf.uprobe_fds[ev], True, uprobe_event=ev))
        bpf._del_uprobe_fd(ev)  # keeps BCC's global probe quota right
    for ev in list(bpf.kprobe_fds):
        for fn in list(bpf.kprobe_fds[ev]):
            out.append(Attachment(bpf.kprobe_fds[ev][fn], True, kprobe_event=ev))
            bpf._del_kprobe_fd(ev, fn)
        del bpf.kprobe_fds[ev]
    for key in list(bpf.open_perf_events):
        out.extend(Attachment(fd, True) for fd in bpf.open_perf_events.pop(key).values())
    for table in (bpf.kfunc_entry_fds, bpf.kfunc_exit_fds):
        for name in list(table):
            out.append(Attachment(table.pop(name), False))
    return out


def detach(attachments: list[Attachment]) -> None:
    """Close every attachment; then remove legacy k/uprobe_events entries (none when BCC used the PMUs)."""
    from bcc.libbcc import lib

    for a in attachments:
        if a.perf:
            lib.bpf_close_perf_event_fd(a.fd)
        else:
            try:
                os.close(a.fd)
            except OSError:
                pass
    for ev in {a.kprobe_event for a in attachments if a.kprobe_event}:
        lib.bpf_detach_kprobe(ev)
    for ev in {a.uprobe_event for a in attachments if a.uprobe_event}:
        lib.bpf_detach_uprobe(ev)
    attachments.clear()


def tracepoint_exists(event: str) -> bool:
    tracefs = tracefs_path()
    if not tracefs or ":" not in event:
        return False
    category, name = event.split(":", 1)
    return os.path.isdir(os.path.join(tracefs, "events", category, name))


def _load(bpf: Any, plan: AttachPlan) -> Any:
    return bpf.load_func(plan.fn_name.encode(), getattr(type(bpf), plan.prog_type))


def attach_plan(bpf: Any, plan: AttachPlan) -> list[Attachment]:
    """Attach one program of a probe as its AttachPlan says; AttachError on failure.

    Returns what was attached; the caller detaches it with ``detach``."""
    if plan.kind == "usdt":
        return attach_usdt(bpf, plan)
    try:
        _attach(bpf, plan)
    except BaseException:
        detach(_take_fds(bpf))  # a perf event may have opened on some CPUs before failing
        raise
    return _take_fds(bpf)


def attach_usdt(bpf: Any, plan: AttachPlan) -> list[Attachment]:
    """A USDT marker: a uprobe at each of its locations, opened through the uprobe PMU
    with the semaphore's file offset as ref_ctr_offset (ktui.perfopen), so the kernel
    raises the semaphore while the fds are open and lowers it when they close, also
    when ktui is killed. BCC's Python attach_uprobe takes no ref_ctr_offset."""
    from ktui.perfopen import open_uprobe

    if not os.path.exists(plan.binary):
        raise AttachError(f"{plan.binary} does not exist.")
    try:
        prog_fd = _load(bpf, plan).fd
    except Exception as err:  # BCC raises bare Exception when the verifier refuses
        raise AttachError(f"the program for USDT marker {plan.event} did not load ({str(err).strip()}).") from None
    out: list[Attachment] = []
    try:
        for offset, ref_ctr in plan.locations:
            out += [Attachment(fd, True) for fd in open_uprobe(plan.binary, offset, ref_ctr, plan.pid, prog_fd)]
    except OSError as err:
        detach(out)
        raise AttachError(f"the USDT marker {plan.event} in {plan.binary} could not attach "
                          f"({err.strerror or err}).") from None
    return out


def _attach(bpf: Any, plan: AttachPlan) -> None:
    kind = plan.kind
    if kind in ("kprobe", "kretprobe") and not kprobes_available():
        raise AttachError("this kernel has no kprobes (CONFIG_KPROBES is off: no kprobe PMU, no kprobe_events); "
                          "use a tracepoint, or run ktui in the kprobe VM.")
    if kind == "tracepoint" and not tracepoint_exists(plan.event):
        raise AttachError(f"there is no tracepoint {plan.event} in this kernel (see `ktui list tracepoint:*`).")
    if kind in ("uprobe", "uretprobe"):
        if plan.binary and not os.path.exists(plan.binary) and "/" in plan.binary:
            raise AttachError(f"{plan.binary} does not exist.")
    fn = plan.fn_name.encode()
    try:
        _load(bpf, plan)
        if kind == "tracepoint":
            bpf.attach_tracepoint(tp=plan.event.encode(), fn_name=fn)
        elif kind == "raw_tracepoint":
            bpf.attach_raw_tracepoint(tp=plan.event.encode(), fn_name=fn)
        elif kind == "kprobe":
            bpf.attach_kprobe(event=(plan.symbol or plan.event).encode(), event_off=plan.offset, fn_name=fn)
        elif kind == "kretprobe":
            bpf.attach_kretprobe(event=(plan.symbol or plan.event).encode(), fn_name=fn, maxactive=plan.maxactive)
        elif kind in ("uprobe", "uretprobe"):
            where = {"name": plan.binary.encode(), "fn_name": fn, "pid": plan.pid}
            if plan.sym:
                where["sym"] = plan.sym.encode()
            else:
                where["addr"] = plan.address if plan.address is not None else plan.offset
            if kind == "uprobe":
                if plan.sym and plan.offset:
                    where["sym_off"] = plan.offset
                bpf.attach_uprobe(**where)
            else:
                bpf.attach_uretprobe(**where)
        elif kind == "perf_event":
            bpf.attach_perf_event(ev_type=plan.ev_type, ev_config=plan.ev_config, fn_name=fn,
                                  sample_freq=plan.sample_freq, sample_period=plan.sample_period, cpu=plan.cpu)
        elif kind == "kfunc":
            bpf.attach_kfunc(fn_name=fn)
        elif kind == "kretfunc":
            bpf.attach_kretfunc(fn_name=fn)
        else:
            raise AttachError(f"ktui does not know how to attach a {kind} program.")
    except AttachError:
        raise
    except Exception as err:  # BCC raises bare Exception for every attach failure
        raise AttachError(_explain(plan, err)) from None


def _explain(plan: AttachPlan, err: Exception) -> str:
    text = str(err).strip().rstrip(".")
    if plan.kind in ("kfunc", "kretfunc") or plan.prog_type == "TRACING":
        return f"the kernel refused the fentry/fexit program for {plan.symbol or plan.fn_name} ({text}); " \
               "use a tracepoint or a kprobe where the kernel has them."
    if plan.kind in ("uprobe", "uretprobe"):
        if "could not determine address" in text or "symbol" in text.lower():
            return f"no symbol {plan.sym} in {plan.binary}."
        return f"the uprobe on {plan.binary}:{plan.sym or hex(plan.address or plan.offset)} could not attach ({text})."
    if plan.kind == "perf_event":
        return f"the perf event could not be opened for sampling ({text}); is perf_event_paranoid too strict?"
    target = plan.event or plan.symbol
    return f"{plan.kind} {target} could not attach ({text})."
