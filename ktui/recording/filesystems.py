"""Which filesystem a recording goes to, and whether SQLite's WAL can share memory there.

WAL mode keeps its index in a ``-shm`` file that every connection maps shared. Network
and host-shared filesystems (NFS, 9p, SMB, FUSE, ...) either refuse that mapping or do
not keep it coherent: SQLite then fails with "disk I/O error" (9p, the kprobe VM's shared
folder) or worse. The writer is the only connection to a recording while it is written
(a reader of an unfinished recording copies the file and its log and reads the copy), so
on those filesystems it takes the database lock exclusively before entering WAL mode:
SQLite then keeps the index in the writer's own memory and never creates ``-shm``.

The filesystem is known by its mount (/proc/self/mountinfo) and by statfs(2)'s f_type.
Both are needed: a 9p mount reports the f_type of the host's filesystem behind it
(ext4, for the VM's share), so only the mount table says "9p" there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# statfs(2) f_type values (linux/magic.h and the filesystems' own headers).
LOCAL = {
    0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs", 0x2FC12FC1: "zfs",
    0xF2F52010: "f2fs", 0x794C7630: "overlayfs", 0x4D44: "vfat", 0x5346544E: "ntfs", 0x2011BAB0: "exfat",
    0x3153464A: "jfs", 0x52654973: "reiserfs", 0x858458F6: "ramfs",
}
NO_SHARED_MEMORY = {
    0x6969: "nfs", 0x01021997: "9p", 0x517B: "smb", 0xFF534D42: "cifs", 0xFE534D42: "smb2",
    0x65735546: "fuse", 0x00C36400: "ceph", 0x5346414F: "afs", 0x6B414653: "afs", 0x73757245: "coda",
    0x47504653: "gpfs", 0x0BD00BD0: "lustre", 0x13661366: "nfs (old)", 0x564C: "ncp", 0x7461636F: "ocfs2",
    0x01161970: "gfs2",
}


class _StatFs(ctypes.Structure):
    # Only the first field is read; the rest is room for the kernel to write into.
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 256)]


def filesystem_type(path: str | os.PathLike[str]) -> int | None:
    """statfs(2) f_type of the filesystem holding path (a file or its directory), None if unknown."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    buf = _StatFs()
    if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return None
    return int(buf.f_type) & 0xFFFFFFFF


def filesystem_name(f_type: int | None) -> str:
    if f_type is None:
        return "unknown"
    return LOCAL.get(f_type) or NO_SHARED_MEMORY.get(f_type) or f"0x{f_type:x}"


# mountinfo filesystem types without coherent shared memory ("fuse.*" and "fuseblk" too).
NO_SHARED_MEMORY_MOUNTS = {"nfs", "nfs4", "9p", "cifs", "smb3", "smbfs", "ceph", "afs", "coda", "gpfs", "lustre",
                           "ocfs2", "gfs2", "virtiofs", "ncpfs", "glusterfs", "sshfs"}


def mount_type(path: str | os.PathLike[str], mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the mount holding path (a file or, if it does not exist yet, its directory)."""
    target = os.path.realpath(path)
    if not os.path.exists(target):
        target = os.path.dirname(target)
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for line in lines:
        # id parent major:minor root MOUNT_POINT options [optional...] - FSTYPE source superoptions
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):  # the deepest, and the later of equals, wins
            best = (len(point), right.split()[0])
    return best[1] if best else None


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in mount points as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def wal_can_share_memory(path: str | os.PathLike[str]) -> bool:
    """True on local filesystems; False where the -shm mapping cannot be trusted (or we cannot tell)."""
    kind = mount_type(path)
    if kind is None or kind in NO_SHARED_MEMORY_MOUNTS or kind.startswith("fuse"):
        return False
    f_type = filesystem_type(path)
    return f_type is not None and f_type not in NO_SHARED_MEMORY
