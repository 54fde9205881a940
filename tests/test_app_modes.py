"""Starting modes and bad conditions: demo from the real bundled recording, why live is unavailable,
NO_COLOR, and a modal on top while updates keep coming."""

from __future__ import annotations

import pytest

from fake_source import FakeSource, fake_catalog, getppid_layout, make_events, run_async_tests
from ktui import app_main
from ktui.app import KtuiApp
from ktui.events import Update
from ktui.widgets.event_stream import EventStream

pytestmark = pytest.mark.timeout(60)


def test_not_root_is_one_sentence(monkeypatch):
    monkeypatch.setattr(app_main.os, "geteuid", lambda: 1000)
    why = app_main.live_unavailable()
    assert why.startswith("it needs root") and why.endswith(".")


def test_default_session_is_valid_probes():
    probes = app_main.default_probes()
    assert [p.spec for p in probes] == ["tracepoint:syscalls:sys_enter_openat", "tracepoint:sched:sched_switch",
                                        "profile:hz:49"]
    from ktui.probes.model import Probe

    assert [Probe.from_dict(p.to_dict()).spec for p in probes] == [p.spec for p in probes]


async def test_demo_recording_plays_read_only_in_the_panes():
    if not app_main.DEMO_RECORDING.exists():
        pytest.fail("the demo recording ktui/data/demo.ktrec is missing")
    source = app_main._replay_source([str(app_main.DEMO_RECORDING)])
    app = KtuiApp(source=source, mode="demo", banner="Live tracing is unavailable: test.")
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if app.main_query(EventStream).window.total:
                break
        assert app.main_query(EventStream).window.total > 0
        assert app.main_query("#editor").disabled
        await pilot.press("p")  # pause the replay clock
        await pilot.pause()
        assert app.replay_paused and not source.playing
        await pilot.press("q")
    assert app.source is None


async def test_no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    source = FakeSource({0: getppid_layout(0)}, [Update(events={0: make_events(getppid_layout(0), 5)})])
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.no_color
        assert app.main_query(EventStream).window.total == 5


async def test_updates_keep_flowing_under_a_modal():
    g = getppid_layout(0)
    source = FakeSource({0: g})
    app = KtuiApp(source=source, catalog_loader=fake_catalog)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("f1")  # the help screen is on top
        source.push(Update(events={0: make_events(g, 7)}))
        await pilot.pause(0.1)
        assert app.main_query(EventStream).window.total == 7
        await pilot.press("escape", "ctrl+p")  # and under the command palette
        source.push(Update(events={0: make_events(g, 3, start=7)}))
        await pilot.pause(0.1)
        assert app.main_query(EventStream).window.total == 10




async def test_keys_remap_by_binding_id(tmp_path, monkeypatch):
    keymap = tmp_path / "keymap.toml"
    keymap.write_text('"app.tab_cpus" = "c"\n')
    monkeypatch.setenv("KTUI_KEYMAP", str(keymap))
    app = KtuiApp(source=FakeSource({0: getppid_layout(0)}), catalog_loader=fake_catalog)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        app.main_query(EventStream).blur()
        await pilot.press("c")
        await pilot.pause()
        assert app.main_query("#panes").active == "cpus"


async def test_a_bad_keymap_is_reported_not_fatal(tmp_path, monkeypatch):
    keymap = tmp_path / "keymap.toml"
    keymap.write_text("this is not toml")
    monkeypatch.setenv("KTUI_KEYMAP", str(keymap))
    app = KtuiApp(source=FakeSource({0: getppid_layout(0)}), catalog_loader=fake_catalog)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "keymap ignored" in app.main_query("#status").warnings[0]


async def test_pasted_systemtap_point_builds_a_probe():
    from fake_source import RecordingFactory

    app = KtuiApp(catalog_loader=fake_catalog, mode="live", source_factory=RecordingFactory())
    async with app.run_test(size=(100, 32)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("5")
        app.main_query("#editor-spec").value = 'kernel.function("vfs_read").return'
        await pilot.press("ctrl+n")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [p.spec for p in app.probes] == ["kretprobe:vfs_read"]
run_async_tests(globals())
