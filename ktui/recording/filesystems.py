"""Which filesystem a recording goes to, and whether SQLite's WAL can share memory there.

WAL mode keeps its index in a ``-shm`` file that every connection maps shared. Network
and host-shared filesystems (NFS, 9p, SMB, FUSE, ...) either refuse that mapping or do
not keep it coherent: SQLite then fails with "disk I/O error" (9p, the kprobe VM's shared
folder) or worse. The writer is the only connection to a recording while it is written
(a reader of an unfinished recording copies the file and its log and reads the copy), so
on those filesystems it takes the database lock exclusively before entering WAL mode:
SQLite then keeps the index in the writer's own memory and never creates ``-shm``.
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


def filesystem_type(path: str | os.PathLike) -> int | None:
    """statfs(2) f_type of the filesystem holding path (a file or its directory), None if unknown."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    buf = _StatFs()
    if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return None
    return buf.f_type & 0xFFFFFFFF


def filesystem_name(f_type: int | None) -> str:
    if f_type is None:
        return "unknown"
    return LOCAL.get(f_type) or NO_SHARED_MEMORY.get(f_type) or f"0x{f_type:x}"


def wal_can_share_memory(path: str | os.PathLike) -> bool:
    """True on local filesystems; False where the -shm mapping cannot be trusted (or we cannot tell)."""
    f_type = filesystem_type(path)
    return f_type is not None and f_type not in NO_SHARED_MEMORY
