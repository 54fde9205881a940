"""Building the kernel catalog from kallsyms, BTF and tracefs (and reading/writing its cache)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from ktui.catalog.cache import CACHE_FORMAT, COLUMNS, catalog_key, read_cache, write_cache
from ktui.catalog.search import KIND_CODE
from ktui.catalog.traceability import CODE, Evidence, clone_base
from ktui.errors import KtuiError

if TYPE_CHECKING:
    from ktui.catalog.cache import CatalogPayload
    from ktui.catalog.core import Catalog
    from ktui.catalog.entry import EntryExtras

_COLUMNS = COLUMNS
_DTYPES = {"kind": np.uint8, "addr": np.uint64, "mod": np.int32, "trace": np.uint8, "ref": np.int64}


def load_kernel_catalog(catalog: type[Catalog], use_cache: bool = True, mount: bool = True,
                        btf_path: str | None = None) -> Catalog:
    """The kernel's catalog as a ``catalog`` (the class, given by ``Catalog.load``: this builder does not
    import it, so the two never import each other)."""
    t0 = time.perf_counter()
    key = catalog_key(CACHE_FORMAT) if use_cache else None
    if key is not None:
        data = read_cache(key)
        if data is not None:
            cat = _from_payload(catalog, data)
            cat.from_cache = True
            cat.load_seconds = time.perf_counter() - t0
            return cat
    cat, payload = build_kernel_catalog(catalog, mount=mount, btf_path=btf_path)
    if use_cache and not cat.problems:  # a partial catalog is not worth keeping
        assert key is not None  # use_cache
        write_cache(key, payload)
    cat.load_seconds = time.perf_counter() - t0
    return cat


def _perf_event_rows(names: list[str], kinds: list[int], addrs: list[int], mods: list[int], traces: list[int],
                     refs: list[int], extras: dict[str, EntryExtras]) -> None:
    """perf's software and hardware events (ktui.probes.perf_events), so the browser lists them."""
    from ktui.perfopen import hardware_event_status
    from ktui.probes.perf_events import EVENTS

    for ev in EVENTS:
        name = f"{ev.kind}:{ev.name}"
        ok, why = (True, "a perf software event, sampled on every CPU") if ev.kind == "software" else \
            hardware_event_status(ev.config)
        names.append(name)
        kinds.append(KIND_CODE[ev.kind])
        addrs.append(0)
        mods.append(-1)
        traces.append(CODE["traceable"] if ok else CODE["unknown"])
        refs.append(-1)
        extras[name] = {"reason": why if ok else f"this machine cannot sample it: {why}"}


def _from_payload(catalog: type[Catalog], data: CatalogPayload) -> Catalog:
    cols = {c: np.frombuffer(data[c], dtype=_DTYPES[c]) for c in _COLUMNS}
    return catalog(data["names"], cols["kind"], cols["addr"], cols["mod"], cols["trace"], cols["ref"],
                   data["modules"], data["extras"], data["reasons"], data["notes"], data["problems"],
                   origin="kernel", tracefs=data["tracefs"], btf_offsets=data["btf_offsets"])


def build_kernel_catalog(catalog: type[Catalog], mount: bool = True,
                         btf_path: str | None = None) -> tuple[Catalog, CatalogPayload]:
    from ktui.catalog.btf import VMLINUX_BTF, load_vmlinux_btf
    from ktui.catalog.kallsyms import load_kallsyms
    from ktui.catalog.tracefs_events import list_events

    problems: dict[str, str] = {}
    notes: list[str] = []

    try:
        ks = load_kallsyms()
        ks_names, ks_addrs, ks_mods, markers = ks.names, ks.addrs, ks.modules, ks.markers
        if ks.addresses_hidden:
            notes.append("/proc/kallsyms shows every address as 0 (kptr_restrict, or not root): "
                         "addresses are unknown and duplicates cannot be told apart")
    except KtuiError as err:
        problems["kallsyms"] = str(err)
        ks_names, ks_addrs, ks_mods, markers = [], [], [], {}
        ks = None

    btf = None
    try:
        btf = load_vmlinux_btf(btf_path or VMLINUX_BTF)
        funcs = btf.funcs
        trace_typedefs = btf.trace_typedefs
    except KtuiError as err:
        problems["btf"] = str(err)
        funcs, trace_typedefs = {}, {}

    evidence = Evidence(markers, mount=mount)
    tracefs = evidence.tracefs
    events: list[str] = []
    if tracefs:
        try:
            events = list_events(tracefs)
        except KtuiError as err:
            problems["tracefs"] = str(err)
    else:
        import os

        from ktui.kernel import TRACEFS_CANDIDATES

        denied = next((p for p in TRACEFS_CANDIDATES if os.path.isdir(p) and not os.access(p, os.R_OK | os.X_OK)), None)
        if denied:
            problems["tracefs"] = f"tracefs at {denied} is not readable by this user (run as root), so no tracepoints can be listed."
        else:
            problems["tracefs"] = "tracefs is not mounted and could not be mounted (need root), so no tracepoints can be listed."
    notes.extend(evidence.notes())

    # group kallsyms by name
    by_name: dict[str, list[int]] = {}
    mod_of: dict[str, str | None] = {}
    for name, addr, mod in zip(ks_names, ks_addrs, ks_mods):
        lst = by_name.get(name)
        if lst is None:
            by_name[name] = [addr]
            mod_of[name] = mod
        else:
            lst.append(addr)
    clones: dict[str, list[str]] = {}
    for name in by_name:
        if "." in name:
            base = clone_base(name)
            if base:
                clones.setdefault(base, []).append(name)

    modules = sorted({m for m in mod_of.values() if m})
    module_funcs: dict[str, dict[str, int]] = {}
    if btf is not None:
        from ktui.catalog.btf import load_module_btf

        for m in modules:
            try:
                mb = load_module_btf(m, btf)
            except KtuiError as err:
                notes.append(f"BTF of module {m} is unusable: {err}")
                mb = None
            if mb is not None:
                module_funcs[m] = mb.funcs
    mindex = {m: i for i, m in enumerate(modules)}
    rows_name: list[str] = []
    rows_kind: list[int] = []
    rows_addr: list[int] = []
    rows_mod: list[int] = []
    rows_trace: list[int] = []
    rows_ref: list[int] = []
    extras_by_name: dict[str, EntryExtras] = {}
    reasons: dict[int, str] = {}
    unknown = CODE["unknown"]
    reasons[unknown] = evidence.unknown_reason
    kp = KIND_CODE["kprobe"]

    for name, addrs in by_name.items():
        code_s, why = evidence.classify(name, addrs)
        code = CODE[code_s]
        ex: EntryExtras = {}
        if code_s != "unknown" or why != reasons[unknown]:
            ex["reason"] = why
        if len(addrs) > 1:
            ex["addresses"] = sorted(addrs)
        if name in clones:
            ex["clones"] = sorted(clones[name])
        clone_of = clone_base(name) if "." in name else None
        if clone_of:
            ex["clone_of"] = clone_of
        full = "kprobe:" + name
        if ex:
            extras_by_name[full] = ex
        rows_name.append(full)
        rows_kind.append(kp)
        rows_addr.append(addrs[0])
        in_module = mod_of[name]
        rows_mod.append(mindex[in_module] if in_module else -1)
        rows_trace.append(code)
        rows_ref.append(funcs.get(name, -1) if not in_module else module_funcs.get(in_module, {}).get(name, -1))

    # BTF functions with no symbol: inlined everywhere, or only present as clones
    for name, fid in funcs.items():
        if name in by_name:
            continue
        full = "kprobe:" + name
        if name in clones:
            cl = sorted(clones[name])
            code = CODE["clone"]
            extras_by_name[full] = {"clones": cl, "reason": (
                f"no out-of-line copy named {name}: the compiler kept only the clone(s) {', '.join(cl)}; probe those")}
        else:
            code = CODE["inlined"]
            extras_by_name[full] = {"reason": (
                "BTF describes it but /proc/kallsyms has no symbol for it: every call was inlined")}
        rows_name.append(full)
        rows_kind.append(kp)
        rows_addr.append(0)
        rows_mod.append(-1)
        rows_trace.append(code)
        rows_ref.append(fid)

    # clone groups whose base is in neither kallsyms nor BTF: the base still names the group
    for base, cl in clones.items():
        if base in by_name or base in funcs or not base:
            continue
        cl = sorted(cl)
        full = "kprobe:" + base
        extras_by_name[full] = {"clones": cl, "reason": (
            f"no symbol and no BTF for {base} itself: only the compiler clone(s) {', '.join(cl)} exist; probe those")}
        rows_name.append(full)
        rows_kind.append(kp)
        rows_addr.append(0)
        rows_mod.append(-1)
        rows_trace.append(CODE["clone"])
        rows_ref.append(-1)

    tp = KIND_CODE["tracepoint"]
    tp_reason = "a tracepoint listed in available_events"
    for ev in events:
        rows_name.append("tracepoint:" + ev)
        rows_kind.append(tp)
        rows_addr.append(0)
        rows_mod.append(-1)
        rows_trace.append(CODE["traceable"])
        rows_ref.append(-1)
    rt = KIND_CODE["rawtracepoint"]
    for tpn, tid in trace_typedefs.items():
        rows_name.append("rawtracepoint:" + tpn)
        rows_kind.append(rt)
        rows_addr.append(0)
        rows_mod.append(-1)
        rows_trace.append(CODE["traceable"])
        rows_ref.append(tid)
        extras_by_name["rawtracepoint:" + tpn] = {"reason": "BTF has its btf_trace_ typedef: a raw tracepoint of this kernel"}
    for full in rows_name[len(rows_name) - len(trace_typedefs) - len(events): len(rows_name) - len(trace_typedefs)]:
        extras_by_name[full] = {"reason": tp_reason}
    _perf_event_rows(rows_name, rows_kind, rows_addr, rows_mod, rows_trace, rows_ref, extras_by_name)

    order = sorted(range(len(rows_name)), key=rows_name.__getitem__)
    names = [rows_name[i] for i in order]
    idx = np.asarray(order, dtype=np.int64)
    cols: dict[str, np.ndarray] = {
        "kind": np.asarray(rows_kind, dtype=np.uint8)[idx],
        "addr": np.asarray(rows_addr, dtype=np.uint64)[idx],
        "mod": np.asarray(rows_mod, dtype=np.int32)[idx],
        "trace": np.asarray(rows_trace, dtype=np.uint8)[idx],
        "ref": np.asarray(rows_ref, dtype=np.int64)[idx],
    }
    pos = {n: i for i, n in enumerate(names)} if extras_by_name else {}
    extras = {pos[n]: ex for n, ex in extras_by_name.items()}
    btf_offsets = btf.offsets.tobytes() if btf is not None else None
    cat = catalog(names, cols["kind"], cols["addr"], cols["mod"], cols["trace"], cols["ref"], modules, extras,
                  reasons, notes, problems, origin="kernel", tracefs=tracefs, btf_offsets=btf_offsets,
                  btf_path=btf_path)
    cat._index = pos or None
    cat._btf = btf
    payload: CatalogPayload = {"names": names, "kind": cols["kind"].tobytes(), "addr": cols["addr"].tobytes(),
               "mod": cols["mod"].tobytes(), "trace": cols["trace"].tobytes(), "ref": cols["ref"].tobytes(),
               "modules": modules,
               "extras": extras, "reasons": reasons, "notes": notes, "problems": problems,
               "tracefs": tracefs, "btf_offsets": btf_offsets}
    return cat, payload
