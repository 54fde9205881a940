"""DWARF through pyelftools: source file:line, parameters and locals of functions
(what ``perf probe -V`` and ``stap -L`` show)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ktui.errors import FileFormatError, KtuiError


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

    @property
    def source(self) -> str | None:
        if self.file is None:
            return None
        return f"{self.file}:{self.line}" if self.line else self.file


def _name(die) -> str | None:
    a = die.attributes.get("DW_AT_name")
    return a.value.decode("utf-8", "replace") if a is not None else None


def _ref(die, attr: str):
    try:
        return die.get_DIE_from_attribute(attr) if attr in die.attributes else None
    except Exception:
        return None


def type_str(die, depth: int = 0) -> str:
    """C spelling of a DWARF type DIE (None = void)."""
    if die is None:
        return "void"
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


def _subroutine(die, depth: int) -> str:
    return type_str(_ref(die, "DW_AT_type"), depth + 1)


def _subroutine_args(die, depth: int) -> str:
    parts = []
    for c in die.iter_children():
        if c.tag == "DW_TAG_formal_parameter":
            parts.append(type_str(_ref(c, "DW_AT_type"), depth + 1))
        elif c.tag == "DW_TAG_unspecified_parameters":
            parts.append("...")
    return ", ".join(parts) or "void"


def _file_table(dwarf, cu):
    try:
        lp = dwarf.line_program_for_CU(cu)
    except Exception:
        return None, 4
    if lp is None:
        return None, 4
    return lp, lp.header.version


def _decl_file(lp, version: int, index: int, comp_dir: str | None) -> str | None:
    if lp is None:
        return None
    files = lp.header.file_entry
    dirs = lp.header.include_directory
    i = index if version >= 5 else index - 1
    if not 0 <= i < len(files):
        return None
    fe = files[i]
    name = fe.name.decode("utf-8", "replace")
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


def _vars(die, params: list, local_vars: list, top: bool = True, depth: int = 0) -> None:
    if depth > 20:
        return
    for c in die.iter_children():
        if c.tag == "DW_TAG_formal_parameter" and top:
            origin = _ref(c, "DW_AT_abstract_origin") or c
            params.append((_name(origin) or f"arg{len(params)}", type_str(_ref(origin, "DW_AT_type"))))
        elif c.tag == "DW_TAG_variable":
            origin = _ref(c, "DW_AT_abstract_origin") or c
            n = _name(origin)
            if n:
                local_vars.append((n, type_str(_ref(origin, "DW_AT_type"))))
        elif c.tag == "DW_TAG_lexical_block":
            _vars(c, params, local_vars, top=False, depth=depth + 1)


def dwarf_functions(path: str) -> dict[str, DwarfFunction]:
    """Every named function in a file's DWARF: source, params, locals, whether only inlined."""
    from elftools.common.exceptions import ELFError

    from ktui.catalog.elf_symbols import open_elf

    with open_elf(path) as elf:
        try:
            if not elf.has_dwarf_info():
                raise FileFormatError(f"{path} has no DWARF debug info (build with -g, or use its debug file).")
            dwarf = elf.get_dwarf_info()
            if not dwarf.has_debug_info:
                raise FileFormatError(f"{path} has no DWARF debug info (build with -g, or use its debug file).")
            out: dict[str, DwarfFunction] = {}
            abstract: dict[int, DwarfFunction] = {}
            concrete_origins: set[int] = set()
            for cu in dwarf.iter_CUs():
                top = cu.get_top_DIE()
                comp_dir = top.attributes.get("DW_AT_comp_dir")
                comp_dir = comp_dir.value.decode("utf-8", "replace") if comp_dir is not None else None
                lp, version = _file_table(dwarf, cu)
                for die in cu.iter_DIEs():
                    if die.tag != "DW_TAG_subprogram":
                        continue
                    origin = _ref(die, "DW_AT_abstract_origin") or _ref(die, "DW_AT_specification")
                    named = die if _name(die) else origin
                    if named is None:
                        continue
                    name = _name(named)
                    has_code = "DW_AT_low_pc" in die.attributes or "DW_AT_ranges" in die.attributes
                    if origin is not None and has_code:
                        concrete_origins.add(origin.offset)
                    if "DW_AT_declaration" in die.attributes and not has_code:
                        continue
                    f = out.get(name)
                    if f is None or (has_code and f.low_pc is None):
                        decl = named if "DW_AT_decl_file" in named.attributes else die
                        fi = decl.attributes.get("DW_AT_decl_file")
                        li = decl.attributes.get("DW_AT_decl_line")
                        params: list = []
                        local_vars: list = []
                        _vars(die if list(die.iter_children()) else named, params, local_vars)
                        low = die.attributes.get("DW_AT_low_pc")
                        f = DwarfFunction(
                            name=name,
                            file=_decl_file(lp, version, fi.value, comp_dir) if fi is not None else None,
                            line=li.value if li is not None else None,
                            params=params, locals=local_vars,
                            return_type=type_str(_ref(named, "DW_AT_type")),
                            low_pc=low.value if low is not None and isinstance(low.value, int) else None,
                        )
                        out[name] = f
                    if "DW_AT_inline" in die.attributes and not has_code:
                        abstract[die.offset] = f
            for off, f in abstract.items():
                if off not in concrete_origins and f.low_pc is None:
                    f.inlined_only = True
            return out
        except KtuiError:
            raise
        except (ELFError, Exception) as err:  # pyelftools raises many kinds on corrupt DWARF
            raise FileFormatError(f"{path} has corrupt DWARF debug info ({type(err).__name__}).") from None
