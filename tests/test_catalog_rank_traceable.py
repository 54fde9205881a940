"""The browser's ranked search puts what can be traced on this kernel first: a tracepoint above a
kprobe when kprobes cannot attach here, a traceable function above a blacklisted or notrace one."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ktui.catalog import Catalog, Entry
from ktui.widgets.symbol_browser import SymbolBrowser


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel catalog needs root (tracefs)")
def test_openat_ranks_the_syscall_tracepoints_first_on_this_kernel():
    cat = Catalog.load()
    rows, how = SymbolBrowser.find_rows(cat, "openat", "auto")
    names = [cat.entry(i).name for i in rows]
    assert how == "auto: fuzzy" and "tracepoint:syscalls:sys_enter_openat" in names
    if cat.kprobes_attach:
        pytest.skip("this kernel can attach kprobes: nothing is ranked down for the kind")
    kprobes = [i for i, n in enumerate(names) if n.startswith("kprobe:")]
    assert kprobes, "the catalog lists kprobes for reference even where they cannot attach"
    assert names.index("tracepoint:syscalls:sys_enter_openat") < 4, names[:8]
    assert names.index("tracepoint:syscalls:sys_enter_openat") < min(kprobes)
    # every row that can be traced here comes before every row that cannot
    bad = cat.untraceable_here(np.asarray(rows))
    assert not bad[:len(rows) - int(bad.sum())].any()


def test_a_traceable_function_ranks_above_a_better_match_that_cannot_be_probed():
    entries = [Entry("kprobe", "kprobe:vfs_open", "vfs_open", traceability="blacklisted"),
               Entry("kprobe", "kprobe:do_vfs_open_x", "do_vfs_open_x", traceability="traceable"),
               Entry("kprobe", "kprobe:vfs_openat_y", "vfs_openat_y", traceability="unknown")]
    cat = Catalog.from_entries(entries, origin="test")
    assert [e.name for e in cat.search("vfs_open", mode="fuzzy")] == [
        "kprobe:vfs_openat_y", "kprobe:do_vfs_open_x", "kprobe:vfs_open"]
