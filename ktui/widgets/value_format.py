"""How one fetched value is shown in a row (by its FieldLayout.display)."""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable


def format_value(value, display: str, symbolize: Callable[[int, int | None], str] | None = None,
                 pid: int | None = None) -> str:
    if isinstance(value, bytes):
        return repr(value.split(b"\0", 1)[0].decode(errors="replace"))
    try:
        number = int(value)
    except (TypeError, ValueError):
        return str(value)
    if display == "x":
        return hex(number)
    if display == "symbol":
        if symbolize is not None:
            try:
                return symbolize(number, pid)
            except Exception:  # a symbolizer that fails still leaves the address readable
                pass
        return hex(number)
    if display == "errno" and number < 0 and -number in _errno.errorcode:
        return f"-{_errno.errorcode[-number]}"
    if display == "ns":
        return human_ns(number)
    return str(number)


def human_ns(ns: int) -> str:
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f}us"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f}ms"
    return f"{ns / 1e9:.2f}s"


def human_count(n: float) -> str:
    """12345 -> '12.3k': short, for narrow columns."""
    n = float(n)
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}T"


BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int) -> str:
    values = values[-width:]
    top = max(values, default=0)
    if top <= 0:
        return BLOCKS[0] * len(values)
    return "".join(BLOCKS[min(len(BLOCKS) - 1, int(v / top * (len(BLOCKS) - 1) + 0.5))] for v in values)


def bar(fraction: float, width: int) -> str:
    """A horizontal bar with eighth-cell resolution."""
    fraction = max(0.0, min(1.0, fraction))
    eighths = int(round(fraction * width * 8))
    full, rest = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[rest] if rest else ""
    return ("█" * full + partial).ljust(width)
