"""Function symbols, load segments and the build id of an ELF file, read directly with ``struct``
from a memory map (no pyelftools: listing the functions of a program must start as fast as
``bpftrace -l``). Debug files are found where debuginfod and distributions put them:
``/usr/lib/debug/.build-id/xx/yyyy.debug``."""

from __future__ import annotations

import mmap
import os
import struct

from ktui.errors import FileFormatError

SHT_SYMTAB, SHT_NOTE, SHT_DYNSYM, SHT_NOBITS = 2, 7, 11, 8
STT_FUNC, STT_GNU_IFUNC = 2, 10
PT_LOAD = 1
DEBUG_ROOT = "/usr/lib/debug"


class ElfSymbols:
    """What a uprobe listing needs from one file."""

    def __init__(self, functions: dict[str, set[int]], tables: int, segments: list[tuple[int, int, int]],
                 build_id: str | None, has_debug_info: bool = False):
        self.has_debug_info = has_debug_info  # a .debug_info section with contents
        self.functions = functions  # name (without @version) -> its addresses
        self.tables = tables  # how many symbol tables the file has (0: stripped)
        self.segments = segments  # PT_LOAD (vaddr, memsz, offset)
        self.build_id = build_id


def _open_map(path: str) -> mmap.mmap:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FileFormatError(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path} is a directory, not a program or library.") from None
    except OSError as err:
        raise FileFormatError(f"cannot read {path}: {err.strerror}.") from None
    try:
        import stat

        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FileFormatError(f"{path} is a directory, not a program or library.")
        if not stat.S_ISREG(st.st_mode):
            raise FileFormatError(f"{path} is not a regular file.")
        if st.st_size < 16:
            raise FileFormatError(f"{path} is not an ELF file.")
        return mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def read_elf_symbols(path: str) -> ElfSymbols:
    """Defined FUNC and IFUNC symbols of .symtab and .dynsym; FileFormatError for anything that is
    not a readable ELF file."""
    m = _open_map(path)
    try:
        return _parse(m, path)
    except FileFormatError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError) as err:
        raise FileFormatError(f"{path} is a truncated or corrupt ELF file ({type(err).__name__}).") from None
    finally:
        m.close()


def _parse(m: mmap.mmap, path: str) -> ElfSymbols:
    if m[:4] != b"\x7fELF":
        raise FileFormatError(f"{path} is not an ELF file.")
    cls, data = m[4], m[5]
    if cls not in (1, 2) or data not in (1, 2):
        raise FileFormatError(f"{path} is a truncated or corrupt ELF file (bad class or byte order).")
    e = "<" if data == 1 else ">"
    is64 = cls == 2
    if is64:
        (phoff, shoff) = struct.unpack_from(e + "QQ", m, 0x20)
        (phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack_from(e + "HHHHH", m, 0x36)
        shdr = struct.Struct(e + "IIQQQQIIQQ")  # name type flags addr offset size link info align entsize
        phdr = struct.Struct(e + "IIQQQQQQ")  # type flags offset vaddr paddr filesz memsz align
        sym = struct.Struct(e + "IBBHQQ")  # name info other shndx value size
    else:
        (phoff, shoff) = struct.unpack_from(e + "II", m, 0x1C)
        (phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack_from(e + "HHHHH", m, 0x2A)
        shdr = struct.Struct(e + "IIIIIIIIII")
        phdr = struct.Struct(e + "IIIIIIII")
        sym = struct.Struct(e + "IIIBBH")  # name value size info other shndx
    size = len(m)
    segments = []
    if phoff and phentsize >= phdr.size:
        for i in range(min(phnum, 4096)):
            p = phdr.unpack_from(m, phoff + i * phentsize)
            if is64:
                ptype, offset, vaddr, memsz = p[0], p[2], p[3], p[6]
            else:
                ptype, offset, vaddr, memsz = p[0], p[1], p[2], p[5]
            if ptype == PT_LOAD:
                segments.append((vaddr, memsz, offset))
    sections = []
    names: list[int] = []
    if shoff and shentsize >= shdr.size:
        if shnum == 0:  # more than 0xff00 sections: the count is in section 0's size
            shnum = shdr.unpack_from(m, shoff)[5]
        for i in range(min(shnum, 1 << 20)):
            s = shdr.unpack_from(m, shoff + i * shentsize)
            sections.append((s[1], s[4], s[5], s[6]))  # type, offset, size, link
            names.append(s[0])
    functions: dict[str, set[int]] = {}
    tables = 0
    build_id = None
    for stype, offset, ssize, link in sections:
        if stype == SHT_NOTE and build_id is None and offset + ssize <= size:
            build_id = _build_id(m[offset:offset + ssize], e)
        if stype not in (SHT_SYMTAB, SHT_DYNSYM):
            continue
        tables += 1
        if not 0 <= link < len(sections) or offset + ssize > size:
            raise FileFormatError(f"{path} has a corrupt symbol table (it points outside the file).")
        _, str_off, str_size, _ = sections[link]
        if str_off + str_size > size:
            raise FileFormatError(f"{path} has a corrupt symbol table (its names point outside the file).")
        strtab = m[str_off:str_off + str_size]
        count = ssize // sym.size
        body = m[offset:offset + count * sym.size]
        for entry in sym.iter_unpack(body):
            if is64:
                name_off, info, _other, shndx, value = entry[0], entry[1], entry[2], entry[3], entry[4]
            else:
                name_off, value, info, shndx = entry[0], entry[1], entry[3], entry[5]
            if (info & 0xF) not in (STT_FUNC, STT_GNU_IFUNC) or shndx == 0 or not name_off:
                continue
            end = strtab.find(b"\0", name_off)
            name = strtab[name_off:end if end >= 0 else len(strtab)].decode("latin-1").split("@", 1)[0]
            if name:
                functions.setdefault(name, set()).add(value)
    has_debug_info = False
    if 0 < shstrndx < len(sections):
        _, str_off, str_size, _ = sections[shstrndx]
        shstr = m[str_off:str_off + str_size] if str_off + str_size <= size else b""
        for (stype, _o, ssize, _l), name_off in zip(sections, names):
            end = shstr.find(b"\0", name_off)
            if shstr[name_off:end] in (b".debug_info", b".zdebug_info") and stype != SHT_NOBITS and ssize:
                has_debug_info = True
    return ElfSymbols(functions, tables, segments, build_id, has_debug_info)


def _build_id(notes: bytes, e: str) -> str | None:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from(e + "III", notes, pos)
        name_start = pos + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        if notes[name_start:name_start + namesz].rstrip(b"\0") == b"GNU" and ntype == 3:
            return notes[desc_start:desc_start + descsz].hex() or None
        pos = desc_start + ((descsz + 3) & ~3)
    return None


PT_NOTE = 4


def file_identity(st: os.stat_result) -> str:
    """What changes whenever the file at a path is another file or is rewritten: device and inode
    (another file), size, modification and change times (rewritten in place; the change time
    cannot be set back by anyone)."""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def binary_identity(path: str) -> str | None:
    """The identity a per-binary index is keyed by: the GNU build id (from the PT_NOTE segments,
    read without touching the symbol tables) together with :func:`file_identity` of the file and of
    its build-id debug file (whose symbols the listing adds). A build id alone is not enough: a
    stripped copy keeps its build id and loses its symbol table. None when the file cannot be read
    as ELF (the full listing then says why)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        import stat

        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size < 64:
            return None
        head = os.pread(fd, 64, 0)
        if head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
            return None
        e = "<" if head[5] == 1 else ">"
        if head[4] == 2:
            (phoff,) = struct.unpack_from(e + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(e + "HH", head, 0x36)
            phdr = struct.Struct(e + "IIQQQQQQ")  # type flags offset vaddr paddr filesz memsz align
        else:
            (phoff,) = struct.unpack_from(e + "I", head, 0x1C)
            phentsize, phnum = struct.unpack_from(e + "HH", head, 0x2A)
            phdr = struct.Struct(e + "IIIIIIII")  # type offset vaddr paddr filesz memsz flags align
        build_id = None
        if phoff and phentsize >= phdr.size and phnum <= 4096:
            table = os.pread(fd, phentsize * phnum, phoff)
            for i in range(len(table) // phentsize):
                p = phdr.unpack_from(table, i * phentsize)
                ptype, offset, filesz = (p[0], p[2], p[5]) if head[4] == 2 else (p[0], p[1], p[4])
                if ptype == PT_NOTE and 0 < filesz <= 1 << 16:
                    build_id = _build_id(os.pread(fd, filesz, offset), e)
                    if build_id:
                        break
    except (OSError, struct.error):
        return None
    finally:
        os.close(fd)
    debug = debug_file_for(build_id)
    try:
        debug_id = file_identity(os.stat(debug)) if debug else "-"
    except OSError:
        debug_id = "-"
    return f"build-id {build_id or '-'} file {file_identity(st)} debug {debug_id}"


def debug_file_for(build_id: str | None, root: str = DEBUG_ROOT) -> str | None:
    """The separate debug file of a build id (``.build-id/ab/cdef....debug``), when installed."""
    if not build_id or len(build_id) < 4:
        return None
    path = os.path.join(root, ".build-id", build_id[:2], build_id[2:] + ".debug")
    return path if os.path.isfile(path) else None


def vaddr_to_offset(segments: list[tuple[int, int, int]], vaddr: int) -> int | None:
    for p_vaddr, p_memsz, p_offset in segments:
        if p_vaddr <= vaddr < p_vaddr + p_memsz:
            return vaddr - p_vaddr + p_offset
    return None


def uprobe_symbols(path: str) -> tuple[ElfSymbols, str | None]:
    """The functions of ``path`` together with those of its build-id debug file (a stripped
    library lists all of its functions once its -dbg package is installed), and that file."""
    own = read_elf_symbols(path)
    debug = debug_file_for(own.build_id)
    if debug is None:
        return own, None
    try:
        extra = read_elf_symbols(debug)
    except FileFormatError:
        return own, None
    for name, addrs in extra.functions.items():
        own.functions.setdefault(name, set()).update(addrs)
    own.tables += extra.tables
    return own, debug
