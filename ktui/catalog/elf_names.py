"""Function symbols, load segments and the build id of an ELF file, read directly with ``struct``
from a memory map (no pyelftools: listing the functions of a program must start as fast as
``bpftrace -l``). Debug files are found where debuginfod and distributions put them:
``/usr/lib/debug/.build-id/xx/yyyy.debug``."""

from __future__ import annotations

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
                 build_id: str | None, has_debug_info: bool = False, sizes: dict[int, int] | None = None):
        self.has_debug_info = has_debug_info  # a .debug_info section with contents
        self.functions = functions  # name (without @version) -> its addresses
        self.sizes = sizes if sizes is not None else {}  # address -> the largest st_size of a function there
        self.tables = tables  # how many symbol tables the file has (0: stripped)
        self.segments = segments  # PT_LOAD (vaddr, memsz, offset)
        self.build_id = build_id


def _open(path: str) -> tuple[int, int]:
    """(fd, size) of a regular file; FileFormatError in one sentence for anything else."""
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
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


class _Reader:
    """Byte ranges of an untrusted file, each checked against the file's size before it is read and
    after (a file that shrinks while it is read is a short read here, not the SIGBUS a memory map
    would give). Every failure is one FileFormatError sentence naming what pointed where."""

    def __init__(self, fd: int, size: int, path: str):
        self.fd, self.size, self.path = fd, size, path

    def corrupt(self, why: str) -> FileFormatError:
        return FileFormatError(f"{self.path} is a truncated or corrupt ELF file ({why}).")

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise self.corrupt(f"{what} points outside the file")
        try:
            data = os.pread(self.fd, length, offset)
        except OSError as err:
            raise FileFormatError(f"cannot read {self.path}: {err.strerror}.") from None
        if len(data) != length:
            raise self.corrupt(f"the file ended inside {what}")
        return data


def read_elf_symbols(path: str) -> ElfSymbols:
    """Defined FUNC and IFUNC symbols of .symtab and .dynsym; FileFormatError for anything that is
    not a readable ELF file. The file is untrusted: every offset and size in it is checked before
    it is used (see :class:`_Reader`)."""
    fd, size = _open(path)
    try:
        return _parse(_Reader(fd, size, path))
    except FileFormatError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError) as err:  # a check this reader lacks
        raise FileFormatError(f"{path} is a truncated or corrupt ELF file ({type(err).__name__}).") from None
    finally:
        os.close(fd)


SHN_XINDEX = 0xFFFF
MAX_SECTIONS = 1 << 20  # the section count can be a 64-bit field; no real file comes near this
MAX_SEGMENTS = 1 << 16


def _parse(f: _Reader) -> ElfSymbols:
    path = f.path
    head = f.read(0, min(f.size, 64), "the ELF header")
    if head[:4] != b"\x7fELF":
        raise FileFormatError(f"{path} is not an ELF file.")
    cls, data = head[4], head[5]
    if cls not in (1, 2) or data not in (1, 2):
        raise f.corrupt("bad class or byte order")
    e = "<" if data == 1 else ">"
    is64 = cls == 2
    if len(head) < (64 if is64 else 52):
        raise f.corrupt("the file ended inside the ELF header")
    if is64:
        (phoff, shoff) = struct.unpack_from(e + "QQ", head, 0x20)
        (phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack_from(e + "HHHHH", head, 0x36)
        shdr = struct.Struct(e + "IIQQQQIIQQ")  # name type flags addr offset size link info align entsize
        phdr = struct.Struct(e + "IIQQQQQQ")  # type flags offset vaddr paddr filesz memsz align
        sym = struct.Struct(e + "IBxHQQ")  # name info (other) shndx value size
    else:
        (phoff, shoff) = struct.unpack_from(e + "II", head, 0x1C)
        (phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack_from(e + "HHHHH", head, 0x2A)
        shdr = struct.Struct(e + "IIIIIIIIII")
        phdr = struct.Struct(e + "IIIIIIII")  # type offset vaddr paddr filesz memsz flags align
        sym = struct.Struct(e + "IIIBxH")  # name value size info (other) shndx
    segments = []
    if phoff and phnum:
        if phentsize < phdr.size:
            raise f.corrupt(f"program header entries of {phentsize} bytes")
        table = f.read(phoff, phnum * phentsize, "the program header table")
        for i in range(phnum):
            p = phdr.unpack_from(table, i * phentsize)
            if is64:
                ptype, offset, vaddr, memsz = p[0], p[2], p[3], p[6]
            else:
                ptype, offset, vaddr, memsz = p[0], p[1], p[2], p[5]
            if ptype == PT_LOAD:
                segments.append((vaddr, memsz, offset))
    sections: list[tuple[int, int, int, int, int, int]] = []  # name, type, offset, size, link, entsize
    if shoff:
        if shentsize < shdr.size:
            raise f.corrupt(f"section header entries of {shentsize} bytes")
        first = shdr.unpack_from(f.read(shoff, shdr.size, "the section header table"))
        if shnum == 0:  # 0xff00 sections or more: the count is in section 0's size
            shnum = first[5]
        if shstrndx == SHN_XINDEX:  # and the names' section index in its link
            shstrndx = first[6]
        if shnum > MAX_SECTIONS:
            raise f.corrupt(f"{shnum} sections")
        table = f.read(shoff, shnum * shentsize, "the section header table")
        for i in range(shnum):
            s = shdr.unpack_from(table, i * shentsize)
            sections.append((s[0], s[1], s[4], s[5], s[6], s[9]))
    functions: dict[str, set[int]] = {}
    sizes: dict[int, int] = {}
    tables = 0
    build_id = None
    for i, (_name, stype, offset, ssize, link, entsize) in enumerate(sections):
        if stype == SHT_NOTE and build_id is None:
            build_id = _build_id(f.read(offset, ssize, f"note section {i}"), e)
        if stype not in (SHT_SYMTAB, SHT_DYNSYM):
            continue
        tables += 1
        if entsize not in (0, sym.size):
            raise f.corrupt(f"symbol table {i} has entries of {entsize} bytes, not {sym.size}")
        if not 0 < link < len(sections):
            raise f.corrupt(f"symbol table {i} names string table {link}, which does not exist")
        _, _, str_off, str_size, _, _ = sections[link]
        strtab = f.read(str_off, str_size, f"the string table of symbol table {i}")
        body = f.read(offset, ssize - ssize % sym.size, f"symbol table {i}")
        for name_off, a, b, c, d in sym.iter_unpack(body):
            if is64:
                info, shndx, value, size = a, b, c, d
            else:
                value, size, info, shndx = a, b, c, d
            if (info & 0xF) not in (STT_FUNC, STT_GNU_IFUNC) or shndx == 0 or not name_off:
                continue
            end = strtab.find(b"\0", name_off)
            name = strtab[name_off:end if end >= 0 else len(strtab)].decode("latin-1").split("@", 1)[0]
            if name:
                functions.setdefault(name, set()).add(value)
                if size > sizes.get(value, 0):
                    sizes[value] = size
    has_debug_info = False
    if 0 < shstrndx < len(sections):
        _, _, str_off, str_size, _, _ = sections[shstrndx]
        shstr = f.read(str_off, str_size, "the section name table")
        for name_off, stype, _o, ssize, _l, _e in sections:
            end = shstr.find(b"\0", name_off)
            if end >= 0 and shstr[name_off:end] in (b".debug_info", b".zdebug_info") and stype != SHT_NOBITS and ssize:
                has_debug_info = True
    return ElfSymbols(functions, tables, segments, build_id, has_debug_info, sizes)


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
    for addr, size in extra.sizes.items():
        if size > own.sizes.get(addr, 0):
            own.sizes[addr] = size
    own.tables += extra.tables
    return own, debug
