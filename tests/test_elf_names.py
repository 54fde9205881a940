"""The hand-written ELF symbol reader of the `ktui list 'uprobe:...'` cold path (catalog/elf_names.py):
exactly the function symbols pyelftools and readelf find, on real programs and libraries, and one
sentence - never a traceback, a hang or a crash - for every truncated or corrupt file."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from ktui.catalog.elf_names import _parse, _Reader, debug_file_for, read_elf_symbols, uprobe_symbols
from ktui.errors import FileFormatError

ROOT = Path(__file__).resolve().parents[1]
LIBC = next((p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6")
             if os.path.exists(p)), None)
HAVE_GCC = shutil.which("gcc") is not None
SOURCE = ("static int hidden_local(int x) { return x - 1; }\n"
          "__attribute__((weak)) int weak_one(int x) { return x * 3; }\n"
          "int visible(int x) { return hidden_local(x) + weak_one(x); }\n"
          "int main(int c, char **v) { (void)v; return visible(c); }\n")


def pyelftools_functions(path: str) -> dict[str, set[int]]:
    """Defined FUNC/IFUNC symbols with a name, of .symtab and .dynsym, read by pyelftools."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    out: dict[str, set[int]] = {}
    with open(path, "rb") as fh:
        for sec in ELFFile(fh).iter_sections():
            if not isinstance(sec, SymbolTableSection) or sec["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM"):
                continue
            for s in sec.iter_symbols():
                if (s["st_info"]["type"] not in ("STT_FUNC", "STT_GNU_IFUNC", "STT_LOOS")
                        or s["st_shndx"] == "SHN_UNDEF" or not s["st_name"]):
                    continue
                name = s.name.split("@", 1)[0]
                if name:
                    out.setdefault(name, set()).add(s["st_value"])
    return out


def pyelftools_facts(path: str) -> tuple[str | None, list[tuple[int, int, int]], int]:
    """(GNU build id, PT_LOAD (vaddr, memsz, offset), how many symbol tables) by pyelftools."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        build_id = None
        for sec in elf.iter_sections():
            if sec["sh_type"] == "SHT_NOTE" and build_id is None:
                for note in sec.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        build_id = note["n_desc"]
                        break
        loads = [(s["p_vaddr"], s["p_memsz"], s["p_offset"]) for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        tables = sum(sec["sh_type"] in ("SHT_SYMTAB", "SHT_DYNSYM") for sec in elf.iter_sections())
    return build_id, loads, tables


def readelf_functions(path: str) -> dict[str, set[int]]:
    """The same, from binutils' readelf (C, independent of both Python readers)."""
    out: dict[str, set[int]] = {}
    text = subprocess.run(["readelf", "-W", "--syms", "--dyn-syms", path], capture_output=True, text=True,
                          check=True).stdout
    seen_tables: set[str] = set()
    table = None
    for line in text.splitlines():
        if line.startswith("Symbol table '"):
            table = line.split("'")[1]
            # readelf prints .dynsym twice when asked for both --syms and --dyn-syms
            table = None if table in seen_tables else table
            if table:
                seen_tables.add(table)
            continue
        parts = line.split()
        if table is None or len(parts) < 8 or not parts[0].endswith(":"):
            continue
        value, typ, ndx, name = parts[1], parts[3], parts[6], parts[7]
        if typ not in ("FUNC", "IFUNC") or ndx == "UND":
            continue
        name = name.split("@", 1)[0]
        if name:
            out.setdefault(name, set()).add(int(value, 16))
    return out


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, str]:
    """Real files: bash, libc and its debug file, and (with gcc) an unstripped program and a 32-bit object."""
    out = {"bash": os.path.realpath("/bin/bash")}
    if LIBC:
        out["libc"] = LIBC
        debug = debug_file_for(read_elf_symbols(LIBC).build_id)
        if debug:
            out["libc-debug"] = debug
    if HAVE_GCC:
        d = tmp_path_factory.mktemp("elf")
        prog = d / "unstripped"
        subprocess.run(["gcc", "-O0", "-g", "-x", "c", "-o", str(prog), "-"], input=SOURCE, text=True, check=True)
        out["unstripped"] = str(prog)
        obj32 = d / "object32.o"
        r = subprocess.run(["gcc", "-m32", "-c", "-x", "c", "-o", str(obj32), "-"], input=SOURCE, text=True,
                           capture_output=True)
        if r.returncode == 0:
            out["object32"] = str(obj32)
    return out


@pytest.mark.parametrize("which", ["bash", "libc", "libc-debug", "unstripped", "object32"])
def test_the_same_functions_as_pyelftools_and_readelf(programs, which):
    path = programs.get(which)
    if path is None:
        pytest.skip(f"no {which} here (libc6-dbg, gcc or gcc -m32 missing)")
    got = read_elf_symbols(path)
    assert got.functions == pyelftools_functions(path)
    assert got.functions == readelf_functions(path)
    build_id, loads, tables = pyelftools_facts(path)
    assert (got.build_id, got.segments, got.tables) == (build_id, loads, tables)
    assert len(got.functions) > (1000 if which in ("bash", "libc", "libc-debug") else 2)
    if which == "unstripped":
        assert {"hidden_local", "weak_one", "visible", "main"} <= set(got.functions)
        assert got.has_debug_info
    if which == "object32":
        assert {"hidden_local", "weak_one", "visible", "main"} <= set(got.functions)


def test_a_library_lists_its_debug_files_functions_too(programs):
    if "libc-debug" not in programs:
        pytest.skip("libc6-dbg is not installed")
    syms, debug = uprobe_symbols(programs["libc"])
    assert debug == programs["libc-debug"]
    want = pyelftools_functions(programs["libc"])
    for name, addrs in pyelftools_functions(debug).items():
        want.setdefault(name, set()).update(addrs)
    assert syms.functions == want


# ---- untrusted files ---------------------------------------------------------------------------------

def _one_sentence(err: FileFormatError, path: Path) -> None:
    text = str(err)
    assert "\n" not in text and text.endswith(".") and str(path) in text, text


def _elf64_fields(data: bytes) -> dict[str, int]:
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
    return dict(phoff=phoff, shoff=shoff, phentsize=phentsize, phnum=phnum, shentsize=shentsize, shnum=shnum,
                shstrndx=shstrndx)


def _section(data: bytes, i: int) -> tuple[int, ...]:
    f = _elf64_fields(data)
    return struct.unpack_from("<IIQQQQIIQQ", data, f["shoff"] + i * f["shentsize"])


def _symtab_index(data: bytes) -> int:
    f = _elf64_fields(data)
    return next(i for i in range(f["shnum"]) if _section(data, i)[1] in (2, 11))  # SYMTAB or DYNSYM


def _set_section_field(data: bytearray, i: int, field: int, value: int) -> None:
    """Field ``field`` (0 name .. 9 entsize) of section header ``i`` of a 64-bit little-endian ELF."""
    f = _elf64_fields(bytes(data))
    offsets = [0, 4, 8, 16, 24, 32, 40, 44, 48, 56]
    fmt = "<I" if field in (0, 1, 6, 7) else "<Q"
    struct.pack_into(fmt, data, f["shoff"] + i * f["shentsize"] + offsets[field], value)


CORRUPTIONS = {
    # what is changed, and what the sentence says
    "section table past the end": (lambda d: struct.pack_into("<Q", d, 0x28, 1 << 40), "outside the file"),
    "program table past the end": (lambda d: struct.pack_into("<Q", d, 0x20, 1 << 40), "outside the file"),
    "short section entries": (lambda d: struct.pack_into("<H", d, 0x3A, 8), "section header entries of 8 bytes"),
    "short program entries": (lambda d: struct.pack_into("<H", d, 0x36, 8), "program header entries of 8 bytes"),
    "many sections": (lambda d: struct.pack_into("<H", d, 0x3C, 0xFEFF), "outside the file"),
    "section count in section 0": (lambda d: (struct.pack_into("<H", d, 0x3C, 0),
                                              _set_section_field(d, 0, 5, 1 << 62)), "sections"),
    "symbols past the end": (lambda d: _set_section_field(d, _symtab_index(d), 4, len(d) - 16), "symbol table"),
    "huge symbol table": (lambda d: _set_section_field(d, _symtab_index(d), 5, 1 << 60), "symbol table"),
    "string table that does not exist": (lambda d: _set_section_field(d, _symtab_index(d), 6, 60000),
                                         "does not exist"),
    "string table past the end": (lambda d: _set_section_field(d, _section(d, _symtab_index(d))[6], 5, 1 << 40),
                                  "string table"),
    "odd symbol size": (lambda d: _set_section_field(d, _symtab_index(d), 9, 7), "entries of 7 bytes"),
    "bad class": (lambda d: d.__setitem__(4, 9), "bad class or byte order"),
}


@pytest.mark.parametrize("what", sorted(CORRUPTIONS))
def test_a_corrupt_field_is_one_sentence(tmp_path, what):
    data = bytearray(Path("/bin/bash").read_bytes())
    change, says = CORRUPTIONS[what]
    change(data)
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=says) as err:
        read_elf_symbols(str(bad))
    _one_sentence(err.value, bad)


def test_every_truncation_is_one_sentence(tmp_path):
    """The section headers are at the end of the file: any cut loses them, and says so."""
    data = Path("/bin/bash").read_bytes()
    rng = random.Random(17)
    cuts = sorted({0, 3, 4, 15, 16, 17, 52, 63, 64, 65, 200, *(rng.randrange(len(data)) for _ in range(60)),
                   len(data) - 1})
    for cut in cuts:
        t = tmp_path / "cut"
        t.write_bytes(data[:cut])
        with pytest.raises(FileFormatError) as err:
            read_elf_symbols(str(t))
        _one_sentence(err.value, t)


def test_a_file_that_shrinks_while_it_is_read(tmp_path):
    """The size measured at open and the bytes read later disagree: a sentence (a memory map would
    have been a SIGBUS)."""
    t = tmp_path / "shrinks"
    data = Path("/bin/bash").read_bytes()
    t.write_bytes(data[:len(data) // 2])
    fd = os.open(t, os.O_RDONLY)
    try:
        with pytest.raises(FileFormatError, match="the file ended inside") as err:
            _parse(_Reader(fd, len(data), str(t)))
    finally:
        os.close(fd)
    _one_sentence(err.value, t)


def test_random_damage_never_escapes_as_another_error(tmp_path):
    """Bytes of the headers, the section table and the symbol table overwritten at random: the
    reader returns symbols or raises FileFormatError, nothing else."""
    data = Path("/bin/bash").read_bytes()
    f = _elf64_fields(data)
    sym = _section(data, _symtab_index(data))
    regions = [(0, 64), (f["phoff"], f["phoff"] + f["phnum"] * f["phentsize"]),
               (f["shoff"], f["shoff"] + f["shnum"] * f["shentsize"]), (sym[4], sym[4] + 4096)]
    rng = random.Random(1717)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(300):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            lo, hi = rng.choice(regions)
            bad[rng.randrange(lo, hi)] = rng.randrange(256)
        t = tmp_path / "damaged"
        t.write_bytes(bytes(bad))
        try:
            read_elf_symbols(str(t))
            outcomes["read"] += 1
        except FileFormatError as err:
            _one_sentence(err, t)
            outcomes["refused"] += 1
    assert outcomes["read"] and outcomes["refused"]  # both kinds of damage were met


@pytest.mark.parametrize("what", ["section table past the end", "string table that does not exist"])
def test_ktui_list_of_a_corrupt_program_is_one_sentence(tmp_path, what):
    data = bytearray(Path("/bin/bash").read_bytes())
    CORRUPTIONS[what][0](data)
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(data))
    launcher = Path(sys.executable).with_name("ktui")
    for cmd in ([sys.executable, "-m", "ktui"], [str(launcher)]):
        r = subprocess.run([*cmd, "list", f"uprobe:{bad}:*"], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, KTUI_CACHE_DIR=str(tmp_path / "cache")))
        assert r.returncode != 0 and r.stdout == ""
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("ktui: ") and "corrupt ELF" in r.stderr, r.stderr
