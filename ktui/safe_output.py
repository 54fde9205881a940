"""Creating the files ktui writes (exports, sessions): its user's only, never through a link.

ktui runs as root, often in directories other users can write (/tmp, a shared project). A
name there may be a symbolic link someone planted (``exp.jsonl -> /etc/shadow``); opening
it for writing, even with O_TRUNC and a careful mode, writes through the link into the
target. So no output is ever opened by its final name:

1. the content goes to a new temporary file in the same directory, created with
   ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600 (the umask can only narrow it, and
   ``fchmod`` pins it), then flushed and fsynced;
2. the finished file gets its name by ``link`` (without ``replace``: fails if the name
   exists, atomically, whatever the name is) or ``rename`` (with ``replace``): both act on
   the directory entry, so an existing link is replaced, never followed;
3. any failure (full disk, an exception while writing) removes the temporary file and
   leaves whatever had the name before untouched.
A directory of that name is refused. ``-`` (standard output) is the caller's business.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from collections.abc import Iterator

from ktui.errors import KtuiError

MODE = 0o600


def _existing(path: str | os.PathLike[str]) -> os.stat_result | None:
    """The destination's own status (links not followed), or None when it does not exist yet and its
    directory does; anything else is the sentence saying why nothing can be written there."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        parent = Path(path).parent
        if not parent.is_dir():
            raise KtuiError(f"cannot write here: the directory {parent} does not exist", where=str(path)) from None
        return None
    except OSError as err:
        raise KtuiError(f"cannot write here: {err.strerror}", where=str(path)) from None


def check_destination(path: str | os.PathLike[str], *, replace: bool) -> None:
    """Refuse, before any work, a destination that cannot be written: a directory, or an existing
    name without ``replace``. (The final link/rename checks again; this is for an early sentence.)"""
    st = _existing(path)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        raise KtuiError("is a directory; give a file name", where=str(path))
    if not replace:
        raise KtuiError("exists; choose another name or pass --force to replace it", where=str(path))


@contextmanager
def output_file(path: str | os.PathLike[str], *, replace: bool, binary: bool = False) -> Iterator[IO[Any]]:
    # IO[Any]: text or bytes as ``binary`` says, as open()'s type is for a mode not known statically
    """``with output_file(path, replace=...) as f: f.write(...)``: the file appears under ``path``,
    complete and 0600, only when the block ends without an exception (see the module's docstring)."""
    path = Path(path)
    check_destination(path, replace=replace)
    directory = path.parent
    tmp = directory / f".{path.name[:200]}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, MODE)
    except OSError as err:
        raise KtuiError(f"cannot create a file in {directory}: {err.strerror}", where=str(path)) from None
    placed = False
    try:
        os.fchmod(fd, MODE)
        f = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
        except OSError as err:
            raise KtuiError(f"cannot write: {err.strerror or err}; nothing was written", where=str(path)) from None
        finally:
            try:
                f.close()
            except OSError:
                pass
        _place(tmp, path, replace)
        placed = True
        _fsync_dir(directory)
    finally:
        if not placed:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _place(tmp: Path, path: Path, replace: bool) -> None:
    """Give the finished temporary file its name, acting on the name only (never following it)."""
    try:
        if replace:
            if stat.S_ISDIR(os.lstat(path).st_mode) if os.path.lexists(path) else False:
                raise KtuiError("is a directory; give a file name", where=str(path))
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path, follow_symlinks=False)
            except OSError as err:
                if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                    raise
                # A file system without hard links: the name was free a moment ago (checked again).
                if os.path.lexists(path):
                    raise FileExistsError(errno.EEXIST, "File exists") from None
                os.rename(tmp, path)
                return
            os.unlink(tmp)
    except FileExistsError:
        raise KtuiError("exists; choose another name or pass --force to replace it", where=str(path)) from None
    except IsADirectoryError:
        raise KtuiError("is a directory; give a file name", where=str(path)) from None
    except OSError as err:
        raise KtuiError(f"cannot write: {err.strerror or err}", where=str(path)) from None


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- directories of files (a Parquet export) ------------------------------------------
#
# The same rules for a directory: it is built under a temporary name beside DIR (mkdir
# 0700, each file created O_EXCL|O_NOFOLLOW 0600 inside it) and renamed to DIR only when
# complete. Replacing (``replace``) an existing DIR is allowed only when it holds nothing but
# files named as the caller's own output (``owned``): --force must never remove a directory of
# someone's other files.

DIR_MODE = 0o700


def check_directory_destination(path: str | os.PathLike[str], *, replace: bool, owned: str) -> None:
    """Refuse, before any work, a DIR that cannot be (re)placed; ``owned`` is the file suffix
    a replaceable DIR holds only (".parquet")."""
    st = _existing(path)
    if st is None:
        return
    if not replace:
        raise KtuiError("exists; choose another name or pass --force to replace it", where=str(path))
    if stat.S_ISDIR(st.st_mode):
        try:
            names = os.listdir(path)
        except OSError as err:
            raise KtuiError(f"cannot read the directory to replace it: {err.strerror}", where=str(path)) from None
        others = [n for n in names if not (n.endswith(owned) and stat.S_ISREG(os.lstat(os.path.join(path, n)).st_mode))]
        if others:
            raise KtuiError(f"is a directory holding other files than {owned} (such as {others[0]!r}); "
                            "it is not replaced, choose another name", where=str(path))


class DirectoryWriter:
    """The temporary directory an ``output_directory`` block fills: ``create(name)`` a new 0600 file in it."""

    def __init__(self, directory: Path):
        self.directory = directory

    def create(self, name: str) -> IO[bytes]:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
        fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, MODE)
        os.fchmod(fd, MODE)
        return os.fdopen(fd, "wb")


@contextmanager
def output_directory(path: str | os.PathLike[str], *, replace: bool, owned: str) -> Iterator[DirectoryWriter]:
    """``with output_directory(DIR, replace=..., owned=".parquet") as d: f = d.create("x.parquet")``:
    DIR appears (0700, its files 0600) only when the block ends without an exception."""
    path = Path(path)
    check_directory_destination(path, replace=replace, owned=owned)
    parent = path.parent
    tmp = parent / f".{path.name[:200]}.{secrets.token_hex(6)}.tmp"
    try:
        os.mkdir(tmp, DIR_MODE)
        os.chmod(tmp, DIR_MODE, follow_symlinks=False)
    except OSError as err:
        raise KtuiError(f"cannot create a directory in {parent}: {err.strerror}", where=str(path)) from None
    placed = False
    try:
        try:
            yield DirectoryWriter(tmp)
            for name in os.listdir(tmp):  # everything on disk before the name points at it
                fd = os.open(tmp / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as err:
            raise KtuiError(f"cannot write: {err.strerror or err}; nothing was written", where=str(path)) from None
        _place_directory(tmp, path, replace, owned)
        placed = True
        _fsync_dir(parent)
    finally:
        if not placed:
            shutil.rmtree(tmp, ignore_errors=True)


def _place_directory(tmp: Path, path: Path, replace: bool, owned: str) -> None:
    """rename(2) acts on names: a link named DIR is replaced, never followed."""
    old: Path | None = None
    try:
        if os.path.lexists(path):
            if not replace:
                raise FileExistsError(errno.EEXIST, "File exists")
            check_directory_destination(path, replace=True, owned=owned)  # again: it may have changed
            if stat.S_ISDIR(os.lstat(path).st_mode):
                old = path.parent / f".{path.name[:200]}.{secrets.token_hex(6)}.old"
                os.rename(path, old)
            else:
                os.unlink(path)  # a file or a link of that name: the name only
        os.rename(tmp, path)
    except FileExistsError:
        raise KtuiError("exists; choose another name or pass --force to replace it", where=str(path)) from None
    except OSError as err:
        if old is not None and not os.path.lexists(path):
            os.rename(old, path)  # put the old one back
            old = None
        raise KtuiError(f"cannot write: {err.strerror or err}", where=str(path)) from None
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
