"""On-disk cache of the kernel catalog, keyed by the kernel's identity."""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

from ktui.catalog.btf import VMLINUX_BTF, btf_stat
from ktui.kernel import kernel_identity, read_sysctl
from ktui.paths import cache_dir


def catalog_key(format_version: int) -> dict:
    """What invalidates the cache: kernel release and build id, the BTF file's size and mtime,
    the loaded modules (they add symbols and tracepoints), address visibility and who reads."""
    ident = kernel_identity()
    try:
        with open("/proc/modules", "rb") as f:
            modules = hashlib.sha1(b"".join(sorted(line.split(b" ", 1)[0] for line in f))).hexdigest()
    except OSError:
        modules = ""
    return {
        "format": format_version,
        "release": ident.release,
        "version": ident.version,
        "build_id": ident.build_id,
        "btf": btf_stat(VMLINUX_BTF),
        "modules": modules,
        "kptr_restrict": read_sysctl("/proc/sys/kernel/kptr_restrict"),
        "euid": os.geteuid(),
    }


def cache_file() -> Path:
    return cache_dir() / "catalog-kernel.pickle"


def read_cache(key: dict) -> dict | None:
    try:
        with open(cache_file(), "rb") as f:
            data = pickle.load(f)
    except Exception:  # a missing, partial or foreign cache is simply rebuilt
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    return data


def write_cache(key: dict, payload: dict) -> None:
    path = cache_file()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".catalog-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump({"key": key, **payload}, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache dir only costs speed
