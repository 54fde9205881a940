"""Placing USDT markers and perf software/hardware events, and their attach plans.

A USDT probe is a uprobe at each location of the marker in its file, attached through
the uprobe PMU with ``ref_ctr_offset`` = the semaphore's file offset: the kernel itself
raises the semaphore in every process mapping the file while the probe exists, and
lowers it when the probe's fd is closed (by ktui, or by the kernel when ktui dies, even
by SIGKILL). Its arguments are fetched from the operands the marker's note describes,
decoded into registers and offsets (``ktui.catalog.usdt``), never pasted as text.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ktui.errors import KtuiError
from ktui.probes.model import Arg, Fetch, Probe, ProbeKind

from ktui.compiler.program import AttachPlan
from ktui.compiler.sites import Site

if TYPE_CHECKING:
    from ktui.catalog.usdt import UsdtMarker
    from ktui.probes.filter_ast import Node


def _markers(probe: Probe) -> tuple[UsdtMarker, ...]:
    from ktui.catalog.usdt import read_markers

    if not probe.binary:
        raise KtuiError("a USDT probe needs the program or library that holds the marker")
    provider, _, name = probe.target.rpartition(":")
    markers = read_markers(probe.binary)
    if not markers:
        raise KtuiError(f"{probe.binary} has no USDT markers (no .note.stapsdt section)")
    hits = [m for m in markers if m.name == name and (not provider or m.provider == provider)]
    if not hits:
        from ktui.catalog.usdt import find_marker

        find_marker(probe.binary, provider or None, name)  # raises with the markers that exist
    if len({m.provider for m in hits}) > 1:
        raise KtuiError(f"{probe.binary} has a marker {name} in several providers; name one: "
                        f"usdt:{probe.binary}:PROVIDER:{name}")
    return tuple(hits)


def place_usdt(probe: Probe, latency: bool) -> tuple[Site, list[str], str | None]:
    """(site, notes, error) of a USDT probe; fallback.place builds its Placement."""
    if latency:
        raise KtuiError("a USDT marker has no return to measure latency against")
    markers = _markers(probe)
    m = markers[0]
    site = Site("usdt", f"{m.provider}:{m.name}", usdt=markers)
    where = ", ".join(f"0x{x.offset:x}" for x in markers)
    notes = [f"{probe.spec}: a uprobe at file offset{'s' if len(markers) > 1 else ''} {where} of {m.path}"]
    if any(x.semaphore for x in markers):
        sems = ", ".join(sorted({f"0x{x.semaphore_offset:x}" for x in markers if x.semaphore}))
        notes.append(f"{probe.spec}: semaphore at file offset {sems}, raised by the kernel while the probe is "
                     "attached and lowered when it is detached or ktui dies (uprobe PMU with ref_ctr_offset)")
    from ktui.perfopen import ref_ctr_shift

    error = None
    if any(x.semaphore for x in markers) and ref_ctr_shift() is None:
        error = (f"{probe.spec} guards its marker with a semaphore, and this kernel's uprobe PMU has "
                 "no ref_ctr_offset support (Linux 4.20+) to raise it")
    return site, notes, error


def lower_usdt(probe: Probe, site: Site, wanted: list[str]) -> Probe:
    """The probe with its USDT arguments turned into register/memory fetches the fetch
    compiler already knows. Every argument is fetched when the probe names none (what
    bpftrace's arg0..argN hold, by the provider's names where ktui knows them); names a
    filter or action uses (``wanted``) are fetched under those names."""
    from ktui.catalog.usdt import arg_fetch, arg_index, arg_names

    marker = site.usdt[0]
    label = f"USDT marker {marker.provider}:{marker.name}"
    fetches: list[Fetch] = []
    for f in probe.fetches:
        if isinstance(f.expr, Arg):
            i = f.expr.index - 1 if f.expr.name is None and f.expr.index else arg_index(marker, f.expr.name or "")
            if i is None or not 0 <= i < len(marker.args):
                known = ", ".join(n for n, _ in arg_names(marker)) or "none"
                raise KtuiError(f"{label} has no argument {f.expr.name or f'$arg{f.expr.index}'} (its arguments: {known})")
            lowered = arg_fetch(marker, i, f.name)
            fetches.append(Fetch(f.name, lowered.expr, f.type or lowered.type))
        else:
            fetches.append(f)
    names = {f.name for f in fetches}
    if not probe.fetches:
        for i, (name, _) in enumerate(arg_names(marker)):
            try:
                fetches.append(arg_fetch(marker, i, name))
            except KtuiError:
                continue  # an argument ktui cannot decode is left out of the default capture
            names.add(name)
    for name in wanted:
        if name not in names and (i := arg_index(marker, name)) is not None:
            fetches.append(arg_fetch(marker, i, name))
            names.add(name)
    return dataclasses.replace(probe, fetches=fetches)


def place_perf_event(probe: Probe, latency: bool) -> tuple[Site, str | None]:
    """(site, error) of a perf software/hardware event probe."""
    from ktui.probes.perf_events import lookup

    if latency:
        raise KtuiError(f"{probe.kind} events have no return to measure latency against")
    ev = lookup(str(probe.kind), probe.target)
    if ev is None:
        raise KtuiError(f"{probe.target!r} is not a {probe.kind} event")
    if probe.period <= 0:
        raise KtuiError(f"a {probe.kind} event needs a period (events per sample) above 0")
    error = None
    if probe.kind is ProbeKind.HARDWARE:
        from ktui.perfopen import hardware_event_status

        ok, why = hardware_event_status(ev.config)
        if not ok:
            error = (f"{probe.spec} cannot be sampled on this machine: {why}; "
                     "`ktui doctor` lists the hardware events this machine offers")
    return Site("perf_event", probe.spec), error


def site_plan(probe: Probe, site: Site, fn: str, target_pid: int | None) -> AttachPlan:
    if site.kind == "usdt":
        locations = tuple((m.offset, m.semaphore_offset) for m in site.usdt)
        return AttachPlan("usdt", fn, site.prog_type, event=site.event, binary=site.usdt[0].path,
                          offset=locations[0][0], pid=target_pid if target_pid else -1, locations=locations)
    from ktui.probes.perf_events import lookup

    ev = lookup(str(probe.kind), probe.target)
    if ev is None:
        raise KtuiError(f"{probe.target!r} is not a {probe.kind} event")
    return AttachPlan("perf_event", fn, site.prog_type, event=probe.spec, ev_type=ev.type, ev_config=ev.config,
                      sample_period=probe.period)


def wanted_names(probe: Probe, filter_node: Node | None) -> list[str]:
    """Names the filter and the actions use (they may name marker arguments)."""
    out: list[str] = []
    if filter_node is not None:
        from ktui.probes.filter_ast import names_in

        out += [n.name for n in names_in(filter_node)]
    for action in probe.actions:
        out += list(action.key)
        if action.value:
            out.append(action.value)
    return out
