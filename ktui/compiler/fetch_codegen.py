"""Fetch expressions -> C. Every memory read goes through a bounded helper
(bpf_probe_read_kernel/_user and their _str forms) and every value the user
supplies becomes a number in the text, never C source."""

from __future__ import annotations

import platform

from collections.abc import Callable
from typing import TYPE_CHECKING

from ktui.errors import KtuiError

from ktui.probes.resolve import Named, arg_number, member_value_type, resolve_member_of
from ktui.probes.model import (Arg, Builtin, Deref, FetchExpr, Imm, Member, Reg, Retval, StackPtr, StackSlot, SymAddr,
                               ValueType)

from ktui.compiler.btf_types import TypeSource
from ktui.compiler.layout import c_type, value_type_of_ctype
from ktui.compiler.sites import ARG_REGS, PT_REGS, Site

if TYPE_CHECKING:
    from ktui.catalog.btf import FieldPath
    from ktui.compiler.tracepoint_struct import TpField

# String reads by where the text lives. "either" (a kernel function's char pointer without a
# __user tag: BTF here carries none) uses the compat helper, which on x86_64 reads user
# addresses from user memory and the rest from the kernel's.
STRING_READS = {"user": "bpf_probe_read_user_str", "kernel": "bpf_probe_read_kernel_str",
                "either": "bpf_probe_read_str" if platform.machine() in ("x86_64", "AMD64") else "bpf_probe_read_kernel_str"}
HEADER_BUILTINS = ("comm", "pid", "tid", "uid", "cpu", "ts", "kstack", "ustack")
READ_SIZES = (1, 2, 4, 8)


class FetchError(KtuiError):
    """A fetch that cannot be compiled at its site; the message says why in plain words."""


def contains_arg(expr: FetchExpr) -> bool:
    if isinstance(expr, Arg):
        return True
    inner = getattr(expr, "inner", None) or getattr(expr, "base", None)
    return inner is not None and contains_arg(inner)


def _num(value: int) -> str:
    if value < 0:
        return f"(u64)({value}LL)"
    return f"0x{value:x}ULL" if value > 0xFFFF else f"{value}"


def _plus(addr: str, off: int) -> str:
    if off == 0:
        return addr
    return f"{addr} + {off}" if off > 0 else f"{addr} - {-off}"


class FetchGen:
    """Compiles fetch expressions for one site. ``reads`` collects the read helpers used."""

    def __init__(self, site: Site, types: TypeSource, resolve_symbol: Callable[[str], int] | None = None):
        self.site = site
        self.types = types
        self.resolve_symbol = resolve_symbol  # name -> kernel address (kallsyms), for @SYM
        self.reads: set[str] = set()
        self.string_reads: dict[str, str] = {}  # record member -> the helper reading its string
        self._nreads = 0

    # ---- types --------------------------------------------------------------------
    def _ctype_type(self, ctype: str) -> ValueType | None:
        return value_type_of_ctype(ctype, self.types.scalar_size)

    def natural_type(self, expr: FetchExpr) -> ValueType:
        """The type a fetch gets when the user gave none."""
        site = self.site
        match expr:
            case Arg():
                named = self._named(expr)
                if named is None:
                    return ValueType("x", 64)  # no prototype: a register's worth, shown in hex
                vt = named.value_type(self.types.scalar_size)
                if vt is None:
                    what = "tracepoint field" if site.kind == "tracepoint" else "argument"
                    raise FetchError(f"{what} {named.name} is {named.ctype}, an array or struct: "
                                     "it cannot be fetched whole; fetch one of its members")
                return vt
            case Retval():
                if site.kind == "tracepoint":
                    return ValueType("s", 64)
                if site.ret_ctype:
                    vt = self._ctype_type(site.ret_ctype)
                    if vt is not None:
                        return vt
                return ValueType("s", 64)
            case Member(_, path):
                fp = self._member(expr)
                vt = member_value_type(fp, "user" if site.user else "kernel")
                if vt is None:
                    raise FetchError(f"{'->'.join(path)} is {fp.ctype}: not a scalar; fetch one of its members")
                return vt
            case Builtin(name):
                if name == "probe_func":
                    return ValueType("symbol", 64)
                if name in ("gid", "pid", "tid", "uid", "cpu"):
                    return ValueType("u", 32)
                if name in ("kstack", "ustack"):
                    return ValueType("s", 32)
                if name == "comm":
                    return ValueType("string", 0)
                return ValueType("u", 64)
        return ValueType("x", 64)

    # ---- arguments ------------------------------------------------------------------
    def _arg_label(self, arg: Arg) -> str:
        return arg.name if arg.name is not None else f"$arg{arg.index}"

    def _tp_field(self, arg: Arg) -> TpField:
        f = self.site.tp_field(name=arg.name, index=arg.index if arg.name is None else None)
        if f is None:
            names = ", ".join(self.site.arg_names()) or "none"
            raise FetchError(f"tracepoint {self.site.event} has no field {self._arg_label(arg)} (its fields: {names})")
        return f

    def _arg_index(self, arg: Arg) -> int:
        if arg.name is None:
            return int(arg.index or 0)
        args = self.site.func_args
        if args is None:
            if self.site.user:
                why = f"the program's DWARF does not describe {self.site.event} (build it with -g)"
            else:
                why = self.types.btf_error if self.types.btf() is None else f"BTF does not describe {self.site.event}"
            raise FetchError(f"argument {arg.name} by name needs the function's prototype, and {why}; use $argN")
        for i, (name, _ctype) in enumerate(args, 1):
            if name == arg.name:
                return i
        number = arg_number(arg.name)  # arg3 where no argument is named so: the third (a raw tracepoint's)
        if number is not None and 1 <= number <= len(args):
            return number
        if not any(n for n, _ in args):
            raise FetchError(f"BTF gives the arguments of {self.site.event} no names; use $arg1..$arg{len(args)}")
        names = ", ".join(n for n, _ in args) or "none"
        raise FetchError(f"{self.site.event} has no argument named {arg.name} (its arguments: {names})")

    def _named(self, arg: Arg) -> Named | None:
        """The argument or field as ktui.probes.resolve types it; None when the prototype is unknown."""
        if self.site.kind == "tracepoint":
            self._tp_field(arg)  # says which fields exist when this one does not
            return self.site.arg_named(name=arg.name, index=arg.index if arg.name is None else None)
        if self.site.func_args is None:
            if arg.name is not None:
                self._arg_index(arg)  # raises: by name needs the prototype
            return None
        i = self._arg_index(arg)
        return self.site.arg_named(index=i)

    def memory(self, expr: FetchExpr) -> str:
        """Where a string fetch reads: "user", "kernel" or "either" (from the type, see resolve)."""
        if isinstance(expr, Arg):
            named = self._named(expr)
            if named is not None:
                return named.memory
        return "user" if self.site.user else "kernel"

    # ---- values -------------------------------------------------------------------
    def _read(self, addr: str, size: int, user: bool) -> str:
        name = f"ktui_read_{'u' if user else 'k'}{size * 8}"
        self.reads.add(name)
        self._nreads += 1
        return f"{name}({addr}, &flt)"

    def _reg(self, name: str) -> str:
        if not self.site.has_regs:
            raise FetchError(f"registers (%{name}) are only readable in kprobe, uprobe and profile probes")
        if name not in PT_REGS:
            raise FetchError(f"%{name} is not an x86_64 register kprobe_events knows ({', '.join(PT_REGS)})")
        return f"ctx->regs.{name}" if self.site.kind == "perf_event" else f"ctx->{name}"

    def _member(self, expr: Member) -> FieldPath:
        """Where the member lives, as ktui.probes.resolve resolves it (the one resolution)."""
        base = self._base_named(expr.base)
        program = self.site.binary if self.site.user else None
        types, why = self.types.member_types(program, self.site.event)
        try:
            return resolve_member_of(base, expr.path, types, why, program=program,
                                     label=self._arg_label(expr.base) if isinstance(expr.base, Arg) else "retval").where
        except KtuiError as err:
            raise FetchError(err.message) from None

    def _base_named(self, base: FetchExpr) -> Named:
        if isinstance(base, Arg) and self.site.user and self.site.func_args is None:
            types, why = self.types.member_types(self.site.binary, self.site.event)
            reason = why if types is None else f"the program's DWARF does not describe {self.site.event}"
            raise FetchError(f"members of {self._arg_label(base)} need its type from the program's DWARF debug info, "
                             f"and {reason}")
        if isinstance(base, Arg):
            named = self._named(base)
            if named is None:
                raise FetchError(f"members of {self._arg_label(base)} need its type, and the function's prototype is unknown")
            return named
        if isinstance(base, Retval) and self.site.ret_ctype:
            return Named("retval", self.site.ret_ctype, "retval", "user" if self.site.user else "kernel")
        raise FetchError("struct members by name need an argument or return value of known type as their base")

    def scalar(self, expr: FetchExpr, size: int = 8) -> str:
        """A C expression for the value (memory reads take ``size`` bytes)."""
        site = self.site
        user = site.user
        match expr:
            case Reg(name):
                return self._reg(name)
            case Arg():
                return self._arg_scalar(expr)
            case Retval():
                if site.kind in ("kretprobe", "uretprobe"):
                    return "PT_REGS_RC(ctx)"
                if site.kind == "kretfunc":
                    if site.func_args is None:
                        raise FetchError(f"the return value of {site.event} needs its prototype (BTF) to be found")
                    return f"ctx[{len(site.func_args)}]"
                if site.kind == "tracepoint" and site.tp_field(name="ret") is not None:
                    return "ctx->f_ret"
                raise FetchError("only return probes have a return value")
            case StackSlot(n):
                return self._read(_plus(self._reg("sp"), 8 * n), size, user)
            case StackPtr():
                return self._reg("sp")
            case Imm(value):
                return _num(value)
            case SymAddr(symbol, offset, address):
                if address is None:
                    if symbol is None:
                        raise FetchError("@ needs a kernel symbol or an address")
                    if self.resolve_symbol is None:
                        raise FetchError(f"@{symbol} needs kernel symbol addresses (/proc/kallsyms)")
                    address = self.resolve_symbol(symbol)
                return self._read(_num(address + offset), size, False)
            case Deref(offset, inner, is_user):
                return self._read(_plus(self.scalar(inner, 8), offset), size, is_user or user)
            case Member():
                fp = self._member(expr)
                if fp.is_struct or fp.is_array:
                    raise FetchError(f"{'->'.join(expr.path)} is {fp.ctype}: not a scalar")
                ptr = self._member_object(expr, fp)
                return self._read(_plus(ptr, fp.offset), fp.size if fp.size in READ_SIZES else 8, user)
            case Builtin(name):
                return self._builtin(name)
        raise FetchError(f"cannot compile fetch {expr!r}")

    def _member_object(self, expr: Member, fp: FieldPath) -> str:
        """Address of the innermost object holding the member (following pointer hops)."""
        ptr = self.scalar(expr.base, 8)
        for hop in fp.hops:
            ptr = self._read(_plus(ptr, hop), 8, self.site.user)
        return ptr

    def _arg_scalar(self, arg: Arg) -> str:
        site = self.site
        if site.kind == "tracepoint":
            f = self._tp_field(arg)
            if f.is_char_array or f.is_data_loc or "[" in f.ctype:
                raise FetchError(f"tracepoint field {f.name} is {f.ctype}: fetch it as a string")
            return f"ctx->{f.member}"
        i = self._arg_index(arg)
        if site.kind in ("kprobe", "uprobe"):
            if arg.name is None:
                self._check_arg_number(i)
            if 1 <= i <= len(ARG_REGS):
                return f"PT_REGS_PARM{i}(ctx)"
            # Past six, arguments are on the stack above the return address.
            return self._read(_plus("ctx->sp", 8 * (i - len(ARG_REGS))), 8, site.user)
        if site.kind == "raw_tracepoint":
            n = len(site.func_args) if site.func_args is not None else 12
            if not 1 <= i <= n:
                raise FetchError(f"raw tracepoint {site.event} has {n} arguments, not {i}")
            return f"ctx->args[{i - 1}]"
        if site.kind in ("kfunc", "kretfunc"):
            n = len(site.func_args or [])
            if not 1 <= i <= n:
                raise FetchError(f"{site.event} has {n} arguments, not {i}")
            return f"ctx[{i - 1}]"
        raise FetchError(f"{site.kind} probes have no function arguments")

    def _check_arg_number(self, i: int) -> None:
        """argN by number: within the function's arguments when its prototype is known. Past the
        registers (x86_64: six) an argument is read from the caller's stack, which is right at
        the function's entry, where kprobes and uprobes on a symbol run."""
        n = len([a for a in (self.site.func_args or []) if a[0] != "..."])
        if self.site.func_args is not None and not any(a[0] == "..." for a in self.site.func_args) and i > n:
            raise FetchError(f"arg{i}: {self.site.event} takes {n} argument{'s' if n != 1 else ''}, so arg1..arg{n} "
                             "exist" if n else f"arg{i}: {self.site.event} takes no arguments")

    def _builtin(self, name: str) -> str:
        match name:
            case "pid":
                return "(bpf_get_current_pid_tgid() >> 32)"
            case "tid":
                return "(u32)bpf_get_current_pid_tgid()"
            case "uid":
                return "(u32)bpf_get_current_uid_gid()"
            case "gid":
                return "(bpf_get_current_uid_gid() >> 32)"
            case "cpu":
                return "bpf_get_smp_processor_id()"
            case "ts":
                return "bpf_ktime_get_ns()"
            case "latency":
                return "latency"
            case "probe_func":
                if self.site.kind in ("kprobe", "kretprobe", "kfunc", "kretfunc"):
                    return "bpf_get_func_ip(ctx)"
                if self.site.has_regs:
                    return f"PT_REGS_IP({self.site.regs})"
                raise FetchError(f"probe_func is only known in function and profile probes, not {self.site.kind}")
        raise FetchError(f"{name} is not a number")

    # ---- statements -----------------------------------------------------------------
    def _string_source(self, expr: FetchExpr, vtype: ValueType) -> tuple[str, str]:
        """(address expression, "user" | "kernel" | "either") of a string fetch."""
        site = self.site
        user = "user" if vtype.kind == "ustring" or site.user else "kernel"
        match expr:
            case Arg() if site.kind == "tracepoint":
                f = self._tp_field(expr)
                if f.is_data_loc:
                    if f.ctype.startswith("__rel_loc"):
                        return f"(void *)&ctx->{f.member} + 4 + (ctx->{f.member} & 0xffff)", "kernel"
                    return f"(void *)ctx + (ctx->{f.member} & 0xffff)", "kernel"
                if f.is_char_array:
                    return f"ctx->{f.member}", "kernel"
                return f"(void *){self.scalar(expr)}", "user" if vtype.kind == "ustring" else self.memory(expr)
            case Arg() if vtype.kind != "ustring":
                return f"(void *)({self.scalar(expr)})", self.memory(expr)
            case Deref(offset, inner, is_user):
                return f"(void *)({_plus(self.scalar(inner, 8), offset)})", "user" if is_user else user
            case Member():
                fp = self._member(expr)
                ptr = self._member_object(expr, fp)
                if fp.is_char_array:
                    return f"(void *)({_plus(ptr, fp.offset)})", user
                return f"(void *){self._read(_plus(ptr, fp.offset), 8, site.user)}", user
        return f"(void *)({self.scalar(expr)})", user

    def store(self, dest: str, vtype: ValueType, expr: FetchExpr, bit: int) -> str:
        """One line of C that sets ``dest`` (a record member) and sets header flag ``bit``
        when a memory read faults (the value is then 0, as the kernel's tracer shows "(fault)")."""
        if isinstance(expr, Builtin) and expr.name == "comm":
            if not vtype.is_string:
                raise FetchError("comm is a string: fetch it with type string")
            return f"bpf_get_current_comm({dest}, sizeof({dest}));"
        if isinstance(expr, Builtin) and expr.name in ("kstack", "ustack"):
            return f"{dest} = ({c_type(vtype)})v->hdr.{expr.name};"
        mark = f"v->hdr.flags |= KTUI_FAULT({bit});" if bit < 31 else ""
        if vtype.is_string:
            addr, memory = self._string_source(expr, vtype)
            helper = STRING_READS[memory]
            self.string_reads[dest] = helper
            call = f"{helper}({dest}, sizeof({dest}), {addr})"
            return f"if ({call} < 0) {mark}" if mark else f"{call};"
        before = self._nreads
        if vtype.kind == "bitfield":
            value = self.scalar(expr, vtype.bits // 8)
            mask = (1 << vtype.bit_width) - 1
            line = f"{dest} = ({c_type(ValueType('u', vtype.bits))})((({value}) >> {vtype.bit_offset}) & 0x{mask:x});"
        else:
            size = 8 if vtype.kind == "symbol" else vtype.bits // 8
            line = f"{dest} = ({c_type(vtype)}){self.scalar(expr, size)};"
        if self._nreads == before or not mark:
            return line
        return f"flt = 0; {line} if (flt) {mark}"

