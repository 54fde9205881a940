"""SystemTap probe points and small scripts -> Probes. Being written."""

from __future__ import annotations

from ktui.errors import UsageError
from ktui.probes.model import Probe


def parse_systemtap(text: str, catalog=None) -> list[Probe]:
    raise UsageError("SystemTap probe points are not supported yet")
