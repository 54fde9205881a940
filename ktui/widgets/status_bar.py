"""The status line: rate, loss accounting, probe states, and the kernel's warnings."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ktui.events import ProbeState, Update
from ktui.textsafe import term_safe
from ktui.widgets.value_format import human_count


class StatusBar(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.mode = "starting"  # "live", "replay", "demo", "stopped"
        self.paused = False  # a replay's clock is paused
        self.following = True  # the stream shows the newest events
        self.rate = 0.0
        self.delivered = self.dropped = self.filtered = 0
        self.probes: list[ProbeState] = []
        self.warnings: list[str] = []
        self.message = ""
        self.recording = ""  # the file a recording from the app writes to, while it runs
        self._last: tuple[float, int] | None = None
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
        if self._last is not None and now > self._last[0]:
            self.rate = (self.delivered - self._last[1]) / (now - self._last[0])
        if self._last is None or now > self._last[0] + 0.5 or now < self._last[0]:
            self._last = (now, self.delivered)
        if update.probes:
            self.probes = list(update.probes)
        if update.message:
            self.message = update.message
        self.update(self._text(), layout=False)  # one line, fixed size: no relayout per frame

    def set_state(self, *, mode: str | None = None, paused: bool | None = None, message: str | None = None,
                  warnings: list[str] | None = None, following: bool | None = None,
                  recording: str | None = None) -> None:
        if recording is not None:
            self.recording = recording
        if following is not None:
            self.following = following
        if mode is not None:
            self.mode = mode
        if paused is not None:
            self.paused = paused
        if message is not None:
            self.message = message
        if warnings is not None:
            self.warnings = warnings
        self.update(self._text(), layout=False)  # one line, fixed size: no relayout per frame

    def _text(self) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        style = {"live": "bold green", "replay": "bold yellow", "demo": "bold yellow"}.get(self.mode, "bold")
        t.append(f" {term_safe(self.mode.upper())} ", style=f"reverse {style}")
        if self.recording:  # first after the mode: an 80-column line must still show it
            t.append(" ● REC ", style="reverse bold red")
        if self.paused:
            t.append(" PAUSED ", style="reverse bold")
        t.append(" FOLLOW" if self.following else " HELD", style="" if self.following else "bold yellow")
        t.append(f" {human_count(self.rate)} ev/s", style="bold")
        t.append(f"  delivered {self.delivered:,}")
        t.append(f"  dropped {self.dropped:,}", style="bold red" if self.dropped else "")
        t.append(f"  filtered {self.filtered:,}")
        if self.probes:
            attached = sum(p.status in ("attached", "recorded") for p in self.probes)
            failed = sum(p.status == "failed" for p in self.probes)
            t.append(f"  probes {attached}/{len(self.probes)}")
            if failed:
                t.append(f" ({failed} failed)", style="bold red")
        if self.warnings:
            t.append(f"  ! {term_safe(self.warnings[0])}", style="yellow")
        if self.message:
            t.append(f"  {term_safe(self.message)}", style="italic")
        return t
