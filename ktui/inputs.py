"""Opening files ktui reads (recordings, ftrace text, sessions): regular files only, bounded.

    with open_input(path, what="the session", max_size=16 << 20) as f:   # a binary file object
        data = f.read()

A FIFO, a device (/dev/zero), a socket or a directory is refused with one sentence. The
file is opened with O_NONBLOCK so that opening a FIFO with no writer cannot hang, and the
check is ``fstat`` on the descriptor that was opened (no window between a check and the
open in which the path could be swapped). ``max_size`` bounds files that are read whole.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import BinaryIO

from ktui.errors import FileFormatError

_KIND = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


class NotRegularFileError(FileFormatError):
    """The input is a FIFO, a device, a socket or a directory."""


def open_input(path: str | os.PathLike[str], *, what: str = "the input", max_size: int | None = None) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file (of at most ``max_size`` bytes)."""
    where = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as err:
        reason = "no such file" if err.errno == errno.ENOENT else f"cannot be opened: {err.strerror}"
        raise FileFormatError(reason, where=where) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KIND.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise NotRegularFileError(f"is {kind}, not a regular file; {what} is read from a regular file only "
                                  f"(save a stream to a file first)", where=where)
        if max_size is not None and st.st_size > max_size:
            raise FileFormatError(f"is {st.st_size:,} bytes; {what} is at most {max_size:,} bytes", where=where)
        # Reads of a regular file never block; clear the flag anyway so nothing downstream sees EAGAIN.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_input(path: str | os.PathLike[str], *, what: str = "the input", max_size: int | None = None) -> None:
    """Refuse ``path`` unless it is a regular file, for readers that open it themselves (SQLite)."""
    open_input(path, what=what, max_size=max_size).close()


def read_bounded(path: str | os.PathLike[str], *, what: str, max_size: int) -> bytes:
    """The whole file, which must be a regular file of at most ``max_size`` bytes (it may grow
    while read: at most ``max_size`` + 1 bytes are read, and more is refused)."""
    with open_input(path, what=what, max_size=max_size) as f:
        data = f.read(max_size + 1)
    if len(data) > max_size:
        raise FileFormatError(f"is more than {max_size:,} bytes; {what} is at most {max_size:,} bytes",
                              where=os.fspath(path))
    return data
