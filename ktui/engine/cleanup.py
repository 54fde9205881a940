"""Detaching on every way out: normal exit, Ctrl-C, SIGTERM (and SIGHUP).

SIGTERM and SIGHUP would kill Python without running atexit handlers, so they are
turned into KeyboardInterrupt: the same orderly path as Ctrl-C. Every running
LiveSource is also stopped at exit. (After SIGKILL the kernel itself removes
ktui's probes: BCC attaches through perf event fds, which die with the process.)
"""

from __future__ import annotations

import atexit
import signal
import threading
import weakref
from types import FrameType
from typing import Protocol


class Stoppable(Protocol):
    def stop(self) -> None: ...


_running: weakref.WeakSet[Stoppable] = weakref.WeakSet()


def register(source: Stoppable) -> None:
    _running.add(source)


def unregister(source: Stoppable) -> None:
    _running.discard(source)


@atexit.register
def stop_all() -> None:
    for source in list(_running):
        try:
            source.stop()
        except Exception:  # at exit, detaching the others matters more than this one's error
            pass


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_termination_handlers() -> None:
    """Make SIGTERM and SIGHUP behave like Ctrl-C (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _interrupt)
