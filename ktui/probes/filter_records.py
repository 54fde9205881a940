"""The filter language evaluated over recorded events (numpy records) in user space.

The kernel evaluates a probe's filter in its BPF program (ktui/compiler/filter_codegen.py);
some decisions are taken on events already delivered: the flight recorder's trigger
(`ktui record --trigger`). Same language, same parser and checker (ktui.probes.filter):
only the names a record holds are available - the header's comm, pid, tid, uid and cpu,
and the probe's fetched values by name - so a name a probe did not record is one sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ktui.errors import ParseError
from ktui.events import ProbeLayout
from ktui.probes.filter import check_filter
from ktui.probes.filter_ast import BoolOp, Compare, IntLit, Name, Node, Not, StrLit

HEADER_NAMES = {"comm": "string", "pid": "int", "tid": "int", "uid": "int", "cpu": "int"}

RecordsFilter = Callable[[np.ndarray], np.ndarray]  # records -> boolean mask, one per record


def record_names(layout: ProbeLayout) -> dict[str, str]:
    """name -> "int" | "string": what a filter can name in this probe's records."""
    names = dict(HEADER_NAMES)
    for f in layout.fields:
        names[f.name] = "string" if f.display == "string" or np.dtype(f.dtype).kind == "S" else "int"
    return names


def records_filter(node: Node | None, layout: ProbeLayout, text: str = "") -> RecordsFilter:
    """A function giving the mask of records for which the filter holds; ParseError (one sentence)
    for a name this probe's records do not hold or a type mismatch."""
    check_filter(node, record_names(layout), text=text)
    if node is None:
        return lambda records: np.ones(len(records), dtype=bool)
    return lambda records: np.asarray(_eval(node, records), dtype=bool) & np.ones(len(records), dtype=bool)


def _operand(node: Node, records: np.ndarray) -> Any:
    match node:
        case Name(name):
            return records[name]
        case IntLit(value):
            return value
        case StrLit(value):
            return value.encode("utf-8")
    return _eval(node, records)


def _eval(node: Node, records: np.ndarray) -> Any:
    match node:
        case Compare("prefix", left, StrLit(value)):
            return np.char.startswith(_operand(left, records), value.encode("utf-8"))
        case Compare(op, left, right):
            a, b = _operand(left, records), _operand(right, records)
            return {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
                    ">": np.greater, ">=": np.greater_equal}[op](a, b)
        case BoolOp("and", args):
            out = np.ones(len(records), dtype=bool)
            for arg in args:
                out &= np.asarray(_eval(arg, records), dtype=bool)
            return out
        case BoolOp(_, args):
            out = np.zeros(len(records), dtype=bool)
            for arg in args:
                out |= np.asarray(_eval(arg, records), dtype=bool)
            return out
        case Not(arg):
            return ~np.asarray(_eval(arg, records), dtype=bool)
        case Name() | IntLit() | StrLit():
            return np.asarray(_operand(node, records)) != 0  # checked before: never a bare string
    raise ParseError(f"not a filter expression: {node!r}")
