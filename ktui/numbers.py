"""One number parser for every text ktui reads: probe names, kprobe_events, SystemTap, filters.

    parse_int("0x10", C, "an offset", OFFSET)           -> 16
    parse_int("010", C, "a period", PERIOD_COUNT)       -> 8 (C/kernel/SystemTap: a leading 0 is octal)
    parse_int("010", DECIMAL_OR_HEX, "a count", COUNT)  -> 10 (bpftrace names: no octal)
    parse_int("08", C, ...)                             -> NumberError: one sentence

Each dialect spells numbers its own way, and each says so here rather than leaving it to
``int(x, 0)`` (which refuses ``010`` with a ValueError). The digit count is checked BEFORE
any conversion, well below Python's 4300-digit limit, so a 5,000-digit number is a
sentence, not "Exceeds the limit (4300 digits)". Each use has a range (``Range``); a
value outside it is a sentence naming the range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from ktui.errors import UsageError

# 2**64 needs 20 decimal, 22 octal or 16 hex digits; anything much longer is not a number any
# use here can take. Leading zeros count too: a number is text from outside, and its length
# is what costs time.
MAX_DIGITS = 32


class Dialect(Enum):
    """How a dialect spells integers."""
    C = "c"  # kstrtol(x, 0) / strtoll(x, 0): 0x hex, a leading 0 octal, else decimal (kernel, SystemTap)
    DECIMAL_OR_HEX = "decimal-or-hex"  # 0x hex, else decimal; a leading 0 is just a zero (bpftrace names)
    DECIMAL = "decimal"  # digits only


C = Dialect.C
DECIMAL_OR_HEX = Dialect.DECIMAL_OR_HEX
DECIMAL = Dialect.DECIMAL


@dataclass(frozen=True)
class Range:
    """The values one use accepts, inclusive, with the words for a sentence about it."""
    lo: int
    hi: int
    why: str = ""  # where the bound comes from, shown when a value is outside it

    def describe(self) -> str:
        return f"from {self.lo} to {self.hi}" + (f" ({self.why})" if self.why else "")


U64 = Range(0, (1 << 64) - 1, "64 bits")
S64 = Range(-(1 << 63), (1 << 63) - 1, "64 bits")
INT64 = Range(-(1 << 63), (1 << 64) - 1, "64 bits")  # signed or unsigned: the filter compares both
ADDRESS = U64
# A kprobe offset is inside one function: no kernel function is 4 GiB long.
KERNEL_OFFSET = Range(0, (1 << 32) - 1, "an offset inside one kernel function")
# A uprobe offset is a file offset (off_t).
FILE_OFFSET = Range(0, (1 << 63) - 1, "a file offset")
MAXACTIVE = Range(0, 4096, "the kernel's KRETPROBE_MAXACTIVE_MAX")
HZ = Range(1, 1_000_000, "ktui samples at 1,000,000 Hz at most")
# Timer and sampling periods: positive, and a period in nanoseconds fits in 63 bits
# whatever the unit (10**9 ns per second * 10**9 < 2**63).
PERIOD_COUNT = Range(1, 10**9, "a period's count")
PERIOD_NS = Range(1, (1 << 63) - 1, "a period in nanoseconds")
# PID_MAX_LIMIT on 64-bit kernels (include/linux/threads.h): 4 * 1024 * 1024.
PID = Range(1, 4 * 1024 * 1024, "the kernel's largest pid")
PROBE_ID = Range(0, (1 << 31) - 1, "a probe id")
CPU = Range(0, 8191, "the kernel's largest CPU count, 8192")


class NumberError(UsageError):
    """A number that is not one, too long, or outside the range its use takes."""


_HEX = re.compile(r"0[xX]([0-9A-Fa-f]+)\Z")
_DIGITS = re.compile(r"[0-9]+\Z")  # ASCII only: str.isdigit() also takes '²' and '٣'


def clip(text: str, limit: int = 80) -> str:
    """Long text cut for a sentence: its start, and how long it was."""
    return text if len(text) <= limit else f"{text[:limit // 2]}...({len(text)} characters)"


def shown_int(value: int) -> str:
    """An int for a sentence; a huge one by its size (str() refuses more than 4300 digits)."""
    return str(value) if value.bit_length() <= 128 else f"of {value.bit_length()} bits"


def _subject(what: str, shown: str) -> str:
    """'the offset '0x1'' or, with no name for the use, just the number as written."""
    return f"{what} {shown!r}" if what else repr(shown)


def parse_int(text: str, dialect: Dialect, what: str, limits: Range | None, *, signed: bool = False) -> int:
    """``text`` as ``dialect`` spells an integer, inside ``limits``; NumberError (one sentence) if not.

    ``what`` names the use ("the offset", "maxactive"). ``signed`` accepts a leading '+' or '-'.
    ``limits`` None: only the digit count bounds it (the caller checks the range in its own words).
    """
    if not isinstance(text, str):
        raise NumberError(f"{what or 'a number'} must be written as text")
    body, sign = text, 1
    if signed and body[:1] in ("+", "-"):
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    shown = clip(text, 40)
    if len(body) - (2 if body[:2] in ("0x", "0X") else 0) > MAX_DIGITS:
        raise NumberError(f"{_subject(what, shown)} has more than {MAX_DIGITS} digits"
                          + (f"; it must be {limits.describe()}" if limits else ""))
    if m := _HEX.match(body):
        if dialect is DECIMAL:
            raise NumberError(f"{_subject(what, shown)} is not a decimal number")
        value = int(m.group(1), 16)
    elif not _DIGITS.match(body):
        raise NumberError(f"{_subject(what, shown)} is not a number "
                          f"({_spelling(dialect)})")
    elif dialect is C and len(body) > 1 and body[0] == "0":
        if not re.fullmatch(r"[0-7]+", body):
            raise NumberError(f"{_subject(what, shown)} is not a number: a leading 0 makes it octal, "
                              f"and octal has no digits 8 or 9 (write it without the 0 for decimal)")
        value = int(body, 8)
    else:
        value = int(body, 10)
    value *= sign
    if limits is not None and not limits.lo <= value <= limits.hi:
        raise NumberError(f"{what + ' ' if what else ''}{shown} is out of range: it must be {limits.describe()}")
    return value


def _spelling(dialect: Dialect) -> str:
    if dialect is C:
        return "decimal like 42, hex like 0x2a, or octal like 052"
    if dialect is DECIMAL_OR_HEX:
        return "decimal like 42 or hex like 0x2a"
    return "decimal digits like 42"


def check_range(value: int, what: str, limits: Range) -> int:
    """A value computed from parsed numbers (address + offset, count * unit) inside ``limits``."""
    if not limits.lo <= value <= limits.hi:
        raise NumberError(f"{what + ' ' if what else ''}{shown_int(value)} is out of range: it must be {limits.describe()}")
    return value


# ---------------------------------------------------------------------------
# Command-line options (argparse ``type=``): a bad value is argparse's one-line error.

MAX_DURATION_S = 366 * 24 * 3600  # a year: longer is a typo, and timers refuse huge timeouts


def duration_arg(text: str) -> float:
    """--duration SECONDS: a finite positive number of seconds, at most a year."""
    import argparse
    import math

    try:
        value = float(text) if len(text) <= 40 else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"{clip(text, 40)!r} is not a duration: give a positive number of seconds "
                                         f"up to {MAX_DURATION_S:,} (a year)")
    return value


def pid_arg(text: str) -> int:
    """-p/--pid PID of a process to trace: a process id the kernel could hand out (1 to 4194304)."""
    return _pid(text, PID)


def event_pid_arg(text: str) -> int:
    """--pid PID to select events by: as pid_arg, and 0 (the idle task's events)."""
    return _pid(text, Range(0, PID.hi, PID.why))


def _pid(text: str, limits: Range) -> int:
    import argparse

    try:
        return parse_int(text.strip(), DECIMAL, "the pid", limits)
    except NumberError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
