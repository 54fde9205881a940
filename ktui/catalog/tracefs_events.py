"""Tracepoints from tracefs: the event list, and each event's fields from its format file."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ktui.errors import FileFormatError


@dataclass(frozen=True)
class TraceField:
    name: str
    ctype: str
    offset: int
    size: int
    signed: bool
    common: bool = False


_FIELD = re.compile(r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);\s*signed:(?P<signed>-?\d+);", re.M)
_ARR = re.compile(r"^(?P<type>.*?)\s*(?P<name>[A-Za-z_]\w*)\s*(?P<dims>(?:\[[^\]]*\])+)$")
_PLAIN = re.compile(r"^(?P<type>.*?[\s\*])(?P<name>[A-Za-z_]\w*)$")


def split_decl(decl: str) -> tuple[str, str]:
    """``const char * filename`` -> (``const char *``, ``filename``); ``char comm[16]`` -> (``char[16]``, ``comm``)."""
    decl = " ".join(decl.split())
    m = _ARR.match(decl)
    if m:
        return f"{m['type'].strip()}{m['dims']}", m["name"]
    m = _PLAIN.match(decl)
    if m:
        return m["type"].strip(), m["name"]
    return decl, decl


def parse_format(text: str) -> list[TraceField]:
    fields = []
    for m in _FIELD.finditer(text):
        ctype, name = split_decl(m["decl"])
        fields.append(TraceField(name, ctype, int(m["off"]), int(m["size"]), m["signed"] not in ("0",),
                                 common=name.startswith("common_")))
    return fields


def read_format(tracefs: str, group: str, event: str) -> list[TraceField]:
    path = os.path.join(tracefs, "events", group, event, "format")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_format(f.read())
    except OSError as err:
        raise FileFormatError(f"cannot read {path}: {err.strerror}.") from None


def list_events(tracefs: str) -> list[str]:
    """``group:event`` names, from available_events (what bpftrace lists), else the events tree."""
    path = os.path.join(tracefs, "available_events")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.strip() for line in f if ":" in line]
    except OSError as first:
        events_dir = os.path.join(tracefs, "events")
        try:
            groups = os.listdir(events_dir)
        except OSError:
            raise FileFormatError(
                f"cannot read the tracepoint list: {path}: {first.strerror}, and {events_dir} is unreadable."
            ) from None
        out: list[str] = []
        for g in groups:
            gd = os.path.join(events_dir, g)
            if not os.path.isdir(gd):
                continue
            try:
                out.extend(f"{g}:{e}" for e in os.listdir(gd) if os.path.isdir(os.path.join(gd, e)))
            except OSError:
                continue
        return out
