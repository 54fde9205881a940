"""Drawing helpers for the panes (bars, sparklines); value and unit rules live in ktui.units."""

from __future__ import annotations

from ktui.units import format_value, human_count, human_ns  # noqa: F401  (the one set of unit rules)

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
