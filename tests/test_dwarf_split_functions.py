"""A function gcc splits in parts (hot and cold: ``-freorder-blocks-and-partition``, the default in
-O2 builds of libraries such as libc) has DW_AT_ranges and no DW_AT_low_pc in its DWARF. A symbol
that names it by another name (an alias: libc's ``fclose`` is ``_IO_new_fclose``) is found only by
its address, so the catalog must know where each of the function's parts starts: before this, 181
of libc's functions listed "no DWARF entry" (24 after)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ktui.cli import main

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

SPLIT_C = r"""
#include <stdio.h>
__attribute__((cold, noinline)) void complain(int x, const char *s) { fprintf(stderr, "%d %s\n", x, s); }
__attribute__((noinline)) int work(int x, const char *s) {
    int r = x * 2;
    if (x < 0) { complain(x, s); r += s[1]; fprintf(stderr, "again %d\n", r); }
    return r + s[0];
}
extern int work_alias(int x, const char *s) __attribute__((alias("work")));
int main(int argc, char **argv) { return work_alias(argc, argv[0]) & 1; }
"""


def _die_of_work(prog: Path) -> str:
    """readelf's own reading of work's DIE: the oracle that the function really is split."""
    out = subprocess.run(["readelf", "--debug-dump=info", str(prog)], capture_output=True, text=True).stdout
    start = out.index(": work\n")
    return out[start:start + 600]


@pytest.mark.parametrize("version", [4, 5])
def test_an_alias_of_a_split_function_has_its_arguments(tmp_path, capsys, version):
    (tmp_path / "split.c").write_text(SPLIT_C)
    prog = tmp_path / "split"
    subprocess.run(["gcc", "-O2", f"-gdwarf-{version}", "-freorder-blocks-and-partition", "-o", str(prog),
                    str(tmp_path / "split.c")], check=True)
    die = _die_of_work(prog)
    if "DW_AT_ranges" not in die.split("DW_TAG_formal_parameter")[0]:
        pytest.skip("this gcc did not split work in parts")
    assert "DW_AT_low_pc" not in die.split("DW_TAG_formal_parameter")[0]
    assert main(["list", "-v", f"uprobe:{prog}:work_alias"]) == 0
    out = capsys.readouterr().out
    assert "int x" in out and "const char * s" in out and "no DWARF entry" not in out, out


LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


def test_libc_fclose_has_its_arguments_from_the_debug_file(capsys):
    """Debian's libc6-dbg: fclose is an alias of _IO_new_fclose, which gcc split in parts."""
    import os

    from ktui.catalog.elf_names import read_elf_symbols

    build_id = read_elf_symbols(LIBC).build_id if os.path.exists(LIBC) else None
    if not build_id or not os.path.exists(f"/usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug"):
        pytest.skip("libc's debug file (libc6-dbg) is not installed")
    assert main(["list", "-v", f"uprobe:{LIBC}:fclose"]) == 0
    out = capsys.readouterr().out
    assert "FILE * fp" in out and "no DWARF entry" not in out, out
