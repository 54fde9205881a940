"""The SQL pane of a replay (`:`): a query over the open recording, its answer in a table, bad SQL as one
sentence, the recording untouched; and absent in live mode."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_source import FakeSource, getppid_layout, run_async_tests
from ktui.app import KtuiApp
from ktui.recording import RecordingReader
from ktui.sources.replay import ReplaySource
from ktui.widgets.query_pane import QueryPane

pytestmark = pytest.mark.timeout(120)
N = 5000
PRODUCER = ("import ctypes, sys\nlibc = ctypes.CDLL(None)\n"
            "for _ in range(int(sys.argv[1])):\n    libc.syscall(110)  # SYS_getppid\n")


def _fingerprint(path: Path) -> tuple:
    return hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns, sorted(os.listdir(path.parent))


async def _ask(app, pilot, sql: str) -> QueryPane:
    pane = app.screen
    assert isinstance(pane, QueryPane)
    box = pane.query_one("#query-sql")
    box.value = sql
    box.focus()
    await pilot.press("enter")
    status = pane.query_one("#query-status")
    for _ in range(400):
        await pilot.pause(0.05)
        text = str(status.render())
        if "row" in text or "failed" in text or "not valid" in text or "only queries" in text:
            break
    return pane


@pytest.mark.live
async def test_the_sql_pane_counts_a_real_recording_and_leaves_it_as_it_was(tmp_path):
    rec = tmp_path / "g.ktrec"
    proc = subprocess.run([sys.executable, "-m", "ktui", "record", "-q", "tracepoint:syscalls:sys_enter_getppid",
                           "-o", str(rec), "--", sys.executable, "-c", PRODUCER, str(N)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    with RecordingReader.open(rec) as r:
        total = r.count()
    before = _fingerprint(rec)
    app = KtuiApp(source=ReplaySource([rec]), mode="replay")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon")
        await pilot.pause()
        pane = await _ask(app, pilot, "SELECT count(*) AS n, max(cnt) AS mine FROM events, "
                                      "(SELECT count(*) AS cnt FROM events GROUP BY pid)")
        table = pane.query_one("#query-result")
        assert [str(c.label) for c in table.columns.values()] == ["n", "mine"]
        assert [str(v) for v in table.get_row_at(0)] == [str(total), str(N)]
        assert "1 row" in str(pane.query_one("#query-status").render())
        # bad SQL: one sentence in the pane, the pane stays
        await _ask(app, pilot, "SELEC nothing")
        status = str(pane.query_one("#query-status").render())
        assert "not valid SQL" in status and "\n" not in status.strip() and app.screen is pane
        await _ask(app, pilot, "COPY (SELECT 1) TO 'x.csv'")
        assert "only queries" in str(pane.query_one("#query-status").render())
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, QueryPane)
        await pilot.press("q")
    assert _fingerprint(rec) == before


@pytest.mark.live
async def test_the_sql_pane_over_several_recordings_has_a_host_column(tmp_path):
    rec = tmp_path / "a.ktrec"
    proc = subprocess.run([sys.executable, "-m", "ktui", "record", "-q", "tracepoint:syscalls:sys_enter_getppid",
                           "-o", str(rec), "--", sys.executable, "-c", PRODUCER, str(N)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    other = tmp_path / "b.ktrec"
    other.write_bytes(rec.read_bytes())
    with RecordingReader.open(rec) as r:
        total = r.count()
    app = KtuiApp(source=ReplaySource([rec, other]), mode="replay")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon")
        await pilot.pause()
        assert "2 recordings" in str(app.screen.query_one("#query-title").render())
        pane = await _ask(app, pilot, "SELECT count(DISTINCT host) AS hosts, count(*) AS n FROM events")
        table = pane.query_one("#query-result")
        assert [str(v) for v in table.get_row_at(0)] == ["2", str(2 * total)]
        await pilot.press("escape")
        await pilot.press("q")


async def test_damage_of_the_recording_is_said_beside_the_answer(tmp_path):
    import sqlite3

    from ktui.formats.ftrace import import_ftrace

    bad = tmp_path / "bad.ktrec"
    import_ftrace(Path(__file__).parent / "fixtures" / "ftrace" / "mixed.txt", bad)
    with RecordingReader.open(bad) as r:
        total = r.count()
    con = sqlite3.connect(bad)
    cid, lost = con.execute("SELECT id, count FROM chunks ORDER BY id LIMIT 1").fetchone()
    con.execute("UPDATE chunks SET data = ? WHERE id = ?", (b"\x28\xb5\x2f\xfd" + b"\0" * 32, cid))
    con.commit()
    con.close()
    app = KtuiApp(source=ReplaySource([bad]), mode="replay")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon")
        await pilot.pause()
        pane = await _ask(app, pilot, "SELECT count(*) AS n FROM events")
        assert [str(v) for v in pane.query_one("#query-result").get_row_at(0)] == [str(total - lost)]
        status = str(pane.query_one("#query-status").render())
        assert "1 row" in status and "could not be read" in status and "the query sees the rest" in status
        await pilot.press("escape")
        await pilot.press("q")


async def test_no_sql_pane_in_live_mode():
    app = KtuiApp(source=FakeSource({0: getppid_layout()}), mode="live")
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.check_action("sql", ()) is False
        await pilot.press("colon")
        await pilot.pause()
        assert not isinstance(app.screen, QueryPane)
        await pilot.press("q")


@pytest.mark.live
def test_the_sql_pane_in_tmux_at_80x24(tmp_path):
    """A person replays a real recording in the real ktui, presses `:`, types a query, reads the answer."""
    import shutil
    import time

    from helpers.tmux import Tmux

    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the end-to-end test (apt-get install tmux)")
    rec = tmp_path / "g.ktrec"
    proc = subprocess.run([sys.executable, "-m", "ktui", "record", "-q", "tracepoint:syscalls:sys_enter_getppid",
                           "-o", str(rec), "--", sys.executable, "-c", PRODUCER, str(N)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    before = _fingerprint(rec)
    session = f"ktui-sql-{os.getpid()}"
    tmux = Tmux(session, wait_s=60.0, socket=session)  # a private server (helpers.tmux.Tmux.new_session)
    tmux.new_session("-x", "80", "-y", "24", "-e", "TERM=xterm-256color",
                     "env", "-u", "COLUMNS", "-u", "LINES", str(Path(sys.executable).with_name("ktui")), "replay",
                     str(rec))
    try:
        tmux.wait(lambda s: "REPLAY" in s and "sys_enter_getppid" in s)
        tmux.run("send-keys", "-t", session, ":")
        tmux.wait(lambda s: "SQL over g.ktrec" in s)
        time.sleep(0.5)
        tmux.run("send-keys", "-t", session, "C-u")
        tmux.run("send-keys", "-t", session, "-l", "select 40 + 2 as answer, count(*) as n from events")
        tmux.wait(lambda s: "from events" in s)
        tmux.run("send-keys", "-t", session, "Enter")
        text = tmux.wait(lambda s: "1 row in" in s, timeout=90)
        lines = text.splitlines()
        cells = [line.strip("█ ").split() for line in lines]
        head = cells.index(["answer", "n"])  # the result table's heading, then its one row
        assert cells[head + 1] == ["42", str(N)]
        assert all(len(line) <= 80 for line in lines)
        tmux.run("send-keys", "-t", session, "Escape")
        tmux.wait(lambda s: "SQL over" not in s)
        tmux.run("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and subprocess.run(["tmux", "-L", session, "has-session", "-t", session],
                                                             capture_output=True).returncode == 0:
            time.sleep(0.2)
    finally:
        tmux.kill_server()
    assert _fingerprint(rec) == before


run_async_tests(globals())
