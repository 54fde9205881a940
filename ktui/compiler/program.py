"""What the compiler hands the engine: one C program and, per probe, how to attach it
and how to decode its records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from ktui.events import ProbeLayout
from ktui.probes.model import Probe


class CountSpec(TypedDict):
    """One COUNT action as the engine reads it: its map (None: the per-CPU counters already hold
    it) and the names of its key."""

    map: str | None
    key: tuple[str, ...]


@dataclass(frozen=True)
class AttachPlan:
    """Everything BCC's ``load_func`` + ``attach_*`` need for one program function.

    ``kind`` names the BCC call: "kprobe" -> attach_kprobe(event=symbol, fn_name=...),
    "kretprobe" (maxactive), "tracepoint" -> attach_tracepoint(tp=event),
    "raw_tracepoint" -> attach_raw_tracepoint(tp=event), "uprobe"/"uretprobe" ->
    attach_uprobe(name=binary, sym=sym or addr=address, pid=pid), "perf_event" ->
    attach_perf_event(ev_type, ev_config, sample_freq|sample_period, cpu),
    "kfunc"/"kretfunc" -> attach_kfunc/attach_kretfunc(fn_name=...).
    ``prog_type`` is the BPF attribute to load with: getattr(BPF, prog_type).
    """

    kind: str
    fn_name: str
    prog_type: str  # "KPROBE", "TRACEPOINT", "RAW_TRACEPOINT", "PERF_EVENT", "TRACING"
    event: str = ""  # tracepoint "cat:ev", raw tracepoint name, or kernel symbol
    symbol: str = ""  # kprobe/kretprobe/kfunc kernel symbol
    module: str | None = None
    offset: int = 0  # kprobe event_off, or uprobe file offset
    address: int | None = None  # uprobe/kprobe absolute address when no symbol
    binary: str = ""  # uprobe: program or library
    sym: str = ""  # uprobe: symbol in binary
    pid: int = -1  # uprobe: only this process (-1: all)
    maxactive: int = 0  # kretprobe instances (0: kernel default)
    ev_type: int = -1  # perf_event
    ev_config: int = -1
    sample_freq: int = 0
    sample_period: int = 0
    cpu: int = -1  # perf_event: one CPU (-1: every CPU)
    # usdt: (file offset, semaphore file offset or 0) of every location of the marker in
    # ``binary``; attached through the uprobe PMU with ref_ctr_offset (ktui.perfopen)
    locations: tuple[tuple[int, int], ...] = ()


@dataclass
class CompiledProbe:
    probe: Probe
    probe_id: int
    layout: ProbeLayout
    fn_name: str  # the function that counts hits and emits/aggregates
    attach: AttachPlan
    ring: str | None  # ring buffer map name (STREAM action), else None
    maps: dict[str, str] = field(default_factory=dict)  # role -> map name ("count", "hist", "stacks", "start"...)
    notes: list[str] = field(default_factory=list)  # fallbacks taken, what the user should know
    error: str | None = None  # why this probe cannot be placed here (its code may still be verified)
    helpers: list[AttachPlan] = field(default_factory=list)  # entry-side programs, attach before ``attach``
    hist: dict[str, object] = field(default_factory=dict)  # HIST: value, scale, lo, hi, step, buckets
    # COUNT actions in order: {"map": BPF_HASH name, or None for a count by nothing or by cpu,
    # which is the probe's per-CPU hits - filtered in ktui_counters; "key": key names}
    counts: list[CountSpec] = field(default_factory=list)
    # fetch (record column) -> how its value is read: "bpf_probe_read_user_str", "bpf_probe_read_kernel",
    # "context" (a register, the tracepoint record, a helper)... what `ktui compile` shows
    fetch_reads: dict[str, str] = field(default_factory=dict)
    # the main function attached at more places (a fallback covering every system call that
    # reaches the probed function: sys_exit_open, sys_exit_openat... share one record shape)
    also: list[AttachPlan] = field(default_factory=list)

    @property
    def attach_plans(self) -> list[AttachPlan]:
        """All programs of this probe in attach order (entry helpers first, then every main site)."""
        return [*self.helpers, self.attach, *self.also]


@dataclass
class CompiledProgram:
    c_text: str
    probes: list[CompiledProbe]
    ring_pages: int
    target_pid: int | None = None  # the engine writes it to ktui_config[0]
    uses_stacks: bool = False  # ktui_stacks exists

    @property
    def layouts(self) -> dict[int, ProbeLayout]:
        return {cp.probe_id: cp.layout for cp in self.probes}

    def probe(self, probe_id: int) -> CompiledProbe:
        return self.probes[probe_id]
