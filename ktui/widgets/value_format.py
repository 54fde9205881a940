"""Drawing helpers for the panes (bars, sparklines); value and unit rules live in ktui.units."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

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


class AtWidth:
    """A renderable laid out for the width it is drawn at, not the width its widget had when the data
    came. A pane on a hidden tab has no size (0): its tables were built for a guessed 80 columns,
    and when the tab came back at 60 columns no resize event came (the widget's size had not
    changed since it was last on screen), so the CPUs table kept its 80-column layout and cut the
    counts to ``21…`` (NEWCOMER F20). Built at draw time, the layout always fits what is shown."""

    def __init__(self, build: Callable[[int], RenderableType]) -> None:
        self.build = build

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.build(max(1, options.max_width))
