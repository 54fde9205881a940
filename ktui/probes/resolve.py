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
* uprobe arguments come from DWARF (user memory, always);
* the return value exists only where there is a return (a kretprobe, uretprobe,
  fexit, or an entry+return probe): a tracepoint's ``ret`` field is a field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from collections.abc import Callable

from ktui.probes.ctypes import int_type, is_string_ctype, value_type_of_ctype
from ktui.probes.model import Probe, ProbeKind, ValueType

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
        return names_from(kind, probe.target, None, None, returns=returns, latency=latency,
                          note=note or "the catalog does not describe this point")
    try:
        args = [(a.name, a.ctype) for a in entry.args]
        ret = entry.return_type
        why = entry.args_note or ""
    except Exception as err:  # noqa: BLE001 - details unreadable: names unknown, the reason kept
        return names_from(kind, probe.target, None, None, returns=returns, latency=latency, note=str(err))
    return names_from(kind, probe.target, args if (args or not why) else None, ret, returns=returns,
                      latency=latency, note=why)


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
