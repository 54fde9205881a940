"""The filter language: text -> a syntax tree (ktui.probes.filter_ast), never C.

    parse_filter('comm == "bash" && pid != 1')   -> BoolOp("and", ...)
    parse_filter('comm =~ "kwork*" or retval < 0')
    check_filter(node, {"comm": "string", "pid": "int", ...})

The grammar is in filter_ast's docstring. Positions in nodes and errors are
0-based offsets into the text; ParseError shows them as 1-based columns.

A prefix match ``x =~ "abc*"`` becomes ``Compare("prefix", x, StrLit("abc"))``:
the trailing '*' is dropped from the literal, so the compiler sees just the prefix.

Limits keep every input harmless: at most MAX_LENGTH characters and MAX_DEPTH
nested parentheses/negations, so no input can reach Python's recursion limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ktui.errors import ParseError
from ktui.numbers import DECIMAL_OR_HEX, NumberError, parse_int
from ktui.probes.filter_ast import BoolOp, Compare, IntLit, Name, Node, Not, StrLit

MAX_LENGTH = 4096
MAX_DEPTH = 64
MAX_STRING = 256  # longest string literal; the kernel compares bounded strings

INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1

_COMPARE_OPS = ("==", "!=", "<=", ">=", "<", ">")
_WORDS = {"and": "&&", "or": "||", "not": "!"}
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<int>-?(?:0[xX][0-9A-Fa-f]+|[0-9]+)(?![A-Za-z0-9_]))
  | (?P<badnum>-?[0-9][A-Za-z0-9_]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:(?:->|\.)[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<=|>=|=~|&&|\|\||[<>!()])
  | (?P<string>")
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # "int", "name", "op", "string", "end"
    text: str  # the source text (for strings: the decoded value)
    pos: int
    value: int | str | None = None


def _describe(tok: Token) -> str:
    if tok.kind == "end":
        return "end of input"
    if tok.kind == "string":
        return "a string"
    return f"'{_shown(tok)}'"


def _shown(tok: Token) -> str:
    """The token as the user wrote it (`and` stays `and` in messages)."""
    return tok.value if tok.kind == "op" and isinstance(tok.value, str) else tok.text


def tokenize(text: str) -> list[Token]:
    """Split filter text into tokens; the last one is always an "end" token."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        m = _TOKEN.match(text, i)
        if m is None:
            raise ParseError(f"unexpected character {text[i]!r}", text=text, pos=i)
        kind = m.lastgroup
        if kind == "space":
            i = m.end()
            continue
        if kind == "badnum":
            raise ParseError(f"{m.group()!r} is not a number (decimal like 42 or -1, hex like 0x2a)", text=text, pos=i)
        if kind == "int":
            try:  # decimal or 0x hex; a leading 0 is not octal here (010 is ten)
                value = parse_int(m.group(), DECIMAL_OR_HEX, "", None, signed=True)
            except NumberError as err:
                raise ParseError(str(err), text=text, pos=i) from None
            if not INT_MIN <= value <= INT_MAX:
                raise ParseError(f"{m.group()} does not fit in 64 bits", text=text, pos=i)
            tokens.append(Token("int", m.group(), i, value))
            i = m.end()
        elif kind == "string":
            string, end = _read_string(text, i)
            tokens.append(Token("string", text[i:end], i, string))
            i = end
        elif kind == "name" and m.group() in _WORDS:
            tokens.append(Token("op", _WORDS[m.group()], i, m.group()))  # value: the word as written
            i = m.end()
        else:
            tokens.append(Token(kind or "", m.group(), i))
            i = m.end()
    tokens.append(Token("end", "", n))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """Decode the string literal opening at text[start] == '"'; return (value, end offset)."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= len(text):
                break
            esc = text[i + 1]
            if esc not in _ESCAPES:
                raise ParseError(f"unknown escape '\\{esc}' in string (known: \\\" \\\\ \\n \\t)", text=text, pos=i)
            out.append(_ESCAPES[esc])
            i += 2
        elif ord(c) < 32 or c == "\x7f":
            raise ParseError("control character in string (write \\n or \\t)", text=text, pos=i)
        else:
            out.append(c)
            i += 1
        if len(out) > MAX_STRING:
            raise ParseError(f"string longer than {MAX_STRING} characters", text=text, pos=start)
    raise ParseError("string is not closed: expected '\"' but found end of input", text=text, pos=start)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, expected: str, after: Token | None = None) -> ParseError:
        where = f" after '{_shown(after)}'" if after is not None else ""
        found = _describe(self.tok)
        return ParseError(f"expected {expected}{where} but found {found}", text=self.text, pos=self.tok.pos)

    def take(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError(f"nested more than {MAX_DEPTH} levels deep", text=self.text, pos=pos)

    def parse(self) -> Node:
        node = self.or_expr()
        if self.tok.kind != "end":
            if self.at_op(")"):
                raise ParseError("unmatched ')'", text=self.text, pos=self.tok.pos)
            raise self.error("'&&', '||' or end of input")
        return node

    def or_expr(self) -> Node:
        return self._bool("or", "||", self.and_expr)

    def and_expr(self) -> Node:
        return self._bool("and", "&&", self.not_expr)

    def _bool(self, name: str, op: str, sub: Callable[[], Node]) -> Node:
        first = sub()
        args = [first]
        while self.at_op(op):
            op_tok = self.take()
            if self.tok.kind == "end" or self.at_op(")", "&&", "||"):
                raise self.error("a condition", after=op_tok)
            args.append(sub())
        return first if len(args) == 1 else BoolOp(name, tuple(args), _pos(first))

    def not_expr(self) -> Node:
        if self.at_op("!"):
            op_tok = self.take()
            self.enter(op_tok.pos)
            if self.tok.kind == "end" or self.at_op(")", "&&", "||"):
                raise self.error("a condition", after=op_tok)
            arg = self.not_expr()
            self.depth -= 1
            return Not(arg, op_tok.pos)
        return self.compare()

    def compare(self) -> Node:
        left = self.operand()
        if self.at_op(*_COMPARE_OPS):
            op_tok = self.take()
            right = self.operand(after=op_tok)
            node: Node = Compare(op_tok.text, left, right, op_tok.pos)
        elif self.at_op("=~"):
            op_tok = self.take()
            if self.tok.kind != "string":
                raise self.error('a prefix pattern in quotes like "bash*"', after=op_tok)
            pat = self.take()
            value = str(pat.value)
            if not value.endswith("*") or "*" in value[:-1]:
                raise ParseError(f"'=~' takes a prefix pattern ending in '*' (like \"bash*\"), not {pat.text}",
                                 text=self.text, pos=pat.pos)
            node = Compare("prefix", left, StrLit(value[:-1], pat.pos), op_tok.pos)
        else:
            return left
        if self.at_op(*_COMPARE_OPS, "=~"):
            raise ParseError("comparisons do not chain: join them with '&&'", text=self.text, pos=self.tok.pos)
        return node

    def operand(self, after: Token | None = None) -> Node:
        tok = self.tok
        if tok.kind == "name":
            self.take()
            return Name(_member_name(tok, self.text), tok.pos)
        if tok.kind == "int":
            self.take()
            return IntLit(int(tok.value), tok.pos)  # type: ignore[arg-type]  # an int token's value is its digits or number
        if tok.kind == "string":
            self.take()
            return StrLit(str(tok.value), tok.pos)
        if self.at_op("("):
            self.take()
            self.enter(tok.pos)
            if self.at_op(")"):
                raise self.error("a condition", after=tok)
            inner = self.or_expr()
            if not self.at_op(")"):
                raise self.error(f"')' to close the '(' at column {tok.pos + 1}")
            self.take()
            self.depth -= 1
            return inner
        raise self.error("a value" if after else "a condition", after=after)


def _member_name(tok: Token, text: str) -> str:
    """A name as the compiler looks it up: bpftrace's ``args->X`` / ``args.X`` is the probe's
    own argument or field X (``args->skb->len`` is ``skb->len``); a struct member path is kept
    as written and resolved against BTF when the filter is checked at its probe."""
    name = tok.text
    if "-" not in name and "." not in name:
        return name
    from ktui.probes.resolve import MAX_MEMBER_DEPTH, split_member_name

    split = split_member_name(name)
    if split is None:
        raise ParseError(f"{name} goes deeper than {MAX_MEMBER_DEPTH} struct members", text=text, pos=tok.pos)
    for prefix in ("args->", "args."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def _pos(node: Node) -> int:
    return getattr(node, "pos", 0)


def parse_filter(text: str) -> Node | None:
    """Parse filter text; an empty (or all-blank) filter is None (keep every event)."""
    if not isinstance(text, str):
        raise ParseError("a filter must be text")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"filter is longer than {MAX_LENGTH} characters", text=text[:80], pos=MAX_LENGTH)
    if not text.strip():
        return None
    return _Parser(text).parse()


# ---------------------------------------------------------------------------
# Checking a parsed filter against what a probe actually has.

def _type_of(node: Node, names: dict[str, str], text: str) -> str:
    """"int" or "string" for an operand/condition; raises ParseError on any mismatch."""
    match node:
        case Name(name, pos):
            if name not in names:
                avail = ", ".join(sorted(names)) or "nothing"
                raise ParseError(f"unknown name '{name}' (available here: {avail})", text=text, pos=pos)
            kind = names[name]
            return "string" if kind == "string" else "int"
        case IntLit():
            return "int"
        case StrLit():
            return "string"
        case Compare(op, left, right, pos):
            lt = _type_of(left, names, text)
            if op == "prefix":
                if lt != "string":
                    raise ParseError(f"'=~' prefix match needs a string on its left, and {_show(left)} is an integer",
                                     text=text, pos=pos)
                return "int"
            rt = _type_of(right, names, text)
            if lt != rt:
                raise ParseError(f"cannot compare {_show(left)} ({lt}) with {_show(right)} ({rt})", text=text, pos=pos)
            if lt == "string" and op not in ("==", "!="):
                raise ParseError(f"strings compare only with '==', '!=' or '=~', not '{op}'", text=text, pos=pos)
            return "int"
        case BoolOp(_, args):
            for arg in args:
                _condition(arg, names, text)
            return "int"
        case Not(arg):
            _condition(arg, names, text)
            return "int"
    raise ParseError(f"not a filter expression: {node!r}", text=text)


def _condition(node: Node, names: dict[str, str], text: str) -> None:
    if _type_of(node, names, text) == "string":
        raise ParseError(f"{_show(node)} is a string, not a condition: compare it, like {_show(node)} == \"bash\"",
                         text=text, pos=_pos(node))


def _show(node: Node) -> str:
    match node:
        case Name(name):
            return f"'{name}'"
        case IntLit(value):
            return str(value)
        case StrLit(value):
            return format_string(value)
    return "the expression"


def check_filter(node: Node | None, names: dict[str, str], *, text: str = "") -> None:
    """Check names and types: names maps each available name to "int" or "string".

    Raises ParseError for an unknown name (listing the available ones), for a string
    compared with an integer, for ordering comparisons on strings, for a prefix match
    on an integer and for a bare string used as a condition.
    """
    if node is None:
        return
    _condition(node, names, text)
    _literals_fit(node, names, text)


def _literals_fit(node: Node, names: dict[str, str], text: str) -> None:
    """A string literal longer than the recorded string can hold would never match: one sentence."""
    from ktui.probes.model import COMM_SIZE, STRING_SIZE

    match node:
        case Compare(_, Name(name), StrLit(value)) | Compare(_, StrLit(value), Name(name)) if names.get(name) == "string":
            size = COMM_SIZE if name == "comm" else STRING_SIZE
            n = len(value.encode("utf-8", "surrogatepass"))
            if n >= size:
                raise ParseError(f"{name} holds at most {size - 1} bytes and the literal has {n}, so it can never "
                                 f"match; compare its first {size - 1} bytes with =~ \"...*\"", text=text, pos=_pos(node))
        case BoolOp(_, args):
            for a in args:
                _literals_fit(a, names, text)
        case Not(arg):
            _literals_fit(arg, names, text)


# ---------------------------------------------------------------------------
# Back to text (for display and session files): parse_filter(format_filter(n)) == n
# up to positions.

def format_string(value: str) -> str:
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'


def format_filter(node: Node | None) -> str:
    if node is None:
        return ""
    return _fmt(node, 0)


_PREC = {"or": 1, "and": 2}


def _fmt(node: Node, outer: int) -> str:
    match node:
        case Name(name):
            return name
        case IntLit(value):
            return str(value)
        case StrLit(value):
            return format_string(value)
        case Compare("prefix", left, StrLit(value)):
            return f"{_fmt(left, 4)} =~ {format_string(value + '*')}"
        case Compare(op, left, right):
            text = f"{_fmt(left, 4)} {op} {_fmt(right, 4)}"
            return f"({text})" if outer > 3 else text
        case BoolOp(op, args):
            prec = _PREC[op]
            text = f" {'&&' if op == 'and' else '||'} ".join(_fmt(a, prec + 1) for a in args)
            return f"({text})" if outer > prec else text
        case Not(arg):
            text = f"!{_fmt(arg, 5)}"
            return f"({text})" if outer >= 4 else text  # an operand of a comparison is an atom
    raise ParseError(f"not a filter expression: {node!r}")
