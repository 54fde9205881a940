"""Struct members of a program's types, from its DWARF: what ``p->name`` means at a uprobe.

The kernel's structs come from BTF (``ktui.catalog.btf``); a user program's come from the
DWARF of the program (or its build-id debug file), read with pyelftools as
``ktui.catalog.dwarf`` reads functions. Both answer the same questions
(``ktui.probes.resolve.MemberTypes``): the id of a named type, its members with byte
offsets, and where ``base->a.b->c`` lives (the pointers to follow and the final offset), so
the resolution, the editor's member picker and the compiler are the same for both.

Types are looked up in the compile unit of the probed function: in C a name means the type
its own unit declared (two units may each have their own ``struct point``). A struct only
declared there (an opaque pointer) is looked for in the other units, once.

Type ids are DIE offsets in .debug_info (0 is void). Nothing here becomes C: the compiler
plans reads from the numbers in the ``FieldPath`` given back.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from ktui.catalog.btf import FieldPath, Member
from ktui.catalog.dwarf import OpenDwarf, _int_attr, _name, _ref, type_str
from ktui.errors import FileFormatError, KtuiError, UnknownMember

if TYPE_CHECKING:  # pyelftools ships no type information
    from elftools.dwarf.compileunit import CompileUnit
    from elftools.dwarf.die import DIE

_QUALIFIERS = ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
               "DW_TAG_atomic_type")
_AGGREGATES = ("DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_class_type")
_POINTERS = ("DW_TAG_pointer_type", "DW_TAG_reference_type", "DW_TAG_rvalue_reference_type")
_NAMED_TYPES = (*_AGGREGATES, "DW_TAG_typedef", "DW_TAG_enumeration_type", "DW_TAG_base_type")
_ATE_FLOAT = (0x04, 0x03, 0x09)  # DW_ATE_float, complex_float, imaginary_float
_ATE_SIGNED = (0x05, 0x06, 0x0D)  # DW_ATE_signed, signed_char, signed_fixed
_ATE_CHAR = (0x06, 0x08, 0x10)  # signed_char, unsigned_char, UTF
_DW_OP_PLUS_UCONST = 0x23
MAX_DEPTH = 64  # typedef/qualifier chains and nested anonymous members

CACHED_FILES = 4  # open DWARF files kept (each holds a file descriptor and parsed units)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """One reader at a time per file: pyelftools seeks and reads one shared file object, and the
    editor (UI thread) and a compile (worker thread) may ask about the same program at once. What
    pyelftools raises on damaged DWARF (or on a file closed since) is one sentence."""
    @functools.wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        unit = args[0]
        with unit.file.lock:  # type: ignore[attr-defined]
            try:
                return method(*args, **kwargs)
            except KtuiError:
                raise
            except Exception as err:  # noqa: BLE001 - pyelftools raises many kinds
                raise FileFormatError(f"the DWARF debug info of {unit.name} cannot be read "  # type: ignore[attr-defined]
                                      f"({type(err).__name__}).") from None
    return run


def _agg_word(die: DIE) -> str:
    return {"DW_TAG_structure_type": "struct", "DW_TAG_union_type": "union", "DW_TAG_class_type": "class"}[str(die.tag)]


def _member_location(die: DIE) -> int | None:
    """DW_AT_data_member_location in bytes: a constant (DWARF 3+), or DW_OP_plus_uconst N
    (DWARF 2); a union's members have none (0). None for a location it cannot be read from."""
    attr = die.attributes.get("DW_AT_data_member_location")
    if attr is None:
        return 0
    value = attr.value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, list) and len(value) >= 2 and value[0] == _DW_OP_PLUS_UCONST:
        # the expression's bytes: the opcode, then a ULEB128
        result, shift = 0, 0
        for byte in (int(b) for b in value[1:]):
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result
    return None


class DwarfFile(OpenDwarf):
    """One file's DWARF, kept open for member lookups; the units asked about are parsed once."""

    def __init__(self, path: str, shown: str):
        self.shown = shown
        self.lock = threading.RLock()
        super().__init__(path, shown)
        self._units: dict[int, UnitTypes] = {}
        self._everywhere: dict[str, list[int]] | None = None  # named aggregates of every unit

    def close(self) -> None:
        with self.lock:
            super().close()

    def _unit_of(self, symbol: str, address: int | None) -> CompileUnit | None:
        """The unit that holds the function: by address through .debug_aranges, else the unit
        whose subprogram has this name or entry address."""
        if self.aranges is not None and address:
            offset = self.aranges.cu_offset_at_addr(address)
            if offset is not None:
                return self.dwarf.get_CU_at(offset)
        for cu in self.dwarf.iter_CUs():
            for die in cu.get_top_DIE().iter_children():
                if die.tag != "DW_TAG_subprogram" or "DW_AT_declaration" in die.attributes:
                    continue
                if _name(die) == symbol or (address and _int_attr(die, "DW_AT_low_pc") == address):
                    return cu
        return None

    def for_function(self, symbol: str, address: int | None) -> UnitTypes:
        """The types of the unit holding ``symbol``; a KtuiError in one sentence when the DWARF
        does not describe it."""
        with self.lock:
            return self._for_function(symbol, address)

    def _for_function(self, symbol: str, address: int | None) -> UnitTypes:
        try:
            cu = self._unit_of(symbol, address)
            if cu is None:
                raise FileFormatError(f"the DWARF debug info of {self.shown} does not describe {symbol} "
                                      "(its unit was built without -g)")
            unit = self._units.get(cu.cu_offset)
            if unit is None:
                unit = self._units[cu.cu_offset] = UnitTypes(self, cu)
            return unit
        except KtuiError:
            raise
        except Exception as err:  # noqa: BLE001 - corrupt DWARF is one sentence
            raise FileFormatError(f"{self.shown} has corrupt DWARF debug info ({type(err).__name__}).") from None

    def defined_elsewhere(self, name: str) -> list[int]:
        """DIE offsets of complete structs/unions named ``name`` in any unit (for a type only
        declared where the function is). Built once per file, top-level types only."""
        if self._everywhere is None:
            found: dict[str, list[int]] = {}
            for cu in self.dwarf.iter_CUs():
                for die in cu.get_top_DIE().iter_children():
                    if die.tag in _AGGREGATES and "DW_AT_declaration" not in die.attributes:
                        n = _name(die)
                        if n:
                            found.setdefault(n, []).append(die.offset)
            self._everywhere = found
        return self._everywhere.get(name, [])


class UnitTypes:
    """The types one compile unit declares, answering ``ktui.probes.resolve.MemberTypes``."""

    memory = "user"  # members are read from the traced program's memory
    source = "DWARF"

    def __init__(self, file: DwarfFile, cu: CompileUnit):
        self.file = file
        self.cu = cu
        self.name = file.shown
        self._dies: dict[int, DIE] = {}
        self._names: dict[str, list[int]] | None = None

    # ---- DIEs by id ------------------------------------------------------------------
    def _keep(self, die: DIE | None) -> int:
        if die is None:
            return 0
        self._dies[die.offset] = die
        return int(die.offset)

    def die(self, tid: int) -> DIE | None:
        if tid == 0:
            return None
        got = self._dies.get(tid)
        if got is None:
            try:
                got = self.file.dwarf.get_DIE_from_refaddr(tid)
            except Exception as err:  # noqa: BLE001 - an offset no DIE starts at
                raise FileFormatError(f"the DWARF debug info of {self.name} has no type at 0x{tid:x} "
                                      f"({type(err).__name__}).") from None
            self._dies[tid] = got
        return got

    def _inner(self, die: DIE) -> int:
        return self._keep(_ref(die, "DW_AT_type"))

    @_locked
    def ctype(self, tid: int) -> str:
        return type_str(self.die(tid))

    # ---- MemberTypes -----------------------------------------------------------------
    @_locked
    def find(self, name: str) -> int | None:
        """The id of a named struct, union, typedef, enum or base type of this unit;
        ``struct x``/``union x`` restrict the kind. A struct only declared here is looked
        for, complete, in the other units."""
        name = name.strip()
        tags: tuple[str, ...] = _NAMED_TYPES
        for word, only in (("struct ", ("DW_TAG_structure_type", "DW_TAG_class_type")),
                           ("union ", ("DW_TAG_union_type",)), ("enum ", ("DW_TAG_enumeration_type",))):
            if name.startswith(word):
                name, tags = name[len(word):].strip(), only
                break
        if self._names is None:
            self._index()
        assert self._names is not None
        declared = None
        for tid in self._names.get(name, []):
            die = self.die(tid)
            if die is None or die.tag not in tags:
                continue
            if "DW_AT_declaration" in die.attributes:
                declared = tid
                continue
            return tid
        if declared is not None or any(t in _AGGREGATES for t in tags):
            for tid in self.file.defined_elsewhere(name):
                die = self.die(tid)
                if die is not None and die.tag in tags:
                    return tid
        return declared

    def _index(self) -> None:
        names: dict[str, list[int]] = {}

        def walk(die: DIE, depth: int) -> None:
            for c in die.iter_children():
                if c.tag in _NAMED_TYPES:
                    n = _name(c)
                    if n:
                        names.setdefault(n, []).append(self._keep(c))
                elif c.tag in ("DW_TAG_namespace", "DW_TAG_module") and depth < 16:
                    walk(c, depth + 1)

        walk(self.cu.get_top_DIE(), 0)
        self._names = names

    @_locked
    def strip(self, tid: int) -> int:
        """Skip typedefs and qualifiers."""
        for _ in range(MAX_DEPTH):
            die = self.die(tid)
            if die is None or die.tag not in _QUALIFIERS:
                return tid
            tid = self._inner(die)
        raise FileFormatError(f"the DWARF debug info of {self.name} has a typedef loop at 0x{tid:x}.")

    def size_of(self, tid: int, depth: int = 0) -> int:
        die = self.die(self.strip(tid))
        if die is None or depth > MAX_DEPTH:
            return 0
        size = _int_attr(die, "DW_AT_byte_size")
        if size is not None:
            return size
        if die.tag in _POINTERS:
            return int(die.cu["address_size"])
        if die.tag == "DW_TAG_array_type":
            count = 1
            for sub in die.iter_children():
                if sub.tag == "DW_TAG_subrange_type":
                    n = _int_attr(sub, "DW_AT_count")
                    upper = _int_attr(sub, "DW_AT_upper_bound")
                    count *= n if n is not None else (upper + 1 if upper is not None else 0)
            return count * self.size_of(self._inner(die), depth + 1)
        return 0

    @_locked
    def members(self, tid: int) -> list[Member]:
        """Members of a struct/union (anonymous struct and union members flattened in place,
        as C lets them be named)."""
        out: list[Member] = []
        self._members(self.strip(tid), 0, out, 0)
        return out

    def _members(self, tid: int, base: int, out: list[Member], depth: int) -> None:
        die = self.die(tid)
        if die is None or die.tag not in _AGGREGATES or depth > 16:
            return
        for m in die.iter_children():
            if m.tag != "DW_TAG_member" or "DW_AT_external" in m.attributes:
                continue  # C++ static members have no place in the object
            mtype = self._inner(m)
            loc = _member_location(m)
            bit_size = _int_attr(m, "DW_AT_bit_size")
            name = _name(m)
            if bit_size is not None:
                bits = _int_attr(m, "DW_AT_data_bit_offset")
                if bits is None:  # DWARF 2/3: byte location, and bits counted from the storage unit's top
                    unit = _int_attr(m, "DW_AT_byte_size") or self.size_of(mtype)
                    bits = (loc or 0) * 8 + unit * 8 - (_int_attr(m, "DW_AT_bit_offset") or 0) - bit_size
                total = base * 8 + bits
                if name:
                    out.append(Member(name, total // 8, self.size_of(mtype), self.ctype(mtype), mtype,
                                      total % 8, bit_size))
                continue
            if loc is None:
                continue  # a location expression that is not a constant: no fixed offset
            if not name:
                inner = self.strip(mtype)
                inner_die = self.die(inner)
                if inner_die is not None and inner_die.tag in _AGGREGATES:
                    self._members(inner, base + loc, out, depth + 1)
                continue
            out.append(Member(name, base + loc, self.size_of(mtype), self.ctype(mtype), mtype))

    def _aggregate(self, tid: int, what: str, name: str) -> int:
        """``tid`` as a complete struct or union (one only declared here is looked for elsewhere)."""
        die = self.die(tid)
        if die is None or die.tag not in _AGGREGATES:
            raise KtuiError(f"{what} is {self.ctype(tid)}, not a struct: it has no member {name!r}.")
        if "DW_AT_declaration" in die.attributes:
            own = _name(die)
            full = self.find(f"{_agg_word(die)} {own}") if own else None
            if full is None or full == tid:
                raise KtuiError(f"{self.ctype(tid)} is only declared in the DWARF of {self.name}; its layout is unknown.")
            return self.strip(full)
        return tid

    @_locked
    def resolve_path(self, base: str | int, path: list[str]) -> FieldPath:
        """Where ``base->path[0]->path[1]...`` lives (``.`` and ``->`` alike: pointers are
        followed and recorded in ``hops``). ``base`` is a type name or id; a pointer base type
        is followed first without a hop."""
        if isinstance(base, int):
            tid = base
        else:
            found = self.find(base.rstrip("* ").strip())
            if found is None:
                raise KtuiError(f"the DWARF debug info of {self.name} has no type named {base!r}.")
            tid = found
        tid = self.strip(tid)
        die = self.die(tid)
        if die is not None and die.tag in _POINTERS:
            tid = self.strip(self._inner(die))
        hops: list[int] = []
        offset = 0
        where = self.ctype(tid)
        cur: Member | None = None
        for i, name in enumerate(path):
            if cur is not None:  # step into the previous member
                mt = self.strip(cur.type_id)
                mdie = self.die(mt)
                if mdie is not None and mdie.tag in _POINTERS:
                    hops.append(offset)
                    offset = 0
                    tid = self.strip(self._inner(mdie))
                else:
                    tid = mt
                where = ".".join(path[:i])
            tid = self._aggregate(tid, where, name)
            members = self.members(tid)
            cur = next((m for m in members if m.name == name), None)
            if cur is None:
                raise UnknownMember(self.ctype(tid), name, [m.name for m in members])
            if cur.bitfield_size:
                raise KtuiError(f"{cur.name} is a {cur.bitfield_size}-bit bitfield of {self.ctype(tid)}; "
                                "bitfields of a program's structs are not read")
            offset += cur.offset
        if cur is None:
            raise KtuiError("An empty field path names nothing.")
        mt = self.strip(cur.type_id)
        die = self.die(mt)
        tag = die.tag if die is not None else "void"
        signed = False
        is_char_array = False
        if tag == "DW_TAG_base_type" and die is not None:
            enc = _int_attr(die, "DW_AT_encoding")
            if enc in _ATE_FLOAT:
                raise KtuiError(f"{cur.name} is {cur.ctype}, a floating-point number; only integers, "
                                "pointers and strings are read")
            signed = enc in _ATE_SIGNED
        elif tag == "DW_TAG_enumeration_type" and die is not None:
            inner = self.die(self.strip(self._inner(die)))
            if inner is not None:
                signed = _int_attr(inner, "DW_AT_encoding") in _ATE_SIGNED
            else:  # DWARF 2 gives an enum no underlying type: signed when a value is negative
                signed = any((_int_attr(e, "DW_AT_const_value") or 0) < 0 for e in die.iter_children()
                             if e.tag == "DW_TAG_enumerator")
        elif tag == "DW_TAG_array_type" and die is not None:
            elem = self.die(self.strip(self._inner(die)))
            dims = [c for c in die.iter_children() if c.tag == "DW_TAG_subrange_type"]
            is_char_array = (elem is not None and elem.tag == "DW_TAG_base_type" and len(dims) == 1
                             and _int_attr(elem, "DW_AT_byte_size") == 1
                             and (_int_attr(elem, "DW_AT_encoding") in _ATE_CHAR))
        return FieldPath(
            offset=offset, size=cur.size, ctype=cur.ctype, type_id=cur.type_id, signed=signed,
            is_pointer=tag in _POINTERS, is_array=tag == "DW_TAG_array_type", is_char_array=is_char_array,
            is_struct=tag in _AGGREGATES, hops=hops,
        )


_FILES: OrderedDict[tuple[str, str], DwarfFile] = OrderedDict()  # (path, identity) -> open file, newest last


_FILES_LOCK = threading.Lock()


def member_types(binary: str, symbol: str) -> UnitTypes:
    """The types a uprobe on ``binary``'s ``symbol`` can follow members through: the unit of the
    function in the DWARF of the program or of its build-id debug file. Cached per file identity
    (build id, inode, size, mtime; the debug file's too), at most CACHED_FILES files open.
    A KtuiError in one sentence when there is no such function or no DWARF for it."""
    from ktui.catalog.elf_names import binary_identity, uprobe_symbols
    from ktui.catalog.elf_symbols import dwarf_source

    path = os.path.abspath(binary)
    syms, debug_file = uprobe_symbols(path)
    addrs = syms.functions.get(symbol)
    if not addrs:
        raise FileFormatError(f"{binary} has no function named {symbol}.")
    source, note = dwarf_source(binary, None, syms, debug_file)
    if source is None:
        raise FileFormatError(note or f"{binary} has no DWARF debug info.")
    key = (path, binary_identity(path) or "")
    with _FILES_LOCK:
        file = _FILES.get(key)
        if file is None:
            file = DwarfFile(source, binary)
            for old in [k for k in _FILES if k[0] == path]:
                _FILES.pop(old).close()  # an older build of the same path
            while len(_FILES) >= CACHED_FILES:
                _FILES.popitem(last=False)[1].close()
            _FILES[key] = file
        else:
            _FILES.move_to_end(key)
    return file.for_function(symbol, min(addrs))
