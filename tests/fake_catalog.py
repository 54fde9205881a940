"""A tiny stand-in for ktui.catalog.Catalog: just enough (search by glob, lookup) for the spec parsers."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field


@dataclass
class FakeArg:
    name: str
    ctype: str


@dataclass
class FakeEntry:
    kind: str
    name: str
    symbol: str
    module: str | None = None
    args: list = field(default_factory=list)
    source: str | None = None


def kernel_entry(symbol: str, module: str | None = None, args=(), source=None) -> FakeEntry:
    return FakeEntry("kprobe", f"kprobe:{symbol}", symbol, module, [FakeArg(*a) for a in args], source)


def tracepoint_entry(cat_event: str, args=()) -> FakeEntry:
    return FakeEntry("tracepoint", f"tracepoint:{cat_event}", cat_event, None, [FakeArg(*a) for a in args])


class FakeCatalog:
    def __init__(self, entries):
        self.entries = list(entries)
        self.searches: list[tuple[str, str]] = []

    def search(self, pattern: str, mode: str = "glob"):
        assert mode == "glob"
        self.searches.append((pattern, mode))
        return [e for e in self.entries if fnmatch.fnmatchcase(e.name, pattern)]

    def lookup(self, name: str):
        for e in self.entries:
            if e.name == name:
                return e
        return None


FORK_FUNCS = ["kernel_clone", "copy_process", "__do_sys_fork", "__x64_sys_vfork", "sched_fork", "anon_vma_fork"]


def fake_kernel() -> FakeCatalog:
    entries = [
        kernel_entry("kernel_clone", args=[("args", "struct kernel_clone_args *")], source="kernel/fork.c:2700"),
        kernel_entry("copy_process", args=[("pid", "struct pid *"), ("trace", "int"), ("node", "int"),
                                           ("args", "struct kernel_clone_args *")], source="kernel/fork.c:2000"),
        kernel_entry("__do_sys_fork", source="kernel/fork.c:2800"),
        kernel_entry("__x64_sys_vfork", source="kernel/fork.c:2810"),
        kernel_entry("sched_fork", source="kernel/sched/core.c:4500"),
        kernel_entry("anon_vma_fork", source="mm/rmap.c:300"),
        kernel_entry("ip_rcv", args=[("skb", "struct sk_buff *"), ("dev", "struct net_device *"),
                                     ("pt", "struct packet_type *"), ("orig_dev", "struct net_device *")]),
        kernel_entry("schedule"),
        kernel_entry("do_sys_openat2", args=[("dfd", "int"), ("filename", "const char *"),
                                             ("how", "struct open_how *")]),
        kernel_entry("ext4_file_write_iter", module="ext4", args=[("iocb", "struct kiocb *"),
                                                                  ("from", "struct iov_iter *")]),
        kernel_entry("ext4_file_read_iter", module="ext4"),
        tracepoint_entry("sched:sched_switch", args=[("prev_comm", "char[16]"), ("prev_pid", "pid_t")]),
        tracepoint_entry("sched:sched_wakeup"),
        tracepoint_entry("sched:sched_process_fork"),
        tracepoint_entry("syscalls:sys_enter_openat"),
        tracepoint_entry("syscalls:sys_exit_openat"),
        tracepoint_entry("syscalls:sys_enter_open"),
        FakeEntry("rawtracepoint", "rawtracepoint:sched_switch", "sched_switch"),
        FakeEntry("uprobe", "uprobe:/usr/bin/bash:readline", "readline"),
        FakeEntry("uprobe", "uprobe:/usr/bin/bash:readline_internal", "readline_internal"),
    ]
    return FakeCatalog(entries)
