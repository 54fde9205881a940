"""Where ktui keeps its cache, data and config.

ktui usually runs as root, so its cache is attack surface: a file another user can plant there
would be read by root. Hence one function, :func:`cache_dir`, decides where the cache lives, and
one, :func:`open_cached`, decides whether a file in it may be read:

- the directory is owned by the running euid with mode 0700 (created so); one owned by someone
  else, or writable by group or others, is ignored;
- as root, a location chosen by the environment (``$KTUI_CACHE_DIR``, ``$XDG_CACHE_HOME``,
  ``$HOME`` - which ``su`` without ``-`` keeps from the user who typed it) is followed only when
  it and every directory above it are root's and writable by nobody else (a sticky directory such
  as /tmp counts as safe: others cannot rename what root owns in it); otherwise root's own default
  (its home directory from the password database, not from ``$HOME``) is used;
- a cached file is read only when it is a regular file owned by the euid, not writable by group or
  others, opened without following a link. Anything else is rebuilt, never trusted.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # not typing.TYPE_CHECKING, and pathlib only when a caller asks for a Path:
if TYPE_CHECKING:      # `ktui list` reads its index through here, and both imports cost it more
    from pathlib import Path  # than the rest of its run (the internals work on str paths)

class ForeignCacheDir(PermissionError):
    """The directory exists but is not this user's private one."""


_unsafe_reason: str | None = None  # why the environment's location was not used (for doctor/tests)


def _env_candidate() -> str | None:
    override = os.environ.get("KTUI_CACHE_DIR")
    if override:
        return override
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative value is invalid and ignored
        return os.path.join(xdg, "ktui")
    home = os.environ.get("HOME")
    if home:
        return os.path.join(home, ".cache", "ktui")
    return None


def _own_default() -> str:
    """The running user's own default, from the password database (never from the environment)."""
    import pwd

    try:
        home = pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        home = "/root" if os.geteuid() == 0 else "/"
    return os.path.join(home, ".cache", "ktui")


def _parents(path: str) -> list[str]:
    """``path`` (absolute) and every directory above it, up to /."""
    out = [path]
    while (up := os.path.dirname(path)) != path:
        out.append(up)
        path = up
    return out


def _trusted_by_root(path: str) -> str | None:
    """None when ``path`` (resolved) and every existing directory above it are root's and writable
    by nobody else; else the reason it is not trusted."""
    real = os.path.realpath(path)
    spelled = os.path.abspath(path)
    # both the path as spelled (its links live in directories someone controls) and where it leads
    parts = [*dict.fromkeys([*_parents(real), *_parents(spelled)])]
    for p in parts:
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue  # created below by root with mode 0700
        except OSError as err:
            return f"{p}: {err.strerror}"
        if st.st_uid != 0:
            return f"{p} is owned by uid {st.st_uid}, not root"
        if stat.S_ISLNK(st.st_mode):
            continue  # a link's own mode means nothing; its directory and its target are checked
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (p not in (real, spelled) and st.st_mode & stat.S_ISVTX):
            return f"{p} is writable by group or others"
    return None


def _private_dir(path: str) -> str:
    """Create ``path`` (0700) or check the existing one: owned by the euid, not group/other-writable.
    Raises OSError when it cannot be used."""
    euid = os.geteuid()
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        if os.path.islink(path):  # a link where our directory should be: not ours to follow
            raise ForeignCacheDir(f"{path} is a symbolic link") from None
        raise err
    try:
        st = os.fstat(fd)
        if st.st_uid != euid:
            raise ForeignCacheDir(f"{path} is owned by uid {st.st_uid}, not by this user (uid {euid})")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ForeignCacheDir(f"{path} is writable by group or others")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


_chosen: tuple[tuple[object, ...], str] | None = None


def cache_dir() -> Path:
    """The one safe cache directory of the running user (see the module docstring).

    Raises OSError when no safe directory can be made (a read-only or foreign location chosen by
    the user themself); callers treat that as "no cache" or report it."""
    from pathlib import Path

    return Path(cache_dir_str())


def cache_dir_str() -> str:
    """:func:`cache_dir` as a str, for the start-up path of ``ktui list`` (no pathlib)."""
    global _chosen, _unsafe_reason
    env = (os.geteuid(), os.environ.get("KTUI_CACHE_DIR"), os.environ.get("XDG_CACHE_HOME"),
           os.environ.get("HOME"))
    if _chosen is not None and _chosen[0] == env and os.path.isdir(_chosen[1]):
        return _chosen[1]
    wanted = _env_candidate()
    own = _own_default()
    path = wanted or own
    _unsafe_reason = None
    if wanted is not None and os.geteuid() == 0 and os.path.abspath(wanted) != os.path.abspath(own):
        _unsafe_reason = _trusted_by_root(wanted)
        if _unsafe_reason is not None:
            path = own
    try:
        result = _private_dir(os.path.realpath(path) if path == wanted else path)
    except ForeignCacheDir:
        if path == own:
            raise
        # someone else's directory where the environment points: ignore it, use our own default
        _unsafe_reason = f"{path} is not this user's private directory"
        result = _private_dir(own)
    _chosen = (env, result)
    return result


def cache_subdir(name: str) -> str:
    """A private directory (0700, this user's, never a link) inside :func:`cache_dir_str`, made when
    missing. Raises OSError when it cannot be used."""
    return _private_dir(os.path.join(cache_dir_str(), name))


def private_temp(directory: str, prefix: str, suffix: str) -> tuple[int, str]:
    """A new 0600 file in ``directory`` (created exclusively, never through a link), as
    ``tempfile.mkstemp`` makes it; without tempfile's import (random, shutil, ...), which would cost
    a cold ``ktui list`` more than its listing."""
    for _ in range(100):
        path = os.path.join(directory, f"{prefix}{os.getpid()}-{os.urandom(6).hex()}{suffix}")
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def ignored_cache_reason() -> str | None:
    """Why the cache location the environment asked for was not used (None when it was)."""
    return _unsafe_reason


def is_private_file(st: os.stat_result) -> bool:
    """A regular file of the running user that nobody else can write."""
    return (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def open_cached(path: Path | str) -> int | None:
    """An fd open for reading on ``path`` when it is a private file (see :func:`is_private_file`),
    opened without following a link; None when it is missing or must not be trusted."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if is_private_file(os.fstat(fd)):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def data_dir() -> Path:
    from pathlib import Path

    import platformdirs

    override = os.environ.get("KTUI_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir("ktui"))
    path.mkdir(parents=True, exist_ok=True)
    return path
