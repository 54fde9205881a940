"""Which kernel headers BCC compiles against, and a fallback when the kernel has none.

Order of preference:
1. ``BCC_KERNEL_SOURCE`` already set by the user: respected as is.
2. The running kernel's own headers (``/lib/modules/$(uname -r)/build``).
3. ``CONFIG_IKHEADERS`` (``/sys/kernel/kheaders.tar.xz``): BCC unpacks them itself.
4. The distribution's generic headers (Debian's ``linux-headers-<v>-common`` plus
   ``linux-headers-<v>-<arch>``), merged into one tree of symlinks in ktui's cache
   and pointed at with ``BCC_KERNEL_SOURCE`` for this process only. Nothing is ever
   written into ``/lib/modules``. Such headers belong to another kernel version:
   fine for tracepoint fields (read from tracefs), ``pt_regs`` and helpers, but
   struct layouts taken from them may not match the running kernel.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ktui.errors import CapabilityError
from ktui.paths import cache_dir


class HeadersUnavailable(CapabilityError):
    pass


@dataclass(frozen=True)
class Headers:
    kind: str  # "env", "running", "ikheaders", "generic"
    path: str
    matches_kernel: bool

    def describe(self) -> str:
        if self.kind == "running":
            return f"the running kernel's own headers ({self.path})"
        if self.kind == "ikheaders":
            return "the kernel's built-in headers (CONFIG_IKHEADERS, /sys/kernel/kheaders.tar.xz)"
        if self.kind == "env":
            return f"BCC_KERNEL_SOURCE={self.path} (set by you)"
        return (
            f"the distribution's generic headers ({self.path}), for another kernel version: "
            "tracepoint fields, registers and helpers are right, struct layouts may not be"
        )


def _release() -> str:
    return os.uname().release


def _generic_pairs(src: Path = Path("/usr/src")) -> list[tuple[str, Path, Path]]:
    """(version, common dir, arch dir) for each Debian-style header package pair, newest first."""
    pairs = []
    for common in src.glob("linux-headers-*-common"):
        version = common.name[len("linux-headers-") : -len("-common")]
        for arch in src.glob(f"linux-headers-{version}-*"):
            if arch == common or arch.name.endswith("-common") or not arch.is_dir():
                continue
            if (arch / "include").is_dir() or (arch / ".config").is_file():
                pairs.append((version, common, arch))

    def key(item: tuple[str, Path, Path]) -> list[int]:
        return [int(n) for n in re.findall(r"\d+", item[0])]

    return sorted(pairs, key=key, reverse=True)


def _stamp_text(common: Path, arch: Path) -> str:
    return f"{common}\n{arch}\n"


def _tree_is_ours(target: Path, common: Path, arch: Path) -> bool:
    """The finished tree is exactly what we built: directories of this user that nobody else can
    write, symlinks pointing into the two header directories only, and our stamp. ktui runs as root
    and BCC compiles what this tree points at, so anything else there is rebuilt, never used."""
    from ktui.paths import is_private_file, open_cached

    fd = open_cached(target / ".ktui-complete")
    if fd is None:
        return False
    with os.fdopen(fd, "rb") as f:
        if f.read(4096) != _stamp_text(common, arch).encode():
            return False
    euid = os.geteuid()
    allowed = (f"{common}/", f"{arch}/")
    stack = [str(target)]
    while stack:
        d = stack.pop()
        try:
            st = os.lstat(d)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != euid or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return False
            with os.scandir(d) as it:
                for e in it:
                    if e.is_symlink():
                        if not os.readlink(e.path).startswith(allowed):
                            return False
                    elif e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif not (e.name == ".ktui-complete" and d == str(target)
                              and is_private_file(e.stat(follow_symlinks=False))):
                        return False
        except OSError:
            return False
    return True


def _merged_tree(common: Path, arch: Path) -> Path:
    """Build (once) a tree of symlinks: the common half overlaid with the arch half. A tree that is
    not exactly ours (see ``_tree_is_ours``) is rebuilt."""
    target = cache_dir() / "headers" / arch.name
    if _tree_is_ours(target, common, arch):
        return target
    os.makedirs(target.parent, mode=0o700, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    _remove(tmp)
    tmp.mkdir(mode=0o700)
    # cp -rs is what KERNEL.md measured; it is much faster than walking in Python.
    for half, extra in ((common, []), (arch, ["--remove-destination"])):
        subprocess.run(["cp", "-rs", *extra, f"{half}/.", f"{tmp}/"], check=True, capture_output=True)
    fd = os.open(tmp / ".ktui-complete", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_stamp_text(common, arch))
    _remove(target)
    os.replace(tmp, target)
    return target


def _remove(path: Path) -> None:
    """Delete a tree (or a planted file or link in its place) without following links."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


_chosen: Headers | None = None


def find_headers() -> Headers | None:
    """Which headers would be used, without building anything."""
    env = os.environ.get("BCC_KERNEL_SOURCE")
    if env:
        return Headers("env", env, matches_kernel=True)
    running = Path("/lib/modules") / _release() / "build"
    if (running / "include").is_dir() or (running / "Makefile").is_file():
        return Headers("running", str(running), matches_kernel=True)
    if Path("/sys/kernel/kheaders.tar.xz").exists():
        return Headers("ikheaders", "/sys/kernel/kheaders.tar.xz", matches_kernel=True)
    pairs = _generic_pairs()
    if pairs:
        _, common, arch = pairs[0]
        return Headers("generic", str(arch), matches_kernel=False)
    return None


def ensure_headers() -> Headers:
    """Make headers available to BCC in this process, or raise HeadersUnavailable."""
    global _chosen
    if _chosen is not None:
        return _chosen
    found = find_headers()
    if found is None:
        raise HeadersUnavailable(
            f"no kernel headers for {_release()} and no fallback: install linux-headers-"
            f"{_release()} (or Debian's linux-headers-amd64); without headers BCC cannot "
            "compile probes, but browsing and replay still work."
        )
    if found.kind == "generic":
        _, common, arch = _generic_pairs()[0]
        try:
            tree = _merged_tree(common, arch)
        except (OSError, subprocess.CalledProcessError) as err:
            raise HeadersUnavailable(f"could not assemble generic kernel headers in ktui's cache: {err}") from err
        os.environ["BCC_KERNEL_SOURCE"] = str(tree)
        found = Headers("generic", str(tree), matches_kernel=False)
    _chosen = found
    return found
