"""Just enough of the BTF format for doctor: the header, and a function's type id.

fentry programs name their target by BTF type id, so doctor needs one id to try
loading one. The header check is doctor's own (its sentences name what is wrong);
type ids come from the catalog's BTF reader, the one parser of BTF types in ktui.
"""

from __future__ import annotations

import struct

from ktui.errors import FileFormatError

BTF_MAGIC = 0xEB9F
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
_HEADER = struct.Struct("<HBBIIIII")


def _sections(data: bytes, where: str) -> tuple[memoryview, memoryview, int]:
    """(types, strings, version) or FileFormatError."""
    if len(data) < _HEADER.size:
        raise FileFormatError("is too short to be BTF", where=where)
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(data)
    if magic != BTF_MAGIC:
        raise FileFormatError(f"is not BTF (magic {magic:#06x}, expected {BTF_MAGIC:#06x})", where=where)
    if hdr_len < _HEADER.size:
        raise FileFormatError(f"has a BTF header of {hdr_len} bytes, shorter than {_HEADER.size}", where=where)
    view = memoryview(data)
    t0, s0 = hdr_len + type_off, hdr_len + str_off
    if t0 + type_len > len(data) or s0 + str_len > len(data):
        raise FileFormatError("is truncated: its BTF sections run past the end of the file", where=where)
    return view[t0 : t0 + type_len], view[s0 : s0 + str_len], version


def check_header(data: bytes, where: str = VMLINUX_BTF) -> int:
    """The BTF version, after checking the magic and that the sections fit."""
    return _sections(data, where)[2]


def func_ids(data: bytes, names: list[str], where: str = VMLINUX_BTF) -> dict[str, int]:
    """Type ids of the FUNCs among ``names`` (first BTF type is id 1), read by the catalog's BTF parser."""
    from ktui.catalog.btf import parse_btf  # the one full BTF reader; imported only when an id is needed

    _sections(data, where)  # doctor's own sentences for a bad header or truncated sections
    funcs = parse_btf(data, name=where).funcs
    return {name: funcs[name] for name in names if name in funcs}
