"""The mmap ring-buffer reader: exact delivery from the real kernel, and any ring contents handled."""

from __future__ import annotations

import ctypes as ct
import mmap
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import CONTRACT_TRACEPOINT, contract_program, getppid_child
from ktui.errors import KtuiError
from ktui.events import FieldLayout, ProbeLayout
from ktui.engine.ordering import Atomic, Plain, ordering_for
from ktui.engine.ringbuf import BUSY_BIT, DISCARD_BIT, PAGE, RingPoller, RingReader

LAYOUT = ProbeLayout(0, "getppid", "tracepoint:" + CONTRACT_TRACEPOINT, (FieldLayout("seq", "<u8"),))


# --- a ring in a memfd, laid out as the kernel maps one (data written twice, as the double mapping shows it)

class FakeRing:
    def __init__(self, data_size: int = PAGE):
        self.size = data_size
        self.fd = os.memfd_create("ktui-test-ring")
        os.ftruncate(self.fd, 2 * PAGE + 2 * data_size)
        self.mem = mmap.mmap(self.fd, 2 * PAGE + 2 * data_size)
        self.prod = 0

    def cons(self) -> int:
        return int.from_bytes(self.mem[0:8], "little")

    def _write_data(self, pos: int, data: bytes) -> None:
        for i, byte in enumerate(data):
            off = (pos + i) % self.size
            self.mem[2 * PAGE + off] = byte
            self.mem[2 * PAGE + self.size + off] = byte

    def push(self, payload: bytes, flags: int = 0) -> None:
        self._write_data(self.prod, (len(payload) | flags).to_bytes(4, "little") + b"\0\0\0\0")
        self._write_data(self.prod + 8, payload + b"\0" * (-len(payload) % 8))
        self.prod += 8 + len(payload) + (-len(payload) % 8)
        self.mem[PAGE : PAGE + 8] = self.prod.to_bytes(8, "little")

    def close(self) -> None:
        self.mem.close()
        os.close(self.fd)


def _record(seq: int) -> bytes:
    rec = np.zeros(1, LAYOUT.dtype)
    rec["seq"] = seq
    rec["pid"] = 42
    return rec.tobytes()


def _orderings():
    """Both ways the reader orders its loads: x86-64's plain loads, and the acquire/release helper
    aarch64 uses (built by setup.sh for every machine, so its code path runs here too)."""
    return [pytest.param(Plain(), id="plain"), pytest.param("atomic", id="atomic")]


def _ordering(which):
    return Atomic() if which == "atomic" else which


@pytest.mark.parametrize("ordering", _orderings())
def test_reads_committed_records_and_releases_them(ordering):
    ring = FakeRing()
    reader = RingReader(ring.fd, ring.size, LAYOUT.dtype, _ordering(ordering))
    for i in range(5):
        ring.push(_record(i))
    out = reader.read()
    assert list(out["seq"]) == [0, 1, 2, 3, 4]
    assert ring.cons() == ring.prod
    assert len(reader.read()) == 0
    reader.close()
    ring.close()


def test_stops_at_a_busy_record_and_skips_discarded_ones():
    ring = FakeRing()
    reader = RingReader(ring.fd, ring.size, LAYOUT.dtype)
    ring.push(_record(0))
    ring.push(_record(1), DISCARD_BIT)
    ring.push(_record(2))
    stop = ring.prod
    ring.push(_record(3), BUSY_BIT)
    ring.push(_record(4))
    out = reader.read()
    assert list(out["seq"]) == [0, 2]
    assert ring.cons() == stop
    reader.close()
    ring.close()


def test_records_that_straddle_the_end_of_the_data_area_read_whole():
    ring = FakeRing()
    reader = RingReader(ring.fd, ring.size, LAYOUT.dtype)
    stride = 8 + LAYOUT.record_size
    total = 0
    for _rnd in range(3):  # three laps around a one-page ring
        batch = ring.size // stride
        for i in range(batch):
            ring.push(_record(total + i))
        out = reader.read()
        assert list(out["seq"]) == list(range(total, total + batch))
        total += batch
    assert ring.cons() == ring.prod
    reader.close()
    ring.close()


def test_a_record_of_another_size_is_stepped_over():
    ring = FakeRing()
    reader = RingReader(ring.fd, ring.size, LAYOUT.dtype)
    ring.push(_record(0))
    ring.push(b"x" * 24)
    ring.push(_record(1))
    out = reader.read()
    assert list(out["seq"]) == [0, 1]
    assert reader.foreign_records == 1
    reader.close()
    ring.close()


def test_a_ring_size_that_is_not_a_power_of_two_pages_is_refused():
    with pytest.raises(KtuiError):
        RingReader(0, 3 * PAGE, LAYOUT.dtype)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=PAGE), st.integers(0, PAGE), st.integers(0, 2**64 - 1 - PAGE))
def test_any_ring_contents_give_records_or_a_clear_error(data, length, start):
    ring = FakeRing()
    try:
        ring.mem[0:8] = start.to_bytes(8, "little")
        ring._write_data(start, data)
        ring.mem[PAGE : PAGE + 8] = (start + min(length, len(data))).to_bytes(8, "little")
        reader = RingReader(ring.fd, ring.size, LAYOUT.dtype)
        try:
            out = reader.read()
            assert out.dtype == LAYOUT.dtype
            assert start <= ring.cons() <= start + min(length, len(data))
        except KtuiError:
            pass
        reader.close()
    finally:
        ring.close()


# --- the real kernel

def _load(ring_pages: int, ordering=None):
    from ktui.bccload import load_bcc
    from ktui.headers import ensure_headers

    ensure_headers()
    bpf = load_bcc().BPF(text=contract_program(ring_pages))
    from ktui.compiler.control import set_enabled

    set_enabled(bpf, 0, True)
    bpf.attach_tracepoint(tp=CONTRACT_TRACEPOINT, fn_name="probe_0")
    table = bpf["ktui_ring_0"]
    return bpf, RingReader(table.map_fd, table.max_entries, LAYOUT.dtype, ordering)


def _counter(bpf, slot: int) -> list[int]:
    return [int(v) for v in bpf["ktui_counters"][ct.c_int(slot)]]


@pytest.mark.live
def test_exactly_n_events_for_n_calls():
    bpf, reader = _load(256)  # 1 MB: all 5000 fit without a concurrent reader
    try:
        from ktui.compiler.control import set_target

        set_target(bpf, 0)
        n = 5000
        pid = getppid_child(n)
        out = reader.read()
        mine = out[out["pid"] == pid]
        assert len(mine) == n
        assert (mine["tid"] == pid).all()
        assert set(mine["comm"]) == {mine["comm"][0]} and mine["comm"][0].startswith(b"getppid")
        assert (np.diff(mine["ts"].astype(np.int64)) >= 0).all()
        assert sum(_counter(bpf, 2)) == 0
    finally:
        reader.close()
        bpf.cleanup()


@pytest.mark.live
def test_a_full_ring_drops_and_the_counts_still_add_up():
    bpf, reader = _load(1)  # one page: room for a few dozen records
    try:
        n = 2000
        pid = getppid_child(n)
        # Detached before reading: other processes' getppid calls between the read and the
        # counter reads would otherwise be hits in neither the records nor the drops.
        bpf.detach_tracepoint(tp=CONTRACT_TRACEPOINT)
        out = reader.read()
        delivered = int((out["pid"] == pid).sum())
        hits, submitted, dropped = (sum(_counter(bpf, s)) for s in (0, 1, 2))
        # Other processes may call getppid too: the accounting must hold for all of them.
        assert hits == len(out) + dropped
        assert submitted == len(out)
        assert 0 < delivered < n and dropped >= n - delivered
    finally:
        reader.close()
        bpf.cleanup()


@pytest.mark.live
@pytest.mark.parametrize("ordering", _orderings())
def test_a_concurrent_drain_delivers_a_fast_producer_whole(ordering):
    bpf, reader = _load(4096, _ordering(ordering))  # 16 MB, as the engine's rings
    poller = RingPoller([reader.fd])
    got: list[np.ndarray] = []
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            poller.wait(0.01)
            got.append(reader.read())
        got.append(reader.read())

    thread = threading.Thread(target=drain)
    thread.start()
    try:
        n = 300_000
        pid = getppid_child(n)
    finally:
        bpf.detach_tracepoint(tp=CONTRACT_TRACEPOINT)  # the counters are final before the last read
        stop.set()
        thread.join()
        poller.close()
    try:
        out = np.concatenate(got)
        hits, dropped = sum(_counter(bpf, 0)), sum(_counter(bpf, 2))
        # Every hit is read or counted as dropped; a machine busy enough to stall the reader
        # for the ring's whole span drops some, which the counters must then show.
        assert len(out) + dropped == hits
        assert int((out["pid"] == pid).sum()) == n or dropped > 0
        assert reader.foreign_records == 0
    finally:
        reader.close()
        bpf.cleanup()


def test_live_reading_refuses_clearly_on_a_machine_it_cannot_order_loads_on(tmp_path):
    from ktui.engine.ringbuf import check_memory_ordering

    assert isinstance(ordering_for("x86_64"), Plain)  # TSO: plain loads are acquire loads
    assert isinstance(ordering_for("aarch64"), Atomic)  # acquire/release through the helper
    for machine in ("ppc64le", "riscv64", "s390x"):
        with pytest.raises(KtuiError) as err:
            check_memory_ordering(machine)
        sentence = str(err.value)
        assert machine in sentence and "replaying recordings works" in sentence and "\n" not in sentence
    with pytest.raises(KtuiError) as err:  # aarch64 without the helper setup.sh builds
        ordering_for("aarch64", helper=tmp_path / "_ordering.so")
    assert "setup.sh" in str(err.value) and "\n" not in str(err.value)


def test_ktui_record_on_an_unsupported_machine_says_one_sentence_and_writes_nothing(tmp_path):
    """The real command, in its own process, on a machine it pretends to be: no traceback, no file."""
    import subprocess
    import sys

    out = tmp_path / "rec.ktrace"
    code = ("import platform, sys; platform.machine = lambda: 'riscv64'\n"
            "from ktui.cli import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, "record", "tracepoint:raw_syscalls:sys_enter",
                             "-o", str(out), "-d", "1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("ktui: live tracing is not supported on riscv64")
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())


def test_the_ordering_helper_loads_and_stores_what_memory_holds():
    atomic = Atomic()
    cell = (ct.c_uint64 * 2)(0, 0)
    address = ct.addressof(cell) + 8
    atomic.store_release_u64(address, 2**64 - 3)
    assert cell[1] == 2**64 - 3 and cell[0] == 0
    assert atomic.load_acquire_u64(address) == 2**64 - 3
    atomic.acquire_fence()
