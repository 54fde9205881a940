"""Where a generated function runs, and how it reads registers, arguments and the
return value there. One probe can have two sites: its entry side and its main side."""

from __future__ import annotations

from dataclasses import dataclass, field

from ktui.compiler.tracepoint_struct import TpField, visible_fields

# kprobe_events register names (x86_64) -> struct pt_regs members, which keep these names.
PT_REGS = ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip", "flags", "cs", "ss", "orig_ax",
           "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
ARG_REGS = ("di", "si", "dx", "cx", "r8", "r9")  # the x86_64 calling convention

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
    usdt: tuple = ()  # usdt: the marker's locations (ktui.catalog.usdt.UsdtMarker), all of one provider:name

    @property
    def is_return(self) -> bool:
        return self.kind in ("kretprobe", "uretprobe", "kretfunc") or (
            self.kind == "tracepoint" and ":sys_exit_" in self.event)

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
