"""One loaded BPF object: the session's program, or one more per probe added while tracing.

A unit is built by ``loader.py`` and read by the drain and the aggregates; its lists change only
under the loader's lock (``Loader.lock``), so readers take a snapshot (``list(...)``) under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ktui.compiler.program import CompiledProgram
from ktui.engine.attach import Attachment
from ktui.engine.counters import EntryCounters, KernelCounters
from ktui.engine.ringbuf import RingReader
from ktui.engine.stacks import StackReader


@dataclass(eq=False)  # compared by identity: two units are never the same object
class Unit:
    bpf: Any  # BCC's BPF object (BCC has no type information)
    program: CompiledProgram
    global_ids: dict[int, int]  # the program's probe id -> the session's
    readers: list[tuple[int, RingReader]] = field(default_factory=list)  # (session id, reader)
    counters: KernelCounters | None = None
    entries: EntryCounters | None = None
    stacks: StackReader | None = None
    attachments: list[Attachment] = field(default_factory=list)
    by_probe: dict[int, list[Attachment]] = field(default_factory=dict)  # session id -> its attachments

    def local_id(self, probe_id: int) -> int:
        """The program's own id of a session probe id that this unit holds."""
        return next(k for k, v in self.global_ids.items() if v == probe_id)


def has_table(bpf: Any, name: str) -> bool:
    try:
        bpf[name.encode()]
        return True
    except KeyError:
        return False
