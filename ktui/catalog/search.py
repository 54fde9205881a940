"""Pattern matching over probe names: bpftrace-compatible globs, regexes, ranked fuzzy search."""

from __future__ import annotations

from ktui.errors import UsageError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING; `re` is imported where a pattern is compiled:
if TYPE_CHECKING:      # `ktui list 'tracepoint:sched:*'` matches by prefix and never needs it
    import re
    from collections.abc import Iterable

KIND_ALIASES = {
    "k": "kprobe", "kprobe": "kprobe", "kretprobe": "kprobe", "kr": "kprobe",
    "t": "tracepoint", "tracepoint": "tracepoint",
    "rt": "rawtracepoint", "rawtracepoint": "rawtracepoint",
    "u": "uprobe", "uprobe": "uprobe", "uretprobe": "uprobe", "ur": "uprobe",
    "U": "usdt", "usdt": "usdt",
    "s": "software", "software": "software", "h": "hardware", "hardware": "hardware",
}
# Sorted as the names sort: the catalog keeps each kind in one contiguous range of rows.
KINDS = ("hardware", "kprobe", "rawtracepoint", "software", "tracepoint", "uprobe", "usdt")
KIND_CODE = {k: i for i, k in enumerate(KINDS)}  # a kind's code in the catalog's kind column


def kind_names(kinds: Iterable[str]) -> list[str]:
    """``--kind`` values as catalog kinds (aliases expanded); an unknown one is a UsageError."""
    out = []
    for k in kinds:
        k = KIND_ALIASES.get(k, k)
        if k not in KINDS:
            raise UsageError(f"Unknown probe kind {k!r}; kinds are: {', '.join(KINDS)}.")
        out.append(k)
    return out


def expand_alias(pattern: str) -> str:
    """``t:sched:*`` -> ``tracepoint:sched:*`` (bpftrace's short provider names)."""
    head, sep, rest = pattern.partition(":")
    if sep and head in KIND_ALIASES:
        return KIND_ALIASES[head] + ":" + rest
    return pattern


def glob_to_regex(pattern: str) -> str:
    """Translate a glob to a regex body matching one whole name (no newlines).

    ``*`` any run of characters (``:`` included, as in bpftrace), ``?`` one character,
    ``[abc]``/``[!abc]``/``[a-z]`` a class, ``{a,b}`` alternatives, ``\\x`` a literal x.
    """
    import re

    out: list[str] = []
    i, n = 0, len(pattern)
    depth = 0
    while i < n:
        c = pattern[i]
        if c == "*":
            while i + 1 < n and pattern[i + 1] == "*":
                i += 1
            out.append("[^\n]*")
        elif c == "?":
            out.append("[^\n]")
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                raise UsageError(f"The pattern {pattern!r} has a '[' at column {i + 1} that is never closed.")
            body = pattern[i + 1 : j]
            neg = body[:1] in ("!", "^")
            if neg:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(f"[{'^' if neg else ''}{body}{chr(10) if neg else ''}]")
            i = j
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}":
            if depth == 0:
                raise UsageError(f"The pattern {pattern!r} has a '}}' at column {i + 1} with no '{{' before it.")
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        elif c == "\\":
            if i + 1 >= n:
                raise UsageError(f"The pattern {pattern!r} ends with a lone backslash.")
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "\n":
            raise UsageError("A pattern cannot contain a newline.")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise UsageError(f"The pattern {pattern!r} has a '{{' that is never closed.")
    return "".join(out)


def compile_glob(pattern: str) -> re.Pattern[str]:
    import re

    body = glob_to_regex(expand_alias(pattern))
    try:
        return re.compile(f"^{body}$", re.M)
    except re.error as err:  # e.g. a bad range [z-a]
        raise UsageError(f"The pattern {pattern!r} is not a valid glob: {err.msg}.") from None


def compile_regex(pattern: str) -> re.Pattern[str]:
    import re
    import warnings

    if "\n" in pattern:
        raise UsageError("A pattern cannot contain a newline.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set": still valid
            return re.compile(pattern)
    except re.error as err:
        pos = f" at column {err.pos + 1}" if err.pos is not None else ""
        raise UsageError(f"The regular expression {pattern!r} is invalid{pos}: {err.msg}.") from None
    except (OverflowError, RecursionError, ValueError):
        raise UsageError(f"The regular expression {pattern!r} is too complex.") from None


def star_chunks(pattern: str) -> list[str] | None:
    """The literal pieces between the ``*`` of a glob made of literals and ``*`` only (``*read*`` ->
    ``['', 'read', '']``); None when it has any other glob syntax. Such a glob matches a name that
    starts with the first piece, ends with the last and holds the others in order between them:
    :func:`star_match` tests that with str methods, the same answer :func:`compile_glob` gives
    (tests/test_list_fast.py checks both on generated globs), without importing ``re`` (about as
    costly as the rest of ``ktui list 'uprobe:/bin/bash:*read*'``)."""
    if any(c in pattern for c in "?[{}\\,\n"):
        return None
    return pattern.split("*")


def star_match(name: str, chunks: list[str]) -> bool:
    first, last = chunks[0], chunks[-1]
    if len(chunks) == 1:
        return name == first
    if len(name) < len(first) + len(last) or not name.startswith(first) or not name.endswith(last):
        return False
    pos, end = len(first), len(name) - len(last)
    for piece in chunks[1:-1]:
        if piece:
            pos = name.find(piece, pos, end)
            if pos < 0:
                return False
            pos += len(piece)
    return True


def literal_prefix(pattern: str) -> str:
    """The literal text a glob starts with (used to narrow the search to a sorted range)."""
    pattern = expand_alias(pattern)
    out = []
    for c in pattern:
        if c in "*?[{\\":
            break
        out.append(c)
    return "".join(out)


def longest_literal(glob: str) -> str:
    """The longest run of plain characters in a glob (outside classes and alternatives)."""
    best, i, depth = "", 0, 0
    cur: list[str] = []
    while i < len(glob):
        c = glob[i]
        if c in "*?" or (c == "," and depth):
            cur = []
        elif c == "[":
            cur = []
            j = glob.find("]", i + 2)
            i = j if j >= 0 else len(glob)
        elif c in "{}":
            depth += 1 if c == "{" else -1
            cur = []
        elif c == "\\":
            cur = []
            i += 1
        elif not depth:
            cur.append(c)
            if len(cur) > len(best):
                best = "".join(cur)
        i += 1
    return best
