"""A probe being built in the editor: the fields a person fills in, and every rule that
turns them into probes. The editor widget only shows a draft and forwards what is
typed; where (entry, return, both+latency), the names a filter or count key may use,
their validation and the probes built all live here (and in ``ktui.probes.resolve``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ktui.errors import KtuiError
from ktui.probes.model import Action, ActionKind, Arg, Fetch, Member, Probe, ProbeKind, Retval, stacks_action
from ktui.probes.resolve import (BUILTIN_KINDS, CatalogLike, MemberRef, PointNames, member_kinds,
                                 member_options, resolve_member, resolve_probe, split_member_name)

WHERE = ("entry", "return", "both")


def where_applies(kind: ProbeKind | str) -> bool:
    """Entry/return/both is a choice only at functions (kernel or user)."""
    k = ProbeKind(kind) if not isinstance(kind, ProbeKind) and kind in {p.value for p in ProbeKind} else kind
    if isinstance(k, ProbeKind):
        return k.is_kernel_function or k.is_user
    return kind in ("kprobe", "uprobe")


def apply_where(probe: Probe, where: str) -> None:
    """Turn an entry probe into its return (kretprobe/uretprobe) or entry+return (latency) form."""
    if where == "entry" or probe.kind not in (ProbeKind.KPROBE, ProbeKind.UPROBE):
        return
    if where == "return":
        probe.kind = ProbeKind.KRETPROBE if probe.kind is ProbeKind.KPROBE else ProbeKind.URETPROBE
        if not probe.name.endswith("_ret"):
            probe.name += "_ret"
    elif where == "both":
        probe.latency = True


@dataclass
class ProbeDraft:
    """What the editor's fields say."""
    spec: str = ""
    where: str = "entry"
    ticked: tuple[str, ...] = ()
    filter: str = ""
    stream: bool = True
    count: bool = True
    stacks: bool = False
    hist: bool = False
    count_key: str = "cpu"

    def next_probe(self) -> ProbeDraft:
        """The draft once its probe was added: the spec stays, to be edited into the next probe, and
        every choice made for the added one (actions, arguments, filter, count key, where) is back at
        its default, so a new spec never carries a histogram or a filter it was not given."""
        return ProbeDraft(spec=self.spec)

    def parsed(self, catalog: Any = None) -> list[Probe]:
        """The spec's probes with the entry/return choice applied; KtuiError(where="spec") if it does not parse."""
        from ktui.probes.spec import parse_spec

        try:
            probes = parse_spec(self.spec.strip(), catalog)
        except KtuiError as err:
            raise KtuiError(str(err), where="spec") from None
        for probe in probes:
            apply_where(probe, self.where)
        return probes

    def names(self, catalog: CatalogLike | None = None) -> PointNames:
        """What the (first) probe of the spec offers by name; builtins only when the spec does not parse."""
        try:
            probes = self.parsed(catalog)
        except KtuiError:
            return PointNames(note="the probe point does not parse")
        if not probes:
            return PointNames()
        return resolve_probe(probes[0], catalog)

    def check_filter(self, names: PointNames) -> None:
        """ParseError / KtuiError saying what is wrong with the filter at this point."""
        from ktui.probes.filter import check_filter, parse_filter

        from ktui.probes.filter_ast import names_in

        node = parse_filter(self.filter)
        kinds = names.filter_names()
        wanted = [n.name for n in names_in(node)] if node is not None else []
        if any("->" in w or "." in w for w in wanted if w not in kinds):
            kinds.update(member_kinds(names, [w for w in wanted if w not in kinds], *names.member_types()))
        check_filter(node, kinds, text=self.filter)

    @staticmethod
    def members(names: PointNames, arg: str) -> list[MemberRef]:
        """The members the picker offers under a struct-pointer argument (one level; from BTF, or
        from the program's DWARF at a uprobe)."""
        named = names.arg(name=arg)
        if named is None or not names.expandable(arg):
            return []
        types, _why = names.member_types()
        return member_options(named, types)

    def parsed_count_key(self, names: PointNames, fetched: tuple[str, ...] = ()) -> tuple[str, ...]:
        """The COUNT key: builtins, names of the point or members of its structs (by the column they
        are recorded as), comma or space separated."""
        return self._count_key(names, fetched)[0]

    def _count_key(self, names: PointNames, fetched: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, Fetch]]:
        """The COUNT key's names, and the fetch of each struct member in it (``p->x``, recorded as
        ``p_x``) by its column, resolved as a filter's or a ticked member is."""
        keys: list[str] = []
        members: dict[str, Fetch] = {}
        for n in self.count_key.replace(",", " ").split():
            member = split_member_name(n) if "->" in n or "." in n else None
            if member is not None and member[1]:
                try:
                    ref = resolve_member(names, member[0], member[1], *names.member_types())
                except KtuiError as err:
                    raise KtuiError(f"count key {n!r}: {err.message}", where="count") from None
                n = ref.column
                members[n] = Fetch(n, Member(Arg(name=member[0]), ref.path))
            keys.append(n)
        known = list(BUILTIN_KINDS)
        args = [a.name for a in names.fetchable()]
        for n in keys:
            if n not in known and n not in args and n not in fetched and n not in members:
                raise KtuiError(f"count key {n!r} is neither a builtin ({', '.join(known)}) nor an argument"
                                + (f" ({', '.join(args)})" if args else ""), where="count")
        if len(set(keys)) != len(keys):
            raise KtuiError("a count key names each value once", where="count")
        return tuple(keys) or ("cpu",), members

    def build(self, catalog: CatalogLike | None = None) -> list[Probe]:
        """The probes the draft describes; a KtuiError whose ``where`` names the field at fault.

        Nothing ticked: the probe fetches nothing and the compiler records every field or
        argument (zero-script capture)."""
        probes = self.parsed(catalog)
        from ktui.probes.exists import check_exists

        built = []
        for probe in probes:
            try:
                check_exists(probe, catalog)
            except KtuiError as err:
                raise KtuiError(err.message, where="spec") from None
            names = resolve_probe(probe, catalog)
            if self.filter.strip():
                try:
                    self.check_filter(names)
                except KtuiError as err:
                    raise KtuiError(err.message, where="filter") from None
                probe.filter = self.filter.strip()
            if not probe.fetches and self.ticked:
                known = {a.name for a in names.fetchable()}
                probe.fetches = [Fetch(n, Arg(name=n)) for n in self.ticked if n in known]
                for text in self.ticked:  # members ticked in the picker: skb->len, recorded as skb_len
                    split = split_member_name(text)
                    if split is None or not split[1]:
                        continue
                    try:
                        ref = resolve_member(names, split[0], split[1], *names.member_types())
                    except KtuiError as err:
                        raise KtuiError(err.message, where="spec") from None
                    probe.fetches.append(Fetch(ref.column, Member(Arg(name=split[0]), ref.path)))
                if names.ret is not None:
                    probe.fetches.append(Fetch("retval", Retval()))
            actions = []
            if self.stream:
                actions.append(Action(ActionKind.STREAM))
            if self.count:
                key, members = self._count_key(names, tuple(f.name for f in probe.fetches))
                if members and not probe.fetches:  # zero-script capture, made explicit to add the members
                    probe.fetches = [Fetch(a.name, Arg(name=a.name)) for a in names.fetchable()]
                    if names.ret is not None:
                        probe.fetches.append(Fetch("retval", Retval()))
                if probe.fetches:  # an argument counted by must be fetched (zero-script capture has them all)
                    for name in key:
                        if name not in BUILTIN_KINDS and all(f.name != name for f in probe.fetches):
                            probe.fetches.append(members.get(name) or Fetch(name, Arg(name=name)))
                actions.append(Action(ActionKind.COUNT, key=key))
            if self.stacks:
                actions.append(stacks_action(probe.kind))
            if self.hist:
                value = "latency" if probe.latency else (probe.fetches[0].name if probe.fetches else None)
                if value is None:
                    raise KtuiError("a histogram needs a value: tick an argument or choose both+latency",
                                    where="filter")
                actions.append(Action(ActionKind.HIST, value=value))
            probe.actions = actions or [Action(ActionKind.COUNT, key=("cpu",))]
            built.append(probe)
        return built
