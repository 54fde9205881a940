"""compile_session: every probe of a session into one BCC program."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ktui.errors import KtuiError
from ktui.events import ProbeLayout
from ktui.probes.exists import check_exists
from ktui.probes.model import Probe

from ktui.compiler.btf_types import TypeSource
from ktui.compiler.codegen import ProbeCompiler, comment
from ktui.compiler.fallback import KernelFacts, place
from ktui.compiler.preamble import preamble
from ktui.compiler.program import AttachPlan, CompiledProbe, CompiledProgram

if TYPE_CHECKING:
    from ktui.catalog import Catalog
    from ktui.probes.filter_ast import Node

DEFAULT_RING_PAGES = 256  # 1 MiB per probe with 4 KiB pages


def _symbol_resolver() -> Callable[[str], int]:
    cache: dict[str, int] = {}
    data_seen = [0]

    def resolve(name: str) -> int:
        if not cache:
            from ktui.catalog.kallsyms import load_kallsyms

            ks = load_kallsyms()
            if ks.addresses_hidden:
                raise KtuiError("kernel symbol addresses are hidden (/proc/kallsyms shows zeros): run as root")
            cache.update(zip(ks.names, ks.addrs))
            try:  # data symbols (@SYM names variables): kallsyms lists them with other types
                with open("/proc/kallsyms", encoding="utf-8", errors="replace") as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) >= 3 and parts[2] not in cache:
                            cache[parts[2]] = int(parts[0], 16)
                            data_seen[0] += parts[1] in "dDbB"
            except OSError:
                pass
        if name not in cache:
            few = "" if data_seen[0] > 100 else " (this kernel lists few data symbols there: CONFIG_KALLSYMS_ALL is off)"
            raise KtuiError(f"there is no kernel symbol {name} in /proc/kallsyms{few}")
        return cache[name]

    return resolve


def _parse_filter(probe: Probe) -> Node | None:
    if not probe.filter.strip():
        return None
    from ktui.probes.filter import parse_filter

    return parse_filter(probe.filter)


def compile_session(probes: list[Probe], catalog: Catalog | None = None, target_pid: int | None = None, *,
                    ring_pages: int = DEFAULT_RING_PAGES, facts: KernelFacts | None = None,
                    fallback: bool = True) -> CompiledProgram:
    """One BCC program for all ``probes`` (probe ids are list positions).

    A probe that cannot be compiled does not stop the others: its CompiledProbe has
    ``error`` set and no program (``attach.kind == "none"``). A probe that compiles but
    cannot be attached on this kernel has code and ``error`` saying why.
    """
    if ring_pages < 1 or ring_pages & (ring_pages - 1):
        raise KtuiError(f"ring buffer size must be a power of two pages, not {ring_pages}")
    if not probes:
        raise KtuiError("there are no probes to compile")
    types = TypeSource(catalog)
    if facts is None:
        facts = KernelFacts.detect(need_fentry=fallback and any(p.kind.is_kernel_function for p in probes))
    resolve = _symbol_resolver()
    sections: list[str] = []
    compiled: list[CompiledProbe] = []
    reads: set[str] = set()
    uses_stacks = str_eq = uses_perf = False
    tracing_names: set[str] = set()
    for pid, probe in enumerate(probes):
        try:
            check_exists(probe, catalog)  # a name this machine does not have: refused before anything compiles
            placement = place(probe, pid, facts, types, fallback)
            node = _parse_filter(probe)
            code_probe = probe
            if placement.main.kind == "usdt":  # marker arguments -> register/memory fetches
                from ktui.compiler.usdt_plan import lower_usdt, wanted_names

                code_probe = lower_usdt(probe, placement.main, wanted_names(probe, node))
            pc = ProbeCompiler(code_probe, pid, placement, types, ring_pages, target_pid, resolve, node)
            if node is not None:
                from ktui.probes.filter import check_filter

                check_filter(node, pc.available_names(), text=probe.filter)
            code = pc.compile()
            taken = [p.fn_name for p in (*code.helpers, code.attach) if p.fn_name in tracing_names]
            if taken:
                raise KtuiError(f"another probe already has the program {taken[0]}: BCC names fentry/fexit "
                                "programs after the function, so one session can have one of each per function")
            tracing_names.update(p.fn_name for p in (*code.helpers, code.attach) if p.prog_type == "TRACING")
        except KtuiError as err:
            where = f"probe {pid} ({probe.spec})"
            compiled.append(CompiledProbe(
                probe, pid, ProbeLayout(pid, probe.name, probe.spec), "", AttachPlan("none", "", ""), None,
                error=f"{where}: {err}"))
            sections.append(f"/* ---- probe {pid}: {comment(probe.spec)}: not compiled ({comment(err.message)}) ---- */")
            continue
        sections.append(code.text)
        reads |= code.reads
        uses_stacks |= code.uses_stacks
        str_eq |= code.uses_str_eq or "ktui_str_eq" in code.text
        uses_perf |= placement.main.kind == "perf_event"
        compiled.append(CompiledProbe(probe, pid, code.layout, code.fn_name, code.attach, code.ring, code.maps,
                                      placement.notes + code.notes, placement.error, code.helpers, code.hist,
                                      code.counts, code.fetch_reads, code.also))
    entries = any("entries" in cp.maps for cp in compiled)
    head = preamble(len(probes), reads, uses_stacks, str_eq, uses_perf, entries)
    text = head + "\n\n" + "\n\n".join(sections) + "\n"
    return CompiledProgram(text, compiled, ring_pages, target_pid, uses_stacks)
