"""Reading a BPF ring buffer by mapping its memory, decoded in bulk with numpy.

A BCC ring-buffer callback costs a Python call per event and tops out near 1 M
events/s here; mapping the ring ourselves and viewing its fixed-size records as
one structured array costs a few numpy calls per *batch*.

Memory layout of a ringbuf map fd (kernel/bpf/ringbuf.c):
  offset 0          one page, the consumer position (u64), writable by us
  offset page       one page, the producer position (u64), read-only
  offset 2 * page   the data area, mapped twice in a row so a record never wraps
Each record: u32 len (bit 31 busy, bit 30 discarded), u32 page offset, payload
padded to 8 bytes. Positions only grow; the data offset is pos & (size - 1).
"""

from __future__ import annotations

import mmap
import select
from collections.abc import Iterable

import numpy as np

from ktui.engine.ordering import Ordering, ordering_for
from ktui.errors import KtuiError

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
RECORD_HEADER = 8
PAGE = mmap.PAGESIZE
_SIZE_MASK = np.uint32(~(BUSY_BIT | DISCARD_BIT) & 0xFFFFFFFF)


def check_memory_ordering(machine: str | None = None) -> None:
    """Raise a one-sentence KtuiError on a machine this reader cannot order its loads on (ordering.py)."""
    ordering_for(machine)


class RingReader:
    """One ring of fixed-size records (one probe's): ``read()`` returns the committed ones."""

    def __init__(self, map_fd: int, data_size: int, dtype: np.dtype, ordering: Ordering | None = None):
        self._order = ordering if ordering is not None else ordering_for()
        if data_size <= 0 or data_size & (data_size - 1) or data_size % PAGE:
            raise KtuiError(f"a ring buffer of {data_size} bytes is not a power-of-two number of pages.")
        self.fd = map_fd
        self.data_size = data_size
        self.mask = data_size - 1
        self.dtype = np.dtype(dtype)
        self.record_size = (self.dtype.itemsize + 7) // 8 * 8
        self.stride = RECORD_HEADER + self.record_size
        try:
            self._cons_map = mmap.mmap(map_fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._prod_map = mmap.mmap(map_fd, PAGE + 2 * data_size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE)
        except OSError as err:
            raise KtuiError(f"could not map the ring buffer's memory ({err.strerror}).") from err
        self._cons = np.frombuffer(self._cons_map, dtype="<u8", count=1)
        self._prod = np.frombuffer(self._prod_map, dtype="<u8", count=1)
        self._data = np.frombuffer(self._prod_map, dtype=np.uint8, offset=PAGE)
        self._cons_addr = self._cons.ctypes.data
        self._prod_addr = self._prod.ctypes.data
        self._framed = np.dtype({"names": ["len", "rec"], "formats": ["<u4", self.dtype],
                                 "offsets": [0, RECORD_HEADER], "itemsize": self.stride})
        self.consumed_bytes = 0
        self.foreign_records = 0

    def pending_bytes(self) -> int:
        return self._order.load_acquire_u64(self._prod_addr) - int(self._cons[0])

    def read(self) -> np.ndarray:
        """Copy out every committed record (stopping at the first still being written), then release them."""
        cons = int(self._cons[0])  # only this reader writes it
        # An acquire load (ordering.py): every header below prod is at least reserved, and visible.
        prod = self._order.load_acquire_u64(self._prod_addr)
        parts: list[np.ndarray] = []
        while cons < prod:
            n = (prod - cons) // self.stride
            done = 0
            if n:
                framed = np.ndarray((n,), self._framed, self._data, cons & self.mask)
                lens = framed["len"].copy()  # one snapshot of the headers
                # Header loads before record loads: a record whose header was read committed is whole.
                self._order.acquire_fence()
                sizes = ((lens & _SIZE_MASK) + 7) // 8 * 8
                stop = ((lens & BUSY_BIT) != 0) | (sizes != self.record_size)
                done = int(np.argmax(stop)) if stop.any() else n
                if done:
                    keep = (lens[:done] & DISCARD_BIT) == 0
                    recs = framed["rec"][:done]
                    parts.append(recs.copy() if keep.all() else recs[keep])
                    cons += done * self.stride
            if n and done < n and lens[done] & BUSY_BIT:
                break  # still being written: the rest waits for the next read
            if done < n or not n:
                after = self._skip_foreign(cons, prod)
                if after == cons:
                    break
                cons = after
        self._release(cons)
        if not parts:
            return np.empty(0, self.dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _skip_foreign(self, pos: int, prod: int) -> int:
        """Step over one committed record of another size (ktui's compiler never writes one); stay on a busy one."""
        if prod - pos < RECORD_HEADER:
            return pos
        hdr = int(np.ndarray((1,), "<u4", self._data, pos & self.mask)[0])
        end = pos + RECORD_HEADER + ((hdr & int(_SIZE_MASK)) + 7) // 8 * 8
        if hdr & BUSY_BIT or end > prod or end - pos == self.stride:
            return pos
        self.foreign_records += 1
        return end

    def _release(self, pos: int) -> None:
        # A release store, after the copies above: the kernel may reuse the space at once.
        if pos != int(self._cons[0]):
            self.consumed_bytes += pos - int(self._cons[0])
            self._order.store_release_u64(self._cons_addr, pos)

    def close(self) -> None:
        # Views must go before the maps they point into.
        # (typed as arrays for the reader's life; None only once closed, when nothing reads them)
        self._cons = self._prod = self._data = None  # type: ignore[assignment]
        for m in (self._cons_map, self._prod_map):
            try:
                m.close()
            except BufferError:
                pass


class RingPoller:
    """Waits on several rings' fds at once (a ringbuf map fd is pollable)."""

    def __init__(self, fds: Iterable[int] = ()):
        self._ep = select.epoll()
        for fd in fds:
            self.add(fd)

    def add(self, fd: int) -> None:
        self._ep.register(fd, select.EPOLLIN)

    def wait(self, timeout_s: float) -> bool:
        """True when some ring has data (or may have: the kernel wakes us only when we had caught up)."""
        return bool(self._ep.poll(timeout_s))

    def close(self) -> None:
        self._ep.close()
