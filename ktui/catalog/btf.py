"""A direct reader of the kernel's BTF (Documentation/bpf/btf.rst).

Only what the catalog and the probe compiler need: the type table walked once
(record offsets kept in an array), function names with their prototype ids,
``btf_trace_*`` typedefs (raw tracepoint arguments), C type strings rendered on
demand, and struct member lookup by name so ``task->comm`` or ``skb->len`` can
be resolved to offsets.

Every malformed input raises :class:`FileFormatError`; nothing else escapes.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field

from ktui.errors import FileFormatError, KtuiError, UnknownMember
from ktui.sysfacts import VMLINUX_BTF as VMLINUX_BTF, btf_stat as btf_stat  # re-exported

BTF_MAGIC = 0xEB9F

# kinds
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)

KIND_NAMES = {
    0: "void", INT: "int", PTR: "ptr", ARRAY: "array", STRUCT: "struct", UNION: "union",
    ENUM: "enum", FWD: "fwd", TYPEDEF: "typedef", VOLATILE: "volatile", CONST: "const",
    RESTRICT: "restrict", FUNC: "func", FUNC_PROTO: "func_proto", VAR: "var",
    DATASEC: "datasec", FLOAT: "float", DECL_TAG: "decl_tag", TYPE_TAG: "type_tag", ENUM64: "enum64",
}

# extra bytes after the 12-byte btf_type: (fixed, per vlen item)
_EXTRA = {
    INT: (4, 0), PTR: (0, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8),
    FWD: (0, 0), TYPEDEF: (0, 0), VOLATILE: (0, 0), CONST: (0, 0), RESTRICT: (0, 0),
    FUNC: (0, 0), FUNC_PROTO: (0, 8), VAR: (4, 0), DATASEC: (0, 12), FLOAT: (0, 0),
    DECL_TAG: (4, 0), TYPE_TAG: (0, 0), ENUM64: (0, 12),
}
_MODIFIERS = (VOLATILE, CONST, RESTRICT, TYPE_TAG, TYPEDEF)


@dataclass(frozen=True)
class Member:
    name: str
    offset: int  # bytes from the start of the outermost struct asked about
    size: int
    ctype: str
    type_id: int
    bitfield_offset: int | None = None  # bit offset within the byte at ``offset`` .. (bit units)
    bitfield_size: int | None = None


@dataclass
class FieldPath:
    """Where ``base->a.b->c`` lives: read a pointer at each of ``hops`` (each relative to the
    object reached so far), then the value at ``offset`` of the last object."""

    offset: int
    size: int
    ctype: str
    type_id: int
    signed: bool
    is_pointer: bool
    is_array: bool
    is_char_array: bool
    is_struct: bool
    hops: list[int] = field(default_factory=list)
    bitfield_offset: int | None = None
    bitfield_size: int | None = None


class BTF:
    """One BTF blob (vmlinux, or a module's split BTF on top of ``base``)."""

    memory = "kernel"  # the structs it describes live in kernel memory (ktui.probes.resolve.MemberTypes)
    source = "BTF"

    def __init__(self, data: bytes, *, base: BTF | None = None, name: str = "vmlinux",
                 offsets: array[int] | None = None):
        self.name = name
        self.base = base
        self.data = data
        if len(data) < 24:
            raise FileFormatError(f"BTF of {name} is truncated ({len(data)} bytes, a header needs 24).")
        magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise FileFormatError(f"{name} is not BTF (magic 0x{magic:04x}, expected 0xeb9f).")
        if version != 1:
            raise FileFormatError(f"BTF of {name} has version {version}; only version 1 is known.")
        if hdr_len < 24 or hdr_len > len(data):
            raise FileFormatError(f"BTF of {name} has a bad header length {hdr_len}.")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self.type_start = hdr_len + type_off
        self.type_end = self.type_start + type_len
        self.str_start = hdr_len + str_off
        self.str_end = self.str_start + str_len
        if self.type_end > len(data) or self.str_end > len(data) or self.type_start > self.type_end:
            raise FileFormatError(
                f"BTF of {name} is truncated: its header promises {max(self.type_end, self.str_end)} bytes, "
                f"the file has {len(data)}."
            )
        self.first_id = (base.nr_types if base else 1)
        self.str_base = (base.str_len_total if base else 0)
        self.str_len_total: int = self.str_base + str_len
        self._funcs: dict[str, int] | None = None  # func name -> FUNC type id
        self._trace_typedefs: dict[str, int] | None = None  # raw tracepoint -> typedef btf_trace_<name>
        self._names: dict[str, list[int]] | None = None
        self._str_cache: dict[int, str] = {}
        self._walk(offsets)

    # ---- walking -----------------------------------------------------------------
    def _walk(self, offsets: array[int] | None) -> None:
        data = self.data
        unpack = struct.Struct("<III").unpack_from
        if offsets is not None:
            self.offsets = offsets
        else:
            offs = array("I")
            append = offs.append
            off, end = self.type_start, self.type_end
            extra = _EXTRA
            try:
                while off < end:
                    info = unpack(data, off)[1]
                    kind = (info >> 24) & 0x1F
                    ext = extra.get(kind)
                    if ext is None:
                        raise FileFormatError(
                            f"BTF of {self.name} has an unknown type kind {kind} at byte {off}."
                        )
                    append(off)
                    off += 12 + ext[0] + ext[1] * (info & 0xFFFF)
            except struct.error:
                raise FileFormatError(f"BTF of {self.name} is truncated inside its type section.") from None
            if off != end:
                raise FileFormatError(f"BTF of {self.name} has a type record running past its type section.")
            self.offsets = offs
        self.nr_types: int = self.first_id + len(self.offsets)

    @property
    def funcs(self) -> dict[str, int]:
        if self._funcs is None:
            self._index_funcs()
        assert self._funcs is not None  # _index_funcs fills both tables
        return self._funcs

    @property
    def trace_typedefs(self) -> dict[str, int]:
        if self._trace_typedefs is None:
            self._index_funcs()
        assert self._trace_typedefs is not None  # _index_funcs fills both tables
        return self._trace_typedefs

    def _index_funcs(self) -> None:
        """Functions and btf_trace_ typedefs: one pass over the recorded type offsets."""
        data = self.data
        get_str = self.str_at
        funcs: dict[str, int] = {}
        tt: dict[str, int] = {}
        first = self.first_id
        for i, off in enumerate(self.offsets):
            name_off, info = struct.unpack_from("<II", data, off)
            kind = (info >> 24) & 0x1F
            if kind == FUNC:
                funcs.setdefault(get_str(name_off), first + i)
            elif kind == TYPEDEF and name_off:
                n = get_str(name_off)
                if n.startswith("btf_trace_"):
                    tt[n[10:]] = first + i
        self._funcs, self._trace_typedefs = funcs, tt

    def str_at(self, off: int) -> str:
        if off < self.str_base:
            return self.base.str_at(off) if self.base else ""
        s = self._str_cache.get(off)
        if s is not None:
            return s
        start = self.str_start + off - self.str_base
        if start >= self.str_end:
            raise FileFormatError(f"BTF of {self.name} names a string past its string section.")
        stop = self.data.find(b"\0", start, self.str_end)
        if stop < 0:
            raise FileFormatError(f"BTF of {self.name} has an unterminated string.")
        s = self.data[start:stop].decode("utf-8", "replace")
        self._str_cache[off] = s
        return s

    def _rec(self, tid: int) -> tuple[BTF, int]:
        if tid < self.first_id:
            if self.base is None:
                raise FileFormatError(f"BTF of {self.name} refers to type id {tid}, which does not exist.")
            return self.base._rec(tid)
        i = tid - self.first_id
        if i >= len(self.offsets):
            raise FileFormatError(f"BTF of {self.name} refers to type id {tid}, past its {self.nr_types} types.")
        return self, self.offsets[i]

    def type(self, tid: int) -> tuple[int, str, int, int, int, bool]:
        """(kind, name, vlen, size_or_type, record offset, kind_flag) of a type id; id 0 is void."""
        if tid == 0:
            return 0, "void", 0, 0, 0, False
        btf, off = self._rec(tid)
        name_off, info, st = struct.unpack_from("<III", btf.data, off)
        return (info >> 24) & 0x1F, btf.str_at(name_off), info & 0xFFFF, st, off, bool(info >> 31)

    def _items(self, tid: int, fmt: str, size: int) -> list[tuple[int, ...]]:
        btf, off = self._rec(tid)
        info = struct.unpack_from("<I", btf.data, off + 4)[0]
        vlen = info & 0xFFFF
        kind = (info >> 24) & 0x1F
        start = off + 12 + _EXTRA[kind][0]
        try:
            return [struct.unpack_from(fmt, btf.data, start + k * size) for k in range(vlen)]
        except struct.error:
            raise FileFormatError(f"BTF of {self.name} is truncated in type {tid}.") from None

    # ---- names -------------------------------------------------------------------
    def find(self, name: str, kinds: tuple[int, ...] = (STRUCT, UNION, TYPEDEF, ENUM, ENUM64, INT, FLOAT)) -> int | None:
        """The id of a named type; ``struct x``/``union x``/``enum x`` prefixes restrict the kind."""
        name = name.strip()
        for prefix, ks in (("struct ", (STRUCT,)), ("union ", (UNION,)), ("enum ", (ENUM, ENUM64))):
            if name.startswith(prefix):
                name, kinds = name[len(prefix):].strip(), ks
                break
        if self._names is None:
            self._build_names()
        assert self._names is not None  # _build_names fills it
        candidates = self._names.get(name, [])
        for want in kinds:  # keep the preference order of ``kinds``
            for tid in candidates:
                k, _, vlen, *_ = self.type(tid)
                if k == want and not (k in (STRUCT, UNION) and vlen == 0 and len(candidates) > 1):
                    return tid
        for tid in candidates:
            if self.type(tid)[0] in kinds:
                return tid
        if self.base is not None:
            return self.base.find(name, kinds)
        return None

    def _build_names(self) -> None:
        names: dict[str, list[int]] = {}
        data = self.data
        for i, off in enumerate(self.offsets):
            name_off, info = struct.unpack_from("<II", data, off)
            kind = (info >> 24) & 0x1F
            if name_off and kind in (STRUCT, UNION, TYPEDEF, ENUM, ENUM64, INT, FLOAT, FWD):
                names.setdefault(self.str_at(name_off), []).append(self.first_id + i)
        self._names = names

    # ---- C rendering -------------------------------------------------------------
    def ctype(self, tid: int, _depth: int = 0) -> str:
        """The C spelling of a type: ``struct kernel_clone_args *``, ``const char *``, ``u8[16]``."""
        if _depth > 40:
            return "?"
        kind, name, vlen, st, off, kflag = self.type(tid)
        if kind == 0:
            return "void"
        if kind in (INT, FLOAT, TYPEDEF):
            return name
        if kind in (STRUCT, UNION):
            return f"{'struct' if kind == STRUCT else 'union'} {name or '(anon)'}"
        if kind in (ENUM, ENUM64):
            return f"enum {name or '(anon)'}"
        if kind == FWD:
            return f"{'union' if kflag else 'struct'} {name}"
        if kind == PTR:
            tk = self.type(st)[0] if st else 0
            if tk == FUNC_PROTO:
                ret, args = self._proto(st, _depth + 1)
                return f"{ret} (*)({', '.join(t for _, t in args) or 'void'})"
            inner = self.ctype(st, _depth + 1)
            return inner + ("*" if inner.endswith("*") else " *")
        if kind in (CONST, VOLATILE):
            q = "const" if kind == CONST else "volatile"
            inner = self.ctype(st, _depth + 1)
            return f"{inner} {q}" if inner.endswith("*") else f"{q} {inner}"
        if kind in (RESTRICT, TYPE_TAG):
            return self.ctype(st, _depth + 1)
        if kind == ARRAY:
            elem, _idx, n = struct.unpack_from("<III", self._rec(tid)[0].data, off + 12)
            return f"{self.ctype(elem, _depth + 1)}[{n}]"
        if kind == FUNC_PROTO:
            ret, args = self._proto(tid, _depth + 1)
            return f"{ret} ({', '.join(t for _, t in args) or 'void'})"
        if kind == FUNC:
            return self.ctype(st, _depth + 1)
        return name or KIND_NAMES.get(kind, "?")

    def _proto(self, proto_id: int, depth: int = 0) -> tuple[str, list[tuple[str, str]]]:
        kind, _name, _vlen, ret, _off, _k = self.type(proto_id)
        if kind != FUNC_PROTO:
            raise FileFormatError(f"BTF of {self.name}: type {proto_id} is not a function prototype.")
        args = []
        for name_off, t in self._items(proto_id, "<II", 8):
            if t == 0 and name_off == 0:
                args.append(("...", "..."))
                continue
            args.append((self.str_at(name_off), self.ctype(t, depth + 1)))
        return self.ctype(ret, depth + 1), args

    def func_proto(self, name: str) -> tuple[str, list[tuple[str, str]]] | None:
        """(return ctype, [(argname, ctype), ...]) of a kernel function, or None when BTF lacks it."""
        fid = self.funcs.get(name)
        if fid is None:
            return self.base.func_proto(name) if self.base else None
        return self.func_proto_by_id(fid)

    def func_proto_by_id(self, func_id: int) -> tuple[str, list[tuple[str, str]]]:
        kind, _n, _v, proto, _o, _k = self.type(func_id)
        if kind != FUNC:
            raise FileFormatError(f"BTF of {self.name}: type {func_id} is not a function.")
        return self._proto(proto)

    def raw_tracepoint_args(self, tp: str) -> list[tuple[str, str]] | None:
        """Arguments of raw tracepoint ``tp`` from ``typedef void (*btf_trace_<tp>)(void *, ...)``,
        without the leading ``void *__data``."""
        tid = self.trace_typedefs.get(tp)
        if tid is None:
            return self.base.raw_tracepoint_args(tp) if self.base else None
        kind, _n, _v, ptr, _o, _k = self.type(tid)
        pk, _pn, _pv, proto, _po, _pk = self.type(ptr)
        if pk != PTR or self.type(proto)[0] != FUNC_PROTO:
            return None
        return self._proto(proto)[1][1:]

    # ---- layout ------------------------------------------------------------------
    def strip(self, tid: int) -> int:
        """Skip typedefs and qualifiers."""
        for _ in range(64):
            kind, _n, _v, st, _o, _k = self.type(tid)
            if kind not in _MODIFIERS:
                return tid
            tid = st
        raise FileFormatError(f"BTF of {self.name} has a typedef loop at type {tid}.")

    def size_of(self, tid: int) -> int:
        tid = self.strip(tid)
        kind, _n, _v, st, off, _k = self.type(tid)
        if kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
            return st
        if kind == PTR:
            return 8
        if kind == ARRAY:
            elem, _idx, n = struct.unpack_from("<III", self._rec(tid)[0].data, off + 12)
            return int(n * self.size_of(elem))
        return 0

    def members(self, tid: int) -> list[Member]:
        """Members of a struct/union (anonymous members flattened in place)."""
        out: list[Member] = []
        self._members(self.strip(tid), 0, out, 0)
        return out

    def _members(self, tid: int, base_bits: int, out: list[Member], depth: int) -> None:
        kind, _name, _vlen, _size, _off, kflag = self.type(tid)
        if kind not in (STRUCT, UNION) or depth > 16:
            return
        for name_off, mtype, moff in self._items(tid, "<III", 12):
            bits = (moff & 0xFFFFFF) if kflag else moff
            bsize = (moff >> 24) if kflag else 0
            name = self.str_at(name_off)
            total = base_bits + bits
            if not name:
                inner = self.strip(mtype)
                if self.type(inner)[0] in (STRUCT, UNION):
                    self._members(inner, total, out, depth + 1)
                continue
            if not bsize:
                ik, *_ = self.type(self.strip(mtype))
                if ik == INT:  # old-style bitfield: encoded in the int type's own info
                    ibtf, ioff = self._rec(self.strip(mtype))
                    enc = struct.unpack_from("<I", ibtf.data, ioff + 12)[0]
                    ibits = enc & 0xFF
                    if ibits and ibits != self.size_of(mtype) * 8:
                        bsize = ibits
                        total += (enc >> 16) & 0xFF
            if bsize:
                out.append(Member(name, total // 8, self.size_of(mtype), self.ctype(mtype), mtype, total % 8, bsize))
            else:
                out.append(Member(name, total // 8, self.size_of(mtype), self.ctype(mtype), mtype))

    def member(self, struct_name: str, field_name: str) -> tuple[int, int, str, tuple[int, int] | None]:
        """(offset bytes, size bytes, ctype, (bit offset, bit size) or None) of ``struct_name.field_name``."""
        tid = self.find(struct_name)
        if tid is None:
            raise KtuiError(f"BTF of {self.name} has no type named {struct_name!r}.")
        for m in self.members(tid):
            if m.name == field_name:
                # a bitfield member has both (see _members)
                bf = (m.bitfield_offset, m.bitfield_size) if m.bitfield_size and m.bitfield_offset is not None else None
                return m.offset, m.size, m.ctype, bf
        raise KtuiError(f"{self.ctype(self.strip(tid))} has no member named {field_name!r}.")

    def resolve_path(self, base: str | int, path: list[str]) -> FieldPath:
        """Resolve ``base->path[0]->path[1]...`` (``.`` and ``->`` alike: pointers are followed
        and recorded in ``hops``). ``base`` is a type name (``struct sk_buff``, ``task_struct``)
        or type id; a pointer base type is followed first without a hop."""
        if isinstance(base, int):
            tid = base
        else:
            found = self.find(base.rstrip("* ").strip())
            if found is None:
                raise KtuiError(f"BTF of {self.name} has no type named {base!r}.")
            tid = found
        tid = self.strip(tid)
        if self.type(tid)[0] == PTR:
            tid = self.strip(self.type(tid)[3])
        hops: list[int] = []
        offset = 0
        cur_member: Member | None = None
        for i, name in enumerate(path):
            if cur_member is not None:  # step into the previous member
                mt = self.strip(cur_member.type_id)
                mk = self.type(mt)[0]
                if mk == PTR:
                    hops.append(offset)
                    offset = 0
                    tid = self.strip(self.type(mt)[3])
                elif mk in (STRUCT, UNION):
                    tid = mt
                else:
                    raise KtuiError(
                        f"{'.'.join(path[:i])} is {cur_member.ctype}, not a struct: it has no member {name!r}."
                    )
            k = self.type(tid)[0]
            if k == FWD:
                raise KtuiError(f"{self.ctype(tid)} is only declared in BTF; its layout is unknown.")
            if k not in (STRUCT, UNION):
                raise KtuiError(f"{self.ctype(tid)} is not a struct or union; it has no member {name!r}.")
            for m in self.members(tid):
                if m.name == name:
                    cur_member = m
                    offset += m.offset
                    break
            else:
                raise UnknownMember(self.ctype(tid), name, [m.name for m in self.members(tid)])
        if cur_member is None:
            raise KtuiError("An empty field path names nothing.")
        mt = self.strip(cur_member.type_id)
        kind, _n, _v, st, off, _k = self.type(mt)
        is_array = kind == ARRAY
        is_char_array = False
        signed = False
        if is_array:
            elem = struct.unpack_from("<III", self._rec(mt)[0].data, off + 12)[0]
            ek, _en, _ev, esz, eoff, _ekf = self.type(self.strip(elem))
            if ek == INT and esz == 1:
                is_char_array = True
        if kind == INT:
            ibtf, ioff = self._rec(mt)
            signed = bool((struct.unpack_from("<I", ibtf.data, ioff + 12)[0] >> 24) & 1)
        elif kind in (ENUM, ENUM64):
            signed = bool(_k)
        return FieldPath(
            offset=offset, size=cur_member.size, ctype=cur_member.ctype, type_id=cur_member.type_id,
            signed=signed, is_pointer=kind == PTR, is_array=is_array, is_char_array=is_char_array,
            is_struct=kind in (STRUCT, UNION), hops=hops,
            bitfield_offset=cur_member.bitfield_offset, bitfield_size=cur_member.bitfield_size,
        )


def parse_btf(data: bytes, *, base: BTF | None = None, name: str = "BTF") -> BTF:
    """Parse a BTF blob; any malformation is a FileFormatError."""
    try:
        btf = BTF(data, base=base, name=name)
        _ = btf.funcs  # index eagerly so a malformed name table is reported here
        return btf
    except KtuiError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError, RecursionError, KeyError) as err:
        raise FileFormatError(f"{name} is not valid BTF ({type(err).__name__}).") from None


_VMLINUX: dict[tuple[str, tuple[int, int] | None], BTF] = {}  # (path, its size and mtime)


def load_vmlinux_btf(path: str = VMLINUX_BTF, *, offsets: array[int] | None = None) -> BTF:
    """The kernel's BTF (memoised per file size/mtime)."""
    key = (path, btf_stat(path))
    btf = _VMLINUX.get(key)
    if btf is not None:
        return btf
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileFormatError(f"{path} does not exist: this kernel exposes no BTF (CONFIG_DEBUG_INFO_BTF).") from None
    except OSError as err:
        raise FileFormatError(f"cannot read {path}: {err.strerror}.") from None
    if offsets is not None:
        try:
            btf = BTF(data, name=path, offsets=offsets)
        except KtuiError:
            btf = parse_btf(data, name=path)
    else:
        btf = parse_btf(data, name=path)
    _VMLINUX.clear()
    _VMLINUX[key] = btf
    return btf


def load_module_btf(module: str, base: BTF | None = None) -> BTF | None:
    path = f"/sys/kernel/btf/{module}"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return parse_btf(data, base=base or load_vmlinux_btf(), name=path)
