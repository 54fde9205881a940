"""Where a generated function runs, and how it reads registers, arguments and the
return value there. One probe can have two sites: its entry side and its main side."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ktui.probes.resolve import KERNEL, Named, memory_of

from ktui.compiler.tracepoint_struct import TpField, visible_fields

if TYPE_CHECKING:
    from ktui.catalog.usdt import UsdtMarker

# kprobe_events register names (x86_64) -> struct pt_regs members, which keep these names.
PT_REGS = ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip", "flags", "cs", "ss", "orig_ax",
           "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
ARG_REGS = ("di", "si", "dx", "cx", "r8", "r9")  # the x86_64 calling convention

_POINT_KINDS = {"kprobe": "function", "kretprobe": "function", "kfunc": "function", "kretfunc": "function",
                "uprobe": "user", "uretprobe": "user", "usdt": "user", "tracepoint": "tracepoint", "raw_tracepoint": "raw"}
PT_REGS_KINDS = ("kprobe", "kretprobe", "uprobe", "uretprobe", "usdt")
PROG_TYPES = {
    "kprobe": "KPROBE", "kretprobe": "KPROBE", "uprobe": "KPROBE", "uretprobe": "KPROBE", "usdt": "KPROBE",
    "tracepoint": "TRACEPOINT", "raw_tracepoint": "RAW_TRACEPOINT", "perf_event": "PERF_EVENT",
    "kfunc": "TRACING", "kretfunc": "TRACING",
}


@dataclass
class Site:
    kind: str  # an AttachPlan kind: kprobe kretprobe uprobe uretprobe tracepoint raw_tracepoint perf_event kfunc kretfunc
    event: str = ""  # tracepoint "cat:ev", raw tracepoint, or kernel/user symbol
    tp_struct: str = ""  # tracepoint: our struct tag for its context
    tp_fields: list[TpField] = field(default_factory=list)
    func_args: list[tuple[str, str]] | None = None  # BTF/raw-tracepoint prototype: (name, ctype)
    ret_ctype: str | None = None
    usdt: tuple[UsdtMarker, ...] = ()  # usdt: the marker's locations, all of one provider:name
    binary: str | None = None  # uprobe/uretprobe: the program, whose DWARF lays out its structs

    @property
    def is_return(self) -> bool:
        """A function's return: its return value is readable here (a tracepoint is never one:
        sys_exit_*'s ``ret`` is a field; a kretprobe placed there reads it as retval)."""
        return self.kind in ("kretprobe", "uretprobe", "kretfunc")

    @property
    def point_kind(self) -> str:
        return _POINT_KINDS.get(self.kind, "none")

    def arg_named(self, name: str | None = None, index: int | None = None) -> Named | None:
        """A field or argument as ``ktui.probes.resolve`` types it (memory, string or number)."""
        if self.kind == "tracepoint":
            f = self.tp_field(name=name, index=index)
            if f is None:
                return None
            return Named(f.name, f.ctype, "field", memory_of("tracepoint", self.event, f.ctype), f.size, f.signed)
        args = [(n, t) for n, t in (self.func_args or []) if n != "..."]
        found = None
        if name is not None:
            found = next(((n, t) for n, t in args if n == name), None)
        elif index is not None and 1 <= index <= len(args):
            found = args[index - 1]
        if found is None:
            return None
        return Named(found[0], found[1], "arg", memory_of(self.point_kind, self.event, found[1]))

    def named_args(self) -> list[Named]:
        if self.kind == "tracepoint":
            return [Named(f.name, f.ctype, "field", memory_of("tracepoint", self.event, f.ctype), f.size, f.signed)
                    for f in visible_fields(self.tp_fields)]
        return [Named(n, t, "arg", memory_of(self.point_kind, self.event, t) if self.point_kind != "none" else KERNEL)
                for n, t in (self.func_args or []) if n != "..."]

    @property
    def user(self) -> bool:
        return self.kind in ("uprobe", "uretprobe", "usdt")

    @property
    def has_regs(self) -> bool:
        return self.kind in PT_REGS_KINDS or self.kind == "perf_event"

    @property
    def ctx_decl(self) -> str:
        if self.kind in PT_REGS_KINDS:
            return "struct pt_regs *ctx"
        if self.kind == "tracepoint":
            return f"struct {self.tp_struct} *ctx"
        if self.kind == "raw_tracepoint":
            return "struct bpf_raw_tracepoint_args *ctx"
        if self.kind == "perf_event":
            return "struct bpf_perf_event_data *ctx"
        return "u64 *ctx"  # kfunc/kretfunc: the arguments as an array of u64

    @property
    def regs(self) -> str:
        """A `struct pt_regs *` expression at this site."""
        return "(&ctx->regs)" if self.kind == "perf_event" else "ctx"

    @property
    def prog_type(self) -> str:
        return PROG_TYPES[self.kind]

    def tp_field(self, name: str | None = None, index: int | None = None) -> TpField | None:
        if name is not None:
            for f in self.tp_fields:
                if f.name == name:
                    return f
            return None
        fields = visible_fields(self.tp_fields)
        if index is not None and 1 <= index <= len(fields):
            return fields[index - 1]
        return None

    def arg_names(self) -> list[str]:
        if self.kind == "tracepoint":
            return [f.name for f in visible_fields(self.tp_fields)]
        return [n for n, _ in (self.func_args or []) if n and n != "..."]
