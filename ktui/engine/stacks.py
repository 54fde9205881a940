"""Symbolizing stack frames: kernel addresses through /proc/kallsyms, user addresses
through the process's /proc/PID/maps and the ELF symbols of the mapped files.

"[unknown]" only where nothing can be known: a user frame in a file without a
symbol for it still says which file and offset it is.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

UNKNOWN = "[unknown]"


class KernelSymbols:
    """Sorted text symbols of the running kernel; lookup by bisection."""

    def __init__(self, path: str = "/proc/kallsyms"):
        addrs: list[int] = []
        names: list[str] = []
        try:
            with open(path, "rb") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) < 3 or parts[1] not in (b"t", b"T", b"w", b"W"):
                        continue
                    name = parts[2].decode(errors="replace")
                    if len(parts) > 3:
                        name += " " + parts[3].decode(errors="replace")  # "[module]"
                    addrs.append(int(parts[0], 16))
                    names.append(name)
        except OSError:
            pass
        order = np.argsort(np.array(addrs, dtype=np.uint64), kind="stable")
        self.addrs = np.array(addrs, dtype=np.uint64)[order]
        self.names = [names[i] for i in order]
        self.hidden = len(self.addrs) > 0 and int(self.addrs[-1]) == 0  # kptr_restrict

    def lookup(self, addr: int) -> str:
        if self.hidden or not len(self.addrs):
            return UNKNOWN
        i = int(np.searchsorted(self.addrs, np.uint64(addr), side="right")) - 1
        return self.names[i] if i >= 0 else UNKNOWN

    def lookup_many(self, addrs: Sequence[int]) -> list[str]:
        if self.hidden or not len(self.addrs) or not len(addrs):
            return [UNKNOWN] * len(addrs)
        idx = np.searchsorted(self.addrs, np.asarray(addrs, dtype=np.uint64), side="right") - 1
        return [self.names[i] if i >= 0 else UNKNOWN for i in idx]

    def address_of(self, name: str) -> int | None:
        try:
            return int(self.addrs[self.names.index(name)])
        except ValueError:
            return None


@dataclass
class _ElfSymbols:
    starts: list[int]
    ends: list[int]
    names: list[str]
    loads: list[tuple[int, int, int]]  # (file offset, vaddr, size) of each PT_LOAD


def _read_elf(path: str) -> _ElfSymbols | None:
    """A file's function symbols for symbolizing, with those of its build-id debug file (a stripped
    libc names its functions once libc6-dbg is installed). Read with ktui's own bounds-checked ELF
    reader: pyelftools took minutes for the libraries of a busy machine's processes, and the stacks
    pane (and quitting, which waits for the pass in progress) waited for it."""
    from ktui.catalog.elf_names import uprobe_symbols
    from ktui.errors import FileFormatError

    try:
        syms, _debug = uprobe_symbols(path)
    except FileFormatError:
        return None
    best: dict[int, str] = {}  # several names at one address: the one a person calls it (write, not __libc_write)
    for name, addrs in syms.functions.items():
        for addr in addrs:
            if addr and (addr not in best or _name_rank(name) < _name_rank(best[addr])):
                best[addr] = name
    starts = sorted(best)
    loads = [(offset, vaddr, memsz) for vaddr, memsz, offset in syms.segments]
    return _ElfSymbols(starts, [s + max(syms.sizes.get(s, 0), 1) for s in starts], [best[s] for s in starts], loads)


def _name_rank(name: str) -> tuple[int, int, str]:
    return (len(name) - len(name.lstrip("_")), len(name), name)


class UserSymbols:
    """Per-process user symbolization; ELF symbol tables cached per file (path, inode, mtime)."""

    MAX_PROCESSES = 4096  # mappings kept for this many processes, the oldest forgotten first
    # Symbol tables kept for this many files, the least recently used forgotten first (and read
    # again if asked for). A file rebuilt in place gets a new key, so without a bound every
    # rebuild, and every distinct binary a long session meets, would stay in memory.
    MAX_FILES = 64

    def __init__(self, max_files: int = MAX_FILES) -> None:
        if max_files < 1:
            raise ValueError("UserSymbols keeps at least one file's symbols")
        self._max_files = max_files
        self._elves: OrderedDict[tuple[str, int, int, int], _ElfSymbols | None] = OrderedDict()
        self._maps: dict[int, list[tuple[int, int, int, str]]] = {}
        self._lock = threading.Lock()

    def remember(self, pid: int) -> None:
        """Read a process's mappings now, while it lives (stacks are symbolized later)."""
        if pid not in self._maps:
            maps = _read_maps(pid)
            if maps:
                with self._lock:
                    while len(self._maps) >= self.MAX_PROCESSES:
                        self._maps.pop(next(iter(self._maps)))
                    self._maps[pid] = maps

    def forget(self, pid: int) -> None:
        self._maps.pop(pid, None)

    def _elf(self, path: str) -> _ElfSymbols | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (path, st.st_dev, st.st_ino, st.st_mtime_ns)
        with self._lock:
            if key in self._elves:
                self._elves.move_to_end(key)
                return self._elves[key]
            elf = self._elves[key] = _read_elf(path)
            while len(self._elves) > self._max_files:
                self._elves.popitem(last=False)
            return elf

    def lookup(self, pid: int, addr: int) -> str:
        self.remember(pid)
        maps = self._maps.get(pid)
        if not maps:
            return UNKNOWN
        i = bisect.bisect_right(maps, (addr, float("inf"))) - 1
        if i < 0 or not maps[i][0] <= addr < maps[i][1]:
            return UNKNOWN
        start, _end, offset, path = maps[i]
        file_off = addr - start + offset
        if not path.startswith("/"):
            return f"{path}+{file_off:#x}" if path else UNKNOWN
        elf = self._elf(path)
        base = os.path.basename(path)
        if elf is None:
            return f"{base}+{file_off:#x}"
        vaddr = None
        for p_off, p_vaddr, size in elf.loads:
            if p_off <= file_off < p_off + size:
                vaddr = file_off - p_off + p_vaddr
                break
        if vaddr is None:
            return f"{base}+{file_off:#x}"
        j = bisect.bisect_right(elf.starts, vaddr) - 1
        if j >= 0 and vaddr < elf.ends[j]:
            return elf.names[j]
        return f"{base}+{file_off:#x}"


def _read_maps(pid: int) -> list[tuple[int, int, int, str]]:
    out = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) < 5 or "x" not in parts[1]:
                    continue
                lo, hi = parts[0].split("-")
                path = parts[5].strip() if len(parts) > 5 else ""
                out.append((int(lo, 16), int(hi, 16), int(parts[2], 16), path))
    except (OSError, ValueError):
        return []
    out.sort()
    return out


class StackReader:
    """Reads addresses out of a BPF stack map (BPF_STACK_TRACE) by stack id."""

    def __init__(self, bpf: Any, map_name: str = "ktui_stacks"):
        self._table = bpf.get_table(map_name)

    def addresses(self, stack_id: int) -> list[int]:
        if stack_id < 0:
            return []
        try:
            return [int(a) for a in self._table.walk(stack_id)]
        except (KeyError, OSError):  # an id evicted from the map (hash collision) reads as nothing
            return []
