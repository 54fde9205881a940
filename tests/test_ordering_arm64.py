"""The ring reader's memory-ordering helper (ktui/engine/ordering.c) built for aarch64.

No arm64 hardware here: the helper is cross-compiled with the flags scripts/setup.sh builds it
with, its instructions are read back (acquire loads, release stores, a load fence), and a C
harness runs it under qemu-aarch64 with a producer and a consumer thread over a ring laid out as
the kernel's. What this proves and what it does not: the code aarch64 would run has the
instructions the protocol needs and, emulated, moves records whole and in order. qemu's TCG on an
x86-64 host executes guest loads and stores with the host's strong (TSO) ordering, so the harness
cannot catch a missing barrier the way weakly ordered hardware would; that needs real arm64.

The cross tools come from scripts/setup.sh (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross,
qemu-user). Without them the tests skip and say so; under KTUI_REQUIRE_LIVE=1 (CI) that is a
failure, as for the live tests.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "ktui" / "engine" / "ordering.c"
HARNESS = ROOT / "tests" / "native" / "ordering_harness.c"
NATIVE = platform.machine().lower() in ("aarch64", "arm64")
CC = "gcc" if NATIVE else "aarch64-linux-gnu-gcc"
OBJDUMP = "objdump" if NATIVE else "aarch64-linux-gnu-objdump"
SYSROOT = Path("/usr/aarch64-linux-gnu")  # libc6-dev-arm64-cross: the C library qemu loads the harness with


def _missing() -> str | None:
    tools = [CC, OBJDUMP] + ([] if NATIVE else ["qemu-aarch64"])
    absent = [t for t in tools if shutil.which(t) is None]
    if not NATIVE and not (SYSROOT / "lib" / "libc.so.6").exists():
        absent.append(f"{SYSROOT}/lib/libc.so.6")
    if absent:
        return (f"aarch64 cross tools not installed ({', '.join(absent)}): scripts/setup.sh installs "
                "gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user")
    return None


@pytest.fixture(scope="module")
def cross():
    reason = _missing()
    if reason is not None:
        if os.environ.get("KTUI_REQUIRE_LIVE") == "1":
            pytest.fail(f"KTUI_REQUIRE_LIVE=1 but the arm64 ordering tests cannot run: {reason}", pytrace=False)
        pytest.skip(reason)


def _setup_flags() -> list[str]:
    """The flags scripts/setup.sh builds _ordering.so with (one definition: read from the script)."""
    text = (ROOT / "scripts" / "setup.sh").read_text()
    match = re.search(r'gcc ((?:-\S+ )+)-o "\$helper\.tmp" ktui/engine/ordering\.c', text)
    assert match, "setup.sh's gcc line for ordering.c not found"
    return match.group(1).split()


def _build_helper(tmp_path: Path, source: Path = SOURCE) -> Path:
    helper = tmp_path / "_ordering.so"
    subprocess.run([CC, *_setup_flags(), "-o", str(helper), str(source)], check=True, capture_output=True, text=True)
    return helper


def _run_harness(tmp_path: Path, helper: Path, records: int = 200_000) -> subprocess.CompletedProcess[str]:
    exe = tmp_path / "harness"
    subprocess.run([CC, "-O2", "-pthread", "-o", str(exe), str(HARNESS), str(helper), f"-Wl,-rpath,{helper.parent}"],
                   check=True, capture_output=True, text=True)
    run = [str(exe)] if NATIVE else ["qemu-aarch64", "-L", str(SYSROOT), str(exe)]
    return subprocess.run([*run, str(records)], capture_output=True, text=True, timeout=120)


def _instructions(helper: Path) -> dict[str, list[str]]:
    """Each ktui_ function's instructions (mnemonic and operands) as objdump disassembles them."""
    out = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", str(helper)], check=True, capture_output=True,
                         text=True).stdout
    functions: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        head = re.match(r"^[0-9a-f]+ <(\w+)>:$", line)
        if head:
            current = functions.setdefault(head.group(1), []) if head.group(1).startswith("ktui_") else None
        elif current is not None and re.match(r"^\s+[0-9a-f]+:\s", line):
            current.append(" ".join(line.split(":", 1)[1].split()))
    return functions


def test_the_aarch64_helper_uses_acquire_and_release_instructions(cross, tmp_path):
    helper = _build_helper(tmp_path)
    assert int.from_bytes(helper.read_bytes()[18:20], "little") == 183  # ELF e_machine: EM_AARCH64
    code = _instructions(helper)
    assert set(code) == {"ktui_load_acquire_u64", "ktui_store_release_u64", "ktui_acquire_fence"}, code
    load, store, fence = code["ktui_load_acquire_u64"], code["ktui_store_release_u64"], code["ktui_acquire_fence"]
    # Load-acquire of the producer position: LDAR (or ARMv8.3's weaker-but-sufficient LDAPR).
    assert any(i.split()[0] in ("ldar", "ldapr") and i.split()[1].startswith("x0") for i in load), load
    # Store-release of the consumer position: STLR of the value argument (x1) to the address (x0).
    assert any(i.startswith("stlr x1, [x0") for i in store), store
    # The fence after the header loads: a load-load/load-store barrier over the inner shareable domain.
    assert any(i in ("dmb ishld", "dmb ish") for i in fence), fence
    # And no plain memory access stands in for them.
    assert not any(i.split()[0] in ("ldr", "str") for i in load + store), load + store


def test_the_aarch64_helper_moves_a_ring_whole_and_in_order_under_emulation(cross, tmp_path):
    result = _run_harness(tmp_path, _build_helper(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok 200000 records in "), result.stdout


def test_the_harness_fails_when_the_helper_is_wrong(cross, tmp_path):
    """The harness checks what the helper does: a store that keeps only 32 bits is caught."""
    broken = tmp_path / "broken.c"
    broken.write_text(SOURCE.read_text().replace("__atomic_store_n(p, v, __ATOMIC_RELEASE)",
                                                 "__atomic_store_n(p, (uint32_t)v, __ATOMIC_RELEASE)"))
    assert broken.read_text() != SOURCE.read_text()
    result = _run_harness(tmp_path, _build_helper(tmp_path, broken), records=1000)
    assert result.returncode == 1 and "load/store of one cell" in result.stdout, result.stdout + result.stderr
