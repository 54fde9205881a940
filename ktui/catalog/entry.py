"""Catalog entries: one probe point each."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import TypedDict


class EntryExtras(TypedDict, total=False):
    """What the catalog keeps for the few rows that need more than its columns (kernel_build.py
    makes them, the cache stores them as JSON, ``Catalog.entry`` reads them)."""

    reason: str
    addresses: list[int]
    clones: list[str]
    clone_of: str


class ArgDict(TypedDict, total=False):
    """``Arg.to_dict``: the fields that are set."""

    name: str
    ctype: str
    offset: int
    size: int
    signed: bool


class EntryDict(TypedDict):
    """``Entry.to_dict``: one probe point as ``ktui list --json`` writes it."""

    kind: str
    name: str
    symbol: str
    address: int | None
    module: str | None
    traceability: str
    traceability_reason: str
    addresses: list[int]
    clones: list[str]
    clone_of: str | None
    offset: int | None
    args: list[ArgDict]
    return_type: str | None
    source: str | None
    locals: list[ArgDict] | None
    args_note: str | None


@dataclass(frozen=True)
class Arg:
    """An argument (kprobe/uprobe/raw tracepoint) or a tracepoint field."""

    name: str
    ctype: str
    offset: int | None = None  # tracepoint fields: byte offset in the record
    size: int | None = None
    signed: bool | None = None

    def to_dict(self) -> ArgDict:
        d = ArgDict(name=self.name, ctype=self.ctype)  # the fields that are set, in field order
        if self.offset is not None:
            d["offset"] = self.offset
        if self.size is not None:
            d["size"] = self.size
        if self.signed is not None:
            d["signed"] = self.signed
        return d

    def __str__(self) -> str:
        sep = "" if self.ctype.endswith("*") else " "
        if "[" in self.ctype:  # char[16] comm -> char comm[16]
            base, _, dims = self.ctype.partition("[")
            return f"{base} {self.name}[{dims}"
        return f"{self.ctype}{sep}{self.name}" if self.name else self.ctype


@dataclass
class Details:
    """What is rendered lazily for an entry."""

    args: list[Arg]
    return_type: str | None = None
    source: str | None = None
    locals: list[Arg] | None = None
    note: str | None = None  # why args are missing, when they are


class Entry:
    """One probe point. Arguments, return type and source are computed on first access."""

    __slots__ = ("kind", "name", "symbol", "address", "module", "traceability", "traceability_reason",
                 "addresses", "clones", "clone_of", "offset", "_details", "_loader")

    def __init__(self, kind: str, name: str, symbol: str, *, address: int | None = None,
                 module: str | None = None, traceability: str = "unknown", traceability_reason: str = "",
                 addresses: list[int] | None = None, clones: list[str] | None = None,
                 clone_of: str | None = None, offset: int | None = None, details: Details | None = None,
                 loader: Callable[[Entry], Details] | None = None):
        self.kind = kind
        self.name = name
        self.symbol = symbol
        self.address = address
        self.module = module
        self.traceability = traceability
        self.traceability_reason = traceability_reason
        self.addresses = addresses if addresses is not None else ([address] if address else [])
        self.clones = clones or []
        self.clone_of = clone_of
        self.offset = offset  # uprobes: file offset of the symbol
        self._details = details
        self._loader = loader

    def details(self) -> Details:
        if self._details is None:
            self._details = self._loader(self) if self._loader else Details([])
        return self._details

    @property
    def args(self) -> list[Arg]:
        return self.details().args

    @property
    def return_type(self) -> str | None:
        return self.details().return_type

    @property
    def source(self) -> str | None:
        return self.details().source

    @property
    def locals(self) -> list[Arg] | None:
        return self.details().locals

    @property
    def args_note(self) -> str | None:
        return self.details().note

    def to_dict(self) -> EntryDict:
        d = self.details()
        return {
            "kind": self.kind, "name": self.name, "symbol": self.symbol,
            "address": self.address, "module": self.module,
            "traceability": self.traceability, "traceability_reason": self.traceability_reason,
            "addresses": self.addresses, "clones": self.clones, "clone_of": self.clone_of,
            "offset": self.offset,
            "args": [a.to_dict() for a in d.args], "return_type": d.return_type, "source": d.source,
            "locals": [a.to_dict() for a in d.locals] if d.locals is not None else None,
            "args_note": d.note,
        }

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, traceability={self.traceability!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and other.name == self.name and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.name)
