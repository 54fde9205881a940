"""Loading and attaching: the session's probes compiled, loaded into BPF objects, attached, switched
on and off, removed; and the ids they are known by.

Ids are handed out here, never taken from list positions by callers: the probes a session is
built with get 0..n-1 in order (known before anything loads), each ``add_probe`` the next one,
taken under ``lock`` before the (second-long) compile, so two quick submits never share one.

Lock discipline: ``lock`` (re-entrant) guards the units, the states, the ids and the maps from
ids to compiled probes and units. The drain and the aggregates take snapshots under it and do
their slow work (reading rings and maps) outside it. Compiling and loading a program also runs
outside it; only the unit's entry into the session is under it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from ktui.compiler.program import CompiledProbe, CompiledProgram
from ktui.engine.attach import AttachError, Attachment, attach_plan, detach
from ktui.engine.compiler_memory import release_compiler_memory
from ktui.engine.counters import EntryCounters, KernelCounters
from ktui.engine.ringbuf import PAGE, RingPoller, RingReader
from ktui.engine.stacks import StackReader
from ktui.engine.unit import Unit, has_table
from ktui.errors import KtuiError, UsageError
from ktui.events import ProbeLayout, ProbeState
from ktui.probes.model import Probe

RING_BUDGET_BYTES = 64 << 20  # ring memory for a whole session, shared by its probes
RING_MIN_BYTES, RING_MAX_BYTES = 1 << 20, 16 << 20  # RSS counts a ring twice (mapped twice)


def default_ring_pages(n_probes: int) -> int:
    """Pages per ring: big rings ride out a drain thread's scheduling hiccups at millions of events/s
    (1 MiB lasts 4 ms at 3.9 M/s here; a busy 2-core machine can stall a thread for 90 ms),
    within a session-wide budget."""
    per_ring = RING_BUDGET_BYTES // max(n_probes, 1)
    size = 1 << max(per_ring, 1).bit_length() - 1
    size = min(max(size, RING_MIN_BYTES), RING_MAX_BYTES)
    return max(size // PAGE, 1)


class Loader:
    """The session's loaded probes: units, ids, states, layouts."""

    def __init__(self, probes: Iterable[Probe], *, catalog: Any = None, ring_pages: int | None = None,
                 trace_self: bool = False, program: CompiledProgram | None = None):
        self.probes: list[Probe] = list(probes)
        self.probe_ids: list[int] = list(range(len(self.probes)))
        self.catalog = catalog
        self.ring_pages = ring_pages
        # ktui's own system calls (opening files, bpf(), its threads waking) would flood a stream
        # of its own making: its process is excluded in the kernel unless asked.
        self.trace_self = trace_self
        self.target_pid: int | None = None
        self.target_cgroup: int | None = None  # a started command's cgroup: it and what it starts are traced
        self.layouts: dict[int, ProbeLayout] = {}
        self.states: dict[int, ProbeState] = {}
        self.notes: list[str] = []
        self.compiled: dict[int, CompiledProbe] = {}  # session id -> its compiled probe
        self.unit_of: dict[int, Unit] = {}
        self.removed: set[int] = set()
        self.lock = threading.RLock()
        self.stopped = False  # set under lock by the source's stop(): nothing loads after it
        self._units: list[Unit] = []
        self._next_id = len(self.probes)
        self._precompiled = program
        self._poller: RingPoller | None = None

    # ------------------------------------------------------------------ what is loaded

    def units(self) -> list[Unit]:
        """A snapshot of the loaded units (the list may change as soon as the lock is let go)."""
        with self.lock:
            return list(self._units)

    def readers(self) -> list[tuple[Unit, int, RingReader]]:
        with self.lock:
            return [(u, gid, r) for u in self._units for gid, r in u.readers]

    def has_rings(self) -> bool:
        with self.lock:
            return any(u.readers for u in self._units)

    def watch(self, poller: RingPoller | None) -> None:
        """Every ring mapped now and later is waited on by ``poller`` (None: no longer)."""
        with self.lock:
            self._poller = poller
            if poller is not None:
                for _, _, reader in self.readers():
                    poller.add(reader.fd)

    def attached(self) -> bool:
        return any(s.status in ("attached", "disabled") for s in self.states.values())

    # ------------------------------------------------------------------ loading

    def load_session(self) -> None:
        """Compile (unless compiled already) and load the probes the session was built with."""
        program = self._precompiled or self.compile(self.probes)
        if self.target_pid and not program.target_pid:
            program.target_pid = self.target_pid
        self.load_unit(program, {cp.probe_id: cp.probe_id for cp in program.probes})

    def compile(self, probes: Sequence[Probe]) -> CompiledProgram:
        from ktui.compiler import compile_session

        pages = self.ring_pages or default_ring_pages(len(probes))
        # A started command traced through its cgroup: uprobes attach for every process (the program's
        # cgroup check selects the command and what it starts); attached for the command's pid alone,
        # a uprobe on a program the command runs as a child (`-- sh -c PROG`) saw nothing.
        pid = None if self.target_cgroup else self.target_pid
        return compile_session(list(probes), catalog=self.catalog, target_pid=pid, ring_pages=pages)

    def load_unit(self, program: CompiledProgram, global_ids: dict[int, int]) -> Unit:
        from ktui.bccload import load_bcc
        from ktui.compiler.verify import bpf_class

        load_bcc()
        try:
            # BCC's auto-attach off: fentry programs are named kfunc__<fn>, which plain BPF would attach
            bpf = bpf_class()(text=program.c_text.encode())
        except Exception as err:  # BCC: "Failed to compile BPF module" / verifier text on stderr
            raise KtuiError("the generated BPF program did not compile or load; `ktui compile` shows it "
                            f"({str(err).splitlines()[0] if str(err) else type(err).__name__}).",
                            detail=str(err)) from None
        finally:
            release_compiler_memory()  # clang's heap and code pages: nothing of it runs until the next compile
        unit = Unit(bpf, program, global_ids)
        try:
            self._configure(unit)
            for cp in program.probes:
                gid = global_ids[cp.probe_id]
                self.compiled[gid] = cp
                self.unit_of[gid] = unit
                layout = ProbeLayout(gid, cp.layout.name, cp.layout.spec, cp.layout.fields) \
                    if gid != cp.probe_id else cp.layout
                self.layouts[gid] = layout
                self.states[gid] = self._attach_one(unit, cp, gid)
                self.notes.extend(cp.notes)
                if cp.ring and self.states[gid].status != "failed":
                    table = bpf.get_table(cp.ring.encode())
                    unit.readers.append((gid, RingReader(table.map_fd, int(table.max_entries), cp.layout.dtype)))
        except BaseException:
            detach(unit.attachments)
            bpf.cleanup()
            raise
        with self.lock:
            if self.stopped:  # stop() ran while this unit was attaching: it must not outlive the source
                _unload(unit)
                raise UsageError("tracing has stopped: the probe was not added.")
            self._units.append(unit)
            if self._poller is not None:
                for _, reader in unit.readers:
                    self._poller.add(reader.fd)
        return unit

    def _configure(self, unit: Unit) -> None:
        bpf = unit.bpf
        unit.counters = KernelCounters(bpf)
        if unit.program.uses_stacks or has_table(bpf, "ktui_stacks"):
            unit.stacks = StackReader(bpf)
        if has_table(bpf, "ktui_entries"):
            unit.entries = EntryCounters(bpf)
        if has_table(bpf, "ktui_config"):
            from ktui.compiler.control import set_cgroup, set_exclude, set_target

            if self.target_pid:
                set_target(bpf, self.target_pid)
            if self.target_cgroup:
                set_cgroup(bpf, self.target_cgroup)
            if not self.trace_self:
                set_exclude(bpf, os.getpid())

    def _attach_one(self, unit: Unit, cp: CompiledProbe, gid: int) -> ProbeState:
        spec = cp.layout.spec or cp.probe.spec
        if cp.error:
            return ProbeState(gid, cp.layout.name, spec, "failed", cp.error)
        attached: list[Attachment] = []
        try:
            for plan in cp.attach_plans:
                attached += attach_plan(unit.bpf, plan)
        except AttachError as err:
            detach(attached)  # an entry helper attached before its return probe failed
            return ProbeState(gid, cp.layout.name, spec, "failed", str(err))
        unit.attachments += attached
        unit.by_probe[gid] = attached
        enabled = bool(cp.probe.enabled)
        write_enabled(unit, cp.probe_id, enabled)
        return ProbeState(gid, cp.layout.name, spec, "attached" if enabled else "disabled")

    # ------------------------------------------------------------------ control (events.ProbeControl)

    def loaded(self, probe_id: int) -> tuple[Unit, int, ProbeState]:
        """The unit, program-local id and state of a loaded probe (UsageError for an unknown,
        failed or removed id). Call under ``lock``."""
        state = self.states.get(probe_id)
        unit = self.unit_of.get(probe_id)
        if state is None or unit is None or state.status == "failed" or probe_id in self.removed:
            raise UsageError(f"probe {probe_id} is not attached.")
        return unit, unit.local_id(probe_id), state

    def enable_probe(self, probe_id: int, enabled: bool) -> None:
        with self.lock:
            unit, local, state = self.loaded(probe_id)
            write_enabled(unit, local, enabled)
            state.status = "attached" if enabled else "disabled"

    def remove_probe(self, probe_id: int) -> None:
        """Switch the probe off and detach it; its events already delivered keep their layout."""
        with self.lock:
            if probe_id in self.states and self.states[probe_id].status == "failed":
                del self.states[probe_id]
                self.removed.add(probe_id)
                return
            unit, local, _ = self.loaded(probe_id)
            write_enabled(unit, local, False)
            attached = unit.by_probe.pop(probe_id, [])
            unit.attachments[:] = [a for a in unit.attachments if a not in attached]
            detach(attached)
            # The ring stays mapped until teardown (the drain may be reading it right now); it
            # just leaves the list the drain walks.
            unit.readers[:] = [(gid, r) for gid, r in unit.readers if gid != probe_id]
            self.removed.add(probe_id)
            del self.states[probe_id]
            if probe_id in self.probe_ids:
                self.probe_ids.remove(probe_id)

    def add_probe(self, probe: Probe) -> int:
        """Attach one more probe while the others run (a BPF object of its own); returns its id.

        A probe that cannot be compiled or loaded keeps its id with state "failed" and the reason
        (the next update carries it), so no later id shifts."""
        with self.lock:
            if self.stopped:
                raise UsageError("tracing has stopped: the probe was not added.")
            gid = self._next_id
            self._next_id += 1
            self.probe_ids.append(gid)
            self.states[gid] = ProbeState(gid, probe.name, probe.spec, "pending")
        try:
            program = self.compile([probe])
            if self.target_pid and not program.target_pid:
                program.target_pid = self.target_pid
            self.load_unit(program, {program.probes[0].probe_id: gid})
        except Exception as err:
            reason = str(err) if isinstance(err, KtuiError) else f"the probe could not be loaded ({err})"
            with self.lock:
                if gid in self.states:
                    self.states[gid] = ProbeState(gid, probe.name, probe.spec, "failed", reason)
            return gid
        self.probes.append(program.probes[0].probe)
        return gid

    def quiesce(self) -> None:
        """Switch every probe off in the kernel (the control value) without detaching anything.
        A program checks the switch before it counts a hit, so from here on the counters only
        move for runs already past the check, and ktui's own teardown (bpf() calls, closing fds,
        a command exiting) is never counted: hits = delivered + dropped + filtered at stop."""
        for unit in self.units():
            for local in unit.global_ids:
                try:
                    write_enabled(unit, local, False)
                except (IndexError, OSError, KeyError):  # a program without that slot: nothing runs it
                    pass

    def teardown(self) -> None:
        """Detach and unload everything (the rings' memory is unmapped)."""
        with self.lock:
            for unit in self._units:
                _unload(unit)
            self._units = []
            self._poller = None


def write_enabled(unit: Unit, local_id: int, enabled: bool) -> None:
    """Switch one probe of a unit on or off in its control value (nothing detached)."""
    if has_table(unit.bpf, "ktui_config"):
        from ktui.compiler.control import set_enabled

        set_enabled(unit.bpf, local_id, enabled)


def _unload(unit: Unit) -> None:
    detach(unit.attachments)
    for _, reader in unit.readers:
        reader.close()
    unit.bpf.cleanup()
