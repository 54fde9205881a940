"""The probe-point catalog: every traceable place in the kernel and in programs.

    from ktui.catalog import Catalog, Entry, Arg
    cat = Catalog.load()                       # kallsyms + BTF + tracepoints, indexed per kernel
    cat.lookup("kprobe:kernel_clone")
    cat.search("tracepoint:sched:*")           # glob like `bpftrace -l`; mode="regex"|"fuzzy"
    Catalog.for_binary("/usr/bin/bash")        # uprobe points of one program or library

No Textual here: the browser and `ktui list` both sit on top of this. The names below are
imported on first use, so ``ktui list`` can read its index without importing numpy.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs `ktui list` more than it spends
if TYPE_CHECKING:
    from typing import Any

    from ktui.catalog.core import KINDS, Catalog
    from ktui.catalog.entry import Arg, Details, Entry
    from ktui.catalog.traceability import TRACEABILITY

__all__ = ["Arg", "Catalog", "Details", "Entry", "KINDS", "TRACEABILITY"]

_WHERE = {"Catalog": "core", "KINDS": "core", "Arg": "entry", "Details": "entry", "Entry": "entry",
          "TRACEABILITY": "traceability"}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ktui.catalog' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"ktui.catalog.{module}"), name)
    globals()[name] = value
    return value
