"""Where an investigation usually starts: the probe points people reach for first.

The symbol browser opens on these (those this kernel has) before the alphabetical rest, so
the first screen shows ``sched:sched_switch`` and ``syscalls:sys_enter_openat`` rather than
``.E_copy`` and ``BUG_func``. The order is the order of the classic tools (BCC's execsnoop,
opensnoop, runqlat, biolatency, tcpconnect...) and of bpftrace's one-liners.
"""

from __future__ import annotations

from typing import Protocol
from collections.abc import Sequence

POPULAR: tuple[str, ...] = (
    "tracepoint:syscalls:sys_enter_openat",
    "tracepoint:syscalls:sys_exit_openat",
    "tracepoint:syscalls:sys_enter_execve",
    "tracepoint:sched:sched_process_exec",
    "tracepoint:sched:sched_process_exit",
    "tracepoint:sched:sched_process_fork",
    "tracepoint:sched:sched_switch",
    "tracepoint:sched:sched_wakeup",
    "tracepoint:raw_syscalls:sys_enter",
    "tracepoint:raw_syscalls:sys_exit",
    "tracepoint:syscalls:sys_enter_read",
    "tracepoint:syscalls:sys_enter_write",
    "tracepoint:syscalls:sys_enter_connect",
    "tracepoint:syscalls:sys_enter_accept4",
    "tracepoint:syscalls:sys_enter_kill",
    "tracepoint:block:block_rq_issue",
    "tracepoint:block:block_rq_complete",
    "tracepoint:sock:inet_sock_set_state",
    "tracepoint:tcp:tcp_retransmit_skb",
    "tracepoint:signal:signal_generate",
    "tracepoint:exceptions:page_fault_user",
    "tracepoint:kmem:kmalloc",
    "tracepoint:irq:irq_handler_entry",
    "tracepoint:oom:mark_victim",
    "kprobe:schedule",
    "kprobe:do_sys_openat2",
    "kprobe:vfs_read",
    "kprobe:vfs_write",
    "kprobe:tcp_connect",
    "kprobe:tcp_v4_connect",
    "kprobe:do_nanosleep",
)


class Indexed(Protocol):
    def index_of(self, name: str) -> int | None: ...

    def __len__(self) -> int: ...


def starting_rows(catalog: Indexed) -> tuple[list[int], int]:
    """The empty query's rows: the popular points this catalog has, then every other entry in name
    order. Returns (rows, how many of them are the popular ones)."""
    first: list[int] = []
    for name in POPULAR:
        i = catalog.index_of(name)
        if i is not None and i not in first:
            first.append(i)
    taken = set(first)
    rest: Sequence[int] = [i for i in range(len(catalog)) if i not in taken] if taken else range(len(catalog))
    return first + list(rest), len(first)


def is_plain_word(query: str) -> bool:
    """A query without glob or regex characters: ranked fuzzy search suits it best."""
    return bool(query) and not any(c in query for c in "*?[]{}()|^$\\+")
