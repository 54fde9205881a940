"""`ktui list`: every probe point, one a line, like `bpftrace -l` (and `-lv`, `stap -L`)."""

from __future__ import annotations

import os
import sys

from ktui.errors import UsageError
from ktui.textsafe import term_safe

TYPE_CHECKING = False  # not typing's: the fast path (`ktui list PATTERN`) imports neither typing nor argparse
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable
    from typing import TextIO

    from ktui.catalog import Catalog
    from ktui.catalog.entry import Entry
    from ktui.commands import Subparsers
    from ktui.probes.resolve import MemberTypes


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "list",
        help="list probe points (kprobes, tracepoints, raw tracepoints, uprobes)",
        description="List probe points one a line as kind:name. PATTERN is a glob like bpftrace -l "
                    "('kprobe:*fork*', 'tracepoint:sched:*', 'uprobe:/usr/bin/bash:*'), or a regex/fuzzy "
                    "query with --regex/--fuzzy.",
    )
    p.add_argument("pattern", nargs="?", default=None, metavar="PATTERN", help="glob (default '*')")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--regex", action="store_true", help="PATTERN is a regular expression (searched in the name)")
    mode.add_argument("--fuzzy", action="store_true", help="PATTERN is a fuzzy query; best matches first")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show arguments with their types, source location and traceability")
    p.add_argument("--members", action="store_true",
                   help="with -v: under each struct-pointer argument, its members one level deep (from BTF; "
                        "a program's from its DWARF)")
    p.add_argument("--json", action="store_true",
                   help="JSON Lines: one JSON object a line, one probe point each, written as found")
    p.add_argument("--kind", action="append", metavar="K",
                   help="only this kind: kprobe, tracepoint, rawtracepoint, uprobe (repeatable)")
    p.add_argument("--traceability", action="append", metavar="T",
                   help="only entries with this traceability (traceable, blacklisted, notrace, inlined, "
                        "clone, duplicate, init, unknown; repeatable)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N entries")
    p.add_argument("--debuginfo", metavar="PATH", help="vmlinux, module or program with DWARF: source lines, "
                                                       "parameters and locals")
    p.add_argument("--binary", metavar="PATH", help="list the uprobe points of this program or library")
    p.add_argument("-p", "--pid", type=int, default=None, metavar="PID",
                   help="list the USDT markers of every file this running process maps ('usdt:*')")
    p.add_argument("--btf", metavar="PATH", help=argparse_suppress())
    p.add_argument("--no-cache", action="store_true", help="rebuild the kernel catalog instead of using the cache")
    p.set_defaults(run=run)


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


def _binary_from_pattern(pattern: str | None) -> str | None:
    """``uprobe:/usr/bin/bash:read*`` names its binary, as in bpftrace."""
    if not pattern:
        return None
    head, sep, rest = pattern.partition(":")
    if sep and head in ("u", "uprobe", "ur", "uretprobe") and rest.startswith("/"):
        path = rest.rsplit(":", 1)[0] if ":" in rest else rest
        if not any(c in path for c in "*?[{"):
            return path
    return None


def _usdt_path_from_pattern(pattern: str | None) -> str | None:
    """``usdt:/usr/bin/python3.11:*`` names its file, as in bpftrace."""
    if not pattern:
        return None
    head, sep, rest = pattern.partition(":")
    if sep and head in ("usdt", "U") and rest.startswith("/"):
        path = rest.split(":", 1)[0]
        if not any(c in path for c in "*?[{"):
            return path
    return None


def _load(args: argparse.Namespace, binary: str | None) -> tuple[Catalog, str | None]:
    from ktui.catalog import Catalog

    usdt_path = _usdt_path_from_pattern(args.pattern)
    # USDT markers come from files and processes, not from the kernel's catalog
    if args.pid is not None:
        from ktui.catalog.usdt import process_entries

        if args.pid <= 0:
            raise UsageError("-p needs a process id above 0.")
        return Catalog.from_entries(process_entries(args.pid), origin=f"pid {args.pid}"), None
    if usdt_path is not None:
        from ktui.catalog.usdt import usdt_entries

        return Catalog.from_entries(usdt_entries([usdt_path]), origin=usdt_path), None
    if args.pattern and args.pattern.partition(":")[0] in ("usdt", "U"):
        raise UsageError("USDT markers are listed per file or process: give the path "
                         "(ktui list 'usdt:/usr/bin/python3.11:*') or a process (ktui list -p PID 'usdt:*').")
    if binary:
        return Catalog.for_binary(binary, debuginfo=args.debuginfo), binary
    return Catalog.load(use_cache=not args.no_cache, debuginfo=args.debuginfo, btf=args.btf), None


def _check_problems(cat: Catalog, args: argparse.Namespace, kinds: list[str] | None, pattern: str) -> None:
    """A source the request needs but cannot be read is an error, not a silently short list."""
    from ktui.errors import FileFormatError

    pattern = pattern or "*"
    wants = set(kinds) if kinds else None

    def needs(kind: str) -> bool:
        if wants is not None:
            return kind in wants
        if args.regex or args.fuzzy:
            return True
        from ktui.catalog.search import expand_alias

        head = expand_alias(pattern).split(":", 1)[0]
        return any(c in head for c in "*?[{") or head == kind or ":" not in pattern

    if "tracefs" in cat.problems and needs("tracepoint"):
        raise FileFormatError(cat.problems["tracefs"])
    if "kallsyms" in cat.problems and needs("kprobe"):
        raise FileFormatError(cat.problems["kallsyms"])
    if "btf" in cat.problems and (args.verbose or args.json) and (needs("kprobe") or needs("rawtracepoint")):
        raise FileFormatError(cat.problems["btf"])


def _member_types(e: Entry, kernel: MemberTypes | None) -> MemberTypes | None:
    """Where the members of ``e``'s struct pointers are laid out: the kernel's BTF, or a uprobe's
    program's DWARF (the resolution the compiler and the editor use)."""
    if e.kind in ("kprobe", "rawtracepoint"):
        return kernel
    if e.kind == "uprobe" and e.args:
        from ktui.probes.resolve import user_member_types

        binary = e.name[len("uprobe:"):].rsplit(":", 1)[0]
        return user_member_types(binary, e.symbol)[0]
    return None


def _verbose_lines(e: Entry, shown: str | None = None, types: MemberTypes | None = None) -> list[str]:
    """``ktui list -v`` lines of one entry; ``types``: members shown one level deep (``--members``)."""
    out = [_rename(e.name, shown)]
    for a in e.args:  # bpftrace -lv spelling: "const char * filename"
        out.append(f"    {a.ctype} {a.name}" if a.name else f"    {a.ctype}")
        if types is not None and a.name:
            from ktui.probes.resolve import members_of

            out.extend(f"        {ctype} {a.name}->{name}  // +0x{off:x}" for name, ctype, off in members_of(a.ctype, types))
    if e.kind in ("kprobe", "uprobe") and e.return_type and e.return_type != "void":
        out.append(f"    {e.return_type} retval")
    if e.args_note and (not e.args or e.kind == "usdt"):
        out.append(f"    // {e.args_note}")
    if e.source:
        out.append(f"    // source: {e.source}")
    if e.locals:
        for a in e.locals:
            out.append(f"    // local: {a.ctype} {a.name}")
    if e.kind in ("software", "hardware"):
        out.append(f"    // {e.traceability}: {e.traceability_reason}")
    if e.kind in ("kprobe", "uprobe"):
        where = ""
        if e.address:
            where = f" at 0x{e.address:x}" + (f" (file offset 0x{e.offset:x})" if e.offset is not None else "")
        if e.module:
            where += f" [{e.module}]"
        out.append(f"    // {e.traceability}{where}: {e.traceability_reason}")
        if e.clones:
            out.append(f"    // clones: {', '.join(e.clones)}")
        if e.clone_of:
            out.append(f"    // clone of: {e.clone_of}")
    return out


def run(args: argparse.Namespace) -> int:
    from ktui.errors import FileFormatError

    try:
        return _run(args)
    except BrokenPipeError:
        raise
    except OSError as err:  # anything the catalog did not already turn into a sentence
        where = f" {err.filename}" if getattr(err, "filename", None) else ""
        raise FileFormatError(f"cannot read{where}: {err.strerror or err}.") from None


# probe kinds `ktui list` knows, and how each is shown (bpftrace's names; kr: prints kretprobe:)
_SHOWN_AS = {"kretprobe": "kretprobe", "kr": "kretprobe", "uretprobe": "uretprobe", "ur": "uretprobe"}
_FENTRY = {"fentry": "fentry", "kfunc": "fentry", "f": "fentry", "fexit": "fexit", "kretfunc": "fexit", "fr": "fexit"}


def _kind_of_pattern(pattern: str) -> tuple[str, str | None, str | None]:
    """(the pattern the catalog searches, the prefix to print instead of the catalog's, fentry/fexit)
    Unknown kinds are one sentence (bpftrace's own names for kinds ktui does not list say why)."""
    from ktui.catalog.search import KIND_ALIASES, KINDS

    head, sep, rest = pattern.partition(":")
    if not sep or any(c in head for c in "*?[{\\"):
        return pattern, None, None
    if head in _FENTRY:
        return "kprobe:" + rest, _FENTRY[head], _FENTRY[head]
    if head in KIND_ALIASES:
        return pattern, _SHOWN_AS.get(head), None
    listed = ", ".join([*KINDS, "kretprobe", "uretprobe", "fentry (kfunc)", "fexit (kretfunc)"])
    if head in ("profile", "interval", "p", "i"):
        raise UsageError(f"{pattern!r}: profile and interval probes take a rate (profile:hz:99, interval:s:1), "
                         f"not a name to list; ktui lists {listed}.")
    raise UsageError(f"Unknown probe kind {head!r} in {pattern!r}: ktui lists {listed}.")


def _quick(args: argparse.Namespace | PlainArgs, mode: str, kinds: list[str] | None, binary: str | None,
           fentry: str | None, pattern: str | None, later: list[Callable[[], None]] | None = None) -> list[str] | None:
    """Names straight from the index (or tracefs, or the ELF symbol tables): no catalog, no numpy.
    None when only the full catalog can answer this request. Index writes that can wait until the
    names are printed are left in ``later``."""
    if (mode != "glob" or args.verbose or args.members or args.json or args.traceability or args.debuginfo or args.btf
            or args.no_cache or fentry or pattern is None or args.pid is not None
            or pattern.partition(":")[0] in ("usdt", "U") or (kinds is not None and "usdt" in kinds)):
        return None  # USDT markers come from files and processes, not from the kernel's index
    from ktui.catalog import quicklist

    if binary:
        if kinds is not None:
            from ktui.catalog.search import kind_names

            if "uprobe" not in kind_names(kinds):
                return None
        return quicklist.binary_names(binary, pattern, later)
    return quicklist.kernel_names(pattern, kinds)


def _run_later(later: list[Callable[[], None]]) -> None:
    """The index writes the answer did not wait for (after its names are printed and flushed)."""
    for step in later:
        step()


def _fentry_rows(cat: Catalog, rows: list[int]) -> list[int]:
    """What fentry/fexit could attach to: kernel functions with a BTF prototype and an address."""
    from ktui.catalog.traceability import CODE

    ok = {CODE["traceable"], CODE["unknown"]}
    return [i for i in rows if cat.ref[i] >= 0 and cat.addr[i] and int(cat.trace[i]) in ok]


def _fentry_note() -> None:
    """fentry names are listed where the kernel refuses fentry; say so (stderr: stdout stays names)."""
    try:
        from ktui.doctor.bootcache import fentry_check

        check = fentry_check()
    except Exception:  # noqa: BLE001 - a note must never break the listing
        return
    if check is not None and check[0] is False:
        print(f"ktui: note: this kernel cannot attach these: {check[1]}", file=sys.stderr)


_KPROBE_KINDS = ("kprobe", "k", "kretprobe", "kr")


def _kprobe_note(pattern: str | None) -> None:
    """kprobe names are listed on a kernel without kprobes (what exists is listed, as bpftrace does);
    say that none of them can be attached here (stderr: stdout stays names)."""
    if pattern is None or pattern.partition(":")[0] not in _KPROBE_KINDS:
        return
    from ktui.sysfacts import kprobes_available

    if not kprobes_available():
        print("ktui: note: this kernel cannot attach these: it has no kprobes (no kprobe_events in tracefs, "
              "no kprobe PMU); tracepoints, uprobes and perf sampling work", file=sys.stderr)


def _no_match(cat: Catalog | None, pattern: str, shown: str | None = None) -> int:
    """Nothing matched: one sentence, the closest names when the catalog has some, exit status 1 (as grep)."""
    hint = ""
    if cat is not None:
        import re

        from ktui.catalog.search import KIND_ALIASES

        # the pattern's longest word that is not a kind or a path: 'tracepoint:nosuch:*' asks about nosuch
        words = [w for w in re.split(r"[:*?\[\]{}]+", pattern) if w and w not in KIND_ALIASES and "/" not in w]
        query = max(words, key=len, default="")
        kind = KIND_ALIASES.get(pattern.partition(":")[0])
        if query:
            near = [_rename(cat.names[i], shown) for i in cat.search_indices(query, mode="fuzzy", kinds=[kind] if kind else None,
                                                             limit=3)]
            if near:
                hint = f"; did you mean {', '.join(term_safe(n) for n in near)}?"
    print(f"ktui: no probe point matches {term_safe(pattern)!r}{hint}", file=sys.stderr)
    return 1


def _rename(name: str, shown: str | None) -> str:
    return name if shown is None else shown + name[name.index(":"):]


# what argparse gives `ktui list PATTERN` when no option is typed (tests/test_list_fast.py checks
# that the two agree, so the fast path below cannot drift from the parser)
PLAIN_DEFAULTS = {"pattern": None, "regex": False, "fuzzy": False, "verbose": False, "json": False, "kind": None,
                  "traceability": None, "limit": None, "debuginfo": None, "binary": None, "pid": None, "btf": None,
                  "no_cache": False, "members": False}


class PlainArgs:
    """The arguments of ``ktui list PATTERN`` without argparse (its import, with re, gettext and
    shutil, costs more than listing tracepoints from the index)."""

    def __init__(self, pattern: str) -> None:
        self.__dict__.update(PLAIN_DEFAULTS, pattern=pattern)

    def __getattr__(self, name: str) -> None:
        # an option added to add_parser but not yet to PLAIN_DEFAULTS: argparse's default for it is
        # None or False, both falsy; the test above fails until PLAIN_DEFAULTS says so exactly
        return None


def quick_main(pattern: str) -> int | None:
    """``ktui list PATTERN`` answered straight from the index (or tracefs, or the program's symbol
    tables), before argparse, the site machinery or the catalog are imported (``ktui.launch``).
    None when this cannot give the whole answer: the full command then answers, builds the
    index, or says in its words what is wrong with the pattern."""
    from ktui.errors import KtuiError

    args = PlainArgs(pattern)
    later: list[Callable[[], None]] = []
    try:
        mode, kinds, pattern, shown, fentry, binary = _plan(args)
        if fentry:
            return None  # its note asks the doctor's boot cache
        names = _quick(args, mode, kinds, binary, fentry, pattern, later)
    except (KtuiError, OSError, ValueError):
        return None
    if not names:
        return None  # none, or nothing matched: the full command says so, with the closest names
    _kprobe_note(args.pattern)
    try:
        return _print_names(names, shown, None)
    finally:
        _run_later(later)


def _plan(args: argparse.Namespace | PlainArgs) -> tuple[str, list[str] | None, str, str | None, str | None, str | None]:
    """(mode, kinds, the pattern the catalog searches, the prefix to print, fentry/fexit, binary)."""
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be zero or more.")
    mode = "regex" if args.regex else "fuzzy" if args.fuzzy else "glob"
    kinds = args.kind
    if args.fuzzy and not args.pattern:
        raise UsageError("--fuzzy needs a query.")
    shown = fentry = None
    pattern = args.pattern if args.pattern is not None else ("*" if mode == "glob" else "")
    if mode == "glob" and args.pattern is not None:
        pattern, shown, fentry = _kind_of_pattern(args.pattern)
    binary = args.binary or _binary_from_pattern(pattern)
    if binary and mode == "glob" and not pattern.startswith(("uprobe:", "u:")):
        pattern = pattern if ":" in pattern else f"uprobe:{os.path.abspath(binary)}:{pattern}"
    return mode, kinds, pattern, shown, fentry, binary


def _print_names(names: list[str], shown: str | None, limit: int | None) -> int:
    out = sys.stdout
    try:
        if limit is not None:
            names = names[:limit]
        if names:
            out.write("\n".join(term_safe(_rename(n, shown)) for n in names) + "\n")
        out.flush()
    except BrokenPipeError:
        _quiet_stdout()
    return 0


def _quiet_stdout() -> None:
    """`ktui list | head`: the reader left. Point stdout at /dev/null so the exit flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _run(args: argparse.Namespace) -> int:
    mode, kinds, pattern, shown, fentry, binary = _plan(args)
    if fentry:
        _fentry_note()
    later: list[Callable[[], None]] = []
    names = _quick(args, mode, kinds, binary, fentry, pattern, later)
    if names:
        _kprobe_note(args.pattern)
        try:
            return _print_names(names, shown, args.limit)
        finally:
            _run_later(later)
    out = sys.stdout
    try:
        cat, binary = _load(args, binary)
        _check_problems(cat, args, kinds, pattern)
        rows = cat.search_indices(pattern, mode=mode, kinds=kinds, traceability=args.traceability,
                                  limit=None if fentry else args.limit)
        if fentry:
            rows = _fentry_rows(cat, rows)[:args.limit]
        if not rows and args.pattern:
            return _no_match(cat, args.pattern, shown)
        if not fentry:
            _kprobe_note(args.pattern)
        if args.json:
            _write_json_lines(out, (cat.entry(i) for i in rows), shown)
        elif args.verbose or args.members:
            kernel: list[MemberTypes | None] = []  # the kernel's BTF, loaded for the first kernel entry

            def types_of(e: Entry) -> MemberTypes | None:
                if not args.members:
                    return None
                if e.kind in ("kprobe", "rawtracepoint") and not kernel:
                    from ktui.probes.resolve import kernel_types

                    kernel.append(kernel_types()[0])
                return _member_types(e, kernel[0] if kernel else None)
            if any(cat.kind[i] == 0 for i in rows):  # notes are about kprobes
                for note in cat.notes:
                    print(f"ktui: note: {term_safe(note)}", file=sys.stderr)
            chunk: list[str] = []
            for i in rows:
                entry = cat.entry(i)
                chunk.extend(term_safe(line) for line in _verbose_lines(entry, shown, types_of(entry)))
                if len(chunk) > 2000:
                    out.write("\n".join(chunk) + "\n")
                    chunk = []
            if chunk:
                out.write("\n".join(chunk) + "\n")
        else:
            all_names = cat.names
            if rows:
                out.write("\n".join(term_safe(_rename(all_names[i], shown)) for i in rows) + "\n")
        out.flush()
    except BrokenPipeError:
        _quiet_stdout()
    return 0


def _write_json_lines(out: TextIO, entries: Iterable[Entry], shown: str | None) -> None:
    """One JSON object a line, flushed as it goes: a pipe sees the first probe point at once."""
    import json

    first = True
    batch: list[str] = []
    for e in entries:
        d = e.to_dict()
        if shown is not None:
            d["name"] = _rename(d["name"], shown)
            d["kind"] = shown
        batch.append(json.dumps(d))
        if first or len(batch) >= 256:
            out.write("\n".join(batch) + "\n")
            out.flush()
            batch = []
            first = False
    if batch:
        out.write("\n".join(batch) + "\n")
