"""Just enough of the BTF format for doctor: the header, and a function's type id.

fentry programs name their target by BTF type id, so doctor needs one id to try
loading one. The full BTF reader is the catalog's; this one only walks type
headers, which keeps doctor independent of it and fast.
"""

from __future__ import annotations

import struct

from ktui.errors import FileFormatError

BTF_MAGIC = 0xEB9F
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
KIND_FUNC = 12

# Bytes that follow the 12-byte type header, per kind: (fixed, per vlen item).
_EXTRA = {
    1: (4, 0),  # INT
    2: (0, 0),  # PTR
    3: (12, 0),  # ARRAY
    4: (0, 12),  # STRUCT
    5: (0, 12),  # UNION
    6: (0, 8),  # ENUM
    7: (0, 0),  # FWD
    8: (0, 0),  # TYPEDEF
    9: (0, 0),  # VOLATILE
    10: (0, 0),  # CONST
    11: (0, 0),  # RESTRICT
    12: (0, 0),  # FUNC
    13: (0, 8),  # FUNC_PROTO
    14: (4, 0),  # VAR
    15: (0, 12),  # DATASEC
    16: (0, 0),  # FLOAT
    17: (4, 0),  # DECL_TAG
    18: (0, 0),  # TYPE_TAG
    19: (0, 12),  # ENUM64
}


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
    """Type ids of the FUNCs among ``names`` (first BTF type is id 1)."""
    types, strings, _ = _sections(data, where)
    wanted: dict[int, str] = {}
    raw = bytes(strings)
    for name in names:
        needle = b"\0" + name.encode() + b"\0"
        pos = raw.find(needle)
        if pos >= 0:
            wanted[pos + 1] = name
    found: dict[str, int] = {}
    off, type_id = 0, 1
    while off + _TYPE.size <= len(types) and len(found) < len(wanted):
        name_off, info, _size = _TYPE.unpack_from(types, off)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind not in _EXTRA:
            raise FileFormatError(f"has a BTF type of unknown kind {kind} (id {type_id})", where=where)
        if kind == KIND_FUNC and name_off in wanted:
            found[wanted[name_off]] = type_id
        fixed, each = _EXTRA[kind]
        off += _TYPE.size + fixed + each * vlen
        type_id += 1
    return found
