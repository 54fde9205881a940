"""Histograms as horizontal bars, one block per probe and value."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from ktui.events import Histogram
from ktui.textsafe import term_safe
from ktui.units import LOG2_TIME_NOTE, bucket_label, human_count
from ktui.widgets.value_format import AtWidth, bar

BAR_W = 40


class Histograms(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.histograms: list[Histogram] = []
        self.names: dict[int, str] = {}
        self.message = "No histograms: give a probe the hist action (a value or latency) in the Probes tab."
        self.update(self._render_all())

    def set_histograms(self, histograms: list[Histogram], names: dict[int, str]) -> None:
        if histograms == self.histograms and names == self.names:
            return
        self.histograms = list(histograms)
        self.names = dict(names)
        self.update(self._render_all())

    def on_resize(self) -> None:
        self.update(self._render_all())

    @staticmethod
    def _bar_width(label_width: int, width: int) -> int:
        """The bar takes what the label and the count leave (at most BAR_W): nothing wraps at 80 columns."""
        room = width - label_width - 10
        return max(8, min(BAR_W, room))

    def _render_all(self):
        if not self.histograms:
            return Text(self.message, style="dim")
        return AtWidth(self._blocks)  # laid out for the width it is drawn at (a hidden tab has none)

    def _blocks(self, width: int) -> Group:
        blocks = []
        for h in self.histograms:
            name = term_safe(self.names.get(h.probe_id, f"probe{h.probe_id}"))
            total = sum(c for _, _, c in h.buckets)
            note = f"; {LOG2_TIME_NOTE}" if h.value == "latency" and h.scale == "log2" else ""
            blocks.append(Text(f"{name}: {term_safe(h.value)} ({term_safe(h.scale)}, {human_count(total)} samples{note})", style="bold"))
            buckets = [b for b in h.buckets if b[2]] or h.buckets
            if buckets:  # show the span from the first to the last non-empty bucket
                lo = h.buckets.index(buckets[0])
                hi = h.buckets.index(buckets[-1])
                buckets = h.buckets[lo:hi + 1]
            top = max((c for _, _, c in buckets), default=0) or 1
            labels = [bucket_label(lo_, hi_, latency=h.value == "latency", scale=h.scale) for lo_, hi_, _ in buckets]
            label_w = max((len(s) for s in labels), default=0)
            for label, (_, _, count) in zip(labels, buckets):
                line = Text(f"{label:>{label_w}} ")
                line.append(bar(count / top, self._bar_width(label_w, width)), style="green")
                line.append(f" {human_count(count)}")
                blocks.append(line)
            blocks.append(Text(""))
        return Group(*blocks)
