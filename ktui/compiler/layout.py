"""Value types -> C declarations and numpy dtypes, and C type names -> value types.

The record struct the compiler emits and ``ProbeLayout.dtype`` must agree byte for
byte; both use natural C alignment, so choosing the same sizes here is enough.
"""

from __future__ import annotations

from ktui.probes.model import STRING_SIZE as STRING_SIZE, ValueType  # STRING_SIZE: bytes kept of each fetched string

_INT_C = {8: "u8", 16: "u16", 32: "u32", 64: "u64"}
_SINT_C = {8: "s8", 16: "s16", 32: "s32", 64: "s64"}


def c_decl(vtype: ValueType, name: str) -> str:
    """The struct member declaration for a value of this type."""
    if vtype.is_string:
        return f"char {name}[{STRING_SIZE}]"
    return f"{c_type(vtype)} {name}"


def c_type(vtype: ValueType) -> str:
    """The scalar C type holding the value (strings have none)."""
    if vtype.kind == "s":
        return _SINT_C[vtype.bits]
    if vtype.kind == "symbol":
        return "u64"
    return _INT_C[vtype.bits]


def np_dtype(vtype: ValueType) -> str:
    if vtype.is_string:
        return f"S{STRING_SIZE}"
    if vtype.kind == "symbol":
        return "<u8"
    letter = "i" if vtype.kind == "s" else "u"
    return f"<{letter}{vtype.bits // 8}"


def display(vtype: ValueType) -> str:
    if vtype.is_string:
        return "string"
    if vtype.kind == "symbol":
        return "symbol"
    if vtype.kind == "x":
        return "x"
    if vtype.kind == "s":
        return "s"
    return "u"


# C type names -> value types live with the probe model (one resolution of names and types).
from ktui.probes.ctypes import int_type as int_type, is_char_pointer as is_char_pointer  # noqa: E402
from ktui.probes.ctypes import value_type_of_ctype as value_type_of_ctype  # noqa: E402
