"""Names are checked before anything compiles: a kernel function, tracepoint, program or
symbol that does not exist is refused in one sentence naming the closest ones that do.

    check_exists(probe, catalog)   # raises UsageError; returns quietly when all is there

``ktui compile``, ``ktui record``, the editor and session loading call it, so all four
say the same thing about the same name.
"""

from __future__ import annotations

import functools
import os
import shutil
from typing import Any
from collections.abc import Callable, Sequence

from ktui.errors import KtuiError, UsageError
from ktui.probes.model import Probe, ProbeKind

SUGGESTIONS = 3
DEBUG_HINT = ("install its debug symbols (Debian: the package's -dbgsym or -dbg package, which puts them under "
              "/usr/lib/debug/.build-id/, the layout debuginfod uses too), or probe an address "
              "(uprobe:BINARY:0xOFFSET)")


def binary_catalog_cached(path: str) -> Any:
    """``Catalog.for_binary``, kept for the few programs a session probes (reading a
    library's symbols and DWARF takes long enough to matter when done twice)."""
    st = os.stat(path)
    return _binary_catalog(os.path.abspath(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _binary_catalog(path: str, _mtime: int, _size: int) -> Any:
    from ktui.catalog import Catalog

    return Catalog.for_binary(path)


def did_you_mean(name: str, candidates: Sequence[str], limit: int = SUGGESTIONS) -> str:
    """"; did you mean a, b or c?" with the closest candidates (rapidfuzz), or ""."""
    if not candidates:
        return ""
    from rapidfuzz import fuzz, process

    found = process.extract(name, candidates, scorer=fuzz.ratio, limit=limit, score_cutoff=70)
    close = [c for c, _score, _i in found]
    if not close:
        return ""
    said = close[0] if len(close) == 1 else ", ".join(close[:-1]) + " or " + close[-1]
    return f"; did you mean {said}?"


def _names_of_kind(catalog: Any, prefix: str) -> list[str]:
    names = getattr(catalog, "names", None)
    if names is None:
        return []
    return [n[len(prefix):] for n in names if n.startswith(prefix)]


def check_exists(probe: Probe, catalog: Any | None,
                 binary_catalog: Callable[[str], Any] | None = None) -> None:
    """Raise a UsageError when ``probe`` names something this machine does not have.

    Without a catalog only programs are checked (the kernel's names are unknown then)."""
    kind = probe.kind
    if kind.is_user:
        _check_user(probe, binary_catalog)
        return
    if catalog is None:
        return
    if kind is ProbeKind.TRACEPOINT:
        if catalog.lookup(f"tracepoint:{probe.target}") is None:
            hint = did_you_mean(probe.target, _names_of_kind(catalog, "tracepoint:"))
            raise UsageError(f"there is no tracepoint {probe.target} in this kernel{hint or '.'}")
    elif kind is ProbeKind.RAW_TRACEPOINT:
        if catalog.lookup(f"rawtracepoint:{probe.target}") is None:
            hint = did_you_mean(probe.target, _names_of_kind(catalog, "rawtracepoint:"))
            raise UsageError(f"there is no raw tracepoint {probe.target} in this kernel{hint or '.'}")
    elif kind.is_kernel_function and probe.target and probe.address is None:
        if catalog.lookup(f"kprobe:{probe.target}") is None:
            hint = did_you_mean(probe.target, _names_of_kind(catalog, "kprobe:"))
            raise UsageError(f"there is no kernel function {probe.target} in this kernel{hint or '.'}")


def resolve_binary(binary: str) -> str | None:
    """A program path as given, or found on PATH like a shell would; None when there is none."""
    if os.sep in binary:
        return binary if os.path.isfile(binary) else None
    return shutil.which(binary)


def _check_user(probe: Probe, binary_catalog: Callable[[str], Any] | None) -> None:
    binary = probe.binary or ""
    if not binary:
        raise UsageError("a uprobe needs the program or library it probes.")
    path = resolve_binary(binary)
    if path is None:
        raise UsageError(f"there is no program {binary}: give its path, like uprobe:/usr/bin/bash:readline.")
    if not probe.target:
        return  # an offset: nothing to look up
    if binary_catalog is None:
        binary_catalog = binary_catalog_cached
    try:
        cat = binary_catalog(path)
    except KtuiError as err:
        if "stripped" in str(err):
            raise UsageError(f"{binary} is stripped (it has no function symbols), so {probe.target} cannot be "
                             f"found in it: {DEBUG_HINT}.") from None
        raise UsageError(f"the symbols of {binary} cannot be read: {err}") from None
    if cat.lookup(f"uprobe:{os.path.abspath(path)}:{probe.target}") is not None:
        return
    symbols = [n.rsplit(":", 1)[1] for n in getattr(cat, "names", [])]
    hint = did_you_mean(probe.target, symbols)
    if _is_stripped(path):
        raise UsageError(f"{binary} has no symbol {probe.target}{hint.rstrip('?') + ')' if hint else ''}: it is "
                         f"stripped (only its {len(symbols)} exported functions are left); {DEBUG_HINT}.".replace(
                             "; did you mean", " (did you mean"))
    raise UsageError(f"{binary} has no function {probe.target}{hint or '.'}")


def _is_stripped(path: str) -> bool:
    """No .symtab: only the dynamic symbols (exports) are left."""
    try:
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as f:
            return ELFFile(f).get_section_by_name(".symtab") is None
    except Exception:  # noqa: BLE001 - unreadable: not known to be stripped
        return False


def check_all(probes: Sequence[Probe], catalog: Any | None) -> None:
    """check_exists for each probe; the first refusal names its probe."""
    for probe in probes:
        try:
            check_exists(probe, catalog)
        except UsageError as err:
            raise UsageError(f"{probe.spec}: {err.message}") from None
