"""Uprobe catalogs from ELF symbols and DWARF, on a small C program the tests compile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ktui.catalog import Catalog
from ktui.catalog.dwarf import dwarf_functions
from ktui.catalog.elf_symbols import elf_functions
from ktui.errors import FileFormatError

SRC = Path(__file__).parent / "fixtures" / "catalog" / "probe_me.c"
pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build the test program")


def _line_of(text: str) -> int:
    for i, line in enumerate(SRC.read_text().splitlines(), 1):
        if line.startswith(text):
            return i
    raise AssertionError(text)


@pytest.fixture(scope="module")
def prog(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prog") / "probe_me"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(out), str(SRC)], check=True)
    return out


def test_symbols_with_offsets(prog):
    entries = {e.symbol: e for e in elf_functions(str(prog))}
    assert {"main", "add_points", "helper_static"} <= set(entries)
    e = entries["add_points"]
    assert e.kind == "uprobe" and e.name == f"uprobe:{prog}:add_points"
    assert e.address and e.offset is not None
    # the file offset holds the function's code: compare with nm's address mapping via readelf
    assert e.offset <= prog.stat().st_size


def test_dwarf_source_and_params(prog):
    funcs = dwarf_functions(str(prog))
    f = funcs["add_points"]
    assert f.file.endswith("probe_me.c")
    assert f.line == _line_of("long add_points(")
    assert f.params == [("a", "const struct point *"), ("b", "struct point *"), ("scale", "long unsigned int")]
    assert ("total", "long int") in f.locals and ("tag", "char[4]") in f.locals
    assert f.return_type == "long int"
    assert funcs["helper_static"].params == [("value", "int")]
    assert funcs["main"].params == [("argc", "int"), ("argv", "char **")]


def test_binary_catalog(prog):
    cat = Catalog.for_binary(str(prog))
    e = cat.lookup(f"uprobe:{prog}:add_points")
    assert e.source.endswith(f"probe_me.c:{_line_of('long add_points(')}")
    assert [a.name for a in e.args] == ["a", "b", "scale"]
    assert [x.symbol for x in cat.search(f"uprobe:{prog}:add*")] == ["add_points"]
    assert cat.search("addpts", mode="fuzzy")[0].symbol == "add_points"


def test_stripped_binary_is_a_clean_error(prog, tmp_path):
    stripped = tmp_path / "stripped"
    shutil.copy(prog, stripped)
    subprocess.run(["strip", "--strip-all", str(stripped)], check=True)
    with pytest.raises(FileFormatError, match="no function symbols"):
        elf_functions(str(stripped))
    with pytest.raises(FileFormatError, match="no DWARF"):
        dwarf_functions(str(stripped))


def test_garbage_and_truncated_elf(prog, tmp_path):
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"this is not a program\n" * 10)
    with pytest.raises(FileFormatError, match="not an ELF"):
        elf_functions(str(garbage))
    data = prog.read_bytes()
    for cut in (4, 20, 64, 200, len(data) // 3, len(data) - 100):
        t = tmp_path / f"trunc{cut}"
        t.write_bytes(data[:cut])
        try:
            elf_functions(str(t))
        except FileFormatError:
            pass
    bad = bytearray(data)
    bad[0x28:0x30] = b"\xff" * 8  # e_shoff far past the end
    b = tmp_path / "badshoff"
    b.write_bytes(bytes(bad))
    with pytest.raises(FileFormatError):
        elf_functions(str(b))


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        elf_functions(str(tmp_path / "nope"))
    with pytest.raises(FileFormatError, match="directory"):
        elf_functions(str(tmp_path))


def test_system_library_with_or_without_its_debug_file():
    """libc's own file has only .dynsym; Debian's libc6-dbg puts the rest under /usr/lib/debug/.build-id/."""
    from ktui.catalog.elf_names import debug_file_for, read_elf_symbols

    libc = next((p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6")
                 if Path(p).exists()), None)
    if libc is None:
        pytest.skip("no libc.so.6 at the Debian path")
    cat = Catalog.for_binary(libc)
    e = cat.lookup(f"uprobe:{libc}:malloc")
    assert e is not None and e.offset
    own = read_elf_symbols(libc)
    debug = debug_file_for(own.build_id)
    if debug is None:
        assert e.args == [] and "no DWARF" in e.args_note
        assert len(cat) == len(own.functions)
        return
    # the debug file adds its .symtab (static functions) and its DWARF (found by address: malloc is
    # an alias of __libc_malloc)
    assert len(cat) > len(own.functions) + 1000
    assert [(a.name, a.ctype, a.size, a.signed) for a in e.args] == [("bytes", "size_t", 8, False)]
    assert e.return_type == "void *" and e.source and "malloc.c" in e.source
    d = Catalog.uprobe_details(libc, "open")
    assert [a.name for a in d.args][:2] == ["file", "oflag"] and d.args[1].signed is True
    with pytest.raises(FileFormatError, match="no function named"):
        Catalog.uprobe_details(libc, "no_such_function_anywhere")


def test_uprobe_details_of_a_program_built_with_g(prog):
    d = Catalog.uprobe_details(str(prog), "add_points")
    assert [(a.name, a.ctype, a.size, a.signed) for a in d.args] == [
        ("a", "const struct point *", 8, False), ("b", "struct point *", 8, False),
        ("scale", "long unsigned int", 8, False)]
    assert d.return_type == "long int"
    assert Catalog.uprobe_details(str(prog), "helper_static").args[0].signed is True


KSRC = Path(__file__).parent / "fixtures" / "catalog" / "fake_kernel.c"


@pytest.mark.skipif(not Path("/sys/kernel/btf/vmlinux").exists(), reason="needs kernel BTF")
def test_kernel_catalog_with_debuginfo(tmp_path, monkeypatch):
    """--debuginfo adds source lines and locals to kprobes, and DWARF-only inlined functions."""
    monkeypatch.setenv("KTUI_CACHE_DIR", str(tmp_path / "cache"))
    dbg = tmp_path / "fake_vmlinux"
    subprocess.run(["gcc", "-g", "-O2", "-o", str(dbg), str(KSRC)], check=True)
    cat = Catalog.load(debuginfo=str(dbg))
    e = cat.lookup("kprobe:kernel_clone")
    assert e.source.endswith(f"fake_kernel.c:{_line_of_in(KSRC, '__attribute__((noinline)) int kernel_clone')}")
    assert ("sig", "int") in [(a.name, a.ctype) for a in e.locals]
    assert e.args[0].ctype == "struct kernel_clone_args *"  # BTF still gives the prototype
    inl = cat.lookup("kprobe:ktui_only_inlined_helper")
    assert inl.traceability == "inlined" and [a.name for a in inl.args] == ["v"]
    # entries built before the merge still describe themselves
    assert cat.lookup("tracepoint:sched:sched_switch").args[0].name == "prev_comm"
    assert cat.lookup("kprobe:vfs_read").args[0].ctype == "struct file *"


def _line_of_in(path: Path, text: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith(text):
            return i
    raise AssertionError(text)
