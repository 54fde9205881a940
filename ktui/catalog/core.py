"""The catalog: every probe point, stored column-wise, materialised into Entry objects on demand."""

from __future__ import annotations

import os
import re
from array import array
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, overload

import numpy as np

from ktui.catalog import search as _search
from ktui.catalog.entry import Arg, Details, Entry, EntryExtras
from ktui.catalog.textindex import TextIndex
from ktui.catalog.traceability import CODE, TRACEABILITY
from ktui.errors import KtuiError, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ktui.catalog.btf import BTF
    from ktui.catalog.dwarf import DwarfFunction

KINDS = _search.KINDS  # sorted order of "kind:" prefixes: kprobe < rawtracepoint < tracepoint < uprobe
KIND_CODE = _search.KIND_CODE


class _Loader:
    __slots__ = ("cat", "i")

    def __init__(self, cat: Catalog, i: int):
        self.cat, self.i = cat, i

    def __call__(self, entry: Entry) -> Details:
        return self.cat._details(self.i, entry)


class _EntryList(Sequence[Entry]):
    def __init__(self, cat: Catalog):
        self._cat = cat

    def __len__(self) -> int:
        return len(self._cat.names)

    @overload
    def __getitem__(self, i: int) -> Entry: ...

    @overload
    def __getitem__(self, i: slice) -> list[Entry]: ...

    def __getitem__(self, i: int | slice) -> Entry | list[Entry]:
        if isinstance(i, slice):
            return [self._cat.entry(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._cat.entry(i)


class Catalog:
    """Probe points of the kernel (``Catalog.load()``) or of one binary (``Catalog.for_binary()``)."""

    def __init__(self, names: list[str], kind: np.ndarray, addr: np.ndarray, mod: np.ndarray,
                 trace: np.ndarray, ref: np.ndarray, modules: list[str], extras: dict[int, EntryExtras],
                 reasons: dict[int, str], notes: list[str], problems: dict[str, str],
                 origin: str = "kernel", tracefs: str | None = None, btf_offsets: bytes | None = None,
                 btf_path: str | None = None):
        self.names = names
        self.kind = kind
        self.addr = addr
        self.mod = mod
        self.trace = trace
        self.ref = ref
        self.modules = modules
        self.extras = extras
        self.reasons = reasons
        self.notes = notes
        self.problems = problems  # source -> sentence, e.g. {"tracefs": "cannot read ..."}
        self.origin = origin
        self.tracefs = tracefs
        self.btf_offsets = btf_offsets
        self.btf_path = btf_path
        self.dwarf: dict[str, DwarfFunction] | None = None  # name -> function (from --debuginfo)
        self.details_override: dict[int, Details] = {}
        self._cache: dict[int, Entry] = {}
        self._index: dict[str, int] | None = None
        self._text: str | None = None
        self._starts: np.ndarray | None = None
        self._ftext: str | None = None
        self._fstarts: np.ndarray | None = None
        self._flens: np.ndarray | None = None
        self._fbuf: np.ndarray | None = None
        self._findex: TextIndex | None = None
        self._tindex: TextIndex | None = None
        self._btf: BTF | None = None
        self._module_btf: dict[str, BTF | None] = {}
        self.kind_ranges = {k: (int(np.searchsorted(kind, c, "left")), int(np.searchsorted(kind, c, "right")))
                            for k, c in KIND_CODE.items()}
        self.load_seconds: float | None = None
        self.from_cache = False
        self._kprobes_attach: bool | None = None

    # ---- construction ------------------------------------------------------------
    @classmethod
    def load(cls, *, use_cache: bool = True, debuginfo: str | None = None, mount: bool = True,
             btf: str | None = None) -> Catalog:
        """The kernel's catalog: kallsyms + BTF + tracepoints (+ DWARF from ``debuginfo``).
        ``btf`` reads another BTF file instead of /sys/kernel/btf/vmlinux (no cache then)."""
        from ktui.catalog.kernel_build import load_kernel_catalog

        # The builder is handed the class: it builds the columns, and imports nothing of this module.
        cat = load_kernel_catalog(cls, use_cache=use_cache and not btf, mount=mount, btf_path=btf)
        if debuginfo:
            cat.attach_debuginfo(debuginfo)
        return cat

    @classmethod
    def for_binary(cls, path: str, *, debuginfo: str | None = None) -> Catalog:
        """Uprobe points of one program or library: ELF FUNC symbols, DWARF params when present."""
        from ktui.catalog.elf_symbols import elf_functions

        return cls.from_entries(elf_functions(path, debuginfo=debuginfo), origin=os.path.abspath(path))

    @staticmethod
    def uprobe_details(binary: str, symbol: str) -> Details:
        """Typed arguments of one function of a program or library, for building uprobes:
        ``Details.args`` are ``Arg(name, ctype, size=bytes, signed=bool)`` from the binary's DWARF
        or its build-id debug file (/usr/lib/debug/.build-id/), ``return_type`` (``"void"`` when
        none), ``source``, and ``note`` saying why ``args`` is empty when there is no DWARF.
        Raises FileFormatError when the binary or the symbol does not exist."""
        from ktui.catalog.elf_symbols import function_details

        return function_details(binary, symbol)

    @classmethod
    def from_entries(cls, entries: Iterable[Entry], *, origin: str, notes: list[str] | None = None) -> Catalog:
        rows = sorted(entries, key=lambda e: e.name)
        n = len(rows)
        modules = sorted({e.module for e in rows if e.module})
        mindex = {m: i for i, m in enumerate(modules)}
        cat = cls(
            [e.name for e in rows],
            np.array([KIND_CODE[e.kind] for e in rows], dtype=np.uint8),
            np.array([e.address or 0 for e in rows], dtype=np.uint64),
            np.array([mindex.get(e.module, -1) if e.module else -1 for e in rows], dtype=np.int32),
            np.array([CODE[e.traceability] for e in rows], dtype=np.uint8),
            np.full(n, -1, dtype=np.int64), modules, {}, {}, notes or [], {}, origin=origin,
        )
        for i, e in enumerate(rows):
            cat._cache[i] = e
        return cat

    # ---- access ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.names)

    @property
    def entries(self) -> Sequence[Entry]:
        return _EntryList(self)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def entry(self, i: int) -> Entry:
        e = self._cache.get(i)
        if e is not None:
            return e
        name = self.names[i]
        kind = KINDS[self.kind[i]]
        if kind == "usdt":  # usdt:/path:provider:name -> provider:name
            symbol = ":".join(name.rsplit(":", 2)[1:])
        else:
            symbol = name.split(":", 1)[1] if kind != "uprobe" else name.rsplit(":", 1)[1]
        ex = self.extras.get(i, {})
        code = int(self.trace[i])
        addr = int(self.addr[i]) or None
        m = int(self.mod[i])
        e = Entry.__new__(Entry)
        e.kind, e.name, e.symbol, e.address = kind, name, symbol, addr
        e.module = self.modules[m] if m >= 0 else None
        e.traceability = TRACEABILITY[code]
        e.traceability_reason = ex.get("reason") or self.reasons.get(code, "")
        e.addresses = ex.get("addresses") or ([addr] if addr else [])
        e.clones = ex.get("clones") or []
        e.clone_of = ex.get("clone_of")
        e.offset = None
        e._details = self.details_override.get(i)
        e._loader = _Loader(self, i)
        self._cache[i] = e
        return e

    def index_of(self, name: str) -> int | None:
        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.names)}
        return self._index.get(name)

    def lookup(self, name: str) -> Entry | None:
        """The entry with exactly this name (``kprobe:kernel_clone``, ``t:sched:sched_switch`` too)."""
        i = self.index_of(_search.expand_alias(name))
        return None if i is None else self.entry(i)

    # ---- lazy details ------------------------------------------------------------
    def btf(self) -> BTF:
        if self._btf is None:
            from ktui.catalog.btf import VMLINUX_BTF, load_vmlinux_btf

            offs = None
            if self.btf_offsets:
                offs = array("I")
                offs.frombytes(self.btf_offsets)
            self._btf = load_vmlinux_btf(self.btf_path or VMLINUX_BTF, offsets=offs)
        return self._btf

    def module_btf(self, module: str) -> BTF | None:
        if module not in self._module_btf:
            from ktui.catalog.btf import load_module_btf

            try:
                self._module_btf[module] = load_module_btf(module, self.btf())
            except KtuiError:
                self._module_btf[module] = None
        return self._module_btf[module]

    def _details(self, i: int, e: Entry) -> Details:
        try:
            return self._compute_details(i, e)
        except KtuiError as err:
            return Details([], note=str(err))

    def _compute_details(self, i: int, e: Entry) -> Details:
        ref = int(self.ref[i])
        dw = self.dwarf.get(e.symbol) if self.dwarf else None
        if e.kind == "tracepoint":
            from ktui.catalog.tracefs_events import read_format

            group, _, event = e.symbol.partition(":")
            if not self.tracefs:
                return Details([], note="tracefs is not available, so tracepoint fields cannot be read")
            fields = read_format(self.tracefs, group, event)
            return Details([Arg(f.name, f.ctype, f.offset, f.size, f.signed) for f in fields if not f.common])
        if e.kind in ("software", "hardware"):
            from ktui.probes.perf_events import lookup

            ev = lookup(e.kind, e.symbol)
            return Details([], note=f"{ev.what}; a sample every {ev.default_period} events unless "
                                    f"{e.name}:PERIOD says otherwise" if ev else None)
        if e.kind == "rawtracepoint":
            raw_args = self.btf().raw_tracepoint_args(e.symbol) or []
            # BTF names no raw tracepoint parameter: they are arg1..argN, as the filter language,
            # fetches and the compiler count them (arg0 would name the first as the editor shows it
            # and the second as the compiler reads it)
            return Details([Arg(n or f"arg{k}", t) for k, (n, t) in enumerate(raw_args, 1)], return_type="void")
        if e.kind == "kprobe":
            args: list[Arg] = []
            ret = None
            note = None
            if ref >= 0:
                btf = self.module_btf(e.module) if e.module else self.btf()
                if btf is not None:
                    ret, pairs = btf.func_proto_by_id(ref)
                    args = [Arg(n, t) for n, t in pairs]
            elif e.clone_of:
                note = (f"no BTF prototype for the clone {e.symbol}: the compiler may have dropped or changed "
                        f"parameters of {e.clone_of}")
            else:
                note = "BTF has no prototype for this symbol"
            source = None
            local_args = None
            if dw is not None:
                source = dw.source
                local_args = [Arg(n, t) for n, t in dw.locals]
                if not args and dw.params:
                    args = [Arg(n, t) for n, t in dw.params]
                    ret = ret or dw.return_type
                    note = None
            return Details(args, return_type=ret, source=source, locals=local_args, note=note)
        return Details([], note="no argument information")

    def attach_debuginfo(self, path: str) -> None:
        """Source lines, parameters and locals from a vmlinux/module/program with DWARF."""
        from ktui.catalog.dwarf import dwarf_functions

        self.dwarf = dwarf_functions(path)
        # entries already built must recompute their details
        for e in self._cache.values():
            if e._loader is not None:
                e._details = None
        # functions only DWARF knows about (inlined everywhere): traceability "inlined"
        if self.origin == "kernel":
            missing = [f for f in self.dwarf.values() if f.inlined_only and self.index_of("kprobe:" + f.name) is None]
            if missing:
                extra = []
                for f in missing:
                    extra.append(Entry("kprobe", "kprobe:" + f.name, f.name, traceability="inlined",
                                       traceability_reason="DWARF has only inlined copies of it, no out-of-line function",
                                       details=Details([Arg(n, t) for n, t in f.params], f.return_type, f.source,
                                                       [Arg(n, t) for n, t in f.locals])))
                self._merge(extra)

    def _merge(self, extra: list[Entry]) -> None:
        """Add entries (rare: DWARF-only functions); rebuilds the columns."""
        import copy

        allents = [self.entry(i) for i in range(len(self))]
        old = copy.copy(self)  # the old columns, for the lazy details of entries built from them
        for e in allents:
            if isinstance(e._loader, _Loader):
                e._loader.cat = old
        allents += extra
        other = Catalog.from_entries(allents, origin=self.origin, notes=self.notes)
        keep = (self.dwarf, self.tracefs, self.btf_offsets, self._btf, self.problems)
        self.__dict__.update(other.__dict__)
        self.dwarf, self.tracefs, self.btf_offsets, self._btf, self.problems = keep

    # ---- search ------------------------------------------------------------------
    @staticmethod
    def _line_starts(text: str, names: list[str]) -> np.ndarray:
        if text.isascii():
            nl = np.flatnonzero(np.frombuffer(text.encode("ascii"), dtype=np.uint8) == 10)
            starts = np.empty(len(nl) + 1, dtype=np.int64)
            starts[0] = 0
            starts[1:] = nl + 1
            return starts
        lengths = np.fromiter((len(n) + 1 for n in names), dtype=np.int64, count=len(names))
        starts = np.zeros(len(names), dtype=np.int64)
        if len(lengths) > 1:
            np.cumsum(lengths[:-1], out=starts[1:])
        return starts

    def _ensure_text(self) -> None:
        if self._text is None:
            self._text = "\n".join(self.names)
        if self._starts is None:
            self._starts = self._line_starts(self._text, self.names) if self.names else np.zeros(0, np.int64)
            self._tindex = TextIndex(self._text, self._starts) if self._text.isascii() and self.names else None

    def _range(self, kinds: Iterable[str] | None) -> list[tuple[int, int]]:
        if kinds is None:
            return [(0, len(self.names))]
        out = []
        for k in _search.kind_names(kinds):
            lo, hi = self.kind_ranges[k]
            if hi > lo:
                out.append((lo, hi))
        return sorted(set(out))

    def search_indices(self, pattern: str, mode: str = "glob", kinds: Iterable[str] | None = None,
                       traceability: Iterable[str] | None = None, limit: int | None = None) -> list[int]:
        """Row numbers matching ``pattern``, in name order (fuzzy: best first)."""
        self._ensure_text()
        if isinstance(kinds, str):
            kinds = [kinds]
        if isinstance(traceability, str):
            traceability = [traceability]
        ranges = self._range(kinds)
        if mode == "glob":
            if ":" not in pattern and not pattern.startswith("*"):
                pattern = "*:" + pattern  # a bare name (bpftrace refuses these): match it as the last part
            rows = self._glob_rows(pattern, ranges)
        elif mode == "regex":
            rows = self._regex_rows(pattern, ranges)
        elif mode == "fuzzy":
            rows = self._fuzzy_rows(pattern, ranges, traceability, limit)
        else:
            raise UsageError(f"Unknown search mode {mode!r}; use glob, regex or fuzzy.")
        if traceability is not None and mode != "fuzzy":
            codes = self._trace_codes(traceability)
            tr = self.trace
            rows = [i for i in rows if tr[i] in codes]
        if limit is not None:
            rows = rows[:limit]
        return rows

    def _regex_rows(self, pattern: str, ranges: list[tuple[int, int]]) -> list[int]:
        """Names in which ``pattern`` is found (``re.search`` semantics per name)."""
        rx = _search.compile_regex(pattern)
        names = self.names
        text, starts = self._text, self._starts
        assert text is not None and starts is not None  # search() built them
        big = None
        if self._tindex is not None and "\\A" not in pattern and "\\Z" not in pattern:
            try:  # one pass over the joined text; ^ and $ at name boundaries
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    big = re.compile(f"(?:{pattern})[^\n]*", rx.flags | re.M)
            except (re.error, OverflowError, RecursionError, ValueError):
                big = None
        rows: list[int] = []
        literal = self._tindex is not None and pattern.isascii() and pattern and re.escape(pattern) == pattern \
            and not rx.flags & re.IGNORECASE
        for lo, hi in ranges:
            if literal and self._tindex is not None:  # a plain word (what typing starts with): vectorised substring search
                a = int(starts[lo])
                b = int(starts[hi - 1]) + len(names[hi - 1])
                rows.extend(self._tindex.substring(pattern.encode("ascii"), a, b)[0].tolist())
                continue
            if big is not None and self._tindex is not None:  # big is only compiled with the index
                a = int(starts[lo])
                b = int(starts[hi - 1]) + len(names[hi - 1])
                spans = [m.span() for m in big.finditer(text, a, b)]
                if not spans:
                    continue
                sp = np.asarray(spans, dtype=np.int64)
                r = np.searchsorted(starts, sp[:, 0], "right") - 1
                if not np.any(sp[:, 1] > self._tindex.ends[r]):  # no match ran across a newline
                    rows.extend(np.unique(r).tolist())
                    continue
            search = rx.search
            rows.extend(i for i in range(lo, hi) if search(names[i]))
        return rows

    def _trace_codes(self, traceability: Iterable[str]) -> set[int]:
        codes = set()
        for t in traceability:
            if t not in CODE:
                raise UsageError(f"Unknown traceability {t!r}; values are: {', '.join(TRACEABILITY)}.")
            codes.add(CODE[t])
        return codes

    def _glob_rows(self, pattern: str, ranges: list[tuple[int, int]]) -> list[int]:
        import bisect

        rx = _search.compile_glob(pattern)
        full = _search.expand_alias(pattern)
        prefix = _search.literal_prefix(pattern)
        rest = full[len(prefix):]
        text, starts, names = self._text, self._starts, self.names
        assert text is not None and starts is not None  # search() built them
        literal = _search.longest_literal(rest)
        rows: list[int] = []
        for lo, hi in ranges:
            if prefix:  # names are sorted: the literal prefix bounds a contiguous range
                lo, hi = bisect.bisect_left(names, prefix, lo, hi), bisect.bisect_left(names, prefix + "\U0010ffff", lo, hi)
                if lo >= hi:
                    continue
                if not rest:
                    i = self.index_of(full)
                    if i is not None and lo <= i < hi:
                        rows.append(i)
                    continue
            if rest and set(rest) == {"*"}:
                rows.extend(range(lo, hi))
                continue
            a = int(starts[lo])
            b = int(starts[hi - 1]) + len(names[hi - 1])
            if self._tindex is not None and literal and rest == f"*{literal}*" and literal.isascii():
                r, _p = self._tindex.substring(literal.encode("ascii"), a, b)  # '*text*': pure numpy
                rows.extend(r.tolist())
            elif self._tindex is not None and literal and literal.isascii():
                cand, _p = self._tindex.substring(literal.encode("ascii"), a, b)  # names with the literal
                fm = rx.fullmatch
                rows.extend(i for i in cand.tolist() if fm(names[i]))
            elif len(literal) >= 2:  # find the literal fast, then check only those names
                lit = re.compile(re.escape(literal))
                pos = [m.start() for m in lit.finditer(text, a, b)]
                if not pos:
                    continue
                cand = np.unique(np.searchsorted(starts, np.asarray(pos, dtype=np.int64), "right") - 1)
                fm = rx.fullmatch
                rows.extend(int(i) for i in cand if fm(names[i]))
            else:
                pos = [m.start() for m in rx.finditer(text, a, b)]
                if pos:
                    rows.extend(int(r) for r in np.searchsorted(starts, np.asarray(pos, dtype=np.int64), "right") - 1)
        return rows

    def _ensure_fuzzy_text(self) -> None:
        if self._ftext is None:
            syms = [n.split(":", 1)[1].lower() for n in self.names]
            self._ftext = "\n".join(syms)
            self._fstarts = fstarts = self._line_starts(self._ftext, syms)
            ends = np.empty_like(fstarts)
            ends[:-1] = fstarts[1:] - 1
            ends[-1] = len(self._ftext)
            self._flens = ends - fstarts
            self._fbuf = np.frombuffer(self._ftext.encode("ascii"), dtype=np.uint8) if self._ftext.isascii() else None
            self._findex = TextIndex(self._ftext, self._fstarts) if self._fbuf is not None and syms else None
            if self._findex is not None:
                colons = self._findex.positions(ord(":"))
                last = self._fstarts.copy()
                last[self._findex.rowid[colons]] = colons + 1  # ascending: the last ':' of a row wins
                self._flast = last

    def _fuzzy_rows(self, pattern: str, ranges: list[tuple[int, int]], traceability: Iterable[str] | None,
                    limit: int | None) -> list[int]:
        """Ranked subsequence match on the bare symbol (fzf-like): the query's characters in order;
        fewer gaps first, then a match at the start of the name or of a ``_`` word, then shorter names."""
        q = pattern.lower().strip()
        if not q:
            return []
        if "\n" in q:
            raise UsageError("A pattern cannot contain a newline.")
        self._ensure_fuzzy_text()
        text, starts, flens = self._ftext, self._fstarts, self._flens
        assert text is not None and starts is not None and flens is not None  # just built
        if self._findex is not None and q.isascii():  # vectorised: no Python work per name
            qb = q.encode("ascii")
            parts_rows, parts_sp = [], []
            bounds = [(int(starts[lo]), int(starts[hi - 1] + flens[hi - 1])) for lo, hi in ranges]
            for a, b in bounds:
                r1, p1 = self._findex.substring(qb, a, b)
                parts_rows.append(r1)
                parts_sp.append(np.stack([p1, p1 + len(qb)], axis=1))
            n_sub = sum(len(r) for r in parts_rows)
            if traceability is not None and n_sub:
                codes = np.asarray(sorted(self._trace_codes(traceability)), dtype=np.uint8)
                n_sub = sum(int(np.isin(self.trace[r], codes).sum()) for r in parts_rows)
            # gapless matches always rank first: when they fill the page, skip the gapped pass
            if len(qb) > 1 and (limit is None or n_sub < limit):
                for (a, b), (lo, hi) in zip(bounds, ranges):
                    r2, s2, e2 = self._findex.subsequence(qb, a, b)
                    parts_rows.append(r2)
                    parts_sp.append(np.stack([s2, e2], axis=1))
                    if self.kind[lo] >= KIND_CODE["tracepoint"] or self.kind[hi - 1] >= KIND_CODE["tracepoint"]:
                        # "group:event", "/path:symbol": also try the chain inside the last part
                        r3, s3, e3 = self._findex.subsequence(qb, a, b, self._flast)
                        parts_rows.append(r3)
                        parts_sp.append(np.stack([s3, e3], axis=1))
            rows = np.concatenate(parts_rows) if parts_rows else np.zeros(0, np.int64)
            if not len(rows):
                return []
            sp = np.concatenate(parts_sp)
            # per row keep the tightest span (fewest gaps), then the earliest listed
            order = np.lexsort((np.arange(len(rows)), sp[:, 1] - sp[:, 0], rows))
            rows, sp = rows[order], sp[order]
            first = TextIndex._first_per_row(rows)
            return self._rank(q, rows[first], sp[first], traceability, limit)
        # c0[^c1\n]*c1[^c2\n]*c2...: the earliest subsequence match, without backtracking
        body = re.escape(q[0]) + "".join(f"[^{re.escape(c)}\n]*{re.escape(c)}" for c in q[1:])
        rx = re.compile(f"({body})[^\n]*")
        sub = re.compile(f"({re.escape(q)})[^\n]*")  # contiguous matches first: no gaps
        spans: list[tuple[int, int]] = []
        for lo, hi in ranges:
            a = int(starts[lo])
            b = int(starts[hi - 1] + flens[hi - 1])
            spans.extend(m.span(1) for m in sub.finditer(text, a, b))
            if len(q) > 1:
                spans.extend(m.span(1) for m in rx.finditer(text, a, b))
        if not spans:
            return []
        sp = np.asarray(spans, dtype=np.int64)
        rows = np.searchsorted(starts, sp[:, 0], "right") - 1
        rows, first = np.unique(rows, return_index=True)
        return self._rank(q, rows, sp[first], traceability, limit)

    @property
    def kprobes_attach(self) -> bool:
        """Whether kprobes can be attached on the kernel this catalog lists (its tracefs has
        kprobe_events, as the traceability evidence checks). True when unknown (no tracefs known):
        a catalog never hides what it cannot rule out."""
        if self._kprobes_attach is None:
            self._kprobes_attach = self.origin != "kernel" or self.tracefs is None or os.path.exists(
                os.path.join(self.tracefs, "kprobe_events"))
        return self._kprobes_attach

    def untraceable_here(self, rows: np.ndarray) -> np.ndarray:
        """Per row: True when it cannot be traced on this kernel (a kprobe where kprobes cannot
        attach, or a function the evidence says no probe reaches: blacklisted, notrace, inlined,
        init, clone-only, duplicate). "unknown" is not counted against a row."""
        bad = ~np.isin(self.trace[rows], (CODE["traceable"], CODE["unknown"]))
        if not self.kprobes_attach:
            bad |= self.kind[rows] == KIND_CODE["kprobe"]
        return bad

    def _rank(self, q: str, rows: np.ndarray, sp: np.ndarray, traceability: Iterable[str] | None,
              limit: int | None) -> list[int]:
        starts, flens = self._fstarts, self._flens
        assert starts is not None and flens is not None  # _fuzzy_rows built them
        if traceability is not None:
            codes = np.asarray(sorted(self._trace_codes(traceability)), dtype=np.uint8)
            keep = np.isin(self.trace[rows], codes)
            rows, sp = rows[keep], sp[keep]
            if not len(rows):
                return []
        gaps = (sp[:, 1] - sp[:, 0]) - len(q)
        at = sp[:, 0] - starts[rows]
        before = self._fbuf[np.maximum(sp[:, 0] - 1, 0)] if self._fbuf is not None else None
        if before is not None:
            boundary = np.where((at == 0) | (before == ord(":")), 0,
                                np.where(np.isin(before, (ord("_"), ord("."), ord("/"))), 1, 2))
        else:
            boundary = np.where(at == 0, 0, 2)
        exact = (gaps == 0) & (at == 0) & (flens[rows] == len(q))
        # What can be traced here first (a tracepoint above a kprobe on a kernel without kprobes),
        # then the best match.
        order = np.lexsort((rows, flens[rows], boundary, gaps, ~exact, self.untraceable_here(rows)))
        lim = len(rows) if limit is None else limit
        return [int(r) for r in rows[order[:lim]]]

    def search(self, pattern: str, mode: str = "glob", kinds: Iterable[str] | None = None,
               traceability: Iterable[str] | None = None, limit: int | None = None) -> list[Entry]:
        """Entries matching a glob (as ``bpftrace -l``), a regex, or a fuzzy query (ranked)."""
        return [self.entry(i) for i in self.search_indices(pattern, mode, kinds, traceability, limit)]

    def __repr__(self) -> str:
        return f"<Catalog {self.origin}: {len(self)} entries>"
