"""The status line: rate, loss accounting, probe states, and the kernel's warnings."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from ktui.events import ProbeState, Update
from ktui.textsafe import term_safe
from ktui.units import human_count, human_rate


MESSAGE_FRESH_S = 10.0  # how long a message keeps its place at the front of a narrow line


class StatusBar(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.mode = "starting"  # "live", "replay", "demo", "stopped"
        self.paused = False  # a replay's clock is paused
        self.following = True  # the stream shows the newest events
        self.not_shown = 0  # rows that arrived while the stream was held and full (not kept)
        self.rate = 0.0
        self.delivered = self.dropped = self.filtered = 0
        self.probes: list[ProbeState] = []
        self.warnings: list[str] = []
        self.message = ""
        self._message_at = 0.0  # when the message was said (monotonic): an old one yields its room
        self.recording = ""  # the file a recording from the app writes to, while it runs
        self.flight = ""  # its flight recorder's state ("armed", "triggered 1 of 3"), when it has one
        self.filter_text = ""  # the stream's active filter (its box may be hidden): always said here
        self.search_text = ""  # the stream's active search
        self._last: tuple[float, int] | None = None
        self.rate_given = False  # a replay says its rate (events per recording second at the cursor)
        self.update(self._text(), layout=False)  # one line, fixed size: no relayout per frame

    def apply(self, update: Update) -> None:
        totals = [c.totals() for c in update.counters.values()]
        if totals:
            self.delivered = sum(t["delivered"] for t in totals)
            self.dropped = sum(t["dropped"] for t in totals)
            self.filtered = sum(t["filtered"] for t in totals)
        else:  # a source without counters: count what reached us
            self.delivered += sum(len(a) for a in update.events.values())
        now = update.now_ns / 1e9 if update.now_ns else update.elapsed_s
        if not self.rate_given and self._last is not None and now > self._last[0] and self.delivered >= self._last[1]:
            self.rate = (self.delivered - self._last[1]) / (now - self._last[0])
        # A replay's clock jumps back on a seek and its counters change with a selected window:
        # start measuring again rather than show a negative rate.
        if self._last is None or now > self._last[0] + 0.5 or now < self._last[0] or self.delivered < self._last[1]:
            self._last = (now, self.delivered)
        if update.probes:
            self.probes = list(update.probes)
        if update.message:
            self._say(update.message)
        self.update(self._text(), layout=False)  # one line, fixed size: no relayout per frame

    def set_state(self, *, mode: str | None = None, paused: bool | None = None, message: str | None = None,
                  warnings: list[str] | None = None, following: bool | None = None,
                  recording: str | None = None, flight: str | None = None,
                  filter_text: str | None = None, search_text: str | None = None, rate: float | None = None) -> None:
        if rate is not None:
            self.rate, self.rate_given = rate, True
        if recording is not None:
            self.recording = recording
        if flight is not None:
            self.flight = flight
        if filter_text is not None:
            self.filter_text = filter_text
        if search_text is not None:
            self.search_text = search_text
        if following is not None:
            self.following = following
        if mode is not None:
            self.mode = mode
        if paused is not None:
            self.paused = paused
        if message is not None:
            self._say(message)
        if warnings is not None:
            self.warnings = warnings
        self.update(self._text(), layout=False)  # one line, fixed size: no relayout per frame

    def _say(self, message: str) -> None:
        if message != self.message:
            self.message, self._message_at = message, time.monotonic()

    def on_resize(self) -> None:
        self.update(self._text(), layout=False)

    def parts(self) -> list[tuple[int, Text]]:
        """(priority, piece) in display order; 0 is never dropped, higher numbers go first when the
        line is too narrow. What a person must see at 80 columns: the mode, loss, the rate, the
        probes that failed, an active filter or search, and the first warning."""
        parts: list[tuple[int, Text]] = []
        style = {"live": "bold green", "replay": "bold yellow", "demo": "bold yellow"}.get(self.mode, "bold")
        parts.append((0, Text(f" {term_safe(self.mode.upper())} ", style=f"reverse {style}")))
        if self.recording:  # first after the mode: an 80-column line must still show it
            parts.append((0, Text(f" ● REC {self.flight} " if self.flight else " ● REC ", style="reverse bold red")))
        if self.paused:
            parts.append((0, Text(" PAUSED ", style="reverse bold")))
        if self.filter_text:
            parts.append((1, Text(f" FILTER {_short(self.filter_text)} ", style="reverse bold")))
        if self.search_text:
            parts.append((2, Text(f" FIND {_short(self.search_text)} ", style="reverse")))
        # Held is a state the reader must see (the rows do not move); following is the ordinary case.
        held = " HELD" + (f" +{human_count(self.not_shown)} not shown" if self.not_shown else "")
        parts.append((3 if self.following else 1, Text(" FOLLOW" if self.following else held,
                                                       style="" if self.following else "bold yellow")))
        parts.append((1, Text(f" {human_rate(self.rate)} ev/s", style="bold")))
        parts.append((5, Text(f"  delivered {human_count(self.delivered)}")))
        parts.append((1 if self.dropped else 4,
                      Text(f"  dropped {human_count(self.dropped)}", style="bold red" if self.dropped else "")))
        parts.append((6, Text(f"  filtered {human_count(self.filtered)}")))
        if self.probes:
            attached = sum(p.status in ("attached", "recorded") for p in self.probes)
            failed = sum(p.status == "failed" for p in self.probes)
            piece = Text(f"  probes {attached}/{len(self.probes)}")
            if failed:
                piece.append(f" ({failed} failed)", style="bold red")
            parts.append((1 if failed else 2, piece))
        if self.message:
            # A fresh message outranks everything but the mode; once it is old it gives its room to
            # the filter, the search and the probe count (the states a person acts on), and is cut last.
            fresh = time.monotonic() - self._message_at < MESSAGE_FRESH_S
            parts.append((1 if fresh else 3, Text(f"  {term_safe(self.message)}", style="italic")))
        if self.warnings:
            more = f" (+{len(self.warnings) - 1})" if len(self.warnings) > 1 else ""
            # Its short form fits at 80 columns beside a filter; f1 shows every warning whole.
            parts.append((1, Text(f"  ! {term_safe(short_warning(self.warnings[0]))}{more}", style="yellow")))
        return parts

    def _text(self) -> Text:
        width = self.size.width or 80
        parts = self.parts()
        # Drop the least important pieces until the line fits; the last piece may be cut, but a
        # warning or message is never cut to less than a few words (no bare "!").
        while len(parts) > 1 and sum(p.cell_len for _, p in parts) > width:
            room = width - sum(p.cell_len for _, p in parts[:-1])
            if room >= 24 and parts[-1][0] <= 3:
                break
            worst = max(range(len(parts)), key=lambda i: (parts[i][0], i))
            if parts[worst][0] == 0:
                break
            del parts[worst]
        t = Text(no_wrap=True, overflow="ellipsis")
        for _, piece in parts:
            t.append_text(piece)
        return t


def short_warning(sentence: str, limit: int = 24) -> str:
    """A warning's first clause (up to a parenthesis, colon or semicolon), with "(f1)" when the help
    screen holds more of it: "no kprobes (kernel without CONFIG_KPROBES)" -> "no kprobes (f1)"."""
    cuts = [i for i in (sentence.find(" ("), sentence.find(": "), sentence.find("; ")) if i > 0]
    head = sentence[:min(cuts)] if cuts else sentence
    if len(head) > limit:  # cut at a word: never half a word
        head = head[:limit].rsplit(" ", 1)[0] + "…"
    return head if head == sentence else f"{head} (f1)"


def _short(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
