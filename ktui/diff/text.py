"""A RecordingDiff as plain text lines that fit a terminal (80 columns by default).

Everything from the recordings goes through term_safe. Table rows are cut, so the
layout holds at any width from 60 columns up; sentences (notes, the noise rule) and
stack frames are wrapped instead: a cut sentence loses its advice, a cut stack its caller.
"""

from __future__ import annotations

import textwrap

from ktui.diff.compare import HistogramDiff, RecordingDiff, StackDiff
from ktui.diff.flame import changed_paths
from ktui.textsafe import term_safe
from ktui.units import bucket_label, human_count, human_rate

BAR = "█"
MIN_WIDTH = 60


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _cut_left(text: str, width: int) -> str:
    """Probe names differ at their end (sys_enter_openat, sys_exit_openat): cut the start."""
    return text if len(text) <= width else "…" + text[len(text) - width + 1:]


def _wrap(text: str, width: int, indent: str = "      ") -> list[str]:
    """A sentence or a frame list over as many lines as it needs, continuation lines indented."""
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [""]


def _signed(n: int) -> str:
    return ("+" if n > 0 else "-" if n < 0 else "±") + human_count(abs(n))


def _secs(ns: int) -> str:
    return f"{ns / 1e9:.3g} s"


def render(diff: RecordingDiff, width: int = 80, *, max_stacks: int = 5, max_hist_rows: int = 12,
           all_probes: bool = False, max_flame: int = 8, all_hint: str = "--all") -> list[str]:
    width = max(MIN_WIDTH, width)
    out: list[str] = []
    out.append(_cut(f"A {term_safe(diff.a.path)}  ({term_safe(diff.a.host)}, {_secs(diff.a.duration_ns)}, "
                    f"{human_count(diff.a.events)} events)", width))
    out.append(_cut(f"B {term_safe(diff.b.path)}  ({term_safe(diff.b.host)}, {_secs(diff.b.duration_ns)}, "
                    f"{human_count(diff.b.events)} events)", width))
    flagged = diff.flagged
    hists = sum(h.flagged for h in diff.histograms)
    stacks = sum(s.flagged for s in diff.stacks)
    changed = [f"{n} of {total} {what}" for n, total, what in ((len(flagged), len(diff.probes), "probe(s)"),
                                                                (hists, len(diff.histograms), "histogram(s)"),
                                                                (stacks, len(diff.stacks), "stack(s)")) if n]
    out.append(f"changed beyond noise (!): {', '.join(changed)}" if changed else
               f"no probe changed beyond noise ({len(diff.probes)} compared)")
    out.extend(_wrap(f"noise rule: {diff.noise_rule}", width))
    for note in diff.notes:
        out.extend(_wrap(f"note: {term_safe(note)}", width))
    out.append("")
    out.extend(_probes(diff, width, all_probes, all_hint))
    for h in diff.histograms:
        if h.flagged or all_probes:
            out.append("")
            out.extend(_histogram(h, width, max_hist_rows))
    if diff.stacks:
        out.append("")
        out.extend(_stacks(diff.stacks, width, max_stacks))
        flame = _flame(diff, width, max_flame)
        if flame:
            out.append("")
            out.extend(flame)
    return out


def _flame(diff: RecordingDiff, width: int, max_lines: int) -> list[str]:
    """The differential flame graph as a call tree: root first, only frames that changed beyond noise,
    largest change first; a frame whose callees did not change is a leaf here."""
    paths = list(changed_paths(diff.flame, max_lines))
    if not paths:
        return []
    lines = ["  FLAME Δ: frames that changed beyond noise, callers first (A → B)"]
    num_w = 22
    for p in paths:
        indent = "  " * min(p.depth, 8)
        label = " > ".join(term_safe(n) for n in p.names)
        counts = f"{human_count(p.a)} → {human_count(p.b)} {_signed(p.delta):>6}"
        name_w = width - 4 - len(indent) - num_w
        lines.append(f"  {indent}{_cut_left(label, name_w) if p.depth == 0 else _cut(label, name_w):<{name_w}}"
                     f"  {counts:>{num_w}}")
    return lines


def _probes(diff: RecordingDiff, width: int, all_probes: bool, all_hint: str) -> list[str]:
    num = 7
    name_w = width - 2 - 3 * (num + 1) - 16
    lines = [f"  {'PROBE':<{name_w}} {'A':>{num}} {'B':>{num}} {'Δ':>{num}} {'RATE/s A → B':>15}"]
    shown = diff.probes if all_probes else [p for p in diff.probes if p.flagged] or diff.probes[:5]
    for p in shown:
        mark = "!" if p.flagged else " "
        tag = {"new": " (new)", "gone": " (gone)"}.get(p.presence, "")
        name = _cut_left(term_safe(p.key), name_w - len(tag)) + tag
        rates = _cut(f"{human_rate(p.rate_a)} → {human_rate(p.rate_b)}", 15)
        lines.append(f"{mark} {name:<{name_w}} {human_count(p.count_a):>{num}} {human_count(p.count_b):>{num}} "
                     f"{_signed(p.delta):>{num}} {rates:>15}")
    hidden = len(diff.probes) - len(shown)
    if hidden:
        lines.append(f"  ({hidden} more within noise; {all_hint} shows them)")
    return lines


def _histogram(h: HistogramDiff, width: int, max_rows: int) -> list[str]:
    latency = h.value == "latency"

    def med(b: tuple[int, int] | None) -> str:
        return bucket_label(b[0], b[1], latency=latency, scale=h.scale) if b else "none"

    shift = f", shift {h.shift:+d} bucket(s)" if h.shift else ""
    head = [_cut(f"{'!' if h.flagged else ' '} HISTOGRAM {term_safe(h.value)} of "
                 + _cut_left(f"{term_safe(h.key)} ({h.scale})", width - 16 - len(term_safe(h.value))), width),
            _cut(f"  median {med(h.median_a)} → {med(h.median_b)}{shift}", width)]
    label_w = max([len(bucket_label(lo, hi, latency=latency, scale=h.scale)) for lo, hi, _, _ in h.buckets] + [5])
    col = (width - 2 - label_w - 3) // 2
    bar_w = max(4, col - 8)
    peak = max([max(na, nb) for _, _, na, nb in h.buckets] + [1])
    lines = [*head, f"  {'':<{label_w}}  {'A (' + human_count(h.total_a) + ')':<{col}} "
                    f"{'B (' + human_count(h.total_b) + ')'}"]
    rows = h.buckets
    if len(rows) > max_rows:  # keep the rows around both medians: where the change is
        rows = sorted(rows, key=lambda r: -max(r[2], r[3]))[:max_rows]
        rows.sort()
    for lo, hi, na, nb in rows:
        cells = []
        for n in (na, nb):
            bar = BAR * (0 if n == 0 else max(1, round(bar_w * n / peak)))
            cells.append(_cut(f"{bar} {human_count(n)}" if bar else human_count(n), col))
        lines.append(f"  {bucket_label(lo, hi, latency=latency, scale=h.scale):<{label_w}}  "
                     f"{cells[0]:<{col}} {cells[1]:<{col}}".rstrip())
    if len(rows) < len(h.buckets):
        lines.append(f"  ({len(h.buckets) - len(rows)} smaller bucket(s) not shown; --json has them all)")
    return lines


def stack_line(s: StackDiff) -> str:
    """The frames of a stack on one line, innermost first: kernel frames, then user frames after '|'."""
    parts = [" < ".join(term_safe(f) for f in s.kernel)] if s.kernel else []
    if s.user:
        parts.append(" < ".join(term_safe(f) for f in s.user))
    return " | ".join(parts) or "(no frames)"


def _stacks(stacks: list[StackDiff], width: int, max_stacks: int) -> list[str]:
    changed = [s for s in stacks if s.delta != 0]
    lines = [f"  STACKS: {len(changed)} of {len(stacks)} changed (largest change first; frames innermost first)"]
    for s in changed[:max_stacks]:
        head = (f"{'!' if s.flagged else ' '} {_signed(s.delta):>7} {s.status:<6} "
                f"{human_count(s.count_a)} → {human_count(s.count_b)}  {term_safe(s.key)}")
        lines.append(_cut(head, width))
        for tag, frames in (("k", s.kernel), ("u", s.user)):
            if frames:
                lines.extend(_wrap(f"    {tag}: " + " < ".join(term_safe(f) for f in frames), width, " " * 7))
    if len(changed) > max_stacks:
        lines.append(f"  ({len(changed) - max_stacks} more changed stack(s); --stacks N or --json shows them)")
    return lines
