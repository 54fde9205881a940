"""The BTF parser, on this machine's real /sys/kernel/btf/vmlinux and on damaged copies."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ktui.catalog.btf import VMLINUX_BTF, load_vmlinux_btf, parse_btf
from ktui.errors import FileFormatError, KtuiError

pytestmark = pytest.mark.skipif(not os.path.exists(VMLINUX_BTF), reason="this kernel exposes no BTF")


@pytest.fixture(scope="module")
def btf():
    return load_vmlinux_btf()


@pytest.fixture(scope="module")
def raw() -> bytes:
    with open(VMLINUX_BTF, "rb") as f:
        return f.read()


def test_kernel_clone_prototype(btf):
    assert btf.func_proto("kernel_clone") == ("pid_t", [("args", "struct kernel_clone_args *")])


def test_do_sys_openat2_prototype(btf):
    ret, args = btf.func_proto("do_sys_openat2")
    assert ret in ("int", "long int", "long")
    assert [a for a, _ in args] == ["dfd", "filename", "how"]
    assert args[1][1] == "const char *"


def test_unknown_function_is_none(btf):
    assert btf.func_proto("no_such_function_in_any_kernel") is None


def test_member_lookup(btf):
    off, size, ctype, bitfield = btf.member("kernel_clone_args", "exit_signal")
    assert size == 4 and ctype == "int" and bitfield is None and off >= 0
    with pytest.raises(KtuiError, match="no member"):
        btf.member("kernel_clone_args", "nope")


def test_resolve_task_comm_and_skb_len(btf):
    comm = btf.resolve_path("struct task_struct", ["comm"])
    assert comm.size == 16 and comm.is_array and comm.is_char_array and not comm.hops
    skb_len = btf.resolve_path("struct sk_buff", ["len"])
    assert skb_len.size == 4 and not skb_len.signed and not skb_len.is_pointer
    pid = btf.resolve_path("task_struct", ["pid"])
    assert pid.size == 4 and pid.signed


def test_resolve_path_follows_pointers(btf):
    mm = btf.resolve_path("struct task_struct", ["mm"])
    assert mm.is_pointer
    pgd = btf.resolve_path("struct task_struct", ["mm", "pgd"])
    assert pgd.hops == [mm.offset] and pgd.is_pointer
    # the member offset agrees with member()
    assert btf.member("mm_struct", "pgd")[0] == pgd.offset


def test_resolve_path_errors(btf):
    with pytest.raises(KtuiError, match="no member"):
        btf.resolve_path("struct task_struct", ["no_such_field"])
    with pytest.raises(KtuiError, match="not a struct"):
        btf.resolve_path("struct task_struct", ["pid", "x"])
    with pytest.raises(KtuiError, match="no type"):
        btf.resolve_path("struct no_such_struct_here", ["x"])


def test_raw_tracepoint_args(btf):
    args = btf.raw_tracepoint_args("sched_switch")
    assert args is not None and any("task_struct *" in t for _, t in args)


def test_truncated_btf_is_a_clean_error(raw, tmp_path):
    for cut in (0, 10, 23, 24, 100, len(raw) // 2, len(raw) - 1):
        path = tmp_path / f"vmlinux.{cut}"
        path.write_bytes(raw[:cut])
        with pytest.raises(FileFormatError):
            load_vmlinux_btf(str(path))


def test_bad_magic_and_version(raw):
    with pytest.raises(FileFormatError, match="not BTF"):
        parse_btf(b"\x00\x00" + raw[2:])
    with pytest.raises(FileFormatError, match="version"):
        parse_btf(raw[:2] + b"\x07" + raw[3:])


def test_corrupt_kind_is_reported(raw):
    hdr_len = struct.unpack_from("<I", raw, 4)[0]
    type_off = struct.unpack_from("<I", raw, 8)[0]
    first = hdr_len + type_off
    bad = bytearray(raw)
    bad[first + 7] = 0x1F  # kind 31 in the first type's info
    with pytest.raises(FileFormatError, match="unknown type kind"):
        parse_btf(bytes(bad))


def test_missing_file():
    with pytest.raises(FileFormatError, match="does not exist"):
        load_vmlinux_btf("/nonexistent/btf")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_parse_or_fail_cleanly(data):
    try:
        btf = parse_btf(data)
    except KtuiError:
        return
    for name in list(btf.funcs)[:5]:
        try:
            btf.func_proto(name)
        except KtuiError:
            pass


def _small_btf() -> bytes:
    """A tiny valid BTF: int, ptr to int, a func proto (int *p) -> int and a func 'f'."""
    strings = b"\0int\0p\0f\0"
    types = b""
    types += struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)  # [1] int
    types += struct.pack("<III", 0, 2 << 24, 1)  # [2] int *
    types += struct.pack("<III", 0, (13 << 24) | 1, 1) + struct.pack("<II", 5, 2)  # [3] proto
    types += struct.pack("<III", 7, 12 << 24, 3)  # [4] func f
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


def test_small_synthetic_btf():
    btf = parse_btf(_small_btf())
    assert btf.func_proto("f") == ("int", [("p", "int *")])


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_btf_parse_or_fail_cleanly(data):
    blob = bytearray(_small_btf())
    cut = data.draw(st.integers(0, len(blob)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=6))
    for pos, val in flips:
        blob[pos] = val
    blob = bytes(blob[:cut])
    try:
        btf = parse_btf(blob)
        for name in btf.funcs:
            btf.func_proto(name)
    except KtuiError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 4096), flip=st.integers(0, 4095), val=st.integers(0, 255))
def test_real_btf_head_mutations(raw, cut, flip, val):
    blob = bytearray(raw[: 24 + cut])
    if flip < len(blob):
        blob[flip] = val
    try:
        parse_btf(bytes(blob))
    except KtuiError:
        pass
