"""Golden generated C, one program per probe kind, compared exactly.

Regenerate after an intended change with KTUI_REGEN_GOLDEN=1 (then read the diff).
The programs depend on this machine's tracefs formats and BTF, so they are checked
where those exist (here), and skipped elsewhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from compiler_cases import CASES, compile_case

GOLDEN = Path(__file__).parent / "golden" / "compiler"


def _machine_ready() -> str | None:
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "no kernel BTF"
    from ktui.kernel import tracefs_path

    if tracefs_path(mount=False) is None:
        return "no tracefs"
    if os.geteuid() != 0:
        return "kallsyms addresses need root"
    return None


def _stable(text: str) -> str:
    """Kernel addresses change with every boot (KASLR): the golden files hold a placeholder."""
    return re.sub(r"0xffff[0-9a-f]{12}ULL", "0xKERNEL_ADDRESS", text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_c_matches_golden(case):
    reason = _machine_ready()
    if reason:
        pytest.skip(reason)
    text = _stable(compile_case(case).c_text)
    path = GOLDEN / f"{case}.c"
    if os.environ.get("KTUI_REGEN_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"generated C for {case} changed; KTUI_REGEN_GOLDEN=1 regenerates"
