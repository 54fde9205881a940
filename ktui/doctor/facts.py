"""Facts read, not tried: privileges, kernel config, lockdown, sysctls."""

from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39
NEEDS_PRIVILEGE = "needs root (or CAP_BPF+CAP_PERFMON)"


@dataclass(frozen=True)
class Privileges:
    euid: int
    cap_eff: int | None  # None when /proc/self/status has no CapEff line

    def has(self, cap: int) -> bool:
        return bool(self.cap_eff is not None and self.cap_eff >> cap & 1)

    @property
    def can_bpf(self) -> bool:
        """Enough to load and attach tracing programs (CAP_SYS_ADMIN covers both on older kernels)."""
        return self.has(CAP_SYS_ADMIN) or (self.has(CAP_BPF) and self.has(CAP_PERFMON))

    def names(self) -> list[str]:
        return [n for n, c in (("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON), ("CAP_SYS_ADMIN", CAP_SYS_ADMIN)) if self.has(c)]


def parse_cap_eff(status_text: str) -> int | None:
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key == "CapEff":
            try:
                return int(value.strip(), 16)
            except ValueError:
                return None
    return None


def privileges(status_path: str = "/proc/self/status") -> Privileges:
    try:
        text = Path(status_path).read_text()
    except OSError:
        text = ""
    return Privileges(os.geteuid(), parse_cap_eff(text))


def parse_kernel_config(text: str) -> dict[str, str]:
    """CONFIG_X -> value; ``# CONFIG_X is not set`` -> 'n'."""
    config: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            config[line[2:-len(" is not set")]] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            config[key] = value.strip('"')
    return config


def kernel_config(paths: list[str] | None = None) -> tuple[dict[str, str] | None, str]:
    """(config, source path) or (None, why not)."""
    release = os.uname().release
    paths = paths if paths is not None else ["/proc/config.gz", f"/boot/config-{release}", f"/lib/modules/{release}/config"]
    tried = []
    for path in paths:
        try:
            raw = Path(path).read_bytes()
            text = gzip.decompress(raw).decode(errors="replace") if path.endswith(".gz") else raw.decode(errors="replace")
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            tried.append(f"{path} ({getattr(err, 'strerror', None) or err})")
            continue
        return parse_kernel_config(text), path
    return None, "kernel config not readable: " + ", ".join(tried)


def read_text(path: str) -> tuple[str | None, str]:
    """(stripped text, '') or (None, reason)."""
    try:
        return Path(path).read_text().strip(), ""
    except OSError as err:
        return None, f"{path}: {err.strerror or err}"


def parse_lockdown(text: str) -> str | None:
    """``none [integrity] confidentiality`` -> ``integrity``."""
    start, end = text.find("["), text.find("]")
    if 0 <= start < end:
        return text[start + 1 : end].strip() or None
    return None


def _mount(source: str, target: str, fstype: str, flags: int) -> bool:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return bool(libc.mount(source.encode(), target.encode(), fstype.encode(), flags, None) == 0)


def _umount(target: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.umount2(target.encode(), 2)  # MNT_DETACH


def _gist(text: str) -> str:
    """A file's content as one short line of evidence."""
    lines = text.splitlines()
    if len(lines) <= 1 and len(text) <= 120:
        return text
    return f"{len(lines)} lines, first: {lines[0][:100] if lines else ''}"


def _mounted_at(fstype: str) -> str | None:
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == fstype:
                    return parts[1]
    except OSError:
        return None
    return None


def read_pseudo_fs(fstype: str, relpath: str) -> tuple[str | None, list[str]]:
    """Read ``relpath`` inside securityfs/debugfs: where it is mounted, or else on a
    private temporary read-only mount (root only) that is unmounted at once, so
    the system's own mount table is left as it was. (text, evidence)."""
    where = _mounted_at(fstype)
    if where is not None:
        path = os.path.join(where, relpath)
        text, why = read_text(path)
        return text, [f"{path}: {_gist(text)}" if text is not None else why]
    evidence = [f"{fstype} is not mounted"]
    if os.geteuid() != 0:
        return None, evidence + [f"only root can mount {fstype}"]
    tmp = tempfile.mkdtemp(prefix=f"ktui-{fstype}-")
    try:
        if not _mount(fstype, tmp, fstype, 1):  # MS_RDONLY
            err = ctypes.get_errno()
            return None, evidence + [f"mounting {fstype} failed: {os.strerror(err)}"]
        try:
            text, why = read_text(os.path.join(tmp, relpath))
        finally:
            _umount(tmp)
        if text is None:
            return None, evidence + [f"{fstype} (mounted read-only for this check): " + why.replace(tmp + "/", "")]
        return text, evidence + [f"{fstype} (mounted read-only for this check) {relpath}: {_gist(text)}"]
    finally:
        try:
            os.rmdir(tmp)
        except OSError:
            pass


def lockdown_mode() -> tuple[str | None, list[str]]:
    """(mode, evidence) from securityfs ``lockdown``."""
    text, evidence = read_pseudo_fs("securityfs", "lockdown")
    return (parse_lockdown(text) if text is not None else None), evidence
