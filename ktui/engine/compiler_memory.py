"""Giving back the memory BCC's compiler used, once a program is loaded.

BCC compiles in-process with clang and LLVM (libclang-cpp, libLLVM: about 80 MB of code touched
by one compile here, plus the heap it used). Nothing of it runs again until the next compile, but
its pages stay in the process's resident set. After each load:

- the heap clang freed is returned to the system (``malloc_trim``);
- the compiler libraries' file-backed pages that hold no private copy (``Anonymous: 0 kB`` in
  /proc/self/smaps: code and read-only data never written, never relocated) are dropped from
  this process's page tables with ``madvise(MADV_DONTNEED)``. Their content is the file's, so a
  later compile faults the same bytes back in from the page cache; a mapping that has any
  private page (RELRO data written by the loader, for example) is never touched.
"""

from __future__ import annotations

import ctypes as ct
import os

COMPILER_LIBRARIES = ("libLLVM", "libclang")  # the file names' beginnings
MADV_DONTNEED = 4


def release_compiler_memory() -> int:
    """Return clang's heap and drop the compiler's clean pages; the bytes of mappings released."""
    try:
        libc = ct.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return 0
    try:
        libc.malloc_trim(0)
    except AttributeError:  # not glibc
        pass
    released = 0
    madvise = libc.madvise
    madvise.argtypes = (ct.c_void_p, ct.c_size_t, ct.c_int)
    for start, end in clean_compiler_mappings():
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            released += end - start
    return released


def clean_compiler_mappings(smaps: str = "/proc/self/smaps") -> list[tuple[int, int]]:
    """(start, end) of the compiler libraries' private file mappings with no private page."""
    out: list[tuple[int, int]] = []
    try:
        with open(smaps) as f:
            text = f.read()
    except OSError:
        return out
    current: tuple[int, int] | None = None
    for line in text.splitlines():
        head = line.split(None, 5)
        if head and "-" in head[0] and not head[0].endswith(":"):
            current = None
            if len(head) == 6 and head[1].endswith("p") and "w" not in head[1] \
                    and os.path.basename(head[5]).startswith(COMPILER_LIBRARIES):
                lo, hi = head[0].split("-")
                current = (int(lo, 16), int(hi, 16))
        elif current is not None and head[:1] == ["Anonymous:"]:
            if head[1] == "0":
                out.append(current)
            current = None
    return out
