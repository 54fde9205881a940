"""USDT (SystemTap SDT) markers of programs and libraries, from their ``.note.stapsdt`` notes.

Each note (owner ``stapsdt``, type 3) holds the marker's address, the link-time address of
``.stapsdt.base`` (to correct for prelinking), the address of its semaphore (0: none),
then three NUL-terminated strings: provider, name, and the argument specs as GNU ``as``
operands, one per argument, e.g. ``8@%rbp -4@%eax -4@112(%rsp) 8@-8(%rbp,%rax,8)``.

The argument text comes from a file, so it is never pasted anywhere: every spec is
matched against the strict grammar below and decoded into numbers and register names
from a fixed table (``UsdtArg``); a spec that does not match is kept only as a reason
why that argument cannot be fetched.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ktui.catalog.entry import Arg, Details, Entry
from ktui.errors import FileFormatError, KtuiError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from elftools.elf.elffile import ELFFile  # no type information: Any to mypy, named for the reader

    from ktui.probes.model import Fetch

NT_STAPSDT = 3
MAX_NOTES = 100_000  # a hostile file cannot make the catalog unbounded

# x86_64 register names as GNU as writes them -> struct pt_regs members (the names
# kprobe_events uses), with the width of the named part of the register.
_REGS: dict[str, tuple[str, int]] = {}
for _full, _r in (("rax", "ax"), ("rbx", "bx"), ("rcx", "cx"), ("rdx", "dx"), ("rsi", "si"), ("rdi", "di"),
                  ("rbp", "bp"), ("rsp", "sp")):
    _REGS[_full] = (_r, 64)
    _REGS["e" + _r] = (_r, 32)
    _REGS[_r] = (_r, 16)
for _low, _r in (("al", "ax"), ("bl", "bx"), ("cl", "cx"), ("dl", "dx"), ("sil", "si"), ("dil", "di"),
                 ("bpl", "bp"), ("spl", "sp")):
    _REGS[_low] = (_r, 8)
for _n in range(8, 16):
    _REGS[f"r{_n}"] = (f"r{_n}", 64)
    _REGS[f"r{_n}d"] = (f"r{_n}", 32)
    _REGS[f"r{_n}w"] = (f"r{_n}", 16)
    _REGS[f"r{_n}b"] = (f"r{_n}", 8)
_REGS["rip"] = ("ip", 64)

_NUM = r"-?(?:0[xX][0-9a-fA-F]+|[0-9]+)"
_SPEC = re.compile(r"(?P<sign>-?)(?P<size>1|2|4|8)@(?P<op>\S+)\Z")
_OP_REG = re.compile(r"%(?P<reg>[a-z0-9]{2,4})\Z")
_OP_IMM = re.compile(rf"\$(?P<imm>{_NUM})\Z")
_OP_MEM = re.compile(rf"(?P<off>{_NUM})?\(%(?P<base>[a-z0-9]{{2,4}})"
                     rf"(?:,%(?P<index>[a-z0-9]{{2,4}})(?:,(?P<scale>[1248]))?)?\)\Z")


@dataclass(frozen=True)
class UsdtArg:
    """One decoded argument: ``size`` bytes, signed or not, from a register, an immediate,
    or memory at ``offset(base[, index, scale])``; ``error`` says why it cannot be decoded."""
    size: int
    signed: bool
    kind: str  # "reg", "imm", "mem", or "unsupported"
    reg: str = ""  # pt_regs member: the register (reg) or the base (mem)
    index: str = ""  # mem: index register, if any
    scale: int = 1
    offset: int = 0  # mem: displacement; imm: the value
    spec: str = ""  # the text as the note has it (shown, never compiled)
    error: str = ""

    @property
    def ctype(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.size * 8}_t"

    def describe(self) -> str:
        if self.kind == "reg":
            return f"%{self.reg}"
        if self.kind == "imm":
            return f"${self.offset}"
        if self.kind == "mem":
            inner = f"%{self.reg}" + (f",%{self.index},{self.scale}" if self.index else "")
            return f"{self.offset}({inner})"
        return self.error


def _int(text: str) -> int:
    neg = text.startswith("-")
    body = text[1:] if neg else text
    value = int(body, 16) if body[:2].lower() == "0x" else int(body, 10)
    return -value if neg else value


def parse_arg_spec(spec: str) -> UsdtArg:
    """One argument spec (``-4@%eax``, ``8@16(%rbp)``, ``4@$5``) -> UsdtArg; never raises."""
    m = _SPEC.match(spec)
    if not m:
        return UsdtArg(8, False, "unsupported", spec=spec, error=f"argument spec {spec!r} is not SIZE@OPERAND")
    size, signed, op = int(m.group("size")), m.group("sign") == "-", m.group("op")
    if (r := _OP_REG.match(op)) and r.group("reg") in _REGS and r.group("reg") != "rip":
        return UsdtArg(size, signed, "reg", reg=_REGS[r.group("reg")][0], spec=spec)
    if i := _OP_IMM.match(op):
        value = _int(i.group("imm"))
        if not -(1 << 63) <= value < (1 << 64):
            return UsdtArg(size, signed, "unsupported", spec=spec, error=f"immediate in {spec!r} is out of range")
        return UsdtArg(size, signed, "imm", offset=value, spec=spec)
    if mm := _OP_MEM.match(op):
        base, index = mm.group("base"), mm.group("index")
        if base not in _REGS or (index is not None and index not in _REGS):
            return UsdtArg(size, signed, "unsupported", spec=spec, error=f"unknown register in {spec!r}")
        if base == "rip":
            return UsdtArg(size, signed, "unsupported", spec=spec,
                           error=f"{spec!r} is relative to the instruction pointer; ktui does not fetch those")
        off = _int(mm.group("off")) if mm.group("off") else 0
        if not -(1 << 31) <= off < (1 << 31):
            return UsdtArg(size, signed, "unsupported", spec=spec, error=f"displacement in {spec!r} is out of range")
        return UsdtArg(size, signed, "mem", reg=_REGS[base][0], index=_REGS[index][0] if index else "",
                       scale=int(mm.group("scale") or 1), offset=off, spec=spec)
    return UsdtArg(size, signed, "unsupported", spec=spec,
                   error=f"argument spec {spec!r} has an operand form ktui does not decode")


@dataclass(frozen=True)
class UsdtMarker:
    """One marker of one file. ``pc``/``base``/``semaphore`` as the note has them;
    ``offset`` and ``semaphore_offset`` are file offsets (what a uprobe attaches at and
    what the kernel's uprobe reference counter increments); 0 semaphore = none."""
    path: str
    provider: str
    name: str
    pc: int
    base: int
    semaphore: int
    offset: int
    semaphore_offset: int
    args: tuple[UsdtArg, ...]
    arg_text: str

    @property
    def probe_name(self) -> str:
        return f"usdt:{self.path}:{self.provider}:{self.name}"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _vaddr_to_offset(elf: ELFFile, vaddr: int) -> int | None:
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_memsz"]:
            return int(vaddr - seg["p_vaddr"] + seg["p_offset"])
    return None


def _section_offset(elf: ELFFile, vaddr: int) -> int | None:
    """File offset of an address inside an allocated section (semaphores live in .probes)."""
    for sec in elf.iter_sections():
        start, size = sec["sh_addr"], sec["sh_size"]
        if start and start <= vaddr < start + size and sec["sh_type"] != "SHT_NOBITS":
            return int(vaddr - start + sec["sh_offset"])
    return _vaddr_to_offset(elf, vaddr)


def _notes(data: bytes, little: bool, word: int) -> Iterator[tuple[int, bytes, bytes]]:
    """(type, owner, desc) of every note in a note section's bytes."""
    end = "<" if little else ">"
    pos = 0
    count = 0
    while pos + 12 <= len(data) and count < MAX_NOTES:
        namesz, descsz, ntype = struct.unpack_from(end + "III", data, pos)
        pos += 12
        name = data[pos:pos + namesz].rstrip(b"\0")
        pos += (namesz + 3) & ~3
        desc = data[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        if len(desc) < descsz:
            break
        count += 1
        yield ntype, name, desc


def read_markers(path: str) -> list[UsdtMarker]:
    """Every USDT marker of one ELF file, in note order; [] when it has none.

    A file that is not ELF, or a corrupt one, is a FileFormatError (one sentence)."""
    from ktui.catalog.elf_file import open_elf

    abspath = os.path.abspath(path)
    out: list[UsdtMarker] = []
    with open_elf(path) as elf:
        try:
            little = elf.little_endian
            word = 8 if elf.elfclass == 64 else 4
            fmt = ("<" if little else ">") + ("QQQ" if word == 8 else "III")
            sec = elf.get_section_by_name(".note.stapsdt")
            if sec is None:
                return []
            base_sec = elf.get_section_by_name(".stapsdt.base")
            actual_base = base_sec["sh_addr"] if base_sec is not None else 0
            for ntype, owner, desc in _notes(sec.data(), little, word):
                if ntype != NT_STAPSDT or owner != b"stapsdt" or len(desc) < 3 * word:
                    continue
                pc, base, sem = struct.unpack_from(fmt, desc, 0)
                strings = desc[3 * word:].split(b"\0")
                if len(strings) < 3:
                    continue
                provider, name, args = (s.decode("ascii", "replace") for s in strings[:3])
                if not _NAME.match(provider) or not _NAME.match(name):
                    continue  # not a name ktui can show or attach: skip it rather than carry it around
                if base and actual_base:  # prelinked: move pc (and the semaphore) by the same delta
                    pc += actual_base - base
                    if sem:
                        sem += actual_base - base
                offset = _vaddr_to_offset(elf, pc)
                if offset is None:
                    continue
                sem_off = (_section_offset(elf, sem) or 0) if sem else 0
                decoded = tuple(parse_arg_spec(a) for a in args.split()) if args.strip() else ()
                out.append(UsdtMarker(abspath, provider, name, pc, base, sem, offset, sem_off, decoded, args))
        except KtuiError:
            raise
        except Exception as err:
            raise FileFormatError(f"{path} has corrupt USDT notes ({type(err).__name__}).") from None
    return out


# Argument names and types of well-known providers' markers, from their own
# definitions (CPython's Include/pydtrace.d): the note itself only says size and
# where; it cannot say that an 8-byte value is a `const char *`.
KNOWN_ARGS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("python", "function__entry"): (("filename", "const char *"), ("funcname", "const char *"), ("lineno", "int")),
    ("python", "function__return"): (("filename", "const char *"), ("funcname", "const char *"), ("lineno", "int")),
    ("python", "line"): (("filename", "const char *"), ("funcname", "const char *"), ("lineno", "int")),
    ("python", "gc__start"): (("generation", "int"),),
    ("python", "gc__done"): (("collected", "long"),),
    ("python", "import__find__load__start"): (("modulename", "const char *"),),
    ("python", "import__find__load__done"): (("modulename", "const char *"), ("found", "int")),
    ("python", "audit"): (("event", "const char *"), ("arg", "void *")),
}


def arg_names(marker: UsdtMarker) -> list[tuple[str, str]]:
    """(name, ctype) per argument: arg0..argN (bpftrace's names), with the provider's
    own name and C type where ktui knows them."""
    known = KNOWN_ARGS.get((marker.provider, marker.name), ())
    out = []
    for i, a in enumerate(marker.args):
        if i < len(known) and ((known[i][1].endswith("*") and a.size == 8) or not known[i][1].endswith("*")):
            out.append(known[i])
        else:
            out.append((f"arg{i}", a.ctype))
    return out


def marker_entry(marker: UsdtMarker) -> Entry:
    named = arg_names(marker)
    args = [Arg(f"arg{i}", ctype if not name.startswith("arg") else a.ctype, size=a.size, signed=a.signed)
            if name.startswith("arg") else Arg(name, ctype, size=a.size, signed=a.signed)
            for i, (a, (name, ctype)) in enumerate(zip(marker.args, named))]
    where = f"file offset 0x{marker.offset:x}"
    sem = (f"; semaphore at 0x{marker.semaphore:x} (file offset 0x{marker.semaphore_offset:x}), "
           "counted by the kernel while the probe is attached") if marker.semaphore else "; no semaphore"
    undecodable = [f"arg{i}: {a.error}" for i, a in enumerate(marker.args) if a.kind == "unsupported"]
    note = f"arguments: {marker.arg_text or 'none'} ({where}{sem})"
    if undecodable:
        note += "; " + "; ".join(undecodable)
    return Entry("usdt", marker.probe_name, f"{marker.provider}:{marker.name}", address=marker.pc,
                 traceability="traceable", traceability_reason=f"a USDT marker: a uprobe at {where}{sem}",
                 offset=marker.offset, details=Details(args, None, None, None, note))


def usdt_entries(paths: list[str]) -> list[Entry]:
    """Entries of every marker in these files. Files without markers add nothing."""
    out: list[Entry] = []
    seen: set[str] = set()
    for path in paths:
        for m in read_markers(path):
            if m.probe_name not in seen:
                seen.add(m.probe_name)
                out.append(marker_entry(m))
    return out


def process_files(pid: int) -> list[str]:
    """The ELF files a running process maps (its program and libraries), as /proc shows them."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise FileFormatError(f"there is no process {pid}.") from None
    except OSError as err:
        raise FileFormatError(f"cannot read the mappings of process {pid}: {err.strerror}.") from None
    paths: list[str] = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/") and not parts[5].endswith(" (deleted)"):
            if parts[5] not in paths:
                paths.append(parts[5])
    return paths


def process_entries(pid: int) -> list[Entry]:
    """Markers of every file a process maps; files that are not ELF (fonts, locales) are skipped."""
    out: list[Entry] = []
    seen: set[str] = set()
    for path in process_files(pid):
        try:
            markers = read_markers(path)
        except FileFormatError:
            continue
        for m in markers:
            if m.probe_name not in seen:
                seen.add(m.probe_name)
                out.append(marker_entry(m))
    return out


def find_marker(path: str, provider: str | None, name: str) -> UsdtMarker:
    """The one marker ``provider:name`` (or just ``name``) of ``path``; KtuiError saying which exist."""
    markers = read_markers(path)
    if not markers:
        raise FileFormatError(f"{path} has no USDT markers (no .note.stapsdt section).")
    hits = [m for m in markers if m.name == name and (provider is None or m.provider == provider)]
    if not hits:
        known = ", ".join(sorted({f"{m.provider}:{m.name}" for m in markers}))
        want = f"{provider}:{name}" if provider else name
        raise FileFormatError(f"{path} has no USDT marker {want} (its markers: {known}).")
    providers = sorted({m.provider for m in hits})
    if len(providers) > 1:
        raise FileFormatError(f"{path} has a marker {name} in providers {', '.join(providers)}; "
                              f"name one: usdt:{path}:PROVIDER:{name}.")
    return hits[0]


def arg_fetch(marker: UsdtMarker, i: int, column: str) -> Fetch:
    """Argument ``i`` (0-based) of the marker as a probe-model Fetch named ``column``: a
    register, user memory at base+offset, or an immediate, typed from the note's size and
    signedness (a known ``char *`` as a user string). Built from decoded numbers and
    register names only; KtuiError when the operand cannot be fetched."""
    from ktui.probes.model import Deref, Fetch, Imm, Reg, ValueType

    a = marker.args[i]
    ctype = arg_names(marker)[i][1]
    if a.kind == "unsupported":
        raise KtuiError(f"argument {i} of USDT marker {marker.provider}:{marker.name} ({a.spec}): {a.error}")
    if a.kind == "mem" and a.index:
        raise KtuiError(f"argument {i} of USDT marker {marker.provider}:{marker.name} is {a.spec}, memory at an "
                        "indexed address; ktui does not fetch those")
    if ctype.replace(" ", "") in ("constchar*", "char*") and a.size == 8:
        vtype = ValueType("ustring", 0)
    else:
        vtype = ValueType("s" if a.signed else "u", a.size * 8)
    expr: Reg | Imm | Deref
    if a.kind == "reg":
        expr = Reg(a.reg)
    elif a.kind == "imm":
        expr = Imm(a.offset)
    else:
        expr = Deref(a.offset, Reg(a.reg), user=True)
    return Fetch(column, expr, vtype)


def arg_index(marker: UsdtMarker, name: str) -> int | None:
    """The 0-based argument a name means here: ``argN`` (bpftrace's names) or the provider's own name."""
    m = re.fullmatch(r"arg([0-9]{1,2})", name)
    if m and int(m.group(1)) < len(marker.args):
        return int(m.group(1))
    for i, (n, _) in enumerate(arg_names(marker)):
        if n == name:
            return i
    return None
