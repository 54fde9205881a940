"""A probe's actions -> C: stream to its ring, count per key, histogram, stack counts.
Every block clears ``ok`` when its ring or map is full, so the hit is counted as dropped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ktui.probes.model import Action, ActionKind

from ktui.compiler.fetch_codegen import FetchError
from ktui.engine.histograms import LOG2_SLOTS, NEGATIVE, log2_slot_c
from ktui.compiler.layout import c_decl

if TYPE_CHECKING:
    from ktui.compiler.codegen import ProbeCompiler, RecordField
    from ktui.compiler.program import CountSpec

AGG_ENTRIES = 10240  # entries of count and stack-count maps

_KEY_DECLS = {"comm": "char comm[16]", "pid": "u32 pid", "tid": "u32 tid", "uid": "u32 uid", "cpu": "u32 cpu",
              "ts": "u64 ts", "kstack": "s32 kstack", "ustack": "s32 ustack"}


DERIVED_KEYS = ((), ("cpu",))  # counts the per-CPU counters already hold


def compile_actions(pc: ProbeCompiler, actions: list[Action], fields: list[RecordField], maps: dict[str, str],
                    counts_out: list[CountSpec] | None = None) -> tuple[list[str], dict[str, Any], list[str], bool]:
    """C for a probe's actions: (statements, histogram spec, map declarations, uses stacks?).
    Each statement block clears ``ok`` when its map or ring is full.

    ``counts_out`` receives one spec per COUNT action: {"map": name or None, "key": names}.
    A COUNT keyed by nothing or by cpu has no code and no map: it is the probe's per-CPU
    hits minus filtered, which ``ktui_counters`` holds already ("map": None)."""
    pid = pc.id
    code: list[str] = []
    decls: list[str] = []
    hist: dict[str, Any] = {}  # the histogram's spec (map, value, scale, bounds), as recordings keep it
    stacks = False
    counts: dict[ActionKind, int] = {}
    for action in actions:
        kind = action.kind
        n = counts.get(kind, 0)
        counts[kind] = n + 1
        suffix = "" if n == 0 else f"_{n}"
        if kind is ActionKind.STREAM:
            if n == 0:
                code.append(f"    if (ktui_ring_{pid}.ringbuf_output(v, sizeof(*v), 0) != 0)")
                code.append("        ok = 0;  /* ring full: counted as dropped */")
        elif kind is ActionKind.COUNT:
            if tuple(action.key) in DERIVED_KEYS:
                if counts_out is not None:
                    counts_out.append({"map": None, "key": tuple(action.key)})
                continue
            name = f"ktui_count_{pid}{suffix}"
            maps["count" + suffix] = name
            if counts_out is not None:
                counts_out.append({"map": name, "key": tuple(action.key)})
            key = f"ktui_ck_{pid}{suffix}"
            members, sets = [], []
            for k in action.key:
                op = pc.operand(k, fields)
                k = pc.aliases.get(k, k)
                f = next((f for f in fields if f.name == k), None)
                members.append(f"    {c_decl(f.vtype, 'f_' + k) if f else _KEY_DECLS[k]};")
                member = f"f_{k}" if f else k
                if op.kind == "string":
                    sets.append(f"        __builtin_memcpy(k.{member}, {op.c}, sizeof(k.{member}));")
                else:
                    sets.append(f"        k.{member} = {op.c};")
            decls += [f"struct {key} {{", *members, "};",
                      f"BPF_PERCPU_HASH({name}, struct {key}, u64, {AGG_ENTRIES});  /* per CPU: no atomics */"]
            code += ["    {", f"        struct {key} k;", "        __builtin_memset(&k, 0, sizeof(k));", *sets]
            code += ["        u64 zero = 0;", f"        u64 *c = {name}.lookup_or_try_init(&k, &zero);",
                     "        if (c)", "            *c += 1;", "        else",
                     "            ok = 0;  /* map full */", "    }"]
        elif kind is ActionKind.HIST:
            name = f"ktui_hist_{pid}{suffix}"
            maps["hist" + suffix] = name
            value = action.value or "latency"
            op = pc.operand(value, fields)
            if op.kind == "string":
                raise FetchError(f"a histogram needs a number, and {value} is a string", where=pc.probe.name)
            if action.scale == "linear":
                nb = -(-(action.hi - action.lo) // action.step)
                decls.append(f"BPF_HISTOGRAM({name}, int, {nb + 2});  /* [0]: below {action.lo}, "
                             f"[{nb + 1}]: {action.hi} and above */")
                code += ["    {", f"        s64 x = (s64){op.c};",
                         f"        int b = x < {action.lo}LL ? 0 : x >= {action.hi}LL ? {nb + 1} : "
                         f"1 + (int)((x - ({action.lo}LL)) / {action.step});",
                         f"        {name}.atomic_increment(b);", "    }"]
                hist = {"map": name, "value": value, "scale": "linear", "lo": action.lo, "hi": action.hi,
                        "step": action.step, "buckets": nb + 2}
            else:
                slots = LOG2_SLOTS if op.signed else NEGATIVE + 1
                decls.append(f"BPF_HISTOGRAM({name}, int, {slots});  /* slot = bit length of the value (bpf_log2l)"
                             + (f"; below zero: {NEGATIVE} + that of ~value */" if op.signed else " */"))
                code.append(f"    {name}.atomic_increment({log2_slot_c(op.c, op.signed)});")
                hist = {"map": name, "value": value, "scale": "log2", "buckets": slots}
        elif kind is ActionKind.STACKS:
            name = f"ktui_stackcount_{pid}{suffix}"
            maps["stacks" + suffix] = name
            stacks = True
            decls += [f"struct ktui_stackkey_{pid}{suffix} {{ s32 k; s32 u; u32 pid; }};",
                      f"BPF_HASH({name}, struct ktui_stackkey_{pid}{suffix}, u64, {AGG_ENTRIES});"]
            code += ["    {", f"        struct ktui_stackkey_{pid}{suffix} k = {{}};",
                     "        k.k = " + ("v->hdr.kstack;" if action.kernel_stack else "-1;"),
                     "        k.u = " + ("v->hdr.ustack;" if action.user_stack else "-1;"),
                     "        k.pid = " + ("v->hdr.pid;" if action.user_stack else "0;"),
                     "        u64 zero = 0;", f"        u64 *c = {name}.lookup_or_try_init(&k, &zero);",
                     "        if (c)", "            __sync_fetch_and_add(c, 1);", "        else",
                     "            ok = 0;", "    }"]
    return code, hist, decls, stacks
