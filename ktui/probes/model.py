"""The probe model: what a user builds in the editor, stores in a session file,
and the compiler turns into a BCC program.

Everything here is plain data. Nothing in it is C: a probe reaches the generated
program only through these types and the filter language (``ktui.probes.filter``),
so neither a user nor a session file can put arbitrary code into the kernel.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from ktui.errors import FileFormatError
from ktui.numbers import ADDRESS, FILE_OFFSET, HZ, MAXACTIVE, PERIOD_NS, shown_int
from ktui.probes.perf_events import PERF_PERIOD


class ProbeKind(StrEnum):
    KPROBE = "kprobe"
    KRETPROBE = "kretprobe"
    FENTRY = "fentry"
    FEXIT = "fexit"
    TRACEPOINT = "tracepoint"
    RAW_TRACEPOINT = "rawtracepoint"
    UPROBE = "uprobe"
    URETPROBE = "uretprobe"
    PROFILE = "profile"
    INTERVAL = "interval"
    USDT = "usdt"  # a USDT (SDT) marker: binary + "provider:name"
    SOFTWARE = "software"  # perf software event: target is its name (ktui.probes.perf_events), every `period` events
    HARDWARE = "hardware"  # perf hardware event: the same, counted by the CPU's PMU

    @property
    def is_return(self) -> bool:
        return self in (ProbeKind.KRETPROBE, ProbeKind.FEXIT, ProbeKind.URETPROBE)

    @property
    def is_kernel_function(self) -> bool:
        return self in (ProbeKind.KPROBE, ProbeKind.KRETPROBE, ProbeKind.FENTRY, ProbeKind.FEXIT)

    @property
    def is_user(self) -> bool:
        return self in (ProbeKind.UPROBE, ProbeKind.URETPROBE)

    @property
    def is_perf_event(self) -> bool:
        return self in (ProbeKind.SOFTWARE, ProbeKind.HARDWARE)

    @property
    def is_sampling(self) -> bool:
        """Fires on whatever the CPU was running, in user mode as often as in the kernel."""
        return self in (ProbeKind.PROFILE, ProbeKind.SOFTWARE, ProbeKind.HARDWARE)


# ---------------------------------------------------------------------------
# Value types, as kprobe_events spells them: u8..u64, s8..s64, x8..x64, string,
# ustring, symbol, b<width>@<offset>/<container bits>.

_INT_TYPE = re.compile(r"([usx])(8|16|32|64)\Z")
_BITFIELD = re.compile(r"b([0-9]{1,2})@([0-9]{1,2})/(8|16|32|64)\Z")


STRING_SIZE = 64  # bytes kept of each fetched string, NUL included (filters and the compiler agree on it)
COMM_SIZE = 16  # the kernel's TASK_COMM_LEN

@dataclass(frozen=True)
class ValueType:
    kind: str  # "u", "s", "x", "string", "ustring", "symbol", "bitfield"
    bits: int = 64  # integer width, or the container width of a bitfield
    bit_width: int = 0  # bitfield only
    bit_offset: int = 0  # bitfield only

    @classmethod
    def parse(cls, text: str) -> ValueType:
        text = text.strip()
        if m := _INT_TYPE.match(text):
            return cls(m.group(1), int(m.group(2)))
        if text in ("string", "ustring", "symbol"):
            return cls(text, 0 if text != "symbol" else 64)
        if m := _BITFIELD.match(text):
            width, offset, bits = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if width < 1 or width + offset > bits:
                raise ValueError(f"bitfield b{width}@{offset}/{bits} does not fit in {bits} bits")
            return cls("bitfield", bits, width, offset)
        raise ValueError(f"unknown type {text!r} (expected u8..u64, s8..s64, x8..x64, string, ustring, symbol or bW@O/S)")

    def __str__(self) -> str:
        if self.kind in ("u", "s", "x"):
            return f"{self.kind}{self.bits}"
        if self.kind == "bitfield":
            return f"b{self.bit_width}@{self.bit_offset}/{self.bits}"
        return self.kind

    @property
    def is_string(self) -> bool:
        return self.kind in ("string", "ustring")

    @property
    def signed(self) -> bool:
        return self.kind == "s"


U64 = ValueType("u", 64)
S64 = ValueType("s", 64)
X64 = ValueType("x", 64)
STRING = ValueType("string", 0)


# ---------------------------------------------------------------------------
# Fetch expressions: where a value comes from. A small tree, so that the
# kprobe_events form "+0(+8(%di))" nests to any depth.

@dataclass(frozen=True)
class Reg:
    """A CPU register by its kprobe_events name (di, si, dx, cx, r8, r9, ax, sp, ip...)."""
    name: str


@dataclass(frozen=True)
class Arg:
    """A function argument: by 1-based index ($arg1) or by name (from BTF/DWARF, or a tracepoint field)."""
    index: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class Retval:
    pass


@dataclass(frozen=True)
class StackSlot:
    """$stackN: the Nth word on the kernel stack at the probe."""
    n: int


@dataclass(frozen=True)
class StackPtr:
    """$stack: the stack pointer."""


@dataclass(frozen=True)
class Imm:
    """\\IMM: an immediate value."""
    value: int


@dataclass(frozen=True)
class SymAddr:
    """@SYM[+|-offs] or @ADDR: a kernel address."""
    symbol: str | None = None
    offset: int = 0
    address: int | None = None


@dataclass(frozen=True)
class Deref:
    """+|-[u]OFFS(inner): read memory at inner + offset (user memory when user=True)."""
    offset: int
    inner: FetchExpr
    user: bool = False


@dataclass(frozen=True)
class Member:
    """base->a.b: a struct member by name, resolved through the catalog's BTF."""
    base: FetchExpr
    path: tuple[str, ...]


@dataclass(frozen=True)
class Builtin:
    """A value every event can carry: comm, pid, tid, uid, gid, cpu, ts, kstack, ustack, latency."""
    name: str


BUILTINS = ("comm", "pid", "tid", "uid", "gid", "cpu", "ts", "kstack", "ustack", "latency", "probe_func")

FetchExpr = Reg | Arg | Retval | StackSlot | StackPtr | Imm | SymAddr | Deref | Member | Builtin

_EXPR_TYPES: dict[str, type] = {
    cls.__name__: cls for cls in (Reg, Arg, Retval, StackSlot, StackPtr, Imm, SymAddr, Deref, Member, Builtin)
}


def expr_to_dict(expr: FetchExpr) -> dict[str, Any]:
    data: dict[str, Any] = {"op": type(expr).__name__}
    for key, value in vars(expr).items():
        if key in ("inner", "base"):
            data[key] = expr_to_dict(value)
        elif key == "path":
            data[key] = list(value)
        elif value is not None:
            data[key] = value
    return data


# Deepest fetch expression a file may hold: kprobe_events' own bound (ktui.probes.kprobe_events
# MAX_DEPTH) plus a member path; deeper is a hostile file, refused before Python's recursion limit.
MAX_EXPR_DEPTH = 32


def expr_from_dict(data: Any, where: str = "fetch", depth: int = 0) -> FetchExpr:
    if depth > MAX_EXPR_DEPTH:
        raise FileFormatError(f"a fetch expression nests deeper than {MAX_EXPR_DEPTH} levels", where=where)
    if not isinstance(data, dict) or data.get("op") not in _EXPR_TYPES:
        raise FileFormatError(f"a fetch expression must be a table with op one of {sorted(_EXPR_TYPES)}", where=where)
    cls = _EXPR_TYPES[data["op"]]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "op":
            continue
        if key in ("inner", "base"):
            kwargs[key] = expr_from_dict(value, where, depth + 1)
        elif key == "path":
            if not isinstance(value, list) or not all(isinstance(p, str) and p.isidentifier() for p in value):
                raise FileFormatError("a member path must be a list of C identifiers", where=where)
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        expr: FetchExpr = cls(**kwargs)
    except TypeError as err:
        raise FileFormatError(f"bad {data['op']} fetch: {err}", where=where) from None
    if depth == 0:  # it walks the whole tree
        _validate_expr(expr, where)
    return expr


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _validate_expr(expr: FetchExpr, where: str) -> None:
    """Types and identifiers only: what a file holds must never become C text."""
    def bad(msg: str) -> FileFormatError:
        return FileFormatError(msg, where=where)

    match expr:
        case Reg(name):
            if not isinstance(name, str) or not _IDENT.match(name):
                raise bad(f"register name {name!r} is not an identifier")
        case Arg(index, name):
            if index is not None and (not isinstance(index, int) or isinstance(index, bool) or not 1 <= index <= 32):
                raise bad("argument index must be an integer from 1 to 32")
            if name is not None and (not isinstance(name, str) or not _IDENT.match(name)):
                raise bad(f"argument name {name!r} is not an identifier")
            if index is None and name is None:
                raise bad("an argument needs an index or a name")
        case StackSlot(n):
            if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < 512:
                raise bad("stack slot must be an integer from 0 to 511")
        case Imm(value) | Deref(value, _, _) if not isinstance(value, int) or isinstance(value, bool):
            raise bad("offsets and immediates must be integers")
        case Imm(value) if not -(1 << 63) <= value < 1 << 64:
            raise bad("an immediate must fit in 64 bits")
        case Deref(value, _, _) if not -(1 << 63) <= value < 1 << 63:
            raise bad("a dereference offset must fit in 64 bits")
        case SymAddr(symbol, offset, address):
            if symbol is not None and (not isinstance(symbol, str) or not re.match(r"[A-Za-z_.$][\w.$]*\Z", symbol, re.ASCII)):
                raise bad(f"symbol {symbol!r} is not a symbol name")
            if not isinstance(offset, int) or (address is not None and not isinstance(address, int)):
                raise bad("addresses and offsets must be integers")
            if not -(1 << 63) <= offset < 1 << 63 or (address is not None and not 0 <= address < 1 << 64):
                raise bad("addresses and offsets must fit in 64 bits")
        case Builtin(name):
            if name not in BUILTINS:
                raise bad(f"unknown builtin {name!r} (known: {', '.join(BUILTINS)})")
        case _:
            pass
    for child in (getattr(expr, "inner", None), getattr(expr, "base", None)):
        if child is not None:
            _validate_expr(child, where)


@dataclass(frozen=True)
class Fetch:
    """One value a probe records with each event: a name (the column), where from, and its type."""
    name: str
    expr: FetchExpr
    type: ValueType | None = None  # None: the compiler takes it from BTF/tracepoint types, else u64

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "expr": expr_to_dict(self.expr)}
        if self.type is not None:
            data["type"] = str(self.type)
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "fetch") -> Fetch:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not _IDENT.match(data["name"]):
            raise FileFormatError("a fetch needs a name that is an identifier", where=where)
        vtype = None
        if "type" in data:
            try:
                vtype = ValueType.parse(str(data["type"]))
            except ValueError as err:
                raise FileFormatError(str(err), where=where) from None
        return cls(data["name"], expr_from_dict(data.get("expr"), where), vtype)


# ---------------------------------------------------------------------------
# Actions: what a probe does with each hit.

class ActionKind(StrEnum):
    STREAM = "stream"  # send each event to user space
    COUNT = "count"  # count per key (fetch names) or per CPU (key=["cpu"]), in the kernel
    STACKS = "stacks"  # aggregate kernel and/or user stacks with counts, in the kernel
    HIST = "hist"  # log2 or linear histogram of a value (or of latency), in the kernel


def stacks_action(kind: ProbeKind) -> Action:
    """The STACKS action a new probe of this kind starts with: a sampling probe takes user stacks
    too (a sample taken in user mode has no kernel stack: without its user stack it shows nothing
    of what the CPU was busy with); elsewhere kernel stacks only, as before."""
    return Action(ActionKind.STACKS, kernel_stack=True, user_stack=ProbeKind(kind).is_sampling)


@dataclass(frozen=True)
class Action:
    kind: ActionKind = ActionKind.STREAM
    key: tuple[str, ...] = ()  # COUNT: fetch names or builtins to key by
    value: str | None = None  # HIST: a fetch name or "latency"
    scale: str = "log2"  # HIST: "log2" or "linear"
    lo: int = 0  # HIST linear: min, max, step
    hi: int = 0
    step: int = 1
    kernel_stack: bool = True  # STACKS
    user_stack: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        data["key"] = list(self.key)
        if data["value"] is None:
            del data["value"]
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "action") -> Action:
        if not isinstance(data, dict):
            raise FileFormatError("an action must be a table", where=where)
        try:
            kind = ActionKind(data.get("kind", "stream"))
        except ValueError:
            raise FileFormatError(f"unknown action {data.get('kind')!r} (known: stream, count, stacks, hist)", where=where) from None
        key = data.get("key", [])
        if not isinstance(key, list) or not all(isinstance(k, str) and _IDENT.match(k) for k in key):
            raise FileFormatError("an action key must be a list of names", where=where)
        value = data.get("value")
        if value is not None and (not isinstance(value, str) or not _IDENT.match(value)):
            raise FileFormatError("a histogram value must be a fetch name", where=where)
        scale = data.get("scale", "log2")
        if scale not in ("log2", "linear"):
            raise FileFormatError("histogram scale must be log2 or linear", where=where)
        ints: dict[str, Any] = {}
        for name, default in (("lo", 0), ("hi", 0), ("step", 1)):
            v = data.get(name, default)
            if not isinstance(v, int) or isinstance(v, bool):
                raise FileFormatError(f"{name} must be an integer", where=where)
            ints[name] = v
        if scale == "linear" and (ints["step"] <= 0 or ints["hi"] <= ints["lo"]):
            raise FileFormatError("a linear histogram needs lo < hi and step > 0", where=where)
        bools: dict[str, Any] = {}
        for name, default in (("kernel_stack", True), ("user_stack", False)):
            v = data.get(name, default)
            if not isinstance(v, bool):
                raise FileFormatError(f"{name} must be true or false", where=where)
            bools[name] = v
        return cls(kind, tuple(key), value, scale, **ints, **bools)


# ---------------------------------------------------------------------------

@dataclass
class Probe:
    """One probe: where it attaches, what it fetches, which events it keeps, what it does."""

    kind: ProbeKind
    target: str  # kernel symbol; "category:event"; raw tracepoint name; uprobe symbol; "" for profile/interval
    name: str = ""  # event name shown in the panes (kprobe_events' EVENT); defaults from target
    group: str = ""  # kprobe_events' GRP
    module: str | None = None  # kernel module of the symbol (MOD:SYM)
    binary: str | None = None  # uprobe: program or library path
    offset: int = 0  # +offs into the function (kprobe), or a uprobe's file offset if target is ""
    address: int | None = None  # MEMADDR form of kprobe_events
    fetches: list[Fetch] = field(default_factory=list)
    filter: str = ""  # text in the filter language (ktui.probes.filter); parsed at compile time
    actions: list[Action] = field(default_factory=lambda: [Action()])
    maxactive: int = 0  # kretprobe instances; 0 = the kernel's default
    latency: bool = False  # kprobe/uprobe: pair entry with return and record the time between
    frequency: int = 0  # profile: Hz
    period_ns: int = 0  # interval: nanoseconds
    period: int = 0  # software/hardware perf event: one sample every `period` events
    enabled: bool = True
    source: str = ""  # how the user wrote it ("kprobe:do_sys_openat2", a kprobe_events line...): shown, not executed

    def __post_init__(self) -> None:
        self.kind = ProbeKind(self.kind)
        if not self.name:
            self.name = default_name(self)

    @property
    def spec(self) -> str:
        """The probe in bpftrace's naming: kprobe:sym, tracepoint:cat:ev, uprobe:/bin:sym, profile:hz:99."""
        k = self.kind
        if k is ProbeKind.PROFILE:
            return f"profile:hz:{self.frequency}"
        if k is ProbeKind.INTERVAL:
            return f"interval:ms:{self.period_ns // 1_000_000}" if self.period_ns % 1_000_000 == 0 else f"interval:us:{self.period_ns // 1000}"
        if k.is_user or k is ProbeKind.USDT:
            return f"{k}:{self.binary}:{self.target}"
        if k.is_perf_event:
            return f"{k}:{self.target}:{self.period}"
        if self.module and k.is_kernel_function:
            return f"{k}:{self.module}:{self.target}"
        return f"{k}:{self.target}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": str(self.kind), "target": self.target, "name": self.name}
        for key in ("group", "module", "binary", "filter", "source"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        for key in ("offset", "maxactive", "frequency", "period_ns", "period"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.address is not None:
            data["address"] = self.address
        if self.latency:
            data["latency"] = True
        if not self.enabled:
            data["enabled"] = False
        data["fetches"] = [f.to_dict() for f in self.fetches]
        data["actions"] = [a.to_dict() for a in self.actions]
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "probe") -> Probe:
        if not isinstance(data, dict):
            raise FileFormatError("a probe must be a table", where=where)
        known = {"kind", "target", "name", "group", "module", "binary", "offset", "address", "fetches", "filter",
                 "actions", "maxactive", "latency", "frequency", "period_ns", "period", "enabled", "source"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FileFormatError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})", where=where)
        try:
            kind = ProbeKind(str(data.get("kind")))
        except ValueError:
            raise FileFormatError(f"unknown probe kind {data.get('kind')!r} (known: {', '.join(k.value for k in ProbeKind)})", where=where) from None
        strings: dict[str, Any] = {}
        for key in ("target", "name", "group", "filter", "source"):
            v = data.get(key, "")
            if not isinstance(v, str):
                raise FileFormatError(f"{key} must be a string", where=where)
            strings[key] = v
        if strings["target"] and not re.match(r"[\w.:$@/+-]*\Z", strings["target"], re.ASCII):
            raise FileFormatError(f"target {strings['target']!r} holds characters no symbol has", where=where)
        for key in ("name", "group"):
            if strings[key] and not _IDENT.match(strings[key]):
                raise FileFormatError(f"{key} {strings[key]!r} is not an identifier", where=where)
        opt_strings: dict[str, Any] = {}
        for key in ("module", "binary"):
            v = data.get(key)
            if v is not None and not isinstance(v, str):
                raise FileFormatError(f"{key} must be a string", where=where)
            opt_strings[key] = v
        ints: dict[str, Any] = {}
        for key, limits in (("offset", FILE_OFFSET), ("maxactive", MAXACTIVE), ("frequency", HZ),
                            ("period_ns", PERIOD_NS), ("period", PERF_PERIOD)):
            v = data.get(key, 0)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise FileFormatError(f"{key} must be a non-negative integer", where=where)
            if v and not limits.lo <= v <= limits.hi:  # 0: not set
                raise FileFormatError(f"{key} {shown_int(v)} is out of range: it must be {limits.describe()}",
                                      where=where)
            ints[key] = v
        address = data.get("address")
        if address is not None and (not isinstance(address, int) or isinstance(address, bool)):
            raise FileFormatError("address must be an integer", where=where)
        if address is not None and not ADDRESS.lo <= address <= ADDRESS.hi:
            raise FileFormatError(f"address is out of range: it must be {ADDRESS.describe()}", where=where)
        for key in ("latency", "enabled"):
            if key in data and not isinstance(data[key], bool):
                raise FileFormatError(f"{key} must be true or false", where=where)
        fetches = data.get("fetches", [])
        actions = data.get("actions", [{"kind": "stream"}])
        if not isinstance(fetches, list) or not isinstance(actions, list):
            raise FileFormatError("fetches and actions must be lists", where=where)
        return cls(
            kind=kind,
            **strings,
            **opt_strings,
            **ints,
            address=address,
            fetches=[Fetch.from_dict(f, f"{where}.fetches[{i}]") for i, f in enumerate(fetches)],
            actions=[Action.from_dict(a, f"{where}.actions[{i}]") for i, a in enumerate(actions)],
            latency=bool(data.get("latency", False)),
            enabled=bool(data.get("enabled", True)),
        )


def default_name(probe: Probe) -> str:
    base = probe.target.split(":")[-1] if probe.target else str(probe.kind)
    if probe.kind is ProbeKind.PROFILE:
        base = f"profile_{probe.frequency}hz"
    elif probe.kind is ProbeKind.INTERVAL:
        base = f"interval_{probe.period_ns}ns"
    base = re.sub(r"[^A-Za-z0-9_]", "_", base) or "probe"
    if base[0].isdigit():
        base = "_" + base
    if probe.kind.is_return:
        base += "_ret"
    return base


@dataclass
class TargetProcess:
    """Trace only one process: an existing pid (stap -x) or a command ktui starts (stap -c)."""
    pid: int | None = None
    command: list[str] = field(default_factory=list)
