"""Uprobe points of programs and libraries: ELF FUNC symbols (.symtab, .dynsym) with file offsets,
and DWARF parameters and source lines when the file (or ``debuginfo``) has them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ktui.catalog.entry import Arg, Details, Entry
from ktui.catalog.traceability import clone_base
from ktui.errors import FileFormatError

if TYPE_CHECKING:
    from ktui.catalog.dwarf import DwarfFunction, DwarfLookup
    from ktui.catalog.elf_names import ElfSymbols


def _vaddr_to_offset(segments: list[tuple[int, int, int]], vaddr: int) -> int | None:
    from ktui.catalog.elf_names import vaddr_to_offset

    return vaddr_to_offset(segments, vaddr)


def dwarf_source(path: str, debuginfo: str | None, syms: ElfSymbols, debug_file: str | None) -> tuple[str | None, str | None]:
    """(the file whose DWARF describes ``path``'s functions, or None with the reason)."""
    if debuginfo:
        return debuginfo, None
    if syms.has_debug_info:
        return path, None
    if debug_file is not None:
        from ktui.catalog.elf_names import read_elf_symbols

        try:
            if read_elf_symbols(debug_file).has_debug_info:
                return debug_file, None
        except FileFormatError:
            pass
    from ktui.catalog.dwarf import no_dwarf_message

    return None, no_dwarf_message(path)


class _LazyDwarf:
    """Details of a binary's functions, read from its DWARF the first time each is asked for."""

    def __init__(self, source: str | None, note: str | None):
        self.source, self.note = source, note
        self._lookup: DwarfLookup | None = None
        self._failed: str | None = None

    def lookup(self) -> DwarfLookup | None:
        if self._lookup is None and self._failed is None and self.source is not None:
            from ktui.catalog.dwarf import DwarfLookup

            try:
                self._lookup = DwarfLookup(self.source)
            except FileFormatError as err:
                self._failed = str(err)
        return self._lookup

    def __call__(self, entry: Entry) -> Details:
        lookup = self.lookup()
        if lookup is None:
            return Details([], note=self._failed or self.note or "no DWARF entry for this symbol")
        try:
            dw = lookup.function(entry.symbol, entry.address)
        except FileFormatError as err:
            return Details([], note=str(err))
        if dw is None:
            return Details([], note="no DWARF entry for this symbol")
        return details_of(dw)


def details_of(dw: DwarfFunction) -> Details:
    """Details (typed args: C spelling, byte size, signedness) of a DwarfFunction."""
    info = dw.param_info if len(dw.param_info) == len(dw.params) else [(None, None)] * len(dw.params)
    args = [Arg(n, t, size=sz, signed=sg) for (n, t), (sz, sg) in zip(dw.params, info)]
    return Details(args, dw.return_type, dw.source, [Arg(n, t) for n, t in dw.locals])


def elf_functions(path: str, *, debuginfo: str | None = None) -> list[Entry]:
    """``uprobe:/abs/path:symbol`` entries for every defined FUNC symbol, of the file and of its
    build-id debug file (``/usr/lib/debug/.build-id/xx/yyyy.debug``) when one is installed.

    ``Entry.address`` is the symbol value (virtual address), ``Entry.offset`` the file offset a
    uprobe attaches at. Arguments, types and source come from DWARF (the file's own, ``debuginfo``,
    or the build-id debug file), read lazily per function. A file with no defined function symbols
    is a FileFormatError.
    """
    from ktui.catalog.elf_names import uprobe_symbols

    abspath = os.path.abspath(path)
    syms, debug_file = uprobe_symbols(path)
    if not syms.functions:
        why = "it has no symbol table (stripped)" if not syms.tables else "its symbol tables define no functions (stripped)"
        raise FileFormatError(f"{path} has no function symbols to probe: {why}; install its debug file "
                              f"(Debian: the -dbg or -dbgsym package) or rebuild it without stripping.")
    source, note = dwarf_source(path, debuginfo, syms, debug_file)
    loader = _LazyDwarf(source, note)
    if debuginfo:
        loader.lookup()
        if loader._failed:
            raise FileFormatError(loader._failed)
    segments = syms.segments
    clones: dict[str, list[str]] = {}
    for name in syms.functions:
        base = clone_base(name) if "." in name else None
        if base:
            clones.setdefault(base, []).append(name)
    out = []
    for name, addrs in syms.functions.items():
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
        out.append(Entry("uprobe", f"uprobe:{abspath}:{name}", name, address=addr, traceability=trace,
                         traceability_reason=why, addresses=addrs_l, clones=sorted(clones.get(name, [])),
                         clone_of=clone_base(name) if "." in name else None, offset=off, loader=loader))
    return out


_LOOKUPS: dict[tuple[str, int, int], _LazyDwarf] = {}  # (path, inode, mtime)


def function_details(binary: str, symbol: str) -> Details:
    """Typed arguments (name, C type, byte size, signedness), return type and source of one function
    of a program or library, from its DWARF or its build-id debug file. Reads only the unit that
    holds the function. FileFormatError when the binary or the symbol does not exist; a Details with
    no args and a ``note`` saying why when there is no DWARF for it."""
    from ktui.catalog.elf_names import uprobe_symbols

    st = os.stat(binary) if os.path.exists(binary) else None
    syms, debug_file = uprobe_symbols(binary)
    addrs = syms.functions.get(symbol)
    if not addrs:
        raise FileFormatError(f"{binary} has no function named {symbol}.")
    key = (os.path.abspath(binary), st.st_ino if st else 0, st.st_mtime_ns if st else 0)
    loader = _LOOKUPS.get(key)
    if loader is None:
        if len(_LOOKUPS) > 16:
            for old in _LOOKUPS.values():
                if old._lookup is not None:
                    old._lookup.close()
            _LOOKUPS.clear()
        loader = _LOOKUPS[key] = _LazyDwarf(*dwarf_source(binary, None, syms, debug_file))
    probe = Entry("uprobe", f"uprobe:{key[0]}:{symbol}", symbol, address=min(addrs))
    return loader(probe)
