"""Uprobe points of programs and libraries: ELF FUNC symbols (.symtab, .dynsym) with file offsets,
and DWARF parameters and source lines when the file (or ``debuginfo``) has them."""

from __future__ import annotations

import contextlib
import os

from ktui.catalog.entry import Arg, Details, Entry
from ktui.catalog.traceability import clone_base
from ktui.errors import FileFormatError, KtuiError


@contextlib.contextmanager
def open_elf(path: str):
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileFormatError(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path} is a directory, not a program or library.") from None
    except OSError as err:
        raise FileFormatError(f"cannot read {path}: {err.strerror}.") from None
    with f:
        magic = f.read(4)
        if magic != b"\x7fELF":
            raise FileFormatError(f"{path} is not an ELF file.")
        f.seek(0)
        try:
            elf = ELFFile(f)
        except (ELFError, Exception) as err:
            raise FileFormatError(f"{path} is a truncated or corrupt ELF file ({type(err).__name__}).") from None
        yield elf


def _vaddr_to_offset(segments: list[tuple[int, int, int]], vaddr: int) -> int | None:
    for p_vaddr, p_memsz, p_offset in segments:
        if p_vaddr <= vaddr < p_vaddr + p_memsz:
            return vaddr - p_vaddr + p_offset
    return None


def elf_functions(path: str, *, debuginfo: str | None = None) -> list[Entry]:
    """``uprobe:/abs/path:symbol`` entries for every defined FUNC symbol.

    ``Entry.address`` is the symbol value (virtual address), ``Entry.offset`` the file offset a
    uprobe attaches at. A file with no defined function symbols is a FileFormatError.
    """
    from elftools.elf.sections import SymbolTableSection

    abspath = os.path.abspath(path)
    with open_elf(path) as elf:
        try:
            segments = [(s["p_vaddr"], s["p_memsz"], s["p_offset"]) for s in elf.iter_segments()
                        if s["p_type"] == "PT_LOAD"]
            syms: dict[str, set[int]] = {}
            tables = 0
            for sec in elf.iter_sections():
                if not isinstance(sec, SymbolTableSection):
                    continue
                tables += 1
                for sym in sec.iter_symbols():
                    if sym["st_info"]["type"] not in ("STT_FUNC", "STT_GNU_IFUNC"):
                        continue
                    if sym["st_shndx"] == "SHN_UNDEF" or not sym.name:
                        continue
                    name = sym.name.split("@", 1)[0]
                    syms.setdefault(name, set()).add(sym["st_value"])
        except KtuiError:
            raise
        except Exception as err:
            raise FileFormatError(f"{path} has a corrupt symbol table ({type(err).__name__}).") from None
    if not syms:
        why = "it has no symbol table (stripped)" if not tables else "its symbol tables define no functions (stripped)"
        raise FileFormatError(f"{path} has no function symbols to probe: {why}.")
    dwarf = {}
    dwarf_note = None
    try:
        from ktui.catalog.dwarf import dwarf_functions

        dwarf = dwarf_functions(debuginfo or path)
    except FileFormatError as err:
        if debuginfo:
            raise
        dwarf_note = str(err)
    clones: dict[str, list[str]] = {}
    for name in syms:
        base = clone_base(name) if "." in name else None
        if base:
            clones.setdefault(base, []).append(name)
    out = []
    for name, addrs in syms.items():
        addrs_l = sorted(addrs)
        addr = addrs_l[0]
        off = _vaddr_to_offset(segments, addr)
        if len(addrs_l) > 1:
            trace, why = "duplicate", (f"the name {name} appears at {len(addrs_l)} addresses "
                                       f"({', '.join(hex(a) for a in addrs_l)}); attach by offset")
        elif name.endswith(".cold") or ".cold." in name:
            trace, why = "notrace", f"a .cold fragment of {clone_base(name)}, not a function entry"
        else:
            trace, why = "traceable", "a defined ELF function symbol: a uprobe attaches at its file offset"
        dw = dwarf.get(name)
        if dw is not None:
            det = Details([Arg(n, t) for n, t in dw.params], dw.return_type, dw.source,
                          [Arg(n, t) for n, t in dw.locals])
        else:
            det = Details([], note=dwarf_note or "no DWARF entry for this symbol")
        out.append(Entry("uprobe", f"uprobe:{abspath}:{name}", name, address=addr, traceability=trace,
                         traceability_reason=why, addresses=addrs_l, clones=sorted(clones.get(name, [])),
                         clone_of=clone_base(name) if "." in name else None, offset=off, details=det))
    return out


def binary_catalog(path: str, *, debuginfo: str | None = None):
    from ktui.catalog.core import Catalog

    return Catalog.from_entries(elf_functions(path, debuginfo=debuginfo), origin=os.path.abspath(path))
