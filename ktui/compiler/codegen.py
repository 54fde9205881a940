"""The probe model -> one BCC C program. Each probe gets its record struct, its ring
buffer or aggregation maps, and plain functions (no BCC auto-attach names) that the
engine loads and attaches one by one, so one probe's failure is only its own."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ktui.errors import KtuiError
from ktui.events import HEADER_FIELDS, FieldLayout, ProbeLayout
from ktui.probes.filter_ast import Node, names_in
from ktui.probes.model import Action, ActionKind, Arg, Builtin, Fetch, FetchExpr, Member, Probe, ProbeKind, Retval, ValueType
from ktui.probes.resolve import (Named, PointNames, arg_number, has_return, member_column, member_kinds,
                                 memory_of, split_member_name)

from ktui.compiler.action_codegen import DERIVED_KEYS, compile_actions
from ktui.compiler.fallback import Placement, wants_latency
from ktui.compiler.fetch_codegen import HEADER_BUILTINS, FetchError, FetchGen, contains_arg
from ktui.compiler.filter_codegen import Operand, filter_condition
from ktui.compiler.layout import STRING_SIZE, c_decl, display, np_dtype
from ktui.compiler.btf_types import TypeSource
from ktui.compiler.program import AttachPlan, CountSpec
from ktui.compiler.sites import Site
from ktui.compiler.tracepoint_struct import struct_text

AGG_ENTRIES = 10240  # entries of entry stashes (in flight calls)
STACK_RECORD_MAX = 256  # larger records are built in a per-CPU scratch map, not on the 512-byte BPF stack
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_FIELDS = {"comm": ("v->hdr.comm", "string", 16), "pid": ("v->hdr.pid", "int", 0),
                  "tid": ("v->hdr.tid", "int", 0), "uid": ("v->hdr.uid", "int", 0), "cpu": ("v->hdr.cpu", "int", 0),
                  "ts": ("v->hdr.ts", "int", 0), "kstack": ("v->hdr.kstack", "int", 0),
                  "ustack": ("v->hdr.ustack", "int", 0)}
_HEADER_NAMES = frozenset(n for n, _ in HEADER_FIELDS) | {"hdr"}


def comment(text: str) -> str:
    """Text safe inside a C comment: no '*', no newline, only plain characters."""
    return re.sub(r"[^\w .:,;/@+=$%()\[\]<>'\"-]", "?", text)[:200]


@dataclass
class RecordField:
    name: str
    vtype: ValueType
    expr: FetchExpr
    at_entry: bool  # computed on the entry side and stashed by thread


@dataclass
class ProbeCode:
    """The C text of one probe and what the engine needs to know about it."""
    text: str
    layout: ProbeLayout
    fn_name: str
    attach: AttachPlan
    helpers: list[AttachPlan]
    ring: str | None
    maps: dict[str, str]
    reads: set[str]
    notes: list[str] = field(default_factory=list)
    hist: dict[str, Any] = field(default_factory=dict)
    uses_stacks: bool = False
    uses_str_eq: bool = False
    counts: list[CountSpec] = field(default_factory=list)
    fetch_reads: dict[str, str] = field(default_factory=dict)
    also: list[AttachPlan] = field(default_factory=list)


def _site_plan(probe: Probe, site: Site, fn: str, target_pid: int | None) -> AttachPlan:
    kind = site.kind
    common: dict[str, Any] = {"fn_name": fn, "prog_type": site.prog_type}
    if kind in ("kprobe", "kretprobe"):
        return AttachPlan(kind, event=site.event, symbol=site.event, module=probe.module, offset=probe.offset,
                          address=probe.address, maxactive=probe.maxactive if kind == "kretprobe" else 0, **common)
    if kind in ("kfunc", "kretfunc"):
        return AttachPlan(kind, event=site.event, symbol=site.event, module=probe.module, **common)
    if kind in ("tracepoint", "raw_tracepoint"):
        return AttachPlan(kind, event=site.event, **common)
    if kind in ("uprobe", "uretprobe"):
        return AttachPlan(kind, event=site.event, binary=probe.binary or "", sym=probe.target,
                          offset=probe.offset if not probe.target else 0, address=probe.address,
                          pid=target_pid if target_pid else -1, **common)
    if kind == "usdt" or probe.kind.is_perf_event:
        from ktui.compiler.usdt_plan import site_plan

        return site_plan(probe, site, fn, target_pid)
    # perf_event: PERF_TYPE_SOFTWARE / PERF_COUNT_SW_CPU_CLOCK, sampled by frequency or period.
    if probe.kind is ProbeKind.PROFILE:
        if probe.frequency <= 0:
            raise KtuiError("a profile probe needs a frequency in Hz above 0")
        return AttachPlan("perf_event", event=probe.spec, ev_type=1, ev_config=0, sample_freq=probe.frequency, **common)
    if probe.period_ns <= 0:
        raise KtuiError("an interval probe needs a period above 0")
    return AttachPlan("perf_event", event=probe.spec, ev_type=1, ev_config=0, sample_period=probe.period_ns,
                      cpu=0, **common)


class ProbeCompiler:
    """Compiles one probe at its placement into C text and a layout."""

    def __init__(self, probe: Probe, probe_id: int, placement: Placement, types: TypeSource, ring_pages: int,
                 target_pid: int | None, resolve_symbol: Callable[[str], int] | None = None,
                 filter_node: Node | None = None):
        self.probe = probe
        self.id = probe_id
        self.pl = placement
        self.types = types
        self.ring_pages = ring_pages
        self.target_pid = target_pid
        self.main = FetchGen(placement.main, types, resolve_symbol)
        self.entry = FetchGen(placement.entry, types, resolve_symbol) if placement.entry else None
        self.filter_node = filter_node
        self.notes: list[str] = []
        self.aliases: dict[str, str] = {}  # filter/action name -> record column, where they differ
        self.fetch_reads: dict[str, str] = {}

    # ---- fields ---------------------------------------------------------------------
    def _stashed(self, expr: FetchExpr) -> bool:
        main = self.pl.main
        return self.pl.entry is not None and main.kind in ("kretprobe", "uretprobe", "tracepoint") and contains_arg(expr)

    def _field_for(self, fetch: Fetch, where: str) -> RecordField | None:
        if not _IDENT.match(fetch.name):
            raise FetchError(f"fetch name {fetch.name!r} is not an identifier", where=where)
        expr = fetch.expr
        if isinstance(expr, Builtin) and expr.name in HEADER_BUILTINS and expr.name == fetch.name:
            return None  # every record's header carries it (a fetch named otherwise gets its own column)
        at_entry = self._stashed(expr)
        if contains_arg(expr) and self.pl.main.kind in ("kretprobe", "uretprobe") and not at_entry:
            raise FetchError("arguments are not available at a return probe without its entry side", where=where)
        gen = self.entry if at_entry and self.entry is not None else self.main
        try:
            vtype = fetch.type or gen.natural_type(expr)
        except FetchError as err:
            raise FetchError(err.message, where=where) from None
        return RecordField(fetch.name, vtype, expr, at_entry)

    def _implicit_fetch(self, name: str) -> Fetch:
        """A value a filter or action names without fetching it: fetched (and recorded) too."""
        if name in ("retval", "ret"):
            return Fetch(name, Retval())
        if name == "latency":
            return Fetch("latency", Builtin("latency"))
        if name == "gid":
            return Fetch("gid", Builtin("gid"))
        if m := re.fullmatch(r"arg(\d+)", name):
            return Fetch(name, Arg(index=int(m.group(1))))
        split = split_member_name(name)
        if split is not None and split[1]:  # skb->len: the member, recorded as skb_len
            base, path = split
            point = self.point_names()
            number = arg_number(base, point)
            base_expr: FetchExpr = Arg(index=number) if number is not None else Arg(name=base)
            if base == "retval" and point.ret is not None and point.arg(name=base) is None:
                base_expr = Retval()  # retval->len: a member of the returned pointer, read at the return
            return Fetch(member_column(base, path), Member(base_expr, path))
        return Fetch(name, Arg(name=name))

    def default_fetches(self) -> list[Fetch]:
        """Zero-script capture: a streaming probe that asks for nothing records what the kernel's
        own trace line shows: every field or argument, decoded by its type, and the return
        value where there is one."""
        probe = self.probe
        if probe.fetches or not any(a.kind is ActionKind.STREAM for a in (probe.actions or [Action()])):
            return []
        out: list[Fetch] = []
        names = self.point_names()
        if not probe.kind.is_return:
            for named in names.args:
                if named.name and not named.name.startswith("__") and named.kind(self.types.scalar_size):
                    out.append(Fetch(named.name, Arg(name=named.name)))
        if names.ret is not None and self.pl.main.kind != "tracepoint" or (
                names.ret is not None and self.pl.main.tp_field(name="ret") is not None):
            out.append(Fetch("retval", Retval()))
        return out

    def fields(self) -> list[RecordField]:
        probe = self.probe
        fetches = list(probe.fetches) or self.default_fetches()
        names = {f.name for f in fetches}
        if wants_latency(probe) and "latency" not in names:
            fetches.append(Fetch("latency", Builtin("latency")))
            names.add("latency")
        wanted = []
        if self.filter_node is not None:
            wanted += [n.name for n in names_in(self.filter_node)]
        for action in probe.actions:
            wanted += list(action.key)
            if action.kind is ActionKind.HIST and action.value:
                wanted.append(action.value)
        for name in wanted:
            if name in names or name in _HEADER_FIELDS or name in self.aliases:
                continue
            implicit = self._implicit_fetch(name)
            same = next((f for f in fetches if f.expr == implicit.expr and f.type is None), None)
            if same is not None:  # "ret" where "retval" is recorded already: one column, two names
                self.aliases[name] = same.name
                continue
            if implicit.name in names:  # skb->len and skb.len: one member, one column
                self.aliases[name] = implicit.name
                continue
            fetches.append(implicit)
            names.add(implicit.name)
            if implicit.name != name:
                self.aliases[name] = implicit.name
            self.notes.append(f"{probe.name}: {name} is fetched for the filter or aggregation, and recorded too")
        out = []
        seen: set[str] = set()
        for fetch in fetches:
            if fetch.name in _HEADER_NAMES and not (isinstance(fetch.expr, Builtin) and fetch.expr.name == fetch.name):
                # A value called like a header column (a tracepoint's "pid", an argument "flags"):
                # its column is renamed, and the filter still finds it by its own name.
                column = f"{fetch.name}_value"
                if not isinstance(fetch.expr, Builtin) or fetch.expr.name not in HEADER_BUILTINS:
                    self.aliases[fetch.name] = column
                    self.notes.append(f"{probe.name}: {fetch.name} is recorded as {column} "
                                      "(every record's header has a {fetch.name} already)".replace("{fetch.name}", fetch.name))
                fetch = Fetch(column, fetch.expr, fetch.type)
            if fetch.name in seen:
                raise FetchError(f"fetch name {fetch.name!r} is used twice; give it another name",
                                 where=f"{probe.name}, fetch {fetch.name}")
            f = self._field_for(fetch, f"{probe.name}, fetch {fetch.name}")
            if f is not None:
                seen.add(f.name)
                out.append(f)
        return out

    # ---- names used by filters and actions ------------------------------------------
    def operand(self, name: str, fields: list[RecordField]) -> Operand:
        name = self.aliases.get(name, name)
        for f in fields:
            if f.name == name:
                size = STRING_SIZE if f.vtype.is_string else 0
                return Operand(f"v->f_{f.name}", "string" if f.vtype.is_string else "int", f.vtype.signed, size)
        if name in _HEADER_FIELDS:
            c, kind, size = _HEADER_FIELDS[name]
            return Operand(c, kind, False, size)
        raise FetchError(f"unknown name {name!r}")

    def point_names(self) -> PointNames:
        """The names this probe offers where it runs, typed by ktui.probes.resolve (the same
        resolution the editor uses): fields or arguments of the side that has them, the
        return value only where there is a return, latency where entry and return pair."""
        arg_site = self.pl.entry if self.pl.entry is not None else self.pl.main
        names = PointNames(arg_site.named_args())
        if arg_site.user and arg_site.binary is not None:  # a uprobe: its structs are laid out by its DWARF
            names.binary, names.symbol = arg_site.binary, arg_site.event
        if has_return(self.probe) and self.probe.kind is not ProbeKind.TRACEPOINT:
            rtype = self.pl.main.ret_ctype or "long"
            main = self.pl.main  # where the returned pointer points: a program's memory at a uretprobe
            names.ret = Named("retval", rtype, "retval", memory_of(main.point_kind, main.event, rtype))
        names.latency = self.pl.entry is not None
        if arg_site.kind not in ("tracepoint", "perf_event", "usdt") and arg_site.func_args is None:
            # no prototype: $arg1..$arg6 by position, as registers
            names.args = [Named("", "u64", "arg") for _ in range(6)]
        return names

    def available_names(self) -> dict[str, str]:
        """Every name a filter or aggregation may use here -> "int" or "string"."""
        fetched: dict[str, str] = {}
        for f in self.probe.fetches:
            vt = f.type
            if vt is None:
                try:
                    gen = self.entry if self._stashed(f.expr) and self.entry is not None else self.main
                    vt = gen.natural_type(f.expr)
                except KtuiError:
                    vt = None
            fetched[f.name] = "string" if vt is not None and vt.is_string else "int"
        point = self.point_names()
        names = point.filter_names(self.types.scalar_size, fetched)
        for name, (_c, kind, _size) in _HEADER_FIELDS.items():
            names.setdefault(name, kind)
        wanted = [n.name for n in names_in(self.filter_node)] if self.filter_node is not None else []
        for action in self.probe.actions:
            wanted += [*action.key, *([action.value] if action.value else [])]
        wanted = [w for w in wanted if w not in names]
        if any("->" in w or "." in w for w in wanted):
            program = point.binary
            names.update(member_kinds(point, wanted, *self.types.member_types(program, point.symbol or "")))
        return names

    # ---- C ----------------------------------------------------------------------------
    def compile(self) -> ProbeCode:
        probe, pid = self.probe, self.id
        fields = self.fields()
        self._all_fields = fields
        layout = ProbeLayout(pid, probe.name, probe.spec, tuple(
            FieldLayout(f.name, np_dtype(f.vtype), "ns" if isinstance(f.expr, Builtin) and f.expr.name == "latency"
                        else display(f.vtype)) for f in fields))
        fn = f"ktui_fn_{pid}"
        out: list[str] = [f"/* ---- probe {pid}: {comment(probe.spec)} ({comment(probe.name)}) ---- */"]
        for site, tag_suffix in ((self.pl.main, ""), (self.pl.entry, "_enter")):
            if site is not None and site.kind == "tracepoint":
                site.tp_struct = f"ktui_tp_{pid}{tag_suffix}"
                for tpf in site.tp_fields:
                    if not _IDENT.match(tpf.name):
                        raise KtuiError(f"tracepoint {site.event} has a field named {tpf.name!r}, not an identifier")
                out.append(struct_text(site.tp_struct, site.event, site.tp_fields))
        rec = f"ktui_ev_{pid}"
        out.append(f"struct {rec} {{")
        out.append("    struct ktui_hdr hdr;")
        for f in fields:
            out.append(f"    {c_decl(f.vtype, 'f_' + f.name)};  /* {comment(str(f.vtype))} */")
        out.append("};")
        record_size = layout.record_size
        maps: dict[str, str] = {}
        ring = None
        actions = probe.actions or [Action()]
        if any(a.kind is ActionKind.STREAM for a in actions):
            ring = f"ktui_ring_{pid}"
            out.append(f"BPF_RINGBUF_OUTPUT({ring}, {self.ring_pages});")
            maps["ring"] = ring
        scratch = record_size > STACK_RECORD_MAX
        if scratch:
            maps["scratch"] = f"ktui_scratch_{pid}"
            out.append(f"BPF_PERCPU_ARRAY(ktui_scratch_{pid}, struct {rec}, 1);")
        stash = None
        if self.pl.entry is not None:
            stash = f"ktui_start_{pid}"
            maps["start"] = stash
            maps["entries"] = "ktui_entries"
            out.append(f"BPF_HASH({stash}, u32, struct {rec}, {AGG_ENTRIES});  /* entry side, by thread */")
        counts: list[CountSpec] = []
        action_code, hist, decls, uses_stacks_agg = compile_actions(self, actions, fields, maps, counts)
        str_eq = False
        out.extend(decls)
        sampling = probe.kind in (ProbeKind.PROFILE, ProbeKind.SOFTWARE, ProbeKind.HARDWARE)
        kstack = sampling or any(
            isinstance(f.expr, Builtin) and f.expr.name == "kstack" for f in probe.fetches) or any(
            a.kind is ActionKind.STACKS and a.kernel_stack for a in actions)
        ustack = sampling or any(
            isinstance(f.expr, Builtin) and f.expr.name == "ustack" for f in probe.fetches) or any(
            a.kind is ActionKind.STACKS and a.user_stack for a in actions)

        fn_name, efn = self._function_names(fn)  # planned before any function is written
        helpers: list[AttachPlan] = []
        if self.pl.entry is not None and stash is not None:
            out.append(self._entry_function(efn, rec, stash, [f for f in fields if f.at_entry], scratch))
            helpers.append(_site_plan(probe, self.pl.entry, efn, self.target_pid))
        main_fields = [f for f in fields if not f.at_entry]
        cond = None
        if self.filter_node is not None:
            try:
                cond = filter_condition(self.filter_node, lambda n: self.operand(n, fields))
            except KtuiError as err:
                raise FetchError(f"filter: {err.message}", where=probe.name) from None
            str_eq = str_eq or "ktui_str_eq" in cond
        out.append(self._main_function(fn_name, rec, stash, main_fields, scratch, kstack, ustack, cond, action_code,
                                       ring))
        attach = _site_plan(probe, self.pl.main, fn_name, self.target_pid)
        also = [_site_plan(probe, site, fn_name, self.target_pid) for site in self.pl.also]
        reads = self.main.reads | (self.entry.reads if self.entry else set())
        return ProbeCode("\n".join(out), layout, fn_name, attach, helpers, ring, maps, reads,
                         notes=self.notes, hist=hist, uses_stacks=kstack or ustack or uses_stacks_agg,
                         uses_str_eq=str_eq, counts=counts, fetch_reads=self.fetch_reads, also=also)

    def _function_names(self, fn: str) -> tuple[str, str]:
        """(main, entry) function names. fentry/fexit programs are named after the traced
        function: libbcc finds its BTF id from the name (the engine loads with BCC's
        auto-attach turned off, as verify.py does)."""
        main, entry = fn, f"{fn}_entry"
        for site in (self.pl.main, self.pl.entry):
            if site is not None and site.kind in ("kfunc", "kretfunc") and not _IDENT.match(site.event):
                raise FetchError(f"fentry/fexit programs are named after the function, and {site.event!r} "
                                 "is not a C identifier; use a kprobe")
        if self.pl.main.kind in ("kfunc", "kretfunc"):
            main = f"{self.pl.main.kind}__{self.pl.main.event}"
        if self.pl.entry is not None and self.pl.entry.kind == "kfunc":
            entry = f"kfunc__{self.pl.entry.event}"
        return main, entry

    def _record_start(self, rec: str, scratch: bool) -> list[str]:
        if scratch:
            return ["    u32 zero = 0;", f"    struct {rec} *v = ktui_scratch_{self.id}.lookup(&zero);",
                    "    if (!v)", "        return 0;", "    __builtin_memset(v, 0, sizeof(*v));"]
        return [f"    struct {rec} rec;", f"    struct {rec} *v = &rec;", "    __builtin_memset(v, 0, sizeof(*v));"]

    def _fetch_lines(self, gen: FetchGen, fields: list[RecordField], all_fields: list[RecordField]) -> list[str]:
        lines = []
        for f in fields:
            bit = [g.name for g in all_fields].index(f.name) if all_fields else 0
            try:
                line = gen.store(f"v->f_{f.name}", f.vtype, f.expr, bit)
            except FetchError as err:
                raise FetchError(err.message, where=f"{self.probe.name}, fetch {f.name}") from None
            read = gen.string_reads.get(f"v->f_{f.name}")
            if read is None:
                used = [r for r in ("ktui_read_u", "ktui_read_k") if r in line]
                read = ({"ktui_read_u": "bpf_probe_read_user", "ktui_read_k": "bpf_probe_read_kernel"}[used[0]]
                        if used else "context")
            self.fetch_reads[f.name] = read + (" (at entry)" if f.at_entry else "")
            lines.append(f"    {line}  // ktui:fetch {f.name} ({read})")
        return lines

    def _entry_function(self, fn: str, rec: str, stash: str, fields: list[RecordField], scratch: bool) -> str:
        assert self.pl.entry is not None and self.entry is not None  # only probes with an entry side get here
        body = [f"int {fn}({self.pl.entry.ctx_decl})", "{",
                f"    if (!ktui_active({self.id}))", "        return 0;",
                "    u64 id = bpf_get_current_pid_tgid();"]
        body += self._record_start(rec, scratch)
        fetch = self._fetch_lines(self.entry, fields, self._all_fields)
        if any("flt" in line for line in fetch):
            body.append("    u32 flt = 0;")
        body.append("    v->hdr.ts = bpf_ktime_get_ns();")
        body += fetch
        body += ["    u32 tid = id;", f"    {stash}.update(&tid, v);", f"    ktui_count_entry({self.id}, 0);",
                 "    return 0;", "}"]
        return "\n".join(body)

    def _main_function(self, fn: str, rec: str, stash: str | None, fields: list[RecordField], scratch: bool, kstack: bool,
                       ustack: bool, cond: str | None, action_code: list[str], ring: str | None) -> str:
        """The probe's function. A streaming probe builds its whole record (header and every
        fetch). An aggregation-only probe (no ring) computes only what its filter and actions
        use: a count needs no header, no comm, no clock; and it does not count SUBMITTED
        (user space derives it: submitted = hits - dropped - filtered)."""
        site = self.pl.main
        pid = self.id
        body = [f"int {fn}({site.ctx_decl})", "{",
                f"    if (!ktui_active({pid}))", "        return 0;",
                f"    ktui_count({pid}, KTUI_HITS);"]
        fetch = self._fetch_lines(self.main, fields, self._all_fields)
        can_fail = any(a.kind is ActionKind.STACKS or (a.kind is ActionKind.COUNT and tuple(a.key) not in DERIVED_KEYS)
                       for a in self.probe.actions or [Action()])  # a full map sets ok = 0
        header = [("ts", "    v->hdr.ts = now;"), ("probe", f"    v->hdr.probe = {pid};"),
                  ("cpu", "    v->hdr.cpu = bpf_get_smp_processor_id();"),
                  ("pid", "    v->hdr.pid = id >> 32;"), ("tid", "    v->hdr.tid = (u32)id;"),
                  ("uid", "    v->hdr.uid = (u32)bpf_get_current_uid_gid();"),
                  ("kstack", "    v->hdr.kstack = " + ("ktui_stacks.get_stackid(ctx, 0);" if kstack else "-1;")),
                  ("ustack", "    v->hdr.ustack = " + ("ktui_stacks.get_stackid(ctx, BPF_F_USER_STACK);"
                                                       if ustack else "-1;")),
                  ("comm", "    bpf_get_current_comm(&v->hdr.comm, sizeof(v->hdr.comm));")]
        kept = fields
        if ring is None:  # planned from the probe (names its filter and actions read), not from C text
            used_fields, used_hdr = self._used_names(fields)
            kept = [f for f in fields if f.name in used_fields]
            fetch = [line for line, f in zip(fetch, fields) if f.name in used_fields]
            used_hdr |= {f.expr.name for f in kept if isinstance(f.expr, Builtin) and f.expr.name in ("kstack", "ustack")}
            header = [(name, line) for name, line in header if name in used_hdr]
        latency = any(isinstance(f.expr, Builtin) and f.expr.name == "latency" for f in kept)
        needs_v = bool(stash or fetch or header)
        needs_id = bool(stash) or any(name in ("pid", "tid") for name, _ in header)
        needs_now = latency or any(name == "ts" for name, _ in header)
        if needs_v:
            body += self._record_start(rec, scratch)
        if any("flt" in line for line in fetch):
            body.append("    u32 flt = 0;")
        if needs_id:
            body.append("    u64 id = bpf_get_current_pid_tgid();")
        if needs_now:
            body.append("    u64 now = bpf_ktime_get_ns();")
        if stash:
            body += ["    u32 tid = id;", f"    struct {rec} *entry = {stash}.lookup(&tid);",
                     "    if (entry) {", "        __builtin_memcpy(v, entry, sizeof(*v));",
                     f"        ktui_count_entry({pid}, 1);",
                     f"        {stash}.delete(&tid);", "    } else {",
                     "        v->hdr.flags |= KTUI_NO_ENTRY;  /* entry not seen: its values are 0 */", "    }"]
            if latency:
                body.append("    u64 latency = (v->hdr.flags & KTUI_NO_ENTRY) ? 0 : now - v->hdr.ts;")
        elif latency:
            body.append("    u64 latency = 0;")
        body += [line for _, line in header]
        body += fetch
        if cond is not None:
            body += [f"    if (!{cond}) {{", f"        ktui_count({pid}, KTUI_FILTERED);", "        return 0;", "    }"]
        if ring or can_fail:
            body.append("    int ok = 1;")
        body += action_code
        if ring:
            body.append(f"    ktui_count({pid}, ok ? KTUI_SUBMITTED : KTUI_DROPPED);")
        elif can_fail:
            body.append(f"    if (!ok)\n        ktui_count({pid}, KTUI_DROPPED);  /* a map was full */")
        body += ["    return 0;", "}"]
        return "\n".join(body)

    def _used_names(self, fields: list[RecordField]) -> tuple[set[str], set[str]]:
        """(record columns, header members) the filter and the aggregations read."""
        names = [n.name for n in names_in(self.filter_node)] if self.filter_node is not None else []
        header: set[str] = set()
        for a in self.probe.actions or [Action()]:
            if a.kind is ActionKind.COUNT and tuple(a.key) not in DERIVED_KEYS:
                names += list(a.key)
            elif a.kind is ActionKind.HIST:
                names.append(a.value or "latency")
            elif a.kind is ActionKind.STACKS:
                header |= {"kstack"} if a.kernel_stack else set()
                header |= {"ustack", "pid"} if a.user_stack else set()
        columns = {f.name for f in fields}
        used: set[str] = set()
        for name in names:
            name = self.aliases.get(name, name)
            if name in columns:
                used.add(name)
            elif name in _HEADER_FIELDS:
                header.add(name)
        return used, header

    _all_fields: list[RecordField] = []
