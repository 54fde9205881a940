"""Security regression: text other people control never reaches root's terminal as control sequences.

An unprivileged process names itself ESC ] 52 ; c ; ... BEL (OSC 52 sets the terminal's
clipboard) and makes a traced system call while root runs the real `ktui` live in a
pseudo-terminal; the same text comes back through the replay of a recording and through a
session file. The assertions read the RAW bytes ktui wrote to the terminal: the hostile
sequence is absent, its visible escape (``\\x1b]52``) is present.
"""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from helpers.security import KTUI, PtyApp, run_as, unprivileged_user
from ktui.events import FieldLayout, Histogram, ProbeCounters, ProbeLayout, StackTrace
from ktui.kernel import kernel_identity
from ktui.probes.model import Action, ActionKind, Probe, ProbeKind
from ktui.recording.writer import RecordingWriter
from ktui.session import Session

HOSTILE = "\x1b]52;c;aGk=\x07"  # OSC 52: "set the clipboard to 'hi'"; 12 bytes, fits a comm
HOSTILE_RAW = b"\x1b]52"
SHOWN = b"\\x1b]52;c;"  # how the first ten cells of that comm look on screen (the narrow COMM column)

# prctl(PR_SET_NAME, HOSTILE), then getppid calls for ten seconds: the traced system call.
RENAME_AND_CALL = (
    "import ctypes, os, time\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    f"assert libc.prctl(15, {HOSTILE.encode()!r}, 0, 0, 0) == 0\n"
    "end = time.monotonic() + 10\n"
    "while time.monotonic() < end:\n"
    "    os.getppid(); time.sleep(0.02)\n"
)


def assert_clean(out: bytes) -> None:
    assert HOSTILE_RAW not in out, "the hostile OSC 52 sequence reached the terminal raw"
    assert b"\x9b" not in out.replace(b"\xc2\x9b", b"")  # nor a C1 CSI byte outside UTF-8


@pytest.mark.live
@pytest.mark.timeout(180)
def test_live_stream_shows_a_hostile_comm_of_another_user_escaped(tmp_path):
    with unprivileged_user() as user:
        session = tmp_path / "getppid.toml"
        Session(probes=[Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", filter=f"uid == {user.pw_uid}",
                              actions=[Action(ActionKind.STREAM)])]).save(session)
        app = PtyApp(["--session", str(session)])
        try:
            app.wait_for(b"LIVE")
            app.wait_for(b"probes 1/1")  # attached: the next getppid is traced
            attacker = run_as(user, ["/usr/bin/python3", "-c", RENAME_AND_CALL],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                out = app.wait_for(SHOWN, timeout=60)
            finally:
                attacker.kill()
                _, err = attacker.communicate()
                assert attacker.returncode in (0, -9), err  # the rename worked (it asserts)
            assert_clean(out)
        finally:
            assert app.close() == 0
        assert_clean(app.output())


def _hostile_recording(path) -> None:
    layout = ProbeLayout(0, "evil\x1b]52;c;aGk=\x07", "tracepoint:syscalls:sys_enter_openat",
                         (FieldLayout("filename", "S32", "string"),))
    w = RecordingWriter.create(path, kernel_identity(), [layout])
    a = np.zeros(50, dtype=layout.dtype)
    a["ts"] = 1_000_000 + np.arange(50, dtype=np.uint64) * 1000
    a["pid"] = a["tid"] = 4242
    a["kstack"] = a["ustack"] = -1
    a["comm"] = HOSTILE.encode()
    a["filename"] = b"/tmp/\x1b]52;c;aGk=\x07\x9b2J"
    w.append(0, a)
    w.set_counters({0: ProbeCounters([50], [50], [0], [0])})
    w.set_stacks([StackTrace(0, ("stk\x1b]52;c;aGk=\x07", "do_sys_openat2"), (), 7)])
    w.set_histograms([Histogram(0, "hv\x1b]52;c;aGk=\x07", "log2", [(0, 1, 3), (1, 2, 5)])])
    w.close()


def test_replay_of_a_recording_with_hostile_comm_probe_name_and_strings_stays_escaped(tmp_path):
    rec = tmp_path / "hostile.rec"
    _hostile_recording(rec)
    app = PtyApp(["replay", str(rec)], cwd=str(tmp_path))
    try:
        out = app.wait_for(SHOWN)
        app.wait_for(b"evil\\x1b]52")  # the probe name, in the stream's PROBE column
        app.wait_for(b"filename='/tmp/\\x1b]52")  # the fetched string, in the VALUES column
        for tab, shown in ((b"2", b"evil\\x1b]52;c;aGk=\\x07  50 hits"),  # CPU counts, by probe name
                           (b"3", b"stk\\x1b]52;c;aGk=\\x07"),  # the stack's top frame
                           (b"4", b"hv\\x1b]52;c;aGk=\\x07"),  # the histogram's value name
                           (b"5", b"tracepoint:syscalls:sys_enter_openat")):  # the probe list
            app.send(tab)
            out = app.wait_for(shown)
        assert_clean(out)
    finally:
        app.close()
    assert_clean(app.output())


def test_a_session_whose_probe_name_is_hostile_is_refused_in_a_visible_sentence(tmp_path):
    session = tmp_path / "evil.toml"
    probe = Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid", actions=[Action(ActionKind.STREAM)])
    probe.name = HOSTILE
    text = Session(probes=[probe], layout={HOSTILE: HOSTILE}).to_toml()
    session.write_text(text)
    app = PtyApp(["--session", str(session)])
    app.proc.wait(60)
    code = app.close()
    out = app.output()
    assert code != 0, out
    assert b"is not an identifier" in out
    assert b"\\x1b]52" in out
    assert_clean(out)


def test_a_hostile_file_name_in_an_error_is_escaped(tmp_path):
    name = tmp_path / f"{HOSTILE}.rec"
    name.write_bytes(b"not a recording")
    out = subprocess.run([str(KTUI), "export", str(name), "-f", "jsonl", "-o", "-"],
                         capture_output=True, env={**os.environ})
    assert out.returncode != 0
    assert b"\\x1b]52" in out.stderr
    assert HOSTILE_RAW not in out.stderr + out.stdout
