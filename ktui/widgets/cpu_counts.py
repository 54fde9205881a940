"""Per-CPU counts: hits, rate with a sparkline, and loss (dropped, filtered) per probe per CPU."""

from __future__ import annotations

from collections import deque

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ktui.events import ProbeCounters
from ktui.textsafe import term_safe
from ktui.units import human_count, human_rate
from ktui.widgets.value_format import AtWidth, bar, sparkline

HISTORY = 30  # rate samples kept per CPU for the sparkline


class CpuCounts(Static):
    """Renders the counters it is given; keeps a short rate history for sparklines."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.names: dict[int, str] = {}
        self.counters: dict[int, ProbeCounters] = {}
        self.failed: dict[int, str] = {}  # probe id -> why it failed to attach (no rows: it counts nothing)
        self._prev: dict[int, tuple[float, list[int], list[int]]] = {}  # clock, hits, kept per CPU
        self._rates: dict[tuple[int, int], deque[float]] = {}
        self._kept_rates: dict[tuple[int, int], float] = {}  # events kept by a filter per second, per CPU
        # A replay's window: per-CPU rate history across it and its length; counters of a selected
        # window replace the file's until the window is cleared (None: the source's own counters).
        self._window: tuple[dict[int, list[list[float]]], float] | None = None
        # Probes whose window counts are the counters taken every second (count-only probes), with the
        # seconds those counts cover: the note beside their name and their rate/s are over that span.
        self._coarse: dict[int, float] = {}
        self._losses_known = True  # False: a window of a recording without counters over time
        self.message = "No counters yet: add a probe (the Probes tab) or wait for events."

    def reset(self) -> None:
        """A new source counts from zero: forget the old rates."""
        self.forget_rates()
        self._window = None
        self._coarse, self._losses_known = {}, True
        self.counters = {}
        self.update(self._table())

    def forget_rates(self) -> None:
        """The source's clock jumped (a replay's seek): rates between frames start over. Nothing is
        redrawn: a shown window's rates and counts stay as they are."""
        self._prev.clear()
        self._rates.clear()
        self._kept_rates.clear()

    def show_window(self, counters: dict[int, ProbeCounters] | None, history: dict[int, list[list[float]]],
                    duration_s: float, coarse: dict[int, float] | None = None, losses_known: bool = True) -> None:
        """A replay's window: rate/s is each CPU's events over the window's length, the sparkline its
        rate across the window (``history``: probe -> CPU -> events/s per bin). ``counters`` None keeps
        the source's own counters (the whole recording's, from the file). ``coarse``: probes counted at
        1 s resolution (only in the kernel), with the seconds their counts cover; ``losses_known`` False:
        the recording cannot say what was dropped or filtered in a window, so those columns say so
        instead of a false 0."""
        self._window = (history, duration_s) if duration_s > 0 else None
        self._coarse = dict(coarse or {}) if counters is not None else {}
        self._losses_known = losses_known or counters is None
        if counters is not None:
            self.counters = dict(counters)
        self.update(self._table())

    def set_counters(self, counters: dict[int, ProbeCounters], elapsed_s: float, names: dict[int, str],
                     failed: dict[int, str] | None = None) -> None:
        """``elapsed_s``: the source's clock in seconds (recording time in a replay), for rates;
        ``failed``: the probes that failed to attach, with their reason (shown instead of 0 hits)."""
        self.names = dict(names)
        self.failed = dict(failed or {})
        for probe_id, c in counters.items():
            prev = self._prev.get(probe_id)
            if prev is not None and elapsed_s > prev[0]:
                dt = elapsed_s - prev[0]
                for cpu, hits in enumerate(c.hits):
                    before = prev[1][cpu] if cpu < len(prev[1]) else 0
                    self._rates.setdefault((probe_id, cpu), deque(maxlen=HISTORY)).append(max(0, hits - before) / dt)
                for cpu, kept in enumerate(c.delivered):
                    before = prev[2][cpu] if cpu < len(prev[2]) else 0
                    self._kept_rates[(probe_id, cpu)] = max(0, kept - before) / dt
            if prev is None or elapsed_s > prev[0]:
                self._prev[probe_id] = (elapsed_s, list(c.hits), list(c.delivered))
        shape = {pid: len(c.hits) for pid, c in counters.items()}
        relayout = shape != {pid: len(c.hits) for pid, c in self.counters.items()}
        self.counters = dict(counters)
        self.update(self._table(), layout=relayout)  # same rows: no relayout of the screen

    def on_resize(self) -> None:
        self.update(self._table())

    def _table(self):
        if not self.counters:
            return Text(self.message, style="dim")
        # Laid out when drawn, for the width drawn at (AtWidth): never for a stale or guessed width.
        return AtWidth(lambda width: Group(*(self._probe_table(pid, width) for pid in sorted(self.counters))))

    def _columns(self, rows: list[dict[str, str]], width_avail: int) -> list[str]:
        """The columns that fit this pane's width, least useful dropped first; counts are never cut
        (they are at most six cells with K/M)."""
        # A probe with a filter: hits count every call, "kept" what passed the filter (what the stream
        # and the counts show), so a high rate is not misread as the filtered rows' rate.
        kept = ["kept"] if rows and "kept" in rows[0] else []
        order = ["cpu", "hits", *kept, "rate/s", *[k + "/s" for k in kept], "share", "rate history",
                 "dropped", "filtered"]
        fixed = {"share": 10, "rate history": 12}

        def width(col: str) -> int:
            return fixed.get(col) or max([len(col)] + [len(r[col]) for r in rows])

        least_useful = ["rate history", "share", "filtered", "rate/s", "kept/s"]
        for n in range(len(least_useful) + 1):
            cols = [c for c in order if c not in least_useful[:n]]
            if sum(width(c) + 2 for c in cols) <= width_avail:
                return cols
        return [c for c in ("cpu", "hits", "kept", "dropped") if c in order]

    def _probe_table(self, probe_id: int, width: int) -> Table | Text:
        c = self.counters[probe_id]
        t = c.totals()
        title = Text(f"{term_safe(self.names.get(probe_id, f'probe{probe_id}'))}  ", style="bold")
        if probe_id in self.failed:  # it never ran: "0 hits" would read as "never called"
            title.append(f"failed: {term_safe(self.failed[probe_id])}", style="bold red")
            return title
        title.append(f"{human_count(t['hits'])} hits", style="")
        if probe_id in self._coarse:
            title.append(f"  window counts at 1 s resolution (counted in the kernel; over "
                         f"{self._coarse[probe_id]:.1f} s)", style="dim")
        if not self._losses_known:
            title.append("  lost/dropped counts are not known per window in this recording", style="dim")
        if t["dropped"]:
            title.append(f"  {human_count(t['dropped'])} dropped", style="bold red")
        filters = t["filtered"] > 0
        if filters:
            title.append(f"  {human_count(t['delivered'])} kept by its filter", style="bold")
        total = t["hits"] or 1
        rows = []
        for cpu, hits in enumerate(c.hits):
            rates = list(self._rates.get((probe_id, cpu), ()))
            rate = rates[-1] if rates else 0.0
            if self._window is not None:  # a replay's window: its own rates, not deltas between frames
                per_cpu = self._window[0].get(probe_id, [])
                rates = per_cpu[cpu] if cpu < len(per_cpu) else []
                rate = hits / (self._coarse.get(probe_id) or self._window[1])
            rows.append({
                "cpu": str(cpu), "hits": human_count(hits), "rate/s": human_rate(rate),
                "share": bar(hits / total, 10), "rate history": sparkline(rates, 12).ljust(12),
                "dropped": human_count(c.dropped[cpu] if cpu < len(c.dropped) else 0) if self._losses_known else "?",
                "filtered": human_count(c.filtered[cpu] if cpu < len(c.filtered) else 0) if self._losses_known else "?",
                **({"kept": human_count(c.delivered[cpu] if cpu < len(c.delivered) else 0),
                    "kept/s": human_rate(self._kept_rate(probe_id, cpu, c))} if filters else {}),
            })
        cols = self._columns(rows, width)
        table = Table(title=title, title_justify="left", box=None, padding=(0, 1), show_edge=False)
        styles = {"share": "green", "rate history": "cyan", "filtered": "dim"}
        for col in cols:
            table.add_column(col, justify="left" if col in ("share", "rate history") else "right", no_wrap=True)
        for cpu, row in enumerate(rows):
            dropped = c.dropped[cpu] if cpu < len(c.dropped) else 0
            cells = []
            for col in cols:
                style = styles.get(col, "")
                if col == "dropped":
                    style = "bold red" if dropped else "dim"
                cells.append(Text(row[col], style=style))
            table.add_row(*cells)
        return table

    def _kept_rate(self, probe_id: int, cpu: int, c: ProbeCounters) -> float:
        """Events the filter kept per second on this CPU: what the stream and the counts receive, beside
        the hit rate (every call, kept or not)."""
        if self._window is not None:  # a replay's window: over its length, as its rate/s is
            kept = c.delivered[cpu] if cpu < len(c.delivered) else 0
            return kept / (self._coarse.get(probe_id) or self._window[1])
        return self._kept_rates.get((probe_id, cpu), 0.0)

    def cpu_total(self, probe_id: int) -> int:
        c = self.counters.get(probe_id)
        return sum(c.hits) if c else 0
