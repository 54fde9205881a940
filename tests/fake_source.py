"""A deterministic EventSource for pictures and UI-flow tests only.

Every behaviour it stands in for is also tested against the real engine (live tests).
It produces what a real source would hand the panes: structured numpy arrays with
the real record layout, per-CPU counters, stacks and histograms, with a fixed clock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np

from ktui.events import (FieldLayout, Histogram, KeyCounts, ProbeCounters, ProbeLayout, ProbeState, StackTrace,
                         Update)

T0 = 1_000_000_000_000  # a fixed boot-time clock

# A developer's own keymap must not change what the tests press (tests that need one set it).
os.environ.setdefault("KTUI_KEYMAP", os.devnull)


def getppid_layout(probe_id: int = 0) -> ProbeLayout:
    return ProbeLayout(probe_id, "sys_enter_getppid", "tracepoint:syscalls:sys_enter_getppid")


def openat_layout(probe_id: int = 1) -> ProbeLayout:
    return ProbeLayout(probe_id, "sys_enter_openat", "tracepoint:syscalls:sys_enter_openat",
                       (FieldLayout("dfd", "<i8", "s"), FieldLayout("filename", "S32", "string"),
                        FieldLayout("oflags", "<u8", "x")))


def make_events(layout: ProbeLayout, n: int, *, start: int = 0, pid: int = 4242, ncpu: int = 2,
                step_ns: int = 1000, comm: bytes = b"loadgen") -> np.ndarray:
    arr = np.zeros(n, dtype=layout.dtype)
    idx = np.arange(start, start + n)
    arr["ts"] = T0 + idx * step_ns + layout.probe_id
    arr["probe"] = layout.probe_id
    arr["cpu"] = idx % ncpu
    arr["pid"] = pid
    arr["tid"] = pid
    arr["kstack"] = -1
    arr["ustack"] = -1
    arr["comm"] = comm
    for f in layout.fields:
        if f.name == "filename":
            arr[f.name] = [f"/etc/file{i % 7}".encode() for i in idx]
        elif f.name == "dfd":
            arr[f.name] = -100
        elif f.name == "oflags":
            arr[f.name] = 0x80000
    return arr


def counters_for(events: dict[int, int], ncpu: int = 2, dropped: int = 0) -> dict[int, ProbeCounters]:
    out = {}
    for probe_id, n in events.items():
        c = ProbeCounters.zeros(ncpu)
        for cpu in range(ncpu):
            c.hits[cpu] = n // ncpu + (1 if cpu < n % ncpu else 0)
            c.delivered[cpu] = c.hits[cpu]
        c.dropped[0] = dropped
        c.hits[0] += dropped
        out[probe_id] = c
    return out


def sample_stacks() -> list[StackTrace]:
    return [
        StackTrace(2, ("native_safe_halt", "default_idle", "do_idle", "cpu_startup_entry"), (), 310),
        StackTrace(2, ("clear_page_erms", "get_page_from_freelist", "__alloc_pages", "do_anonymous_page"), (), 42),
        StackTrace(2, ("copy_user_generic", "filemap_read", "vfs_read", "ksys_read"), ("read", "main"), 17),
    ]


def sample_histogram() -> Histogram:
    return Histogram(0, "latency", "log2", [(1 << i, 1 << (i + 1), c) for i, c in
                                            enumerate([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 18, 96, 240, 120, 31, 4])])


def sample_counts() -> list[KeyCounts]:
    """A COUNT by (pid, comm) on openat as the engine hands it over, and the derived count by cpu."""
    return [
        KeyCounts(1, ("pid", "comm"), [((777, b"cat"), 10), ((4242, b"loadgen"), 7), ((1, b"systemd"), 3),
                                       ((312, b"sshd"), 1)]),
        KeyCounts(0, ("cpu",), [((0,), 30), ((1,), 30)]),
    ]


class FakeSource:
    """Hands a fixed list of Updates to the sink (synchronously on start, or from a thread)."""

    live = True

    def __init__(self, layouts: dict[int, ProbeLayout], updates: list[Update] | None = None, *,
                 threaded: bool = False) -> None:
        self.layouts = layouts
        self.updates = list(updates or [])
        self.threaded = threaded
        self.started = False
        self.stopped = False
        self.sink: Callable[[Update], None] | None = None
        self._thread: threading.Thread | None = None

    def start(self, sink: Callable[[Update], None]) -> None:
        self.started = True
        self.sink = sink
        if self.threaded:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        else:
            self._run()

    def _run(self) -> None:
        for update in self.updates:
            if self.stopped:
                return
            self.sink(update)

    def push(self, update: Update) -> None:
        assert self.sink is not None
        self.sink(update)

    def stop(self) -> None:
        self.stopped = True

    def symbolize(self, address: int, pid: int | None = None) -> str:
        return f"sym_{address:x}"


def populated_updates() -> list[Update]:
    """Two probes streaming, counters with a few drops, stacks and a histogram."""
    g, o = getppid_layout(0), openat_layout(1)
    states = [ProbeState(0, g.name, g.spec, "attached"), ProbeState(1, o.name, o.spec, "attached"),
              ProbeState(2, "profile_49hz", "profile:hz:49", "attached")]
    first = Update(events={0: make_events(g, 30), 1: make_events(o, 10, pid=777, comm=b"cat")},
                   counters=counters_for({0: 30, 1: 10, 2: 369}), probes=states, elapsed_s=1.0, now_ns=T0 + 10**9)
    second = Update(events={0: make_events(g, 30, start=30)},
                    counters=counters_for({0: 60, 1: 10, 2: 738}, dropped=5), probes=states,
                    stacks=sample_stacks(), histograms=[sample_histogram()], counts=sample_counts(),
                    elapsed_s=2.0, now_ns=T0 + 2 * 10**9)
    return [first, second]


def fake_catalog():
    """A small catalog with the marks the browser shows (for pictures and flows; the real one is tested live)."""
    from ktui.catalog import Catalog
    from ktui.catalog.entry import Arg, Details, Entry

    def tp(event: str, fields: list[tuple[str, str]]) -> Entry:
        return Entry("tracepoint", f"tracepoint:{event}", event, traceability="traceable",
                     details=Details([Arg(n, t) for n, t in fields]))

    def kp(sym: str, trace: str, args: list[tuple[str, str]], ret: str = "long", **kw) -> Entry:
        return Entry("kprobe", f"kprobe:{sym}", sym, address=0xffffffff81000000 + len(sym) * 0x100,
                     traceability=trace, traceability_reason=kw.pop("reason", ""),
                     details=Details([Arg(n, t) for n, t in args], ret, kw.pop("source", None)), **kw)

    entries = [
        tp("syscalls:sys_enter_getppid", [("__syscall_nr", "int")]),
        tp("syscalls:sys_enter_openat", [("__syscall_nr", "int"), ("dfd", "int"), ("filename", "const char *"),
                                         ("flags", "int"), ("mode", "umode_t")]),
        tp("sched:sched_switch", [("prev_comm", "char[16]"), ("prev_pid", "pid_t"), ("next_pid", "pid_t")]),
        kp("do_sys_openat2", "traceable", [("dfd", "int"), ("filename", "const char *"),
                                           ("how", "struct open_how *")], source="fs/open.c:1388"),
        kp("vfs_read", "traceable", [("file", "struct file *"), ("buf", "char *"), ("count", "size_t"),
                                     ("pos", "loff_t *")], "ssize_t", source="fs/read_write.c:450"),
        kp("do_idle", "notrace", [], "void", reason="absent from available_filter_functions"),
        kp("memcpy_orig", "blacklisted", [], "void *", reason="in .noinstr.text"),
        kp("tcp_v4_rcv", "clone", [("skb", "struct sk_buff *")], "int", clones=["tcp_v4_rcv.isra.0"]),
        kp("tcp_connect", "inlined", [("sk", "struct sock *")], "int"),
        kp("show_map", "duplicate", [("m", "struct seq_file *")], "int", addresses=[0xffffffff81001000, 0xffffffff81002000]),
    ]
    return Catalog.from_entries(entries, origin="test")


class RecordingFactory:
    """A source factory for flow tests: remembers every probe set and serves FakeSources."""

    def __init__(self, updates_for=None):
        self.calls: list[list] = []
        self.sources: list[FakeSource] = []
        self.updates_for = updates_for or (lambda probes: [])

    def __call__(self, probes):
        from ktui.events import FieldLayout, ProbeLayout

        self.calls.append([p for p in probes])
        layouts = {i: ProbeLayout(i, p.name, p.spec, tuple(FieldLayout(f.name, "<u8") for f in p.fetches))
                   for i, p in enumerate(probes) if p.enabled}
        source = FakeSource(layouts, self.updates_for(layouts))
        self.sources.append(source)
        return source


def run_async_tests(namespace: dict) -> None:
    """No asyncio plugin is installed: turn each ``async def test_*`` into a plain test run with asyncio.run."""
    import asyncio
    import functools
    import inspect

    for name, fn in list(namespace.items()):
        if name.startswith("test_") and inspect.iscoroutinefunction(fn):
            def make(fn=fn):
                @functools.wraps(fn)
                def test(*args, **kwargs):
                    return asyncio.run(fn(*args, **kwargs))
                return test
            namespace[name] = make()
