"""One number parser for every dialect: exact values, exact sentences, limits at and beyond.

Property tests feed every probe dialect and the filter language numbers around their limits
and arbitrary text: the only exception that may come out is a KtuiError, and each call is
fast (no 4300-digit ValueError, no int(x, 0) ValueError for 010/08).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ktui.errors import KtuiError, ParseError, UsageError
from ktui.numbers import (
    C,
    DECIMAL,
    DECIMAL_OR_HEX,
    HZ,
    KERNEL_OFFSET,
    MAX_DIGITS,
    MAXACTIVE,
    PID,
    U64,
    NumberError,
    check_range,
    parse_int,
)
from ktui.probes.bpftrace_names import parse_bpftrace_name
from ktui.probes.filter import parse_filter
from ktui.probes.filter_ast import IntLit
from ktui.probes.kprobe_events import parse_kprobe_event
from ktui.probes.spec import parse_spec
from ktui.probes.systemtap import parse_systemtap, parse_systemtap_script

KTUI = Path(sys.executable).with_name("ktui")


@pytest.mark.parametrize("text, dialect, value", [
    ("0", C, 0), ("42", C, 42), ("0x2a", C, 42), ("0X2A", C, 42), ("052", C, 42), ("010", C, 8), ("00", C, 0),
    ("010", DECIMAL_OR_HEX, 10), ("0x10", DECIMAL_OR_HEX, 16), ("08", DECIMAL_OR_HEX, 8),
    ("010", DECIMAL, 10), ("4096", DECIMAL, 4096),
])
def test_each_dialect_spells_numbers_its_own_way(text, dialect, value):
    assert parse_int(text, dialect, "n", U64) == value


def test_signed_numbers():
    assert parse_int("-0x10", C, "", None, signed=True) == -16
    assert parse_int("+010", C, "", None, signed=True) == 8
    with pytest.raises(NumberError, match=r"^'-1' is not a number"):
        parse_int("-1", C, "", U64)  # a sign where the use takes none


@pytest.mark.parametrize("text, dialect, limits, message", [
    ("08", C, U64, "the offset '08' is not a number: a leading 0 makes it octal, and octal has no digits 8 or 9 "
                   "(write it without the 0 for decimal)"),
    ("0123456789", C, U64, "the offset '0123456789' is not a number: a leading 0 makes it octal, and octal has no "
                           "digits 8 or 9 (write it without the 0 for decimal)"),
    ("0x10", DECIMAL, U64, "the offset '0x10' is not a decimal number"),
    ("²", C, U64, "the offset '²' is not a number (decimal like 42, hex like 0x2a, or octal like 052)"),
    ("٣", DECIMAL_OR_HEX, U64, "the offset '٣' is not a number (decimal like 42 or hex like 0x2a)"),
    ("", DECIMAL, U64, "the offset '' is not a number (decimal digits like 42)"),
    ("0x", C, U64, "the offset '0x' is not a number (decimal like 42, hex like 0x2a, or octal like 052)"),
    ("4294967296", DECIMAL, KERNEL_OFFSET, "the offset 4294967296 is out of range: it must be from 0 to 4294967295 "
                                           "(an offset inside one kernel function)"),
    ("9" * 33, DECIMAL, U64, "the offset '999999999999999999999999999999999' has more than 32 digits; it must "
                             "be from 0 to 18446744073709551615 (64 bits)"),
    ("9" * 41, DECIMAL, U64, "the offset '99999999999999999999...(41 characters)' has more than 32 digits; it must "
                             "be from 0 to 18446744073709551615 (64 bits)"),
    ("0x" + "f" * 33, C, None, "the offset '0xfffffffffffffffffffffffffffffffff' has more than 32 digits"),
])
def test_refusals_are_one_sentence(text, dialect, limits, message):
    with pytest.raises(NumberError) as info:
        parse_int(text, dialect, "the offset", limits)
    assert str(info.value) == message
    assert isinstance(info.value, UsageError)


@pytest.mark.parametrize("limits", [U64, KERNEL_OFFSET, MAXACTIVE, HZ, PID])
def test_limits_are_inclusive(limits):
    assert parse_int(str(limits.hi), DECIMAL, "n", limits) == limits.hi
    assert parse_int(hex(limits.lo), C, "n", limits) == limits.lo
    with pytest.raises(NumberError, match="out of range"):
        parse_int(str(limits.hi + 1), DECIMAL, "n", limits)
    if limits.lo > 0:
        with pytest.raises(NumberError, match="out of range"):
            parse_int(str(limits.lo - 1), DECIMAL, "n", limits)
    assert check_range(limits.hi, "n", limits) == limits.hi


def test_digit_limit_is_exact():
    assert parse_int("0" * MAX_DIGITS, DECIMAL, "n", U64) == 0
    assert parse_int("0x" + "0" * MAX_DIGITS, C, "n", U64) == 0
    with pytest.raises(NumberError, match=f"more than {MAX_DIGITS} digits"):
        parse_int("0" * (MAX_DIGITS + 1), DECIMAL, "n", U64)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60),
                 st.integers(-(1 << 70), 1 << 70).map(str),
                 st.integers(0, 1 << 70).map(hex),
                 st.integers(0, 1 << 70).map(lambda n: "0" + oct(n)[2:]),
                 st.integers(1, 6000).map(lambda n: "9" * n)),
       st.sampled_from([C, DECIMAL, DECIMAL_OR_HEX]), st.booleans())
def test_parse_int_never_escapes(text, dialect, signed):
    start = time.perf_counter()
    try:
        value = parse_int(text, dialect, "n", U64, signed=signed)
    except NumberError:
        pass
    else:
        assert 0 <= value < 1 << 64
    assert time.perf_counter() - start < 0.5


# ---------------------------------------------------------------------------
# The dialects use it.

HUGE = "9" * 5000


@pytest.mark.parametrize("text, message", [
    (f"profile:hz:{HUGE}", "the count '99999999999999999999...(5000 characters)' has more than 32 digits"),
    (f"interval:ms:{HUGE}", "the count '99999999999999999999...(5000 characters)' has more than 32 digits"),
    (f"kprobe:x+{HUGE}", "the offset '99999999999999999999...(5000 characters)' has more than 32 digits"),
    ("kprobe:x+4294967296", "the offset 4294967296 is out of range"),
    (f"kprobe:0x{'f' * 5000}", "the address '0xffffffffffffffffff...(5002 characters)' has more than 32 digits"),
    (f"uprobe:/bin/x:0x{'f' * 5000}", "the offset '0xffffffffffffffffff...(5002 characters)' has more than 32 digits"),
    ("profile:hz:1000000001", "the count 1000000001 is out of range"),
])
def test_bpftrace_names_bound_numbers(text, message):
    with pytest.raises(UsageError) as info:
        parse_bpftrace_name(text)
    assert message in str(info.value)
    assert len(str(info.value)) < 400


def test_bpftrace_names_read_leading_zeros_as_decimal():
    """bpftrace has no octal in probe names: profile:hz:010 is 10 Hz."""
    assert parse_bpftrace_name("profile:hz:010")[0].frequency == 10
    assert parse_bpftrace_name("kprobe:vfs_read+010")[0].offset == 10
    assert parse_bpftrace_name("kprobe:vfs_read+0x10")[0].offset == 16


def test_systemtap_reads_numbers_as_strtoll_base_0():
    """SystemTap (like C) reads 010 as octal eight and refuses 08."""
    assert parse_systemtap("timer.ms(010)")[0].period_ns == 8_000_000
    assert parse_systemtap("timer.ms(0x10)")[0].period_ns == 16_000_000
    script = parse_systemtap_script('probe kernel.function("vfs_read") { if (pid() == 010) print(1) }')
    assert parse_filter(script.probes[0].filter).right == IntLit(8, script.probes[0].filter.index("8"))
    with pytest.raises(ParseError) as info:
        parse_systemtap("timer.ms(08)")
    assert str(info.value) == ("column 10: '08' is not a number: a leading 0 makes it octal, and octal has no digits "
                               "8 or 9 (write it without the 0 for decimal)")
    with pytest.raises(ParseError, match="column 50: '08' is not a number: a leading 0 makes it octal"):
        parse_systemtap_script('probe kernel.function("vfs_read") { if (pid() == 08) print(1) }')


@pytest.mark.parametrize("text", [
    f"timer.ms({HUGE})", f"timer.hz({HUGE})", f'kernel.function("x").return.maxactive({HUGE})',
    f"perf.sw.cpu_clock.sample({HUGE})", "kernel.statement(0123)", "kernel.statement(08)",
    f'probe kernel.function("x") {{ if (pid() == {HUGE}) print(1) }}',
    f'probe kernel.function("x") {{ if (pid() == -{HUGE}) print(1) }}',
    "timer.s(999999999999)",
])
def test_systemtap_bounds_numbers(text):
    with pytest.raises(KtuiError) as info:
        parse_systemtap_script(text)
    assert len(str(info.value)) < 400


def test_systemtap_timer_period_fits_in_63_bits():
    with pytest.raises(UsageError, match="the period in nanoseconds 999999999999000000000 is out of range"):
        parse_systemtap("timer.s(999999999999)")


@pytest.mark.parametrize("line, message", [
    ("p f+08", "column 5: the offset '08' is not a number: a leading 0 makes it octal"),
    ("p f \\08", "column 6: the immediate '08' is not a number: a leading 0 makes it octal"),
    ("p f +08(%di)", "column 6: the offset '08' is not a number"),
    ("p f @sym+09", "column 10: the offset '09' is not a number"),
    (f"p f+{'9' * 4000}", "column 5: the offset '99999999999999999999...(4000 characters)' has more than 32 digits"),
    (f"r{'9' * 4000} f", "column 2: MAXACTIVE '99999999999999999999...(4000 characters)' has more than 32 digits"),
    (f"p f $arg{'9' * 4000}", "column 5: '99999999999999999999...(4000 characters)' has more than 32 digits"),
    ("p f+0x100000000", "column 5: the offset 4294967296 is out of range: it must be from 0 to 4294967295"),
])
def test_kprobe_events_bound_numbers(line, message):
    with pytest.raises(ParseError) as info:
        parse_kprobe_event(line)
    assert str(info.value).startswith(message)


def test_kprobe_events_keep_kernel_octal():
    assert parse_kprobe_event("p f+010").offset == 8  # kstrtol base 0, as the kernel reads it
    assert parse_kprobe_event("p f+0x10").offset == 16


@pytest.mark.parametrize("text, message", [
    (f"pid == {'9' * 4000}", "column 8: '99999999999999999999...(4000 characters)' has more than 32 digits"),
    (f"pid == -{'9' * 4000}", "column 8: '-9999999999999999999...(4001 characters)' has more than 32 digits"),
    ("pid == 18446744073709551616", "column 8: 18446744073709551616 does not fit in 64 bits"),
])
def test_filter_bounds_numbers(text, message):
    with pytest.raises(ParseError) as info:
        parse_filter(text)
    assert str(info.value) == message


def test_filter_reads_leading_zeros_as_decimal():
    assert parse_filter("pid == 010").right.value == 10
    assert parse_filter("pid == 0x10").right.value == 16


NUMBERISH = st.one_of(
    st.integers(-(1 << 66), 1 << 66).map(str), st.integers(0, 1 << 66).map(hex),
    st.sampled_from(["010", "08", "09", "0x", "00", "²", "٣", "1e3", "0b1", "9" * 40, "9" * 4400, "0x" + "f" * 4400]),
    st.integers(1, 5000).map(lambda n: "9" * n),
)

TEMPLATES = [
    "profile:hz:{}", "profile:{}", "interval:s:{}", "interval:ms:{}", "kprobe:vfs_read+{}", "kprobe:{}",
    "uprobe:/bin/sh:{}", "uprobe:/bin/sh:main+{}", "p:ev vfs_read+{}", "r{} vfs_read", "p vfs_read \\{}",
    "p vfs_read +{}(%di)", "p vfs_read @jiffies+{}", "p vfs_read $arg{}", "p vfs_read $stack{}",
    "timer.ms({})", "timer.hz({})", "timer.s({})", 'kernel.function("x").return.maxactive({})',
    "perf.sw.cpu_clock.sample({})", "kernel.statement({})",
    'probe kernel.function("x") {{ if (pid() == {}) print(1) }}',
    'probe kernel.function("x") {{ if (pid() != -{}) print(1) }}',
]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(TEMPLATES), NUMBERISH)
def test_every_probe_dialect_bounds_numbers(template, number):
    text = template.format(number)
    start = time.perf_counter()
    try:
        parse_spec(text)
    except KtuiError as err:
        assert "\n" not in str(err)  # one sentence (it may quote the whole input)
    assert time.perf_counter() - start < 1.0


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["pid == {}", "cpu < {}", "retval >= -{}", "!(uid != {})", "pid == {} || pid == {}"]),
       NUMBERISH)
def test_filter_bounds_any_number(template, number):
    text = template.format(number, number)
    start = time.perf_counter()
    try:
        parse_filter(text)
    except KtuiError as err:
        assert "\n" not in str(err)
    assert time.perf_counter() - start < 1.0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_every_dialect_survives_arbitrary_text(text):
    for parse in (parse_spec, parse_filter):
        try:
            parse(text)
        except KtuiError:
            pass


# ---------------------------------------------------------------------------
# The command, as a person types it: one line on stderr, no traceback, non-zero exit.

@pytest.mark.parametrize("spec, expected", [
    ("timer.ms(08)", "'08' is not a number: a leading 0 makes it octal"),
    ("kernel.statement(0123)", "statement probes need DWARF line tables"),
    ('probe kernel.function("vfs_read") { if (pid() == 08) print(1) }', "'08' is not a number"),
    (f"profile:hz:{HUGE}", "has more than 32 digits"),
    (f"kprobe:x+{HUGE}", "has more than 32 digits"),
    (f'kernel.function("x").return.maxactive({HUGE})', "has more than 32 digits"),
    (f"r{'9' * 4000} vfs_read", "has more than 32 digits"),
    ("kprobe:vfs_read+0x100000000", "is out of range"),
])
def test_compile_command_says_one_sentence(spec, expected):
    proc = subprocess.run([str(KTUI), "compile", spec], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and expected in lines[0]
    assert len(lines[0]) < 600


def test_compile_command_takes_stap_octal():
    """010 is SystemTap's octal eight: it compiles (C text on stdout), it is not an error."""
    proc = subprocess.run([str(KTUI), "compile", "timer.ms(010)"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
