"""Engine pieces that need no kernel: symbolization, histogram slots, counters, update merging, CLI split."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ktui.engine import recorder_sink
from ktui.engine.counters import DeliveredCounts, probe_counters
from ktui.engine.recorder_sink import RecorderSink
from ktui.engine.histograms import (buckets_from_slots, linear_bounds, log2_bounds, log2_slot, log2_slot_c,
                                    log2_slots)
from ktui.engine.loader import default_ring_pages
from ktui.engine.outbox import OUTBOX_MAX, Mailbox, Outbox
from ktui.engine.ringbuf import PAGE
from ktui.engine.stacks import UNKNOWN, KernelSymbols, UserSymbols, _read_elf
from ktui.events import HEADER_DTYPE, N_COUNTERS, Update


def test_kernel_symbols_bisect_to_the_enclosing_function(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text("ffffffff81000000 T _stext\nffffffff81000100 t helper\nffffffff81000200 T do_thing\n"
                    "ffffffff81000300 D some_data\nffffffffc0000000 t mod_fn\t[mymod]\n")
    ks = KernelSymbols(str(path))
    assert ks.lookup(0xFFFFFFFF81000150) == "helper"
    assert ks.lookup(0xFFFFFFFF81000200) == "do_thing"
    assert ks.lookup(0xFFFFFFFF81000350) == "do_thing"  # data symbols are not frames
    assert ks.lookup(0xFFFFFFFFC0000010) == "mod_fn [mymod]"
    assert ks.lookup(0x1000) == UNKNOWN
    assert ks.lookup_many([0xFFFFFFFF81000101, 5]) == ["helper", UNKNOWN]


def test_hidden_kernel_addresses_give_unknown(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text("0000000000000000 T a\n0000000000000000 T b\n")
    assert KernelSymbols(str(path)).lookup(0xFFFFFFFF81000000) == UNKNOWN


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=2000))
def test_any_kallsyms_text_reads_without_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("k") / "kallsyms"
    path.write_bytes(data)
    ks = KernelSymbols(str(path))
    assert isinstance(ks.lookup(0xFFFFFFFF81000000), str)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=4000))
def test_any_file_as_elf_gives_symbols_or_none(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("e") / "f"
    path.write_bytes(b"\x7fELF" + data if data[:1] == b"\0" else data)
    result = _read_elf(str(path))
    assert result is None or isinstance(result.names, list)


def test_user_frames_resolve_through_maps_and_elf_symbols():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    addr = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    name = UserSymbols().lookup(os.getpid(), addr)
    assert "getpid" in name


def test_user_symbol_tables_stay_bounded_and_still_symbolize(tmp_path, monkeypatch):
    """More binaries than the bound: at most MAX files' tables are kept (least recently used
    forgotten first), and every frame still resolves to its own function, evicted ones re-read."""
    from ktui.engine import stacks

    bound, n = 3, 7
    funcs = []
    for i in range(n):  # n distinct shared objects, each with its own function, mapped into this process
        src, so = tmp_path / f"lib{i}.c", tmp_path / f"libktui_lru_{i}.so"
        src.write_text(f"int ktui_lru_fn_{i}(int x) {{ return x * {i + 2}; }}\n")
        subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
        fn = getattr(ctypes.CDLL(str(so)), f"ktui_lru_fn_{i}")
        funcs.append((f"ktui_lru_fn_{i}", ctypes.cast(fn, ctypes.c_void_p).value))
    reads: list[str] = []
    real_read = stacks._read_elf
    monkeypatch.setattr(stacks, "_read_elf", lambda path: reads.append(path) or real_read(path))

    syms = UserSymbols(max_files=bound)
    for name, addr in funcs:
        assert syms.lookup(os.getpid(), addr) == name
        assert len(syms._elves) <= bound
    assert len(syms._elves) == bound
    assert len(reads) == n  # each file read once so far
    kept = {key[0] for key in syms._elves}
    assert kept == {str(tmp_path / f"libktui_lru_{i}.so") for i in range(n - bound, n)}  # the newest three

    # A kept file is not read again and becomes the most recently used; an evicted one is read anew.
    name, addr = funcs[n - bound]
    assert syms.lookup(os.getpid(), addr) == name
    assert len(reads) == n
    name, addr = funcs[0]
    assert syms.lookup(os.getpid(), addr) == name
    assert len(reads) == n + 1 and reads[-1] == str(tmp_path / "libktui_lru_0.so")
    kept = {key[0] for key in syms._elves}
    assert len(kept) == bound
    assert str(tmp_path / f"libktui_lru_{n - bound}.so") in kept  # used just before: kept
    assert str(tmp_path / f"libktui_lru_{n - bound + 1}.so") not in kept  # least recently used: gone


@pytest.mark.parametrize("path", ["/bin/bash", ctypes.util.find_library("c")])
def test_elf_symbols_for_stacks_agree_with_pyelftools(path):
    """ktui's own ELF reader (what stacks are symbolized with) against pyelftools on real files and their
    build-id debug files (libc6-dbg's, when installed): the same function addresses, and every function's
    first and last byte resolve to a name pyelftools gives a function there."""
    import bisect

    from elftools.elf.elffile import ELFFile

    from ktui.catalog.elf_names import debug_file_for, read_elf_symbols

    if not os.path.isabs(path):
        path = next(p for p in ("/lib/x86_64-linux-gnu/" + path, "/usr/lib/x86_64-linux-gnu/" + path) if os.path.exists(p))
    names: dict[int, set[str]] = {}
    sizes: dict[int, int] = {}
    for file in filter(None, (path, debug_file_for(read_elf_symbols(path).build_id))):
        with open(file, "rb") as f:
            for section in ELFFile(f).iter_sections():
                if section.header.sh_type not in ("SHT_SYMTAB", "SHT_DYNSYM"):
                    continue
                for sym in section.iter_symbols():
                    if (sym["st_info"]["type"] in ("STT_FUNC", "STT_LOOS") and sym["st_value"]  # LOOS: GNU_IFUNC
                            and sym["st_shndx"] != "SHN_UNDEF" and sym.name):
                        names.setdefault(sym["st_value"], set()).add(sym.name.split("@")[0])
                        sizes[sym["st_value"]] = max(sizes.get(sym["st_value"], 0), sym["st_size"])
    elf = _read_elf(path)
    assert elf is not None and len(names) > 100
    assert set(elf.starts) == set(names)
    starts = sorted(names)

    def at(vaddr: int) -> str | None:
        j = bisect.bisect_right(elf.starts, vaddr) - 1
        return elf.names[j] if j >= 0 and vaddr < elf.ends[j] else None

    for addr, aliases in names.items():
        assert at(addr) in aliases
        last = addr + max(sizes[addr], 1) - 1
        inner = starts[bisect.bisect_right(starts, last) - 1]  # a function nested inside ends it (rare)
        assert at(last) in names[inner]


def test_user_symbols_refuse_a_bound_below_one():
    with pytest.raises(ValueError):
        UserSymbols(max_files=0)


def test_a_user_address_outside_any_mapping_is_unknown():
    assert UserSymbols().lookup(os.getpid(), 0x10) == UNKNOWN
    assert UserSymbols().lookup(2**22 + 999, 0x400000) == UNKNOWN  # no such process


def _log2l(v: int) -> int:
    """BCC's bpf_log2l, as the compiled program computes the slot."""
    def log2(x: int) -> int:
        return x.bit_length() - 1 if x else 0
    hi = v >> 32
    return log2(hi) + 32 + 1 if hi else log2(v) + 1


@given(st.integers(0, 2**64 - 1))
def test_log2_buckets_hold_the_values_the_kernel_puts_in_them(v):
    low, high = log2_bounds(_log2l(v))
    assert low <= v < high


@given(st.integers(-10**6, 10**6), st.integers(-1000, 1000), st.integers(1, 5000), st.integers(1, 100))
def test_linear_buckets_hold_the_values_the_kernel_puts_in_them(x, lo, width, step):
    hi = lo + width
    n = -(-(hi - lo) // step)
    slot = 0 if x < lo else n + 1 if x >= hi else 1 + (x - lo) // step  # the compiler's C expression
    low, high = linear_bounds(slot, lo, hi, step)
    assert low <= x < high


def test_buckets_are_in_slot_order_and_skip_empty_ones():
    assert buckets_from_slots({3: 5, 1: 2, 2: 0}, {"scale": "log2"}) == [(0, 2, 2), (4, 8, 5)]


def _signed_slot(x: int) -> int:
    """The compiler's C for a signed value, as written: x < 0 ? 64 + bpf_log2l(~x) : bpf_log2l(x)."""
    return 64 + _log2l(~x) if x < 0 else _log2l(x)


@given(st.integers(-2**63, 2**63 - 1))
def test_signed_log2_buckets_hold_negative_values_apart(x):
    slot = _signed_slot(x)
    assert slot == log2_slot(x, signed=True) == int(log2_slots(np.array([x], dtype=np.int64))[0])
    low, high = log2_bounds(slot)
    assert low <= x < high and (low < 0) == (x < 0)


@given(st.integers(0, 2**64 - 1))
def test_unsigned_log2_slots_agree_in_python_and_numpy(v):
    assert log2_slot(v, signed=False) == _log2l(v) == int(log2_slots(np.array([v], dtype=np.uint64))[0])


def test_negative_buckets_sort_below_the_others_and_mirror_them():
    assert buckets_from_slots({2: 1, 65: 3, 69: 4, 1: 5}, {"scale": "log2"}) == [
        (-32, -16, 4), (-2, 0, 3), (0, 2, 5), (2, 4, 1)]
    assert log2_slot_c("v->ret", signed=True) == (
        "((s64)(v->ret) < 0 ? 64 + bpf_log2l(~(u64)(s64)(v->ret)) : bpf_log2l((u64)(v->ret)))")


def test_delivered_counts_per_cpu_and_probe_counters():
    recs = np.zeros(6, HEADER_DTYPE)
    recs["cpu"] = [0, 1, 1, 1, 0, 1]
    delivered = DeliveredCounts(2)
    delivered.add(0, recs)
    kernel = np.zeros((N_COUNTERS, 2), dtype=np.int64)
    kernel[0] = [3, 5]  # hits
    kernel[2] = [1, 1]  # dropped
    c = probe_counters(kernel, delivered.get(0))
    assert c.delivered == [2, 4] and c.hits == [3, 5] and c.dropped == [1, 1]
    assert c.totals()["hits"] == c.totals()["delivered"] + c.totals()["dropped"]
    # in-kernel aggregation: the kernel does not count SUBMITTED; delivered = hits - dropped - filtered
    kernel[3] = [1, 0]  # filtered
    no_ring = probe_counters(kernel, None)
    assert no_ring.delivered == [1, 4] and no_ring.filtered == [1, 0]
    t = no_ring.totals()
    assert t["hits"] == t["delivered"] + t["dropped"] + t["filtered"]


def test_updates_waiting_for_a_slow_sink_merge_keeping_the_newest_events():
    outbox = Outbox(window=10)  # no kernel: only the handoff is exercised
    a = np.zeros(8, HEADER_DTYPE)
    a["ts"] = np.arange(8)
    b = np.zeros(8, HEADER_DTYPE)
    b["ts"] = np.arange(8, 16)
    outbox.post(Update(message="old"), {0: [a]})
    outbox.post(Update(elapsed_s=2.0), {0: [b]})  # the sink has not taken the first yet
    got: list[Update] = []
    outbox.close()
    outbox.run(got.append)
    assert len(got) == 1
    assert list(got[0].events[0]["ts"]) == list(range(6, 16))
    assert got[0].elapsed_s == 2.0 and got[0].message == "old"


def test_more_waiting_updates_than_the_outbox_keeps_are_merged_at_once():
    outbox = Outbox(window=5)
    for i in range(OUTBOX_MAX + 3):
        recs = np.zeros(2, HEADER_DTYPE)
        recs["ts"] = [2 * i, 2 * i + 1]
        outbox.post(Update(elapsed_s=float(i)), {0: [recs]})
    assert len(outbox._pending) <= OUTBOX_MAX  # merged while waiting, not queued without bound
    got: list[Update] = []
    outbox.close()
    outbox.run(got.append)
    n = OUTBOX_MAX + 3
    assert len(got) == 1 and got[0].elapsed_s == float(n - 1)
    assert list(got[0].events[0]["ts"]) == list(range(2 * n - 5, 2 * n))


def test_ring_sizes_are_powers_of_two_pages_within_bounds():
    for n in (1, 2, 3, 10, 100, 10_000):
        pages = default_ring_pages(n)
        assert pages & (pages - 1) == 0 and (1 << 20) <= pages * PAGE <= (16 << 20)


def test_record_splits_the_command_at_the_double_dash():
    from ktui.cli import build_parser

    args = build_parser().parse_args(["record", "tracepoint:a:b", "-o", "f", "--", "ls", "-l", "--", "x"])
    assert args.specs == ["tracepoint:a:b"] and args.output == "f"
    assert args.command_argv == ["ls", "-l", "--", "x"]
    args = build_parser().parse_args(["record", "t:a:b", "u:c:d", "-o", "f", "-d", "2"])
    assert args.command_argv == [] and args.duration == 2.0 and args.specs == ["t:a:b", "u:c:d"]


def test_a_command_is_held_until_released(tmp_path):
    import time

    from ktui.engine.launch import StoppedCommand

    marker = tmp_path / "ran"
    cmd = StoppedCommand(["touch", str(marker)])
    time.sleep(0.2)
    assert not marker.exists() and cmd.poll() is None
    cmd.release()
    assert cmd.wait() == 0 and marker.exists()


def test_an_abandoned_command_never_runs(tmp_path):
    from ktui.engine.launch import StoppedCommand

    marker = tmp_path / "ran"
    cmd = StoppedCommand(["touch", str(marker)])
    cmd.abandon()
    assert cmd.returncode != 0 and not marker.exists()


def test_a_missing_program_is_a_clear_error():
    import pytest

    from ktui.engine.launch import StoppedCommand
    from ktui.errors import UsageError

    with pytest.raises(UsageError, match="no such program"):
        StoppedCommand(["ktui-no-such-program-xyz"])


def test_the_apps_mailbox_stays_bounded_when_the_consumer_never_comes():
    box = Mailbox(window=6, most=3)
    told = []
    for i in range(50):
        recs = np.zeros(4, HEADER_DTYPE)
        recs["ts"] = np.arange(4 * i, 4 * i + 4)
        told.append(box.put(Update(events={0: recs}, elapsed_s=float(i))))
        assert len(box._items) <= 3
    assert told[0] and not any(told[1:])  # one message for the queue, however long the consumer is away
    taken = box.take()
    assert taken is not None and taken[1] == 0
    got = taken[0]
    assert got.elapsed_s == 49.0
    assert list(got.events[0]["ts"]) == list(range(194, 200))  # the newest window of events
    assert box.take() is None


def test_the_mailbox_never_merges_updates_of_a_replaced_source():
    box = Mailbox(window=100)
    old = np.zeros(3, HEADER_DTYPE)
    new = np.zeros(2, HEADER_DTYPE)
    new["ts"] = [7, 8]
    assert box.put(Update(events={0: old}), 1)
    box.put(Update(events={0: new}), 2)  # the source was replaced: what waited for generation 1 goes
    taken = box.take()
    assert taken is not None and taken[1] == 2 and list(taken[0].events[0]["ts"]) == [7, 8]


class _Writer:
    """A recording writer for the recorder sink alone: append does what the test says."""

    def __init__(self, append):
        self.path = "/nonexistent/test.ktrec"
        self._append = append
        self.appended = 0
        self.closed = False

    def append(self, probe_id, records):
        self._append(records)
        self.appended += len(records)

    def flush(self): ...

    def set_counters(self, counters, at_ns=None): ...

    def set_probe_states(self, states): ...

    def close(self):
        self.closed = True


def _records(n: int) -> np.ndarray:
    return np.zeros(n, HEADER_DTYPE)


def test_a_recorder_that_raises_anything_is_reported_detached_and_never_stalls_the_drain():
    def boom(records):
        raise RuntimeError("disk on fire")

    writer = _Writer(boom)
    sink = RecorderSink(writer, writer.path, dict, owns_writer=True)
    sink.start()
    stopping = threading.Event()
    sink.events(0, _records(10), stopping)
    deadline = time.monotonic() + 10
    while sink.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.error is not None and str(sink.error) == "the recording stopped: disk on fire."
    t0 = time.monotonic()
    for _ in range(100):  # detached: nothing more is queued, the drain never waits
        sink.events(0, _records(1000), stopping)
    assert time.monotonic() - t0 < 1.0 and sink.events_written == 0
    sink.finish(Update())
    assert writer.closed


def test_a_stalled_recorder_is_declared_failed_and_neither_the_drain_nor_stop_waits_forever(monkeypatch):
    monkeypatch.setattr(recorder_sink, "RECORD_QUEUE_BYTES", 1000)
    monkeypatch.setattr(recorder_sink, "STALL_S", 0.5)
    release = threading.Event()
    writer = _Writer(lambda records: release.wait(30))  # a hung file system
    sink = RecorderSink(writer, writer.path, dict, owns_writer=True)
    sink.start()
    stopping = threading.Event()
    t0 = time.monotonic()
    for _ in range(5):  # 5 x 56 x 100 bytes: over the budget while the writer hangs
        sink.events(0, _records(100), stopping)
    assert sink.error is not None and "fell" in str(sink.error) and time.monotonic() - t0 < 5
    sink2 = RecorderSink(_Writer(lambda records: release.wait(30)), writer.path, dict, owns_writer=True)
    sink2.start()
    sink2.events(0, _records(1), stopping)
    t0 = time.monotonic()
    sink2.finish(Update())  # the writer is stuck in a write: finish gives up, stop() goes on
    assert time.monotonic() - t0 < 5 and sink2.error is not None and "no progress" in str(sink2.error)
    release.set()
