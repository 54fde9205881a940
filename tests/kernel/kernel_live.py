"""Helpers for the kernel suite: run probes through ktui's own engine, and make
exact loopback workloads (every packet and connection is one the test made)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import numpy as np


@dataclass
class Traced:
    """What ktui's engine delivered while a workload ran."""

    events: dict[int, np.ndarray]
    counters: dict[int, Any]  # probe id -> ktui.events.ProbeCounters
    states: list[Any]  # ktui.events.ProbeState
    stacks: list[Any]  # ktui.events.StackTrace
    elapsed_s: float
    result: Any = None  # what the workload returned
    updates: int = 0
    notes: list[str] = field(default_factory=list)

    def of(self, probe_id: int = 0) -> np.ndarray:
        return self.events.get(probe_id, np.empty(0))


def trace(probes, workload: Callable[[], Any], *, settle_s: float = 0.5) -> Traced:
    """Attach ``probes`` with ktui.engine's LiveSource, run ``workload``, detach, and
    return every event and the final counters. Fails if a probe did not attach."""
    from ktui.sources.live import LiveSource

    # The workload runs in this process, the tracer's own: ktui leaves its own process out unless asked.
    source = LiveSource(probes, trace_self=True)
    updates: list = []
    lock = threading.Lock()

    def sink(update) -> None:
        with lock:
            updates.append(update)

    source.start(sink)
    try:
        failed = [s for s in source.states.values() if s.status == "failed"]
        assert not failed, f"probes failed to attach: {[(s.spec, s.reason) for s in failed]}"
        result = workload()
        time.sleep(settle_s)  # the drain runs ~30 times a second: let it take the last events
        counters = source.counters()
    finally:
        source.stop()
    with lock:
        got = list(updates)
    events: dict[int, list[np.ndarray]] = {}
    for update in got:
        for pid, arr in update.events.items():
            if len(arr):
                events.setdefault(pid, []).append(arr)
    last = got[-1] if got else None
    return Traced(
        events={k: np.concatenate(v) for k, v in events.items()},
        counters=counters or (last.counters if last else {}),
        states=list(source.states.values()),
        stacks=list(last.stacks) if last else [],
        elapsed_s=last.elapsed_s if last else 0.0,
        result=result,
        updates=len(got),
        notes=list(getattr(source, "notes", [])),
    )


def udp_datagrams(n: int, payload: int) -> int:
    """Send n UDP datagrams of ``payload`` bytes over loopback and receive them all."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        data = b"k" * payload
        got = 0
        for _ in range(n):
            tx.sendto(data, rx.getsockname())
            got += len(rx.recv(65536)) == payload
        return got
    finally:
        rx.close()
        tx.close()


def tcp_connections(n: int) -> list[int]:
    """Open n loopback TCP connections (each a full handshake), send a byte, close.
    Returns the client ports."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ports = []
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(n)
        for _ in range(n):
            client = socket.create_connection(server.getsockname(), timeout=5)
            conn, _ = server.accept()
            client.sendall(b"x")
            assert conn.recv(1) == b"x"
            ports.append(client.getsockname()[1])
            client.close()
            conn.close()
    finally:
        server.close()
    return ports
