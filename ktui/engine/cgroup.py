"""A cgroup v2 of its own for a command ktui starts (`ktui record -- CMD`), so the probes follow the
command and every process it starts (make, a shell script): children inherit their parent's cgroup,
and the programs compare bpf_get_current_cgroup_id() with the one id (ktui_control.cgroup).

Without a writable cgroup v2 hierarchy (not mounted, no permission) there is none: the caller
traces the command's own process only and says so. The directory is removed when the command
and what it started have exited (a process still running in it keeps it, and nothing else).
"""

from __future__ import annotations

import os

from ktui.errors import KtuiError

MOUNTS = "/proc/self/mounts"


def cgroup2_root() -> str | None:
    """Where the cgroup v2 hierarchy is mounted, or None."""
    try:
        with open(MOUNTS, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "cgroup2":
                    return parts[1].replace("\\040", " ")
    except OSError:
        return None
    return None


class CommandCgroup:
    """A new cgroup holding one (stopped) process: its id, and its removal."""

    def __init__(self, path: str, cgroup_id: int):
        self.path = path
        self.id = cgroup_id

    @classmethod
    def create(cls, pid: int) -> CommandCgroup:
        """Put ``pid`` (not yet running its command) into a new cgroup; KtuiError, one sentence, when
        this machine has no writable cgroup v2."""
        root = cgroup2_root()
        if root is None:
            raise KtuiError("no cgroup v2 hierarchy is mounted")
        _sweep(root)
        path = os.path.join(root, f"ktui-{os.getpid()}-{pid}")
        try:
            os.mkdir(path, 0o700)
        except OSError as err:
            raise KtuiError(f"cannot create a cgroup in {root}: {err.strerror}") from None
        try:
            with open(os.path.join(path, "cgroup.procs"), "w", encoding="ascii") as f:
                f.write(str(pid))
            return cls(path, os.stat(path).st_ino)  # the kernfs id bpf_get_current_cgroup_id() gives
        except OSError as err:
            _rmdir(path)
            raise KtuiError(f"cannot move process {pid} into a cgroup: {err.strerror}") from None

    def remove(self) -> None:
        _rmdir(self.path)


def _sweep(root: str) -> None:
    """Remove the empty cgroups of ktui processes that are gone (one killed, or whose command left a
    process running past its end): an empty cgroup would otherwise stay until reboot."""
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == "ktui" and parts[1].isdigit() and not os.path.exists(f"/proc/{parts[1]}"):
            _rmdir(os.path.join(root, name))


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # a process it started still runs in it: the cgroup goes with it, nothing else is left
