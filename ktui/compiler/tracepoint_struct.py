"""A tracepoint's context as a packed C struct built from its tracefs format file.

We declare the struct ourselves (instead of BCC's TRACEPOINT_PROBE, which also
auto-attaches at load) so each probe is a plain function the engine attaches
explicitly. Offsets come from the running kernel's format file, so they are exact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ktui.catalog.tracefs_events import TraceField, read_format
from ktui.errors import KtuiError
from ktui.kernel import tracefs_path
from ktui.probes.model import ValueType

from ktui.compiler.layout import int_type


@dataclass(frozen=True)
class TpField:
    """One tracepoint field as the compiler uses it."""
    name: str  # as the kernel names it
    member: str  # the C member in our struct
    ctype: str
    offset: int
    size: int
    signed: bool

    @property
    def is_data_loc(self) -> bool:
        return self.ctype.startswith(("__data_loc", "__rel_loc"))

    @property
    def is_char_array(self) -> bool:
        return self.ctype.startswith(("char[", "unsigned char[", "const char[", "u8[")) or (
            self.ctype.startswith("char") and self.ctype.endswith("]"))

    @property
    def is_pointer(self) -> bool:
        return self.ctype.rstrip().endswith("*")

    def value_type(self) -> ValueType | None:
        """The natural type of the value: strings for char arrays and __data_loc strings."""
        if self.is_data_loc:
            return ValueType("string", 0) if "char" in self.ctype else None
        if self.is_char_array:
            return ValueType("string", 0)
        if "[" in self.ctype:
            return None
        if self.is_pointer:
            return ValueType("x", 64)
        if self.size not in (1, 2, 4, 8):
            return None
        return int_type(self.size, self.signed)


def read_fields(event: str, tracefs: str | None = None) -> list[TpField]:
    """Fields of tracepoint ``cat:ev`` from tracefs; a KtuiError when it does not exist."""
    group, _, name = event.partition(":")
    tracefs = tracefs or tracefs_path()
    if tracefs is None:
        raise KtuiError("tracefs is not mounted and cannot be mounted here, so tracepoint fields are unknown.")
    try:
        raw = read_format(tracefs, group, name)
    except KtuiError as err:
        if os.path.isdir(os.path.join(tracefs, "events", group, name)) or "ermission" in str(err):
            raise KtuiError(f"the fields of tracepoint {event} are unreadable ({err.message.rstrip('.')}); "
                            "reading tracefs needs root here") from None
        raise KtuiError(f"there is no tracepoint {event} in this kernel.") from None
    return [_convert(f) for f in raw]


def _convert(f: TraceField) -> TpField:
    return TpField(f.name, f"f_{f.name}", f.ctype, f.offset, f.size, f.signed)


def _member_decl(f: TpField) -> str:
    if f.is_char_array:
        return f"char {f.member}[{f.size}]"
    if f.is_data_loc:
        return f"u32 {f.member}"
    if f.size in (1, 2, 4, 8) and "[" not in f.ctype:
        return f"{'s' if f.signed and not f.is_pointer else 'u'}{f.size * 8} {f.member}"
    return f"u8 {f.member}[{f.size}]"


def struct_text(tag: str, event: str, fields: list[TpField]) -> str:
    """``struct <tag> {...} __attribute__((packed))`` with explicit padding at the kernel's offsets."""
    lines = [f"/* tracepoint {event}: fields and offsets from its tracefs format file */", f"struct {tag} {{"]
    pos = 0
    common_end = max((f.offset + f.size for f in fields if f.name.startswith("common_")), default=0)
    if common_end:
        lines.append(f"    u8 __common[{common_end}];")
        pos = common_end
    for f in fields:
        if f.name.startswith("common_"):
            continue
        if f.offset < pos:  # overlapping fields (unions): the kernel never emits them, skip defensively
            continue
        if f.offset > pos:
            lines.append(f"    u8 __pad{pos}[{f.offset - pos}];")
        lines.append(f"    {_member_decl(f)};  /* {f.ctype} {f.name} */")
        pos = f.offset + f.size
    lines.append("} __attribute__((packed));")
    return "\n".join(lines)


def visible_fields(fields: list[TpField]) -> list[TpField]:
    """The event's own fields, in order (what $argN counts)."""
    return [f for f in fields if not f.name.startswith("common_") and f.name != "__syscall_nr"]
