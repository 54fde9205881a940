"""The probe model -> one BCC C program, with per-probe record layouts and attach plans.

    prog = compile_session(probes, catalog=None, target_pid=None)   # -> CompiledProgram
    prog.c_text                  # the whole program; BPF(text=...) after ensure_headers()
    cp = prog.probes[i]          # CompiledProbe i (probe id = position in the list)
    cp.layout.dtype              # numpy dtype of its ring's records (header + fetches)
    cp.attach_plans              # entry helpers first, then cp.attach; each names fn_name,
                                 # prog_type (getattr(BPF, ...)) and the attach_* arguments

What the program expects from whoever loads it (the engine, tests):
- build it with ``ktui.compiler.verify.bpf_class()`` (BCC's BPF with load-time
  auto-attach off: fentry programs must be named ``kfunc__<fn>``/``kretfunc__<fn>``
  for libbcc to find their BTF id, and plain BPF would attach those by itself);
- enable every probe that should run and set the target with ``ktui.compiler.control``
  (``set_enabled(bpf, probe_id, True)``, ``set_target(bpf, tgid)``): both live in one
  value, ``struct ktui_control`` in ``ktui_config[0]`` (``target``: tgid, 0 = every process;
  ``exclude``: a tgid never traced, ktui's own unless asked, ``set_exclude``;
  ``enabled[probe_id]``), so a hit costs one array lookup; every probe starts disabled;
  ``prog.target_pid`` is the target the program was compiled for;
- counters: ``ktui_counters`` (per CPU) slot probe*4 + HITS/SUBMITTED/DROPPED/FILTERED;
  every hit is exactly one of submitted, dropped (ring full, map full), filtered. A probe
  without a ring (``cp.ring is None``: aggregation only) does not count SUBMITTED: read it
  as hits - dropped - filtered (read HITS last: it is counted first);
- an aggregation-only probe computes only what its filter and actions use (no header,
  no comm, no clock for a plain count); a streaming probe builds the whole record;
- ``cp.counts``: the COUNT actions in order, {"map": name, "key": names}; a count by
  nothing or by cpu has "map": None and no code: it is hits - filtered per CPU from
  ``ktui_counters``; keyed counts are ``BPF_PERCPU_HASH`` maps (struct key, u64 per CPU);
- header ``flags``: bit i (< 31) = fetch i's memory read faulted (value 0, the kernel
  tracer's "(fault)"); bit 31 = a return was seen without its entry (entry values 0);
- maps by role in ``cp.maps``: "ring", "count", "hist" (spec in ``cp.hist``),
  "stacks" (key {s32 k; s32 u; u32 pid}), "start" (entry stash by tid), "scratch",
  "entries" (per CPU, slot probe*2: calls seen by the entry helper, probe*2+1: returns
  that found their entry; calls - returns = returns missed (maxactive) or still running);
  the stack map is ``ktui_stacks`` when ``prog.uses_stacks``.
A probe with ``error`` set and ``attach.kind == "none"`` has no code; with ``error`` set
and a real attach kind it has code (it passes the verifier) but cannot attach here.
"""

from ktui.compiler.fallback import KernelFacts
from ktui.compiler.program import AttachPlan, CompiledProbe, CompiledProgram
from ktui.compiler.session import DEFAULT_RING_PAGES, compile_session

__all__ = ["AttachPlan", "CompiledProbe", "CompiledProgram", "DEFAULT_RING_PAGES", "KernelFacts", "compile_session"]
