"""bpftrace-style probe names -> Probes.

    kprobe:do_sys_openat2        k:do_sys_openat2        kprobe:ext4:ext4_file_write_iter
    kprobe:sym+0x10              kretprobe:vfs_read      kr:vfs_read
    fentry:x  kfunc:x  f:x       fexit:x  kretfunc:x  fr:x
    tracepoint:syscalls:sys_enter_openat                 t:sched:sched_switch
    rawtracepoint:sched_switch   rt:sched_switch
    uprobe:/usr/bin/bash:readline  u:  uretprobe:  ur:   uprobe:/bin/x:0x1234
    profile:hz:99  profile:99  profile:ms:10  p:hz:99    interval:s:1  interval:ms:100  i:s:1

Several points may be joined with commas (``kprobe:a,kprobe:b``). Globs (``*``, ``?``,
``[...]``, ``{a,b}``) expand through the catalog; without one they are refused.

``p:`` is bpftrace's short name for profile. A kprobe_events line also starts with
``p:`` but always has a symbol after a space (``p:myprobe do_sys_open``); ktui.probes.spec
sends text with a space after a leading ``p``/``r`` token to the kprobe_events parser
and everything else here, so ``p:hz:99`` is a profile and ``p:ev sym`` a kprobe.
"""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING

from ktui.errors import KtuiError, UsageError
from ktui.numbers import ADDRESS, DECIMAL_OR_HEX, FILE_OFFSET, KERNEL_OFFSET, PERIOD_COUNT, NumberError, Range, clip
from ktui.numbers import parse_int
from ktui.probes.model import Probe, ProbeKind

if TYPE_CHECKING:
    from ktui.catalog import Catalog
    from ktui.catalog.entry import Entry

MAX_EXPANSION = 1000  # BCC refuses more than 1000 open probes in one process

KIND_NAMES: dict[str, ProbeKind] = {
    "kprobe": ProbeKind.KPROBE, "k": ProbeKind.KPROBE,
    "kretprobe": ProbeKind.KRETPROBE, "kr": ProbeKind.KRETPROBE,
    "fentry": ProbeKind.FENTRY, "kfunc": ProbeKind.FENTRY, "f": ProbeKind.FENTRY,
    "fexit": ProbeKind.FEXIT, "kretfunc": ProbeKind.FEXIT, "fr": ProbeKind.FEXIT,
    "tracepoint": ProbeKind.TRACEPOINT, "t": ProbeKind.TRACEPOINT,
    "rawtracepoint": ProbeKind.RAW_TRACEPOINT, "rt": ProbeKind.RAW_TRACEPOINT,
    "uprobe": ProbeKind.UPROBE, "u": ProbeKind.UPROBE,
    "uretprobe": ProbeKind.URETPROBE, "ur": ProbeKind.URETPROBE,
    "profile": ProbeKind.PROFILE, "p": ProbeKind.PROFILE,
    "interval": ProbeKind.INTERVAL, "i": ProbeKind.INTERVAL,
    "usdt": ProbeKind.USDT, "U": ProbeKind.USDT,
    "software": ProbeKind.SOFTWARE, "s": ProbeKind.SOFTWARE,
    "hardware": ProbeKind.HARDWARE, "h": ProbeKind.HARDWARE,
}

# bpftrace providers ktui does not offer, with what to use instead.
UNSUPPORTED = {
    "BEGIN": "ktui marks the start of a session itself; BEGIN is not a probe here",
    "END": "ktui marks the end of a session itself; END is not a probe here",
    "watchpoint": "watchpoints are not supported",
    "w": "watchpoints are not supported",
    "asyncwatchpoint": "watchpoints are not supported",
    "aw": "watchpoints are not supported",
    "iter": "BPF iterators are not supported",
    "it": "BPF iterators are not supported",
    "self": "bpftrace's self probes are not supported",
}

# ASCII only: these names reach generated code and attach calls.
SYMBOL = re.compile(r"^[A-Za-z_.$][\w.$]*\Z", re.ASCII)
MODULE = re.compile(r"^[A-Za-z_][\w-]*\Z", re.ASCII)
TP_PART = re.compile(r"^[\w-]+\Z", re.ASCII)
USYMBOL = re.compile(r"^[A-Za-z_.$][\w.$@]*\Z", re.ASCII)
GLOB_CHARS = re.compile(r"[*?\[\]{}]")

_NUMBER = r"(?:0[xX][0-9A-Fa-f]+|[0-9]+)"
_SYM_OFFSET = re.compile(rf"^(.+?)\+({_NUMBER})\Z")
_ADDRESS = re.compile(r"^0[xX][0-9A-Fa-f]+\Z")

_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_COMPACT_PERIOD = re.compile(r"^([0-9]+)(hz|s|ms|us|ns)\Z")

MAX_HZ = 1_000_000


def is_glob(text: str) -> bool:
    return bool(GLOB_CHARS.search(text))


def _number(text: str, what: str, source: str, limits: Range) -> int:
    """bpftrace spells numbers in names as decimal or 0x hex; a leading 0 is not octal."""
    try:
        return parse_int(text, DECIMAL_OR_HEX, what, limits)
    except NumberError as err:
        raise UsageError(f"{clip(source)!r}: {err}") from None


def parse_bpftrace_names(text: str, catalog: Catalog | None = None) -> list[Probe]:
    """One or more comma-separated bpftrace probe names -> Probes (globs expanded)."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError("a probe name is empty: write one like kprobe:do_sys_openat2")
    probes: list[Probe] = []
    for part in _split_points(text):
        probes.extend(parse_bpftrace_name(part, catalog))
    return probes


def _split_points(text: str) -> list[str]:
    """Split at commas that are not inside a {a,b} glob alternative."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for c in text.strip():
        if c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        if c == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur).strip())
    for p in parts:
        if not p:
            raise UsageError(f"{text.strip()!r} has an empty probe name between commas")
    return parts


def parse_bpftrace_name(text: str, catalog: Catalog | None = None) -> list[Probe]:
    """One bpftrace probe name -> Probes: one, or several when a glob expands."""
    source = text.strip()
    if not source:
        raise UsageError("a probe name is empty: write one like kprobe:do_sys_openat2")
    if re.search(r"\s[{/]", source):  # "NAME { ... }" or "NAME /pred/ { ... }": a whole program
        raise UsageError(f"{source!r}: ktui reads bpftrace probe names, not programs; give the name "
                         f"(like kprobe:do_sys_openat2) and set fetches and the filter in ktui")
    if any(c.isspace() for c in source):
        raise UsageError(f"{source!r}: a probe name has no spaces (write kprobe:do_sys_openat2)")
    head, sep, rest = source.partition(":")
    if head in UNSUPPORTED:
        raise UsageError(f"{source!r}: {UNSUPPORTED[head]}")
    if not sep or head not in KIND_NAMES:
        known = ("kprobe, kretprobe, fentry, fexit, tracepoint, rawtracepoint, uprobe, uretprobe, usdt, profile, "
                 "interval, software, hardware")
        raise UsageError(f"{source!r} is not a probe name: it should start with one of {known} and ':'")
    kind = KIND_NAMES[head]
    if kind is ProbeKind.PROFILE:
        return [_profile(rest, source)]
    if kind is ProbeKind.INTERVAL:
        return [_interval(rest, source)]
    if kind.is_perf_event:
        return [perf_event_probe(kind, rest, source)]
    if kind is ProbeKind.USDT:
        return usdt_probes(rest, source)
    if not rest:
        raise UsageError(f"{source!r} names no {kind} target")
    if is_glob(rest):
        return _expand(kind, rest, source, catalog)
    if kind.is_kernel_function:
        return [_kernel_function(kind, rest, source)]
    if kind is ProbeKind.TRACEPOINT:
        return [_tracepoint(rest, source)]
    if kind is ProbeKind.RAW_TRACEPOINT:
        return [_raw_tracepoint(rest, source)]
    return [_uprobe(kind, rest, source)]


def _kernel_function(kind: ProbeKind, rest: str, source: str) -> Probe:
    parts = rest.split(":")
    if len(parts) > 2:
        raise UsageError(f"{source!r}: expected {kind}:SYMBOL or {kind}:MODULE:SYMBOL")
    module = parts[0] if len(parts) == 2 else None
    sym = parts[-1]
    if module is not None and not MODULE.match(module):
        raise UsageError(f"{source!r}: {module!r} is not a module name")
    if module == "vmlinux":
        module = None
    offset = 0
    if m := _SYM_OFFSET.match(sym):
        sym, offset = m.group(1), _number(m.group(2), "the offset", source, KERNEL_OFFSET)
        if kind is not ProbeKind.KPROBE and offset:
            raise UsageError(f"{source!r}: only a kprobe takes an offset; {kind} attaches to the function itself")
    if _ADDRESS.match(sym) and kind is ProbeKind.KPROBE and module is None:
        address = _number(sym, "the address", source, ADDRESS) + offset
        if address >= 1 << 64:
            raise UsageError(f"{source!r}: the address does not fit in 64 bits")
        return Probe(kind, "", address=address, source=source, name=f"kprobe_{address:x}")
    if not SYMBOL.match(sym):
        raise UsageError(f"{source!r}: {sym!r} is not a kernel symbol name")
    return Probe(kind, sym, module=module, offset=offset, source=source)


def _tracepoint(rest: str, source: str) -> Probe:
    parts = rest.split(":")
    if len(parts) != 2 or not all(TP_PART.match(p) for p in parts):
        raise UsageError(f"{source!r}: expected tracepoint:CATEGORY:EVENT, like tracepoint:sched:sched_switch")
    return Probe(ProbeKind.TRACEPOINT, rest, source=source)


def _raw_tracepoint(rest: str, source: str) -> Probe:
    parts = rest.split(":")
    if len(parts) > 2 or not all(TP_PART.match(p) for p in parts):
        raise UsageError(f"{source!r}: expected rawtracepoint:EVENT (or rawtracepoint:MODULE:EVENT)")
    module = parts[0] if len(parts) == 2 and parts[0] != "vmlinux" else None
    return Probe(ProbeKind.RAW_TRACEPOINT, parts[-1], module=module, source=source)


def _uprobe(kind: ProbeKind, rest: str, source: str) -> Probe:
    binary, sep, sym = rest.rpartition(":")
    if not sep or not binary or not sym:
        raise UsageError(f"{source!r}: expected {kind}:BINARY:FUNCTION, like uprobe:/usr/bin/bash:readline")
    if any(ord(c) < 32 or c == "\x7f" for c in binary):
        raise UsageError(f"{source!r}: the binary path holds a control character")
    if _ADDRESS.match(sym):
        if kind is ProbeKind.URETPROBE:
            raise UsageError(f"{source!r}: a uretprobe attaches to a function, not an address")
        return Probe(kind, "", binary=binary, offset=_number(sym, "the offset", source, FILE_OFFSET), source=source,
                     name=f"uprobe_{sym[2:].lower()}")
    offset = 0
    if m := _SYM_OFFSET.match(sym):
        sym, offset = m.group(1), _number(m.group(2), "the offset", source, FILE_OFFSET)
        if kind is ProbeKind.URETPROBE and offset:
            raise UsageError(f"{source!r}: only a uprobe takes an offset; a uretprobe attaches to the function itself")
    if not USYMBOL.match(sym):
        raise UsageError(f"{source!r}: {sym!r} is not a function name")
    return Probe(kind, sym, binary=binary, offset=offset, source=source)


def _period(rest: str, source: str, default_unit: str | None) -> tuple[str, int]:
    """'hz:99' / 'ms:10' / '99' / '10ms' -> (unit, count)."""
    parts = rest.split(":")
    if len(parts) == 2:
        unit, count = parts
    elif len(parts) == 1 and (m := _COMPACT_PERIOD.match(parts[0])):
        count, unit = m.group(1), m.group(2)
    elif len(parts) == 1 and default_unit and parts[0].isdigit():
        unit, count = default_unit, parts[0]
    else:
        example = "profile:hz:99" if default_unit else "interval:s:1 or interval:ms:100"
        raise UsageError(f"{source!r}: expected UNIT:COUNT with UNIT one of hz, s, ms, us, ns (like {example})")
    if unit not in ("hz", *_NS_PER_UNIT):
        raise UsageError(f"{source!r}: unknown unit {unit!r} (known: hz, s, ms, us, ns)")
    if not count.isascii() or not count.isdigit() or count.strip("0") == "":
        raise UsageError(f"{clip(source)!r}: the count must be a positive whole number")
    return unit, _number(count, "the count", source, PERIOD_COUNT)


def _profile(rest: str, source: str) -> Probe:
    unit, count = _period(rest, source, default_unit="hz")
    if unit == "hz":
        hz = count
    else:
        period_ns = count * _NS_PER_UNIT[unit]
        if 1_000_000_000 % period_ns:
            raise UsageError(f"{source!r}: a period of {count}{unit} is not a whole number of samples a second; "
                             f"ktui samples at whole Hz (write profile:hz:{max(1, round(1e9 / period_ns))})")
        hz = 1_000_000_000 // period_ns
    if hz > MAX_HZ:
        raise UsageError(f"{source!r}: {hz} Hz is more than ktui samples ({MAX_HZ} Hz at most)")
    return Probe(ProbeKind.PROFILE, "", frequency=hz, source=source)


def _interval(rest: str, source: str) -> Probe:
    unit, count = _period(rest, source, default_unit=None)
    if unit == "hz":
        if count > 1_000_000_000:
            raise UsageError(f"{source!r}: {count} Hz is faster than one nanosecond")
        period_ns = round(1_000_000_000 / count)
    else:
        period_ns = count * _NS_PER_UNIT[unit]
    return Probe(ProbeKind.INTERVAL, "", period_ns=period_ns, source=source)


# ---------------------------------------------------------------------------
# Globs, through the catalog.

_CATALOG_KIND = {
    ProbeKind.KPROBE: "kprobe", ProbeKind.KRETPROBE: "kprobe", ProbeKind.FENTRY: "kprobe", ProbeKind.FEXIT: "kprobe",
    ProbeKind.TRACEPOINT: "tracepoint", ProbeKind.RAW_TRACEPOINT: "rawtracepoint",
    ProbeKind.UPROBE: "uprobe", ProbeKind.URETPROBE: "uprobe",
}


def _expand(kind: ProbeKind, rest: str, source: str, catalog: Catalog | None) -> list[Probe]:
    if catalog is None:
        raise UsageError(f"{source!r} is a glob; expanding globs needs the catalog of probe points "
                         f"(name one probe point, or load the catalog)")
    ckind = _CATALOG_KIND[kind]
    if kind.is_kernel_function and ":" in rest:  # kprobe:MOD:glob -> search by symbol, keep that module's
        module, _, pattern = rest.partition(":")
        entries = [e for e in catalog.search(f"{ckind}:{pattern}", mode="glob")
                   if fnmatch.fnmatchcase(getattr(e, "module", None) or "vmlinux", module)]
    else:
        entries = list(catalog.search(f"{ckind}:{rest}", mode="glob"))
    entries = [e for e in entries if getattr(e, "kind", ckind) == ckind]
    if not entries:
        raise UsageError(f"{source!r} matches no {ckind} probe point in the catalog")
    if len(entries) > MAX_EXPANSION:
        raise UsageError(f"{source!r} matches {len(entries)} probe points; at most {MAX_EXPANSION} can be "
                         f"attached at once (narrow the pattern)")
    probes = []
    for e in entries:
        probe = _from_entry(kind, e, source)
        if probe is not None:
            probes.append(probe)
    return probes


def _from_entry(kind: ProbeKind, entry: Entry, source: str) -> Probe | None:
    symbol = entry.symbol
    if kind is ProbeKind.TRACEPOINT:
        return Probe(kind, symbol, source=source)
    if kind is ProbeKind.RAW_TRACEPOINT:
        return Probe(kind, symbol, source=source)
    if kind.is_user:
        name = entry.name  # uprobe:/path:sym
        binary = name.split(":", 1)[1].rsplit(":", 1)[0] if name.count(":") >= 2 else None
        return Probe(kind, symbol, binary=binary, source=source)
    return Probe(kind, symbol, module=getattr(entry, "module", None), source=source)


# ---------------------------------------------------------------------------
# USDT markers and perf events.

USDT_NAME = re.compile(r"^[A-Za-z_][\w]*\Z", re.ASCII)
USDT_GLOB = re.compile(r"^[\w*?\[\]!{},]+\Z", re.ASCII)


def usdt_probes(rest: str, source: str) -> list[Probe]:
    """usdt:PATH:PROVIDER:NAME or usdt:PATH:NAME; a glob in PROVIDER/NAME expands over the
    file's own markers (read from its .note.stapsdt, no kernel catalog needed)."""
    parts = rest.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise UsageError(f"{source!r}: expected usdt:PATH:PROVIDER:NAME (or usdt:PATH:NAME), "
                         f"like usdt:/usr/bin/python3.11:python:function__entry")
    path = parts[0]
    if any(ord(c) < 32 or c == "\x7f" for c in path):
        raise UsageError(f"{source!r}: the path holds a control character")
    if not path.startswith("/"):
        raise UsageError(f"{source!r}: give the program or library by its full path (usdt:/usr/bin/python3.11:...)")
    provider, name = (parts[1], parts[2]) if len(parts) == 3 else (None, parts[1])
    words = [w for w in (provider, name) if w is not None]
    if any(is_glob(w) for w in words):
        if not all(USDT_GLOB.match(w) for w in words):
            raise UsageError(f"{source!r}: a provider or marker name holds characters no marker has")
        from ktui.catalog.usdt import read_markers

        try:
            markers = read_markers(path)
        except KtuiError as err:
            raise UsageError(f"{source!r}: {err.message}") from None
        probes = [Probe(ProbeKind.USDT, f"{m.provider}:{m.name}", binary=path, source=source)
                  for m in markers if fnmatch.fnmatchcase(m.name, name)
                  and (provider is None or fnmatch.fnmatchcase(m.provider, provider))]
        unique = {p.target: p for p in probes}
        if not unique:
            raise UsageError(f"{source!r} matches no USDT marker of {path}")
        if len(unique) > MAX_EXPANSION:
            raise UsageError(f"{source!r} matches {len(unique)} markers; at most {MAX_EXPANSION} can be attached at once")
        return list(unique.values())
    for w in words:
        if not USDT_NAME.match(w):
            raise UsageError(f"{source!r}: {w!r} is not a USDT provider or marker name")
    target = f"{provider}:{name}" if provider else name
    return [Probe(ProbeKind.USDT, target, binary=path, source=source)]


def perf_event_probe(kind: ProbeKind, rest: str, source: str) -> Probe:
    """software:EVENT[:PERIOD] / hardware:EVENT[:PERIOD] with bpftrace's names, aliases and default periods."""
    from ktui.probes.perf_events import MAX_PERIOD, lookup, names

    event, _, count = rest.partition(":")
    ev = lookup(str(kind), event)
    if ev is None:
        raise UsageError(f"{source!r}: {event!r} is not a {kind} event (known: {', '.join(names(str(kind)))})")
    if not count:
        period = ev.default_period
    else:
        if not count.isascii() or not count.isdigit() or int(count) <= 0:
            raise UsageError(f"{source!r}: the period (events per sample) must be a positive whole number")
        if len(count) > 19 or int(count) > MAX_PERIOD:
            raise UsageError(f"{source!r}: the period {count} is too large")
        period = int(count)
    return Probe(kind, ev.name, period=period, source=source)
