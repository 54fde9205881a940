"""Facts about the running kernel read straight from /proc and /sys, with only light imports:
``ktui list`` needs them on every run before it can trust its index (see ktui.kernel for the rest)."""

from __future__ import annotations

import os

TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"


def build_id_from_notes(path: str = "/sys/kernel/notes") -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    pos = 0
    while pos + 12 <= len(data):
        namesz = int.from_bytes(data[pos : pos + 4], "little")
        descsz = int.from_bytes(data[pos + 4 : pos + 8], "little")
        ntype = int.from_bytes(data[pos + 8 : pos + 12], "little")
        name_start = pos + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        name = data[name_start : name_start + namesz].rstrip(b"\0")
        if name == b"GNU" and ntype == 3:  # NT_GNU_BUILD_ID
            return data[desc_start : desc_start + descsz].hex()
        pos = desc_start + ((descsz + 3) & ~3)
    return None


def identity_fields() -> tuple[str, str, str, str]:
    """(release, version, machine, build id): the GNU build id of vmlinux, else a hash of its BTF."""
    uts = os.uname()
    build_id = build_id_from_notes()
    if build_id is None:
        import hashlib

        try:
            with open(VMLINUX_BTF, "rb") as f:
                build_id = "btf-sha256:" + hashlib.sha256(f.read()).hexdigest()[:32]
        except OSError:
            build_id = ""
    return uts.release, uts.version, uts.machine, build_id


def btf_stat(path: str = VMLINUX_BTF) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _is_tracefs(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "available_events")) or os.path.isdir(os.path.join(path, "events"))


def _mount(source: str, target: str, fstype: str) -> bool:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return bool(libc.mount(source.encode(), target.encode(), fstype.encode(), 0, None) == 0)


def tracefs_path(mount: bool = True) -> str | None:
    """The tracefs directory; mounts it at /sys/kernel/tracing when absent and we are root."""
    for path in TRACEFS_CANDIDATES:
        if _is_tracefs(path):
            return path
    if mount and os.geteuid() == 0 and os.path.isdir(TRACEFS_CANDIDATES[0]):
        if _mount("tracefs", TRACEFS_CANDIDATES[0], "tracefs") and _is_tracefs(TRACEFS_CANDIDATES[0]):
            return TRACEFS_CANDIDATES[0]
    return None




KPROBE_PMU = "/sys/bus/event_source/devices/kprobe"


def kprobes_available() -> bool:
    """Whether this kernel can place kprobes at all (CONFIG_KPROBES: the kprobe PMU or kprobe_events)."""
    if os.path.isdir(KPROBE_PMU):
        return True
    tracefs = tracefs_path()
    return tracefs is not None and os.path.exists(os.path.join(tracefs, "kprobe_events"))
