"""NO_COLOR that stays legible.

Textual honours NO_COLOR with a Monochrome filter: every colour becomes the grey of its
luminance. Text in a dark colour (the stream's magenta PROBE column, red drop counts) then
becomes dark grey on a black background, nearly invisible (grey 237 on black). This filter
does the same conversion and then gives any text too close in brightness to its background
the plain foreground of the opposite end (white on dark, black on light): no colours, every
character readable. Backgrounds stay as Monochrome makes them, so cursors and bars still show.
"""

from __future__ import annotations

from functools import lru_cache

from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import LineFilter

MIN_CONTRAST = 0.45  # luminance difference (0..1) below which text is redrawn at full contrast
_WHITE, _BLACK = RichColor.from_rgb(230, 230, 230), RichColor.from_rgb(20, 20, 20)


@lru_cache(1024)
def legible_style(style: Style, background: Color) -> Style:
    fg = Color.from_rich_color(style.color).monochrome if style.color is not None else None
    bg = Color.from_rich_color(style.bgcolor).monochrome if style.bgcolor is not None else background.monochrome
    new_fg = fg.rich_color if fg is not None else None
    if fg is not None and abs(fg.brightness - bg.brightness) < MIN_CONTRAST:
        new_fg = _BLACK if bg.brightness > 0.5 else _WHITE
    if style.dim and bg.brightness < 0.5:  # dim text on a dark background: readable grey, not near-black
        style = style + Style(dim=False)
        new_fg = RichColor.from_rgb(170, 170, 170)
    new_bg = bg.rich_color if style.bgcolor is not None else None
    return style + Style.from_color(new_fg, new_bg)


class LegibleMonochrome(LineFilter):
    """Monochrome, with every text at least MIN_CONTRAST away from its background."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [Segment(text, legible_style(style, background) if style is not None else None, None)
                for text, style, _ in segments]


def is_monochrome(app: object) -> bool:
    """Whether the app draws without colours (NO_COLOR): after use_legible_monochrome, its filter says so."""
    filters = getattr(app, "_filters", None)
    return isinstance(filters, list) and any(isinstance(f, LegibleMonochrome) for f in filters)


def use_legible_monochrome(app: object) -> None:
    """Swap the app's Monochrome filter (NO_COLOR) for LegibleMonochrome; nothing else changes."""
    from textual.filter import Monochrome

    filters = getattr(app, "_filters", None)
    if not isinstance(filters, list):
        return
    for i, f in enumerate(filters):
        if type(f) is Monochrome:
            filters[i] = LegibleMonochrome()
