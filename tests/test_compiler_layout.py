"""The record structs in the generated C and ProbeLayout.dtype agree byte for byte.

Checked by compiling the generated structs with the host C compiler (x86_64 and BPF
share natural C alignment for these types) and printing sizeof/offsetof of every member.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import pytest

from ktui.compiler import KernelFacts, compile_session
from ktui.probes.model import Builtin, Fetch, Imm, Probe, ProbeKind, ValueType

TYPES = ["u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "x8", "x16", "x32", "x64", "string", "ustring",
         "symbol", "b3@2/8", "b5@0/16", "b7@9/32", "b1@63/64"]


def _offsets_from_c(c_text: str, structs: list[str]) -> str:
    decls = "\n".join(re.findall(r"^struct ktui_(?:hdr|ev_\d+) \{.*?^\};", c_text, re.S | re.M))
    members = {}
    for tag in structs:
        body = re.search(rf"^struct {tag} \{{(.*?)^\}};", c_text, re.S | re.M).group(1)
        members[tag] = [m for m in re.findall(r"(\w+)(?:\[\d+\])?;", body) if m != "hdr"]
    prints = []
    for tag, names in members.items():
        prints.append(f'printf("{tag} size %zu\\n", sizeof(struct {tag}));')
        for name in names:
            prints.append(f'printf("{tag} {name} %zu\\n", offsetof(struct {tag}, {name}));')
    src = ("#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n"
           "typedef uint8_t u8; typedef uint16_t u16; typedef uint32_t u32; typedef uint64_t u64;\n"
           "typedef int8_t s8; typedef int16_t s16; typedef int32_t s32; typedef int64_t s64;\n"
           f"{decls}\nint main(void) {{\n" + "\n".join(prints) + "\nreturn 0; }\n")
    return src


def _run_c(tmp_path, src: str) -> dict[str, tuple[int, dict[str, int]]]:
    (tmp_path / "layout.c").write_text(src)
    subprocess.run(["gcc", "-o", str(tmp_path / "layout"), str(tmp_path / "layout.c")], check=True)
    out: dict[str, tuple[int, dict[str, int]]] = {}
    for line in subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True, check=True).stdout.splitlines():
        tag, what, value = line.split()
        size, offs = out.get(tag, (0, {}))
        if what == "size":
            out[tag] = (int(value), offs)
        else:
            offs[what] = int(value)
            out[tag] = (size, offs)
    return out


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_record_structs_match_numpy_dtypes(tmp_path):
    rng = random.Random(4)
    probes = []
    for _i in range(40):
        n = rng.randint(0, 7)
        fetches = [Fetch(f"v{j}", Imm(j), ValueType.parse(rng.choice(TYPES))) for j in range(n)]
        if rng.random() < 0.3:
            fetches.append(Fetch("gid", Builtin("gid")))
        probes.append(Probe(ProbeKind.PROFILE, "", frequency=49, fetches=fetches))
    prog = compile_session(probes, facts=KernelFacts(False, False))
    assert all(cp.error is None for cp in prog.probes), [cp.error for cp in prog.probes if cp.error]
    tags = ["ktui_hdr"] + [f"ktui_ev_{cp.probe_id}" for cp in prog.probes]
    measured = _run_c(tmp_path, _offsets_from_c(prog.c_text, tags))
    hdr_size, hdr_offs = measured["ktui_hdr"]
    from ktui.events import HEADER_DTYPE

    assert hdr_size == HEADER_DTYPE.itemsize == 56
    assert hdr_offs == {name: HEADER_DTYPE.fields[name][1] for name in HEADER_DTYPE.names}
    for cp in prog.probes:
        size, offs = measured[f"ktui_ev_{cp.probe_id}"]
        dtype = cp.layout.dtype
        assert size == dtype.itemsize, cp.layout
        for f in cp.layout.fields:
            assert offs[f"f_{f.name}"] == dtype.fields[f.name][1], (cp.layout, f)
