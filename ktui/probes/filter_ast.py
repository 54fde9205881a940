"""The filter language's syntax tree (parsed by ktui.probes.filter, turned into C by the compiler).

Grammar (informal):
    expr    := or
    or      := and ('||' and)*          also the word `or`
    and     := not ('&&' not)*          also the word `and`
    not     := '!' not | cmp            also the word `not`
    cmp     := operand (('=='|'!='|'<'|'<='|'>'|'>=') operand)?
             | operand '=~' STRING      prefix match, STRING ends in '*': comm =~ "bash*"
    operand := NAME | INT | STRING | '(' expr ')'
NAME is a fetch name of the probe, a builtin (comm pid tid uid gid cpu), an argument
name, a tracepoint field, `retval`, `latency`, or `argN`. Strings only compare with
strings (comm, string fetches); integers with integers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Name:
    name: str
    pos: int = 0


@dataclass(frozen=True)
class IntLit:
    value: int
    pos: int = 0


@dataclass(frozen=True)
class StrLit:
    value: str
    pos: int = 0


@dataclass(frozen=True)
class Compare:
    op: str  # == != < <= > >=, or "prefix" for =~ "abc*"
    left: Node
    right: Node
    pos: int = 0


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    args: tuple[Node, ...]
    pos: int = 0


@dataclass(frozen=True)
class Not:
    arg: Node
    pos: int = 0


Node = Name | IntLit | StrLit | Compare | BoolOp | Not


def names_in(node: Node) -> list[Name]:
    """Every name the expression refers to, in order (for validation against a probe)."""
    match node:
        case Name():
            return [node]
        case Compare(_, left, right):
            return names_in(left) + names_in(right)
        case BoolOp(_, args):
            return [n for a in args for n in names_in(a)]
        case Not(arg):
            return names_in(arg)
        case _:
            return []
