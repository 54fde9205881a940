"""kprobe_events lines (Documentation/trace/kprobetrace.rst) -> Probe. Being written."""

from __future__ import annotations

from ktui.errors import UsageError
from ktui.probes.model import Probe


def parse_kprobe_event(line: str) -> Probe:
    raise UsageError("kprobe_events lines are not supported yet")
