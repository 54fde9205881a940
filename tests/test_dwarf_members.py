"""The DWARF provider of struct members (ktui.catalog.dwarf_members): what ``p->in.tag`` means
in a user program. Offsets, sizes and pointer hops are checked against ``offsetof``/``sizeof``
printed by the same program compiled by gcc (the oracle is the compiler, never numbers written
here), for each DWARF version gcc emits (2 with DW_OP_plus_uconst locations and DW_AT_bit_offset
bitfields, 4, 5)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ktui.catalog import dwarf_members
from ktui.catalog.dwarf_members import member_types
from ktui.errors import FileFormatError, KtuiError, UnknownMember
from ktui.probes.resolve import Named, member_value_type, resolve_member_of, user_member_types

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

TYPES_C = r"""
#include <stddef.h>
#include <stdio.h>
struct opaque;
struct inner { short a; char tag[12]; long z; };
typedef struct { int q; unsigned char r; } anon_t;
typedef struct inner inner_t;
enum colour { RED = -1, GREEN = 1 };
struct point {
    int x;
    long y;
    const char *name;
    struct inner in;
    inner_t *pin;
    anon_t an;
    union { int u1; long u2; };
    struct { unsigned short s1; signed char s2; };
    unsigned flags : 3;
    unsigned more : 5;
    double d;
    char *arr[2];
    struct opaque *op;
    enum colour c;
    unsigned char bytes[4];
    struct point *next;
};
__attribute__((noinline, used)) void touch(struct point *p) { __asm__ volatile("" ::: "memory"); }
#define AT(path) printf("%s %zu %zu\n", #path, offsetof(struct point, path), sizeof(((struct point *)0)->path))
int main(void) {
    struct point p = {0};
    touch(&p);
    AT(x); AT(y); AT(name); AT(in); AT(in.a); AT(in.tag); AT(in.z); AT(pin); AT(an); AT(an.q); AT(an.r);
    AT(u1); AT(u2); AT(s1); AT(s2); AT(d); AT(arr); AT(op); AT(c); AT(bytes); AT(next);
    printf("inner.tag %zu %zu\n", offsetof(struct inner, tag), sizeof(((struct inner *)0)->tag));
    printf("inner.z %zu %zu\n", offsetof(struct inner, z), sizeof(((struct inner *)0)->z));
    return 0;
}
"""


def _build(tmp_path, flags: list[str], name: str = "types", source: str = TYPES_C) -> tuple[str, dict[str, tuple[int, int]]]:
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    out = tmp_path / name
    subprocess.run(["gcc", "-O0", *flags, "-o", str(out), str(src)], check=True)
    oracle = {}
    for line in subprocess.run([str(out)], capture_output=True, text=True, check=True).stdout.splitlines():
        path, off, size = line.split()
        oracle[path] = (int(off), int(size))
    return str(out), oracle


DWARF_FLAGS = [["-g"], ["-gdwarf-4"], ["-gdwarf-2", "-gstrict-dwarf"]]


@pytest.mark.parametrize("flags", DWARF_FLAGS, ids=lambda f: " ".join(f))
def test_member_offsets_and_sizes_equal_offsetof_and_sizeof(tmp_path, flags):
    binary, oracle = _build(tmp_path, flags)
    types = member_types(binary, "touch")
    assert types.memory == "user"
    for path, (off, size) in oracle.items():
        if path.startswith("inner.") or path == "d":  # d: a double is refused when read (below)
            continue
        fp = types.resolve_path("struct point *", path.split("."))
        assert (fp.offset, fp.size, fp.hops) == (off, size, []), path
    # through a pointer (a typedef of it): one hop at pin's offset, then inner's own offset
    fp = types.resolve_path("point", ["pin", "tag"])
    assert fp.hops == [oracle["pin"][0]] and (fp.offset, fp.size) == oracle["inner.tag"]
    fp = types.resolve_path("point", ["next", "pin", "z"])
    assert fp.hops == [oracle["next"][0], oracle["pin"][0]] and (fp.offset, fp.size) == oracle["inner.z"]
    # members one level deep, anonymous struct and union members in place (as C names them)
    listed = {m.name: (m.offset, m.size) for m in types.members(types.find("point"))}
    for name in ("x", "y", "name", "in", "pin", "an", "u1", "u2", "s1", "s2", "d", "arr", "op", "c", "bytes", "next"):
        assert listed[name] == oracle[name], name
    assert "flags" in listed and "more" in listed  # listed (the picker skips them), refused when read


@pytest.mark.parametrize("flags", DWARF_FLAGS, ids=lambda f: " ".join(f))
def test_types_signs_strings_and_what_is_not_a_scalar(tmp_path, flags):
    binary, _ = _build(tmp_path, flags)
    types = member_types(binary, "touch")

    def at(*path: str):
        return types.resolve_path("point", list(path))

    assert at("x").signed and at("y").signed and at("s2").signed and at("c").signed
    assert not at("s1").signed and not at("an", "r").signed
    name = at("name")
    assert name.is_pointer and name.ctype == "const char *"
    assert member_value_type(name, "user").kind == "ustring"  # a program's char pointer: read from user memory
    assert member_value_type(at("in", "tag"), "user").kind == "ustring"
    assert at("in", "tag").is_char_array and at("bytes").is_char_array
    assert at("arr").is_array and not at("arr").is_char_array and member_value_type(at("arr"), "user") is None
    assert at("in").is_struct and member_value_type(at("in"), "user") is None
    assert member_value_type(at("pin"), "user").kind == "x"
    assert member_value_type(at("y"), "user").bits == 64 and member_value_type(at("x"), "user").bits == 32


@pytest.mark.parametrize("path, sentence", [
    (["flags"], "flags is a 3-bit bitfield of struct point; bitfields of a program's structs are not read"),
    (["d"], "d is double, a floating-point number"),
    (["x", "q"], "x is int, not a struct: it has no member 'q'"),
    (["op", "any"], "struct opaque is only declared in the DWARF of"),
])
def test_what_cannot_be_read_is_one_sentence(tmp_path, path, sentence):
    binary, _ = _build(tmp_path, ["-g"])
    with pytest.raises(KtuiError, match=sentence.replace("(", r"\(")):
        member_types(binary, "touch").resolve_path("point", path)


def test_an_unknown_member_names_the_struct_and_its_members(tmp_path):
    binary, _ = _build(tmp_path, ["-g"])
    with pytest.raises(UnknownMember) as err:
        member_types(binary, "touch").resolve_path("point", ["in", "tga"])
    assert err.value.message == "struct inner has no member named 'tga'."
    assert err.value.members == ["a", "tag", "z"]
    # through the one resolution: the nearest names, in one sentence
    types, why = user_member_types(binary, "touch")
    assert types is not None and why == ""
    p = Named("p", "struct point *", "arg", "user")
    with pytest.raises(KtuiError) as e:
        resolve_member_of(p, ("nmae",), types, program=binary)
    assert str(e.value) == "p->nmae: struct point has no member named 'nmae'; did you mean name?"
    ref = resolve_member_of(p, ("in", "tag"), types, program=binary)
    assert ref.value_type().kind == "ustring" and ref.column == "p_in_tag"


SPLIT_MAIN = r"""
#include <stddef.h>
#include <stdio.h>
struct hidden;
struct hidden *make(void);
__attribute__((noinline, used)) void use(struct hidden *h) { __asm__ volatile("" ::: "memory"); }
void report(void);
int main(void) { use(make()); report(); return 0; }
"""
SPLIT_LIB = r"""
#include <stddef.h>
#include <stdio.h>
struct hidden { long pad; int secret; };
static struct hidden one = { 1, 42 };
struct hidden *make(void) { return &one; }
void report(void) { printf("secret %zu %zu\n", offsetof(struct hidden, secret), sizeof(one.secret)); }
"""


def test_a_struct_only_declared_in_the_functions_unit_is_found_in_another(tmp_path):
    (tmp_path / "main.c").write_text(SPLIT_MAIN)
    (tmp_path / "lib.c").write_text(SPLIT_LIB)
    out = tmp_path / "split"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(out), str(tmp_path / "main.c"), str(tmp_path / "lib.c")], check=True)
    _, off, size = subprocess.run([str(out)], capture_output=True, text=True, check=True).stdout.split()
    fp = member_types(str(out), "use").resolve_path("struct hidden *", ["secret"])
    assert (fp.offset, fp.size, fp.hops) == (int(off), int(size), [])


def test_a_binary_without_dwarf_is_one_sentence(tmp_path):
    binary, _ = _build(tmp_path, [], name="nodebug")
    with pytest.raises(FileFormatError, match=r"nodebug has no DWARF debug info \(build with -g"):
        member_types(binary, "touch")
    types, why = user_member_types(binary, "touch")
    assert types is None and "has no DWARF debug info" in why
    with pytest.raises(FileFormatError, match="has no function named nosuch"):
        member_types(binary, "nosuch")


def test_files_are_cached_by_identity_and_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(dwarf_members, "_FILES", type(dwarf_members._FILES)())
    binary, _ = _build(tmp_path, ["-g"])
    first = member_types(binary, "touch")
    assert member_types(binary, "touch") is first  # the same unit, parsed once
    # rebuilt in place (another mtime, another build): read again, the old file closed
    os.utime(binary, ns=(1, 1))
    again = member_types(binary, "touch")
    assert again is not first and first.file._ctx is None
    assert len(dwarf_members._FILES) == 1
    opened = []
    for i in range(dwarf_members.CACHED_FILES + 2):
        d = tmp_path / f"b{i}"
        d.mkdir()
        b, _ = _build(d, ["-g"])
        opened.append(member_types(b, "touch").file)
    assert len(dwarf_members._FILES) == dwarf_members.CACHED_FILES
    assert opened[0]._ctx is None and opened[-1]._ctx is not None  # the oldest closed


def test_damaged_dwarf_is_one_sentence(tmp_path, capsys):
    """The DIEs of struct point overwritten with 0xff: reading its members is one sentence, in the
    provider and through `ktui compile`, never a pyelftools exception."""
    from elftools.elf.elffile import ELFFile

    from ktui.cli import main

    binary, _ = _build(tmp_path, ["-g"])
    with open(binary, "rb") as f:
        elf = ELFFile(f)
        start = elf.get_section_by_name(".debug_info")["sh_offset"]
        dwarf = elf.get_dwarf_info()
        point = next(d for cu in dwarf.iter_CUs() for d in cu.iter_DIEs()
                     if d.tag == "DW_TAG_structure_type" and d.attributes.get("DW_AT_name")
                     and d.attributes["DW_AT_name"].value == b"point")
        at = start + point.offset
    with open(binary, "r+b") as f:
        f.seek(at)
        f.write(b"\xff" * 64)
    types, why = user_member_types(binary, "touch")
    assert types is not None, why  # the unit's header and the function are intact
    with pytest.raises(FileFormatError, match=f"the DWARF debug info of {binary} cannot be read"):
        types.resolve_path("struct point *", ["x"])
    assert main(["compile", "--emit", "none", "--filter", "p->x > 0", f"uprobe:{binary}:touch"]) != 0
    err = capsys.readouterr().err
    assert f"p->x: arguments and their members by name need the program's DWARF debug info, and the DWARF debug " \
        f"info of {binary} gives no arguments of touch" in err and "Traceback" not in err
