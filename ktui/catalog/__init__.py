"""The probe-point catalog: every traceable place in the kernel and in programs.

    from ktui.catalog import Catalog, Entry, Arg
    cat = Catalog.load()                       # kallsyms + BTF + tracepoints, cached per kernel
    cat.lookup("kprobe:kernel_clone")
    cat.search("tracepoint:sched:*")           # glob like `bpftrace -l`; mode="regex"|"fuzzy"
    Catalog.for_binary("/usr/bin/bash")        # uprobe points of one program or library

No Textual here: the browser and `ktui list` both sit on top of this.
"""

from ktui.catalog.core import KINDS, Catalog
from ktui.catalog.entry import Arg, Details, Entry
from ktui.catalog.traceability import TRACEABILITY

__all__ = ["Arg", "Catalog", "Details", "Entry", "KINDS", "TRACEABILITY"]
