"""The filter language: exact trees, exact error sentences, and no input that escapes as a traceback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ktui.errors import KtuiError, ParseError
from ktui.probes.filter import MAX_DEPTH, MAX_LENGTH, check_filter, format_filter, parse_filter
from ktui.probes.filter_ast import BoolOp, Compare, IntLit, Name, Not, StrLit, names_in

NAMES = {"comm": "string", "pid": "int", "tid": "int", "cpu": "int", "uid": "int", "retval": "int",
         "filename": "string", "count": "int"}


def strip(node):
    """The tree without positions, for comparing shapes."""
    match node:
        case Name(n):
            return Name(n)
        case IntLit(v):
            return IntLit(v)
        case StrLit(v):
            return StrLit(v)
        case Compare(op, left, right):
            return Compare(op, strip(left), strip(right))
        case BoolOp(op, args):
            return BoolOp(op, tuple(strip(a) for a in args))
        case Not(arg):
            return Not(strip(arg))
    return node


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_is_none(text):
    assert parse_filter(text) is None
    check_filter(None, NAMES)


def test_golden_tree_with_positions():
    assert parse_filter('comm == "bash" && pid != 1') == BoolOp(
        "and",
        (Compare("==", Name("comm", 0), StrLit("bash", 8), 5), Compare("!=", Name("pid", 18), IntLit(1, 25), 22)),
        5,
    )


@pytest.mark.parametrize("text, tree", [
    ("pid == 42", Compare("==", Name("pid"), IntLit(42))),
    ("pid == 0x2a", Compare("==", Name("pid"), IntLit(42))),
    ("retval < -1", Compare("<", Name("retval"), IntLit(-1))),
    ("retval<-0x10", Compare("<", Name("retval"), IntLit(-16))),
    ("pid == 010", Compare("==", Name("pid"), IntLit(10))),  # decimal, not octal
    ("count >= 18446744073709551615", Compare(">=", Name("count"), IntLit((1 << 64) - 1))),
    ("retval > -9223372036854775808", Compare(">", Name("retval"), IntLit(-(1 << 63)))),
    ('comm =~ "kwork*"', Compare("prefix", Name("comm"), StrLit("kwork"))),
    ('comm =~ "*"', Compare("prefix", Name("comm"), StrLit(""))),
    ('filename == "a\\"b\\\\c\\n"', Compare("==", Name("filename"), StrLit('a"b\\c\n'))),
    ("pid", Name("pid")),
    ("!pid", Not(Name("pid"))),
    ("not pid", Not(Name("pid"))),
    ("a || b && c", BoolOp("or", (Name("a"), BoolOp("and", (Name("b"), Name("c")))))),
    ("a or b and c", BoolOp("or", (Name("a"), BoolOp("and", (Name("b"), Name("c")))))),
    ("(a || b) && c", BoolOp("and", (BoolOp("or", (Name("a"), Name("b"))), Name("c")))),
    ("a && b && c", BoolOp("and", (Name("a"), Name("b"), Name("c")))),
    ("!!a", Not(Not(Name("a")))),
    ("!(pid == 1)", Not(Compare("==", Name("pid"), IntLit(1)))),
    ("((((pid))))", Name("pid")),
    ("cpu==0||cpu==1", BoolOp("or", (Compare("==", Name("cpu"), IntLit(0)), Compare("==", Name("cpu"), IntLit(1))))),
])
def test_trees(text, tree):
    assert strip(parse_filter(text)) == tree


@pytest.mark.parametrize("text, message", [
    ("comm == ", "column 9: expected a value after '==' but found end of input"),
    ("pid ==", "column 7: expected a value after '==' but found end of input"),
    ("pid == 1 &&", "column 12: expected a condition after '&&' but found end of input"),
    ("pid == 1 pid", "column 10: expected '&&', '||' or end of input but found 'pid'"),
    ("(pid == 1", "column 10: expected ')' to close the '(' at column 1 but found end of input"),
    ("pid == 1)", "column 9: unmatched ')'"),
    ("pid == 1 == 2", "column 10: comparisons do not chain: join them with '&&'"),
    ('comm == "bash', "column 9: string is not closed: expected '\"' but found end of input"),
    ('comm =~ "ba*sh"', "column 9: '=~' takes a prefix pattern ending in '*' (like \"bash*\"), not \"ba*sh\""),
    ('comm =~ "bash"', "column 9: '=~' takes a prefix pattern ending in '*' (like \"bash*\"), not \"bash\""),
    ("comm =~ bash", "column 9: expected a prefix pattern in quotes like \"bash*\" after '=~' but found 'bash'"),
    ('comm == "\\q"', "column 10: unknown escape '\\q' in string (known: \\\" \\\\ \\n \\t)"),
    ("pid == 12abc", "column 8: '12abc' is not a number (decimal like 42 or -1, hex like 0x2a)"),
    ("pid == 18446744073709551616", "column 8: 18446744073709551616 does not fit in 64 bits"),
    ("pid = 1", "column 5: unexpected character '='"),
    ("pid == 1 & 2", "column 10: unexpected character '&'"),
    ("()", "column 2: expected a condition after '(' but found ')'"),
    ("&& pid", "column 1: expected a condition but found '&&'"),
    ("pid == 1 and", "column 13: expected a condition after 'and' but found end of input"),
    ("not", "column 4: expected a condition after 'not' but found end of input"),
])
def test_errors_name_column_and_expectation(text, message):
    with pytest.raises(ParseError) as info:
        parse_filter(text)
    assert str(info.value) == message
    assert info.value.caret().splitlines()[0] == text


def test_length_and_depth_limits_are_sentences_not_recursion_errors():
    with pytest.raises(ParseError, match="longer than"):
        parse_filter("pid == 1 || " * (MAX_LENGTH // 12 + 1) + "pid == 1")
    with pytest.raises(ParseError, match=f"nested more than {MAX_DEPTH} levels"):
        parse_filter("(" * (MAX_DEPTH + 1) + "pid" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ParseError, match="nested more than"):
        parse_filter("!" * 1000 + "pid")
    deep_ok = "(" * MAX_DEPTH + "pid" + ")" * MAX_DEPTH
    assert strip(parse_filter(deep_ok)) == Name("pid")
    # Long flat chains are fine: they do not nest.
    chain = " || ".join(f"pid == {i}" for i in range(300))
    assert len(parse_filter(chain).args) == 300


def test_string_literal_length_limit():
    assert strip(parse_filter('comm == "' + "a" * 256 + '"')) == Compare("==", Name("comm"), StrLit("a" * 256))
    with pytest.raises(ParseError) as info:
        parse_filter('comm == "' + "a" * 257 + '"')
    assert str(info.value) == "column 9: string longer than 256 characters"
    with pytest.raises(ParseError, match="column 10: control character in string"):
        parse_filter('comm == "\x01"')


def test_check_filter_accepts_good_types():
    for text in ['comm == "bash" && pid != 1', 'comm =~ "kw*" || retval < 0', "!pid", 'filename != comm',
                 "(cpu == 0) == 1", "1"]:
        check_filter(parse_filter(text), NAMES)


@pytest.mark.parametrize("text, message", [
    ("bogus == 1", "column 1: unknown name 'bogus' (available here: comm, count, cpu, filename, pid, retval, tid, uid)"),
    ('pid == "x"', "column 5: cannot compare 'pid' (int) with \"x\" (string)"),
    ("comm == 1", "column 6: cannot compare 'comm' (string) with 1 (int)"),
    ('pid =~ "1*"', "column 5: '=~' prefix match needs a string on its left, and 'pid' is an integer"),
    ('comm < "b"', "column 6: strings compare only with '==', '!=' or '=~', not '<'"),
    ("comm", "column 1: 'comm' is a string, not a condition: compare it, like 'comm' == \"bash\""),
    ('pid == 1 && "x"', "column 13: \"x\" is a string, not a condition: compare it, like \"x\" == \"bash\""),
    ("!comm", "column 2: 'comm' is a string, not a condition: compare it, like 'comm' == \"bash\""),
])
def test_check_filter_errors(text, message):
    with pytest.raises(ParseError) as info:
        check_filter(parse_filter(text), NAMES, text=text)
    assert str(info.value) == message


def test_names_in_finds_every_name():
    node = parse_filter('comm == "x" && (pid > tid || !cpu)')
    assert [n.name for n in names_in(node)] == ["comm", "pid", "tid", "cpu"]


@pytest.mark.parametrize("text", [
    'comm == "bash" && pid != 1', "a || b && c", "(a || b) && c", "!(a && b)", "!!a", 'x =~ "p*"',
    "(a == b) == c", "-5 < retval", 'f == "q\\"\\\\\\n\\t"', "a && (b && c)",
])
def test_format_round_trip(text):
    node = parse_filter(text)
    again = parse_filter(format_filter(node))
    assert strip(again) == strip(node)


# ---------------------------------------------------------------------------
# Property tests: any text gives a tree, None or a ParseError; never another exception.

ATOMS = st.sampled_from(["pid", "comm", "tid", "1", "-1", "0x10", '"a"', '"b*"', "(", ")", "!", "not", "and",
                         "or", "&&", "||", "==", "!=", "<", "<=", ">", ">=", "=~", " ", '"', "\\", "9" * 25])


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_parse_error(text):
    try:
        node = parse_filter(text)
    except ParseError:
        return
    if node is not None:
        try:
            check_filter(node, NAMES, text=text)
        except ParseError:
            pass
        assert strip(parse_filter(format_filter(node))) == strip(node)


@settings(max_examples=400, deadline=None)
@given(st.lists(ATOMS, max_size=40).map(" ".join))
def test_token_soup_parses_or_raises_parse_error(text):
    try:
        node = parse_filter(text)
    except KtuiError as err:
        assert isinstance(err, ParseError) and err.pos is not None
        assert 0 <= err.pos <= len(text)
        return
    if node is not None:
        assert strip(parse_filter(format_filter(node))) == strip(node)


def _trees():
    leaf = st.one_of(
        st.sampled_from(["pid", "tid", "cpu", "comm", "retval"]).map(Name),
        st.integers(-(1 << 63), (1 << 64) - 1).map(IntLit),
        st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8).map(StrLit),
    )

    def extend(children):
        return st.one_of(
            st.tuples(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), children, children)
              .map(lambda t: Compare(t[0], t[1], t[2])),
            st.lists(children, min_size=2, max_size=4).map(lambda a: BoolOp("and", tuple(a))),
            st.lists(children, min_size=2, max_size=4).map(lambda a: BoolOp("or", tuple(a))),
            children.map(Not),
        )

    return st.recursive(leaf, extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_trees())
def test_generated_trees_print_and_parse_back(tree):
    text = format_filter(tree)
    try:
        parsed = parse_filter(text)
    except ParseError as err:  # only the nesting limit may refuse a generated tree
        assert "nested" in str(err)
        return
    assert strip(parsed) == strip(tree)  # the printer keeps the exact shape
