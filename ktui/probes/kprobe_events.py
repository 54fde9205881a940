"""kprobe_events lines, as Documentation/trace/kprobetrace.rst documents them -> Probe.

    p[:[GRP/]EVENT] [MOD:]SYM[+offs]|MEMADDR [FETCHARGS]       a probe
    r[MAXACTIVE][:[GRP/]EVENT] [MOD:]SYM[+0] [FETCHARGS]       a return probe
    p[:[GRP/]EVENT] [MOD:]SYM[+0]%return [FETCHARGS]           a return probe (newer spelling)
    -:[GRP/]EVENT                                             removal: refused, it is not a probe

FETCHARGS map onto model fetch expressions:

    %REG -> Reg    $argN -> Arg(index=N)    $retval -> Retval    $stackN -> StackSlot
    $stack -> StackPtr    $comm -> Builtin("comm")    \\IMM -> Imm
    @ADDR, @SYM[+|-offs] -> SymAddr: like the kernel, the value is the memory AT that address
    +|-[u]OFFS(FETCHARG) -> Deref(offset, inner, user): nests to any depth
    NAME (a bare identifier, as newer kernels take with BTF) -> Arg(name=NAME)

Types follow the kernel: an omitted type is x64 (x86-64's word), $comm is a string.
As in the kernel, a string type reads the string AT the address the expression names
instead of the word there: ``+0(%di):string`` is the string at address %di+0 (not at
*(%di+0)), ``@sym:string`` the string at sym, ``\\IMM:string`` the string at address IMM.
Unnamed arguments are called arg1..argN by their position, as the kernel does.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ktui.errors import ParseError, UsageError
from ktui.numbers import DECIMAL, INT64, KERNEL_OFFSET, U64, C, NumberError, parse_int
from ktui.probes.model import (
    STRING,
    X64,
    Arg,
    Builtin,
    Deref,
    Fetch,
    FetchExpr,
    Imm,
    Member,
    Probe,
    ProbeKind,
    Reg,
    Retval,
    StackPtr,
    StackSlot,
    SymAddr,
    ValueType,
)

MAX_LINE = 4096
MAX_ARGS = 128  # "Each probe can have up to 128 args."
MAXACTIVE_MAX = 4096  # KRETPROBE_MAXACTIVE_MAX in kernel/trace/trace_kprobe.c
# ktui's own bound on nested dereferences (no input may recurse deeply). The kernel's bound
# is tighter but textual: each argument (FETCHARG:TYPE, after NAME=) is at most 63 characters
# (MAX_ARGSTR_LEN), so about 14 levels; format_kprobe_event can write longer ones than the
# kernel's own tracer would take.
MAX_DEPTH = 16
MAX_MEMBER_DEPTH = 8  # as ktui.probes.resolve bounds a member path
KERNEL_MAX_ARG_TEXT = 63

# x86-64 pt_regs names as the kernel's regs_query_register_offset() knows them.
X86_64_REGISTERS = (
    "ax", "bx", "cx", "dx", "si", "di", "bp", "sp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    "ip", "flags", "orig_ax", "cs", "ss", "ds", "es", "fs", "gs",
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_SYMBOL = re.compile(r"^[A-Za-z_.$][\w.$]*\Z", re.ASCII)
_MODULE = re.compile(r"^[A-Za-z_][\w-]*\Z", re.ASCII)
_HEAD = re.compile(r"^(?P<op>[pr-])(?P<maxactive>[0-9]*)(?::(?P<event>\S*))?\Z")


def _err(message: str, line: str, pos: int) -> ParseError:
    return ParseError(message, text=line, pos=pos)


_KERNEL_NUMBER = re.compile(r"[+-]?(?:0[xX][0-9A-Fa-f]+|[0-9]+)\Z")


def _kernel_int(text: str, line: str, pos: int, what: str = "") -> int | None:
    """kstrtol(text, 0): 0x.. hex, 0.. octal, else decimal; None if it does not look like a number.

    A number that looks like one but is not (``08``: octal has no 8), or has too many digits,
    is a ParseError at ``pos``.
    """
    if not _KERNEL_NUMBER.match(text):
        return None
    try:
        return parse_int(text, C, what, INT64, signed=True)
    except NumberError as err:
        raise _err(str(err), line, pos) from None


def parse_kprobe_events(text: str) -> list[Probe]:
    """Several lines (a kprobe_events file): blank lines and '#' comments are skipped."""
    probes = []
    for line in text.splitlines():
        if line.split("#", 1)[0].strip():
            probes.append(parse_kprobe_event(line))
    return probes


def parse_kprobe_event(line: str) -> Probe:
    """One kprobe_events line -> Probe (kind kprobe or kretprobe). Raises ParseError/UsageError."""
    if not isinstance(line, str):
        raise UsageError("a kprobe_events line must be text")
    if len(line) > MAX_LINE:
        raise UsageError(f"a kprobe_events line longer than {MAX_LINE} characters is not accepted")
    if "\n" in line.strip():
        raise UsageError("give one kprobe_events line at a time (or use parse_kprobe_events for a file)")
    body = line.split("#", 1)[0]
    words = [(m.group(), m.start()) for m in re.finditer(r"\S+", body)]
    if not words:
        raise UsageError("the kprobe_events line is empty")
    head, hpos = words[0]
    m = _HEAD.match(head)
    if m is None:
        raise _err(f"expected 'p', 'r[MAXACTIVE]' or '-' to start a kprobe_events line, found {head!r}", line, hpos)
    op, maxactive_text, event = m.group("op"), m.group("maxactive"), m.group("event")
    if op == "-":
        raise UsageError(f"{line.strip()!r} removes a kprobe event; that is not a probe, and ktui removes "
                         f"its own probes when it stops")
    if maxactive_text and op == "p":
        raise _err("MAXACTIVE is only for return probes: write r" + maxactive_text, line, hpos + 1)
    try:
        maxactive = parse_int(maxactive_text, DECIMAL, "MAXACTIVE", U64) if maxactive_text else 0
    except NumberError as err:
        raise _err(str(err), line, hpos + 1) from None
    if maxactive > MAXACTIVE_MAX:
        raise _err(f"MAXACTIVE {maxactive} is more than the kernel allows ({MAXACTIVE_MAX})", line, hpos + 1)
    group, name = "", ""
    if event is not None:
        epos = hpos + len(op) + len(maxactive_text) + 1
        if "/" in event:
            group, _, name = event.partition("/")
            if not _NAME.match(group):
                raise _err(f"group name {group!r} must be a C identifier", line, epos)
            epos += len(group) + 1
        else:
            name = event
        if name and not _NAME.match(name):
            raise _err(f"event name {name!r} must be a C identifier", line, epos)
    if len(words) < 2:
        raise _err("expected a symbol or address to probe after " + repr(head), line, len(body.rstrip()))
    kind = ProbeKind.KRETPROBE if op == "r" else ProbeKind.KPROBE
    target_text, tpos = words[1]
    probe_kwargs = _parse_target(target_text, tpos, line, kind)
    if probe_kwargs.pop("is_return"):
        kind = ProbeKind.KRETPROBE
    binary = probe_kwargs.pop("binary", None)
    if kind is ProbeKind.KRETPROBE and probe_kwargs["offset"] and binary is None:
        raise _err("a return probe goes on the function itself: its offset must be +0", line, tpos)
    if kind is ProbeKind.KRETPROBE and probe_kwargs["address"] is not None:
        raise _err("a return probe needs a function symbol, not an address", line, tpos)

    args = words[2:]
    if len(args) > MAX_ARGS:
        raise _err(f"a probe takes at most {MAX_ARGS} arguments", line, args[MAX_ARGS][1])
    fetches: list[Fetch] = []
    seen: set[str] = set()
    for i, (word, pos) in enumerate(args):
        fetch = _parse_fetcharg(word, pos, i, line, kind, probe_kwargs["offset"])
        if fetch.name in seen:
            raise _err(f"argument name {fetch.name!r} is used twice", line, pos)
        seen.add(fetch.name)
        fetches.append(fetch)
    if binary is not None:
        # a uprobe_events line: the same syntax, on a program's file offset
        ukind = ProbeKind.URETPROBE if kind is ProbeKind.KRETPROBE else ProbeKind.UPROBE
        if not name:
            name = re.sub(r"[^A-Za-z0-9_]", "_", f"{'r' if ukind is ProbeKind.URETPROBE else 'p'}_"
                          f"{os.path.basename(binary)}_0x{probe_kwargs['offset']:x}")
        return Probe(ukind, "", name=name, group=group, binary=binary, offset=probe_kwargs["offset"],
                     fetches=fetches, source=line.strip())
    if not name:
        name = default_event_name(kind, probe_kwargs["target"], probe_kwargs["module"],
                                  probe_kwargs["offset"], probe_kwargs["address"])
    return Probe(kind, probe_kwargs["target"], name=name, group=group, module=probe_kwargs["module"],
                 offset=probe_kwargs["offset"], address=probe_kwargs["address"], fetches=fetches,
                 maxactive=maxactive, source=line.strip())


def default_event_name(kind: ProbeKind, target: str, module: str | None, offset: int, address: int | None) -> str:
    """The name the kernel gives an unnamed event: p_SYM_OFFS / r_SYM_0 / p_0xADDR, sanitized."""
    c = "r" if kind is ProbeKind.KRETPROBE else "p"
    if address is not None:
        base = f"{c}_0x{address:x}"
    else:
        sym = f"{module}:{target}" if module else target
        base = f"{c}_{sym}_{offset}"
    return re.sub(r"[^A-Za-z0-9_]", "_", base)


def _parse_target(text: str, pos: int, line: str, kind: ProbeKind) -> dict[str, Any]:  # Probe's keyword arguments
    is_return = False
    if text.endswith("%return"):
        if kind is ProbeKind.KRETPROBE:
            raise _err("'%return' is for 'p' lines; an 'r' line is already a return probe", line, pos + len(text) - 7)
        is_return = True
        text = text[: -len("%return")]
    if (addr := _kernel_int(text, line, pos, "the address")) is not None and text[:1] not in "+-":
        if is_return:
            raise _err("a return probe needs a function symbol, not an address", line, pos)
        if addr < 0 or addr >= 1 << 64:
            raise _err("the address does not fit in 64 bits", line, pos)
        return {"target": "", "module": None, "offset": 0, "address": addr, "is_return": False}
    module = None
    if ":" in text and text.startswith(("/", "./", "../")):
        # the uprobe_events form: PATH:OFFSET, an offset into the program file
        path, _, off_text = text.rpartition(":")
        off = _kernel_int(off_text, line, pos + len(path) + 1, "file offset")
        if off is None or off < 0 or off_text[:1] in "+-":
            raise _err(f"expected a file offset after {path}:, like {path}:0x1149", line, pos + len(path) + 1)
        if any(ord(c) < 32 or c == "\x7f" for c in path):
            raise _err("the program path holds a control character", line, pos)
        return {"target": "", "module": None, "offset": off, "address": None, "is_return": is_return,
                "binary": path}
    if ":" in text:
        module, _, text = text.partition(":")
        if not _MODULE.match(module):
            raise _err(f"{module!r} is not a module name", line, pos)
        pos += len(module) + 1
    offset = 0
    sym = text
    if "+" in text:
        sym, _, off_text = text.partition("+")
        off = _kernel_int(off_text, line, pos + len(sym) + 1, "the offset")
        if off is None or off_text[:1] in ("+", "-"):
            raise _err(f"expected an offset after '+', found {off_text!r}", line, pos + len(sym) + 1)
        if off > KERNEL_OFFSET.hi:
            raise _err(f"the offset {off} is out of range: it must be {KERNEL_OFFSET.describe()}", line,
                       pos + len(sym) + 1)
        offset = off
    if not sym:
        raise _err("expected a symbol to probe", line, pos)
    if not _SYMBOL.match(sym):
        raise _err(f"{sym!r} is not a kernel symbol name", line, pos)
    if is_return and offset:
        raise _err("a return probe goes on the function itself: its offset must be +0", line, pos)
    return {"target": sym, "module": module, "offset": offset, "address": None, "is_return": is_return}


def _parse_fetcharg(word: str, pos: int, index: int, line: str, kind: ProbeKind, offset: int) -> Fetch:
    name = f"arg{index + 1}"
    body, bpos = word, pos
    eq = word.find("=")
    if eq > 0 and _NAME.match(word[:eq]):
        name, body, bpos = word[:eq], word[eq + 1 :], pos + eq + 1
    elif eq == 0:
        raise _err("expected a name before '='", line, pos)
    if not body:
        raise _err(f"expected a fetch argument after '{name}='", line, bpos)
    vtype: ValueType | None = None
    type_text = None
    colon = _type_colon(body)
    if colon is not None:
        body, type_text = body[:colon], body[colon + 1 :]
        tpos = bpos + colon + 1
        if not type_text:
            raise _err("expected a type after ':'", line, tpos)
        if re.search(r"\[\d*\]$", type_text):
            raise _err(f"array types like {type_text!r} are not supported", line, tpos)
        if type_text in ("symstr", "char"):
            raise _err(f"type {type_text!r} is not supported (use symbol, or u8 for a char)", line, tpos)
        try:
            vtype = ValueType.parse(type_text)
        except ValueError as err:
            raise _err(str(err), line, tpos) from None
    if not body:
        raise _err("expected a fetch argument before ':'", line, bpos)
    expr = _parse_expr(body, bpos, line, kind, offset, 0)
    if isinstance(expr, Builtin):  # $comm
        if vtype is not None and vtype.kind != "string":
            raise _err("$comm is a string; any other type is invalid", line, bpos)
        vtype = STRING
    elif vtype is None and not isinstance(expr, Member):
        vtype = X64  # a member without a type takes its type from BTF, as the kernel's tracer does
    elif vtype is not None and vtype.is_string and not isinstance(expr, (Deref, SymAddr, Imm, Member)):
        raise _err(f"type {vtype} needs a memory reference, like +0({body})", line, bpos)
    return Fetch(name, expr, vtype)


def _type_colon(body: str) -> int | None:
    """Index of the ':' that starts the type: the last ':' outside parentheses."""
    depth = 0
    for i in range(len(body) - 1, -1, -1):
        c = body[i]
        if c == ")":
            depth += 1
        elif c == "(":
            depth -= 1
        elif c == ":" and depth == 0:
            return i
    return None


_REG = re.compile(r"^%([a-z0-9_]+)\Z")
_ARGN = re.compile(r"^\$arg([0-9]+)\Z")
_STACKN = re.compile(r"^\$stack([0-9]+)\Z")
_BTF_MEMBER = re.compile(r"^(\$[A-Za-z0-9_]+|[A-Za-z_][A-Za-z0-9_]*)((?:(?:->|\.)[A-Za-z_][A-Za-z0-9_]*)+)\Z")
_DEREF = re.compile(r"^([+-])(u?)([0-9][0-9A-Fa-fxX]*)\((.*)\)\Z", re.S)


def _parse_expr(text: str, pos: int, line: str, kind: ProbeKind, offset: int, depth: int) -> FetchExpr:
    if depth > MAX_DEPTH:
        raise _err(f"dereferences nest more than {MAX_DEPTH} deep", line, pos)
    if m := _REG.match(text):
        reg = m.group(1)
        if reg not in X86_64_REGISTERS:
            if reg[:1] in "re" and reg[1:] in X86_64_REGISTERS:
                raise _err(f"unknown register %{reg}: kprobe_events names registers by their pt_regs name, "
                           f"write %{reg[1:]}", line, pos)
            raise _err(f"unknown register %{reg} (x86-64 pt_regs names: {', '.join(X86_64_REGISTERS)})", line, pos)
        return Reg(reg)
    if m := _ARGN.match(text):
        n = _small(m.group(1), line, pos)
        if not 1 <= n <= 32:
            raise _err(f"$arg{n}: argument numbers go from 1 to 32", line, pos)
        if offset:
            raise _err("$argN is only for a probe on the function entry (offset 0)", line, pos)
        return Arg(index=n)
    if text == "$retval":
        if kind is not ProbeKind.KRETPROBE:
            raise _err("$retval is only for return probes (r lines, or SYM%return)", line, pos)
        return Retval()
    if text == "$stack":
        return StackPtr()
    if m := _STACKN.match(text):
        n = _small(m.group(1), line, pos)
        if n >= 512:
            raise _err(f"$stack{n}: stack entries go from 0 to 511", line, pos)
        return StackSlot(n)
    if text == "$comm":
        return Builtin("comm")
    if m := _BTF_MEMBER.match(text):  # NAME->FIELD, $argN->FIELD.SUB: a struct member through BTF
        if offset:
            raise _err("struct members by name are only for a probe on the function entry (offset 0)", line, pos)
        base, rest = m.group(1), m.group(2)
        path = tuple(re.split(r"->|\.", rest.lstrip("-.>")))
        if len(path) > MAX_MEMBER_DEPTH:
            raise _err(f"{text} goes deeper than {MAX_MEMBER_DEPTH} struct members", line, pos)
        if base.startswith("$"):
            base_expr = _parse_expr(base, pos, line, kind, offset, depth + 1)
            if not isinstance(base_expr, (Arg, Retval)):
                raise _err(f"only arguments and $retval have struct members, not {base}", line, pos)
            return Member(base_expr, path)
        return Member(Arg(name=base), path)
    if text.startswith("$"):
        known = "$argN, $retval, $stack, $stackN, $comm"
        raise _err(f"unknown variable {text!r} (known: {known})", line, pos)
    if text.startswith("\\"):
        value = _kernel_int(text[1:], line, pos + 1, "the immediate")
        if value is None:
            if text[1:2] == '"':
                raise _err("immediate strings are not supported", line, pos)
            raise _err(f"expected a number after '\\', found {text[1:]!r}", line, pos + 1)
        if not -(1 << 63) <= value < 1 << 64:
            raise _err("the immediate does not fit in 64 bits", line, pos + 1)
        return Imm(value)
    if text.startswith("@"):
        return _parse_at(text, pos, line)
    if text[:1] in ("+", "-"):
        m = _DEREF.match(text)
        if m is None:
            raise _err("expected +|-[u]OFFS(FETCHARG), like +8(%di)", line, pos)
        sign, user, off_text, inner_text = m.groups()
        off = _kernel_int(off_text, line, pos + 1 + len(user), "the offset")
        if off is None:
            raise _err(f"{off_text!r} is not an offset", line, pos + 1 + len(user))
        if off >= 1 << 63:
            raise _err("the offset does not fit in 64 bits", line, pos + 1 + len(user))
        ipos = pos + 2 + len(user) + len(off_text)
        if not inner_text:
            raise _err("expected a fetch argument inside the parentheses", line, ipos)
        inner = _parse_expr(inner_text, ipos, line, kind, offset, depth + 1)
        if isinstance(inner, Builtin):
            raise _err("$comm cannot be dereferenced", line, ipos)
        return Deref(-off if sign == "-" else off, inner, bool(user))
    if _NAME.match(text):
        if offset:
            raise _err("arguments by name are only for a probe on the function entry (offset 0)", line, pos)
        return Arg(name=text)
    raise _err(f"{text!r} is not a fetch argument (expected %REG, @ADDR, @SYM, $argN, $retval, $stackN, "
               f"$stack, $comm, +|-OFFS(FETCHARG) or \\IMM)", line, pos)


def _small(digits: str, line: str, pos: int) -> int:
    """$argN / $stackN's N: decimal; the callers bound it further with their own sentences."""
    try:
        return parse_int(digits, DECIMAL, "", U64)
    except NumberError as err:
        raise _err(str(err), line, pos) from None


def _parse_at(text: str, pos: int, line: str) -> SymAddr:
    rest = text[1:]
    addr = _kernel_int(rest, line, pos + 1, "the address")
    if addr is not None and rest[:1] not in "+-":
        if addr >= 1 << 64:
            raise _err("the address does not fit in 64 bits", line, pos + 1)
        return SymAddr(address=addr)
    m = re.match(r"^([A-Za-z_.$][\w.$]*)(?:([+-])(.+))?\Z", rest, re.ASCII)
    if m is None:
        raise _err("expected an address or a data symbol after '@'", line, pos + 1)
    sym, sign, off_text = m.groups()
    off = 0
    if sign:
        value = _kernel_int(off_text, line, pos + 2 + len(sym), "the offset")
        if value is None or off_text[:1] in ("+", "-") or value >= 1 << 63:
            raise _err(f"expected an offset after '{sign}', found {off_text!r}", line, pos + 2 + len(sym))
        off = -value if sign == "-" else value
    return SymAddr(symbol=sym, offset=off)


# ---------------------------------------------------------------------------
# Back to a kprobe_events line (export and display).

def format_fetch_expr(expr: FetchExpr) -> str:
    match expr:
        case Reg(name):
            return f"%{name}"
        case Arg(index, name):
            return f"$arg{index}" if index is not None else str(name)
        case Retval():
            return "$retval"
        case StackSlot(n):
            return f"$stack{n}"
        case StackPtr():
            return "$stack"
        case Imm(value):
            return f"\\{value}"
        case SymAddr(symbol, offset, address):
            if symbol is None:
                return f"@0x{(address or 0):x}"
            return f"@{symbol}" + (f"+{offset}" if offset > 0 else f"-{-offset}" if offset < 0 else "")
        case Deref(offset, inner, user):
            sign = "-" if offset < 0 else "+"
            return f"{sign}{'u' if user else ''}{abs(offset)}({format_fetch_expr(inner)})"
        case Builtin("comm"):
            return "$comm"
        case Builtin(name):
            raise UsageError(f"the builtin {name!r} has no kprobe_events spelling (only $comm has)")
        case Member(base, path) if isinstance(base, (Arg, Retval)):
            return format_fetch_expr(base) + "".join("->" + p for p in path)
        case Member():
            raise UsageError("a struct member of this base has no kprobe_events spelling; write +OFFS(...) instead")
    raise UsageError(f"{expr!r} has no kprobe_events spelling")


def format_kprobe_event(probe: Probe) -> str:
    """The probe as one kprobe_events line (its point and fetches; filters and actions are not part of it)."""
    kind = probe.kind
    if kind not in (ProbeKind.KPROBE, ProbeKind.KRETPROBE):
        raise UsageError(f"a {kind} probe cannot be written as a kprobe_events line (only kprobe and kretprobe)")
    head = "r" if kind is ProbeKind.KRETPROBE else "p"
    if kind is ProbeKind.KRETPROBE and probe.maxactive:
        head += str(probe.maxactive)
    default = default_event_name(kind, probe.target, probe.module, probe.offset, probe.address)
    if probe.group or probe.name != default:
        head += ":" + (f"{probe.group}/" if probe.group else "") + probe.name
    if probe.address is not None:
        target = f"0x{probe.address:x}"
    else:
        target = (f"{probe.module}:" if probe.module else "") + probe.target
        if probe.offset:
            target += f"+{probe.offset}"
    parts = [head, target]
    for i, fetch in enumerate(probe.fetches):
        text = format_fetch_expr(fetch.expr)
        if fetch.name != f"arg{i + 1}":
            text = f"{fetch.name}={text}"
        if fetch.type is not None:
            text += f":{fetch.type}"
        parts.append(text)
    return " ".join(parts)
