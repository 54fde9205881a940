"""The per-binary index: the function names ``ktui list 'uprobe:PATH:*'`` prints, kept per path
while the file at the path is the binary they were read from (``elf_names.binary_identity``: its
build id and file identity, and its debug file's).

One plain file per path in the private cache directory's ``binaries/`` (not SQLite: importing
``sqlite3`` costs a cold listing of a program about a third of its own work, and a warm one about
half). The file is named by a hash of the path and says which path and identity it holds; a
listing trusts it only when both are the ones asked for and every length in it adds up:

    ktui-binary-names 1\\n
    <path bytes> <identity bytes> <names bytes>\\n      (three decimal lengths)
    path, identity, names                            (names: sorted, joined by newlines, UTF-8)

A hash collision, another binary at the path, a torn or planted file: each is a miss, and the file
is rewritten from the binary. Files are read only through ``paths.open_cached`` (a private regular
file of this user, never through a link), written 0600 under a private name and renamed into place.
At most ``MAX_FILES`` are kept: the least recently written go first.
"""

from __future__ import annotations

import os

from ktui.paths import cache_dir_str, cache_subdir, open_cached, private_temp

SUBDIR = "binaries"
MAGIC = b"ktui-binary-names 1\n"
MAX_FILES = 256
MAX_BYTES = 1 << 28  # a file above this is not one of ours (the largest programs' names are a few MB)


def _file_name(path: str) -> str:
    """64-bit FNV-1a of the path's bytes (hashlib's import would cost more than the whole lookup);
    a collision is only a miss: the file names the path it holds."""
    h = 0xCBF29CE484222325
    for b in os.fsencode(path):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}.names"


def index_file(path: str) -> str:
    """Where the names of the binary at ``path`` are kept (raises OSError without a safe cache)."""
    return os.path.join(cache_dir_str(), SUBDIR, _file_name(path))


def read_entry(path: str) -> tuple[str, str] | None:
    """(identity, names) stored for ``path``; None when there is none, it is another path's, or the
    file is not a whole, private file of ours."""
    try:
        fd = open_cached(index_file(path))
    except OSError:
        return None
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > MAX_BYTES:
            return None
        chunks = []
        got = 0
        while got < size:
            chunk = os.read(fd, size - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _decode(data, os.fsencode(path))


def _decode(data: bytes, path: bytes) -> tuple[str, str] | None:
    if not data.startswith(MAGIC):
        return None
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return None
    try:
        lp, li, ln = (int(x) for x in data[len(MAGIC):end].split(b" "))
        if min(lp, li, ln) < 0 or end + 1 + lp + li + ln != len(data):
            return None
        body = end + 1
        if data[body:body + lp] != path:
            return None
        ident = data[body + lp:body + lp + li].decode("utf-8")
        names = data[body + lp + li:].decode("utf-8")
    except ValueError:  # not three numbers, or not UTF-8 (UnicodeDecodeError is a ValueError)
        return None
    return ident, names


def read_names(path: str, identity: str) -> str | None:
    """The sorted, newline-joined function names stored for ``path`` when they were read from the
    binary that has ``identity``; None otherwise (not indexed yet, another binary, damaged)."""
    entry = read_entry(path)
    if entry is None or entry[0] != identity:
        return None
    return entry[1]


def write_names(path: str, identity: str, names: str) -> None:
    """Keep ``names`` for ``path`` as read from the binary with ``identity`` (best effort: a cache
    that cannot be written only costs speed)."""
    try:
        directory = cache_subdir(SUBDIR)
    except OSError:
        return
    raw_path, raw_ident, raw_names = os.fsencode(path), identity.encode("utf-8"), names.encode("utf-8")
    header = MAGIC + f"{len(raw_path)} {len(raw_ident)} {len(raw_names)}\n".encode()
    target = os.path.join(directory, _file_name(path))
    tmp = None
    try:
        new = not os.path.lexists(target)
        fd, tmp = private_temp(directory, ".", ".tmp")
        try:
            # no fsync: a cache (a torn file fails its lengths and is rewritten), and an fsync would
            # cost a cold listing more than its whole run
            data = memoryview(b"".join((header, raw_path, raw_ident, raw_names)))
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        os.rename(tmp, target)
        tmp = None
        if new:
            _prune(directory)
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


STALE_TMP_NS = 600 * 10**9  # a temporary file this old was left by a listing that was killed


def _prune(directory: str) -> None:
    """At most ``MAX_FILES`` index files: the least recently written are removed; so are temporary
    files left by a listing killed between writing and renaming."""
    import time

    keep = MAX_FILES
    try:
        files = []
        with os.scandir(directory) as it:
            for e in it:
                if not e.is_file(follow_symlinks=False):
                    continue
                if e.name.endswith(".names"):
                    files.append(e)
                elif e.name.startswith(".") and e.name.endswith(".tmp"):
                    if time.time_ns() - e.stat(follow_symlinks=False).st_mtime_ns > STALE_TMP_NS:
                        os.unlink(e.path)
        if len(files) <= keep:
            return
        files.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns)
        for e in files[:len(files) - keep]:
            os.unlink(e.path)
    except OSError:
        pass
