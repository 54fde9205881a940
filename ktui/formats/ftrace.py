"""Importing ftrace text (``/sys/kernel/tracing/trace`` and ``trace_pipe``) into a recording.

Every line is ``comm-pid [cpu] flags timestamp: body``; the TGID column
(``record-tgid``) and the irq-info flags are optional, and comm may hold spaces and
dashes. Bodies come in five shapes, all parsed into named fields:

- tracepoints: ``sched_switch: prev_comm=bash prev_pid=1 ... ==> next_comm=...``, and
  free text (``tracing_mark_write: hello``) as one ``text`` field
- kprobes: ``myprobe: (do_sys_openat2+0x0/0x170) dfd=0xffffff9c filename="/etc/x"``
- return probes: ``myret: (__x64_sys_openat+0x55/0x80 <- do_sys_openat2) ret=-2``
- syscalls: ``sys_openat(dfd: 0xffffff9c, ...)`` and ``sys_openat -> 0x3``
- the function tracer: ``do_sys_openat2 <-__x64_sys_openat``

Events printed with the same timestamp keep their text order (the n-th gets n ns
added, below the printed precision). Each distinct event becomes a probe whose layout is inferred from its fields over
the whole file (a first pass decides types, a second fills records): decimal
integers as s64/u64, hexadecimal as x64, anything else as a fixed-size string.
Lines that fit none of this are counted and reported with their line number; the
rest is imported.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ktui.errors import FileFormatError, KtuiError
from ktui.inputs import check_input, open_input
from ktui.numbers import CPU, PID
from ktui.events import HEADER_FIELDS, FieldLayout, ProbeCounters, ProbeLayout
from ktui.kernel import KernelIdentity
from ktui.probes.model import Probe, ProbeKind

if TYPE_CHECKING:
    from ktui.recording.writer import RecordingWriter

MAX_STRING = 128  # longer string values are cut (and the cut reported)
# Each distinct event becomes a probe (its own layout, table and counters). A kernel with every
# tracepoint enabled prints 2,000-3,000 kinds (syscalls included); more than this is not ftrace text.
MAX_EVENT_KINDS = 4096
MAX_CPUS = CPU.hi + 1  # the kernel's NR_CPUS limit (8192): counters are per CPU
MAX_TS_NS = (1 << 64) - 1  # records hold u64 nanoseconds
MAX_LINE = 1 << 20  # characters; a longer line is reported and skipped
MAX_FIELDS = 256  # per event (a tracepoint has a few dozen)
MAX_DIGITS = 20  # 2**64 is 20 decimal digits: longer digit runs are not values a kernel prints
BATCH = 65536
HEADER_NAMES = {name for name, _ in HEADER_FIELDS}

# Linear on any line: the leading blanks and comm's first character cannot overlap (\s* then
# \S), so a line of 100,000 spaces is one pass, not one pass per space. ASCII: \d must not take
# '²' or '٣' (int() refuses some, numpy others).
LINE = re.compile(
    r"^\s*(?P<comm>\S.*?)-(?P<pid>\d+)\s+"
    r"(?:\(\s*(?P<tgid>\d+|-+)\)\s+)?"
    r"\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[.a-zA-Z0-9]{4,5})\s+)?"
    r"(?P<sec>\d+)(?:\.(?P<frac>\d+))?:\s(?P<body>.*)$",
    re.ASCII,
)
SYSCALL_ENTER = re.compile(r"^(?P<name>sys_\w+)\((?P<args>.*)\)\s*$", re.ASCII)
SYSCALL_EXIT = re.compile(r"^(?P<name>sys_\w+) -> (?P<ret>0x[0-9a-fA-F]+|-?\d+)\s*$", re.ASCII)
NAMED = re.compile(r"^(?P<event>[\w.$-]+):\s?(?P<rest>.*)$")
FUNCTION = re.compile(r"^(?P<func>[\w.$]+) <-(?P<parent>[\w.$]+)\s*$")
PROBE_LOC = re.compile(r"^\((?P<loc>[^()]*)\)\s*(?P<args>.*)$")
KEY = re.compile(r'([A-Za-z_$][^\s="]*)=')
# (?<!\s): a search tries only the start of each run of blanks, not every blank in it (linear).
NEXT_KEY = re.compile(r'(?<!\s)\s+(?:==>\s+)?[A-Za-z_$][^\s="]*=')
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"(?=\s|$)')
LOST = re.compile(r"^CPU:(?P<cpu>\d+) \[LOST (?P<n>\d+) EVENTS\]", re.ASCII)
ENTRIES = re.compile(r"entries-in-buffer/entries-written:\s*(?P<buf>\d+)/(?P<written>\d+)\s+#P:(?P<ncpu>\d+)",
                     re.ASCII)
HEX = re.compile(r"^0x[0-9a-fA-F]+$")
BARE_HEX = re.compile(r"^[0-9a-f]{1,16}$")
POINTER_HEX = re.compile(r"^[0-9a-f]{8,16}$")

# Subsystems of common tracepoints, for the spec when the text does not say it.
KNOWN_SYSTEMS = {
    "sched": ("sched_",), "irq": ("irq_handler", "softirq_"), "timer": ("hrtimer_", "timer_", "itimer_", "tick_"),
    "signal": ("signal_",), "block": ("block_",), "workqueue": ("workqueue_",), "kmem": ("kmalloc", "kfree",
    "kmem_", "mm_page"), "net": ("net_dev_", "netif_"), "power": ("cpu_idle", "cpu_frequency"),
    "writeback": ("writeback_",), "task": ("task_newtask", "task_rename"), "raw_syscalls": ("sys_enter", "sys_exit"),
}


@dataclass
class ParsedLine:
    comm: str
    tid: int
    tgid: int | None
    cpu: int
    ts: int
    key: tuple[str, str]  # (kind, event name)
    target: str  # what the probe is on: function, "syscalls:sys_enter_x", tracepoint name
    fields: list[tuple[str, str]]
    resolution: int = 1  # ns per unit of the printed timestamp's last digit


@dataclass
class EventInfo:
    """What the first pass learns about one event: its fields in order and their value kinds."""
    kind: str  # "tracepoint", "kprobe", "kretprobe", "syscall_enter", "syscall_exit", "function"
    name: str
    target: str
    fields: dict[str, Column] = field(default_factory=dict)
    count: int = 0
    probe_id: int = -1
    layout: ProbeLayout | None = None  # set by the second pass, with names
    names: dict[str, str] = field(default_factory=dict)  # the file's field name -> the record's field name


@dataclass
class Column:
    dec: bool = True  # every value is a decimal integer
    hex: bool = True  # every value is 0x-hex (or 0, as %#lx prints it)
    bare_hex: bool = True  # every value is hex digits without 0x
    pointer: bool = True  # every value looks like a %p pointer (8 to 16 hex digits)
    letters: bool = False  # some bare value holds a-f
    prefixed: bool = False  # some value is written 0x...
    negative: bool = False
    big: bool = False  # some decimal value does not fit s64
    width: int = 1
    cut: int = 0  # values longer than MAX_STRING

    def see(self, value: str) -> None:
        if self.dec:
            digits = value[1:] if value[:1] == "-" else value
            if digits.isascii() and digits.isdigit() and len(digits) <= MAX_DIGITS:
                v = int(value)
                self.negative |= v < 0
                self.big |= v >= 1 << 63
                if v >= 1 << 64 or v < -(1 << 63):
                    self.dec = False
            else:
                self.dec = False
        if value.startswith("0x"):
            self.prefixed = True
        if self.hex and value != "0" and not (len(value) <= 18 and HEX.match(value)):
            self.hex = False
        if self.bare_hex:
            if len(value) <= 16 and BARE_HEX.match(value):
                if not self.letters and not value.isdigit():
                    self.letters = True
                if self.pointer and len(value) < 8:
                    self.pointer = False
            else:
                self.bare_hex = False
        n = len(value.encode("utf-8", "surrogateescape"))
        if n > MAX_STRING:
            self.cut += 1
        self.width = max(self.width, min(n, MAX_STRING))

    def layout(self, name: str, legacy_hex: bool = False) -> FieldLayout:
        """legacy_hex: the event prints every number as bare hex (kprobe events before 0x prefixes)."""
        if legacy_hex and self.bare_hex:
            return FieldLayout(name, "<u8", "x")
        if self.dec and not (self.negative and self.big):
            return FieldLayout(name, "<i8", "s") if self.negative else FieldLayout(name, "<u8", "u")
        if self.hex:
            return FieldLayout(name, "<u8", "x")
        if self.bare_hex and self.letters and self.pointer:
            return FieldLayout(name, "<u8", "x")
        return FieldLayout(name, f"S{(self.width + 7) // 8 * 8}", "string")


@dataclass
class ImportReport:
    """What an import did: events per probe, and every line it could not use."""
    path: str
    lines: int = 0
    events: int = 0
    per_event: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, problem), first ones
    problem_count: int = 0
    lost: dict[int, int] = field(default_factory=dict)  # per CPU, from "[LOST n EVENTS]"
    overwritten: int = 0  # entries-written minus entries-in-buffer
    notes: list[str] = field(default_factory=list)

    def problem(self, line_no: int, problem: str) -> None:
        self.problem_count += 1
        if len(self.problems) < 50:
            self.problems.append((line_no, problem))

    def problem_lines(self, limit: int = 20) -> list[str]:
        out = [f"{self.path}:{n}: {p}" for n, p in self.problems[:limit]]
        if self.problem_count > len(out):
            out.append(f"{self.path}: and {self.problem_count - len(out)} more line(s) not imported")
        if self.lost:
            out.append(f"{self.path}: the kernel lost {sum(self.lost.values())} event(s) before this text was read "
                       f"(CPU {', '.join(f'{c}: {n}' for c, n in sorted(self.lost.items()))})")
        if self.overwritten:
            out.append(f"{self.path}: {self.overwritten} older event(s) were overwritten in the ring buffer")
        return out + [f"{self.path}: {n}" for n in self.notes]

    def summary(self) -> str:
        kinds = ", ".join(f"{name} {n}" for name, n in sorted(self.per_event.items(), key=lambda kv: -kv[1]))
        text = f"imported {self.events} event(s) of {len(self.per_event)} kind(s) from {self.lines} line(s)"
        if kinds:
            text += f": {kinds}"
        if self.problem_count:
            text += f"; {self.problem_count} line(s) not imported"
        return text


def looks_like_ftrace(path: str | os.PathLike[str]) -> bool:
    """The file's start reads as ftrace text (a header, or event lines)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            head = f.read(16384)
    except OSError:
        return False
    if head.startswith("# tracer:"):
        return True
    lines = [ln for ln in head.splitlines()[:40] if ln.strip() and not ln.startswith("#")]
    return bool(lines) and sum(bool(LINE.match(ln)) for ln in lines) >= max(1, len(lines) // 2)


def parse_line(line: str) -> ParsedLine | str:
    """One event line, or the reason it is not one."""
    m = LINE.match(line)
    if not m:
        return "not an event line (expected comm-pid [cpu] timestamp: event)"
    frac = (m["frac"] or "")[:9].ljust(9, "0")
    sec = m["sec"]
    if len(sec) > MAX_DIGITS or (ts := int(sec) * 1_000_000_000 + int(frac)) > MAX_TS_NS:
        return f"the timestamp {_clip(sec, 24)} s is beyond 2^64 ns"
    tid, cpu = _bounded(m["pid"], PID.hi), _bounded(m["cpu"], CPU.hi)
    tgid = _bounded(m["tgid"], PID.hi) if m["tgid"] and m["tgid"][0] != "-" else None
    if tid is None or (m["tgid"] and m["tgid"][0] != "-" and tgid is None):
        return f"the pid {_clip(m['pid'] if tid is None else m['tgid'], 24)} is more than a kernel hands out ({PID.hi})"
    if cpu is None:
        return f"CPU {_clip(m['cpu'], 24)} is more than a kernel has ({MAX_CPUS} at most)"
    body = m["body"]
    is_sys = body.startswith("sys_")
    head = ParsedLine(m["comm"], tid, tgid, cpu, ts, ("", ""), "", [],
                      10 ** (9 - min(len(m["frac"] or ""), 9)))
    if is_sys and (sm := SYSCALL_ENTER.match(body)):
        name = sm["name"][4:]
        head.key = ("syscall_enter", f"sys_enter_{name}")
        head.target = f"syscalls:sys_enter_{name}"
        args = sm["args"].strip()
        if args:
            for i, part in enumerate(args.split(", "), 1):
                key, sep, value = part.partition(": ")
                if not sep or not key:  # the line's text is not repeated: the file may be a secret
                    return f"syscall argument {i} is not 'name: value'"
                head.fields.append((key.strip(), value.strip()))
        return head
    if is_sys and (sm := SYSCALL_EXIT.match(body)):
        name = sm["name"][4:]
        head.key = ("syscall_exit", f"sys_exit_{name}")
        head.target = f"syscalls:sys_exit_{name}"
        ret = sm["ret"]
        if len(ret) > MAX_DIGITS:
            return f"the return value {_clip(ret, 24)} does not fit in 64 bits"
        value = int(ret, 16) if ret.startswith("0x") else int(ret)
        if value >= 1 << 63:  # printed as unsigned hex; the syscall returned a negative errno
            value -= 1 << 64
        head.fields.append(("ret", str(value)))
        return head
    if " <-" in body and (fm := FUNCTION.match(body)):
        head.key = ("function", "function")
        head.target = "function"
        head.fields += [("function", fm["func"]), ("parent", fm["parent"])]
        return head
    nm = NAMED.match(body)
    if not nm:
        return "unknown event format (not 'event: fields', a syscall or a function call)"
    event, rest = nm["event"], nm["rest"]
    if pm := PROBE_LOC.match(rest):
        loc = pm["loc"]
        if " <- " in loc:
            caller, _, func = loc.partition(" <- ")
            head.key = ("kretprobe", event)
            head.target = func.strip()
            head.fields.append(("caller", caller.strip()))
        else:
            head.key = ("kprobe", event)
            head.target = loc.split("+", 1)[0].strip()
        rest = pm["args"]
    else:
        head.key = ("tracepoint", event)
        head.target = event
    pairs, leftover = split_fields(rest)
    if leftover and not pairs:
        # Free text (trace_marker writes, trace_printk, events with their own print format).
        head.fields.append(("text", rest.strip()))
        return head
    if leftover:
        head.fields.append(("text", leftover))
    head.fields += pairs
    return head


def _bounded(digits: str, hi: int) -> int | None:
    """ASCII digits (the regexes are ASCII) as an int up to ``hi``; None beyond, before converting long text."""
    if len(digits) > MAX_DIGITS:
        return None
    value = int(digits)
    return value if value <= hi else None


def split_fields(text: str) -> tuple[list[tuple[str, str]], str]:
    """``a=1 comm=my prog-1 b="x y" ==> c=2`` -> pairs, and any words that are not key=value.

    A value runs to the next `` key=`` (comm values hold spaces), or to its closing
    quote when quoted; ``==>`` (sched_switch's arrow) separates nothing.
    """
    tokens = text.split()
    if '"' not in text and all("=" in t and t[0] != "=" or t == "==>" for t in tokens):
        # The common case, every token is key=value: no scanning needed.
        return [(k, v) for k, _, v in (t.partition("=") for t in tokens if t != "==>")], ""
    pairs: list[tuple[str, str]] = []
    words: list[str] = []
    pos, n = 0, len(text)
    while pos < n:
        while pos < n and text[pos] == " ":
            pos += 1
        if pos >= n:
            break
        if text.startswith("==>", pos):
            pos += 3
            continue
        m = KEY.match(text, pos)
        if not m:
            end = text.find(" ", pos)
            end = n if end < 0 else end
            words.append(text[pos:end])
            pos = end
            continue
        key, pos = m[1], m.end()
        if pos < n and text[pos] == '"':
            q = QUOTED.match(text, pos)
            if q:
                pairs.append((key, q[1]))
                pos = q.end()
                continue
        nxt = NEXT_KEY.search(text, pos)
        end = nxt.start() if nxt else n
        pairs.append((key, text[pos:end].strip()))
        pos = end
    return pairs, " ".join(words)


def _field_name(key: str, taken: set[str]) -> str:
    name = re.sub(r"\W", "_", key.lstrip("$+%@")) or "value"
    if name[0].isdigit():
        name = "_" + name
    if name in HEADER_NAMES:
        name = f"ev_{name}"  # sched_wakeup's comm=/pid= are about another task than the header's
    base, i = name, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, line), or (line number, None) for a line longer than MAX_LINE (skipped
    without holding it whole: a file of one endless line is read in bounded memory)."""
    try:
        with io.TextIOWrapper(open_input(path, what="ftrace text"), encoding="utf-8", errors="surrogateescape",
                              newline="") as f:
            no = 0
            while line := f.readline(MAX_LINE + 1):
                no += 1
                if len(line) > MAX_LINE and line[-1] not in "\r\n":
                    while (more := f.readline(MAX_LINE)) and more[-1] not in "\r\n":
                        pass
                    yield no, None
                    continue
                yield no, line.rstrip("\r\n")
    except OSError as err:
        raise FileFormatError(f"cannot read: {err.strerror}", where=str(path)) from None


def _scan(path: Path, report: ImportReport) -> tuple[dict[tuple[str, str], EventInfo], int]:
    """First pass: every event, its fields and their types; the header's facts; the problems."""
    events: dict[tuple[str, str], EventInfo] = {}
    ncpu = 0
    stack_lines = 0
    for no, line in _lines(path):
        report.lines += 1
        if line is None:
            report.problem(no, f"the line is longer than {MAX_LINE:,} characters")
            continue
        if not line.strip():
            continue
        if line.startswith("#"):
            if m := ENTRIES.search(line):
                header_cpus = _bounded(m["ncpu"], MAX_CPUS)
                if header_cpus is None:
                    report.problem(no, f"the header's #P:{_clip(m['ncpu'], 24)} is more CPUs than a kernel has "
                                       f"({MAX_CPUS} at most); the CPUs of the events are used")
                else:
                    ncpu = max(ncpu, header_cpus)
                written, buf = _bounded(m["written"], MAX_TS_NS), _bounded(m["buf"], MAX_TS_NS)
                if written is not None and buf is not None:
                    report.overwritten = max(0, written - buf)
            continue
        if m := LOST.match(line):
            cpu, n = _bounded(m["cpu"], CPU.hi), _bounded(m["n"], MAX_TS_NS)
            if cpu is None or n is None:
                report.problem(no, "a LOST line with a CPU or count beyond what a kernel prints")
            else:
                report.lost[cpu] = report.lost.get(cpu, 0) + n
            continue
        if line.startswith("#####") or line.lstrip().startswith("=>") or line.strip() == "<stack trace>" \
                or line.strip() == "<user stack trace>":
            stack_lines += line.lstrip().startswith("=>")
            continue
        parsed = parse_line(line)
        if isinstance(parsed, str):
            report.problem(no, parsed)  # by line number only: never a line of the file in a message
            continue
        if len(parsed.fields) > MAX_FIELDS:
            report.problem(no, f"{len(parsed.fields)} fields are more than an event has ({MAX_FIELDS} at most)")
            continue
        info = events.get(parsed.key)
        if info is None:
            if len(events) >= MAX_EVENT_KINDS:
                raise FileFormatError(f"holds more than {MAX_EVENT_KINDS:,} kinds of event (line {no} starts one "
                                      f"more); ftrace text from a kernel has a few thousand at most",
                                      where=str(path))
            info = events[parsed.key] = EventInfo(parsed.key[0], parsed.key[1], parsed.target)
        # Exact, so that _fill (which keeps a line only if every key is a field) keeps the same lines.
        if len(info.fields) + len({k for k, _ in parsed.fields if k not in info.fields}) > MAX_FIELDS:
            report.problem(no, f"event {_clip(info.name, 40)} would have more than {MAX_FIELDS} fields")
            continue
        info.count += 1
        for key, value in parsed.fields:
            info.fields.setdefault(key, Column()).see(value)
        ncpu = max(ncpu, parsed.cpu + 1)
    if stack_lines:
        report.notes.append(f"{stack_lines} stack trace line(s) are not imported")
    return events, ncpu


def _spec_and_probe(info: EventInfo, name: str, systems: dict[str, str]) -> tuple[str, dict[str, Any]]:
    kind = info.kind
    if kind in ("syscall_enter", "syscall_exit"):
        return f"tracepoint:{info.target}", Probe(ProbeKind.TRACEPOINT, info.target, name=name).to_dict()
    if kind in ("kprobe", "kretprobe"):
        pk = ProbeKind.KPROBE if kind == "kprobe" else ProbeKind.KRETPROBE
        return f"{pk}:{info.target}", Probe(pk, info.target, name=name, source=f"ftrace {kind} event {info.name}").to_dict()
    if kind == "function":
        return "ftrace:function", {}
    system = _system_of(info.name, systems)
    target = f"{system}:{info.name}" if system else info.name
    probe = Probe(ProbeKind.TRACEPOINT, target, name=name).to_dict() if system else {}
    return f"tracepoint:{target}", probe


def _system_of(event: str, systems: dict[str, str]) -> str | None:
    for system, prefixes in KNOWN_SYSTEMS.items():
        if event.startswith(prefixes):
            return system
    return systems.get(event)


def _tracefs_systems() -> dict[str, str]:
    """This machine's own events -> their system, when tracefs is mounted: read once per import
    (one lookup per event kind would be thousands of directory listings)."""
    from ktui.sysfacts import TRACEFS_CANDIDATES

    found: dict[str, str] = {}
    for base in TRACEFS_CANDIDATES:
        try:
            systems = sorted(os.listdir(os.path.join(base, "events")))
        except OSError:
            continue
        for system in systems:
            try:
                for event in os.listdir(os.path.join(base, "events", system)):
                    found.setdefault(event, system)
            except OSError:  # a file (enable, header_page) or a vanished system
                continue
        if found:
            break
    return found


def _ident(text: str) -> str:
    name = re.sub(r"\W", "_", text) or "event"
    return "_" + name if name[0].isdigit() else name


def import_ftrace(path: str | os.PathLike[str], out: str | os.PathLike[str], *, overwrite: bool = False,
                  host: str | None = None) -> ImportReport:
    """Import ftrace text into a new recording at ``out``; returns what was imported and what was not."""
    from ktui.recording.writer import RecordingWriter

    path, out = Path(path), Path(out)
    if path.resolve() == out.resolve():
        raise KtuiError("the recording would overwrite the text it is imported from", where=str(out))
    check_input(path, what="ftrace text")  # a FIFO or device is refused, not read (or waited on)
    report = ImportReport(str(path))
    events, ncpu = _scan(path, report)
    if not events:
        raise FileFormatError("holds no ftrace event lines" + (
            f" ({report.problem_lines(1)[0]})" if report.problems else ""), where=str(path))

    layouts: list[ProbeLayout] = []
    probes: dict[int, dict[str, Any]] = {}
    systems = _tracefs_systems()
    for probe_id, info in enumerate(sorted(events.values(), key=lambda e: (e.kind, e.name))):
        taken: set[str] = set()
        fields = []
        names: dict[str, str] = {}
        columns = [c for k, c in info.fields.items() if k != "caller"]
        legacy_hex = (info.kind in ("kprobe", "kretprobe") and not any(c.prefixed for c in columns)
                      and any(c.bare_hex and c.letters for c in columns))
        for key, column in info.fields.items():
            fname = _field_name(key, taken)
            taken.add(fname)
            names[key] = fname
            fields.append(column.layout(fname, legacy_hex and key != "caller"))
            if column.cut:
                report.notes.append(f"{info.name}: {column.cut} value(s) of {key} longer than {MAX_STRING} bytes were cut")
        info.probe_id = probe_id
        name = _ident(info.name)
        spec, probe = _spec_and_probe(info, name, systems)
        info.layout = ProbeLayout(probe_id, name, spec, tuple(fields))
        info.names = names
        layouts.append(info.layout)
        probes[probe_id] = probe

    meta = {"source": "ftrace text", "source_file": path.name, "host": host or path.stem,
            "clock_offset_ns": 0, "ftrace_lost": {str(k): v for k, v in report.lost.items()},
            "ftrace_overwritten": report.overwritten}
    writer = RecordingWriter.create(out, KernelIdentity("", "", "", ""), layouts, probes, meta, overwrite=overwrite)
    ok = False
    try:
        per_cpu = _fill(path, events, writer, max(ncpu, 1))
        writer.set_counters(per_cpu)
        writer.flush()
        # Imported text has no recorder clock: its span is its events' span.
        writer.set_meta(start_ns=writer._first_ts)
        writer.close(end_ns=writer._last_ts)
        ok = True
    finally:
        if not ok:
            try:
                writer.close()
            except KtuiError:
                pass
    for info in events.values():
        assert info.layout is not None  # every event got its layout above
        report.per_event[info.layout.name] = info.count
        report.events += info.count
    return report


def _fill(path: Path, events: dict[tuple[str, str], EventInfo], writer: RecordingWriter,
          ncpu: int) -> dict[int, ProbeCounters]:
    """Second pass: records per probe in batches, appended to the writer."""
    buffers: dict[tuple[str, str], list[ParsedLine]] = {k: [] for k in events}
    counts = {info.probe_id: [0] * ncpu for info in events.values()}
    printed, ties = None, 0
    for _no, line in _lines(path):
        if line is None or not line.strip() or line[0] == "#":
            continue
        parsed = parse_line(line)
        if isinstance(parsed, str):
            continue
        info = events.get(parsed.key)
        if info is None or len(parsed.fields) > MAX_FIELDS or any(k not in info.fields for k, _ in parsed.fields):
            continue  # _scan reported it (every field of a line it kept is in info.fields)
        # Events printed with the same (microsecond) time keep their text order: the
        # n-th of them gets n ns added, below the text's precision. Pairing an exit
        # with its entry depends on it.
        ties = ties + 1 if parsed.ts == printed else 0
        printed = parsed.ts
        if ties < parsed.resolution:
            parsed.ts += ties
        buf = buffers[parsed.key]
        buf.append(parsed)
        if parsed.cpu < ncpu:
            counts[info.probe_id][parsed.cpu] += 1
        if len(buf) >= BATCH:
            writer.append(info.probe_id, _to_records(info, buf))
            buf.clear()
    for key, buf in buffers.items():
        if buf:
            writer.append(events[key].probe_id, _to_records(events[key], buf))
    return {pid: ProbeCounters(list(c), list(c), [0] * ncpu, [0] * ncpu) for pid, c in counts.items()}


def _to_records(info: EventInfo, lines: list[ParsedLine]) -> np.ndarray:
    layout = info.layout
    assert layout is not None  # set before the second pass reads any record
    arr = np.zeros(len(lines), dtype=layout.dtype)
    arr["ts"] = [p.ts for p in lines]
    arr["probe"] = layout.probe_id
    arr["cpu"] = [p.cpu for p in lines]
    arr["tid"] = [p.tid for p in lines]
    arr["pid"] = [p.tgid if p.tgid is not None else p.tid for p in lines]
    arr["kstack"] = -1
    arr["ustack"] = -1
    arr["comm"] = [p.comm.encode("utf-8", "surrogateescape")[:16] for p in lines]
    by_field = {f.name: f for f in layout.fields}
    rows = [dict(p.fields) for p in lines]
    for key, fname in info.names.items():
        f = by_field[fname]
        values = [row.get(key) for row in rows]
        arr[fname] = [_convert(v, f) for v in values]
    return arr


def _convert(value: str | None, f: FieldLayout) -> bytes | int:
    if f.display == "string":
        return b"" if value is None else value.encode("utf-8", "surrogateescape")[:MAX_STRING]
    if value is None:
        return 0
    if f.display == "x":
        v = int(value, 16)
    else:
        v = int(value)
    if f.dtype == "<u8":
        return v & ((1 << 64) - 1)
    return v


def _clip(text: str, n: int = 80) -> str:
    """A token of the file (a number, an event name) shortened for a message; whole lines are never quoted."""
    return text if len(text) <= n else text[: n - 1] + "…"
