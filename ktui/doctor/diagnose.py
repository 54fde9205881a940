"""``diagnose()``: every check, in a couple of hundred milliseconds plus one small BCC compile."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from pathlib import Path

from ktui.doctor import bootcache, facts, mechanisms, toolchain
from ktui.doctor.btfinfo import VMLINUX_BTF, check_header
from ktui.doctor.facts import NEEDS_PRIVILEGE, Privileges
from ktui.doctor.mechanisms import Context
from ktui.doctor.report import Check, Report
from ktui.errors import FileFormatError
from ktui.kernel import kernel_identity, tracefs_path

NO_LIVE = "live tracing needs root (or CAP_BPF+CAP_PERFMON); browsing, compiling and replaying recordings still work"


def _kernel() -> Check:
    ident = kernel_identity()
    return Check(True, f"Linux {ident.release} ({ident.machine})", [ident.version, f"build id {ident.build_id}"], value=ident.release)


def _root(priv: Privileges) -> Check:
    if priv.euid == 0:
        return Check(True, "running as root", ["euid 0"], value="0")
    return Check(False, f"running as uid {priv.euid}: {NO_LIVE}", [f"euid {priv.euid}"], value=str(priv.euid))


def _capabilities(priv: Privileges) -> Check:
    held = priv.names()
    evidence = [f"/proc/self/status CapEff: {priv.cap_eff:016x}" if priv.cap_eff is not None else "/proc/self/status has no CapEff"]
    value = ",".join(held)
    if priv.can_bpf:
        return Check(True, "holds " + " and ".join(held), evidence, value=value)
    missing = [n for n in ("CAP_BPF", "CAP_PERFMON") if n not in held]
    return Check(False, f"lacks {' and '.join(missing)} (and CAP_SYS_ADMIN): {NO_LIVE}", evidence, value=value)


def _btf(path: str) -> Check:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return Check(
            False,
            f"no kernel BTF ({path}: {err.strerror or err}; the kernel needs CONFIG_DEBUG_INFO_BTF): fentry and "
            "BTF struct layouts are unavailable; tracepoints, kprobes and uprobes still work",
            [f"{path}: {err.strerror or err}"],
        )
    try:
        version = check_header(data, path)
    except FileFormatError as err:
        return Check(False, f"kernel BTF is unusable ({err}): fentry and BTF struct layouts are unavailable; tracepoints, kprobes and uprobes still work", [str(err)])
    return Check(True, f"kernel BTF present ({path}, {len(data)} bytes)", [f"magic 0xeb9f, version {version}"], value=path)


def _lockdown(ctx: Context) -> Check:
    mode, evidence = facts.lockdown_mode()
    forced = [k for k, v in (ctx.config or {}).items() if k.startswith("CONFIG_LOCK_DOWN_KERNEL_FORCE_") and v == "y"]
    evidence += [f"{ctx.config_source}: {k}=y" for k in forced]
    if mode is None:
        floor = [k.rsplit("_", 1)[-1].lower() for k in forced]
        known = f"; the kernel config forces at least {floor[0]}" if floor else ""
        return Check(None, f"lockdown mode unknown ({evidence[-1]}){known}", evidence)
    if mode == "none":
        return Check(True, "lockdown is off", evidence, value=mode)
    if mode == "integrity":
        return Check(True, "lockdown is integrity: BPF may read but not write memory (ktui never writes), tracing is unaffected", evidence, value=mode)
    return Check(False, f"lockdown is {mode}: BPF programs cannot read kernel memory, so fetched kernel values and kernel stacks fail; tracepoint counts still work", evidence, value=mode)


def _first_text_symbol(limit: int = 5000) -> tuple[str, str] | None:
    """(address, name) of the first function symbol: per-CPU symbols at the top
    of /proc/kallsyms really are at address 0, so they prove nothing."""
    with open("/proc/kallsyms") as f:
        for _, line in zip(range(limit), f):
            parts = line.split()
            if len(parts) >= 3 and parts[1] in "tT":
                return parts[0], parts[2]
    return None


def _kptr_restrict(priv: Privileges) -> Check:
    value, why = facts.read_text("/proc/sys/kernel/kptr_restrict")
    evidence = [f"kernel.kptr_restrict = {value}" if value is not None else why]
    try:
        first = _first_text_symbol()
    except (OSError, ValueError):
        return Check(None, "cannot tell whether kernel addresses are visible: /proc/kallsyms unreadable", evidence, value=value)
    if first is None:
        return Check(None, "cannot tell whether kernel addresses are visible: no text symbol in /proc/kallsyms", evidence, value=value)
    visible = int(first[0], 16) != 0
    evidence.append(f"/proc/kallsyms: {first[1]} at {first[0]}")
    if visible:
        return Check(True, f"kernel addresses are visible to us (kptr_restrict={value}): kernel stacks symbolize", evidence, value=value)
    return Check(
        False,
        f"kernel addresses are hidden from us (kptr_restrict={value}; /proc/kallsyms shows zeros): kernel stacks "
        "cannot be symbolized" + ("; root would see them" if priv.euid != 0 and value in ("0", "1") else ""),
        evidence,
        value=value,
    )


def _paranoid(priv: Privileges) -> Check:
    value, why = facts.read_text("/proc/sys/kernel/perf_event_paranoid")
    if value is None:
        return Check(None, f"perf_event_paranoid unreadable ({why})", [why])
    evidence = [f"kernel.perf_event_paranoid = {value}"]
    if priv.has(facts.CAP_PERFMON) or priv.has(facts.CAP_SYS_ADMIN):
        return Check(True, f"perf_event_paranoid={value} does not restrict us (we hold CAP_PERFMON or CAP_SYS_ADMIN)", evidence, value=value)
    try:
        level = int(value)
    except ValueError:
        return Check(None, f"perf_event_paranoid has an unexpected value {value!r}", evidence, value=value)
    if level <= 0:
        return Check(True, f"perf_event_paranoid={value} allows CPU-wide sampling without privileges", evidence, value=value)
    return Check(False, f"perf_event_paranoid={value} forbids CPU-wide sampling without CAP_PERFMON: {NEEDS_PRIVILEGE}", evidence, value=value)


def _tracefs(path: str | None, priv: Privileges) -> Check:
    if path:
        return Check(True, f"tracefs at {path}", [f"{path}/events present"], value=path)
    if priv.euid != 0:
        return Check(False, f"tracefs is not accessible: {NEEDS_PRIVILEGE}", ["/sys/kernel/tracing unreadable or unmounted"])
    return Check(False, "tracefs is not mounted and mounting it failed: tracepoints cannot be listed or attached", [])


def _filter_functions(path: str | None) -> Check:
    if path is None:
        return Check(None, "unknown: tracefs is not accessible", [])
    target = os.path.join(path, "available_filter_functions")
    try:
        with open(target) as f:
            count = sum(1 for _ in f)
    except OSError as err:
        return Check(
            False,
            f"{target} is unreadable ({err.strerror or err}): ktui cannot tell ftrace-traceable kernel functions from "
            "notrace ones and judges from kallsyms and BTF instead",
            [f"open {target}: {err.strerror or err}"],
        )
    return Check(True, f"readable: {count} functions the kernel can trace", [target], value=str(count))


def _kprobe_blacklist(kprobes_ok: bool | None) -> Check:
    text, evidence = facts.read_pseudo_fs("debugfs", "kprobes/blacklist")
    if text is not None:
        count = len([ln for ln in text.splitlines() if ln.strip()])
        return Check(True, f"readable: {count} functions kprobes may not attach to", evidence[:1] + evidence[2:], value=str(count))
    if kprobes_ok is False:
        return Check(False, "there is no kprobe blacklist to read: this kernel has no kprobes", evidence)
    return Check(None, "the kprobe blacklist is not readable (" + evidence[-1] + "): ktui cannot warn about blacklisted functions before attaching", evidence)


def diagnose(
    *,
    compile_check: bool = True,
    btf_path: str = VMLINUX_BTF,
    config_paths: list[str] | None = None,
    per_boot: bool = False,
    refresh: bool = False,
) -> Report:
    """What this kernel and this process can trace, with evidence.

    ``compile_check`` compiles (and with privileges attaches) one tiny BCC program,
    the only slow part (a few tenths of a second). ``btf_path`` and ``config_paths``
    exist so tests can show a kernel without BTF or without a readable config.
    ``per_boot`` reuses this boot's answers to the checks that cannot change within a boot
    (ktui.doctor.bootcache); ``refresh`` asks them again (and keeps the new answers).
    """
    priv = facts.privileges()
    config, source = facts.kernel_config(config_paths)
    tfs = tracefs_path(mount=priv.euid == 0)
    ctx = Context(priv, config, source, tfs, btf_path)
    paranoid = facts.read_text("/proc/sys/kernel/perf_event_paranoid")[0]
    steps: list[tuple[str, Callable[[], Check]]] = [
        ("kernel", _kernel),
        ("root", lambda: _root(priv)),
        ("capabilities", lambda: _capabilities(priv)),
        ("bpf_syscall", lambda: mechanisms.bpf_syscall(ctx)),
        ("btf", lambda: _btf(btf_path)),
        ("kprobe", lambda: mechanisms.kprobe(ctx)),
        ("kretprobe", lambda: mechanisms.kretprobe(ctx)),
        ("fentry", lambda: mechanisms.fentry(ctx)),
        ("tracepoint", lambda: mechanisms.tracepoint(ctx)),
        ("raw_tracepoint", lambda: mechanisms.raw_tracepoint(ctx)),
        ("uprobe", lambda: mechanisms.uprobe(ctx)),
        ("perf_event", lambda: mechanisms.perf_event(ctx, paranoid)),
        ("hardware_events", _hardware_events),
        ("ringbuf", lambda: mechanisms.ringbuf(ctx)),
        ("stack_map", lambda: mechanisms.stack_map(ctx)),
        ("lockdown", lambda: _lockdown(ctx)),
        ("kptr_restrict", lambda: _kptr_restrict(priv)),
        ("perf_event_paranoid", lambda: _paranoid(priv)),
        ("tracefs", lambda: _tracefs(tfs, priv)),
        ("available_filter_functions", lambda: _filter_functions(tfs)),
    ]
    kept: dict[str, dict[str, Any]] = {}
    key = None
    if per_boot and config_paths is None:
        key = bootcache.boot_key(btf_path, tfs)
        kept = {} if refresh else (bootcache.load(key) or {})
    checks: dict[str, Check] = {}
    for name, step in steps:
        c = kept.get(name)
        checks[name] = Check(c["ok"], c["why"], list(c["evidence"]), c.get("value")) if c else _guarded(name, step)
    if key is not None and any(name not in kept for name in bootcache.STABLE):
        bootcache.store(key, {name: checks[name].to_dict() for name in bootcache.STABLE if name in checks})
    checks["kprobe_blacklist"] = _guarded("kprobe_blacklist", lambda: _kprobe_blacklist(checks["kprobe"].ok))
    try:
        checks["bcc"], checks["headers"] = toolchain.bcc_and_headers(priv, compile_check)
    except Exception as err:  # noqa: BLE001 - see _guarded
        checks["bcc"] = checks["headers"] = _unexpected("bcc and headers", err)
    return Report(checks)


def _hardware_events() -> Check:
    from ktui.doctor.pmu import hardware_events

    return hardware_events()


def _unexpected(name: str, err: BaseException) -> Check:
    return Check(None, f"doctor could not decide {name}: {type(err).__name__}: {err}", [repr(err)])


def _guarded(name: str, step: Callable[[], Check]) -> Check:
    """One check's unexpected failure (a doctor bug, an odd kernel) must not hide the others:
    it becomes an unknown verdict carrying the error, never a traceback."""
    try:
        return step()
    except Exception as err:  # noqa: BLE001 - deliberately broad: the report must complete
        return _unexpected(name, err)
