"""One entry point for the three ways people write probes.

    parse_spec("kprobe:do_sys_openat2")                 a bpftrace name      (ktui.probes.bpftrace_names)
    parse_spec("p:myprobe tcp_v4_connect sk=+0(%di):x64")  a kprobe_events line (ktui.probes.kprobe_events)
    parse_spec('kernel.function("ip_rcv").return')      a SystemTap point or script (ktui.probes.systemtap)

parse_spec(text, catalog) -> list[Probe]; globs (and SystemTap's $$parms) need the catalog.
Every failure is a KtuiError (UsageError, or ParseError with a column): never another exception.

How the form is told apart:
  * a kprobe_events line: the first word is ``p``, ``r``, ``rN`` or ``-``, alone or followed by
    ``:[GRP/]EVENT``, and a symbol follows after whitespace. ``p:hz:99`` (no space) is therefore
    bpftrace's short profile name, and ``p:ev do_sys_open`` a kprobe.
  * SystemTap: a script (``probe``/``global``, after comments too), a ``(`` anywhere
    (``kernel.function("x")``, ``timer.ms(200)``), or a dotted point such as ``begin``, ``end``,
    ``timer.profile``, ``syscall.openat``.
  * otherwise a bpftrace name (several may be joined by commas).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ktui.errors import UsageError
from ktui.probes.bpftrace_names import KIND_NAMES, UNSUPPORTED
from ktui.probes.model import Probe
from ktui.probes.systemtap import looks_like_script

if TYPE_CHECKING:
    from ktui.catalog import Catalog

MAX_SPEC = 65536

# [GRP/]EVENT holds no ':' or ',': "p:hz:99, i:s:1" is a list of bpftrace names, not a kprobe line.
_KPROBE_EVENTS = re.compile(r"^(?:[pr][0-9]*|-)(?::[^\s:,]*)?\s+\S")
_KPROBE_REMOVE = re.compile(r"^-:")
_KRETPROBE_ALONE = re.compile(r"^r[0-9]*(?::\S*)?\Z")  # "r:ev" without a symbol: bpftrace has no "r:" alias
_STAP_TAPSETS = "timer|perf|syscall|nd_syscall|kernel|module|process|vfs|scheduler|signal|netdev|ioblock|tcp|udp|socket"
_STAP_WORD = re.compile(rf"^(?:begin|end|error|never)(?:\([^)]*\))?\Z|^(?:{_STAP_TAPSETS})\.")


def spec_form(text: str) -> str:
    """"kprobe_events", "systemtap" or "bpftrace": which parser reads this text."""
    s = text.strip()
    if _KPROBE_EVENTS.match(s) or _KPROBE_REMOVE.match(s) or _KRETPROBE_ALONE.match(s):
        return "kprobe_events"
    head = s.split(":", 1)[0]
    if ":" in s and (head in KIND_NAMES or head in UNSUPPORTED):  # kprobe:..., t:..., usdt:... (even a program)
        return "bpftrace"
    if "(" in s or _STAP_WORD.match(s) or looks_like_script(s):
        return "systemtap"
    return "bpftrace"


def parse_spec(text: str, catalog: Catalog | None = None) -> list[Probe]:
    """Any of the three forms -> Probes. Raises a KtuiError (UsageError/ParseError) on bad input."""
    if not isinstance(text, str):
        raise UsageError("a probe spec must be text")
    if len(text) > MAX_SPEC:
        raise UsageError(f"a probe spec longer than {MAX_SPEC} characters is not accepted")
    if not text.strip():
        raise UsageError("the probe spec is empty: write one like kprobe:do_sys_openat2")
    form = spec_form(text)
    if form == "kprobe_events":
        from ktui.probes.kprobe_events import parse_kprobe_event

        return [parse_kprobe_event(text)]
    if form == "systemtap":
        from ktui.probes.systemtap import parse_systemtap

        return parse_systemtap(text, catalog)
    from ktui.probes.bpftrace_names import parse_bpftrace_names

    return parse_bpftrace_names(text, catalog)
