"""Units people read: counts with K/M, durations, binary (log2) bucket labels, errno names.

One definition for every place that shows a number to a person (panes, the inspector, text
exports). No Textual here: the widgets and the headless commands share these rules.

Rules:
- counts: exact below 10,000 (``9,999``); above, three significant digits and a decimal
  suffix (``12.3K``, ``4.56M``, ``7.89G``).
- durations (nanoseconds): decimal, ``850ns``, ``12.3µs``, ``4.56ms``, ``1.23s``.
- log2 buckets: bounds that are powers of two are labelled in binary units, so a bucket
  reads as the power it is: sizes ``[4Ki, 8Ki)``, latencies ``[16µs, 32µs)`` where, for
  bucket bounds only, 1µs = 2^10 ns, 1ms = 2^20 ns, 1s = 2^30 ns (the header says so).
- errno values: ``-2 ENOENT`` (the number and its name); unknown codes stay numbers.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable

BINARY_SIZE = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
BINARY_TIME = ("ns", "µs", "ms", "s")
LOG2_TIME_NOTE = "1µs = 1024ns"


def human_count(n: float) -> str:
    """A count short enough for a narrow column: ``9,999``, ``12.3K``, ``4.56M``."""
    if abs(n) < 10_000:
        return f"{int(n):,}" if float(n).is_integer() else f"{n:.1f}"
    for unit in ("K", "M", "G", "T", "P"):
        n /= 1000
        if abs(n) < 999.5:
            return f"{n:.3g}{unit}"
    return f"{n:.3g}E"


def human_rate(per_second: float) -> str:
    """An events-per-second figure: ``0``, ``3.5``, ``120``, ``12.3K``."""
    if per_second < 10 and not float(per_second).is_integer():
        return f"{per_second:.1f}"
    return human_count(round(per_second))


def human_ns(ns: int | float) -> str:
    ns = float(ns)
    if abs(ns) < 1_000:
        return f"{ns:.0f}ns"
    for unit, scale in (("µs", 1e3), ("ms", 1e6)):
        if abs(ns) < scale * 1000:
            return f"{ns / scale:.3g}{unit}"
    return f"{ns / 1e9:.3g}s" if abs(ns) < 1e12 else f"{ns / 1e9:,.0f}s"


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def binary_size(n: int) -> str:
    """A power-of-two bound in binary units: 4096 -> ``4Ki``; other values as human_count."""
    if n == 0:
        return "0"
    if n < 0:  # the mirrored buckets of a signed value: [-32, -16)
        return "-" + binary_size(-n)
    if not is_power_of_two(n):
        return human_count(n)
    exp = n.bit_length() - 1
    idx = min(exp // 10, len(BINARY_SIZE) - 1)
    return f"{n >> (10 * idx)}{BINARY_SIZE[idx]}"


def binary_ns(n: int) -> str:
    """A power-of-two bound in nanoseconds: 16384 -> ``16µs`` (binary: 1µs = 1024ns)."""
    if n == 0:
        return "0"
    if n < 0:
        return "-" + binary_ns(-n)
    if not is_power_of_two(n):
        return human_ns(n)
    exp = n.bit_length() - 1
    idx = min(exp // 10, len(BINARY_TIME) - 1)
    return f"{n >> (10 * idx)}{BINARY_TIME[idx]}"


def bucket_label(low: int, high: int, *, latency: bool, scale: str = "log2") -> str:
    """``[4Ki, 8Ki)`` for log2 buckets, decimal units for linear ones."""
    if scale == "log2":
        fmt: Callable[[int], str] = binary_ns if latency else binary_size
    else:
        fmt = human_ns if latency else human_count
    return f"[{fmt(low)}, {fmt(high)})"


def errno_name(code: int) -> str | None:
    """``ENOENT`` for 2 or -2; None when the code is not an errno."""
    return _errno.errorcode.get(abs(int(code)))


def errno_text(number: int) -> str:
    """A return value shown as an errno: ``-2 ENOENT`` when negative and known, else the number."""
    name = errno_name(number) if number < 0 else None
    return f"{number} {name}" if name else str(number)


def c_string(value: bytes) -> str:
    """A fixed-size C char array as text: up to the first NUL, undecodable bytes replaced."""
    return value.split(b"\0", 1)[0].decode(errors="replace")


def format_value(value: object, display: str, symbolize: Callable[[int, int | None], str] | None = None,
                 pid: int | None = None) -> str:
    """One fetched value as shown in a row, by its FieldLayout.display."""
    if isinstance(value, bytes):
        return repr(c_string(value))
    try:
        number = int(value)  # type: ignore[call-overload]  # whatever int() takes (numpy scalars too); the rest is text
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
    if display == "errno":
        return errno_text(number)
    if display == "ns":
        return human_ns(number)
    return str(number)


def short_hosts(names: list[str]) -> dict[str, str]:
    """The short name of each host: a DNS name's first label (``web1`` of ``web1.example.com``) when
    no other host shares it; an address (IPv4 or IPv6) or an ambiguous label stays whole."""
    import ipaddress

    def first_label(name: str) -> str:
        try:
            ipaddress.ip_address(name.strip("[]"))
            return name
        except ValueError:
            return name.split(".", 1)[0] or name

    heads = {n: first_label(n) for n in names}
    taken = [heads[n] for n in dict.fromkeys(names)]
    return {n: h if taken.count(h) == 1 else n for n, h in heads.items()}


_SEPARATORS = "_:./-"


def short_labels(names: dict[int, str], limit: int) -> dict[int, str]:
    """Labels of at most ``limit`` cells for probe names that never make two different names equal.

    Names that fit stay whole. Otherwise the prefix all names share is dropped (at a separator,
    shown as ``…``), then a name still too long keeps its head and its tail (the tail is what
    tells ``sys_enter_openat`` from ``sys_enter_openat2``); a label that still collides gets the
    probe id in front (``#3 …``), so labels are always distinct when names are."""
    limit = max(4, limit)
    if all(len(n) <= limit for n in names.values()):
        return dict(names)
    values = list(names.values())
    prefix = _common_prefix(values) if len(values) > 1 else ""
    labels: dict[int, str] = {}
    for pid, name in names.items():
        label = name
        if len(label) > limit and len(name) - (limit - 1) <= len(prefix):
            label = "…" + name[len(name) - (limit - 1):]  # only shared prefix is dropped: keep the most tail
        elif len(label) > limit and prefix:
            label = "…" + name[len(prefix):]
        if len(label) > limit:
            tail = (limit - 1) * 2 // 3
            label = label[:limit - 1 - tail] + "…" + label[len(label) - tail:]
        labels[pid] = label
    seen: dict[str, list[int]] = {}
    for pid, label in labels.items():
        seen.setdefault(label, []).append(pid)
    for label, pids in seen.items():
        if len(pids) > 1 and len({names[p] for p in pids}) > 1:
            for pid in pids:
                tag = f"#{pid} "
                labels[pid] = tag + label[len(tag):] if len(label) >= limit else tag + label
    return labels


def _common_prefix(values: list[str]) -> str:
    """The longest prefix shared by every value, cut back to just after a separator."""
    first, last = min(values), max(values)
    n = 0
    while n < len(first) and n < len(last) and first[n] == last[n]:
        n += 1
    cut = max((first.rfind(c, 0, n) for c in _SEPARATORS), default=-1)
    return first[:cut + 1] if cut >= 0 else ""
