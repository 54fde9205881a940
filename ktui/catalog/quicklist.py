"""``ktui list PATTERN`` without building a catalog: the names are read from the index (or, the
first time, straight from tracefs or the ELF symbol tables), matched by the same glob as the
catalog's search, and returned in the same order. Imports neither numpy nor pyelftools.

Every function returns None when it cannot give exactly the answer the full catalog would (no
index yet for kprobes, a source that cannot be read, ...); the caller then loads the catalog,
which builds and stores the index and reports problems in its own words.
"""

from __future__ import annotations

import os

from ktui.catalog.search import KINDS, compile_glob, expand_alias, literal_prefix, star_chunks, star_match

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a listing more than it spends
if TYPE_CHECKING:
    from collections.abc import Callable

    from ktui.catalog.cache import CacheKey

STAR_MATCH_MAX = 1 << 20  # characters of names matched without re; above it one regex scan is faster


def _line_bounds(text: str, p: int) -> tuple[int, int]:
    s = text.rfind("\n", 0, p) + 1
    e = text.find("\n", p)
    return s, len(text) if e < 0 else e


def prefix_span(text: str, prefix: str) -> tuple[int, int]:
    """Offsets of the run of lines starting with ``prefix`` in sorted, newline-joined ``text``
    (binary search over character offsets: no split into a list)."""
    lo, hi = 0, len(text)
    while lo < hi:  # first line >= prefix
        s, e = _line_bounds(text, (lo + hi) // 2)
        if text[s:e] < prefix:
            lo = e + 1
        else:
            hi = s
    start = lo
    hi = len(text)
    n = len(prefix)
    while lo < hi:  # first line whose first n characters are > prefix
        s, e = _line_bounds(text, (lo + hi) // 2)
        if text[s:min(e, s + n)] <= prefix:
            lo = e + 1
        else:
            hi = s
    return start, max(start, lo - 1)


def match(text: str, pattern: str) -> list[str]:
    """Names of ``text`` (sorted, newline-joined, one kind) that ``pattern`` matches whole."""
    if not text:
        return []
    full = expand_alias(pattern)
    prefix = literal_prefix(pattern)
    rest = full[len(prefix):]
    a, b = prefix_span(text, prefix) if prefix else (0, len(text))
    if a >= b:
        return []
    if not rest:  # an exact name: sorted first in the run of names it starts
        return [prefix] if text[a:b].split("\n", 1)[0] == prefix else []
    if set(rest) == {"*"}:
        return text[a:b].split("\n")
    chunks = star_chunks(rest)
    if chunks is not None and b - a < STAR_MATCH_MAX:  # a few thousand names: str methods beat importing re
        n = len(prefix)
        return [name for name in text[a:b].split("\n") if star_match(name[n:], chunks)]
    rx = compile_glob(pattern)  # ^...$ in multi-line mode: each match is one whole name
    return rx.findall(text, a, b)


def wanted_kinds(pattern: str, kinds: list[str] | None) -> list[str]:
    """The kinds whose names ``pattern`` can match (after ``--kind``)."""
    head = expand_alias(pattern).split(":", 1)[0]
    if any(c in head for c in "*?[{\\"):
        out = list(KINDS)
    else:
        out = [head] if head in KINDS else []
    if kinds is not None:
        from ktui.catalog.search import kind_names

        allowed = set(kind_names(kinds))
        out = [k for k in out if k in allowed]
    return out


def kernel_names(pattern: str, kinds: list[str] | None) -> list[str] | None:
    """Names of kernel probe points matching the glob ``pattern`` (bare names as the catalog's
    search takes them), or None when only the full catalog can answer."""
    from ktui.catalog.cache import CACHE_FORMAT, catalog_key, open_index, read_rows

    if ":" not in pattern and not pattern.startswith("*"):
        pattern = "*:" + pattern
    wanted = [k for k in wanted_kinds(pattern, kinds) if k != "uprobe"]  # the kernel has no uprobes
    if not wanted:
        compile_glob(pattern)  # a malformed glob is still an error
        return []
    key = catalog_key(CACHE_FORMAT)
    conn = open_index()
    rows = None
    if conn is not None:
        try:
            rows = read_rows(conn, key, ["full", *(f"names:{k}" for k in wanted)])
        finally:
            conn.close()
    rows = rows or {}
    out: list[str] = []
    for kind in wanted:
        text = rows.get(f"names:{kind}")
        if text is None and "full" in rows:
            text = ""  # the whole catalog is indexed and has no names of this kind
        if text is None and kind == "tracepoint":
            text = _index_tracepoints(key)
        if not isinstance(text, str):
            return None
        out.extend(match(text, pattern))
    return out


def _index_tracepoints(key: CacheKey) -> str | None:
    """The tracepoint section from tracefs, stored in the index (what bpftrace reads too)."""
    from ktui.catalog.cache import write_rows
    from ktui.sysfacts import tracefs_path

    tracefs = tracefs_path(mount=True)
    if tracefs is None:
        return None
    try:
        with open(os.path.join(tracefs, "available_events"), encoding="utf-8", errors="replace") as f:
            events = sorted("tracepoint:" + line.strip() for line in f if ":" in line)
    except OSError:
        return None  # the catalog falls back to the events tree, or says why it cannot
    if not events:
        return None
    text = "\n".join(events)
    write_rows(key, [("names:tracepoint", text)], replace=False)
    return text


def binary_names(path: str, pattern: str, later: list[Callable[[], None]] | None = None) -> list[str] | None:
    """``uprobe:/abs/path:symbol`` names of one program or library matching ``pattern``: from the
    per-binary index while the file is the binary it was read from, else from its symbol tables
    (and its build-id debug file), then kept in the index - after the answer is printed when the
    caller passes ``later`` (it runs what is left there once the names are out)."""
    from ktui.catalog.elf_names import binary_identity
    from ktui.catalog.index_binaries import read_names

    abspath = os.path.abspath(path)
    identity = binary_identity(abspath)
    text = read_names(abspath, identity) if identity is not None else None
    if text is None:
        from ktui.catalog.elf_names import uprobe_symbols
        from ktui.errors import FileFormatError

        try:
            syms, _debug = uprobe_symbols(abspath)
        except FileFormatError:
            return None  # the catalog says why, in its words
        if not syms.functions:
            return None
        text = "\n".join(sorted(syms.functions))
        if identity is not None:
            save = _saver(abspath, identity, text)
            if later is None:
                save()
            else:
                later.append(save)
    if not text:
        return None
    prefix = f"uprobe:{abspath}:"
    return match(prefix + text.replace("\n", "\n" + prefix), pattern)


def _saver(path: str, identity: str, text: str) -> Callable[[], None]:
    def save() -> None:
        from ktui.catalog.elf_names import binary_identity
        from ktui.catalog.index_binaries import write_names

        # kept only when the file is still the one identified before it was read
        if binary_identity(path) == identity:
            write_names(path, identity, text)

    return save
