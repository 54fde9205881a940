"""Memory ordering for the ring reader: which loads and stores it needs on this machine.

Reading a record after seeing its header committed needs the producer's stores to be visible in
order; releasing the space needs our reads of it to be done first. The ring reader does, per
batch: an acquire load of the producer position, plain loads of the headers then an acquire
fence, the records copied, and a release store of the consumer position (libbpf's ringbuf.c).

- x86-64 keeps loads ordered with loads and stores with earlier loads (TSO): plain loads and
  stores through numpy are those acquires and releases (``Plain``).
- aarch64 is weakly ordered: the loads, fences and store are real acquire/release instructions
  in a small shared object (``ordering.c``, built by ``scripts/setup.sh`` into ``_ordering.so``)
  called through ctypes once per batch (``Atomic``).
- Any other machine is refused with one sentence (replay works everywhere).
"""

from __future__ import annotations

import ctypes as ct
import platform
from pathlib import Path
from typing import Protocol

from ktui.errors import KtuiError

TSO_MACHINES = ("x86_64", "amd64")
WEAK_MACHINES = ("aarch64", "arm64")
HELPER = Path(__file__).with_name("_ordering.so")


class Ordering(Protocol):
    def load_acquire_u64(self, address: int) -> int: ...

    def acquire_fence(self) -> None: ...

    def store_release_u64(self, address: int, value: int) -> None: ...


class Plain:
    """x86-64 (TSO): loads are acquires and stores are releases as they are."""

    def load_acquire_u64(self, address: int) -> int:
        return int(ct.c_uint64.from_address(address).value)

    def acquire_fence(self) -> None:
        return None

    def store_release_u64(self, address: int, value: int) -> None:
        ct.c_uint64.from_address(address).value = value


class Atomic:
    """Real acquire/release instructions from ``_ordering.so`` (any machine it was built for)."""

    def __init__(self, path: Path = HELPER):
        try:
            lib = ct.CDLL(str(path))
        except OSError:
            raise KtuiError(f"live tracing on this machine needs ktui's memory-ordering helper {path}, "
                            "which ./scripts/setup.sh builds: run it (replaying recordings works without it).") from None
        self._load = lib.ktui_load_acquire_u64
        self._load.argtypes, self._load.restype = (ct.c_void_p,), ct.c_uint64
        self._store = lib.ktui_store_release_u64
        self._store.argtypes, self._store.restype = (ct.c_void_p, ct.c_uint64), None
        self._fence = lib.ktui_acquire_fence
        self._fence.argtypes, self._fence.restype = (), None

    def load_acquire_u64(self, address: int) -> int:
        return int(self._load(address))

    def acquire_fence(self) -> None:
        self._fence()

    def store_release_u64(self, address: int, value: int) -> None:
        self._store(address, value)


def ordering_for(machine: str | None = None, helper: Path = HELPER) -> Ordering:
    """The ring reader's ordering on ``machine`` (this one by default); KtuiError where unsupported."""
    machine = (machine or platform.machine()).lower()
    if machine in TSO_MACHINES:
        return Plain()
    if machine in WEAK_MACHINES:
        return Atomic(helper)
    raise KtuiError(f"live tracing is not supported on {machine}: ktui reads BPF ring buffers with the memory "
                    "ordering of x86-64 and aarch64 only (replaying recordings works everywhere).")
