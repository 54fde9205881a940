"""Sessions keep everything they describe: probes, target, and the layout (tab, browser, the stream's
filter and search); ctrl+o saves under a path the user types, Escape there cancels; keys of [layout]
ktui does not read are kept; a malformed session is one sentence."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fake_source import FakeSource, RecordingFactory, fake_catalog, getppid_layout, make_events, run_async_tests
from ktui.app import KtuiApp
from ktui.errors import FileFormatError
from ktui.events import Update
from ktui.probes.model import Probe, ProbeKind, TargetProcess
from ktui.session import Session, SessionView
from ktui.widgets.event_stream import EventStream
from ktui.widgets.status_bar import StatusBar

pytestmark = pytest.mark.timeout(120)
SIZE = (120, 36)


async def settle(app, pilot, times: int = 3) -> None:
    for _ in range(times):
        await app.workers.wait_for_complete()
        await pilot.pause()


def live_app(**kw) -> KtuiApp:
    probes = [Probe(ProbeKind.TRACEPOINT, "syscalls:sys_enter_getppid")]
    return KtuiApp(catalog_loader=fake_catalog, mode="live", probes=probes, source_factory=RecordingFactory(), **kw)


async def test_save_as_then_restore_everything(tmp_path):
    path = tmp_path / "mine.toml"
    loaded = Session(target=TargetProcess(pid=4242), layout={"panes": ["stream"], "tab": "stream"},
                     settings={"theme": "dark"})
    app = live_app(session=loaded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("1", "f", *"pid=4242", "enter")
        await settle(app, pilot)
        await pilot.press("s", *"cpu=1", "enter", "b", "4")  # search, fold the browser, Hists tab
        await settle(app, pilot)
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        prompt = app.screen.query_one("#prompt-path")
        prompt.value = str(path)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.session_path == str(path)
    saved = Session.load(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [p.spec for p in saved.probes] == ["tracepoint:syscalls:sys_enter_getppid"]
    assert saved.target == TargetProcess(pid=4242)
    assert saved.settings == {"theme": "dark"}
    assert saved.layout == {"panes": ["stream"], "tab": "hists", "browser": False, "filter": "pid=4242",
                            "search": "cpu=1"}
    assert saved.kernel is not None  # the kernel the probes ran on, for re-checking elsewhere

    g = getppid_layout(0)
    events = make_events(g, 10, pid=4242)
    events["pid"][:3] = 7
    again = KtuiApp(source=FakeSource({0: g}, [Update(events={0: events})]), catalog_loader=fake_catalog,
                    mode="live", session=saved, session_path=str(path))
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        assert again.query_one("#panes").active == "hists"
        assert not again.query_one("#browser").display
        stream = again.query_one(EventStream)
        assert stream.window.total == 10 and stream.window.visible_count == 7  # the filter pid=4242 in force
        assert stream.search_query == "cpu=1"
        status = again.query_one(StatusBar)
        assert status.filter_text == "pid=4242" and status.search_text == "cpu=1"
        await pilot.press("1", "b", "ctrl+s")  # back to the stream, browser shown; saved to the same file
        await settle(again, pilot)
    back = Session.load(path)
    assert back.target == TargetProcess(pid=4242)
    assert back.view == SessionView(tab="stream", browser=True, filter="pid=4242", search="cpu=1")


async def test_escape_in_save_as_saves_nothing(tmp_path):
    app = live_app(session_path=str(tmp_path / "s.toml"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        await pilot.press("x", "escape")
        await settle(app, pilot)
        assert not app.screen.query("#prompt-path")  # the prompt is gone
        await pilot.press("q")  # the keyboard is back with the app
        await settle(app, pilot)
    assert not list(tmp_path.iterdir())


async def test_save_as_refuses_a_directory_in_one_sentence(tmp_path):
    app = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        app.screen.query_one("#prompt-path").value = str(tmp_path)
        await pilot.press("enter")
        await settle(app, pilot)
        messages = [n.message for n in app._notifications]
        assert any(m.startswith("The session was not saved:") and "\n" not in m for m in messages), messages
        assert app.session_path is None


@pytest.mark.parametrize("layout, sentence", [
    ('tab = "nope"', "layout.tab: must be one of stream, cpus, stacks, hists, probes"),
    ("browser = 3", "layout.browser: must be true or false"),
    ("filter = 7", "layout.filter: must be a string"),
])
def test_a_bad_layout_is_one_sentence_at_load(tmp_path, layout, sentence):
    path = tmp_path / "bad.toml"
    path.write_text(f"version = 1\n[layout]\n{layout}\n")
    with pytest.raises(FileFormatError) as err:
        Session.load(path)
    assert sentence in str(err.value)
    run = subprocess.run([sys.executable, "-m", "ktui", "--session", str(path)], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode != 0
    assert sentence in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


run_async_tests(globals())
