"""/proc/kallsyms: kernel text symbols with addresses and modules."""

from __future__ import annotations

import re

from ktui.errors import FileFormatError

KALLSYMS = "/proc/kallsyms"

_LINE = re.compile(r"^([0-9a-fA-F]+) ([tTwW]) (\S+)(?:\t\[(\S+)\])?$", re.M)

# Section markers in kallsyms (not functions); used for traceability facts.
SECTION_MARKERS = (
    "_stext", "_etext", "_sinittext", "_einittext",
    "__entry_text_start", "__entry_text_end", "__irqentry_text_start", "__irqentry_text_end",
    "__softirqentry_text_start", "__softirqentry_text_end", "__noinstr_text_start",
    "__noinstr_text_end", "__kprobes_text_start", "__kprobes_text_end",
)

# Symbols that are not function entries a probe could name.
_SKIP_PREFIXES = ("__pfx_", "__cfi_", "__SCT__", "_kbl_addr_")


class Kallsyms:
    """Text symbols: parallel lists ``names``, ``addrs``, ``modules`` (None for vmlinux)."""

    def __init__(self, names: list[str], addrs: list[int], modules: list[str | None],
                 markers: dict[str, int], addresses_hidden: bool):
        self.names = names
        self.addrs = addrs
        self.modules = modules
        self.markers = markers
        self.addresses_hidden = addresses_hidden


def parse_kallsyms(text: str) -> Kallsyms:
    names: list[str] = []
    addrs: list[int] = []
    modules: list[str | None] = []
    markers: dict[str, int] = {}
    marker_set = set(SECTION_MARKERS)
    skip = _SKIP_PREFIXES
    nonzero = False
    for addr_s, _t, name, mod in _LINE.findall(text):
        if name in marker_set:
            markers[name] = int(addr_s, 16)
            continue
        if name.startswith(skip) or (mod and (mod == "bpf" or mod.startswith("__builtin__"))):
            continue  # padding/trampolines, JITed BPF programs, ftrace/kprobe trampolines
        addr = int(addr_s, 16)
        nonzero = nonzero or addr != 0
        names.append(name)
        addrs.append(addr)
        modules.append(mod or None)
    if not names and text.strip():
        raise FileFormatError("/proc/kallsyms has no text symbols in the expected format.")
    return Kallsyms(names, addrs, modules, markers, addresses_hidden=bool(names) and not nonzero)


def load_kallsyms(path: str = KALLSYMS) -> Kallsyms:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as err:
        raise FileFormatError(f"cannot read {path}: {err.strerror}.") from None
    return parse_kallsyms(text)
