"""Sentences for the engine and the app: why a probe cannot attach, and the
short warnings the app shows in its status bar.

BCC's own messages mislead (on a kernel without kprobes it says a function is
"not traceable"); these come from what doctor finds on the kernel instead.
"""

from __future__ import annotations

import ctypes.util
import errno
import functools
import glob
import os
import shutil
from pathlib import Path

from ktui.doctor import facts, mechanisms
from ktui.doctor.btfinfo import func_ids
from ktui.doctor.facts import NEEDS_PRIVILEGE
from ktui.doctor.mechanisms import Context
from ktui.doctor.report import Check, Report
from ktui.errors import FileFormatError
from ktui.kernel import tracefs_path

# Probe kinds (ktui.probes.model.ProbeKind values and bpftrace spellings) -> doctor check.
_KIND_TO_CHECK = {
    "kprobe": "kprobe",
    "k": "kprobe",
    "kretprobe": "kretprobe",
    "kr": "kretprobe",
    "fentry": "fentry",
    "fexit": "fentry",
    "kfunc": "fentry",
    "kretfunc": "fentry",
    "tracepoint": "tracepoint",
    "t": "tracepoint",
    "rawtracepoint": "raw_tracepoint",
    "raw_tracepoint": "raw_tracepoint",
    "rawtp": "raw_tracepoint",
    "uprobe": "uprobe",
    "u": "uprobe",
    "uretprobe": "uprobe",
    "ur": "uprobe",
    "profile": "perf_event",
    "interval": "perf_event",
    "perf_event": "perf_event",
}


@functools.lru_cache(maxsize=1)
def _context() -> Context:
    priv = facts.privileges()
    config, source = facts.kernel_config()
    return Context(priv, config, source, tracefs_path(mount=priv.euid == 0))


@functools.cache
def _mechanism(name: str) -> Check:
    """One mechanism's check, tried once per process (each is a few syscalls)."""
    ctx = _context()
    if name == "perf_event":
        return mechanisms.perf_event(ctx, facts.read_text("/proc/sys/kernel/perf_event_paranoid")[0])
    check: Check = getattr(mechanisms, name)(ctx)
    return check


@functools.lru_cache(maxsize=1)
def _kallsyms() -> frozenset[str]:
    names = set()
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tTwW":
                    names.add(parts[2])
    except OSError:
        pass
    return frozenset(names)


@functools.lru_cache(maxsize=1)
def _kprobe_blacklist() -> frozenset[str]:
    text, _ = facts.read_pseudo_fs("debugfs", "kprobes/blacklist")
    # "0xstart-0xend\tsymbol [module]"
    return frozenset(parts[1] for parts in map(str.split, (text or "").splitlines()) if len(parts) >= 2)


def _readable_lines(path: str) -> set[str] | None:
    try:
        with open(path) as f:
            return {line.split()[0] for line in f if line.strip()}
    except OSError:
        return None


def _did_you_mean(target: str, names: frozenset[str]) -> str:
    try:
        from rapidfuzz import fuzz, process
    except ImportError:
        return ""
    best = process.extractOne(target, names, scorer=fuzz.ratio, score_cutoff=80)
    return f" (did you mean {best[0]}?)" if best else ""


def clear_cache() -> None:
    """Forget what was learned (tests; a kernel module loaded since)."""
    for cached in (_context, _mechanism, _kallsyms, _kprobe_blacklist):
        cached.cache_clear()


def _privilege_sentence(kind: str, target: str) -> str:
    return f"cannot attach {kind} {target}: {NEEDS_PRIVILEGE}; browsing, compiling and replay still work"


def _error_text(error: BaseException | str | None) -> str:
    if error is None:
        return ""
    if isinstance(error, OSError) and error.errno:
        return f"{errno.errorcode.get(error.errno, error.errno)}: {os.strerror(error.errno)}"
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _kernel_function(kind: str, target: str) -> str | None:
    func = target.split("+")[0].split(":")[-1]
    names = _kallsyms()
    if names and func not in names:
        return f"no kernel function named {func} (not in /proc/kallsyms){_did_you_mean(func, names)}"
    tracefs = _context().tracefs
    if kind in ("kprobe", "kretprobe"):
        if func in _kprobe_blacklist():
            return f"{func} is on the kernel's kprobe blacklist (kprobes there could crash the kernel); choose a caller or a tracepoint"
    if tracefs:
        traceable = _readable_lines(os.path.join(tracefs, "available_filter_functions"))
        if traceable is not None and func not in traceable:
            return f"{func} is not traceable: it is absent from available_filter_functions (notrace, inlined, or in a section the kernel never instruments)"
    if kind == "fentry":
        try:
            if func not in func_ids(Path("/sys/kernel/btf/vmlinux").read_bytes(), [func]):
                return f"{func} is not a function in kernel BTF, so fentry/fexit cannot name it (it may be inlined); a kprobe may still reach it"
        except (OSError, FileFormatError):
            return None
    return None


def _tracepoint(target: str) -> str | None:
    tracefs = _context().tracefs
    if tracefs is None:
        return None
    category, _, event = target.partition(":")
    if not event:
        return f"{target!r} is not a tracepoint name: write category:event, for example syscalls:sys_enter_openat"
    base = Path(tracefs, "events")
    if not (base / category).is_dir():
        return f"no tracepoint category {category} (not in {base})"
    if not (base / category / event).is_dir():
        return f"no tracepoint {category}:{event}: category {category} has no event {event}"
    return None


def _raw_tracepoint(target: str) -> str | None:
    tracefs = _context().tracefs
    if tracefs is None:
        return None
    name = target.split(":")[-1]
    if not glob.glob(os.path.join(glob.escape(tracefs), "events", "*", glob.escape(name))):
        return f"no raw tracepoint {name}: no tracepoint of that name in {tracefs}/events"
    return None


def _resolve_binary(path: str) -> str | None:
    if os.path.isabs(path):
        return path if os.path.exists(path) else None
    lib = ctypes.util.find_library(path[3:] if path.startswith("lib") else path)
    if lib:
        for directory in ("/lib", "/usr/lib", "/lib64", "/usr/lib64", *glob.glob("/usr/lib/*-linux-gnu"), *glob.glob("/lib/*-linux-gnu")):
            candidate = os.path.join(directory, lib)
            if os.path.exists(candidate):
                return candidate
    return shutil.which(path)


def _user_function(target: str) -> str | None:
    binary, sep, symbol = target.rpartition(":")
    if not sep or not binary:
        return f"{target!r} is not a uprobe target: write binary:function, for example /usr/bin/bash:readline"
    resolved = _resolve_binary(binary)
    if resolved is None:
        return f"no file or library {binary} to place a uprobe in"
    if symbol.startswith("0x") or symbol.isdigit():
        return None
    if mechanisms.elf_symbol_offset(resolved, symbol) is None:
        return f"{resolved} has no function {symbol} in its symbol tables (a stripped binary needs its debuginfo)"
    return None


def explain_attach_failure(kind: str, target: str, error: BaseException | str | None = None) -> str:
    """One sentence: why a ``kind`` probe on ``target`` cannot attach here, and what still works.

    ``kind`` is a ProbeKind value (kprobe, kretprobe, fentry, fexit, tracepoint,
    rawtracepoint, uprobe, uretprobe, profile, interval) or bpftrace's short form;
    ``error`` is the exception the attach raised, if any (used when the kernel and
    the target look fine, so the cause is something else).
    """
    kind = str(kind).lower()
    check_name = _KIND_TO_CHECK.get(kind)
    if check_name is None:
        return f"unknown probe kind {kind!r}: use one of {', '.join(sorted(set(_KIND_TO_CHECK) - {'k', 'kr', 't', 'u', 'ur'}))}"
    mechanism = _mechanism(check_name)
    privileged = _context().priv.can_bpf
    if mechanism.ok is False:
        if mechanism.why.startswith(NEEDS_PRIVILEGE):
            return _privilege_sentence(kind, target)
        return mechanism.why
    specific: str | None = None
    if check_name in ("kprobe", "kretprobe", "fentry"):
        specific = _kernel_function("fentry" if check_name == "fentry" else kind, target)
    elif check_name == "tracepoint":
        specific = _tracepoint(target)
    elif check_name == "raw_tracepoint":
        specific = _raw_tracepoint(target)
    elif check_name == "uprobe":
        specific = _user_function(target)
    if specific:
        return specific
    text = _error_text(error)
    if not privileged and (not text or "EPERM" in text or "EACCES" in text or "permitted" in text.lower()):
        return _privilege_sentence(kind, target)
    if text:
        return f"attaching {kind} {target} failed: {text}"
    return f"{kind} {target} should attach here; doctor found nothing in the way (see `ktui doctor`)"


def summary_warnings(report: Report) -> list[str]:
    """Short lines for the status bar: what limits tracing on this machine, most important first."""
    c = report.checks
    out: list[str] = []

    def bad(name: str) -> bool:
        return name in c and c[name].ok is False

    privileged = c["capabilities"].ok is not False if "capabilities" in c else not bad("root")
    if not privileged:
        out.append("not root: live tracing unavailable, replay works" if bad("root") else "no CAP_BPF/CAP_PERFMON: live tracing unavailable, replay works")
    if bad("bcc"):
        out.append("BCC not installed: live tracing unavailable")
    if bad("headers"):
        out.append("no usable kernel headers: probes cannot compile")
    elif c.get("headers") and c["headers"].value == "generic":
        out.append("generic headers: struct layouts may be wrong")
    if privileged and bad("bpf_syscall"):
        out.append("bpf() unavailable: no live tracing")
    if bad("kprobe") and not c["kprobe"].why.startswith(NEEDS_PRIVILEGE):
        out.append("no kprobes (kernel without CONFIG_KPROBES)" if "CONFIG_KPROBES" in c["kprobe"].why else "no kprobes on this kernel")
    if bad("fentry") and privileged:
        out.append("fentry refused by the kernel (EPERM)" if "EPERM" in c["fentry"].why else "fentry unavailable")
    for name, line in (("tracepoint", "tracepoints unavailable"), ("uprobe", "uprobes unavailable"), ("perf_event", "sampling unavailable"), ("ringbuf", "no ring buffer maps"), ("stack_map", "no stack maps")):
        if privileged and bad(name):
            out.append(line)
    if bad("btf"):
        out.append("no kernel BTF")
    if bad("lockdown"):
        out.append(f"lockdown {c['lockdown'].value}: kernel reads blocked")
    if bad("kptr_restrict"):
        out.append("kernel addresses hidden: stacks unsymbolized")
    return out
