"""Filter syntax trees -> one C condition. Names become record members or locals the
compiler chose; literals become numbers (strings are compared byte by byte against
numeric constants), so no filter text ever reaches the program as C."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ktui.errors import KtuiError
from ktui.probes.filter_ast import BoolOp, Compare, IntLit, Name, Node, Not, StrLit

_C_OPS = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class Operand:
    """What a filter name means in C: an expression, its kind, signedness, and for
    strings the size of the char array holding it."""
    c: str
    kind: str  # "int" | "string"
    signed: bool = False
    size: int = 0


def _char(byte: int) -> str:
    c = chr(byte)
    return f"'{c}'" if c.isascii() and (c.isalnum() or c in "_-. ") else str(byte)


def _int_literal(value: int) -> str:
    if 0 <= value < (1 << 31):
        return str(value)
    if value < 0:
        return f"({value}LL)" if value > -(1 << 63) else "(-9223372036854775807LL - 1)"
    return f"{value}ULL"


def _string_compare(op: Operand, lit: str, prefix: bool) -> str:
    data = lit.encode("utf-8", "surrogatepass")
    if len(data) >= op.size:
        return "0"  # longer than the stored (NUL-terminated) string can be: never equal
    # Byte by byte, differences OR-ed together and tested once: a chain of branches
    # (one per byte) makes the verifier walk too many paths. KTUI_BYTE reads through a
    # volatile pointer, else clang merges the loads into forms the verifier refuses.
    # Plain letters and digits are shown as character literals, other bytes as numbers.
    terms = [f"(KTUI_BYTE({op.c}, {i}) ^ {_char(b)})" for i, b in enumerate(data)]
    if not prefix:
        terms.append(f"KTUI_BYTE({op.c}, {len(data)})")
    if not terms:
        return "1"
    return "((" + " | ".join(terms) + ") == 0)"


def filter_condition(node: Node, resolve: Callable[[str], Operand]) -> str:
    """C for ``node``; ``resolve(name) -> Operand`` gives each name's meaning."""

    def operand(n: Node) -> Operand:
        match n:
            case Name(name):
                return resolve(name)
            case IntLit(value):
                return Operand(_int_literal(value), "int", value < 0)
            case StrLit(value):
                return Operand("", "string")
        return Operand(f"({cond(n)})", "int")

    def cond(n: Node) -> str:
        match n:
            case BoolOp(op, args):
                joiner = " && " if op == "and" else " || "
                return "(" + joiner.join(cond(a) for a in args) + ")"
            case Not(arg):
                return f"!{cond(arg)}"
            case Compare(op, left, right):
                return compare(op, left, right)
            case Name() | IntLit():
                return f"({operand(n).c} != 0)"
        raise KtuiError(f"a string alone is not a condition: {n!r}")

    def fits(lo: Operand, left: Node, lit: str) -> None:
        """A literal longer than the recorded string can hold would never match: say so."""
        n = len(lit.encode("utf-8", "surrogatepass"))
        if lo.size and n >= lo.size:
            what = left.name if isinstance(left, Name) else "the string"
            raise KtuiError(f"{what} holds at most {lo.size - 1} bytes and the literal has {n}, so it can never "
                            f"match; compare its first {lo.size - 1} bytes with =~ \"...*\"")

    def compare(op: str, left: Node, right: Node) -> str:
        if op == "prefix":
            lo = operand(left)
            if lo.kind != "string" or not isinstance(right, StrLit):
                raise KtuiError("'=~' compares a string value with a \"prefix*\" literal")
            fits(lo, left, right.value)
            return _string_compare(lo, right.value, prefix=True)
        if isinstance(left, StrLit) and not isinstance(right, StrLit):
            left, right = right, left
        lo = operand(left)
        if lo.kind == "string" or isinstance(right, StrLit):
            if lo.kind != "string":
                raise KtuiError("only strings compare with a string")
            if isinstance(right, StrLit):
                fits(lo, left, right.value)
                eq = _string_compare(lo, right.value, prefix=False)
            else:
                ro = operand(right)
                if ro.kind != "string":
                    raise KtuiError("a string compares only with a string")
                eq = f"ktui_str_eq({lo.c}, {ro.c}, {min(lo.size, ro.size)})"
            if op == "==":
                return eq
            if op == "!=":
                return f"!{eq}"
            raise KtuiError(f"strings compare only with == and !=, not {op}")
        ro = operand(right)
        if ro.kind == "string":
            raise KtuiError("an integer compares only with an integer")
        cast = "(s64)" if (lo.signed or ro.signed) else "(u64)"
        return f"({cast}{lo.c} {_C_OPS[op]} {cast}{ro.c})"

    return cond(node)
