"""The stream inspector on the real kernel: flags in words. A child opens a path through a pointer
that cannot be read; its sys_enter_openat event's filename read faults, and the inspector says so
(the field reads "(fault)", the flags line names the faulted fetch) instead of showing ''."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from fake_source import run_async_tests
from ktui.app import KtuiApp
from ktui.app_main import _live_factory
from ktui.events import FieldLayout, ProbeLayout
from ktui.formats.rows import flag_words
from ktui.probes.model import Action, ActionKind, Probe, ProbeKind
from ktui.widgets.event_stream import EventStream
from ktui.widgets.inspector import InspectorScreen
from test_app_live import wait_for

pytestmark = pytest.mark.timeout(120)

# Everything is loaded before the byte arrives: after it, the child's only openat is the bad one.
CHILD = ("import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); sys.stdin.buffer.read(1); "
         "libc.syscall(257, -100, ctypes.c_void_p(1), 0); os._exit(0)")


async def _attached(pilot, app: KtuiApp) -> None:
    assert await wait_for(pilot, lambda: app.states.get(0) is not None
                          and app.states[0].status == "attached"), f"{app.states} / {app.banner}"


async def _inspect(pilot, app: KtuiApp, stream: EventStream) -> None:
    """Enter on the stream's row: the inspector opens."""
    stream.focus()
    await pilot.press("enter")
    assert await wait_for(pilot, lambda: isinstance(app.screen, InspectorScreen))

def test_flag_words_name_each_faulted_fetch_and_the_missing_entry():
    layout = ProbeLayout(0, "p", "tracepoint:x:y", (FieldLayout("dfd", "<i8", "s"), FieldLayout("filename", "S64", "string")))
    assert flag_words(layout, 0) == []
    assert flag_words(layout, 1 << 1) == ["filename: read faulted (no value)"]
    assert flag_words(layout, 0b11 | 1 << 31) == ["dfd: read faulted (no value)", "filename: read faulted (no value)",
                                                  "return seen without its entry (entry values are 0)"]


@pytest.mark.live
async def test_inspector_says_the_filename_read_faulted():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE)
    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_openat", filter=f"pid == {child.pid}")
    app = KtuiApp(probes=[probe], source_factory=_live_factory, mode="live")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await _attached(pilot, app)
            child.stdin.write(b"x")
            child.stdin.close()
            assert await asyncio.to_thread(child.wait) == 0
            stream = app.query_one(EventStream)
            assert await wait_for(pilot, lambda: stream.window.count(pid=child.pid) >= 1)
            await pilot.pause(0.5)
            assert stream.window.count(pid=child.pid) == 1  # the one openat after the byte
            await _inspect(pilot, app, stream)
            fields = {f.name: f for f in app.screen.fields}
            assert fields["pid"].shown == str(child.pid)
            assert fields["filename"].shown == "(fault)" and fields["filename"].filter == ""
            assert fields["flags"].shown == "filename: read faulted (no value)"
            assert fields["dfd"].shown == "-100"  # AT_FDCWD: the other arguments were read
            await pilot.press("escape")
            await pilot.press("q")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# The child stays alive until its stdin closes: its user frames are symbolized from its own maps.
GETPPID_CHILD = ("import ctypes, os, sys; libc = ctypes.CDLL(None); sys.stdin.buffer.read(1); "
                 "libc.syscall(110); sys.stdin.buffer.read(1); os._exit(0)")


@pytest.mark.live
async def test_inspector_shows_the_events_own_stack():
    """A probe that streams and takes kernel and user stacks: the inspector of its one event shows the
    kernel frames of the syscall's path and the user frames of the child (its libc)."""
    child = subprocess.Popen([sys.executable, "-c", GETPPID_CHILD], stdin=subprocess.PIPE)
    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", filter=f"pid == {child.pid}",
                  actions=[Action(), Action(ActionKind.STACKS, kernel_stack=True, user_stack=True)])
    app = KtuiApp(probes=[probe], source_factory=_live_factory, mode="live")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await _attached(pilot, app)
            child.stdin.write(b"x")
            child.stdin.flush()
            stream = app.query_one(EventStream)
            assert await wait_for(pilot, lambda: stream.window.count(pid=child.pid) >= 1)
            await pilot.pause(0.3)
            assert stream.window.count(pid=child.pid) == 1
            await _inspect(pilot, app, stream)
            frames = app.screen.stack
            user_at = frames.index(f"-- user ({child.pid})")
            kernel, user = frames[:user_at], frames[user_at + 1:]
            assert any("do_syscall_64" in f for f in kernel), frames  # the syscall's way in
            assert any("syscall" in f for f in user), frames  # libc's syscall() in the child
            await pilot.press("escape")
            await pilot.press("q")
    finally:
        if not child.stdin.closed:
            child.stdin.close()
        if child.poll() is None:
            child.kill()
        child.wait()


run_async_tests(globals())
