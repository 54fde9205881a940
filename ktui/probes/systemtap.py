"""SystemTap probe points, handler values and small scripts -> Probes.

Points:
    kernel.function("ip_rcv")[.call|.return]          kprobe / kretprobe
    kernel.function("x").return.maxactive(N)          kretprobe with maxactive
    kernel.function("*fork*@kernel/fork.c").return    a glob (needs the catalog); @FILE: see below
    module("ext4").function("ext4_file_write_iter")   kprobe in a module
    process("/usr/bin/ls").function("main")[.return]  uprobe / uretprobe
    kernel.trace("sched_switch")                      tracepoint (the catalog finds its category;
                                                      "sched:sched_switch" needs no catalog)
    syscall.openat[.return]  nd_syscall.openat        tracepoint syscalls:sys_enter_openat / sys_exit_openat
    timer.ms(200) timer.s(1) timer.us(N) timer.ns(N) timer.hz(N)    interval
    timer.profile  perf.sw.cpu_clock[.sample(NS)]     profile (timer.profile fires on each tick in SystemTap;
                                                      ktui samples it at 100 Hz and says so in the notes)
    begin  end                                        not probes: ktui marks a session's start and end
                                                      itself. Alone they are refused; in a script their
                                                      blocks are skipped with a note.

@FILE in a function pattern: for one named function it only disambiguates, and is kept in the
probe's source text. For a glob it narrows the match by source file, which needs source
locations (DWARF) in the catalog; without them the pattern is refused with a sentence,
never silently widened.

Handler values (parse_stap_values): execname() pid() tid() uid() gid() cpu() pp() ppfunc()
probefunc() $return $$return $argname $var->member $$parms kernel_string($x) user_string($x)
print_backtrace() print_ubacktrace() (-> a STACKS action).

Scripts (parse_systemtap_script -> StapScript(probes, notes)): ``global NAME, ...`` and
``probe POINT[, POINT] { STATEMENTS }``, repeated. Statements that map: printf/println/print/log
(their values become fetches and the probe streams events; the format text is display only),
print_backtrace() (a STACKS action), ``if (COND) ...`` (COND becomes the probe's filter, in the
filter language: comparisons, &&, ||, !), ``exit()`` (ignored, with a note), ``NAME[keys]++``
(a COUNT action keyed by those values). An argument named like a builtin ($pid) is fetched
as pid_arg. Everything else (guru mode ``%{ %}``, embedded C, function definitions, loops,
assignments, else, set_kernel_*, unknown tapset functions) is refused with a sentence naming it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ktui.errors import KtuiError, ParseError, UsageError
from ktui.numbers import INT64, PERIOD_NS, U64, C, NumberError, Range, check_range, parse_int
from ktui.probes.bpftrace_names import MAX_EXPANSION, MODULE, SYMBOL, is_glob
from ktui.probes.filter import format_string, parse_filter
from ktui.probes.model import (
    BUILTINS,
    STRING,
    Action,
    ActionKind,
    Arg,
    Builtin,
    Fetch,
    FetchExpr,
    Member,
    Probe,
    ProbeKind,
    Retval,
    ValueType,
)

if TYPE_CHECKING:
    from ktui.catalog import Catalog
    from ktui.catalog.entry import Arg as CatalogArg
    from ktui.catalog.entry import Entry

MAX_SCRIPT = 65536
MAX_DEPTH = 32
TIMER_PROFILE_HZ = 100
PERF_DEFAULT_PERIOD_NS = 1_000_000  # SystemTap's default sample period

USTRING = ValueType("ustring", 0)


@dataclass
class StapScript:
    """What a SystemTap text became: the probes, and sentences about what was left out."""
    probes: list[Probe] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Tokens

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<guru>%\{|%\})
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>0[xX][0-9A-Fa-f]+|[0-9]+)
  | (?P<var>\$\$?[A-Za-z_][A-Za-z0-9_]*|\$[0-9]+|@[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_*?][A-Za-z0-9_*?]*)
  | (?P<op>->|\+\+|--|<<<|==|!=|<=|>=|&&|\|\||[-+*/%<>!=.,;(){}\[\]&|^~?:])
    """,
    re.VERBOSE | re.S,
)


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    i = 0
    while i < len(text):
        if text.startswith("/*", i) and text.find("*/", i + 2) < 0:
            raise ParseError("comment '/*' is never closed", text=text, pos=i)
        m = _TOKEN.match(text, i)
        if m is None:
            if text[i] == '"':
                raise ParseError("string is not closed: expected '\"'", text=text, pos=i)
            raise ParseError(f"unexpected character {text[i]!r}", text=text, pos=i)
        kind = m.lastgroup
        if kind == "guru":
            raise UsageError("guru-mode embedded C (%{ ... %}) cannot be mapped: ktui never puts "
                             "user-written C into a kernel program")
        if kind not in ("space", "comment"):
            toks.append(Tok(kind or "", m.group(), i))
        i = m.end()
    toks.append(Tok("end", "", len(text)))
    return toks


def _unquote(s: str) -> str:
    body = s[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _number(tok: Tok, text: str, limits: Range) -> int:
    """A number token as SystemTap reads it (strtoll base 0: 0x hex, a leading 0 octal)."""
    try:
        return parse_int(tok.text, C, "", limits)
    except NumberError as err:
        raise ParseError(str(err), text=text, pos=tok.pos) from None


class _Stream:
    def __init__(self, text: str, toks: list[Tok]):
        self.text = text
        self.toks = toks
        self.i = 0

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def peek(self, n: int = 1) -> Tok:
        return self.toks[min(self.i + n, len(self.toks) - 1)]

    def take(self) -> Tok:
        t = self.tok
        if t.kind != "end":
            self.i += 1
        return t

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("op", "ident") and self.tok.text in texts

    def expect(self, text: str, what: str | None = None) -> Tok:
        if not self.at(text):
            raise self.error(what or f"'{text}'")
        return self.take()

    def error(self, expected: str) -> ParseError:
        found = "end of input" if self.tok.kind == "end" else f"'{self.tok.text}'"
        return ParseError(f"expected {expected} but found {found}", text=self.text, pos=self.tok.pos)


# ---------------------------------------------------------------------------
# Probe points

@dataclass
class _Component:
    name: str
    arg: str | int | None
    pos: int


def _parse_point(s: _Stream) -> tuple[list[_Component], str]:
    """One dotted probe point; returns its components and its source text."""
    start = s.tok.pos
    comps: list[_Component] = []
    while True:
        if s.tok.kind != "ident":
            raise s.error("a probe point name")
        name_tok = s.take()
        arg: str | int | None = None
        if s.at("("):
            s.take()
            if s.tok.kind == "string":
                arg = _unquote(s.take().text)
            elif s.tok.kind == "number":
                arg = _number(s.take(), s.text, U64)
            else:
                raise s.error('a quoted name or a number')
            s.expect(")")
        comps.append(_Component(name_tok.text, arg, name_tok.pos))
        if s.at("?", "!"):  # optional / sufficient probe markers
            s.take()
        if not s.at("."):
            break
        s.take()
    end = s.toks[s.i - 1]
    return comps, s.text[start:end.pos + len(end.text)].strip()


def _names(comps: list[_Component]) -> list[str]:
    return [c.name for c in comps]


def _point_probes(comps: list[_Component], source: str, catalog: Catalog | None, notes: list[str]) -> list[Probe]:
    names = _names(comps)
    head = names[0]
    if head in ("begin", "end", "error", "never"):
        raise UsageError(f"'{source}' is not a probe in ktui: it marks the start and end of a session itself")
    if head == "kernel" and len(comps) >= 2 and comps[1].name == "function":
        return _function(comps, 1, source, catalog, module=None, notes=notes)
    if head == "module" and len(comps) >= 2 and comps[1].name == "function":
        mod = _str_arg(comps[0], source)
        if not is_glob(mod) and not MODULE.match(mod):
            raise UsageError(f"'{source}': {mod!r} is not a kernel module name")
        return _function(comps, 1, source, catalog, module=mod, notes=notes)
    if head in ("kernel", "module") and len(comps) >= 2 and comps[1].name == "statement":
        raise UsageError(f"'{source}': statement probes need DWARF line tables; ktui places function probes only")
    if head == "process":
        return _process(comps, source, catalog)
    if head == "kernel" and len(comps) >= 2 and comps[1].name == "trace":
        return _trace(comps, source, catalog)
    if head in ("syscall", "nd_syscall", "syscall_any", "nd_syscall_any"):
        return _syscall(comps, source, catalog)
    if head == "timer":
        return [_timer(comps, source, notes)]
    if head == "perf":
        return [_perf(comps, source)]
    raise UsageError(f"'{source}': the probe point '{head}' is not one ktui can map (known: kernel.function, "
                     f"module().function, process().function, process().mark, kernel.trace, syscall.NAME, timer.*, "
                     f"perf.sw.*, perf.hw.*)")


def _str_arg(comp: _Component, source: str) -> str:
    if not isinstance(comp.arg, str) or not comp.arg:
        raise UsageError(f"'{source}': {comp.name}(...) takes a quoted name")
    return comp.arg


def _int_arg(comp: _Component, source: str) -> int:
    if not isinstance(comp.arg, int) or comp.arg <= 0:
        raise UsageError(f"'{source}': {comp.name}(...) takes a positive number")
    return comp.arg


def _suffix(comps: list[_Component], start: int, source: str) -> tuple[bool, int]:
    """.call / .return / .return.maxactive(N) after a function: (is_return, maxactive)."""
    is_return, maxactive = False, 0
    for c in comps[start:]:
        if c.name == "call" and c.arg is None:
            continue
        if c.name == "return" and c.arg is None:
            is_return = True
        elif c.name == "maxactive" and is_return:
            maxactive = _int_arg(c, source)
            if maxactive > 4096:
                raise UsageError(f"'{source}': maxactive {maxactive} is more than the kernel allows (4096)")
        elif c.name == "inline":
            raise UsageError(f"'{source}': inlined instances need DWARF; ktui probes real function entries")
        elif c.name in ("exported", "callee", "callees", "label", "statement"):
            raise UsageError(f"'{source}': .{c.name} needs DWARF and is not supported")
        else:
            raise UsageError(f"'{source}': unknown part '.{c.name}' (expected .call, .return or .return.maxactive(N))")
    return is_return, maxactive


def _split_pattern(pattern: str, source: str) -> tuple[str, str | None]:
    func, at, file = pattern.partition("@")
    if at and ":" in file:
        raise UsageError(f"'{source}': a line number ({file}) makes it a statement probe, which needs DWARF line "
                         f"tables; ktui places function probes only")
    if not func:
        raise UsageError(f"'{source}': the function pattern is empty")
    return func, (file if at else None)


def _function(comps: list[_Component], fi: int, source: str, catalog: Catalog | None, module: str | None, notes: list[str]) -> list[Probe]:
    pattern = _str_arg(comps[fi], source)  # kernel.function(P) and module(M).function(P): P is comps[1]
    func, file = _split_pattern(pattern, source)
    is_return, maxactive = _suffix(comps, 2, source)
    kind = ProbeKind.KRETPROBE if is_return else ProbeKind.KPROBE
    if not is_glob(func) and (module is None or not is_glob(module)):
        if not SYMBOL.match(func):
            raise UsageError(f"'{source}': {func!r} is not a kernel function name")
        return [Probe(kind, func, module=module, maxactive=maxactive, source=source)]
    if catalog is None:
        raise UsageError(f"'{source}' is a glob; expanding globs needs the catalog of probe points")
    entries = [e for e in catalog.search(f"kprobe:{func}", mode="glob") if getattr(e, "kind", "kprobe") == "kprobe"]
    if module is not None:
        entries = [e for e in entries if fnmatch.fnmatchcase(getattr(e, "module", None) or "", module)]
    if file is not None:
        located = [(e, _source_file(e)) for e in entries]
        if entries and all(f is None for _, f in located):
            raise UsageError(f"'{source}' limits the match to the source file {file}, and the catalog has no source "
                             f"locations (that needs the kernel's DWARF debuginfo); drop @{file} to probe every "
                             f"match, or load debuginfo")
        entries = [e for e, f in located if f is not None and _file_matches(f, file)]
    if not entries:
        raise UsageError(f"'{source}' matches no kernel function in the catalog")
    if len(entries) > MAX_EXPANSION:
        raise UsageError(f"'{source}' matches {len(entries)} functions; at most {MAX_EXPANSION} can be attached "
                         f"at once (narrow the pattern)")
    return [Probe(kind, e.symbol, module=getattr(e, "module", None), maxactive=maxactive, source=source)
            for e in entries]


def _source_file(entry: Entry) -> str | None:
    try:
        src = entry.source  # computed lazily by the catalog; may need files that are not there
    except (KtuiError, AttributeError, OSError, ValueError):
        return None
    if not src:
        return None
    return str(src).split(":", 1)[0]


def _file_matches(path: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(path, pattern) or path.endswith("/" + pattern) or fnmatch.fnmatchcase(path, "*/" + pattern)


def _process(comps: list[_Component], source: str, catalog: Catalog | None) -> list[Probe]:
    if comps[0].arg is None:
        raise UsageError(f"'{source}': process.function needs a program path (process(\"/usr/bin/ls\")); "
                         f"ktui does not take a target process from -x/-c here")
    binary = _str_arg(comps[0], source)
    if any(ord(c) < 32 or c == "\x7f" for c in binary):
        raise UsageError(f"'{source}': the program path holds a control character")
    if len(comps) >= 2 and comps[1].name in ("mark", "provider"):
        return _mark(comps, binary, source)
    if len(comps) < 2 or comps[1].name != "function":
        what = comps[1].name if len(comps) > 1 else "nothing"
        raise UsageError(f"'{source}': process(...).{what} is not supported "
                         f"(process(...).function(...) and process(...).mark(...) are)")
    func, file = _split_pattern(_str_arg(comps[1], source), source)
    is_return, maxactive = _suffix(comps, 2, source)
    if maxactive:
        raise UsageError(f"'{source}': maxactive is for kernel return probes only")
    kind = ProbeKind.URETPROBE if is_return else ProbeKind.UPROBE
    if not is_glob(func):
        if not re.match(r"^[A-Za-z_.$][\w.$@]*\Z", func, re.ASCII):
            raise UsageError(f"'{source}': {func!r} is not a function name")
        return [Probe(kind, func, binary=binary, source=source)]
    if catalog is None:
        raise UsageError(f"'{source}' is a glob; expanding it needs the catalog of {binary}'s functions")
    entries = [e for e in catalog.search(f"uprobe:{binary}:{func}", mode="glob") if getattr(e, "kind", "uprobe") == "uprobe"]
    if not entries:
        raise UsageError(f"'{source}' matches no function of {binary} in the catalog")
    if len(entries) > MAX_EXPANSION:
        raise UsageError(f"'{source}' matches {len(entries)} functions; at most {MAX_EXPANSION} can be attached at once")
    return [Probe(kind, e.symbol, binary=binary, source=source) for e in entries]


def _trace(comps: list[_Component], source: str, catalog: Catalog | None) -> list[Probe]:
    name = _str_arg(comps[1], source)
    if len(comps) > 2:
        raise UsageError(f"'{source}': kernel.trace(...) takes no further parts")
    if ":" in name:
        cat, _, ev = name.partition(":")
        pattern = f"tracepoint:{cat}:{ev}"
    else:
        pattern = f"tracepoint:*:{name}"
    if not is_glob(pattern.split(":", 1)[1]) and ":" in name:
        if not re.match(r"^[\w-]+:[\w-]+\Z", name, re.ASCII):
            raise UsageError(f"'{source}': {name!r} is not a tracepoint name")
        return [Probe(ProbeKind.TRACEPOINT, name, source=source)]
    if catalog is None:
        raise UsageError(f"'{source}': finding the category of tracepoint {name!r} needs the catalog "
                         f"(or write kernel.trace(\"CATEGORY:{name}\"))")
    entries = [e for e in catalog.search(pattern, mode="glob") if getattr(e, "kind", "tracepoint") == "tracepoint"]
    if not entries:
        raise UsageError(f"'{source}' matches no tracepoint in the catalog")
    if len(entries) > MAX_EXPANSION:
        raise UsageError(f"'{source}' matches {len(entries)} tracepoints; at most {MAX_EXPANSION} at once")
    return [Probe(ProbeKind.TRACEPOINT, e.symbol, source=source) for e in entries]


def _syscall(comps: list[_Component], source: str, catalog: Catalog | None) -> list[Probe]:
    if len(comps) < 2 or comps[1].arg is not None:
        raise UsageError(f"'{source}': expected syscall.NAME or syscall.NAME.return")
    name = comps[1].name
    rest = _names(comps[2:])
    if rest not in ([], ["return"]):
        raise UsageError(f"'{source}': expected syscall.NAME or syscall.NAME.return")
    event = ("sys_exit_" if rest else "sys_enter_") + name
    if not is_glob(name):
        if not re.match(r"^\w+\Z", name, re.ASCII):
            raise UsageError(f"'{source}': {name!r} is not a system call name")
        return [Probe(ProbeKind.TRACEPOINT, f"syscalls:{event}", source=source)]
    if catalog is None:
        raise UsageError(f"'{source}' is a glob; expanding globs needs the catalog of probe points")
    entries = [e for e in catalog.search(f"tracepoint:syscalls:{event}", mode="glob")
               if getattr(e, "kind", "tracepoint") == "tracepoint"]
    if not entries:
        raise UsageError(f"'{source}' matches no syscall tracepoint in the catalog")
    if len(entries) > MAX_EXPANSION:
        raise UsageError(f"'{source}' matches {len(entries)} tracepoints; at most {MAX_EXPANSION} at once")
    return [Probe(ProbeKind.TRACEPOINT, e.symbol, source=source) for e in entries]


_TIMER_NS = {"s": 1_000_000_000, "sec": 1_000_000_000, "ms": 1_000_000, "msec": 1_000_000,
             "us": 1_000, "usec": 1_000, "ns": 1, "nsec": 1}


def _timer(comps: list[_Component], source: str, notes: list[str]) -> Probe:
    if len(comps) < 2:
        raise UsageError(f"'{source}': expected timer.ms(N), timer.s(N), timer.hz(N) or timer.profile")
    unit = comps[1]
    for extra in comps[2:]:
        if extra.name == "randomize":
            raise UsageError(f"'{source}': randomized timers are not supported")
        if not (unit.name == "profile" and extra.name == "tick"):
            raise UsageError(f"'{source}': unknown part '.{extra.name}'")
    if unit.name == "profile":
        notes.append(f"{source}: SystemTap fires timer.profile on every scheduler tick; ktui samples at "
                     f"{TIMER_PROFILE_HZ} Hz on every CPU")
        return Probe(ProbeKind.PROFILE, "", frequency=TIMER_PROFILE_HZ, source=source)
    if unit.name == "jiffies":
        raise UsageError(f"'{source}': jiffies depend on the kernel's HZ; write timer.ms(N) instead")
    if unit.name == "hz":
        hz = _int_arg(unit, source)
        if hz > 1_000_000_000:
            raise UsageError(f"'{source}': {hz} Hz is faster than one nanosecond")
        return Probe(ProbeKind.INTERVAL, "", period_ns=round(1_000_000_000 / hz), source=source)
    if unit.name in _TIMER_NS:
        n = _int_arg(unit, source)
        if n > 10**12:
            raise UsageError(f"'{source}': {n} is too large")
        try:
            period_ns = check_range(n * _TIMER_NS[unit.name], "the period in nanoseconds", PERIOD_NS)
        except NumberError as err:
            raise UsageError(f"'{source}': {err}") from None
        return Probe(ProbeKind.INTERVAL, "", period_ns=period_ns, source=source)
    raise UsageError(f"'{source}': unknown timer '{unit.name}' (known: s, ms, us, ns, hz, profile)")


def _mark(comps: list[_Component], binary: str, source: str) -> list[Probe]:
    """process("PATH").mark("NAME") and process("PATH").provider("P").mark("NAME"): a USDT marker."""
    from ktui.probes.bpftrace_names import usdt_probes

    provider = None
    rest = comps[1:]
    if rest[0].name == "provider":
        provider = _str_arg(rest[0], source)
        rest = rest[1:]
    if len(rest) != 1 or rest[0].name != "mark":
        raise UsageError(f"'{source}': expected process(\"PATH\").mark(\"NAME\") "
                         f"(or process(\"PATH\").provider(\"P\").mark(\"NAME\"))")
    name = _str_arg(rest[0], source)
    spec = f"{binary}:{provider}:{name}" if provider else f"{binary}:{name}"
    probes = usdt_probes(spec, source)
    return probes


def _perf(comps: list[_Component], source: str) -> Probe:
    names = _names(comps)
    if len(names) >= 3 and names[1] in ("sw", "hw") and names[:3] != ["perf", "sw", "cpu_clock"]:
        return _perf_event(comps, source)
    if names[:3] != ["perf", "sw", "cpu_clock"]:
        raise UsageError(f"'{source}': expected perf.sw.EVENT or perf.hw.EVENT (like perf.sw.page_faults, "
                         f"perf.hw.cache_misses), optionally .sample(N)")
    period = PERF_DEFAULT_PERIOD_NS
    for c in comps[3:]:
        if c.name == "sample":
            period = _int_arg(c, source)
        else:
            raise UsageError(f"'{source}': unknown part '.{c.name}' (expected .sample(NS))")
    if 1_000_000_000 % period:
        raise UsageError(f"'{source}': a period of {period} ns is not a whole number of samples a second")
    return Probe(ProbeKind.PROFILE, "", frequency=1_000_000_000 // period, source=source)


def _perf_event(comps: list[_Component], source: str) -> Probe:
    """perf.sw.page_faults[.sample(N)] / perf.hw.cache_misses[.sample(N)]: SystemTap spells
    perf's event names with underscores."""
    from ktui.probes.bpftrace_names import perf_event_probe

    kind = ProbeKind.SOFTWARE if comps[1].name == "sw" else ProbeKind.HARDWARE
    event = comps[2].name.replace("_", "-")
    period = ""
    for c in comps[3:]:
        if c.name == "sample":
            period = str(_int_arg(c, source))
        else:
            raise UsageError(f"'{source}': unknown part '.{c.name}' (expected .sample(N))")
    return perf_event_probe(kind, f"{event}:{period}" if period else event, source)


# ---------------------------------------------------------------------------
# Handler values

_SIMPLE_FUNCS = {
    "execname": ("comm", Builtin("comm")),
    "pid": ("pid", Builtin("pid")),
    "tid": ("tid", Builtin("tid")),
    "uid": ("uid", Builtin("uid")),
    "gid": ("gid", Builtin("gid")),
    "cpu": ("cpu", Builtin("cpu")),
    "pp": ("probe_func", Builtin("probe_func")),
    "ppfunc": ("probe_func", Builtin("probe_func")),
    "probefunc": ("probe_func", Builtin("probe_func")),
}
_STACK_FUNCS = {"print_backtrace": (True, False), "print_ubacktrace": (False, True),
                "print_stack": (True, False), "print_ustack": (False, True)}
_STRING_FUNCS = {"kernel_string": STRING, "user_string": USTRING, "user_string_quoted": USTRING,
                 "kernel_string_quoted": STRING}
_PRINT_FUNCS = ("printf", "println", "print", "log", "printk", "warn", "printd", "printdln")
_REFUSED_HINTS = {
    "set_kernel": "changes kernel memory",
    "set_user": "changes user memory",
    "system": "runs a command",
    "raise": "sends a signal",
    "@cast": "casts need DWARF types",
}


# Names the filter language and the event header already give a meaning.
_RESERVED = frozenset(BUILTINS) | {"retval", "and", "or", "not"}


@dataclass
class _Ctx:
    text: str
    entry_args: list[CatalogArg] | None  # catalog args of the probe's function, for $$parms
    target: str = ""
    is_return: bool = False
    fetches: list[Fetch] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    printed: bool = False  # a print statement ran: stream each event
    fields: bool = False  # entry_args are tracepoint fields, not function arguments

    def add(self, fetch: Fetch) -> str:
        """Add a fetch once; a different value wanting a taken name gets name_2, name_3..."""
        taken = {f.name: f for f in self.fetches}
        name, n = fetch.name, 1
        while name in taken:
            if taken[name].expr == fetch.expr and taken[name].type == fetch.type:
                return name
            n += 1
            name = f"{fetch.name}_{n}"
        self.fetches.append(Fetch(name, fetch.expr, fetch.type))
        return name


def _refuse_call(name: str, tok: Tok, text: str) -> ParseError:
    for prefix, why in _REFUSED_HINTS.items():
        if name.startswith(prefix):
            return ParseError(f"{name}() {why} and cannot be mapped", text=text, pos=tok.pos)
    return ParseError(f"the tapset function {name}() cannot be mapped to a ktui fetch", text=text, pos=tok.pos)


def _value(s: _Stream, ctx: _Ctx, depth: int = 0) -> list[str]:
    """One handler value -> the fetch names it adds (a $$parms adds several)."""
    if depth > MAX_DEPTH:
        raise ParseError("values nest too deep", text=ctx.text, pos=s.tok.pos)
    tok = s.tok
    if tok.kind == "var":
        s.take()
        return [_variable(tok, s, ctx)]
    if tok.kind == "ident" and s.peek().text == "(":
        name = tok.text
        s.take()
        s.take()
        if name in _SIMPLE_FUNCS:
            s.expect(")", f"')' after {name}(")
            fname, expr = _SIMPLE_FUNCS[name]
            return [ctx.add(Fetch(fname, expr))]
        if name in _STRING_FUNCS:
            if s.tok.kind != "var":
                raise s.error(f"a $variable inside {name}()")
            var = s.take()
            fname = _variable(var, s, ctx, vtype=_STRING_FUNCS[name])
            s.expect(")", f"')' after {name}(...")
            return [fname]
        if name in _STACK_FUNCS:
            s.expect(")", f"')' after {name}(")
            _add_stacks(ctx, *_STACK_FUNCS[name])
            return []
        raise _refuse_call(name, tok, ctx.text)
    if tok.kind in ("string", "number"):
        s.take()
        return []
    raise s.error("a value such as execname(), pid() or $variable")


def _variable(tok: Tok, s: _Stream, ctx: _Ctx, vtype: ValueType | None = None) -> str:
    text = tok.text
    if text == "$$parms" or text == "$$vars" or text == "$$parms$" or text == "$$parms$$":
        if ctx.entry_args is None:
            raise ParseError(f"$$parms needs the catalog to know the arguments of {ctx.target or 'this probe'}",
                             text=ctx.text, pos=tok.pos)
        if text == "$$vars":
            ctx.notes.append("$$vars: locals need DWARF; only the parameters are fetched")
        # Function arguments carry their position too; tracepoint fields are known by name only.
        names = [ctx.add(Fetch(a.name, Arg(index=None if ctx.fields else i + 1, name=a.name)))
                 for i, a in enumerate(ctx.entry_args) if a.name and re.match(r"^[A-Za-z_]\w*\Z", a.name, re.ASCII)]
        return names[0] if names else ""
    if text in ("$return", "$$return"):
        if not ctx.is_return:
            raise ParseError(f"{text} is only for a .return probe", text=ctx.text, pos=tok.pos)
        return ctx.add(Fetch("retval", Retval(), vtype))
    if text.startswith("$$"):
        raise ParseError(f"{text} cannot be mapped (known: $$parms, $$return)", text=ctx.text, pos=tok.pos)
    if text.startswith("@"):
        raise ParseError(f"{text} (statistics and @-functions) cannot be mapped", text=ctx.text, pos=tok.pos)
    if re.match(r"^\$[0-9]+\Z", text):
        raise ParseError(f"{text} is a command-line argument of stap; ktui has none", text=ctx.text, pos=tok.pos)
    base = text[1:]
    path: list[str] = []
    while s.at("->") or (path and s.at(".")):
        s.take()
        if s.tok.kind != "ident" or not re.match(r"^[A-Za-z_]\w*\Z", s.tok.text, re.ASCII):
            raise s.error("a member name")
        path.append(s.take().text)
    if s.at("["):
        raise ParseError("array indexing of target variables cannot be mapped", text=ctx.text, pos=s.tok.pos)
    expr: FetchExpr = Arg(name=base)
    if path:
        expr = Member(expr, tuple(path))
    name = "_".join([base, *path])
    if name in _RESERVED:  # $pid is the probed function's argument, not the builtin pid
        name += "_arg"
    return ctx.add(Fetch(name, expr, vtype))


def _add_stacks(ctx: _Ctx, kernel: bool, user: bool) -> None:
    for i, a in enumerate(ctx.actions):
        if a.kind is ActionKind.STACKS:
            ctx.actions[i] = Action(ActionKind.STACKS, kernel_stack=a.kernel_stack or kernel,
                                    user_stack=a.user_stack or user)
            return
    ctx.actions.append(Action(ActionKind.STACKS, kernel_stack=kernel, user_stack=user))


def parse_stap_values(text: str, *, entry_args: list[CatalogArg] | None = None, is_return: bool = False,
                      target: str = "", fields: bool = False) -> tuple[list[Fetch], list[Action]]:
    """Comma-separated SystemTap handler values -> (fetches, actions).

    ``entry_args`` is the catalog's argument list of the probed function (``cat.lookup(name).args``),
    needed only for $$parms (``fields=True`` when they are a tracepoint's fields); ``is_return``
    allows $return.
    """
    if not isinstance(text, str):
        raise UsageError("SystemTap values must be text")
    if len(text) > MAX_SCRIPT:
        raise UsageError(f"SystemTap text longer than {MAX_SCRIPT} characters is not accepted")
    ctx = _Ctx(text, entry_args, target, is_return, fields=fields)
    s = _Stream(text, _tokenize(text))
    if s.tok.kind == "end":
        return [], []
    while True:
        _value(s, ctx)
        if s.tok.kind == "end":
            break
        s.expect(",", "',' between values")
    return ctx.fetches, ctx.actions


# ---------------------------------------------------------------------------
# Statements and conditions

_CONDITION_VALUE = {"execname": "comm", "pid": "pid", "tid": "tid", "uid": "uid", "gid": "gid", "cpu": "cpu"}
_CONDITION_OPS = ("==", "!=", "<", "<=", ">", ">=", "&&", "||", "!", "(", ")")


def _condition(s: _Stream, ctx: _Ctx) -> str:
    """A parenthesized SystemTap condition -> filter-language text (checked by parse_filter)."""
    open_tok = s.expect("(", "'(' after if")
    depth, out = 1, []
    while True:
        tok = s.tok
        if tok.kind == "end":
            raise ParseError("the condition's '(' is never closed", text=ctx.text, pos=open_tok.pos)
        if s.at("("):
            depth += 1
        elif s.at(")"):
            depth -= 1
            if depth == 0:
                s.take()
                break
        if depth > MAX_DEPTH:
            raise ParseError("the condition nests too deep", text=ctx.text, pos=tok.pos)
        if tok.kind == "var":
            s.take()
            if tok.text in ("$return", "$$return"):
                if not ctx.is_return:
                    raise ParseError(f"{tok.text} is only for a .return probe", text=ctx.text, pos=tok.pos)
                out.append("retval")  # a name the filter language knows on return probes
            elif re.match(r"^\$[A-Za-z_]\w*\Z", tok.text, re.ASCII) and not s.at("->"):
                name = tok.text[1:]  # an argument by name; fetched only if a builtin has its name
                out.append(ctx.add(Fetch(name + "_arg", Arg(name=name))) if name in _RESERVED else name)
            else:
                out.append(_variable(tok, s, ctx))
            continue
        if tok.kind == "ident" and s.peek().text == "(":
            if tok.text not in _CONDITION_VALUE:
                raise _refuse_call(tok.text, tok, ctx.text)
            s.take()
            s.take()
            s.expect(")", f"')' after {tok.text}(")
            out.append(_CONDITION_VALUE[tok.text])
            continue
        if tok.kind == "number":
            out.append(str(_number(tok, ctx.text, INT64)))
        elif tok.kind == "string":
            out.append(format_string(_unquote(tok.text)))
        elif tok.kind == "op" and tok.text == "-" and s.peek().kind == "number":
            s.take()
            out.append("-" + str(_number(s.tok, ctx.text, INT64)))
        elif tok.kind == "op" and tok.text in _CONDITION_OPS:
            out.append(tok.text)
        else:
            raise ParseError(f"'{tok.text}' cannot be mapped into a ktui filter (comparisons, &&, ||, ! only)",
                             text=ctx.text, pos=tok.pos)
        s.take()
    text = " ".join(out)
    try:
        parse_filter(text)
    except ParseError as err:
        raise ParseError(f"the condition does not map to a ktui filter ({err})", text=ctx.text, pos=open_tok.pos) from None
    return text


_REFUSED_KEYWORDS = {
    "function": "function definitions", "global": "global variables", "for": "loops", "foreach": "loops",
    "while": "loops", "delete": "delete statements", "return": "return statements", "next": "next statements",
    "try": "try blocks", "private": "private declarations", "embedded": "embedded C",
}


def _statements(s: _Stream, ctx: _Ctx, filters: list[str], depth: int) -> None:
    """Statements up to the closing '}' (consumed)."""
    if depth > MAX_DEPTH:
        raise ParseError("blocks nest too deep", text=ctx.text, pos=s.tok.pos)
    while not s.at("}"):
        tok = s.tok
        if tok.kind == "end":
            raise s.error("'}' to close the probe's block")
        if s.at(";"):
            s.take()
            continue
        if s.at("{"):
            s.take()
            _statements(s, ctx, filters, depth + 1)
            continue
        if tok.kind == "ident" and tok.text == "if":
            s.take()
            filters.append(_condition(s, ctx))
            if s.at("{"):
                s.take()
                _statements(s, ctx, filters, depth + 1)
            else:
                _statement(s, ctx)
            if s.at("else"):
                raise ParseError("'else' cannot be mapped: a ktui probe keeps or drops each event",
                                 text=ctx.text, pos=s.tok.pos)
            continue
        _statement(s, ctx)
    s.take()


def _statement(s: _Stream, ctx: _Ctx) -> None:
    tok = s.tok
    if tok.kind == "ident" and tok.text in _REFUSED_KEYWORDS:
        raise ParseError(f"{_REFUSED_KEYWORDS[tok.text]} ('{tok.text}') cannot be mapped", text=ctx.text, pos=tok.pos)
    if tok.kind == "ident" and s.peek().text == "(":
        name = tok.text
        if name in _PRINT_FUNCS:
            ctx.printed = True
            s.take()
            s.take()
            if s.tok.kind == "string" and name in ("printf", "printd", "printdln"):
                s.take()
                if not s.at(")"):
                    s.expect(",", "',' after the format")
            while not s.at(")"):
                _value(s, ctx)
                if not s.at(")"):
                    s.expect(",", "',' or ')'")
            s.take()
            return
        if name == "exit":
            s.take()
            s.take()
            s.expect(")", "')' after exit(")
            ctx.notes.append("exit() is ignored: stop ktui yourself")
            return
        if name in _STACK_FUNCS or name in _SIMPLE_FUNCS or name in _STRING_FUNCS:
            _value(s, ctx)
            return
        raise _refuse_call(name, tok, ctx.text)
    if tok.kind == "ident" and s.peek().text == "[":
        s.take()
        s.take()
        keys: list[str] = []
        while not s.at("]"):
            names = _value(s, ctx)
            if not names:
                raise ParseError("a count key must be a value like execname() or pid()", text=ctx.text, pos=s.tok.pos)
            keys.extend(names)
            if not s.at("]"):
                s.expect(",", "',' or ']'")
        s.take()
        if not s.at("++"):
            raise ParseError("only NAME[keys]++ counting can be mapped", text=ctx.text, pos=s.tok.pos)
        s.take()
        ctx.actions.append(Action(ActionKind.COUNT, key=tuple(keys)))
        return
    if tok.kind == "ident" and s.peek().text in ("=", "+=", "-=", "++", "--", "<<<"):
        raise ParseError(f"assignments to script variables ('{tok.text}') cannot be mapped", text=ctx.text, pos=tok.pos)
    if tok.kind == "var" and s.peek().text == "=":
        raise ParseError(f"writing {tok.text} would change the kernel; ktui never does", text=ctx.text, pos=tok.pos)
    if tok.kind == "var":
        _value(s, ctx)
        return
    raise ParseError(f"'{tok.text}' cannot be mapped to a ktui probe", text=ctx.text, pos=tok.pos)


# ---------------------------------------------------------------------------
# Entry points

def looks_like_script(text: str) -> bool:
    """A script (``probe ...``, ``global ...``), possibly after comments, rather than a point list."""
    return bool(re.match(r"^\s*(?:(?:#|//)[^\n]*\n\s*|/\*.*?\*/\s*)*(probe|global|function)\b", text, re.S))


def parse_systemtap_script(text: str, catalog: Catalog | None = None) -> StapScript:
    """A SystemTap point list or script -> StapScript(probes, notes)."""
    if not isinstance(text, str):
        raise UsageError("SystemTap text must be text")
    if len(text) > MAX_SCRIPT:
        raise UsageError(f"SystemTap text longer than {MAX_SCRIPT} characters is not accepted")
    s = _Stream(text, _tokenize(text))
    result = StapScript()
    if s.tok.kind == "end":
        raise UsageError("the SystemTap text is empty")
    if not looks_like_script(text):
        while True:
            comps, source = _parse_point(s)
            result.probes.extend(_point_probes(comps, source, catalog, result.notes))
            if s.tok.kind == "end":
                break
            s.expect(",", "',' between probe points or end of input")
        return result
    while s.tok.kind != "end":
        if s.at("global"):  # `global a, b`: names for NAME[keys]++ counts; ktui keeps its own
            s.take()
            while True:
                if s.tok.kind != "ident":
                    raise s.error("a global variable name")
                s.take()
                if s.at("="):
                    raise ParseError("initialized globals cannot be mapped", text=text, pos=s.tok.pos)
                if not s.at(","):
                    break
                s.take()
            if s.at(";"):
                s.take()
            continue
        if s.at("function", "private"):
            raise ParseError(f"'{s.tok.text}' definitions cannot be mapped: ktui runs no script code",
                             text=text, pos=s.tok.pos)
        if not s.at("probe"):
            raise s.error("'probe'")
        s.take()
        points = []
        while True:
            points.append(_parse_point(s))
            if not s.at(","):
                break
            s.take()
        if s.at("if"):
            raise ParseError("probe-point conditions ('if' after the point) cannot be mapped; put the if inside "
                             "the block", text=text, pos=s.tok.pos)
        body_start = s.expect("{", "'{' to open the probe's block")
        body_i = s.i
        for comps, source in points:
            if comps[0].name in ("begin", "end", "error", "never"):
                result.notes.append(f"probe {source} skipped: ktui marks the session's start and end itself")
                continue
            result.probes.extend(_with_handler(comps, source, s, body_i, catalog, result.notes))
        s.i = body_i
        _skip_block(s, body_start)
    if not result.probes:
        raise UsageError("the SystemTap script has no probe ktui can place")
    return result


def _skip_block(s: _Stream, open_tok: Tok) -> None:
    depth = 1
    while depth:
        t = s.take()
        if t.kind == "end":
            raise ParseError("the probe's '{' is never closed", text=s.text, pos=open_tok.pos)
        if t.kind == "op" and t.text == "{":
            depth += 1
        elif t.kind == "op" and t.text == "}":
            depth -= 1


def _with_handler(comps: list[_Component], source: str, s: _Stream, body_i: int, catalog: Catalog | None, notes: list[str]) -> list[Probe]:
    probes = _point_probes(comps, source, catalog, notes)
    out = []
    for probe in probes:
        entry_args = _catalog_args(catalog, probe)
        ctx = _Ctx(s.text, entry_args, probe.spec, probe.kind.is_return,
                   fields=probe.kind is ProbeKind.TRACEPOINT)
        s.i = body_i
        filters: list[str] = []
        _statements(s, ctx, filters, 0)
        probe.fetches = ctx.fetches
        if ctx.actions:  # printing streams events; counts and stacks aggregate in the kernel
            probe.actions = ([Action()] if ctx.printed else []) + ctx.actions
        if filters:
            probe.filter = " && ".join(f"({f})" for f in filters) if len(filters) > 1 else filters[0]
        for note in ctx.notes:
            if note not in notes:
                notes.append(note)
        out.append(probe)
    return out


def _catalog_args(catalog: Catalog | None, probe: Probe) -> list[CatalogArg] | None:
    """The probed function's (or tracepoint's) arguments from the catalog, for $$parms."""
    if catalog is None:
        return None
    if probe.kind.is_kernel_function:
        name = f"kprobe:{probe.target}"
    elif probe.kind.is_user:
        name = f"uprobe:{probe.binary}:{probe.target}"
    elif probe.kind is ProbeKind.TRACEPOINT:
        name = f"tracepoint:{probe.target}"
    else:
        return None
    entry = catalog.lookup(name)
    return list(entry.args) if entry is not None else None


def parse_systemtap(text: str, catalog: Catalog | None = None) -> list[Probe]:
    """A SystemTap point (list) or small script -> Probes; what cannot be mapped is refused."""
    return parse_systemtap_script(text, catalog).probes
