"""Which hardware perf events this machine's PMU offers, decided by opening each one
(on doctor's own process, disabled, closed at once) - a virtual machine often offers none."""

from __future__ import annotations

import os

from ktui.doctor.report import Check


def hardware_events() -> Check:
    from ktui.perfopen import CPU_PMU, hardware_event_status
    from ktui.probes.perf_events import HARDWARE

    offered: list[str] = []
    refused: list[str] = []
    evidence = [f"{CPU_PMU}: {'present' if os.path.isdir(CPU_PMU) else 'absent'}"]
    reasons: dict[str, list[str]] = {}
    for ev in HARDWARE:
        ok, why = hardware_event_status(ev.config)
        evidence.append(f"perf_event_open(hardware:{ev.name}, sampling): {why}")
        (offered if ok else refused).append(ev.name)
        if not ok:
            reasons.setdefault(why, []).append(ev.name)
    if not offered:
        why = next(iter(reasons)) if len(reasons) == 1 else "; ".join(f"{', '.join(n)}: {r}" for r, n in reasons.items())
        return Check(False, f"no hardware events can be sampled: {why}; software events (software:*) still work",
                     evidence, value="")
    text = f"{len(offered)} of {len(HARDWARE)} can be sampled: {', '.join(offered)}"
    if refused:
        text += "; not: " + "; ".join(f"{', '.join(n)} ({r})" for r, n in reasons.items())
    return Check(True, text, evidence, value=",".join(offered))
