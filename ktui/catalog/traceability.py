"""Whether a kernel function can be probed, from evidence the kernel actually shows.

Values (``Entry.traceability``):

- ``traceable``   listed in ``available_filter_functions`` (and not blacklisted)
- ``blacklisted`` in the kprobe blacklist file, or inside a text area the kernel always
                  blacklists for kprobes (``.noinstr.text``, ``.kprobes.text``, x86 entry text;
                  kernel/kprobes.c populate_kprobe_blacklist / arch_populate_kprobe_blacklist)
- ``notrace``     absent from a readable ``available_filter_functions``, or a ``.cold`` fragment
- ``inlined``     described by BTF/DWARF but with no symbol of its own: only inlined copies exist
- ``clone``       no symbol of its own, but compiler clones (``.isra``, ``.constprop``, ``.part``) exist
- ``duplicate``   a static name at several addresses (a kprobe by name gets EADDRNOTAVAIL)
- ``init``        in ``.init.text``, freed after boot
- ``unknown``     the kernel hides the evidence; ``traceability_reason`` says which file and why
"""

from __future__ import annotations

import bisect
import errno
import os
import re

from ktui.kernel import debugfs_path, tracefs_path

TRACEABILITY = ("traceable", "blacklisted", "notrace", "inlined", "clone", "duplicate", "init", "unknown")
CODE = {name: i for i, name in enumerate(TRACEABILITY)}

CLONE_RE = re.compile(r"\.(?:isra|constprop|part|cold|lto_priv|llvm)(?:\.|$)")


def clone_base(name: str) -> str | None:
    """``foo.isra.0`` -> ``foo``; None for a plain name."""
    m = CLONE_RE.search(name)
    return name[: m.start()] if m else None


def _read_lines(path: str) -> tuple[list[str] | None, str]:
    """(lines, '') or (None, why-not sentence fragment)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines(), ""
    except OSError as err:
        if err.errno == errno.ENOENT:
            return None, f"{path} is absent"
        return None, f"{path} is unreadable ({os.strerror(err.errno) if err.errno else err})"


class Evidence:
    """What this kernel shows about traceability, gathered once."""

    def __init__(self, markers: dict[str, int], mount: bool = True):
        try:
            tfs = tracefs_path(mount=mount)
        except OSError:
            tfs = None
        self.tracefs = tfs
        self.filter_functions: set[str] | None = None
        self.blacklist: set[str] | None = None
        self.blacklist_ranges: list[tuple[int, int]] = []
        if tfs:
            lines, why_aff = _read_lines(os.path.join(tfs, "available_filter_functions"))
            if lines is not None:
                self.filter_functions = {ln.split()[0] for ln in lines if ln.strip()}
            self.kprobe_events = os.path.exists(os.path.join(tfs, "kprobe_events"))
        else:
            why_aff = "tracefs is not mounted or not readable, so available_filter_functions cannot be read"
            self.kprobe_events = False
        try:
            dfs = debugfs_path(mount=mount)
        except OSError as err:  # e.g. /sys/kernel/debug is root-only
            dfs = None
            why_bl = f"/sys/kernel/debug (where kprobes/blacklist lives) is unreadable ({err.strerror})"
        if dfs:
            lines, why_bl = _read_lines(os.path.join(dfs, "kprobes", "blacklist"))
            if lines is not None:
                self.blacklist = set()
                for ln in lines:
                    parts = ln.split()
                    if len(parts) >= 2:
                        self.blacklist.add(parts[1])
        elif "why_bl" not in locals():
            why_bl = "debugfs is not mounted, so kprobes/blacklist cannot be read"
        self.why_no_filter = why_aff
        self.why_no_blacklist = why_bl
        self.areas: list[tuple[int, int, str, str]] = []  # start, end, code, reason
        for start, end, why in (
            ("__noinstr_text_start", "__noinstr_text_end", ".noinstr.text (noinstr functions are notrace and the kernel blacklists the whole area for kprobes)"),
            ("__kprobes_text_start", "__kprobes_text_end", ".kprobes.text (__kprobes functions; blacklisted by kernel/kprobes.c)"),
            ("__entry_text_start", "__entry_text_end", "the x86 entry text (blacklisted by arch_populate_kprobe_blacklist)"),
        ):
            if start in markers and end in markers and markers[end] > markers[start]:
                self.areas.append((markers[start], markers[end], "blacklisted", f"its address lies in {why}"))
        if "_sinittext" in markers and "_einittext" in markers:
            self.areas.append((markers["_sinittext"], markers["_einittext"], "init",
                               "its address lies in .init.text, which the kernel frees after boot"))
        self.areas.sort()
        self._area_starts = [a[0] for a in self.areas]

    @property
    def unknown_reason(self) -> str:
        parts = []
        if self.filter_functions is None:
            parts.append(self.why_no_filter)
        if self.blacklist is None:
            parts.append(self.why_no_blacklist)
        text = " and ".join(parts)
        return (f"{text}, so ktui cannot tell a traceable function from a notrace or blacklisted one"
                if text else "")

    def notes(self) -> list[str]:
        out = []
        if not self.kprobe_events and self.tracefs:
            out.append("this kernel has no kprobe_events in tracefs (CONFIG_KPROBE_EVENTS off): "
                       "kprobes are listed for reference but cannot be attached here")
        if self.unknown_reason:
            out.append(self.unknown_reason)
        return out

    def area(self, addr: int) -> tuple[str, str] | None:
        if not addr or not self.areas:
            return None
        i = bisect.bisect_right(self._area_starts, addr) - 1
        if i >= 0:
            start, end, code, why = self.areas[i]
            if start <= addr < end:
                return code, why
        return None

    def classify(self, name: str, addrs: list[int]) -> tuple[str, str]:
        """(traceability, reason) of one kallsyms name with its addresses."""
        if name.endswith(".cold") or ".cold." in name:
            base = clone_base(name) or name
            return "notrace", (f"a .cold fragment the compiler split out of {base}: not a function entry, "
                               f"it has no ftrace hook and runs only on {base}'s unlikely path")
        for a in addrs:
            hit = self.area(a)
            if hit:
                return hit
        if self.blacklist is not None and name in self.blacklist:
            return "blacklisted", "listed in the kernel's kprobes/blacklist"
        if len(addrs) > 1 and not any(addrs):
            return "duplicate", (f"the static name {name} appears {len(addrs)} times in /proc/kallsyms (addresses "
                                 f"hidden by kptr_restrict); a kprobe by name is refused (EADDRNOTAVAIL)")
        if len(addrs) > 1:
            where = ", ".join(f"0x{a:x}" for a in addrs)
            return "duplicate", (f"the static name {name} appears at {len(addrs)} addresses ({where}); "
                                 f"a kprobe by name is refused (EADDRNOTAVAIL), probe by address")
        if self.filter_functions is not None:
            if name in self.filter_functions:
                return "traceable", "listed in available_filter_functions"
            return "notrace", "not in available_filter_functions (notrace, or no ftrace hook)"
        return "unknown", self.unknown_reason
