"""Session files: what a user built, to reopen tomorrow or hand to a colleague.

A session is TOML and data only: probes go through the probe model (which accepts
identifiers and numbers where C could otherwise sneak in), everything else is plain
values the UI reads. Saving is atomic: a temporary file in the same directory,
fsync, then rename over the old file, so a failure leaves the old file whole.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import tomli_w

from ktui.errors import FileFormatError, KtuiError
from ktui.kernel import KernelIdentity
from ktui.inputs import read_bounded
from ktui.probes.model import MAX_EXPR_DEPTH, Arg, Probe, ProbeKind, Retval, TargetProcess
from ktui.safe_output import output_file

if TYPE_CHECKING:
    from ktui.catalog.entry import Entry

SESSION_VERSION = 1
TOP_KEYS = ("version", "kernel", "target", "probes", "layout", "settings")
KERNEL_KEYS = ("release", "version", "machine", "build_id")
TARGET_KEYS = ("pid", "command")
MAX_DEPTH = 8  # nesting of layout/settings tables; deeper is not a layout, it is a mistake


class EntryLookup(Protocol):
    """What re-checking a session needs of a catalog (``ktui.catalog.Catalog`` is one)."""

    def lookup(self, name: str) -> Entry | None: ...


class BadValue(Protocol):
    """Makes the one-sentence error for a bad value at ``key`` (``Session.from_dict``'s ``bad``)."""

    def __call__(self, key: str, problem: str) -> FileFormatError: ...
# Brackets and braces open at once in the text, checked before the (recursive) TOML parser runs:
# layout/settings (MAX_DEPTH) and fetch expressions (MAX_EXPR_DEPTH) inside a probe table.
MAX_TOML_DEPTH = MAX_EXPR_DEPTH + 8
MAX_SESSION_BYTES = 16 << 20  # read whole; sessions are kilobytes
# What [layout] says about the screen (docs/SESSIONS.md): the tab shown, whether the symbol browser
# is shown (absent: by the terminal's width), the stream's filter and search text.
TABS = ("stream", "cpus", "stacks", "hists", "probes")
MAX_QUERY_CHARS = 1000  # a stream filter or search is a line a person typed


@dataclass(frozen=True)
class SessionView:
    """The part of ``[layout]`` ktui itself reads back; other keys of the table are kept as they are."""
    tab: str = "stream"
    browser: bool | None = None  # None: folded or shown by the terminal's width
    filter: str = ""
    search: str = ""

    @classmethod
    def from_layout(cls, layout: dict[str, Any], where: str = "session") -> SessionView:
        """Read and check ``[layout]``: a wrong value is one sentence naming the key."""
        def bad(key: str, problem: str) -> FileFormatError:
            return FileFormatError(f"layout.{key}: {problem}", where=where)

        tab = layout.get("tab", "stream")
        if tab not in TABS:
            raise bad("tab", f"must be one of {', '.join(TABS)}")
        browser = layout.get("browser")
        if browser is not None and not isinstance(browser, bool):
            raise bad("browser", "must be true or false")
        texts = {}
        for key in ("filter", "search"):
            value = layout.get(key, "")
            if not isinstance(value, str):
                raise bad(key, "must be a string (the text typed in the stream's box)")
            if len(value) > MAX_QUERY_CHARS or "\n" in value or "\r" in value:
                raise bad(key, f"must be one line of at most {MAX_QUERY_CHARS} characters")
            texts[key] = value.strip()
        return cls(tab=str(tab), browser=browser, filter=texts["filter"], search=texts["search"])

    def merged_into(self, layout: dict[str, Any]) -> dict[str, Any]:
        """``layout`` with this view written over its keys (keys ktui does not read are kept; a filter or
        search no longer in force, or a browser left to the width, is removed)."""
        merged = {k: v for k, v in layout.items() if k not in ("tab", "browser", "filter", "search")}
        merged["tab"] = self.tab
        if self.browser is not None:
            merged["browser"] = self.browser
        if self.filter:
            merged["filter"] = self.filter
        if self.search:
            merged["search"] = self.search
        return merged


@dataclass
class Session:
    probes: list[Probe] = field(default_factory=list)
    target: TargetProcess | None = None
    layout: dict[str, Any] = field(default_factory=dict)  # pane layout, as the app writes it
    settings: dict[str, Any] = field(default_factory=dict)
    kernel: KernelIdentity | None = None  # the kernel the probes were built on
    # After reresolve(): probe index -> why it no longer fits this kernel.
    unfit: dict[int, str] = field(default_factory=dict)

    # -- reading --------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Session:
        path = Path(path)
        try:
            text = read_bounded(path, what="a session file", max_size=MAX_SESSION_BYTES).decode("utf-8")
        except FileFormatError as err:
            if err.message == "no such file":
                raise FileFormatError("no such session file", where=str(path)) from None
            raise
        except OSError as err:
            raise FileFormatError(f"cannot read the session: {err.strerror}", where=str(path)) from None
        except UnicodeDecodeError as err:
            raise FileFormatError(f"not UTF-8 text (byte {err.start}): not a session file", where=str(path)) from None
        return cls.from_toml(text, str(path))

    @classmethod
    def from_toml(cls, text: str, where: str = "session") -> Session:
        if len(text) > MAX_SESSION_BYTES:
            raise FileFormatError(f"is more than {MAX_SESSION_BYTES:,} characters; a session file is at most that",
                                  where=where)
        if (depth := toml_depth(text)) > MAX_TOML_DEPTH:
            raise FileFormatError(f"nests arrays or tables {depth} deep (a session nests at most {MAX_TOML_DEPTH})",
                                  where=where)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise FileFormatError(f"not valid TOML: {err}", where=where) from None
        except ValueError as err:  # an integer of more than 4300 digits
            raise FileFormatError(f"not a session: {err}", where=where) from None
        except RecursionError:
            raise FileFormatError("nests too deep to be a session", where=where) from None
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "session") -> Session:
        def bad(key: str, problem: str) -> FileFormatError:
            return FileFormatError(f"{key}: {problem}", where=where)

        unknown = sorted(set(data) - set(TOP_KEYS))
        if unknown:
            raise bad(unknown[0], f"unknown key (known: {', '.join(TOP_KEYS)})")
        if "version" not in data:
            raise bad("version", "missing; a session file starts with version = 1")
        version = data["version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise bad("version", "must be an integer")
        if version != SESSION_VERSION:
            raise bad("version", f"session format version {version}; this ktui reads version {SESSION_VERSION}")

        kernel = None
        if "kernel" in data:
            k = _table(data["kernel"], "kernel", bad)
            for key, value in k.items():
                if key not in KERNEL_KEYS:
                    raise bad(f"kernel.{key}", f"unknown key (known: {', '.join(KERNEL_KEYS)})")
                if not isinstance(value, str):
                    raise bad(f"kernel.{key}", "must be a string")
            kernel = KernelIdentity.from_dict(k)

        target = None
        if "target" in data:
            t = _table(data["target"], "target", bad)
            for key in t:
                if key not in TARGET_KEYS:
                    raise bad(f"target.{key}", f"unknown key (known: {', '.join(TARGET_KEYS)})")
            pid = t.get("pid")
            if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0):
                raise bad("target.pid", "must be a positive integer")
            command = t.get("command", [])
            if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
                raise bad("target.command", "must be a list of strings (the program and its arguments)")
            if pid is not None and command:
                raise bad("target", "give a pid or a command, not both")
            target = TargetProcess(pid=pid, command=list(command))

        raw_probes = data.get("probes", [])
        if not isinstance(raw_probes, list):
            raise bad("probes", "must be an array of tables ([[probes]])")
        probes = []
        for i, p in enumerate(raw_probes):
            try:
                probes.append(Probe.from_dict(p, where=f"probes[{i}]"))
            except FileFormatError as err:
                raise FileFormatError(err.message, where=f"{where}: {err.where}" if err.where else where) from None
            except (TypeError, ValueError) as err:
                raise bad(f"probes[{i}]", str(err)) from None

        layout = _plain(_table(data.get("layout", {}), "layout", bad), "layout", bad)
        SessionView.from_layout(layout, where)  # checked now: a bad value is refused at load, not on screen
        settings = _plain(_table(data.get("settings", {}), "settings", bad), "settings", bad)
        return cls(probes=probes, target=target, layout=layout, settings=settings, kernel=kernel)

    @property
    def view(self) -> SessionView:
        return SessionView.from_layout(self.layout)

    def updated(self, probes: list[Probe], view: SessionView, kernel: KernelIdentity | None = None) -> Session:
        """This session as it is now, to save: the probes and view given, the same target and settings,
        the layout keys ktui does not read kept, and the kernel the probes now run on."""
        return Session(probes=list(probes), target=self.target, layout=view.merged_into(self.layout),
                       settings=dict(self.settings), kernel=kernel or self.kernel)

    # -- writing --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": SESSION_VERSION}
        if self.kernel is not None:
            data["kernel"] = self.kernel.to_dict()
        if self.target is not None and (self.target.pid is not None or self.target.command):
            data["target"] = {"pid": self.target.pid} if self.target.pid is not None else {
                "command": list(self.target.command)}
        if self.layout:
            data["layout"] = _drop_none(self.layout)
        if self.settings:
            data["settings"] = _drop_none(self.settings)
        data["probes"] = [_drop_none(p.to_dict()) for p in self.probes]
        return data

    def to_toml(self) -> str:
        try:
            return tomli_w.dumps(self.to_dict())
        except (TypeError, ValueError) as err:
            raise KtuiError(f"the session holds a value TOML cannot store: {err}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically and privately: a new 0600 file renamed over the old one when complete on
        disk (``ktui.safe_output``), so the old file stays whole on failure and a link of that name is
        replaced, never written through."""
        path = Path(path)
        text = self.to_toml().encode("utf-8")
        try:
            with output_file(path, replace=True, binary=True) as f:
                f.write(text)
        except KtuiError as err:
            raise KtuiError(f"cannot save the session ({err.message}); the previous file is unchanged",
                            where=str(path)) from None


# -- re-resolving on another kernel ----------------------------------------------

def same_kernel(a: KernelIdentity | None, b: KernelIdentity | None) -> bool:
    if a is None or b is None:
        return a is b
    if a.build_id and b.build_id:
        return a.build_id == b.build_id
    return a.release == b.release and a.version == b.version


def reresolve(session: Session, catalog: EntryLookup, identity: KernelIdentity | None = None) -> list[str]:
    """Check every probe against this kernel's catalog when the session was built on another.

    Marks ``session.unfit[i] = reason`` for each probe that no longer fits and
    returns the warnings to show (empty when the kernel is the same). ``catalog``
    needs ``lookup(name) -> Entry | None`` (``ktui.catalog.Catalog``).
    """
    if identity is None:
        from ktui.kernel import kernel_identity

        identity = kernel_identity()
    session.unfit.clear()
    if session.kernel is not None and same_kernel(session.kernel, identity):
        return []
    built = (f"kernel {session.kernel.release} (build id {session.kernel.build_id or 'unknown'})"
             if session.kernel else "an unrecorded kernel")
    warnings = [f"this session was built on {built}; this is {identity.release} "
                f"(build id {identity.build_id or 'unknown'}): probes re-checked"]
    for i, probe in enumerate(session.probes):
        reason = probe_misfit(probe, catalog)
        if reason:
            session.unfit[i] = reason
            warnings.append(f"probe {probe.name} ({probe.spec}): {reason}")
    if len(warnings) == 1:
        warnings[0] += ", all still fit"
    return warnings


def probe_misfit(probe: Probe, catalog: EntryLookup) -> str | None:
    """Why this probe does not fit the catalog's kernel, or None when it does."""
    kind = probe.kind
    if kind in (ProbeKind.PROFILE, ProbeKind.INTERVAL):
        return None
    if kind.is_user:
        if probe.binary and not os.path.exists(probe.binary):
            return f"the binary {probe.binary} does not exist here"
        return None
    if kind.is_kernel_function:
        name = f"kprobe:{probe.module}:{probe.target}" if probe.module else f"kprobe:{probe.target}"
        entry = catalog.lookup(name)
        if entry is None and probe.module:
            entry = catalog.lookup(f"kprobe:{probe.target}")
        if entry is None:
            return f"kernel function {probe.target} does not exist on this kernel"
        state = getattr(entry, "traceability", "unknown")
        if state not in ("traceable", "unknown"):
            why = getattr(entry, "traceability_reason", "")
            return f"{probe.target} is {state} here" + (f" ({why})" if why else "")
    elif kind is ProbeKind.TRACEPOINT:
        entry = catalog.lookup(f"tracepoint:{probe.target}")
        if entry is None:
            return f"tracepoint {probe.target} does not exist on this kernel"
    elif kind is ProbeKind.RAW_TRACEPOINT:
        entry = catalog.lookup(f"rawtracepoint:{probe.target}")
        if entry is None:
            return f"raw tracepoint {probe.target} does not exist on this kernel"
    else:
        return None
    names = _arg_names(entry)
    if names is not None:
        for f in probe.fetches:
            if isinstance(f.expr, Arg) and f.expr.name and f.expr.name not in names:
                return (f"argument {f.expr.name} (fetch {f.name}) is gone; it now takes "
                        f"{', '.join(sorted(names)) or 'nothing'}")
            if isinstance(f.expr, Retval) and not kind.is_return:
                return f"fetch {f.name} reads a return value on an entry probe"
    return None


def _arg_names(entry: Entry) -> set[str] | None:
    try:
        args = entry.args
    except Exception:  # noqa: BLE001 -- details are lazy (BTF/DWARF); unknown is not a misfit
        return None
    names = {a.name for a in args if getattr(a, "name", "")}
    return names or None


# -- helpers -----------------------------------------------------------------------

def toml_depth(text: str) -> int:
    """How deep '[' and '{' nest in TOML text, outside strings and comments: one linear pass.

    Table headers ([a], [[a]]) count too, at most 2. Unclosed strings end the scan (the TOML
    parser then says what is wrong); the answer only has to be right for text that parses.
    """
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(0, depth - 1)
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "\"'":
            quote = c * 3 if text.startswith(c * 3, i) else c
            j = i + len(quote)
            while True:
                k = text.find(quote, j)
                if k < 0:
                    return deepest
                # A basic string's escaped quote (\") does not end it: count the backslashes before it.
                if c == '"':
                    slashes = 0
                    while k - slashes - 1 >= j and text[k - slashes - 1] == "\\":
                        slashes += 1
                    if slashes % 2:
                        j = k + 1
                        continue
                break
            i = k + len(quote)
            continue
        i += 1
    return deepest


def _table(value: Any, key: str, bad: BadValue) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(key, "must be a table")
    return value


def _plain(value: Any, key: str, bad: BadValue, depth: int = 0) -> Any:
    """Layout and settings: strings, numbers, booleans, arrays and tables of them, nothing else."""
    if depth > MAX_DEPTH:
        raise bad(key, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{key}.{k}", bad, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{key}[{i}]", bad, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise bad(key, "must be a finite number")
    if isinstance(value, (str, int, float, bool)):
        return value
    raise bad(key, f"a {type(value).__name__} is not a setting value (use a string, number, boolean, array or table)")


def _drop_none(value: Any) -> Any:
    """TOML has no null: leave unset optional values out."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
