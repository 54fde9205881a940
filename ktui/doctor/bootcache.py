"""Doctor's answers that cannot change within one boot, kept per boot (``boot_id``).

Whether the kernel loads a kprobe, fentry, tracepoint... program is fixed for a boot given who asks
(euid and capabilities) and the few sysctls and modes that decide it; those are all in the key, so a
changed sysctl or another user asks again. ``ktui doctor --refresh`` ignores what is kept.
The file is JSON (data only) in ktui's private cache directory, read only when it is ours.
"""

from __future__ import annotations

import json
from typing import Any
import os

# checks whose verdict is fixed for a boot, given the key below
STABLE = ("kernel", "bpf_syscall", "btf", "kprobe", "kretprobe", "fentry", "tracepoint", "raw_tracepoint",
          "uprobe", "perf_event", "ringbuf", "stack_map")
FILE = "doctor-boot.json"
FORMAT = 1


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def boot_key(btf_path: str, tracefs: str | None) -> dict[str, Any]:
    """Everything a stable check depends on besides the boot itself."""
    from ktui.sysfacts import btf_stat, identity_fields

    cap = next((line.split()[1] for line in _read("/proc/self/status").splitlines() if line.startswith("CapEff:")), "")
    return {
        "format": FORMAT,
        "boot_id": _read("/proc/sys/kernel/random/boot_id"),
        "kernel": list(identity_fields()),
        "euid": os.geteuid(),
        "cap_eff": cap,
        "btf": [btf_path, btf_stat(btf_path)],
        "tracefs": tracefs,
        "lockdown": _read("/sys/kernel/security/lockdown"),
        "perf_event_paranoid": _read("/proc/sys/kernel/perf_event_paranoid"),
        "unprivileged_bpf_disabled": _read("/proc/sys/kernel/unprivileged_bpf_disabled"),
        "kptr_restrict": _read("/proc/sys/kernel/kptr_restrict"),
    }


def load(key: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The kept checks (name -> Check.to_dict()) of this boot and key, or None."""
    from ktui.paths import cache_dir, open_cached

    try:
        fd = open_cached(cache_dir() / FILE)
    except OSError:
        return None
    if fd is None:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read(1 << 20))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("key") != json.loads(json.dumps(key)):
        return None
    checks = data.get("checks")
    if not isinstance(checks, dict):
        return None
    out = {}
    for name, c in checks.items():
        if (name in STABLE and isinstance(c, dict) and c.get("ok") in (True, False, None)
                and isinstance(c.get("why"), str) and isinstance(c.get("evidence"), list)
                and all(isinstance(e, str) for e in c["evidence"])
                and (c.get("value") is None or isinstance(c.get("value"), str))):
            out[name] = c
    return out


def store(key: dict[str, Any], checks: dict[str, dict[str, Any]]) -> None:
    """Keep the stable checks (a 0600 file written beside and renamed over the old one)."""
    import tempfile

    from ktui.paths import cache_dir

    merged = {**(load(key) or {}), **{k: v for k, v in checks.items() if k in STABLE}}
    try:
        d = cache_dir()
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".doctor-")
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, "checks": merged}, f)
        os.replace(tmp, d / FILE)
    except OSError:
        pass  # only costs speed


def fentry_check() -> tuple[bool | None, str] | None:
    """(works?, why) for fentry on this kernel: from this boot's kept answer, else tried now."""
    from ktui.doctor import facts, mechanisms
    from ktui.doctor.btfinfo import VMLINUX_BTF
    from ktui.sysfacts import tracefs_path

    priv = facts.privileges()
    tfs = tracefs_path(mount=priv.euid == 0)
    key = boot_key(VMLINUX_BTF, tfs)
    kept = load(key)
    if kept and "fentry" in kept:
        return kept["fentry"]["ok"], kept["fentry"]["why"]
    config, source = facts.kernel_config(None)
    check = mechanisms.fentry(mechanisms.Context(priv, config, source, tfs, VMLINUX_BTF))
    store(key, {"fentry": check.to_dict()})
    return check.ok, check.why
