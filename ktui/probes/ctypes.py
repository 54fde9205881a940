"""C type names, as BTF, DWARF and tracefs spell them, -> the value types ktui records.

One table for the whole program: the compiler, the editor and the stream all read a
type through here (via ``ktui.probes.resolve``), so they never disagree on what a
name holds."""

from __future__ import annotations

import re
from collections.abc import Callable

from ktui.probes.model import ValueType

# C type names as BTF and tracefs spell them -> (bytes, signed). Pointers are x64.
_NAMED = {
    "char": (1, True), "signed char": (1, True), "unsigned char": (1, False), "_Bool": (1, False), "bool": (1, False),
    "short": (2, True), "short int": (2, True), "unsigned short": (2, False), "short unsigned int": (2, False),
    "unsigned short int": (2, False), "int": (4, True), "signed int": (4, True), "unsigned int": (4, False),
    "unsigned": (4, False), "long": (8, True), "long int": (8, True), "unsigned long": (8, False),
    "long unsigned int": (8, False), "unsigned long int": (8, False), "long long": (8, True),
    "long long int": (8, True), "unsigned long long": (8, False), "long long unsigned int": (8, False),
    "size_t": (8, False), "ssize_t": (8, True), "loff_t": (8, True), "off_t": (8, True), "pid_t": (4, True),
    "uid_t": (4, False), "gid_t": (4, False), "umode_t": (2, False), "dev_t": (4, False), "gfp_t": (4, False),
    "fmode_t": (4, False), "sector_t": (8, False), "clockid_t": (4, True), "key_serial_t": (4, True),
}
for _bits in (8, 16, 32, 64):
    for _pfx, _signed in (("u", False), ("s", True), ("__u", False), ("__s", True), ("uint", False), ("int", True)):
        suffix = "_t" if _pfx in ("uint", "int") else ""
        _NAMED[f"{_pfx}{_bits}{suffix}"] = (_bits // 8, _signed)
    _NAMED[f"__le{_bits}"] = (_bits // 8, False)
    _NAMED[f"__be{_bits}"] = (_bits // 8, False)

_QUALIFIERS = re.compile(r"\b(const|volatile|__user|__rcu|__percpu|__iomem|__force|restrict)\b")


def int_type(size: int, signed: bool) -> ValueType:
    bits = size * 8 if size in (1, 2, 4, 8) else 64
    return ValueType("s" if signed else "u", bits)


def value_type_of_ctype(ctype: str, sizer: Callable[[str], tuple[int, bool] | None] | None = None) -> ValueType | None:
    """The natural value type of a C type, or None when it is not a scalar (struct by value, array).

    ``sizer(name) -> (size, signed) | None`` resolves other typedefs (from BTF)."""
    text = " ".join(_QUALIFIERS.sub(" ", ctype).split())
    if text.endswith("*") or "(*)" in text:
        return ValueType("x", 64)
    if "[" in text:
        return None
    if text.startswith("enum "):
        return ValueType("s", 32)
    if text.startswith(("struct ", "union ")):
        return None
    if text in _NAMED:
        size, signed = _NAMED[text]
        return int_type(size, signed)
    if sizer is not None:
        found = sizer(text)
        if found is not None:
            return int_type(*found)
    return None


def is_char_pointer(ctype: str) -> bool:
    text = " ".join(_QUALIFIERS.sub(" ", ctype).split())
    return text in ("char *", "unsigned char *", "signed char *")


_CHAR = ("char", "signed char", "unsigned char", "const char", "const unsigned char", "const signed char")


def is_string_ctype(ctype: str) -> bool:
    """Text the kernel's own tracer prints as a string: char pointers, char arrays, __data_loc char[]."""
    raw = " ".join(ctype.split())
    if raw.startswith(("__data_loc", "__rel_loc")):
        return "char" in raw
    text = " ".join(_QUALIFIERS.sub(" ", raw).split())
    if text.endswith("]"):
        return text.split("[", 1)[0].strip() in ("char", "signed char", "unsigned char", "u8") and "][" not in text
    return text in ("char *", "unsigned char *", "signed char *")
