"""DWARF through pyelftools: source file:line, parameters and locals of functions
(what ``perf probe -V`` and ``stap -L`` show)."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ktui.errors import FileFormatError, KtuiError

if TYPE_CHECKING:  # pyelftools ships no type information: these name what is passed, mypy sees Any
    from elftools.dwarf.compileunit import CompileUnit
    from elftools.dwarf.die import DIE
    from elftools.dwarf.dwarfinfo import DWARFInfo
    from elftools.dwarf.lineprogram import LineProgram
    from elftools.elf.elffile import ELFFile


@dataclass
class DwarfFunction:
    name: str
    file: str | None = None
    line: int | None = None
    params: list[tuple[str, str]] = field(default_factory=list)
    locals: list[tuple[str, str]] = field(default_factory=list)
    return_type: str = "void"
    low_pc: int | None = None
    inlined_only: bool = False
    param_info: list[tuple[int | None, bool | None]] = field(default_factory=list)  # (byte size, signed)

    @property
    def source(self) -> str | None:
        if self.file is None:
            return None
        return f"{self.file}:{self.line}" if self.line else self.file


def _name(die: DIE) -> str | None:
    a = die.attributes.get("DW_AT_name")
    return a.value.decode("utf-8", "replace") if a is not None else None


def _int_attr(die: DIE, attr: str) -> int | None:
    """An attribute's integer value (None when absent, or not an integer: a block, a flag)."""
    a = die.attributes.get(attr)
    return a.value if a is not None and isinstance(a.value, int) and not isinstance(a.value, bool) else None


def _ref(die: DIE, attr: str) -> DIE | None:
    try:
        return die.get_DIE_from_attribute(attr) if attr in die.attributes else None
    except Exception:
        return None


_TYPES: dict[tuple[int, int], str] = {}  # (id of the DWARFInfo, DIE offset) -> spelling; one file at a time


def type_str(die: DIE | None, depth: int = 0) -> str:
    """C spelling of a DWARF type DIE (None = void). Memoised: a type is spelled once per file,
    however many parameters use it (most of the time DWARF reading used to go here)."""
    if die is None:
        return "void"
    key = (id(die.dwarfinfo), die.offset)
    got = _TYPES.get(key)
    if got is None:
        got = _TYPES[key] = _type_str(die, depth)
    return got


def _type_str(die: DIE, depth: int) -> str:
    if depth > 30:
        return "?"
    tag = die.tag
    inner = _ref(die, "DW_AT_type")
    if tag in ("DW_TAG_base_type", "DW_TAG_typedef", "DW_TAG_unspecified_type"):
        return _name(die) or "?"
    if tag in ("DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_enumeration_type", "DW_TAG_class_type"):
        kw = {"DW_TAG_structure_type": "struct", "DW_TAG_union_type": "union",
              "DW_TAG_enumeration_type": "enum", "DW_TAG_class_type": "class"}[tag]
        return f"{kw} {_name(die) or '(anon)'}"
    if tag in ("DW_TAG_pointer_type", "DW_TAG_reference_type", "DW_TAG_rvalue_reference_type"):
        mark = {"DW_TAG_pointer_type": "*", "DW_TAG_reference_type": "&", "DW_TAG_rvalue_reference_type": "&&"}[tag]
        if inner is not None and inner.tag == "DW_TAG_subroutine_type":
            return f"{_subroutine(inner, depth)} ({mark})({_subroutine_args(inner, depth)})"
        s = type_str(inner, depth + 1)
        return s + (mark if s.endswith("*") else " " + mark)
    if tag in ("DW_TAG_const_type", "DW_TAG_volatile_type"):
        q = "const" if tag == "DW_TAG_const_type" else "volatile"
        s = type_str(inner, depth + 1)
        return f"{s} {q}" if s.endswith("*") else f"{q} {s}"
    if tag in ("DW_TAG_restrict_type", "DW_TAG_atomic_type"):
        return type_str(inner, depth + 1)
    if tag == "DW_TAG_array_type":
        dims = ""
        for child in die.iter_children():
            if child.tag == "DW_TAG_subrange_type":
                if "DW_AT_count" in child.attributes:
                    dims += f"[{child.attributes['DW_AT_count'].value}]"
                elif "DW_AT_upper_bound" in child.attributes and isinstance(child.attributes["DW_AT_upper_bound"].value, int):
                    dims += f"[{child.attributes['DW_AT_upper_bound'].value + 1}]"
                else:
                    dims += "[]"
        return type_str(inner, depth + 1) + (dims or "[]")
    if tag == "DW_TAG_subroutine_type":
        return f"{_subroutine(die, depth)} ({_subroutine_args(die, depth)})"
    return _name(die) or "?"


_ENC_SIGNED = {0x05, 0x06, 0x0D}  # DW_ATE_signed, signed_char, signed_fixed


def type_info(die: DIE | None, depth: int = 0) -> tuple[int | None, bool | None]:
    """(byte size, signed) of a type DIE, through typedefs and qualifiers; pointers are unsigned."""
    if die is None or depth > 30:
        return None, None
    tag = die.tag
    if tag in ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
               "DW_TAG_atomic_type"):
        return type_info(_ref(die, "DW_AT_type"), depth + 1)
    if tag in ("DW_TAG_pointer_type", "DW_TAG_reference_type", "DW_TAG_rvalue_reference_type"):
        size = die.attributes.get("DW_AT_byte_size")
        return (size.value if size is not None else die.cu["address_size"]), False
    nbytes = _int_attr(die, "DW_AT_byte_size")
    if tag == "DW_TAG_base_type":
        enc = die.attributes.get("DW_AT_encoding")
        return nbytes, (enc.value in _ENC_SIGNED) if enc is not None else None
    if tag == "DW_TAG_enumeration_type":
        inner = _ref(die, "DW_AT_type")
        return (type_info(inner, depth + 1) if inner is not None else (nbytes, None))
    return nbytes, None


def _subroutine(die: DIE, depth: int) -> str:
    return type_str(_ref(die, "DW_AT_type"), depth + 1)


def _subroutine_args(die: DIE, depth: int) -> str:
    parts = []
    for c in die.iter_children():
        if c.tag == "DW_TAG_formal_parameter":
            parts.append(type_str(_ref(c, "DW_AT_type"), depth + 1))
        elif c.tag == "DW_TAG_unspecified_parameters":
            parts.append("...")
    return ", ".join(parts) or "void"


def _file_table(dwarf: DWARFInfo, cu: CompileUnit) -> tuple[LineProgram | None, int]:
    try:
        lp = dwarf.line_program_for_CU(cu)
    except Exception:
        return None, 4
    if lp is None:
        return None, 4
    return lp, lp.header.version


def _decl_file(lp: LineProgram | None, version: int, index: int, comp_dir: str | None) -> str | None:
    if lp is None:
        return None
    files = lp.header.file_entry
    dirs = lp.header.include_directory
    i = index if version >= 5 else index - 1
    if not 0 <= i < len(files):
        return None
    fe = files[i]
    name: str = fe.name.decode("utf-8", "replace")
    di = fe.dir_index
    d = None
    if version >= 5:
        if 0 <= di < len(dirs):
            d = dirs[di].decode("utf-8", "replace")
    elif di == 0:
        d = comp_dir
    elif 0 < di <= len(dirs):
        d = dirs[di - 1].decode("utf-8", "replace")
    if d and not os.path.isabs(name):
        if comp_dir and not os.path.isabs(d):
            d = os.path.join(comp_dir, d)
        return os.path.normpath(os.path.join(d, name))
    return name


def _vars(die: DIE, params: list[tuple[str, str]], local_vars: list[tuple[str, str]], top: bool = True, depth: int = 0,
          info: list[tuple[int | None, bool | None]] | None = None) -> None:
    if depth > 20:
        return
    for c in die.iter_children():
        if c.tag == "DW_TAG_formal_parameter" and top:
            origin = _ref(c, "DW_AT_abstract_origin") or c
            t = _ref(origin, "DW_AT_type")
            params.append((_name(origin) or f"arg{len(params)}", type_str(t)))
            if info is not None:
                info.append(type_info(t))
        elif c.tag == "DW_TAG_variable":
            origin = _ref(c, "DW_AT_abstract_origin") or c
            n = _name(origin)
            if n:
                local_vars.append((n, type_str(_ref(origin, "DW_AT_type"))))
        elif c.tag == "DW_TAG_lexical_block":
            _vars(c, params, local_vars, top=False, depth=depth + 1, info=info)


def no_dwarf_message(path: str) -> str:
    return f"{path} has no DWARF debug info (build with -g, or use its debug file)."


def _subprograms(die: DIE, depth: int = 0) -> Iterator[DIE]:
    """The function DIEs of a unit: its children (and those of namespaces, for C++). Bodies are
    skipped by their DW_AT_sibling links instead of parsed: most DIEs of a file are inside bodies."""
    for c in die.iter_children():
        if c.tag == "DW_TAG_subprogram":
            yield c
        elif c.tag in ("DW_TAG_namespace", "DW_TAG_module") and depth < 16:
            yield from _subprograms(c, depth + 1)


def _range_starts(dwarf: DWARFInfo, cu: CompileUnit, die: DIE) -> list[int]:
    """Where each address range of ``die`` starts (its DW_AT_ranges, DWARF 2 to 5); none when the
    list is given by index (DW_FORM_rnglistx) or cannot be read."""
    from elftools.dwarf.ranges import BaseAddressEntry

    attr = die.attributes["DW_AT_ranges"]
    if attr.form == "DW_FORM_rnglistx":
        return []
    lists = dwarf.range_lists()
    if lists is None:
        return []
    base = _int_attr(cu.get_top_DIE(), "DW_AT_low_pc") or 0
    starts = []
    for entry in lists.get_range_list_at_offset(attr.value, cu=cu):
        if isinstance(entry, BaseAddressEntry):
            base = entry.base_address
        elif entry.begin_offset != entry.end_offset:
            starts.append(entry.begin_offset if entry.is_absolute else base + entry.begin_offset)
    return starts


class _Scan:
    """Functions found so far in one file's DWARF (one unit at a time)."""

    def __init__(self, dwarf: DWARFInfo):
        self.dwarf = dwarf
        self.out: dict[str, DwarfFunction] = {}
        self.by_addr: dict[int, DwarfFunction] = {}  # entry address -> function (aliases share one)
        self.abstract: dict[int, DwarfFunction] = {}
        self.concrete_origins: set[int] = set()

    def unit(self, cu: CompileUnit) -> None:
        top = cu.get_top_DIE()
        comp_dir = top.attributes.get("DW_AT_comp_dir")
        comp_dir = comp_dir.value.decode("utf-8", "replace") if comp_dir is not None else None
        lp, version = _file_table(self.dwarf, cu)
        out = self.out
        for die in _subprograms(top):
            origin = _ref(die, "DW_AT_abstract_origin") or _ref(die, "DW_AT_specification")
            named = die if _name(die) else origin
            if named is None:
                continue
            name = _name(named)
            if name is None:  # the abstract origin has no name either: nothing a probe could name
                continue
            has_code = "DW_AT_low_pc" in die.attributes or "DW_AT_ranges" in die.attributes
            if origin is not None and has_code:
                self.concrete_origins.add(origin.offset)
            if "DW_AT_declaration" in die.attributes and not has_code:
                continue
            f = out.get(name)
            if f is None or (has_code and f.low_pc is None):
                decl = named if "DW_AT_decl_file" in named.attributes else die
                fi = decl.attributes.get("DW_AT_decl_file")
                li = decl.attributes.get("DW_AT_decl_line")
                params: list[tuple[str, str]] = []
                local_vars: list[tuple[str, str]] = []
                info: list[tuple[int | None, bool | None]] = []
                _vars(die if die.has_children else named, params, local_vars, info=info)
                f = DwarfFunction(
                    name=name,
                    file=_decl_file(lp, version, fi.value, comp_dir) if fi is not None else None,
                    line=li.value if li is not None else None,
                    params=params, locals=local_vars,
                    return_type=type_str(_ref(named, "DW_AT_type")),
                    low_pc=_int_attr(die, "DW_AT_low_pc"),
                    param_info=info,
                )
                out[name] = f
            if has_code and f.low_pc is not None:
                self.by_addr.setdefault(f.low_pc, f)
            elif has_code and "DW_AT_ranges" in die.attributes:
                # A function split in parts (gcc's hot/cold split, common in -O2 libraries: libc's
                # fclose) has ranges and no low_pc; its symbol points at one of the parts' starts.
                for start in _range_starts(self.dwarf, cu, die):
                    self.by_addr.setdefault(start, f)
            if "DW_AT_inline" in die.attributes and not has_code:
                self.abstract[die.offset] = f

    def finish(self) -> dict[str, DwarfFunction]:
        for off, f in self.abstract.items():
            if off not in self.concrete_origins and f.low_pc is None:
                f.inlined_only = True
        return self.out


def _open_dwarf(elf: ELFFile, path: str) -> DWARFInfo:
    if not elf.has_dwarf_info():
        raise FileFormatError(no_dwarf_message(path))
    dwarf = elf.get_dwarf_info()
    if not dwarf.has_debug_info:
        raise FileFormatError(no_dwarf_message(path))
    return dwarf


def dwarf_functions(path: str) -> dict[str, DwarfFunction]:
    """Every named function in a file's DWARF: source, params, locals, whether only inlined."""
    from elftools.common.exceptions import ELFError

    from ktui.catalog.elf_file import open_elf

    with open_elf(path) as elf:
        try:
            dwarf = _open_dwarf(elf, path)
            _TYPES.clear()
            scan = _Scan(dwarf)
            for cu in dwarf.iter_CUs():
                scan.unit(cu)
            return scan.finish()
        except KtuiError:
            raise
        except (ELFError, Exception) as err:  # pyelftools raises many kinds on corrupt DWARF
            raise FileFormatError(f"{path} has corrupt DWARF debug info ({type(err).__name__}).") from None
        finally:
            _TYPES.clear()


class OpenDwarf:
    """A file's DWARF kept open (its ELF file and the aranges index) until ``close``; ``shown`` is
    the name its sentences use. What pyelftools raises on corrupt DWARF becomes one sentence."""

    def __init__(self, path: str, shown: str | None = None):
        from ktui.catalog.elf_file import open_elf

        shown = path if shown is None else shown
        self.path = path
        self._ctx: AbstractContextManager[Any] | None = open_elf(path)
        elf = self._ctx.__enter__()
        try:
            self.dwarf: DWARFInfo = _open_dwarf(elf, shown)
            self.aranges = self.dwarf.get_aranges()
        except KtuiError:
            self.close()
            raise
        except Exception as err:  # noqa: BLE001 - pyelftools raises many kinds on corrupt DWARF
            self.close()
            raise FileFormatError(f"{shown} has corrupt DWARF debug info ({type(err).__name__}).") from None

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None


class DwarfLookup(OpenDwarf):
    """One file's DWARF, read a function at a time: the unit holding an address is found through
    .debug_aranges and only that unit is read (libc's debug file: milliseconds instead of seconds).
    Without aranges, the whole file is read once."""

    def __init__(self, path: str):
        super().__init__(path)
        self._units: dict[int, _Scan] = {}
        self._all: _Scan | None = None

    def function(self, name: str, address: int | None) -> DwarfFunction | None:
        """The function at ``address`` (an alias such as libc's ``malloc`` for ``__libc_malloc``
        is found by where it starts), else by ``name``."""
        try:
            if self.aranges is not None:
                offset = self.aranges.cu_offset_at_addr(address) if address else None
                if offset is None:
                    return None  # no unit covers it: no DWARF for this function
                scan = self._units.get(offset)
                if scan is None:
                    scan = _Scan(self.dwarf)
                    scan.unit(self.dwarf.get_CU_at(offset))
                    scan.finish()
                    self._units[offset] = scan
            else:  # no .debug_aranges: read every unit, once
                if self._all is None:
                    self._all = _Scan(self.dwarf)
                    for cu in self.dwarf.iter_CUs():
                        self._all.unit(cu)
                    self._all.finish()
                scan = self._all
            return scan.by_addr.get(address) if address in scan.by_addr else scan.out.get(name)
        except KtuiError:
            raise
        except Exception as err:  # noqa: BLE001 - corrupt DWARF is one sentence
            raise FileFormatError(f"{self.path} has corrupt DWARF debug info ({type(err).__name__}).") from None
