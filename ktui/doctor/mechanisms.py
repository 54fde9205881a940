"""Each tracing mechanism decided by trying it on the kernel: load a trivial
program, attach it, detach (close), and report what the kernel said.

Every attachment is a file descriptor closed before the check returns; if the
process dies in between, the kernel drops them with the descriptors, so nothing
is left behind. Nothing here needs BCC or headers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ktui.doctor import bpfsys
from ktui.doctor.btfinfo import VMLINUX_BTF, func_ids
from ktui.doctor.facts import NEEDS_PRIVILEGE, Privileges
from ktui.doctor.report import Check
from ktui.errors import FileFormatError

PMU_DIR = "/sys/bus/event_source/devices"
# Functions present in every kernel ktui meets, safe to probe (nothing fires: never enabled).
KPROBE_SYMBOLS = ("vfs_read", "ksys_read", "do_sys_openat2")
TRACEPOINTS = (("syscalls", "sys_enter_getppid"), ("sched", "sched_switch"), ("raw_syscalls", "sys_enter"))
PROG_PERF_EVENT = 7
STILL_WORKS_WITHOUT_KPROBES = "tracepoints, uprobes and sampling still work"


@dataclass
class Context:
    priv: Privileges
    config: dict[str, str] | None
    config_source: str
    tracefs: str | None
    btf_path: str = VMLINUX_BTF


def errname(err: OSError) -> str:
    code = err.errno or 0
    return f"{errno.errorcode.get(code, str(code))}: {os.strerror(code)}" if code else str(err)


def _denied(err: OSError, ctx: Context) -> bool:
    return err.errno in (errno.EPERM, errno.EACCES) and not ctx.priv.can_bpf


def _failure(what: str, err: OSError, ctx: Context, evidence: list[str], policy: str | None = None) -> Check:
    """The sentence for a refused syscall: privilege, kernel policy, or the kernel's own reason."""
    evidence = evidence + [f"{what}: {errname(err)}"]
    log = getattr(err, "verifier_log", None)
    if log:
        evidence.append(f"verifier: {log}")
    if isinstance(err, bpfsys.SyscallUnsupported):
        return Check(None, str(err.strerror), evidence)
    if _denied(err, ctx):
        return Check(False, NEEDS_PRIVILEGE, evidence)
    if err.errno == errno.EPERM and policy:
        return Check(False, policy, evidence)
    return Check(False, f"the kernel refused it: {what} failed with {errname(err)}", evidence)


def _try(steps: Callable[[list[int], list[str]], str], what: Callable[[], str], ctx: Context, evidence: list[str], policy: str | None = None) -> Check:
    """Run ``steps`` (which opens fds into the list and returns the success sentence), close everything."""
    fds: list[int] = []
    try:
        why = steps(fds, evidence)
        return Check(True, why, evidence)
    except OSError as err:
        return _failure(what(), err, ctx, evidence, policy)
    finally:
        bpfsys.close_all(fds)


def _config_line(ctx: Context, key: str) -> tuple[str | None, str]:
    if ctx.config is None:
        return None, ctx.config_source
    value = ctx.config.get(key)
    return value, f"{ctx.config_source}: {key}={value}" if value else f"{ctx.config_source}: {key} not present"


# --- maps and the syscall itself ---------------------------------------------------------------


def _map_check(map_type: int, key: int, value: int, entries: int, ok_why: str, what: str, ctx: Context, missing: str) -> Check:
    try:
        fd = bpfsys.map_create(map_type, key, value, entries)
    except OSError as err:
        check = _failure(what, err, ctx, [])
        if err.errno == errno.EINVAL:
            check.why = missing
        return check
    os.close(fd)
    return Check(True, ok_why, [f"{what}: ok"])


def bpf_syscall(ctx: Context) -> Check:
    unpriv, _ = _read(Path("/proc/sys/kernel/unprivileged_bpf_disabled"))
    check = _map_check(bpfsys.MAP_ARRAY, 4, 4, 1, "the bpf() syscall works (created and closed an array map)", "BPF_MAP_CREATE(array)", ctx, "the bpf() syscall rejects a trivial map")
    if unpriv is not None:
        check.evidence.append(f"kernel.unprivileged_bpf_disabled = {unpriv}")
    if check.ok is False and "ENOSYS" in check.evidence[0]:
        check.why = "this kernel has no bpf() syscall (built without CONFIG_BPF_SYSCALL): no live tracing; browsing and replay still work"
    return check


def ringbuf(ctx: Context) -> Check:
    return _map_check(
        bpfsys.MAP_RINGBUF, 0, 0, mmap.PAGESIZE,
        "ring buffer maps work (created a BPF_MAP_TYPE_RINGBUF map)", "BPF_MAP_CREATE(ringbuf)", ctx,
        "this kernel has no BPF ring buffer maps (added in Linux 5.8); perf buffers still work",
    )


def stack_map(ctx: Context) -> Check:
    return _map_check(
        bpfsys.MAP_STACK_TRACE, 4, 8 * 127, 16,
        "stack trace maps work (created a BPF_MAP_TYPE_STACK_TRACE map)", "BPF_MAP_CREATE(stack_trace)", ctx,
        "this kernel rejects stack trace maps: stacks are unavailable; events and counts still work",
    )


# --- kprobes --------------------------------------------------------------------------------


def _read(path: Path) -> tuple[str | None, str]:
    try:
        return path.read_text().strip(), ""
    except OSError as err:
        return None, f"{path}: {err.strerror or err}"


def _kprobe(ctx: Context, ret: bool) -> Check:
    name = "kretprobe" if ret else "kprobe"
    plural = name + "s"
    evidence: list[str] = []
    config, line = _config_line(ctx, "CONFIG_KPROBES")
    evidence.append(line)
    if ctx.tracefs:
        has_events = os.path.exists(os.path.join(ctx.tracefs, "kprobe_events"))
        evidence.append(f"{ctx.tracefs}/kprobe_events {'present' if has_events else 'absent'}")
    else:
        has_events = None
        evidence.append("tracefs not accessible, kprobe_events unknown")
    pmu_type, why_pmu = _read(Path(PMU_DIR, "kprobe", "type"))
    evidence.append(f"{PMU_DIR}/kprobe/type = {pmu_type}" if pmu_type else f"no kprobe PMU ({PMU_DIR}/kprobe absent)")

    if pmu_type is None:
        if config == "n" or (config is None and ctx.config is not None):
            return Check(
                False,
                f"{plural} are not available: this kernel is built without CONFIG_KPROBES "
                f"(no kprobe_events in tracefs, no kprobe PMU); {STILL_WORKS_WITHOUT_KPROBES}",
                evidence,
            )
        if has_events:
            return Check(True, f"{plural} available through tracefs kprobe_events (no kprobe PMU on this older kernel; not test-attached)", evidence)
        if has_events is False:
            return Check(False, f"{plural} are not available: no kprobe_events in tracefs and no kprobe PMU; {STILL_WORKS_WITHOUT_KPROBES}", evidence)
        return Check(None, f"cannot tell: no kprobe PMU, and tracefs is not accessible ({NEEDS_PRIVILEGE})", evidence)

    config_word = 0
    if ret:
        fmt, _ = _read(Path(PMU_DIR, "kprobe", "format", "retprobe"))
        if not fmt or not fmt.startswith("config:"):
            return Check(None, "the kprobe PMU has no retprobe format bit", evidence)
        config_word = 1 << int(fmt.split(":")[1].split("-")[0])
    tried = ["perf_event_open(kprobe PMU)"]

    def steps(fds: list[int], ev: list[str]) -> str:
        last: OSError | None = None
        for symbol in KPROBE_SYMBOLS:
            sym = ctypes.create_string_buffer(symbol.encode())
            tried[0] = f"perf_event_open({name} PMU, {symbol})"
            try:
                fds.append(bpfsys.perf_event_open(int(pmu_type), config_word, config1=ctypes.addressof(sym)))
            except OSError as err:
                if err.errno in (errno.ENOENT, errno.EINVAL):
                    last = err
                    continue
                raise
            prog = bpfsys.prog_load(bpfsys.PROG_KPROBE)
            fds.append(prog)
            tried[0] = f"PERF_EVENT_IOC_SET_BPF({name} on {symbol})"
            bpfsys.perf_set_bpf(fds[0], prog)
            ev.append(f"attached a {name} program to {symbol} through the PMU, then closed it")
            return f"{plural} work (attached a test {name} to {symbol} through the kprobe PMU)"
        assert last is not None
        raise last

    return _try(steps, lambda: tried[0], ctx, evidence)


def kprobe(ctx: Context) -> Check:
    return _kprobe(ctx, ret=False)


def kretprobe(ctx: Context) -> Check:
    return _kprobe(ctx, ret=True)


# --- fentry ---------------------------------------------------------------------------------


def fentry(ctx: Context) -> Check:
    evidence: list[str] = []
    try:
        data = Path(ctx.btf_path).read_bytes()
    except OSError as err:
        return Check(False, f"fentry/fexit need kernel BTF, and {ctx.btf_path} is not readable ({err.strerror or err}); kprobes, tracepoints and uprobes do not", [f"{ctx.btf_path}: {err.strerror or err}"])
    try:
        ids = func_ids(data, list(KPROBE_SYMBOLS))
    except FileFormatError as err:
        return Check(False, f"fentry/fexit need kernel BTF, and {err}", [str(err)])
    if not ids:
        return Check(None, f"none of {', '.join(KPROBE_SYMBOLS)} is a function in kernel BTF, so doctor could not try fentry", evidence)
    symbol = next(s for s in KPROBE_SYMBOLS if s in ids)
    btf_id = ids[symbol]
    evidence.append(f"{symbol} is BTF type {btf_id}")
    stage = [f"BPF_PROG_LOAD(tracing, fentry {symbol})"]

    def steps(fds: list[int], ev: list[str]) -> str:
        fds.append(bpfsys.prog_load(bpfsys.PROG_TRACING, expected_attach_type=bpfsys.ATTACH_TRACE_FENTRY, attach_btf_id=btf_id))
        stage[0] = f"BPF_RAW_TRACEPOINT_OPEN(fentry {symbol})"
        fds.append(bpfsys.raw_tracepoint_open(fds[-1], None))
        ev.append(f"loaded and attached an fentry program on {symbol}, then closed it")
        return f"fentry/fexit work (attached a test fentry program to {symbol})"

    return _try(
        steps, lambda: stage[0], ctx, evidence,
        policy=f"the kernel refuses fentry/fexit programs: loading a minimal fentry program on {symbol} "
        "failed with EPERM although we hold the privileges (a kernel policy, not missing privileges); other mechanisms are unaffected",
    )


# --- tracepoints ----------------------------------------------------------------------------


def _tracepoint_id(ctx: Context) -> tuple[str, int] | None:
    for category, event in TRACEPOINTS:
        text, _ = _read(Path(ctx.tracefs or "/nonexistent", "events", category, event, "id"))
        if text and text.isdigit():
            return f"{category}:{event}", int(text)
    return None


def tracepoint(ctx: Context) -> Check:
    if ctx.tracefs is None:
        why = NEEDS_PRIVILEGE + " (tracefs, where tracepoints are listed, is not accessible)" if ctx.priv.euid != 0 else "tracefs is not mounted and could not be mounted: tracepoints cannot be found"
        return Check(False, why, ["tracefs not found at /sys/kernel/tracing or /sys/kernel/debug/tracing"])
    found = _tracepoint_id(ctx)
    if found is None:
        return Check(False, f"no tracepoint found in {ctx.tracefs}/events (looked for {', '.join(c + ':' + e for c, e in TRACEPOINTS)})", [])
    name, tp_id = found
    evidence = [f"{name} has id {tp_id}"]
    stage = ["BPF_PROG_LOAD(tracepoint)"]

    def steps(fds: list[int], ev: list[str]) -> str:
        fds.append(bpfsys.prog_load(bpfsys.PROG_TRACEPOINT))
        stage[0] = f"perf_event_open(tracepoint {name})"
        fds.append(bpfsys.perf_event_open(bpfsys.PERF_TYPE_TRACEPOINT, tp_id))
        stage[0] = f"PERF_EVENT_IOC_SET_BPF({name})"
        bpfsys.perf_set_bpf(fds[1], fds[0])
        ev.append(f"attached a tracepoint program to {name}, then closed it")
        return f"tracepoints work (attached a test program to {name})"

    return _try(steps, lambda: stage[0], ctx, evidence)


def raw_tracepoint(ctx: Context) -> Check:
    stage = ["BPF_PROG_LOAD(raw_tracepoint)"]

    def steps(fds: list[int], ev: list[str]) -> str:
        fds.append(bpfsys.prog_load(bpfsys.PROG_RAW_TRACEPOINT))
        stage[0] = "BPF_RAW_TRACEPOINT_OPEN(sys_enter)"
        fds.append(bpfsys.raw_tracepoint_open(fds[0], b"sys_enter"))
        ev.append("attached a raw tracepoint program to sys_enter, then closed it")
        return "raw tracepoints work (attached a test program to sys_enter)"

    return _try(steps, lambda: stage[0], ctx, [])


# --- uprobes --------------------------------------------------------------------------------


def _libc_path() -> str | None:
    found = _libc_getpid()
    return found[0] if found else None


def _libc_getpid() -> tuple[str, int] | None:
    """(libc path, file offset of getpid) from where this process has libc mapped:
    dlsym's address mapped back through /proc/self/maps, instant and exact."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    address = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    if not address:
        return None
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split()
                if len(parts) < 6:
                    continue
                start, end = (int(x, 16) for x in parts[0].split("-"))
                if start <= address < end:
                    return parts[5], address - start + int(parts[2], 16)
    except (OSError, ValueError):
        return None
    return None


def elf_symbol_offset(path: str, symbol: str) -> int | None:
    """File offset of a function symbol in an ELF file (what the uprobe PMU takes), or None."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            value = None
            for section_name in (".dynsym", ".symtab"):
                section = elf.get_section_by_name(section_name)
                # .dynsym and .symtab are symbol tables; a damaged file may say otherwise
                if not isinstance(section, SymbolTableSection):
                    continue
                syms = section.get_symbol_by_name(symbol)
                if syms:
                    value = syms[0]["st_value"]
                    break
            if not value:
                return None
            for segment in elf.iter_segments("PT_LOAD"):
                vaddr, filesz = segment["p_vaddr"], segment["p_filesz"]
                if vaddr <= value < vaddr + filesz:
                    return int(value - vaddr + segment["p_offset"])
    except (OSError, ELFError, ValueError, KeyError):
        return None
    return None


def uprobe(ctx: Context) -> Check:
    evidence: list[str] = []
    pmu_type, _ = _read(Path(PMU_DIR, "uprobe", "type"))
    if pmu_type is None:
        config, line = _config_line(ctx, "CONFIG_UPROBE_EVENTS")
        return Check(False, "uprobes are not available: no uprobe PMU" + (" (kernel built without CONFIG_UPROBE_EVENTS)" if config == "n" else "") + "; tracepoints still work", [line, f"{PMU_DIR}/uprobe absent"])
    evidence.append(f"{PMU_DIR}/uprobe/type = {pmu_type}")
    found = _libc_getpid()
    if found is None:
        return Check(None, "the uprobe PMU exists, but doctor found no libc getpid to try it on", evidence)
    libc, offset = found
    evidence.append(f"getpid at file offset {offset:#x} in {libc}")
    stage = [f"perf_event_open(uprobe {libc}:getpid)"]

    def steps(fds: list[int], ev: list[str]) -> str:
        path = ctypes.create_string_buffer(libc.encode())
        fds.append(bpfsys.perf_event_open(int(pmu_type), 0, config1=ctypes.addressof(path), config2=offset))
        stage[0] = "BPF_PROG_LOAD(kprobe type, for a uprobe)"
        fds.append(bpfsys.prog_load(bpfsys.PROG_KPROBE))
        stage[0] = "PERF_EVENT_IOC_SET_BPF(uprobe)"
        bpfsys.perf_set_bpf(fds[0], fds[1])
        ev.append("attached a uprobe program to libc getpid, then closed it")
        return "uprobes work (attached a test uprobe to libc getpid)"

    return _try(steps, lambda: stage[0], ctx, evidence)


# --- sampling -------------------------------------------------------------------------------


def perf_event(ctx: Context, paranoid: str | None) -> Check:
    evidence = [f"kernel.perf_event_paranoid = {paranoid}"] if paranoid is not None else []
    stage = ["perf_event_open(cpu-clock, cpu 0)"]

    def steps(fds: list[int], ev: list[str]) -> str:
        fds.append(bpfsys.perf_event_open(bpfsys.PERF_TYPE_SOFTWARE, bpfsys.PERF_COUNT_SW_CPU_CLOCK, sample_period=10_000_000))
        stage[0] = "BPF_PROG_LOAD(perf_event)"
        fds.append(bpfsys.prog_load(PROG_PERF_EVENT))
        stage[0] = "PERF_EVENT_IOC_SET_BPF(cpu-clock)"
        bpfsys.perf_set_bpf(fds[0], fds[1])
        ev.append("attached a perf_event program to a cpu-clock sampling event on CPU 0, then closed it")
        return "perf sampling works (attached a test program to a cpu-clock event)"

    check = _try(steps, lambda: stage[0], ctx, evidence)
    if check.ok is False and check.evidence[-1].startswith("perf_event_open") and "ENOENT" in check.evidence[-1]:
        check.why = "this kernel has no software perf events (CONFIG_PERF_EVENTS): sampling is unavailable; tracepoints still work"
    return check
