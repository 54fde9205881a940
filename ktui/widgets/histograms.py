"""Histograms as horizontal bars, one block per probe and value."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from ktui.events import Histogram
from ktui.textsafe import term_safe
from ktui.widgets.value_format import bar, human_count, human_ns

BAR_W = 40


def _label(low: int, high: int, value: str) -> str:
    fmt = human_ns if value == "latency" else (lambda v: human_count(v) if v >= 1000 else str(v))
    return f"[{fmt(low)}, {fmt(high)})"


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

    def _render_all(self):
        if not self.histograms:
            return Text(self.message, style="dim")
        blocks = []
        for h in self.histograms:
            name = term_safe(self.names.get(h.probe_id, f"probe{h.probe_id}"))
            total = sum(c for _, _, c in h.buckets)
            blocks.append(Text(f"{name}: {term_safe(h.value)} ({term_safe(h.scale)}, {total:,} samples)", style="bold"))
            buckets = [b for b in h.buckets if b[2]] or h.buckets
            if buckets:  # show the span from the first to the last non-empty bucket
                lo = h.buckets.index(buckets[0])
                hi = h.buckets.index(buckets[-1])
                buckets = h.buckets[lo:hi + 1]
            top = max((c for _, _, c in buckets), default=0) or 1
            labels = [_label(lo_, hi_, h.value) for lo_, hi_, _ in buckets]
            width = max((len(s) for s in labels), default=0)
            for label, (_, _, count) in zip(labels, buckets):
                line = Text(f"{label:>{width}} ")
                line.append(bar(count / top, BAR_W), style="green")
                line.append(f" {count:,}")
                blocks.append(line)
            blocks.append(Text(""))
        return Group(*blocks)
