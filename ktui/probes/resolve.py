"""One resolution of names and types for every probe point.

What a filter, a fetch, a count key or a column may call by name at a probe, and
what each name holds (its C type, whether it is a string or a number, and whether a
string lives in user or kernel memory). The editor, the compiler, ``ktui list`` and
the stream all ask here, so they cannot disagree:

* tracepoint fields come from the event's format file (``syscalls:*`` pointers point
  into the calling process: user memory);
* kernel function arguments come from BTF (a system call's implementation, e.g.
  ``do_sys_openat2``, receives user pointers; elsewhere a ``__user`` tag says so, and
  without one the pointer may be either);
* uprobe arguments come from DWARF (user memory, always), and so do the members of the
  program's structs they point at (``ktui.catalog.dwarf_members``);
* the return value exists only where there is a return (a kretprobe, uretprobe,
  fexit, or an entry+return probe): a tracepoint's ``ret`` field is a field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from collections.abc import Callable

from ktui.probes.ctypes import int_type, is_string_ctype, value_type_of_ctype
from ktui.errors import UnknownMember
from ktui.probes.model import Probe, ProbeKind, ValueType

if TYPE_CHECKING:
    from ktui.catalog.btf import FieldPath, Member

# What every event carries, by the name filters and count keys use -> "int" | "string".
BUILTIN_KINDS: dict[str, str] = {"comm": "string", "pid": "int", "tid": "int", "uid": "int", "gid": "int",
                                 "cpu": "int"}

USER, KERNEL, EITHER = "user", "kernel", "either"
_SYSCALL_PREFIXES = ("__x64_sys_", "__ia32_sys_", "__se_sys_", "__do_sys_", "ksys_", "do_sys_", "__sys_", "sys_")

Sizer = Callable[[str], "tuple[int, bool] | None"]


def syscall_name(symbol: str) -> str | None:
    """The system call a kernel function implements, by its name (do_sys_openat2 -> openat2)."""
    for prefix in _SYSCALL_PREFIXES:
        if symbol.startswith(prefix) and len(symbol) > len(prefix):
            return symbol[len(prefix):]
    return None


def memory_of(point_kind: str, event: str, ctype: str) -> str:
    """Where a pointer of this type points at this kind of point: "user", "kernel" or "either".

    ``point_kind`` is "tracepoint", "function" (a kernel function), "user" (uprobe),
    "raw" (raw tracepoint)."""
    if point_kind == "user" or "__user" in ctype:
        return USER
    if point_kind == "tracepoint":
        return USER if event.startswith("syscalls:") else KERNEL
    if point_kind == "function":
        return USER if syscall_name(event) is not None else EITHER
    return KERNEL


def value_type(ctype: str, memory: str = KERNEL, sizer: Sizer | None = None) -> ValueType | None:
    """The type a name is fetched as when the user gives none: strings are strings
    (``ustring`` when the text is in user memory); None for what is not a scalar."""
    if is_string_ctype(ctype):
        return ValueType("ustring" if memory == USER and "*" in ctype else "string", 0)
    return value_type_of_ctype(ctype, sizer)


@dataclass(frozen=True)
class Named:
    """One name a probe point offers."""
    name: str
    ctype: str
    origin: str  # "field" (tracepoint), "arg" (function), "retval", "latency", "builtin"
    memory: str = KERNEL
    size: int = 0  # tracepoint fields: bytes in the record, and signedness, from the format file
    signed: bool = False

    def value_type(self, sizer: Sizer | None = None) -> ValueType | None:
        if self.origin == "latency":
            return ValueType("u", 64)
        if self.origin == "field" and self.size and not is_string_ctype(self.ctype):
            # A tracepoint field is as wide as its format file says (syscall fields are 8
            # bytes whatever their C type): size and sign from there, pointers in hex.
            text = self.ctype.rstrip()
            if text.endswith("*"):
                return ValueType("x", 64)
            if "[" in text or text.startswith(("__data_loc", "__rel_loc")) or self.size not in (1, 2, 4, 8):
                return None
            by_name = value_type_of_ctype(self.ctype)
            if by_name is not None and by_name.bits < self.size * 8:
                # "int dfd" in an 8-byte slot: the register as passed; its C type is the value
                # (AT_FDCWD is -100, not 4294967196)
                return by_name
            return int_type(self.size, self.signed)
        return value_type(self.ctype, self.memory, sizer)

    def kind(self, sizer: Sizer | None = None) -> str | None:
        """"string" or "int" as filters compare it; None when it is not a scalar (a struct by value)."""
        vt = self.value_type(sizer)
        if vt is None:
            return None
        return "string" if vt.is_string else "int"

    def __str__(self) -> str:
        return f"{self.ctype} {self.name}".strip()


@dataclass
class PointNames:
    """Everything one probe point offers by name."""
    args: list[Named] = field(default_factory=list)
    ret: Named | None = None  # only where there is a return
    latency: bool = False
    note: str = ""  # why the arguments are unknown, when they are
    binary: str | None = None  # a uprobe's program and function: its structs' layouts are in its DWARF
    symbol: str | None = None

    def member_types(self) -> tuple[MemberTypes | None, str]:
        """Where the members of this point's struct pointers are laid out: the program's DWARF at a
        uprobe, the kernel's BTF elsewhere (or None and the reason)."""
        if self.binary is not None:
            return user_member_types(self.binary, self.symbol or "")
        return kernel_types()

    def expandable(self, name: str) -> bool:
        """``name`` is a pointer to a struct whose members can be named here (the editor's picker):
        a kernel pointer (BTF), or any pointer of a uprobe (DWARF). A user pointer at a kernel
        function has no layout to read it by."""
        named = self.arg(name=name)
        if named is None or named.origin == "retval" or struct_of(named.ctype) is None:
            return False
        return named.memory != USER or self.binary is not None

    def arg(self, name: str | None = None, index: int | None = None) -> Named | None:
        if name is not None:
            return next((a for a in self.args if a.name == name), None)
        if index is not None and 1 <= index <= len(self.args):
            return self.args[index - 1]
        return None

    def filter_names(self, sizer: Sizer | None = None, fetched: dict[str, str] | None = None) -> dict[str, str]:
        """name -> "int" | "string" for the filter language (ktui.probes.filter.check_filter)."""
        names = dict(BUILTIN_KINDS)
        for i, a in enumerate(self.args, 1):
            kind = a.kind(sizer)
            if kind is not None and a.name:
                names[a.name] = kind
            names[f"arg{i}"] = "int"
        if self.ret is not None:
            names["retval"] = self.ret.kind(sizer) or "int"
        if self.latency:
            names["latency"] = "int"
        names.update(fetched or {})
        return names

    def fetchable(self) -> list[Named]:
        """The arguments or fields that can be recorded whole (what the editor lists)."""
        return [a for a in self.args if a.name and not a.name.startswith("__") and a.name != "..."
                and a.kind() is not None]


def arg_number(name: str, names: PointNames | None = None) -> int | None:
    """``arg3`` -> 3: the filter language's positional name of an argument (1-based, as
    kprobe_events' $arg3), unless the point has an argument really named so. None otherwise."""
    m = re.fullmatch(r"arg(\d+)", name)
    if m is None or (names is not None and names.arg(name=name) is not None):
        return None
    return int(m.group(1))


def has_return(probe: Probe) -> bool:
    """A return value exists: a return probe, or an entry+return (latency) probe on a function."""
    if probe.kind.is_return:
        return True
    return probe.latency and (probe.kind.is_kernel_function or probe.kind.is_user)


def point_kind(kind: ProbeKind) -> str:
    if kind is ProbeKind.TRACEPOINT:
        return "tracepoint"
    if kind is ProbeKind.RAW_TRACEPOINT:
        return "raw"
    if kind.is_user:
        return "user"
    if kind.is_kernel_function:
        return "function"
    return "none"


def names_from(kind: str, event: str, args: list[tuple[str, str]] | None, ret_ctype: str | None, *,
               returns: bool, latency: bool = False, note: str = "") -> PointNames:
    """PointNames from (name, ctype) pairs, whoever read them (catalog, tracefs, BTF, DWARF)."""
    origin = "field" if kind == "tracepoint" else "arg"
    named = [Named(n, t, origin, memory_of(kind, event, t)) for n, t in (args or [])
             if not (kind == "tracepoint" and (n.startswith("common_") or n == "__syscall_nr"))]
    ret = None
    if returns and ret_ctype != "void":
        rtype = ret_ctype or "long"
        ret = Named("retval", rtype, "retval", memory_of(kind, event, rtype))
    return PointNames(named, ret, latency, note if args is None else "")


class CatalogLike(Protocol):
    def lookup(self, name: str) -> Any: ...


def resolve_probe(probe: Probe, catalog: CatalogLike | None = None,
                  binary_catalog: Callable[[str], CatalogLike] | None = None) -> PointNames:
    """The names of ``probe``'s own point (no fallback), from the catalog.

    ``binary_catalog(path)`` gives a program's catalog for uprobes (default:
    ``Catalog.for_binary``)."""
    kind = point_kind(probe.kind)
    returns = has_return(probe)
    latency = probe.latency and returns
    entry = None
    note = ""
    if kind == "tracepoint" and catalog is not None:
        entry = catalog.lookup(f"tracepoint:{probe.target}")
    elif kind == "function" and catalog is not None:
        entry = catalog.lookup(f"kprobe:{probe.target}")
    elif kind == "raw" and catalog is not None:
        entry = catalog.lookup(f"rawtracepoint:{probe.target}")
    elif kind == "user" and probe.binary and probe.target:
        try:
            if binary_catalog is None:
                from ktui.probes.exists import binary_catalog_cached

                binary_catalog = binary_catalog_cached
            entry = binary_catalog(probe.binary).lookup(f"uprobe:{probe.binary}:{probe.target}")
        except Exception as err:  # noqa: BLE001 - an unreadable binary leaves its names unknown, said in the note
            note = str(err)
    if entry is None and kind == "tracepoint":
        return _tracepoint_without_catalog(probe.target, returns, latency)
    if entry is None:
        names = names_from(kind, probe.target, None, None, returns=returns, latency=latency,
                           note=note or "the catalog does not describe this point")
    else:
        try:
            args = [(a.name, a.ctype) for a in entry.args]
            ret = entry.return_type
            why = entry.args_note or ""
        except Exception as err:  # noqa: BLE001 - details unreadable: names unknown, the reason kept
            args, ret, why = None, None, str(err)
        names = names_from(kind, probe.target, args if (args or not why) else None, ret, returns=returns,
                           latency=latency, note=why)
    if kind == "user" and probe.binary and probe.target:
        names.binary, names.symbol = probe.binary, probe.target
    return names


def _tracepoint_without_catalog(event: str, returns: bool, latency: bool) -> PointNames:
    """A tracepoint's fields straight from its format file (no catalog loaded yet)."""
    from ktui.catalog.tracefs_events import read_format
    from ktui.errors import KtuiError
    from ktui.kernel import tracefs_path

    group, _, name = event.partition(":")
    tracefs = tracefs_path()
    try:
        if tracefs is None or not name:
            raise KtuiError("tracefs is not available")
        fields = [(f.name, f.ctype, f.size, f.signed) for f in read_format(tracefs, group, name) if not f.common]
    except KtuiError as err:
        return names_from("tracepoint", event, None, None, returns=returns, latency=latency, note=str(err))
    names = names_from("tracepoint", event, [(n, t) for n, t, _, _ in fields], None, returns=returns,
                       latency=latency)
    sized = {n: (size, signed) for n, _, size, signed in fields}
    names.args = [Named(a.name, a.ctype, a.origin, a.memory, *sized.get(a.name, (0, False))) for a in names.args]
    return names


def user_prototype(probe: Probe, binary_catalog: Callable[[str], CatalogLike] | None = None
                   ) -> tuple[str | None, list[tuple[str, str]]] | None:
    """(return ctype, [(name, ctype)...]) of a uprobe's function from the program's DWARF
    (its own sections), or None when the program has no DWARF entry for it."""
    if not probe.binary or not probe.target:
        return None
    try:
        import os

        path: str | None = probe.binary
        if binary_catalog is None:
            from ktui.probes.exists import binary_catalog_cached, resolve_binary

            path = resolve_binary(probe.binary)
            if path is None:
                return None
            cat = binary_catalog_cached(path)
        else:
            cat = binary_catalog(probe.binary)
        entry = cat.lookup(f"uprobe:{os.path.abspath(path or probe.binary)}:{probe.target}")
        if entry is None:
            return None
        args = [(a.name, a.ctype) for a in entry.args]
        if not args and entry.args_note:
            return None
        return entry.return_type, args
    except Exception:  # noqa: BLE001 - unreadable DWARF: arguments by position only, said where used
        return None


# ---------------------------------------------------------------------------------------------
# Struct members through pointers: skb->len, args->skb->len, sk->__sk_common.skc_dport.
#
# One spelling for every dialect once parsed: a base name (an argument, a tracepoint field, or
# argN) and a member path. Offsets and types come from the kernel's BTF; the compiler plans the
# reads from the FieldPath this gives and never builds C from the text.

_MEMBER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:(?:->|\.)[A-Za-z_][A-Za-z0-9_]*)*\Z", re.ASCII)
MAX_MEMBER_DEPTH = 8  # hops a member path may take; deeper is refused in one sentence


class MemberTypes(Protocol):
    """Where member layouts come from: the kernel's BTF (ktui.catalog.btf.BTF) for kernel
    objects, a program's DWARF (ktui.catalog.dwarf_members.UnitTypes) for its own."""
    @property
    def memory(self) -> str: ...  # "kernel" or "user": where the objects it describes live
    @property
    def source(self) -> str: ...  # "BTF" or "DWARF", for sentences
    def resolve_path(self, base: str | int, path: list[str]) -> FieldPath: ...
    def find(self, name: str) -> int | None: ...
    def members(self, tid: int) -> list[Member]: ...
    def strip(self, tid: int) -> int: ...


def split_member_name(text: str) -> tuple[str, tuple[str, ...]] | None:
    """``skb->len`` -> ("skb", ("len",)); bpftrace's ``args->skb->len`` / ``args.skb->len`` and
    ``args->filename`` (the probe's own arguments) -> ("skb", ("len",)) / ("filename", ());
    ``sk->__sk_common.skc_dport`` keeps ``.`` and ``->`` alike (BTF knows which is a pointer).
    None when ``text`` is not such a name."""
    if not isinstance(text, str) or not _MEMBER_NAME.match(text):
        return None
    parts = re.split(r"->|\.", text)
    if parts[0] == "args" and len(parts) > 1:
        parts = parts[1:]
    if len(parts) - 1 > MAX_MEMBER_DEPTH:
        return None
    return parts[0], tuple(parts[1:])


def member_column(base: str, path: tuple[str, ...]) -> str:
    """The record column a member is recorded in (skb->len -> skb_len), as SystemTap's
    ``$skb->len`` names it too."""
    return "_".join((base, *path))


def struct_of(ctype: str) -> str | None:
    """The struct or union a pointer type points at (``const struct sk_buff *`` -> ``sk_buff``),
    None when the type is not a pointer to one."""
    words = [w for w in ctype.replace("*", " * ").split() if w not in ("const", "volatile", "__user", "restrict")]
    if words.count("*") != 1 or words[-1] != "*" or len(words) < 2:
        return None
    if words[0] in ("struct", "union"):
        return words[1] if len(words) == 3 else None
    if len(words) != 2 or words[0] == "void" or value_type_of_ctype(words[0]) is not None:
        return None  # a pointer to a number (char *, u32 *) or to void
    return words[0]  # a typedef'd struct (BTF resolves it or says no)


@dataclass(frozen=True)
class MemberRef:
    """``base->path`` resolved: the member's C type and how it is fetched and compared."""
    base: Named
    path: tuple[str, ...]
    where: FieldPath  # offset, hops, size, signedness: what the compiler plans reads from
    memory: str = KERNEL  # where the object lives: a uprobe's structs are in the program's memory

    @property
    def text(self) -> str:
        return self.base.name + "".join("->" + p for p in self.path)

    @property
    def column(self) -> str:
        return member_column(self.base.name, self.path)

    @property
    def ctype(self) -> str:
        return str(self.where.ctype)

    def value_type(self) -> ValueType | None:
        return member_value_type(self.where, self.memory)

    def kind(self) -> str | None:
        vt = self.value_type()
        return None if vt is None else ("string" if vt.is_string else "int")


def member_value_type(fp: Any, memory: str = KERNEL) -> ValueType | None:
    """The type a member is fetched as: char arrays and char pointers are strings (``ustring``
    in a program's memory, where a uprobe's structs live; else kernel memory: a member is read
    through a kernel object), bitfields their bits, pointers hex, integers by size and sign; None
    for a struct, union or other array (fetch a member of it)."""
    if fp.is_char_array or (fp.is_pointer and is_string_ctype(fp.ctype)):
        return ValueType("ustring" if memory == USER else "string", 0)
    if fp.bitfield_size:
        bits = 8
        while bits < fp.size * 8:
            bits *= 2
        return ValueType("bitfield", min(64, bits), fp.bitfield_size, fp.bitfield_offset or 0)
    if fp.is_pointer:
        return ValueType("x", 64)
    if fp.is_struct or fp.is_array or fp.size not in (1, 2, 4, 8):
        return None
    return int_type(fp.size, fp.signed)


def resolve_member(names: PointNames, base: str, path: tuple[str, ...], types: MemberTypes | None,
                   why_no_types: str = "the kernel's BTF is not available") -> MemberRef:
    """``base->path`` at a point (``base`` an argument or field name, or argN), or a KtuiError
    in one sentence saying why not."""
    from ktui.errors import KtuiError

    text = base + "".join("->" + p for p in path)
    number = arg_number(base, names)
    named = names.arg(index=number) if number is not None else names.arg(name=base)
    if named is None and base == "retval" and names.ret is not None:  # retval->len where there is a return
        named = names.ret
    if named is None:
        if names.binary is not None and not any(a.name for a in names.args):
            why = why_no_types if types is None else (
                names.note.rstrip(".") or f"the DWARF debug info of {names.binary} gives no arguments of {names.symbol}")
            raise KtuiError(f"{text}: arguments and their members by name need the program's DWARF debug info, "
                            f"and {why}")
        known = ", ".join(a.name for a in names.args if a.name) or "none by name"
        raise KtuiError(f"{text}: this probe has no argument or field {base} (it has: {known})")
    return resolve_member_of(named, tuple(path), types, why_no_types, label=base, program=names.binary)


def resolve_member_of(named: Named, path: tuple[str, ...], types: MemberTypes | None,
                      why_no_types: str = "the kernel's BTF is not available", label: str = "",
                      program: str | None = None) -> MemberRef:
    """``named->path`` where ``named`` is an argument, field or return value already found;
    ``program`` is the probed program at a uprobe (its structs are laid out by its DWARF)."""
    from ktui.errors import KtuiError

    base = label or named.name or "the argument"
    text = base + "".join("->" + p for p in path)
    if not path:
        raise KtuiError(f"{text} names no member")
    if len(path) > MAX_MEMBER_DEPTH:
        raise KtuiError(f"{text} goes deeper than {MAX_MEMBER_DEPTH} members")
    struct = struct_of(named.ctype)
    if named.memory == USER and (types is None or types.memory != USER):
        if program is not None and struct is not None:  # a uprobe whose program's DWARF cannot be read
            raise KtuiError(f"{text}: struct members of {program} need its DWARF debug info, and {why_no_types}")
        raise KtuiError(f"{text}: {base} is {named.ctype} in user memory; struct members are read only "
                        "through kernel pointers whose layout the kernel's BTF describes")
    if struct is None:
        raise KtuiError(f"{text}: {base} is {named.ctype or 'of unknown type'}, not a pointer to a struct")
    if types is None:
        raise KtuiError(f"{text}: struct members by name need the kernel's BTF, and {why_no_types}")
    if named.memory != USER and types.memory == USER:
        raise KtuiError(f"{text}: {base} points into the kernel, whose layouts a program's DWARF does not describe")
    try:
        fp = types.resolve_path(struct, list(path))
    except UnknownMember as err:
        from ktui.probes.exists import did_you_mean

        near = did_you_mean(err.name, err.members) or (f" (its members: {', '.join(err.members[:8])}"
                                                         f"{', ...' if len(err.members) > 8 else ''})"
                                                         if err.members else "")
        raise KtuiError(f"{text}: {err.message.rstrip('.')}{near}") from None
    except KtuiError as err:
        raise KtuiError(f"{text}: {err.message.rstrip('.')}") from None
    return MemberRef(named, tuple(path), fp, types.memory)


def members_of(ctype: str, types: MemberTypes | None) -> list[tuple[str, str, int]]:
    """[(member, ctype, byte offset)...] of the struct a pointer type points at, one level deep
    (the editor's member picker and ``ktui list -v --members``); [] when it is not a struct
    pointer or BTF does not describe it."""
    struct = struct_of(ctype)
    if struct is None or types is None:
        return []
    tid = types.find(struct)
    if tid is None:
        return []
    try:
        return [(m.name, m.ctype, m.offset) for m in types.members(tid)]
    except Exception:  # noqa: BLE001 - a malformed BTF entry: no members shown
        return []


def member_options(named: Named, types: MemberTypes | None) -> list[MemberRef]:
    """The members of a struct-pointer argument a probe can fetch (scalars and strings), resolved:
    what the editor's member picker offers under ``named``."""
    from ktui.errors import KtuiError

    if struct_of(named.ctype) is None or types is None or (named.memory == USER) != (types.memory == USER):
        return []
    out = []
    for name, _ctype, _off in members_of(named.ctype, types):
        try:
            ref = resolve_member_of(named, (name,), types)
        except KtuiError:
            continue
        if ref.kind() is not None:
            out.append(ref)
    return out


_KERNEL_TYPES: dict[str, Any] = {}


def user_member_types(binary: str, symbol: str) -> tuple[MemberTypes | None, str]:
    """The layouts a uprobe on ``binary``'s ``symbol`` follows members through (the program's
    DWARF, the function's own unit; cached per file in ktui.catalog.dwarf_members), or None and
    the reason in one sentence (no DWARF, no such function)."""
    from ktui.errors import KtuiError

    try:
        from ktui.catalog.dwarf_members import member_types
        from ktui.probes.exists import resolve_binary

        path = resolve_binary(binary)
        if path is None:
            return None, f"there is no program {binary}"
        return member_types(path, symbol), ""
    except (KtuiError, OSError) as err:
        return None, str(err).rstrip(".")


def kernel_types() -> tuple[MemberTypes | None, str]:
    """The running kernel's BTF (loaded once per process), or None and the reason."""
    if "btf" not in _KERNEL_TYPES:
        from ktui.errors import KtuiError

        try:
            from ktui.catalog.btf import load_vmlinux_btf

            _KERNEL_TYPES["btf"], _KERNEL_TYPES["why"] = load_vmlinux_btf(), ""
        except (KtuiError, OSError, ImportError) as err:
            _KERNEL_TYPES["btf"], _KERNEL_TYPES["why"] = None, str(err)
    return _KERNEL_TYPES["btf"], _KERNEL_TYPES["why"] or "the kernel's BTF is not available"


def member_kinds(names: PointNames, wanted: list[str], types: MemberTypes | None,
                 why_no_types: str = "the kernel's BTF is not available") -> dict[str, str]:
    """name -> "int" | "string" for each member name a filter or key uses (``skb->len``); a
    KtuiError in one sentence for one that does not resolve or is not a scalar."""
    from ktui.errors import KtuiError

    out: dict[str, str] = {}
    for text in wanted:
        split = split_member_name(text)
        if split is None or not split[1]:
            continue
        ref = resolve_member(names, split[0], split[1], types, why_no_types)
        kind = ref.kind()
        if kind is None:
            raise KtuiError(f"{text} is {ref.ctype}, not a number or string; name one of its members")
        out[text] = kind
    return out
