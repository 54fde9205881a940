"""Kernel types the compiler needs: function prototypes, typedef sizes, and the BTF that
ktui.probes.resolve resolves struct members through.

From the catalog when one is given, else straight from the kernel's BTF. Both are
optional: without them only fetches by index, registers and memory offsets work,
and a by-name fetch says clearly what is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ktui.errors import KtuiError

if TYPE_CHECKING:
    from ktui.catalog.btf import BTF
    from ktui.catalog.core import Catalog
    from ktui.probes.resolve import MemberTypes


class TypeSource:
    def __init__(self, catalog: Catalog | None = None):
        self.catalog = catalog
        self._btf: BTF | None = None
        self._btf_error: str | None = None

    def btf(self) -> BTF | None:
        """The kernel's BTF, or None (the reason is in ``btf_error``)."""
        if self._btf is None and self._btf_error is None:
            try:
                from ktui.catalog.btf import load_vmlinux_btf

                self._btf = load_vmlinux_btf()
            except (KtuiError, ImportError) as err:
                self._btf_error = str(err)
        return self._btf

    @property
    def btf_error(self) -> str:
        return self._btf_error or "the kernel's BTF is not available"

    def member_types(self, binary: str | None, symbol: str) -> tuple[MemberTypes | None, str]:
        """Where struct members at a site are laid out, or None and why: a uprobe's program's DWARF
        (``binary``; ktui.probes.resolve.user_member_types, as the editor asks), else the kernel's BTF."""
        if binary is not None:
            from ktui.probes.resolve import user_member_types

            return user_member_types(binary, symbol)
        return self.btf(), self.btf_error

    def func_args(self, symbol: str) -> list[tuple[str, str]] | None:
        """[(name, ctype), ...] of a kernel function, or None when unknown."""
        proto = self.func_proto(symbol)
        return proto[1] if proto else None

    def func_proto(self, symbol: str) -> tuple[str, list[tuple[str, str]]] | None:
        if self.catalog is not None:
            try:
                entry = self.catalog.lookup(f"kprobe:{symbol}")
                args = getattr(entry, "args", None)
                if entry is not None and args is not None:
                    return (getattr(entry, "return_type", None) or "long",
                            [(a.name, a.ctype) for a in args])
            except (KtuiError, AttributeError, KeyError, TypeError):
                pass
        btf = self.btf()
        if btf is None:
            return None
        try:
            return btf.func_proto(symbol)
        except KtuiError:
            return None

    def traceability(self, symbol: str) -> tuple[str, str]:
        """(verdict, reason) from the catalog, ("unknown", "") without one."""
        if self.catalog is None:
            return "unknown", ""
        try:
            entry = self.catalog.lookup(f"kprobe:{symbol}")
        except (KtuiError, AttributeError, KeyError, TypeError):
            return "unknown", ""
        if entry is None:
            return "missing", f"the catalog has no kernel function {symbol}"
        return str(getattr(entry, "traceability", "unknown")), str(getattr(entry, "traceability_reason", ""))

    def raw_tracepoint_args(self, name: str) -> list[tuple[str, str]] | None:
        btf = self.btf()
        if btf is None:
            return None
        try:
            return btf.raw_tracepoint_args(name)
        except KtuiError:
            return None

    def scalar_size(self, name: str) -> tuple[int, bool] | None:
        """(size, signed) of a typedef'd integer, from BTF."""
        btf = self.btf()
        if btf is None:
            return None
        try:
            tid = btf.find(name)
            if tid is None:
                return None
            from ktui.catalog.btf import ENUM, INT

            kind = btf.type(btf.strip(tid))[0]
            size = btf.size_of(tid)
            if kind not in (INT, ENUM) or size not in (1, 2, 4, 8):
                return None
            return size, False
        except KtuiError:
            return None
