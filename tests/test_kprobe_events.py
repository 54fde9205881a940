"""kprobe_events lines (Documentation/trace/kprobetrace.rst): exact probes, exact refusals, round trips."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ktui.errors import KtuiError, ParseError, UsageError
from ktui.probes.kprobe_events import (
    KERNEL_MAX_ARG_TEXT,
    X86_64_REGISTERS,
    default_event_name,
    format_kprobe_event,
    parse_kprobe_event,
    parse_kprobe_events,
)
from ktui.probes.model import (
    STRING,
    X64,
    Arg,
    Builtin,
    Deref,
    Fetch,
    Imm,
    Member,
    Probe,
    ProbeKind,
    Reg,
    Retval,
    StackPtr,
    StackSlot,
    SymAddr,
    ValueType,
)

SEED_LINE = ("p:myprobe tcp_select_initial_window sk=+0(%di):x64 space=%si:s32 mss=%dx:u32 rcv_wnd=+0(%cx):u32 "
             "window_clamp=+0(%r8):u32 wscale_ok=%r9:s32 rsv_wscale=+0(+0(%sp)):u8 init_rcv_wnd=+4(%sp):u32")


def T(s: str) -> ValueType:
    return ValueType.parse(s)


def test_seed_line_golden():
    """The kprobe_events line from the seed article (../shared/seeds/002): every fetch exactly."""
    probe = parse_kprobe_event(SEED_LINE)
    assert probe == Probe(
        kind=ProbeKind.KPROBE,
        target="tcp_select_initial_window",
        name="myprobe",
        fetches=[
            Fetch("sk", Deref(0, Reg("di")), T("x64")),
            Fetch("space", Reg("si"), T("s32")),
            Fetch("mss", Reg("dx"), T("u32")),
            Fetch("rcv_wnd", Deref(0, Reg("cx")), T("u32")),
            Fetch("window_clamp", Deref(0, Reg("r8")), T("u32")),
            Fetch("wscale_ok", Reg("r9"), T("s32")),
            Fetch("rsv_wscale", Deref(0, Deref(0, Reg("sp"))), T("u8")),
            Fetch("init_rcv_wnd", Deref(4, Reg("sp")), T("u32")),
        ],
        source=SEED_LINE,
    )
    assert format_kprobe_event(probe) == SEED_LINE
    assert Probe.from_dict(probe.to_dict()) == probe


def test_doc_examples():
    p = parse_kprobe_event("p:myprobe do_sys_open dfd=%ax filename=%dx flags=%cx mode=+4($stack)")
    assert [(f.name, f.expr, f.type) for f in p.fetches] == [
        ("dfd", Reg("ax"), X64), ("filename", Reg("dx"), X64), ("flags", Reg("cx"), X64),
        ("mode", Deref(4, StackPtr()), X64)]
    r = parse_kprobe_event("r:myretprobe do_sys_open $retval")
    assert (r.kind, r.name, r.target, r.fetches) == (ProbeKind.KRETPROBE, "myretprobe", "do_sys_open",
                                                     [Fetch("arg1", Retval(), X64)])


@pytest.mark.parametrize("line, expected", [
    ("p do_sys_open", Probe(ProbeKind.KPROBE, "do_sys_open", name="p_do_sys_open_0")),
    ("p:grp/ev do_sys_open+0x10 %di", Probe(ProbeKind.KPROBE, "do_sys_open", name="ev", group="grp", offset=16,
                                            fetches=[Fetch("arg1", Reg("di"), X64)])),
    ("p ext4:ext4_file_write_iter", Probe(ProbeKind.KPROBE, "ext4_file_write_iter", module="ext4",
                                          name="p_ext4_ext4_file_write_iter_0")),
    ("p 0xffffffff81000000", Probe(ProbeKind.KPROBE, "", address=0xFFFFFFFF81000000, name="p_0xffffffff81000000")),
    ("r100 vfs_read", Probe(ProbeKind.KRETPROBE, "vfs_read", maxactive=100, name="r_vfs_read_0")),
    ("r vfs_read+0", Probe(ProbeKind.KRETPROBE, "vfs_read", name="r_vfs_read_0")),
    ("p:ev vfs_read%return $retval:s64", Probe(ProbeKind.KRETPROBE, "vfs_read", name="ev",
                                               fetches=[Fetch("arg1", Retval(), T("s64"))])),
    ("p f $arg1 $arg2:u32 $stack3 $stack $comm", Probe(ProbeKind.KPROBE, "f", name="p_f_0", fetches=[
        Fetch("arg1", Arg(index=1), X64), Fetch("arg2", Arg(index=2), T("u32")), Fetch("arg3", StackSlot(3), X64),
        Fetch("arg4", StackPtr(), X64), Fetch("arg5", Builtin("comm"), STRING)])),
    ("p f @jiffies @jiffies+8:u32 @x-0x10 @0x1000:s8 \\42 \\-1:s64 \\0x10", Probe(ProbeKind.KPROBE, "f", name="p_f_0", fetches=[
        Fetch("arg1", SymAddr(symbol="jiffies"), X64), Fetch("arg2", SymAddr(symbol="jiffies", offset=8), T("u32")),
        Fetch("arg3", SymAddr(symbol="x", offset=-16), X64), Fetch("arg4", SymAddr(address=0x1000), T("s8")),
        Fetch("arg5", Imm(42), X64), Fetch("arg6", Imm(-1), T("s64")), Fetch("arg7", Imm(16), X64)])),
    ("p f path=+0(+8(%si)):string u=+u0(%si):ustring o=-8(%bp) b=+0(%di):b4@2/32 s=%ip:symbol q=+010(%di):u8",
     Probe(ProbeKind.KPROBE, "f", name="p_f_0", fetches=[
         Fetch("path", Deref(0, Deref(8, Reg("si"))), STRING),
         Fetch("u", Deref(0, Reg("si"), user=True), T("ustring")),
         Fetch("o", Deref(-8, Reg("bp")), X64),
         Fetch("b", Deref(0, Reg("di")), T("b4@2/32")),
         Fetch("s", Reg("ip"), T("symbol")),
         Fetch("q", Deref(8, Reg("di")), T("u8")),  # kstrtol base 0: 010 is octal, as in the kernel
     ])),
    ("p f file count", Probe(ProbeKind.KPROBE, "f", name="p_f_0", fetches=[
        Fetch("arg1", Arg(name="file"), X64), Fetch("arg2", Arg(name="count"), X64)])),
    ("p f %di # a comment", Probe(ProbeKind.KPROBE, "f", name="p_f_0", fetches=[Fetch("arg1", Reg("di"), X64)])),
])
def test_golden_lines(line, expected):
    expected.source = line.strip()
    assert parse_kprobe_event(line) == expected


def test_every_register_parses():
    for reg in X86_64_REGISTERS:
        assert parse_kprobe_event(f"p f %{reg}").fetches[0].expr == Reg(reg)


def _nested(n: int, inner: str = "%di") -> str:
    for i in range(n):
        inner = f"+{i}({inner})"
    return inner


def test_deep_nesting_within_limit():
    probe = parse_kprobe_event(f"p f {_nested(16)}:u8")
    depth, e = 0, probe.fetches[0].expr
    while isinstance(e, Deref):
        depth, e = depth + 1, e.inner
    assert depth == 16 and e == Reg("di")
    with pytest.raises(ParseError, match="nest more than 16 deep"):
        parse_kprobe_event(f"p f {_nested(17)}:u8")
    with pytest.raises(ParseError, match="nest more than 16 deep"):
        parse_kprobe_event(f"p f {_nested(600)}:u8")  # a sentence, not a RecursionError


@pytest.mark.parametrize("line, message", [
    ("-:myprobe", "'-:myprobe' removes a kprobe event; that is not a probe, and ktui removes its own probes when it stops"),
    ("x:ev f", "column 1: expected 'p', 'r[MAXACTIVE]' or '-' to start a kprobe_events line, found 'x:ev'"),
    ("p5 f", "column 2: MAXACTIVE is only for return probes: write r5"),
    ("r5000 f", "column 2: MAXACTIVE 5000 is more than the kernel allows (4096)"),
    ("p:1ev f", "column 3: event name '1ev' must be a C identifier"),
    ("p:g-x/ev f", "column 3: group name 'g-x' must be a C identifier"),
    ("p:ev", "column 5: expected a symbol or address to probe after 'p:ev'"),
    ("r f+4", "column 3: a return probe goes on the function itself: its offset must be +0"),
    ("r 0xffffffff81000000", "column 3: a return probe needs a function symbol, not an address"),
    ("p f $retval", "column 5: $retval is only for return probes (r lines, or SYM%return)"),
    ("p f+4 $arg1", "column 7: $argN is only for a probe on the function entry (offset 0)"),
    ("p f $arg0", "column 5: $arg0: argument numbers go from 1 to 32"),
    ("p f %rsp", "column 5: unknown register %rsp: kprobe_events names registers by their pt_regs name, write %sp"),
    ("p f %foo", "column 5: unknown register %foo (x86-64 pt_regs names: " + ", ".join(X86_64_REGISTERS) + ")"),
    ("p f %di:string", "column 5: type string needs a memory reference, like +0(%di)"),
    ("p f $comm:u32", "column 5: $comm is a string; any other type is invalid"),
    ("p f +0(%di):x16[4]", "column 13: array types like 'x16[4]' are not supported"),
    ("p f +0(%di):symstr", "column 13: type 'symstr' is not supported (use symbol, or u8 for a char)"),
    ("p f %di:u7", "column 9: unknown type 'u7' (expected u8..u64, s8..s64, x8..x64, string, ustring, symbol or bW@O/S)"),
    ("p f %di:", "column 9: expected a type after ':'"),
    ("p f a=%di a=%si", "column 11: argument name 'a' is used twice"),
    ("p f +0(%di", "column 5: expected +|-[u]OFFS(FETCHARG), like +8(%di)"),
    ("p f +0()", "column 8: expected a fetch argument inside the parentheses"),
    ("p f +0($comm)", "column 8: $comm cannot be dereferenced"),
    ("p f $foo", "column 5: unknown variable '$foo' (known: $argN, $retval, $stack, $stackN, $comm)"),
    ('p f \\"x"', "column 5: immediate strings are not supported"),
    ("p f =%di", "column 5: expected a name before '='"),
    ("p f 1x", "column 5: '1x' is not a fetch argument (expected %REG, @ADDR, @SYM, $argN, $retval, $stackN, $stack, $comm, +|-OFFS(FETCHARG) or \\IMM)"),
    ("p f+x", "column 5: expected an offset after '+', found 'x'"),
    ("p 9f", "column 3: '9f' is not a kernel symbol name"),
    ("r f%return", "column 4: '%return' is for 'p' lines; an 'r' line is already a return probe"),
])
def test_refusals_are_sentences_with_columns(line, message):
    with pytest.raises(KtuiError) as info:
        parse_kprobe_event(line)
    assert isinstance(info.value, (ParseError, UsageError))
    assert str(info.value) == message


def test_too_many_args_and_long_lines():
    with pytest.raises(ParseError, match="at most 128 arguments"):
        parse_kprobe_event("p f " + " ".join(["%di"] * 129))
    assert len(parse_kprobe_event("p f " + " ".join(f"a{i}=%di" for i in range(128))).fetches) == 128
    with pytest.raises(UsageError, match="longer than 4096"):
        parse_kprobe_event("p f " + "x" * 5000)


def test_file_of_lines():
    probes = parse_kprobe_events("# my probes\n\np:a f %di\n  r:b f $retval  \n")
    assert [(p.name, p.kind) for p in probes] == [("a", ProbeKind.KPROBE), ("b", ProbeKind.KRETPROBE)]


def test_default_names_follow_the_kernel():
    assert default_event_name(ProbeKind.KPROBE, "do_sys_open", None, 0, None) == "p_do_sys_open_0"
    assert default_event_name(ProbeKind.KRETPROBE, "x.isra.0", "mod", 0, None) == "r_mod_x_isra_0_0"
    assert default_event_name(ProbeKind.KPROBE, "", None, 0, 0xFF) == "p_0xff"


def test_format_normalizes_default_types_and_spellings():
    assert format_kprobe_event(parse_kprobe_event("p:myprobe do_sys_open dfd=%ax mode=+4($stack)")) == \
        "p:myprobe do_sys_open dfd=%ax:x64 mode=+4($stack):x64"
    assert format_kprobe_event(parse_kprobe_event("p:e f%return $retval")) == "r:e f $retval:x64"
    assert format_kprobe_event(parse_kprobe_event("p f+0x10 $comm")) == "p f+16 $comm:string"
    assert format_kprobe_event(parse_kprobe_event("r7 f")) == "r7 f"


def test_format_refuses_what_has_no_spelling():
    with pytest.raises(UsageError, match="tracepoint probe cannot be written"):
        format_kprobe_event(Probe(ProbeKind.TRACEPOINT, "sched:sched_switch"))
    with pytest.raises(UsageError, match="no kprobe_events spelling"):
        format_kprobe_event(Probe(ProbeKind.KPROBE, "f", fetches=[Fetch("p", Builtin("pid"))]))
    with pytest.raises(UsageError, match="struct member"):
        format_kprobe_event(Probe(ProbeKind.KPROBE, "f", fetches=[Fetch("l", Member(Deref(8, Reg("di")), ("len",)))]))
    # a member of an argument is the kernel's BTF spelling (NAME->FIELD)
    assert format_kprobe_event(Probe(ProbeKind.KPROBE, "f", fetches=[Fetch("l", Member(Arg(name="skb"), ("len",)))])) \
        == "p:f f l=skb->len"


# ---------------------------------------------------------------------------
# Property tests

_TAIL = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", max_size=6)
IDENT = st.tuples(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), _TAIL).map("".join)
SYM = st.tuples(st.sampled_from("abcdefghijklmnopqrstuvwxyz_"), _TAIL, st.sampled_from(["", "", ".isra.0", ".cold"])).map("".join)
INT_TYPES = [f"{k}{b}" for k in "usx" for b in (8, 16, 32, 64)] + ["symbol", "b3@1/8", "b1@31/32"]


def _exprs(is_return: bool, entry: bool):
    regs = st.sampled_from(X86_64_REGISTERS).map(lambda r: f"%{r}")
    leaves = [regs, st.integers(0, 511).map(lambda n: f"$stack{n}"), st.just("$stack"),
              st.integers(-(1 << 63), (1 << 64) - 1).map(lambda n: f"\\{n}"),
              st.tuples(SYM, st.integers(-4096, 4096)).map(
                  lambda t: f"@{t[0]}" + (f"+{t[1]}" if t[1] > 0 else f"-{-t[1]}" if t[1] < 0 else "")),
              st.integers(0, (1 << 64) - 1).map(lambda a: f"@0x{a:x}")]
    if entry:
        leaves.append(st.integers(1, 32).map(lambda n: f"$arg{n}"))
    if is_return:
        leaves.append(st.just("$retval"))
    leaf = st.one_of(*leaves)

    def deref(inner):
        return st.tuples(st.integers(-(1 << 20), 1 << 20), st.booleans(), inner).map(
            lambda t: f"{'-' if t[0] < 0 else '+'}{'u' if t[1] else ''}{abs(t[0])}({t[2]})")

    return st.recursive(leaf, deref, max_leaves=6)


EXPRS = {(r, e): _exprs(r, e) for r in (False, True) for e in (False, True)}


@st.composite
def valid_lines(draw):
    is_return = draw(st.booleans())
    head = "r" if is_return else "p"
    if is_return and draw(st.booleans()):
        head += str(draw(st.integers(1, 4096)))
    if draw(st.booleans()):
        group = draw(st.one_of(st.none(), IDENT))
        head += ":" + (f"{group}/" if group else "") + "ev" + draw(IDENT)
    module = draw(st.one_of(st.none(), IDENT))
    offset = 0 if is_return else draw(st.sampled_from([0, 0, 1, 16, 4096]))
    target = (f"{module}:" if module else "") + draw(SYM) + (f"+{offset}" if offset else "")
    parts = [head, target]
    for i in range(draw(st.integers(0, 6))):
        expr = draw(EXPRS[is_return, offset == 0])
        if draw(st.booleans()) and not expr.startswith("%") and not expr.startswith("$"):
            vtype = draw(st.sampled_from(["string", "ustring", *INT_TYPES]))
        else:
            vtype = draw(st.sampled_from(INT_TYPES))
        if draw(st.integers(0, 9)) == 0:
            expr, vtype = "$comm", "string"
        name = "" if draw(st.booleans()) else f"v{i}="
        parts.append(f"{name}{expr}:{vtype}")
    return " ".join(parts)


@settings(max_examples=300, deadline=None)
@given(valid_lines())
def test_round_trip_of_valid_lines(line):
    probe = parse_kprobe_event(line)
    assert format_kprobe_event(probe) == line
    assert Probe.from_dict(probe.to_dict()) == probe


KP_ATOMS = st.sampled_from(["p", "r", "r3", "-", ":", "ev", "g/", " ", "f", "+", "-", "0x10", "8", "(", ")", "%di",
                            "%sp", "$arg1", "$retval", "$stack", "$stack2", "$comm", "@", "@sym", "\\", "=", "u",
                            ":u32", ":string", ":b4@2/32", "%return", "name=", "[4]", "\"", "#"])


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=120), st.lists(KP_ATOMS, max_size=30).map("".join)))
def test_any_text_gives_a_probe_or_a_sentence(text):
    try:
        probe = parse_kprobe_event(text)
    except KtuiError:
        return
    assert probe.kind in (ProbeKind.KPROBE, ProbeKind.KRETPROBE)
    again = parse_kprobe_event(format_kprobe_event(probe))
    again.source = probe.source
    assert again == probe
    assert Probe.from_dict(probe.to_dict()) == probe


# ---------------------------------------------------------------------------
# The kernel's own parser as the judge. This kernel has no kprobe_events, but
# uprobe_events parses FETCHARGS with the same code (kernel/trace/trace_probe.c):
# what ktui parses, formatted back, must be accepted there with the same field
# names, sizes and signedness; what both refuse, both refuse.

def _uprobe_events():
    import os

    from ktui.kernel import tracefs_path

    root = tracefs_path()
    if root is None or not os.path.exists(f"{root}/uprobe_events"):
        pytest.skip("no uprobe_events in tracefs here")
    return root


def _entry_offset(path: str = "/bin/true") -> int:
    """File offset of the program's entry point (uprobe_events wants a file offset)."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        entry = elf.header.e_entry
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= entry < seg["p_vaddr"] + seg["p_filesz"]:
                return entry - seg["p_vaddr"] + seg["p_offset"]
    raise AssertionError("entry point not in a loaded segment")


class KernelProbeParser:
    """Defines and removes uprobe events in a group of its own; removes them all when done."""

    def __init__(self, root: str):
        import os

        self.root = root
        self.group = f"ktuitest{os.getpid()}"
        self.offset = _entry_offset()
        self.n = 0

    def _write(self, line: str) -> bool:
        import os

        # O_APPEND without a seek: Python's "a" mode seeks to the end, which tracefs refuses.
        fd = os.open(f"{self.root}/uprobe_events", os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (line + "\n").encode())
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def define(self, fetchargs: str) -> list[tuple[str, str, int, int]] | None:
        """The kernel's fields (name, type, size, signed) for these FETCHARGS, or None if it refuses them."""
        self.n += 1
        event = f"ev{self.n}"
        if not self._write(f"p:{self.group}/{event} /bin/true:0x{self.offset:x} {fetchargs}".rstrip()):
            return None
        try:
            with open(f"{self.root}/events/{self.group}/{event}/format") as f:
                text = f.read()
        finally:
            assert self._write(f"-:{self.group}/{event}")
        fields = []
        import re as _re

        for m in _re.finditer(r"field:(.+?) (\w+)(?:\[\])?;\s*offset:\d+;\s*size:(\d+);\s*signed:(\d)", text):
            ctype, name, size, signed = m.groups()
            if name.startswith("common_") or name == "__probe_ip":
                continue
            fields.append((name, ctype, int(size), int(signed)))
        return fields

    def remove_stale(self) -> None:
        """Events a killed earlier run of this test left behind (their group says so)."""
        with open(f"{self.root}/uprobe_events") as f:
            for line in f:
                head = line.split(" ", 1)[0]  # p:GROUP/EVENT
                if head[2:].startswith("ktuitest") and "/" in head:
                    self._write(f"-:{head[2:]}")

    def leftovers(self) -> list[str]:
        with open(f"{self.root}/uprobe_events") as f:
            return [line for line in f if f"{self.group}/" in line]


def _expected_field(fetch: Fetch) -> tuple[str, str, int, int]:
    t = fetch.type
    if t.is_string:
        return (fetch.name, "__data_loc char[]", 4, 1)
    if t.kind == "bitfield":
        return (fetch.name, f"u{t.bits}", t.bits // 8, 0)
    return (fetch.name, f"{'s' if t.signed else 'u'}{t.bits}", t.bits // 8, int(t.signed))


@pytest.fixture(scope="module")
def kernel_parser():
    parser = KernelProbeParser(_uprobe_events())
    parser.remove_stale()
    yield parser
    assert parser.leftovers() == []


UPROBE_SAFE_LINES = [
    SEED_LINE,
    "p:myprobe do_sys_open dfd=%ax filename=%dx flags=%cx mode=+4($stack)",
    "p f path=+0(+8(%si)):string u=+u0(%si):ustring o=-8(%bp) b=+0(%di):b4@2/32 q=+010(%di):u8 c=$comm",
    "p f %ax +8(%r15):s16 -8(%bp):x8 \\42 \\-1:s64 $stack3 $stack $comm +0(+0(+0(+0(%sp)))):x32",
    # As deep as the kernel's 63-character argument text allows.
    "p f a={}:u8 b={}:string c={}:b4@2/32".format("+0(" * 14 + "%di" + ")" * 14, "+0(" * 12 + "%di" + ")" * 12,
                                                  "+0(" * 12 + "%di" + ")" * 12),
]


@pytest.mark.live
@pytest.mark.parametrize("line", UPROBE_SAFE_LINES)
def test_kernel_parser_agrees_on_names_and_types(kernel_parser, line):
    probe = parse_kprobe_event(line)
    fetchargs = format_kprobe_event(probe).split(" ", 2)[2:]  # drop "p[:ev]" and the symbol
    fields = kernel_parser.define(fetchargs[0] if fetchargs else "")
    assert fields == [_expected_field(f) for f in probe.fetches]


@pytest.mark.live
@pytest.mark.parametrize("args", [
    "%rsp", "%di:u7", "+0(%di", "$comm:u32", "%di:string", "a=%di a=%si", "+0($comm)", "%di:symstr",
    "$foo", "1x", "%di:b40@0/32",
])
def test_kernel_parser_refuses_what_ktui_refuses(kernel_parser, args):
    with pytest.raises(KtuiError):
        parse_kprobe_event(f"p f {args}")
    assert kernel_parser.define(args) is None


@st.composite
def uprobe_safe_fetchargs(draw):
    """FETCHARGS both parsers take on a uprobe: no $argN/$retval (entry or return only), no symbols."""
    regs = st.sampled_from(X86_64_REGISTERS[:17]).map(lambda r: f"%{r}")
    leaf = st.one_of(regs, st.integers(0, 511).map(lambda n: f"$stack{n}"), st.just("$stack"),
                     st.integers(-(1 << 63), (1 << 64) - 1).map(lambda n: f"\\{n}"))
    deref = st.recursive(leaf, lambda inner: st.tuples(st.integers(-(1 << 16), 1 << 16), st.booleans(), inner).map(
        lambda t: f"{'-' if t[0] < 0 else '+'}{'u' if t[1] else ''}{abs(t[0])}({t[2]})"), max_leaves=4)
    parts = []
    for i in range(draw(st.integers(1, 6))):
        expr = draw(deref)
        is_mem = expr[0] in "+-"
        vtype = draw(st.sampled_from(([ "string", "ustring"] if is_mem else []) +
                                     [f"{k}{b}" for k in "usx" for b in (8, 16, 32, 64)] + ["b3@1/8", "b1@31/32"]))
        if draw(st.integers(0, 9)) == 0:
            expr, vtype = "$comm", "string"
        assume(len(f"{expr}:{vtype}") <= KERNEL_MAX_ARG_TEXT)  # the kernel's own limit on one argument
        parts.append(f"{'' if draw(st.booleans()) else f'v{i}='}{expr}:{vtype}")
    return " ".join(parts)


@pytest.mark.live
@settings(max_examples=60, deadline=None)
@given(uprobe_safe_fetchargs())
def test_kernel_parser_agrees_on_generated_fetchargs(kernel_parser, args):
    probe = parse_kprobe_event(f"p f {args}")
    assert kernel_parser.define(args) == [_expected_field(f) for f in probe.fetches]


@pytest.mark.parametrize("line", ["p +", "r +", "p sym+", "p :x +", "p sym+-", "p +1"])
def test_a_sign_with_nothing_after_it_is_a_sentence(line):
    """Found by hypothesis: `'' in "+-"` is true in Python, so an empty offset once indexed past the end."""
    with pytest.raises(ParseError):
        parse_kprobe_event(line)
