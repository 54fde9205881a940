"""The on-disk catalog index: SQLite, keyed by the kernel's identity, data only.

SQLite holds rows of text, numbers and blobs: reading a planted or damaged file can at worst give
a wrong or no answer (both caught: the key must match, every value is checked for its type), never
run code - unlike the pickle this replaces. The file is read only when :func:`ktui.paths.open_cached`
says it is a private regular file of this user in the private cache directory.

Layout (one file, ``catalog-kernel.sqlite``): table ``meta(k, v)`` with ``key`` (the text of
:func:`catalog_key`, see :func:`_key_text`), ``names:<kind>`` (the sorted names of that kind, joined by newlines - what
``ktui list`` prints, readable without parsing anything), and, once the whole catalog has been
built, ``full`` (JSON of the small parts) plus ``col:<column>`` blobs (numpy column bytes).
"""

from __future__ import annotations

import os
import sqlite3

from ktui.paths import cache_dir_str, is_private_file, open_cached, private_temp
from ktui.sysfacts import TRACEFS_CANDIDATES, VMLINUX_BTF, btf_stat, identity_fields, read_text

TYPE_CHECKING = False  # not typing's: `ktui list`'s fast path reads the index without importing typing
if TYPE_CHECKING:
    from typing import Literal, TypeAlias, TypedDict

    from ktui.catalog.entry import EntryExtras

    Column: TypeAlias = Literal["kind", "addr", "mod", "trace", "ref"]
    # What invalidates the index (catalog_key): text, numbers, the BTF file's (size, mtime), None.
    CacheKey: TypeAlias = dict[str, str | int | tuple[int, int] | None]

    class CatalogPayload(TypedDict):
        """The whole kernel catalog as kernel_build makes it and the index stores it: names, the
        numpy columns as bytes, and the small parts (stored as JSON in ``full``)."""

        names: list[str]
        kind: bytes
        addr: bytes
        mod: bytes
        trace: bytes
        ref: bytes
        modules: list[str]
        extras: dict[int, EntryExtras]
        reasons: dict[int, str]
        notes: list[str]
        problems: dict[str, str]
        tracefs: str | None
        btf_offsets: bytes | None

INDEX_NAME = "catalog-kernel.sqlite"
CACHE_FORMAT = 7  # bump when what is stored, or how a row is computed, changes (7: the key as repr text)
COLUMNS: tuple[Column, ...] = ("kind", "addr", "mod", "trace", "ref")  # the catalog's numpy columns, stored as col:<name> blobs


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return ""


def catalog_key(format_version: int) -> CacheKey:
    """What invalidates the index: kernel release and build id, the BTF file's size and mtime,
    the loaded modules (they add symbols and tracepoints), dynamic trace events (kprobe/uprobe
    events add tracepoints), address visibility and who reads."""
    release, version, _machine, build_id = identity_fields()
    # kept as text, not hashed: hashlib's import costs more than `ktui list` may spend in all
    modules = ",".join(sorted(line.split(" ", 1)[0] for line in _read("/proc/modules").splitlines()))
    dynamic = ""
    for tfs in TRACEFS_CANDIDATES:
        if os.path.exists(os.path.join(tfs, "dynamic_events")):
            dynamic = _read(os.path.join(tfs, "dynamic_events"))
            break
    return {
        "format": format_version,
        "release": release,
        "version": version,
        "build_id": build_id,
        "btf": btf_stat(VMLINUX_BTF),
        "modules": modules,
        "dynamic_events": dynamic,
        "kptr_restrict": read_text("/proc/sys/kernel/kptr_restrict"),
        "euid": os.geteuid(),
    }


def cache_file() -> str:
    return os.path.join(cache_dir_str(), INDEX_NAME)


def _key_text(key: CacheKey) -> str:
    """One line per field, ``name=repr(value)``, sorted: exact for the str/int/None/tuple values of
    a key, and no json import on the start-up path of ``ktui list`` (json brings in ``re``)."""
    return "\n".join(f"{k}={key[k]!r}" for k in sorted(key))


def open_index(path: str | None = None) -> sqlite3.Connection | None:
    """A read-only connection to a trusted index file, or None (missing, foreign, not ours)."""
    try:
        path = path or cache_file()
    except OSError:
        return None
    fd = open_cached(path)
    if fd is None:
        return None
    try:
        before = os.fstat(fd)
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        # the name we connected to is still the file we checked (our 0700 directory makes a swap
        # impossible for others; this is the belt to those braces)
        now = os.stat(path, follow_symlinks=False)
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino) or not is_private_file(now):
            conn.close()
            return None
        return conn
    except (OSError, sqlite3.Error):
        return None
    finally:
        os.close(fd)


def read_rows(conn: sqlite3.Connection, key: CacheKey, names: list[str]) -> dict[str, object] | None:
    """The ``meta`` values of ``names`` when the index belongs to ``key`` (missing ones left out);
    None when it belongs to another kernel or is damaged."""
    try:
        marks = ",".join("?" * (len(names) + 1))
        rows = dict(conn.execute(f"SELECT k, v FROM meta WHERE k IN ({marks})", ["key", *names]).fetchall())
    except sqlite3.Error:
        return None
    if rows.get("key") != _key_text(key):
        return None
    rows.pop("key")
    return rows


def read_cache(key: CacheKey) -> CatalogPayload | None:
    """The whole catalog's payload (see ``kernel_build``), or None."""
    import json
    from typing import cast

    conn = open_index()
    if conn is None:
        return None
    try:
        from ktui.catalog.search import KINDS

        rows = read_rows(conn, key, ["full", *(f"names:{k}" for k in KINDS), *(f"col:{c}" for c in COLUMNS),
                                      "btf_offsets"])
    finally:
        conn.close()
    full = rows.get("full") if rows else None
    if rows is None or not isinstance(full, str):
        return None
    try:
        small = json.loads(full)
        parts: list[str] = []
        for k in KINDS:
            part = rows.get(f"names:{k}")
            if part is not None and not isinstance(part, str):
                return None
            if part:
                parts.append(part)
        text = "\n".join(parts)
        blobs: dict[str, bytes] = {}
        for c in COLUMNS:
            blob = rows.get(f"col:{c}")
            if not isinstance(blob, bytes):
                return None
            blobs[c] = blob
        offsets = rows.get("btf_offsets")
        payload: CatalogPayload = {
            "names": text.split("\n") if text else [],
            "kind": blobs["kind"], "addr": blobs["addr"], "mod": blobs["mod"], "trace": blobs["trace"],
            "ref": blobs["ref"],
            "modules": [str(m) for m in small["modules"]],
            # each a mapping as write_cache stored it (the key matched): its fields are read with .get()
            "extras": {int(i): cast("EntryExtras", dict(ex)) for i, ex in small["extras"].items()},
            "reasons": {int(c): str(r) for c, r in small["reasons"].items()},
            "notes": [str(n) for n in small["notes"]],
            "problems": {str(k): str(v) for k, v in small["problems"].items()},
            "tracefs": small["tracefs"] if isinstance(small["tracefs"], str) else None,
            "btf_offsets": offsets if isinstance(offsets, bytes) else None,
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return payload


def _section_rows(names: list[str]) -> list[tuple[str, str]]:
    """``names:<kind>`` rows from sorted names (each kind is one contiguous run)."""
    sections: dict[str, list[str]] = {}
    for n in names:
        sections.setdefault(n.split(":", 1)[0], []).append(n)
    return [(f"names:{k}", "\n".join(v)) for k, v in sections.items()]


def write_rows(key: CacheKey, rows: list[tuple[str, object]], *, replace: bool) -> None:
    """Store ``rows`` for ``key``: a new file (atomically renamed over the old one) when ``replace``
    or when the existing one belongs to another key; else added to the existing file."""
    try:
        path = cache_file()
    except OSError:
        return  # no safe cache directory: only costs speed
    keytext = _key_text(key)
    if not replace:
        conn = open_index(path)
        same = conn is not None and read_rows(conn, key, []) is not None
        if conn is not None:
            conn.close()
        if same:
            try:
                with sqlite3.connect(path) as rw:
                    rw.execute("PRAGMA synchronous=OFF")  # a cache: a torn file is rebuilt (write_rows below)
                    rw.executemany("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", rows)
                rw.close()
                return
            except sqlite3.Error:
                pass  # fall through: write a fresh file
    tmp = None
    try:
        fd, tmp = private_temp(os.path.dirname(path), ".catalog-", ".sqlite")
        os.close(fd)
        conn = sqlite3.connect(tmp)
        try:
            # a cache: no journal and no fsync (a file torn by a crash fails to read, or its key,
            # and is rebuilt); an fsync costs a cold `ktui list` more than its whole listing
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v) WITHOUT ROWID")
            conn.executemany("INSERT INTO meta (k, v) VALUES (?, ?)", [("key", keytext), *rows])
            conn.commit()
        finally:
            conn.close()
        os.replace(tmp, path)
        tmp = None
    except (OSError, sqlite3.Error):
        pass  # a read-only cache dir only costs speed
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_cache(key: CacheKey, payload: CatalogPayload) -> None:
    """Store the whole catalog (``kernel_build``'s payload) for ``key``."""
    import json

    small = {"modules": payload["modules"], "extras": {str(i): ex for i, ex in payload["extras"].items()},
             "reasons": {str(c): r for c, r in payload["reasons"].items()}, "notes": payload["notes"],
             "problems": payload["problems"], "tracefs": payload["tracefs"]}
    rows: list[tuple[str, object]] = [("full", json.dumps(small))]
    rows += _section_rows(payload["names"])
    rows += [(f"col:{c}", payload[c]) for c in COLUMNS]
    if payload.get("btf_offsets") is not None:
        rows.append(("btf_offsets", payload["btf_offsets"]))
    write_rows(key, rows, replace=True)
